//! The node's HTTP API request and response types, beside the ledger types so the server
//! and its clients cannot drift apart. Amounts are integer yen; hashes and keys are hex.

use serde::{Deserialize, Serialize};

use crate::block::{Block, BlockHeader};
use crate::hash::{AccountId, Hash32, TxId};
use crate::issue::{IssueId, Kind};
use crate::issue::{IssueParams, Supply};
use crate::reason::{Outcome, Reason, Refusal};
use crate::tx::{SignedTx, TxBody};
use crate::yen::Yen;

/// Most transactions one `POST /v1/transactions` may carry.
pub const SUBMIT_TXS_MAX: usize = 1_024;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// In a durable block, applied.
    Applied,
    /// In a durable block, rejected by a rule (the reason is recorded on chain).
    Rejected,
    /// Not accepted; nothing was written.
    Refused,
}

/// The result for one submitted transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxResultView {
    pub tx_id: TxId,
    pub status: TxStatus,
    /// 0 when applied; the on-chain reason code when rejected; 0 when refused.
    pub reason_code: u16,
    /// Stable machine-readable name of the reason or refusal.
    pub reason: Option<String>,
    pub message: Option<String>,
    pub height: Option<u64>,
    pub block_hash: Option<Hash32>,
}

impl TxResultView {
    pub fn committed(tx_id: TxId, outcome: Outcome, height: u64, block_hash: Hash32) -> TxResultView {
        let (status, reason) = match outcome {
            Outcome::Applied => (TxStatus::Applied, None),
            Outcome::Rejected(reason) => (TxStatus::Rejected, Some(reason)),
        };
        TxResultView {
            tx_id,
            status,
            reason_code: outcome.reason_code(),
            reason: reason.map(|r| r.name().to_string()),
            message: reason.map(|r| r.message().to_string()),
            height: Some(height),
            block_hash: Some(block_hash),
        }
    }

    pub fn refused(tx_id: TxId, code: &str, message: String) -> TxResultView {
        TxResultView {
            tx_id,
            status: TxStatus::Refused,
            reason_code: 0,
            reason: Some(code.to_string()),
            message: Some(message),
            height: None,
            block_hash: None,
        }
    }

    pub fn from_refusal(tx_id: TxId, refusal: Refusal) -> TxResultView {
        TxResultView::refused(tx_id, refusal.name(), refusal.to_string())
    }

    pub fn rejection(&self) -> Option<Reason> {
        match self.status {
            TxStatus::Rejected => Reason::from_code(self.reason_code),
            _ => None,
        }
    }
}

/// `POST /v1/transactions` takes one signed transaction or an array of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SubmitRequest {
    One(SignedTx),
    Many(Vec<SignedTx>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub issue: IssueId,
    pub kind: Kind,
    pub amount: Yen,
    pub spend_until_ms: u64,
    /// End of the day in JST, as people read it.
    pub spend_until_jst: String,
    pub expired: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetsBoughtView {
    pub issue: IssueId,
    pub sets: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub tx_id: TxId,
    pub height: u64,
    pub timestamp_ms: u64,
    pub kind: String,
    pub status: TxStatus,
    pub reason: Option<String>,
    pub signer: AccountId,
    /// Decoded body, for people.
    pub body: Option<TxBody>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueView {
    pub params: IssueParams,
    pub sets_sold: u32,
    pub sets_left: u32,
    pub on_sale: bool,
    pub residents_expired: bool,
    pub shops_expired: bool,
    pub supply: Supply,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadView {
    pub chain_id: String,
    pub height: u64,
    pub hash: Hash32,
    pub timestamp_ms: u64,
    pub txs_total: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthView {
    pub status: String,
    pub chain_id: String,
    pub height: u64,
}

/// One issue's figures in the supply report (docs/AUDIT.md defines each).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueSupplyView {
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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplyReport {
    pub chain_id: String,
    pub height: u64,
    pub block_hash: Hash32,
    pub issues: Vec<IssueSupplyView>,
}

/// A committed transaction, as the event stream tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxEvent {
    pub tx_id: TxId,
    pub height: u64,
    pub timestamp_ms: u64,
    pub kind: String,
    pub status: TxStatus,
    pub reason: Option<String>,
    pub signer: AccountId,
    pub accounts: Vec<AccountId>,
    pub body: TxBody,
}

/// One transaction in a block, as exported (SPEC §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTxView {
    pub id: TxId,
    pub signer: AccountId,
    pub signature: String,
    pub body_hex: String,
    pub status: u8,
    pub reason_code: u16,
    pub reason: Option<String>,
    pub body: Option<TxBody>,
}

/// One block, as exported: one JSON line per block (SPEC §4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockView {
    pub chain_id: String,
    pub height: u64,
    pub hash: Hash32,
    pub prev_hash: Hash32,
    pub timestamp_ms: u64,
    pub tx_root: Hash32,
    pub outcome_root: Hash32,
    pub producer: AccountId,
    pub signature: String,
    pub txs: Vec<BlockTxView>,
}

impl BlockView {
    pub fn new(block: &Block) -> BlockView {
        let h = &block.header;
        let txs = block
            .txs
            .iter()
            .zip(&block.outcomes)
            .map(|(tx, outcome)| BlockTxView {
                id: tx.id(&h.chain_id),
                signer: tx.signer,
                signature: hex::encode(tx.signature),
                body_hex: hex::encode(&tx.body),
                status: outcome.status(),
                reason_code: outcome.reason_code(),
                reason: match outcome {
                    Outcome::Applied => None,
                    Outcome::Rejected(r) => Some(r.name().to_string()),
                },
                body: TxBody::decode(&tx.body).ok(),
            })
            .collect();
        BlockView {
            chain_id: h.chain_id.clone(),
            height: h.height,
            hash: block.hash(),
            prev_hash: h.prev_hash,
            timestamp_ms: h.timestamp_ms,
            tx_root: h.tx_root,
            outcome_root: h.outcome_root,
            producer: h.producer,
            signature: hex::encode(block.signature),
            txs,
        }
    }

    /// Back to a block, from the signed bytes only (the decoded `body` and `reason` are
    /// for people and are ignored). Fails where a field is not what it claims to be.
    pub fn to_block(&self) -> Result<Block, String> {
        if !crate::hash::chain_id_is_valid(&self.chain_id) {
            return Err("chain id is not 1-64 letters, digits, '-', '_' or '.'".to_string());
        }
        let mut txs = Vec::with_capacity(self.txs.len());
        let mut outcomes = Vec::with_capacity(self.txs.len());
        for (i, tx) in self.txs.iter().enumerate() {
            let signature = hex64(&tx.signature).ok_or(format!("tx {i}: signature is not 128 hex digits"))?;
            let body = hex::decode(&tx.body_hex).map_err(|_| format!("tx {i}: body_hex is not hex"))?;
            let signed = SignedTx { signer: tx.signer, signature, body };
            if signed.id(&self.chain_id) != tx.id {
                return Err(format!("tx {i}: id does not match its signer and body"));
            }
            let outcome = Outcome::from_parts(tx.status, tx.reason_code)
                .ok_or(format!("tx {i}: unknown status {} / reason code {}", tx.status, tx.reason_code))?;
            txs.push(signed);
            outcomes.push(outcome);
        }
        let header = BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height,
            prev_hash: self.prev_hash,
            timestamp_ms: self.timestamp_ms,
            tx_count: u32::try_from(self.txs.len()).map_err(|_| "too many transactions")?,
            tx_root: self.tx_root,
            outcome_root: self.outcome_root,
            producer: self.producer,
        };
        let signature = hex64(&self.signature).ok_or("block signature is not 128 hex digits")?;
        let block = Block { header, signature, txs, outcomes };
        if block.hash() != self.hash {
            return Err("hash does not match the header".to_string());
        }
        Ok(block)
    }
}

fn hex64(text: &str) -> Option<[u8; 64]> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// `GET /v1/pay/{pay_code}` of the merchant API: what a wallet needs to pay a shop's
/// invoice, and nothing private. Here beside the node's types so the merchant API and
/// the wallet read the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayCodeView {
    pub pay_code: String,
    pub invoice_id: String,
    /// The shop's account: the payment goes to it.
    pub shop: AccountId,
    pub shop_name: String,
    pub shop_class: crate::tx::ShopClass,
    pub amount: Yen,
    pub expires_ms: u64,
    /// `expires_ms` in Japan time, for people.
    pub expires_jst: String,
}
