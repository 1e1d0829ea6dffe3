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

#[cfg(test)]
mod tests {
    use super::*;

    fn h(text: &str) -> Hash32 {
        text.parse().unwrap()
    }

    /// docs/FORMAT.md's worked example ("Checking a receipt"), as the wallet checks it.
    #[test]
    fn the_worked_example_of_format_md_is_proven_and_its_rejected_neighbour_is_not() {
        let header = BlockHeaderView {
            chain_id: "bandai-2026".into(),
            height: 12,
            prev_hash: h("0de27e11a90ab101e05dda38964617241b3c9b1532429349aca770ce9981550b"),
            timestamp_ms: 1_782_864_000_250,
            tx_count: 3,
            tx_root: h("51d2afefad8a9d50c90cae0b58f3da9d78cd2913e1398c79cf06ecf2a00755dc"),
            outcome_root: h("1b0b2db8bb3191a8a72f6cf6657f03ecb7ae867ce4d762014ae2fd6c8d1c2f84"),
            producer: "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c".parse().unwrap(),
        };
        let trusted = h("d3f63dee118b097a691dae318d5f1d64824ff2a2d47c6103b0ce1725b2c8bbd9");
        let tx: TxId = "434dc0ee14b155ff58337f0fa49385c50b3e96bd26f7f5a5e2d6cea70188f464".parse().unwrap();
        let proof = TxProof {
            tx_id: tx,
            header: header.clone(),
            block_hash: trusted,
            signature: String::new(),
            index: 2,
            tree_size: 3,
            tx_path: vec![h("ef197aa60708678431a865bfc867f915b3fbe5090fb1f5c4b240573328bf7f20")],
            outcome: OutcomeRecordView { status: 0, reason_code: 0, reason: None },
            outcome_path: vec![h("c9505fdb8c8ec1a4ffa207ed821ccad29e1273d246934926277ab1beb1d619ef")],
        };
        assert!(proof.check(&tx, &trusted).proven());
        let rejected = TxProof {
            tx_id: "d556f2bcd1e26a769595cc6ca072e24f5f01e50b38a57bc2a2e2f41cbdf74492".parse().unwrap(),
            index: 1,
            tx_path: vec![
                h("ed5698f9654025a140bce87fbf3db42d15521782b7e04d9ded8df405e2cb0e2a"),
                h("67d7621c40f18dede623abcb1116f76143b1edc8ab3792d0dc0fc59c28c58dcb"),
            ],
            outcome: OutcomeRecordView { status: 1, reason_code: 3, reason: None },
            outcome_path: vec![
                h("16b8dd0f87dbe64b08cdbcfb923fd5e03024fe635664967484f63fedc10328c4"),
                h("6023cef5647a2610a75ff8e36f33ce811871819a58d4587e2b800a5dbdc271fe"),
            ],
            ..proof.clone()
        };
        let check = rejected.check(&rejected.tx_id, &trusted);
        assert!(check.header_matches && check.tx_included && check.outcome_included, "{check:?}");
        assert!(!check.applied && !check.proven());
        // Claimed applied, its outcome record is not the block's.
        let claimed =
            TxProof { outcome: OutcomeRecordView { status: 0, reason_code: 0, reason: None }, ..rejected };
        assert!(!claimed.check(&claimed.tx_id, &trusted).outcome_included);
    }
}
