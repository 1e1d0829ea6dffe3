//! `create` and `import`: a card in the keystore, behind a new PIN, for a new key or for
//! an existing key file.

use std::path::{Path, PathBuf};

use machi_ledger::{AccountId, SigningKey};
use serde_json::json;

use crate::ctx::{user, Ctx, Failure};
use crate::secrets::Secrets;

/// Flags of `create`.
#[derive(clap::Args)]
pub(crate) struct CreateArgs {
    /// 4 to 8 digits.
    /// Who holds it: resident, operator or town (for people reading the keystore).
    #[arg(long, default_value = "resident")]
    label: String,
}

/// Flags of `import`.
#[derive(clap::Args)]
pub(crate) struct ImportArgs {
    #[arg(long)]
    key_file: PathBuf,
    #[arg(long, default_value = "town")]
    label: String,
}

pub(crate) fn create(ctx: &Ctx, args: CreateArgs) -> Result<(), Failure> {
    let pin = Secrets::new(ctx.lang).new_pin()?;
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    new_card(ctx, &key, &pin, &args.label)
}

pub(crate) fn import(ctx: &Ctx, args: ImportArgs) -> Result<(), Failure> {
    let key = read_key(&args.key_file)?;
    let pin = Secrets::new(ctx.lang).new_pin()?;
    new_card(ctx, &key, &pin, &args.label)
}

fn new_card(ctx: &Ctx, key: &SigningKey, pin: &str, label: &str) -> Result<(), Failure> {
    let card = ctx.store.create(key, pin, label)?;
    let account = AccountId::of(key);
    let text = format!(
        "{}: {} ({label})\n{}: {account}",
        ctx.t("カード番号", "Card number"),
        card.display(),
        ctx.t("アカウント", "Account")
    );
    ctx.print(json!({ "card": card.display(), "account": account }), &text);
    Ok(())
}

/// A signing key from a key file of 64 hex digits (as `machi-node init` writes them).
fn read_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| user(format!("{} does not hold 64 hex digits", path.display())))?;
    Ok(SigningKey::from_bytes(&seed))
}
