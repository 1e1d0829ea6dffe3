//! `GET /v1/transactions/{id}/proof`: what a receipt is checked with, without the rest of
//! the chain — the block header (every field the block hash covers) and the RFC 6962
//! inclusion proofs of the transaction id and of its outcome record (docs/FORMAT.md,
//! "Checking a receipt").

use machi_ledger::{
    chain_id_is_valid, outcome_record, verify_inclusion, AccountId, BlockHeader, Hash32, Outcome, TxId,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::code::TxCode;

/// A block header: every field `block_hash` covers, in the order it hashes them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlockHeaderView {
    pub chain_id: String,
    pub height: u64,
    pub prev_hash: Hash32,
    pub timestamp_ms: u64,
    /// How many transactions the block holds: the number of leaves of both trees.
    pub tx_count: u32,
    /// RFC 6962 root of the block's transaction ids.
    pub tx_root: Hash32,
    /// RFC 6962 root of the block's outcome records.
    pub outcome_root: Hash32,
    pub producer: AccountId,
}

impl BlockHeaderView {
    pub fn new(header: &BlockHeader) -> BlockHeaderView {
        BlockHeaderView {
            chain_id: header.chain_id.clone(),
            height: header.height,
            prev_hash: header.prev_hash,
            timestamp_ms: header.timestamp_ms,
            tx_count: header.tx_count,
            tx_root: header.tx_root,
            outcome_root: header.outcome_root,
            producer: header.producer,
        }
    }

    /// The header, when its chain id is one a header may carry.
    pub fn to_header(&self) -> Option<BlockHeader> {
        chain_id_is_valid(&self.chain_id).then(|| BlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height,
            prev_hash: self.prev_hash,
            timestamp_ms: self.timestamp_ms,
            tx_count: self.tx_count,
            tx_root: self.tx_root,
            outcome_root: self.outcome_root,
            producer: self.producer,
        })
    }
}

/// A transaction's outcome record: `status` 0 applied (reason code 0), 1 rejected with
/// the ledger's reason code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OutcomeRecordView {
    pub status: u8,
    pub reason_code: u16,
    /// The reason's stable name, for people; not part of the record.
    pub reason: Option<TxCode>,
}

impl OutcomeRecordView {
    pub fn new(outcome: Outcome) -> OutcomeRecordView {
        OutcomeRecordView {
            status: outcome.status(),
            reason_code: outcome.reason_code(),
            reason: match outcome {
                Outcome::Applied => None,
                Outcome::Rejected(reason) => Some(TxCode::from(reason)),
            },
        }
    }
}

/// `GET /v1/transactions/{id}/proof`: the block holding a committed transaction and the
/// proofs that its id and its outcome record are leaf `index` of the block's two trees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TxProof {
    pub tx_id: TxId,
    pub header: BlockHeaderView,
    /// SHA-256 of the header's bytes (docs/FORMAT.md, "Block").
    pub block_hash: Hash32,
    /// The producer's Ed25519 signature on `block_hash`, 128 hex digits.
    pub signature: String,
    /// The transaction's place in the block, from 0.
    pub index: u32,
    /// Leaves of each tree: the header's `tx_count`.
    pub tree_size: u32,
    /// Audit path of the transaction id in the tree of `tx_root`, deepest first.
    pub tx_path: Vec<Hash32>,
    pub outcome: OutcomeRecordView,
    /// Audit path of the outcome record in the tree of `outcome_root`, deepest first.
    pub outcome_path: Vec<Hash32>,
}

/// What a proof shows about one transaction against a block hash someone trusts. A
/// receipt is proven only when every part holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofCheck {
    /// The header hashes to the trusted block hash.
    pub header_matches: bool,
    /// The transaction id is leaf `index` of `tx_root`'s tree of `tx_count` leaves.
    pub tx_included: bool,
    /// `outcome_record(tx id, status, reason code)` is leaf `index` of `outcome_root`'s tree.
    pub outcome_included: bool,
    /// The outcome says applied (status 0, reason code 0).
    pub applied: bool,
}

impl ProofCheck {
    /// Whether the transaction is proven to be in the trusted block, applied.
    pub fn proven(&self) -> bool {
        self.header_matches && self.tx_included && self.outcome_included && self.applied
    }
}

impl TxProof {
    /// Checks that transaction `tx_id` is in the block whose hash is `trusted` (published
    /// by the town, or read from another replica) with the outcome this proof states.
    /// Only the header's own fields are used: its hash must be `trusted`, and both paths
    /// must lead from leaf `index` of `tx_count` leaves to its roots.
    pub fn check(&self, tx_id: &TxId, trusted: &Hash32) -> ProofCheck {
        let Some(header) = self.header.to_header() else {
            return ProofCheck {
                header_matches: false,
                tx_included: false,
                outcome_included: false,
                applied: false,
            };
        };
        let header_matches = header.hash() == *trusted;
        let (index, size) = (u64::from(self.index), u64::from(header.tx_count));
        let sized = self.tree_size == header.tx_count;
        let tx_included = sized && verify_inclusion(&tx_id.0, index, size, &self.tx_path, &header.tx_root);
        let record = outcome_record(tx_id, self.outcome.status, self.outcome.reason_code);
        let outcome_included =
            sized && verify_inclusion(&record.0, index, size, &self.outcome_path, &header.outcome_root);
        let applied = self.outcome.status == 0 && self.outcome.reason_code == 0;
        ProofCheck { header_matches, tx_included, outcome_included, applied }
    }
}
