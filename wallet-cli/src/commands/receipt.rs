//! `receipt`: a committed payment's or purchase's receipt as a plain-text file for the
//! kiosk printer.

use std::path::PathBuf;

use serde_json::json;

use super::{tx_id, unlock};
use crate::ctx::{receipt_text, user, Ctx, Failure};

/// Flags of `receipt`.
#[derive(clap::Args)]
pub(crate) struct ReceiptArgs {
    /// The payment's or purchase's transaction id.
    tx_id: String,
    /// The card that paid or bought (asks for its PIN): a transaction is read only by
    /// the cards it concerns.
    #[arg(long)]
    card: String,
    #[arg(long, default_value = "receipt.txt")]
    out: PathBuf,
}

pub(crate) async fn run(ctx: &Ctx, args: ReceiptArgs) -> Result<(), Failure> {
    let id = tx_id(&args.tx_id)?;
    let out = &args.out;
    let wallet = unlock(ctx, &args.card)?;
    let text = receipt_text(ctx, &ctx.reading_as(&wallet.key, "receipt"), &id).await?;
    std::fs::write(out, &text).map_err(|e| user(format!("{}: {e}", out.display())))?;
    ctx.print(
        json!({ "receipt": out, "tx_id": id }),
        &format!("{} {}", ctx.t("領収書を書き出しました:", "Receipt written to"), out.display()),
    );
    Ok(())
}
