//! `check`: what became of a transaction. It is looked up on the chain; one this keystore
//! still holds unanswered is sent again (the same signed bytes) until the node says.

use machi_api::TxStatus;
use machi_ledger::TxId;
use serde_json::json;

use super::tx_id;
use crate::ctx::{Ctx, Failure, EXIT_UNKNOWN, SETTLE_ATTEMPTS};

/// Flags of `check`.
#[derive(clap::Args)]
pub(crate) struct CheckArgs {
    /// The transaction id (64 hex digits) that a command or the kiosk printed.
    tx_id: String,
}

pub(crate) async fn run(ctx: &Ctx, args: CheckArgs) -> Result<(), Failure> {
    let id = tx_id(&args.tx_id)?;
    let pending = ctx.pending.get(&id)?;
    let found = ctx.client.lookup(&id).await?;
    let result = match (found, pending) {
        (Some(result), Some(pending)) => ctx.conclude(&pending, Ok(result))?,
        (Some(result), None) if result.status == TxStatus::Applied => result,
        (Some(result), None) => return Err(ctx.not_done(&result)),
        (None, Some(pending)) => {
            let answer = ctx.client.settle(&pending.tx, &id, SETTLE_ATTEMPTS, true).await;
            ctx.conclude(&pending, answer)?
        }
        (None, None) => return Err(not_found(ctx, &id)),
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

/// Neither on the chain nor kept here: whether it may still arrive cannot be told.
fn not_found(ctx: &Ctx, id: &TxId) -> Failure {
    Failure {
        code: EXIT_UNKNOWN,
        kind: "unknown",
        message: ctx
            .t(
                "その取引はチェーンにありません。このキーストアには控えがないため、これから記録される可能性があるかは分かりません（署名から10分たてば記録されることはありません）。",
                "that transaction is not on the chain, and this keystore holds no copy of it, so whether it may still arrive cannot be told (one signed by machi-wallet can arrive only within 10 minutes of signing)",
            )
            .to_string(),
        details: json!({ "status": "not_found", "tx_id": id }),
    }
}
