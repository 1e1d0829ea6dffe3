//! What anyone can check without logging in (docs/AUDIT.md, "What a citizen can check
//! without logging in"): the block headers of `GET /v1/headers`, and a replica's signed
//! statement of what it applied (`GET /v1/attestation`, also in `GET /v1/supply`), whose
//! supply digest a supply report must hash to (docs/FORMAT.md, "Supply digest and replica
//! attestation").

use machi_ledger::attest::{supply_digest, IssueTotals, Statement};
use machi_ledger::{chain_id_is_valid, AccountId, Block, BlockHeader, Hash32};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::issue::{IssueSupplyView, SupplyReport};

/// Most headers one `GET /v1/headers` answers.
pub const HEADERS_MAX: u64 = 1_000;

/// One block header with its producer's signature: every field the block hash covers
/// (with the answer's `chain_id`), the hash, and the signature, so anyone can recompute
/// the hash, check the signature and the link to the block before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeaderView {
    pub height: u64,
    pub hash: Hash32,
    pub prev_hash: Hash32,
    pub timestamp_ms: u64,
    pub tx_count: u32,
    /// RFC 6962 root of the block's transaction ids.
    pub tx_root: Hash32,
    /// RFC 6962 root of the block's outcome records.
    pub outcome_root: Hash32,
    /// The key that signed the block.
    pub producer: AccountId,
    /// The producer's Ed25519 signature on `hash`, 128 hex digits.
    pub signature: String,
}

impl HeaderView {
    pub fn new(header: &BlockHeader, signature: &[u8; 64]) -> HeaderView {
        HeaderView {
            height: header.height,
            hash: header.hash(),
            prev_hash: header.prev_hash,
            timestamp_ms: header.timestamp_ms,
            tx_count: header.tx_count,
            tx_root: header.tx_root,
            outcome_root: header.outcome_root,
            producer: header.producer,
            signature: hex::encode(signature),
        }
    }

    pub fn of(block: &Block) -> HeaderView {
        HeaderView::new(&block.header, &block.signature)
    }

    /// The header of chain `chain_id` these fields give (`hash` is not used: recompute it).
    pub fn header(&self, chain_id: &str) -> BlockHeader {
        BlockHeader {
            chain_id: chain_id.to_string(),
            height: self.height,
            prev_hash: self.prev_hash,
            timestamp_ms: self.timestamp_ms,
            tx_count: self.tx_count,
            tx_root: self.tx_root,
            outcome_root: self.outcome_root,
            producer: self.producer,
        }
    }

    /// The signature's 64 bytes, when `signature` is 128 hex digits.
    pub fn signature_bytes(&self) -> Option<[u8; 64]> {
        hex64(&self.signature)
    }
}

/// `GET /v1/headers?from=H&to=H2`: the headers from `from` up, in height order, ending at
/// `to` or at this replica's head, or earlier when the blocks' records are large (ask
/// again from the last height + 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeadersView {
    pub chain_id: String,
    /// This replica's head when it answered.
    pub head: u64,
    pub headers: Vec<HeaderView>,
}

/// A replica of the set the attesting replica applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttestedReplica {
    pub id: u64,
    pub name: String,
    /// Its key on chain (`producer` of its `Replica`): what its attestations and blocks
    /// are signed with.
    pub key: AccountId,
    /// Voters sign blocks; a learner (an auditor's replica) only follows and attests.
    pub voter: bool,
}

/// A replica's signed statement: it applied block `block_hash` at `height`, and its
/// supply report there hashes to `supply_digest` (docs/FORMAT.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AttestationView {
    pub chain_id: String,
    /// This replica's id in the replica set (1 for a node alone).
    pub replica: u64,
    pub name: String,
    /// The key it signs with: the one the chain lists for it.
    pub key: AccountId,
    pub height: u64,
    pub block_hash: Hash32,
    /// SHA-256 of the supply report's canonical bytes at that block.
    pub supply_digest: Hash32,
    /// Ed25519 by `key` over the attestation message, 128 hex digits.
    pub signature: String,
    /// The replica set this replica applied at that block (not signed: compare it with
    /// other replicas' and with the keys the town publishes).
    pub replicas: Vec<AttestedReplica>,
}

impl AttestationView {
    /// The statement it claims to sign, when its chain id is one a chain may have.
    pub fn statement(&self) -> Option<Statement<'_>> {
        chain_id_is_valid(&self.chain_id).then_some(Statement {
            chain_id: &self.chain_id,
            replica: self.replica,
            height: self.height,
            block_hash: self.block_hash,
            supply_digest: self.supply_digest,
        })
    }

    /// Whether `signature` is `key`'s over the statement (the chain's one acceptance rule).
    pub fn signed_by(&self, key: &AccountId) -> bool {
        match (self.statement(), hex64(&self.signature)) {
            (Some(statement), Some(signature)) => statement.verify(key, &signature).is_ok(),
            _ => false,
        }
    }
}

impl IssueSupplyView {
    /// The figures the supply digest covers.
    pub fn totals(&self) -> IssueTotals {
        IssueTotals {
            issue: self.issue,
            name: self.name.clone(),
            total_sets: self.total_sets,
            sets_sold: self.sets_sold,
            sets_left: self.sets_left,
            cash_received: self.cash_received,
            issued_common: self.issued_common,
            issued_local: self.issued_local,
            issued_total: self.issued_total,
            premium_cost: self.premium_cost,
            residents_common: self.residents_common,
            residents_local: self.residents_local,
            shops_common: self.shops_common,
            shops_local: self.shops_local,
            pending_cash_out: self.pending_cash_out,
            paid_out: self.paid_out,
            fees: self.fees,
            expired: self.expired,
            invariant_holds: self.invariant_holds,
        }
    }
}

/// The supply digest of a report's chain id, height, block hash and issues; `None` when
/// its chain id is not one a chain may have.
pub fn report_digest(
    chain_id: &str,
    height: u64,
    block_hash: &Hash32,
    issues: &[IssueSupplyView],
) -> Option<Hash32> {
    let totals: Vec<IssueTotals> = issues.iter().map(IssueSupplyView::totals).collect();
    chain_id_is_valid(chain_id).then(|| supply_digest(chain_id, height, block_hash, &totals))
}

impl SupplyReport {
    /// The supply digest of this report (docs/FORMAT.md); `None` for an invalid chain id.
    pub fn digest(&self) -> Option<Hash32> {
        report_digest(&self.chain_id, self.height, &self.block_hash, &self.issues)
    }
}

fn hex64(text: &str) -> Option<[u8; 64]> {
    let mut out = [0u8; 64];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}
