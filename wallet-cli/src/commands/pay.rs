//! `pay`: a payment from a card to a shop, by the shop's pay code or by its id and an
//! amount.

use machi_ledger::{AccountId, Action, Yen};
use serde_json::json;

use super::{account_id, unlock, yen};
use crate::ctx::{pay_code, Ctx, Failure};

/// Flags of `pay`.
#[derive(clap::Args)]
pub(crate) struct PayArgs {
    /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
    #[arg(long)]
    card: String,
    /// The 8-digit pay code of the shop's payment request.
    #[arg(long, conflicts_with_all = ["shop", "amount", "invoice"])]
    code: Option<String>,
    /// The shop's account id (64 hex digits).
    #[arg(long, required_unless_present = "code", requires = "amount")]
    shop: Option<String>,
    /// Amount in yen: 1200, 1,200 or ¥1,200.
    #[arg(long)]
    amount: Option<String>,
    /// The shop's invoice id, if it gave one.
    #[arg(long)]
    invoice: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, args: PayArgs) -> Result<(), Failure> {
    let wallet = unlock(ctx, &args.card)?;
    let (shop, amount, invoice) = payee(ctx, args).await?;
    // Whom the payment goes to: a shop's public profile (anyone may read it).
    let name = ctx.client.shop(&shop).await.map(|s| s.name).unwrap_or_default();
    let result = ctx.submit(&wallet.key, Action::Pay { shop, amount, invoice }).await?;
    let left = ctx.reading_as(&wallet.key, "pay").account(&wallet.account()).await?.total;
    let text = format!(
        "{} {amount} → {name}\n{}: {left}\n{}: {}",
        ctx.t("支払いが完了しました", "Payment complete:"),
        ctx.t("残高", "Balance"),
        ctx.t("取引ID", "Transaction"),
        result.tx_id
    );
    ctx.print(json!({ "status": "applied", "tx_id": result.tx_id, "amount": amount, "shop": shop, "shop_name": name, "balance": left, "height": result.height }), &text);
    Ok(())
}

/// Whom to pay, how much, and for which invoice: from the pay code's payment request at
/// the merchant API, or from the flags.
async fn payee(ctx: &Ctx, args: PayArgs) -> Result<(AccountId, Yen, Option<String>), Failure> {
    match args.code {
        Some(code) => {
            let view = pay_code(ctx, &code).await?;
            Ok((view.shop, view.amount, Some(view.invoice_id)))
        }
        None => Ok((
            account_id(args.shop.as_deref().unwrap_or_default())?,
            yen(args.amount.as_deref().unwrap_or_default())?,
            args.invoice,
        )),
    }
}
