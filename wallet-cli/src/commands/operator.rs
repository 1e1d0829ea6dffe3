//! `operator …`: the counter staff's commands — register a resident, sell sets, replace a
//! lost card — and what they need: the town's resident-number key, the keyed hash of a
//! resident number, and a new card whose account a transaction puts on the chain.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use machi_api::{TxCode, TxResultView};
use machi_ledger::{AccountId, Action, Hash32, SigningKey};
use serde_json::json;
use sha2::Sha256;

use super::unlock;
use crate::ctx::{action_of, user, Ctx, Failure, SETTLE_ATTEMPTS};
use crate::keystore::{CardNumber, Wallet};
use crate::pending::Pending;
use crate::secrets::Secrets;

/// Most digits a resident number may have.
const RESIDENT_NUMBER_DIGITS_MAX: usize = 20;
/// Length bounds of the town's resident-number key (HMAC-SHA256 key).
const ID_KEY_BYTES_MIN: usize = 16;
const ID_KEY_BYTES_MAX: usize = 64;

#[derive(clap::Subcommand)]
pub(crate) enum OperatorCommand {
    /// Register a resident and give them a new card. Asks for your PIN, the resident
    /// number (or MACHI_RESIDENT_NUMBER) and the new card's PIN (twice, or MACHI_NEW_PIN);
    /// the card file is written before anything is sent. Only a keyed hash of the
    /// resident number goes on the chain. If the outcome is unknown, run the same command
    /// again: it sends the same transaction for the same new card.
    RegisterResident {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The town's secret key for hashing resident numbers: a file of 32 to 128 hex
        /// digits (make one with `openssl rand -hex 32`).
        #[arg(long)]
        id_key: PathBuf,
        /// Works in the town but lives elsewhere.
        #[arg(long)]
        worker: bool,
    },
    /// Sell sets for cash to the holder of a card (also a family member's card, each
    /// within their own limit).
    Sell {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The buyer's card number.
        #[arg(long)]
        resident_card: String,
        #[arg(long)]
        issue: u32,
        #[arg(long)]
        sets: u32,
    },
    /// Replace a lost card: a new key and card number; balances move, the old key is
    /// revoked. Asks for your PIN and the new card's PIN (twice, or MACHI_NEW_PIN); the new
    /// card file is written before anything is sent. If the outcome is unknown, run the
    /// same command again: it sends the same transaction for the same new card.
    ReplaceCard {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The lost card's number.
        #[arg(long)]
        lost_card: String,
    },
    /// Close the counter's cash for a day (入金締め): shows the day's sales at this
    /// counter from the chain and the cash expected, asks for the cash counted (typed, or
    /// a line of standard input), shows the difference (過不足) and asks to confirm (1),
    /// then signs the close. The counter sells no more that day once closed.
    CloseDay(super::cash::CloseDayArgs),
    /// Apply for a lottery issue's sets on a resident's behalf (also a family member's
    /// card); a second application replaces the first while the window is open.
    LotteryApply(super::lottery::OperatorApplyArgs),
}

pub(crate) async fn run(ctx: &Ctx, command: OperatorCommand) -> Result<(), Failure> {
    match command {
        OperatorCommand::RegisterResident { card, id_key, worker } => {
            register_resident(ctx, &card, &id_key, worker).await
        }
        OperatorCommand::Sell { card, resident_card, issue, sets } => {
            sell(ctx, &card, &resident_card, issue, sets).await
        }
        OperatorCommand::ReplaceCard { card, lost_card } => replace_card(ctx, &card, &lost_card).await,
        OperatorCommand::CloseDay(args) => super::cash::close_day(ctx, args).await,
        OperatorCommand::LotteryApply(args) => super::lottery::operator_apply(ctx, args).await,
    }
}

async fn register_resident(ctx: &Ctx, card: &str, id_key: &Path, worker: bool) -> Result<(), Failure> {
    let id_key = read_id_key(id_key)?;
    let mut secrets = Secrets::new(ctx.lang);
    let operator = ctx.unlock(card, &secrets.pin()?)?;
    let resident_hash = resident_hash(&id_key, &secrets.resident_number()?)?;
    let purpose = format!("register-resident:{}", resident_hash.to_hex());
    let label = if worker { "worker" } else { "resident" };
    let action = |resident| Action::RegisterResident { resident, resident_hash, worker };
    let (card, result) = new_card_on_chain(ctx, &mut secrets, &operator, &purpose, label, action).await?;
    let text = format!(
        "{}: {}",
        ctx.t("登録しました。新しいカード番号", "Registered. New card number"),
        card.display()
    );
    let account = ctx.store.account(&card)?;
    ctx.print(json!({ "card": card.display(), "account": account, "tx_id": result.tx_id }), &text);
    Ok(())
}

async fn sell(ctx: &Ctx, card: &str, resident_card: &str, issue: u32, sets: u32) -> Result<(), Failure> {
    let operator = unlock(ctx, card)?;
    let resident = ctx.store.account(&CardNumber::parse(resident_card)?)?;
    let view = ctx.client.issue(issue).await?;
    let cash = view.params.price.checked_mul(u64::from(sets)).ok_or_else(|| user("too many sets"))?;
    let result =
        ctx.submit(&operator.key, Action::SellSets { issue, resident, sets, cash_received: cash }).await?;
    let after = ctx.client.issue(issue).await?;
    let text = format!(
        "{} {sets} {} ({} {cash})\n{}: {} / {}",
        ctx.t("販売しました:", "Sold:"),
        ctx.t("セット", "set(s)"),
        ctx.t("受取", "cash received"),
        ctx.t("残りセット", "Sets left"),
        after.sets_left,
        after.params.total_sets
    );
    ctx.print(
        json!({ "tx_id": result.tx_id, "sets": sets, "cash_received": cash, "sets_left": after.sets_left }),
        &text,
    );
    Ok(())
}

async fn replace_card(ctx: &Ctx, card: &str, lost_card: &str) -> Result<(), Failure> {
    let mut secrets = Secrets::new(ctx.lang);
    let operator = ctx.unlock(card, &secrets.pin()?)?;
    let old = ctx.store.account(&CardNumber::parse(lost_card)?)?;
    let purpose = format!("replace-card:{old}");
    let action = |new| Action::ReplaceKey { old, new };
    let (card, result) =
        new_card_on_chain(ctx, &mut secrets, &operator, &purpose, "resident", action).await?;
    let text = format!(
        "{}: {}",
        ctx.t("カードを再発行しました。新しいカード番号", "Card replaced. New card number"),
        card.display()
    );
    let new = ctx.store.account(&card)?;
    ctx.print(
        json!({ "card": card.display(), "account": new, "revoked": old, "tx_id": result.tx_id }),
        &text,
    );
    Ok(())
}

/// The town's resident-number key from its file: hex, `ID_KEY_BYTES_MIN` to
/// `ID_KEY_BYTES_MAX` bytes.
fn read_id_key(path: &Path) -> Result<Vec<u8>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let key = hex::decode(text.trim()).map_err(|_| {
        user(format!("{}: the resident-number key file must hold hex digits only", path.display()))
    })?;
    if !(ID_KEY_BYTES_MIN..=ID_KEY_BYTES_MAX).contains(&key.len()) {
        return Err(user(format!(
            "{}: the resident-number key must be {ID_KEY_BYTES_MIN} to {ID_KEY_BYTES_MAX} bytes \
             ({} to {} hex digits); it holds {} (make one with `openssl rand -hex 32`)",
            path.display(),
            ID_KEY_BYTES_MIN * 2,
            ID_KEY_BYTES_MAX * 2,
            key.len()
        )));
    }
    Ok(key)
}

/// A resident number's digits: full-width digits become ASCII (as NFKC does), hyphens
/// and spaces (half or full width) are dropped, and anything else is refused rather than
/// silently left out.
fn resident_number_digits(text: &str) -> Result<String, Failure> {
    let mut digits = String::new();
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            '０'..='９' => digits.push(char::from(b'0' + (u32::from(c) - u32::from('０')) as u8)),
            '-' | ' ' | '－' | '　' => {}
            _ => {
                return Err(user(format!(
                    "a resident number is digits, which hyphens or spaces may separate; {c:?} is not allowed"
                )))
            }
        }
    }
    if digits.is_empty() {
        return Err(user("the resident number is empty"));
    }
    if digits.len() > RESIDENT_NUMBER_DIGITS_MAX {
        return Err(user(format!("a resident number has at most {RESIDENT_NUMBER_DIGITS_MAX} digits")));
    }
    Ok(digits)
}

/// HMAC-SHA256 of the resident number's digits under the town's secret: one resident,
/// one account, and the number itself never leaves the counter.
fn resident_hash(key: &[u8], number: &str) -> Result<Hash32, Failure> {
    let digits = resident_number_digits(number)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(digits.as_bytes());
    Ok(Hash32(mac.finalize().into_bytes().into()))
}

/// A new card whose account a transaction puts on the chain (register-resident,
/// replace-card). Everything that can go wrong at the counter goes wrong first: the PIN
/// is asked (twice at a terminal) and the card file written and synced, then the signed
/// transaction is kept, and only then sent. A second run for the same `purpose` finds the
/// kept transaction and sends it again for the same card; one that can no longer commit
/// (its time-to-live passed unsent) is signed anew for the same card.
async fn new_card_on_chain(
    ctx: &Ctx,
    secrets: &mut Secrets,
    operator: &Wallet,
    purpose: &str,
    label: &str,
    action: impl Fn(AccountId) -> Action,
) -> Result<(CardNumber, TxResultView), Failure> {
    let pending = match ctx.pending.find(purpose)? {
        Some(pending) => pending,
        None => {
            let pin = secrets.new_pin()?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let card = ctx.store.create(&key, &pin, label)?;
            let account = AccountId::of(&key);
            ctx.prepare(&operator.key, action(account), Some(purpose.to_string()), Some(&card)).await?
        }
    };
    let card = CardNumber::parse(pending.new_card.as_deref().unwrap_or_default())?;
    let answer = ctx.client.submit_settled(&pending.tx, &pending.tx_id, SETTLE_ATTEMPTS).await;
    let pending = match answer {
        Ok(result) if result.reason == Some(TxCode::TtlExpired) => {
            renew(ctx, operator, &pending, &card).await?
        }
        answer => return ctx.conclude(&pending, answer).map(|result| (card, result)),
    };
    let result = ctx.send(&pending).await?;
    Ok((card, result))
}

/// Signs a kept transaction's action anew, for one that can no longer commit: the old
/// copy is replaced by the new one before it is sent.
async fn renew(ctx: &Ctx, operator: &Wallet, old: &Pending, card: &CardNumber) -> Result<Pending, Failure> {
    let action = action_of(old).ok_or_else(|| user("a kept transaction could not be read"))?;
    let renewed = ctx.prepare(&operator.key, action, old.purpose.clone(), Some(card)).await?;
    ctx.pending.remove(&old.tx_id)?;
    Ok(renewed)
}
