//! `GET /v1/issues`, `GET /v1/issues/{id}` and the supply report of `GET /v1/supply`
//! (also written by `machi-node audit`).

use machi_ledger::{Hash32, IssueId, IssueParams, Supply, Yen};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssueView {
    pub params: IssueParams,
    pub sets_sold: u32,
    pub sets_left: u32,
    pub on_sale: bool,
    pub residents_expired: bool,
    pub shops_expired: bool,
    pub supply: Supply,
}

/// One issue's figures in the supply report (docs/AUDIT.md defines each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssueSupplyView {
    #[schema(inline)]
    pub issue: IssueId,
    pub name: String,
    pub total_sets: u32,
    pub sets_sold: u32,
    pub sets_left: u32,
    pub cash_received: Yen,
    pub issued_common: Yen,
    pub issued_local: Yen,
    pub issued_total: Yen,
    pub premium_cost: Yen,
    pub residents_common: Yen,
    pub residents_local: Yen,
    pub shops_common: Yen,
    pub shops_local: Yen,
    pub pending_cash_out: Yen,
    pub paid_out: Yen,
    pub fees: Yen,
    pub expired: Yen,
    pub invariant_holds: bool,
}

impl IssueSupplyView {
    pub fn new(params: &IssueParams, s: &Supply) -> IssueSupplyView {
        IssueSupplyView {
            issue: params.id,
            name: params.name.clone(),
            total_sets: params.total_sets,
            sets_sold: s.sets_sold,
            sets_left: params.total_sets - s.sets_sold,
            cash_received: s.cash_received,
            issued_common: s.issued_common,
            issued_local: s.issued_local,
            issued_total: s.issued(),
            premium_cost: s.premium_cost(),
            residents_common: s.residents_common,
            residents_local: s.residents_local,
            shops_common: s.shops_common,
            shops_local: s.shops_local,
            pending_cash_out: s.pending_cash_out,
            paid_out: s.paid_out,
            fees: s.fees,
            expired: s.expired,
            invariant_holds: s.invariant_holds(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SupplyReport {
    pub chain_id: String,
    pub height: u64,
    pub block_hash: Hash32,
    pub issues: Vec<IssueSupplyView>,
}
