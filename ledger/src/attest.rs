//! What a replica vouches for in public (docs/FORMAT.md, "Supply digest" and "Replica
//! attestation"): the supply report's totals as one SHA-256 digest, and a replica's
//! signature over the chain id, its replica id, the height and hash of the block it
//! applied and that digest. Full blocks are not public; these, with the public headers,
//! let anyone check that the replicas applied the same chain and report the same supply.

use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::hash::{chain_id_len, AccountId, Hash32};
use crate::issue::IssueId;
use crate::reason::TxError;
use crate::yen::Yen;

pub(crate) const SUPPLY_DOMAIN: &[u8] = b"machi.supply.v1";
pub(crate) const ATTEST_DOMAIN: &[u8] = b"machi.attest.v1";

/// One issue's line of the supply report: every figure it gives (docs/AUDIT.md defines
/// each), in the order the digest hashes them. machi-api's `IssueSupplyView::totals`
/// makes it from the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueTotals {
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

impl IssueTotals {
    /// The issue's canonical bytes: `u32be(issue) || u32be(len name) || name_utf8 ||
    /// u32be(total_sets) || u32be(sets_sold) || u32be(sets_left) || u64be(each of the 13
    /// yen figures, in field order) || invariant_holds u8`.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.issue.to_be_bytes());
        out.extend_from_slice(&(self.name.len() as u32).to_be_bytes());
        out.extend_from_slice(self.name.as_bytes());
        for sets in [self.total_sets, self.sets_sold, self.sets_left] {
            out.extend_from_slice(&sets.to_be_bytes());
        }
        let yen = [
            self.cash_received,
            self.issued_common,
            self.issued_local,
            self.issued_total,
            self.premium_cost,
            self.residents_common,
            self.residents_local,
            self.shops_common,
            self.shops_local,
            self.pending_cash_out,
            self.paid_out,
            self.fees,
            self.expired,
        ];
        for amount in yen {
            out.extend_from_slice(&amount.0.to_be_bytes());
        }
        out.push(u8::from(self.invariant_holds));
    }
}

/// The supply report's canonical bytes: `"machi.supply.v1" 0x00 || u16be(len chain_id) ||
/// chain_id || u64be(height) || block_hash[32] || u32be(issue count) || each issue's bytes,
/// ascending by issue id`. `chain_id` is a valid chain id (checked where it enters).
pub fn supply_bytes(chain_id: &str, height: u64, block_hash: &Hash32, issues: &[IssueTotals]) -> Vec<u8> {
    let chain = chain_id.as_bytes();
    let mut sorted: Vec<&IssueTotals> = issues.iter().collect();
    sorted.sort_by_key(|i| i.issue);
    let mut out = Vec::with_capacity(64 + chain.len() + issues.len() * 160);
    out.extend_from_slice(SUPPLY_DOMAIN);
    out.push(0);
    out.extend_from_slice(&chain_id_len(chain));
    out.extend_from_slice(chain);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&block_hash.0);
    out.extend_from_slice(&(sorted.len() as u32).to_be_bytes());
    for issue in sorted {
        issue.write(&mut out);
    }
    out
}

/// `SHA-256(supply_bytes(...))`: the digest a replica signs for its supply report.
pub fn supply_digest(chain_id: &str, height: u64, block_hash: &Hash32, issues: &[IssueTotals]) -> Hash32 {
    Hash32(Sha256::digest(supply_bytes(chain_id, height, block_hash, issues)).into())
}

/// What a replica attests: it applied the block `block_hash` at `height` of `chain_id`,
/// and its supply report there hashes to `supply_digest`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    pub chain_id: &'a str,
    /// The replica's id in the chain's replica set (1 for a node alone).
    pub replica: u64,
    pub height: u64,
    pub block_hash: Hash32,
    pub supply_digest: Hash32,
}

impl Statement<'_> {
    /// `SHA-256("machi.attest.v1" 0x00 || u16be(len chain_id) || chain_id || u64be(replica)
    /// || u64be(height) || block_hash[32] || supply_digest[32])`: the 32 bytes signed.
    pub fn message(&self) -> [u8; 32] {
        let chain = self.chain_id.as_bytes();
        let mut hasher = Sha256::new();
        hasher.update(ATTEST_DOMAIN);
        hasher.update([0u8]);
        hasher.update(chain_id_len(chain));
        hasher.update(chain);
        hasher.update(self.replica.to_be_bytes());
        hasher.update(self.height.to_be_bytes());
        hasher.update(self.block_hash.0);
        hasher.update(self.supply_digest.0);
        hasher.finalize().into()
    }

    /// The replica's signature on the statement.
    pub fn sign(&self, key: &SigningKey) -> [u8; 64] {
        key.sign(&self.message()).to_bytes()
    }

    /// Checks a replica's signature under the chain's one acceptance rule: `BadKey` for
    /// a key no replica may hold, `BadSignature` for anything else that does not verify.
    pub fn verify(&self, key: &AccountId, signature: &[u8; 64]) -> Result<(), TxError> {
        crate::signature::verify(key, signature, &self.message())
    }
}
