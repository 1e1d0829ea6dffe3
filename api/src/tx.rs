//! `POST /v1/transactions` (submit one or a batch, each answered with its result) and
//! `GET /v1/transactions/{id}` (a committed transaction).

use machi_ledger::{AccountId, Hash32, Outcome, Reason, Refusal, SignedTx, TxBody, TxId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::code::TxCode;
use crate::error::ErrorDetail;

/// Most transactions one `POST /v1/transactions` may carry.
pub const SUBMIT_TXS_MAX: usize = 1_024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxResultView {
    pub tx_id: TxId,
    pub status: TxStatus,
    /// 0 when applied; the on-chain reason code when rejected; 0 when refused.
    pub reason_code: u16,
    /// Why it was not applied (the stable name of the rule or refusal); none when applied.
    pub reason: Option<TxCode>,
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
            reason: reason.map(TxCode::from),
            message: reason.map(|r| r.message().to_string()),
            height: Some(height),
            block_hash: Some(block_hash),
        }
    }

    pub fn refused(tx_id: TxId, code: TxCode, message: String) -> TxResultView {
        TxResultView {
            tx_id,
            status: TxStatus::Refused,
            reason_code: 0,
            reason: Some(code),
            message: Some(message),
            height: None,
            block_hash: None,
        }
    }

    pub fn from_refusal(tx_id: TxId, refusal: Refusal) -> TxResultView {
        TxResultView::refused(tx_id, refusal.into(), refusal.to_string())
    }

    /// The HTTP status this result travels with when it is a request's only one.
    pub fn http_status(&self) -> u16 {
        match (self.status, self.reason) {
            (TxStatus::Applied, _) => 200,
            (TxStatus::Rejected, _) => 422,
            (TxStatus::Refused, Some(code)) => code.http_status(),
            (TxStatus::Refused, None) => 400,
        }
    }

    /// Whether this is a refusal that only says "not now" (nothing was committed, and
    /// the same transaction may still commit when sent again).
    pub fn is_transient_refusal(&self) -> bool {
        self.status == TxStatus::Refused && self.reason.is_some_and(TxCode::is_transient)
    }

    pub fn rejection(&self) -> Option<Reason> {
        match self.status {
            TxStatus::Rejected => Reason::from_code(self.reason_code),
            _ => None,
        }
    }
}

/// `POST /v1/transactions` takes one signed transaction or an array of them.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitRequest {
    One(SignedTx),
    Many(Vec<SignedTx>),
}

/// What `POST /v1/transactions` answers when every result is known: the result of the
/// one transaction sent (applied), or one result per transaction of a batch, in order.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SubmitResponse {
    One(TxResultView),
    Many(Vec<TxResultView>),
}

/// The answer to one submitted transaction that was not applied: the error (its code is
/// the result's `reason`) and the result itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxErrorBody {
    pub error: ErrorDetail,
    pub result: TxResultView,
}

/// `GET /v1/transactions/{id}`: a committed transaction, its result and where it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxView {
    #[serde(flatten)]
    pub result: TxResultView,
    /// Its place in the block.
    pub index: u32,
    pub timestamp_ms: u64,
    pub signer: AccountId,
    /// 128 hex digits.
    pub signature: String,
    pub body_hex: String,
    /// Decoded body, for people.
    pub body: Option<TxBody>,
}
