//! `GET /v1/accounts/{id}`: role, balances by issue and kind, sets bought, history.

use machi_ledger::{AccountId, IssueId, Kind, TxBody, TxId, Yen};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::code::TxCode;
use crate::tx::TxStatus;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalanceView {
    #[schema(inline)]
    pub issue: IssueId,
    pub kind: Kind,
    pub amount: Yen,
    pub spend_until_ms: u64,
    /// End of the day in JST, as people read it.
    pub spend_until_jst: String,
    pub expired: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SetsBoughtView {
    #[schema(inline)]
    pub issue: IssueId,
    pub sets: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    pub tx_id: TxId,
    pub height: u64,
    pub timestamp_ms: u64,
    pub kind: String,
    pub status: TxStatus,
    pub reason: Option<TxCode>,
    pub signer: AccountId,
    /// Decoded body, for people.
    pub body: Option<TxBody>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccountView {
    pub id: AccountId,
    pub role: String,
    pub name: String,
    pub frozen: bool,
    pub replaced_by: Option<AccountId>,
    pub total: Yen,
    pub balances: Vec<BalanceView>,
    pub sets_bought: Vec<SetsBoughtView>,
    pub history: Vec<HistoryEntry>,
}
