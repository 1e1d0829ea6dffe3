//! `GET /v1/pay/{pay_code}` of the merchant API: what a wallet needs to pay a shop's
//! invoice, and nothing private. Here beside the node's types so the merchant API and
//! the wallet read the same shape.

use machi_ledger::{AccountId, ShopClass, Yen};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An open invoice as a wallet sees it before paying: which shop, how much, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayCodeView {
    pub pay_code: String,
    pub invoice_id: String,
    /// The shop's account: the payment goes to it.
    pub shop: AccountId,
    pub shop_name: String,
    pub shop_class: ShopClass,
    pub amount: Yen,
    pub expires_ms: u64,
    /// `expires_ms` in Japan time, for people.
    pub expires_jst: String,
}
