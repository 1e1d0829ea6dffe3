//! What anyone can check without logging in (docs/AUDIT.md): `GET /v1/headers`, the
//! block headers with their producers' signatures, and `GET /v1/attestation`, this
//! replica's signed statement of the block it applied and the digest of its supply report
//! there (docs/FORMAT.md, "Supply digest and replica attestation"). `GET /v1/supply`
//! carries the same statement for the report it gives.

use std::sync::{Arc, Mutex};

use axum::extract::{RawQuery, State};
use axum::routing::{get, MethodRouter};
use axum::Json;
use machi_api::{
    report_digest, AttestationView, AttestedReplica, ErrorBody, HeaderView, HeadersView, IssueSupplyView,
    HEADERS_MAX,
};
use machi_ledger::attest::Statement;
use machi_ledger::{AccountId, BlockHeader, Hash32, SigningKey};

use super::{query_param, Access, ApiError, AppState};
use crate::chain::Chain;

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/v1/headers", Access::Public, get(headers)), ("/v1/attestation", Access::Public, get(attestation))]
}

/// Most bytes of block records one `GET /v1/headers` reads from the log (a header is a
/// few hundred bytes of its block's record; the rest of a large block is read and
/// dropped). The answer ends early rather than pass it; at least one header is given.
pub(crate) const HEADERS_READ_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// Block headers from `from` to `to` (both included), in height order: at most
/// `HEADERS_MAX`, never above this replica's head, and fewer when the blocks are large
/// (`HEADERS_READ_BYTES_MAX`): ask again from the last height + 1. `to` defaults to
/// `from + 999`. No header when `from` is above the head.
#[utoipa::path(get, path = "/v1/headers", tag = "chain",
    params(("from" = u64, Query, description = "the first height"),
        ("to" = Option<u64>, Query, description = "the last height wanted (at most 999 above from)")),
    responses((status = 200, body = HeadersView),
        (status = 400, body = ErrorBody, description = "bad_query: from missing, not a number, or above to")))]
async fn headers(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<HeadersView>, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query_param(&query, name)
            .map(|v| {
                v.parse().map_err(|_| ApiError::bad_request("bad_query", format!("{name} is a block height")))
            })
            .transpose()
    };
    let from = number("from")?
        .ok_or_else(|| ApiError::bad_request("bad_query", "from (a block height) is required"))?;
    let to = number("to")?.unwrap_or(from.saturating_add(HEADERS_MAX - 1));
    if to < from {
        return Err(ApiError::bad_request("bad_query", "to is below from"));
    }
    let (chain_id, head, format, wanted) = {
        let chain = state.shared.chain.read().await;
        let last = to.min(from.saturating_add(HEADERS_MAX - 1)).min(chain.head.height);
        let mut wanted = Vec::new();
        let mut bytes = 0u64;
        for height in from..=last {
            let Some((start, next)) = chain.log.locate(height) else { break };
            bytes = bytes.saturating_add(next - start);
            if !wanted.is_empty() && bytes > HEADERS_READ_BYTES_MAX {
                break;
            }
            wanted.push((height, start, next, chain.hashes[height as usize]));
        }
        (chain.chain_id().to_string(), chain.head.height, chain.log.format(), wanted)
    };
    let shared = state.shared.clone();
    let headers = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<HeaderView>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let file = (shared.reopen_log)()?;
        wanted
            .into_iter()
            .map(|(height, start, next, hash)| {
                let record = crate::storage::read_located(file.as_ref(), format, start, next)?;
                let (header, signature) = signed_header(&record).ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("block {height} does not decode"),
                    )
                })?;
                if header.height != height || header.hash() != hash {
                    return Err(std::io::Error::other(format!(
                        "block {height} in the log is not the one applied"
                    )));
                }
                Ok(HeaderView::new(&header, &signature))
            })
            .collect()
    })
    .await
    .map_err(|e| ApiError::internal("reading headers", e))?
    .map_err(|e| ApiError::internal("reading headers", e))?;
    Ok(Json(HeadersView { chain_id, head, headers }))
}

/// The header and the producer's signature at the start of a block record (the postcard
/// encoding of `Block`: header, signature as two 32-byte halves, then the transactions),
/// without decoding the transactions.
fn signed_header(record: &[u8]) -> Option<(BlockHeader, [u8; 64])> {
    let ((header, (a, b)), _) =
        postcard::take_from_bytes::<(BlockHeader, ([u8; 32], [u8; 32]))>(record).ok()?;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&a);
    signature[32..].copy_from_slice(&b);
    Some((header, signature))
}

/// This replica's signed statement at its current applied head: its id, name and key
/// (the key the chain lists for it), the block's height and hash, the digest of its
/// supply report there, and the replica set it applied.
#[utoipa::path(get, path = "/v1/attestation", tag = "chain", responses((status = 200, body = AttestationView)))]
async fn attestation(State(state): State<AppState>) -> Json<AttestationView> {
    let chain = state.shared.chain.read().await;
    let issues = supply_views(&chain);
    Json((*attest(&state, &chain, &issues)).clone())
}

/// The supply report's issues at the chain's head, ascending by id.
pub(super) fn supply_views(chain: &Chain) -> Vec<IssueSupplyView> {
    chain.state.issues.values().map(|i| IssueSupplyView::new(&i.params, &i.supply)).collect()
}

/// This replica's attestation of `chain` as it stands (the caller holds its read lock)
/// and `issues`, its supply report there.
pub(super) fn attest(state: &AppState, chain: &Chain, issues: &[IssueSupplyView]) -> Arc<AttestationView> {
    let me = state.replicas.get().map(|r| r.members.me);
    state.attestor.attest(chain, issues, me)
}

/// Signs this replica's attestations with its key, once per applied block: a flood of
/// reads at one height is answered from the cache.
pub(crate) struct Attestor {
    key: SigningKey,
    account: AccountId,
    last: Mutex<Option<Arc<AttestationView>>>,
}

impl Attestor {
    /// `key`: this replica's key, the `producer` key the chain's replica set names for it
    /// (every replica, learners included, holds it in `keys/producer.key`).
    pub(crate) fn new(key: SigningKey) -> Attestor {
        Attestor { account: AccountId::of(&key), key, last: Mutex::new(None) }
    }

    /// The attestation of `chain` at its head with `issues`, its supply report there.
    /// `me`: this replica's id as replication knows it, for a replica the chain does not
    /// name yet (one being added).
    fn attest(&self, chain: &Chain, issues: &[IssueSupplyView], me: Option<u64>) -> Arc<AttestationView> {
        let (height, block_hash) = (chain.head.height, chain.hashes[chain.head.height as usize]);
        let mut last = self.last.lock().expect("attestation cache");
        if let Some(cached) = last.as_ref().filter(|a| a.height == height && a.block_hash == block_hash) {
            return cached.clone();
        }
        let chain_id = chain.chain_id();
        let replicas: Vec<AttestedReplica> = if chain.state.replicas.is_empty() {
            let key = chain.state.producer.unwrap_or(self.account);
            vec![AttestedReplica { id: 1, name: "node".into(), key, voter: true }]
        } else {
            chain
                .state
                .replicas
                .iter()
                .map(|r| AttestedReplica { id: r.id, name: r.name.clone(), key: r.producer, voter: r.voter })
                .collect()
        };
        let (replica, name) = match replicas.iter().find(|r| r.key == self.account) {
            Some(r) => (r.id, r.name.clone()),
            None => {
                let id = me.unwrap_or(1);
                (id, format!("replica {id} (not named on chain)"))
            }
        };
        let supply_digest: Hash32 =
            report_digest(chain_id, height, &block_hash, issues).expect("the chain's own id is valid");
        let statement = Statement { chain_id, replica, height, block_hash, supply_digest };
        let signature = hex::encode(statement.sign(&self.key));
        let attestation = Arc::new(AttestationView {
            chain_id: chain_id.to_string(),
            replica,
            name,
            key: self.account,
            height,
            block_hash,
            supply_digest,
            signature,
            replicas,
        });
        *last = Some(attestation.clone());
        attestation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A flood of reads at one height is answered from one signature; the next block is
    /// signed anew, and every answer verifies with the replica's key.
    #[test]
    fn an_attestation_is_signed_once_per_block() {
        let dir = tempfile::tempdir().unwrap();
        crate::setup::init(dir.path(), "attest-test").unwrap();
        let key = crate::keys::read_key(&crate::setup::producer_key_path(dir.path())).unwrap();
        let open = || {
            let file = crate::storage::DiskFile::open(&crate::chain::log_path(dir.path())).unwrap();
            Chain::open(Box::new(file), None).unwrap()
        };
        let chain = open();
        let attestor = Attestor::new(key.clone());
        let first = attestor.attest(&chain, &supply_views(&chain), None);
        for _ in 0..100 {
            assert!(Arc::ptr_eq(&first, &attestor.attest(&chain, &supply_views(&chain), None)), "cached");
        }
        assert!(first.signed_by(&AccountId::of(&key)));
        assert_eq!((first.replica, first.height), (1, 0));

        // Another head (a header changed in place stands for the next block): the cache
        // is keyed by the height and hash attested, so it is signed anew.
        let mut moved = open();
        moved.head.timestamp_ms += 1;
        let at = moved.head.height as usize;
        moved.hashes[at] = moved.head.hash();
        let second = attestor.attest(&moved, &supply_views(&moved), None);
        assert!(!Arc::ptr_eq(&first, &second), "signed anew for another block");
        assert_eq!(second.block_hash, moved.head.hash());
        assert!(second.signed_by(&AccountId::of(&key)));
    }
}
