//! `balance`: a card's total, and each issue's common and local value with its last day.

use serde_json::json;

use super::unlock;
use crate::ctx::{Ctx, Failure};
use crate::text::kind;

/// Flags of `balance`.
#[derive(clap::Args)]
pub(crate) struct BalanceArgs {
    /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
    #[arg(long)]
    card: String,
}

pub(crate) async fn run(ctx: &Ctx, args: BalanceArgs) -> Result<(), Failure> {
    let wallet = unlock(ctx, &args.card)?;
    // Read as the card's own key: a resident's account is theirs to read.
    let view = ctx.reading_as(&wallet.key, "balance").account(&wallet.account()).await?;
    let issues = ctx.client.issues().await?;
    let mut lines = vec![format!(
        "{} {} {}: {}",
        ctx.t("カード", "Card"),
        wallet.card.display(),
        ctx.t("の残高", "balance"),
        view.total
    )];
    for b in &view.balances {
        let name =
            issues.iter().find(|i| i.params.id == b.issue).map_or(String::new(), |i| i.params.name.clone());
        lines.push(format!(
            "  {name}  {} {}  {} {}",
            kind(ctx.lang, b.kind),
            b.amount,
            ctx.t("有効期限", "valid until"),
            b.spend_until_jst
        ));
    }
    ctx.print(json!({ "card": wallet.card.display(), "account": view.id, "total": view.total, "balances": view.balances }), &lines.join("\n"));
    Ok(())
}
