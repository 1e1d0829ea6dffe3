//! The chain as the node shows it: the head, health, blocks as exported (one JSON line
//! per block, docs/FORMAT.md) and the events of `GET /v1/events`.

use machi_ledger::{AccountId, Block, BlockHeader, Hash32, Outcome, SignedTx, TxBody, TxId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::code::TxCode;
use crate::tx::TxStatus;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeadView {
    pub chain_id: String,
    pub height: u64,
    pub hash: Hash32,
    pub timestamp_ms: u64,
    pub txs_total: u64,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok`; `halted` when this replica refused a committed block (see `halted`);
    /// `clock_ahead` while block times are held back from a system clock that ran ahead;
    /// `head_ahead_of_clock` while the chain's time is later than the clock.
    pub status: String,
    pub chain_id: String,
    /// The height of the last block this replica applied.
    pub height: u64,
    pub clock: ClockView,
    /// This replica's part: `leader`, `follower`, `learner`, `candidate` or `halted`.
    pub role: String,
    /// Why this replica stopped applying blocks, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<HaltView>,
}

/// A replica that refused a committed block: it applies nothing more and serves the
/// state before it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HaltView {
    /// The block it refused.
    pub height: u64,
    pub reason: String,
}

/// `GET /v1/cluster`: the replicas and who leads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// The leader's replica id, as this replica knows it; null during an election.
    pub leader: Option<u64>,
    /// The Raft term this replica is in.
    pub term: u64,
    pub members: Vec<MemberView>,
}

/// One replica of `GET /v1/cluster`, as the answering replica sees it: its own entry
/// from itself, the others from their `/v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemberView {
    pub id: u64,
    pub name: String,
    pub api_addr: String,
    /// `leader`, `follower`, `learner`, `candidate`, `halted`, or `unreachable` when it
    /// did not answer in time.
    pub role: String,
    /// The height of the last block it applied; null when unreachable.
    pub applied_height: Option<u64>,
    pub voter: bool,
}

/// The state of the node's block clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClockView {
    /// How far the system clock is ahead of block times (block times are held back).
    pub ahead_ms: u64,
    /// How far the chain's head was ahead of the clock at start.
    pub head_ahead_ms: u64,
}

/// A committed transaction, as the event stream tells it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxEvent {
    pub tx_id: TxId,
    pub height: u64,
    pub timestamp_ms: u64,
    pub kind: String,
    pub status: TxStatus,
    pub reason: Option<TxCode>,
    pub signer: AccountId,
    pub accounts: Vec<AccountId>,
    pub body: TxBody,
}

/// One transaction in a block, as exported (docs/FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockTxView {
    pub id: TxId,
    pub signer: AccountId,
    pub signature: String,
    pub body_hex: String,
    pub status: u8,
    pub reason_code: u16,
    pub reason: Option<TxCode>,
    pub body: Option<TxBody>,
}

/// One block, as exported: one JSON line per block (docs/FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
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
                    Outcome::Rejected(r) => Some(TxCode::from(*r)),
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
        if !machi_ledger::chain_id_is_valid(&self.chain_id) {
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
