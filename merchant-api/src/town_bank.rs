//! The town's own bank account for settlement files, from a small TOML file:
//!
//! ```toml
//! requester_code = "1234567890"   # 振込依頼人コード from the town's bank
//! name_kana = "マチヤクバ"          # 振込依頼人名
//! bank_code = "0001"
//! branch_code = "001"
//! account_type = "ordinary"       # ordinary, current or savings
//! account_number = "1234567"
//! ```
//! Bank and branch names are filled in from the code list.

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

use crate::bank::{half_width_kana, Banks};
use crate::model::AccountType;
use crate::zengin::Originator;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TownBankFile {
    requester_code: String,
    name_kana: String,
    bank_code: String,
    branch_code: String,
    account_type: AccountType,
    account_number: String,
}

pub fn load_town_bank(path: &Path) -> anyhow::Result<Originator> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: TownBankFile = toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    let banks = Banks::load();
    let bank = banks.bank(&file.bank_code)?;
    let branch = banks.branch(&file.bank_code, &file.branch_code)?;
    if file.requester_code.len() != 10 || !file.requester_code.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("requester_code must be 10 digits");
    }
    if file.account_number.len() != 7 || !file.account_number.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("account_number must be 7 digits");
    }
    Ok(Originator {
        requester_code: file.requester_code,
        name_kana: half_width_kana(&file.name_kana)?,
        bank_code: bank.code.clone(),
        bank_kana: bank.kana.clone(),
        branch_code: branch.code.clone(),
        branch_kana: branch.kana.clone(),
        account_type: file.account_type.zengin_code(),
        account_number: file.account_number,
    })
}
