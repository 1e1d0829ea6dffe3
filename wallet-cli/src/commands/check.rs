//! `check`: what became of a transaction. It is looked up on the chain; one this keystore
//! still holds unanswered is sent again (the same signed bytes) until the node says.

use machi_api::TxStatus;
use machi_ledger::TxId;
use serde_json::json;

use super::{tx_id, unlock};
use crate::ctx::{Ctx, Failure, EXIT_UNKNOWN, SETTLE_ATTEMPTS};

/// Flags of `check`.
#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The transaction id (64 hex digits) that a command or the kiosk printed.
    tx_id: String,
    /// A card the transaction concerns (it signed it, paid or was paid by it; asks for
    /// its PIN): the node shows a transaction only to those. Not needed for one this
    /// keystore still holds unanswered: that one is sent again, and the node answers
    /// with what became of it.
    #[arg(long)]
    card: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, args: CheckArgs) -> Result<(), Failure> {
    let id = tx_id(&args.tx_id)?;
    let pending = ctx.pending.get(&id)?;
    let reader = match &args.card {
        Some(card) => ctx.reading_as(&unlock(ctx, card)?.key, "check"),
        None => ctx.client.clone(),
    };
    let found = reader.lookup(&id).await?;
    let result = match (found, pending) {
        (Some(result), Some(pending)) => ctx.conclude(&pending, Ok(result))?,
        (Some(result), None) if result.status == TxStatus::Applied => result,
        (Some(result), None) => return Err(ctx.not_done(&result)),
        (None, Some(pending)) => {
            let answer = reader.settle(&pending.tx, &id, SETTLE_ATTEMPTS, true).await;
            ctx.conclude(&pending, answer)?
        }
        (None, None) => return Err(not_found(ctx, &id, args.card.is_some())),
    };
    let text = format!(
        "{} {}: {}\n{}: {}",
        ctx.t("取引", "Transaction"),
        id,
        ctx.t("完了しています", "applied"),
        ctx.t("ブロック", "Block"),
        result.height.unwrap_or_default()
    );
    ctx.print(json!({ "status": "applied", "tx_id": id, "height": result.height }), &text);
    Ok(())
}

/// Neither on the chain (as far as this card may see) nor kept here: whether it may
/// still arrive cannot be told.
fn not_found(ctx: &Ctx, id: &TxId, with_card: bool) -> Failure {
    let mut message = ctx
        .t(
            "その取引はチェーンにありません。このキーストアには控えがないため、これから記録される可能性があるかは分かりません（署名から10分たてば記録されることはありません）。",
            "that transaction is not on the chain, and this keystore holds no copy of it, so whether it may still arrive cannot be told (one signed by machi-wallet can arrive only within 10 minutes of signing)",
        )
        .to_string();
    if !with_card {
        message.push_str(ctx.t(
            "チェーンの取引は、その取引のカードでしか見られません: --card でカードを指定してください。",
            "; a transaction on the chain is shown only to the cards it concerns: give one with --card",
        ));
    }
    Failure {
        code: EXIT_UNKNOWN,
        kind: "unknown",
        message,
        details: json!({ "status": "not_found", "tx_id": id }),
    }
}
