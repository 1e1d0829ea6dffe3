//! `history`: a card's latest transactions.

use serde_json::json;

use super::unlock;
use crate::ctx::{Ctx, Failure};
use crate::text::explain;

/// Most history rows shown.
const HISTORY_ROWS_MAX: u64 = 1_000;

/// Flags of `history`.
#[derive(clap::Args)]
pub(crate) struct HistoryArgs {
    /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
    #[arg(long)]
    card: String,
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=HISTORY_ROWS_MAX))]
    limit: u64,
}

pub(crate) async fn run(ctx: &Ctx, args: HistoryArgs) -> Result<(), Failure> {
    let wallet = unlock(ctx, &args.card)?;
    let view = ctx.reading_as(&wallet.key, "history").account(&wallet.account()).await?;
    let limit = usize::try_from(args.limit).unwrap_or(usize::MAX);
    let entries: Vec<_> = view.history.into_iter().take(limit).collect();
    let text = entries
        .iter()
        .map(|h| {
            // A rejected transaction says why, in words.
            let why = h.reason.map(|code| format!("\n    {}", explain(ctx.lang, code))).unwrap_or_default();
            format!(
                "{}  {:<18} {:?}  {}{why}",
                machi_ledger::time::format_jst(h.timestamp_ms),
                h.kind,
                h.status,
                h.tx_id
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let empty = ctx.t("取引はまだありません", "No transactions yet");
    ctx.print(json!({ "history": entries }), if text.is_empty() { empty } else { &text });
    Ok(())
}
