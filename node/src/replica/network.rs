//! Replica-to-replica traffic over HTTP on each replica's `raft_addr`, bodies in postcard
//! (`application/octet-stream`).
//!
//! - `POST /raft/append`, `/raft/vote`: openraft's AppendEntries and Vote. The answer is
//!   the postcard of `Result<_, RaftError>`, so the remote Raft's own error travels back.
//! - `POST /raft/snapshot`: the leader's snapshot, which is only the chain tip
//!   (`vote, meta, tip, leader`). The receiver (`SnapshotReceiver`, the node) pulls the
//!   blocks it lacks from the leader and verifies them before it installs the snapshot.
//! - `GET /raft/blocks?from=H&to=H2`: encoded blocks `H..=H2` from this replica's block
//!   log (`BlockSource`), as many as fit in `BLOCKS_RESPONSE_BYTES_MAX`.
//!
//! `HttpNetwork` is openraft's network: one shared `reqwest::Client`; each RPC's deadline
//! is openraft's (`RPCOption::hard_ttl`). A refused connection is `Unreachable` (openraft
//! backs off), any other transport failure `Network` (retried at once), the remote Raft's
//! error `RemoteError`.
//!
//! Every request is signed by the sending replica's key (`Replica.producer` on chain, the
//! key it signs blocks with): `Identity::sign`, over `request_digest`. The receiver answers
//! only a replica of the set it knows (`ReplicaKeys`: the chain's replica set as it last
//! applied it, voters and learners) that signed for this very receiver within
//! `REQUEST_SKEW_MS_MAX` of its clock, and only once (`ReplayCache`); anything else is
//! 401 with a stable code, before the body is read (a bad signature: before it is
//! decoded), before Raft or the block log is touched. A sender it does not know may be
//! named in blocks it has not applied: `ReplicaKeys::unknown` lets the node catch up from
//! the replicas it knows. Nothing is encrypted: across sites the port still belongs on a
//! private link or behind TLS (docs/OPERATIONS.md, "Replica traffic").

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ed25519_dalek::Signer as _;
use machi_host::ApiError;
use machi_ledger::{AccountId, Hash32, SigningKey};
use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, OptionalSend, Raft, Snapshot, SnapshotMeta, Vote};
use rand::RngCore as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::log_store::RPC_ENTRIES_BYTES_MAX;
use super::{ChainTip, ReplicaId, ReplicaNode, TypeConfig, BLOCK_PROPOSAL_BYTES_MAX};

/// The routes, under the replica's `raft_addr`.
pub(crate) mod paths {
    pub(crate) const APPEND: &str = "/raft/append";
    pub(crate) const VOTE: &str = "/raft/vote";
    pub(crate) const SNAPSHOT: &str = "/raft/snapshot";
    pub(crate) const BLOCKS: &str = "/raft/blocks";
}

/// How long a connection to another replica may take to open.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one page of pulled blocks may take.
pub(crate) const BLOCKS_PULL_TIMEOUT: Duration = Duration::from_secs(30);
/// An AppendEntries carrying several entries gets this share of openraft's deadline, so
/// that when it runs out the network answers first, asking openraft for fewer entries
/// (half) next time; openraft's own timeout would retry the same entries. A follower that
/// cannot take a batch within the heartbeat interval (a slow link, a busy machine) thus
/// still catches up, a few entries at a time.
pub(crate) const BATCH_DEADLINE_PERCENT: u32 = 90;
/// Room for everything in a message besides entries and blocks: votes, log ids, lengths.
const ENVELOPE_BYTES_MAX: usize = 64 * 1024;
/// The largest AppendEntries: one read of the log (`RPC_ENTRIES_BYTES_MAX`, or a single
/// entry, which is a block of at most `BLOCK_PROPOSAL_BYTES_MAX`).
pub(crate) const APPEND_BODY_BYTES_MAX: usize = RPC_ENTRIES_BYTES_MAX as usize + ENVELOPE_BYTES_MAX;
/// A vote request: a vote and a log id.
pub(crate) const VOTE_BODY_BYTES_MAX: usize = 4 * 1024;
/// A snapshot: a vote, the membership with every replica's addresses, the tip.
pub(crate) const SNAPSHOT_BODY_BYTES_MAX: usize = 256 * 1024;
/// The answer to an AppendEntries, Vote or snapshot: a vote, a log id, or an error.
const ANSWER_BYTES_MAX: usize = 256 * 1024;
/// Most bytes of encoded blocks in one answer to `GET /raft/blocks` (at least one block
/// is always sent).
pub(crate) const BLOCKS_RESPONSE_BYTES_MAX: usize = 8 * 1024 * 1024;
/// The largest answer to `GET /raft/blocks` a replica reads.
const BLOCKS_ANSWER_BYTES_MAX: usize =
    BLOCKS_RESPONSE_BYTES_MAX + BLOCK_PROPOSAL_BYTES_MAX + ENVELOPE_BYTES_MAX;

const OCTET_STREAM: &str = "application/octet-stream";

// ---- who sends: signed requests ----

/// The headers that authenticate a request from one replica to another.
pub(crate) mod headers {
    /// The sender's replica id (decimal).
    pub(crate) const FROM: &str = "machi-raft-from";
    /// The receiver's replica id (decimal): a request signed for one replica is refused by
    /// every other.
    pub(crate) const TO: &str = "machi-raft-to";
    /// When the sender signed, ms since the Unix epoch by its system clock (decimal).
    pub(crate) const TIME: &str = "machi-raft-time-ms";
    /// 16 random bytes (32 lowercase hex digits): two requests never sign the same message.
    pub(crate) const NONCE: &str = "machi-raft-nonce";
    /// The Ed25519 signature over `request_digest` (128 lowercase hex digits).
    pub(crate) const SIGNATURE: &str = "machi-raft-signature";
}

/// What a replica request's digest starts with: no transaction id, block hash, read
/// challenge or attestation is ever signed over a message that could be one.
pub(crate) const REQUEST_DOMAIN: &[u8] = b"machi.raft.v1";
/// Most a request's time may be from the receiver's clock, either way. Replicas keep their
/// clocks by NTP; a request older than this is refused, and a request is kept in the
/// replay cache only this long past its time.
pub(crate) const REQUEST_SKEW_MS_MAX: u64 = 30_000;
/// Bytes of a request's nonce.
pub(crate) const NONCE_BYTES: usize = 16;
/// Most requests held in the replay cache: every authenticated request of the last
/// `2 × REQUEST_SKEW_MS_MAX` (about 60 s). Three replicas exchange some hundreds a second
/// under load (heartbeats every 100 ms, one AppendEntries per block), so this is far
/// above what the replicas send; past it the receiver answers 503 `raft_busy`.
pub(crate) const REPLAY_CACHE_ENTRIES_MAX: usize = 500_000;
/// Expired entries leave the replay cache at most this often (each pass is one sweep).
const REPLAY_PRUNE_EVERY_MS: u64 = 1_000;
/// At most one log line about refused requests this often (they may come by the thousand).
const REFUSAL_LOG_EVERY_MS: u64 = 10_000;

/// The digest a replica signs for one request:
/// `SHA-256("machi.raft.v1" 0x00 || u16be(len chain_id) || chain_id || u64be(from) ||
/// u64be(to) || u64be(time_ms) || nonce[16] || method || 0x00 || path_and_query || 0x00 ||
/// SHA-256(body))`, the method in upper case (`GET`, `POST`), the path and query exactly
/// as in the request line (`/raft/blocks?from=1&to=9`), the body as sent (empty for GET).
#[allow(clippy::too_many_arguments)]
pub(crate) fn request_digest(
    chain_id: &str,
    from: ReplicaId,
    to: ReplicaId,
    time_ms: u64,
    nonce: &[u8; NONCE_BYTES],
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Hash32 {
    let chain_len = u16::try_from(chain_id.len()).expect("a chain id is at most CHAIN_ID_BYTES_MAX bytes");
    let mut message = Vec::with_capacity(160 + chain_id.len() + path_and_query.len());
    message.extend_from_slice(REQUEST_DOMAIN);
    message.push(0);
    message.extend_from_slice(&chain_len.to_be_bytes());
    message.extend_from_slice(chain_id.as_bytes());
    message.extend_from_slice(&from.to_be_bytes());
    message.extend_from_slice(&to.to_be_bytes());
    message.extend_from_slice(&time_ms.to_be_bytes());
    message.extend_from_slice(nonce);
    message.extend_from_slice(method.as_bytes());
    message.push(0);
    message.extend_from_slice(path_and_query.as_bytes());
    message.push(0);
    message.extend_from_slice(&machi_ledger::sha256(body).0);
    machi_ledger::sha256(&message)
}

/// Who this replica is to the others: the chain, its replica id, and its key — the one
/// named for it on chain (`Replica.producer`), with which it also signs the blocks it
/// produces. Every replica, learners included, holds its own (`machi-node keygen`).
pub(crate) struct Identity {
    pub(crate) chain_id: String,
    pub(crate) id: ReplicaId,
    key: SigningKey,
}

/// The authentication of one request, as headers.
#[derive(Clone, Debug)]
pub(crate) struct SignedRequest {
    pub(crate) from: ReplicaId,
    pub(crate) to: ReplicaId,
    pub(crate) time_ms: u64,
    pub(crate) nonce: [u8; NONCE_BYTES],
    pub(crate) signature: [u8; 64],
}

impl SignedRequest {
    /// The headers to send.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            map.insert(name, HeaderValue::try_from(value).expect("digits and hex are header values"));
        };
        put(headers::FROM, self.from.to_string());
        put(headers::TO, self.to.to_string());
        put(headers::TIME, self.time_ms.to_string());
        put(headers::NONCE, hex::encode(self.nonce));
        put(headers::SIGNATURE, hex::encode(self.signature));
        map
    }
}

impl Identity {
    pub(crate) fn new(chain_id: String, id: ReplicaId, key: SigningKey) -> Identity {
        Identity { chain_id, id, key }
    }

    /// This replica's public key, as the chain names it.
    pub(crate) fn account(&self) -> AccountId {
        AccountId::of(&self.key)
    }

    /// Signs a request to replica `to` at `time_ms` with a fresh nonce.
    pub(crate) fn sign(
        &self,
        to: ReplicaId,
        time_ms: u64,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> SignedRequest {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let digest =
            request_digest(&self.chain_id, self.id, to, time_ms, &nonce, method, path_and_query, body);
        let signature = self.key.sign(&digest.0).to_bytes();
        SignedRequest { from: self.id, to, time_ms, nonce, signature }
    }

    /// Signs `request` (built, with its body) for replica `to`, now.
    fn signed(&self, to: ReplicaId, request: reqwest::Request) -> reqwest::Request {
        let url = request.url();
        let path_and_query = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let body = request.body().and_then(|b| b.as_bytes()).unwrap_or_default();
        let signed = self.sign(to, machi_host::now_ms(), request.method().as_str(), &path_and_query, body);
        let mut request = request;
        request.headers_mut().extend(signed.headers());
        request
    }
}

/// The replicas this replica takes traffic from, and their keys: implemented by the node
/// from the chain's replica set as this replica last applied it (voters and learners). A
/// fresh replica knows the set its genesis names.
pub(crate) trait ReplicaKeys: Send + Sync + 'static {
    /// The key of replica `id`, when it is one.
    fn key_of(&self, id: ReplicaId) -> Option<AccountId>;

    /// A request signed for this replica, in time, came from `id`, which `key_of` does not
    /// know: it may be a replica named in blocks this replica has not applied yet.
    fn unknown(&self, id: ReplicaId);
}

/// Why a request was refused: 401 with a stable code (503 `raft_busy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No authentication at all.
    Required,
    /// A header missing or not in its form.
    Malformed(&'static str),
    /// Signed for another replica.
    WrongReceiver,
    /// The time is more than `REQUEST_SKEW_MS_MAX` from this replica's clock.
    TimeSkew,
    /// The sender is not in the replica set this replica knows.
    UnknownReplica,
    /// The signature is not the named replica's over this request.
    BadSignature,
    /// This very request was answered before.
    Replayed,
    /// The replay cache is full.
    Busy,
}

impl Refusal {
    pub(crate) fn code(self) -> &'static str {
        match self {
            Refusal::Required => "raft_auth_required",
            Refusal::Malformed(_) => "raft_auth_malformed",
            Refusal::WrongReceiver => "raft_wrong_receiver",
            Refusal::TimeSkew => "raft_time_skew",
            Refusal::UnknownReplica => "raft_unknown_replica",
            Refusal::BadSignature => "raft_bad_signature",
            Refusal::Replayed => "raft_replayed",
            Refusal::Busy => "raft_busy",
        }
    }

    fn message(self) -> String {
        match self {
            Refusal::Required => "replica traffic is signed by a replica of this chain".into(),
            Refusal::Malformed(name) => format!("the header {name} is missing or not in its form"),
            Refusal::WrongReceiver => "the request was signed for another replica".into(),
            Refusal::TimeSkew => {
                format!("the request's time is more than {REQUEST_SKEW_MS_MAX} ms from this replica's clock")
            }
            Refusal::UnknownReplica => "the sender is not a replica this replica knows".into(),
            Refusal::BadSignature => "the signature is not the sending replica's over this request".into(),
            Refusal::Replayed => "this request was received before".into(),
            Refusal::Busy => "too many recent requests to remember; try again".into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        };
        ApiError::new(status, self.code(), self.message()).into_response()
    }
}

/// The requests answered within the skew window, by digest: the same signed request is
/// answered once. Only authenticated requests enter it, so only the replicas fill it.
#[derive(Default)]
pub(crate) struct ReplayCache {
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    /// Digest -> the time after which it is refused for its age anyway.
    until_ms: HashMap<Hash32, u64>,
    pruned_ms: u64,
}

impl ReplayCache {
    /// Records `digest` of a request made at `time_ms`: `Replayed` when it was seen.
    fn admit(&self, digest: Hash32, time_ms: u64, now_ms: u64) -> Result<(), Refusal> {
        let mut seen = self.seen.lock().expect("replay cache");
        // One sweep at most every `REPLAY_PRUNE_EVERY_MS`, full or not: a full cache costs
        // no more per request than a lookup.
        if now_ms.saturating_sub(seen.pruned_ms) >= REPLAY_PRUNE_EVERY_MS {
            seen.until_ms.retain(|_, until| *until >= now_ms);
            seen.pruned_ms = now_ms;
        }
        if seen.until_ms.contains_key(&digest) {
            return Err(Refusal::Replayed);
        }
        if seen.until_ms.len() >= REPLAY_CACHE_ENTRIES_MAX {
            return Err(Refusal::Busy);
        }
        seen.until_ms.insert(digest, time_ms.saturating_add(REQUEST_SKEW_MS_MAX));
        Ok(())
    }

    /// Requests remembered now.
    pub(crate) fn len(&self) -> usize {
        self.seen.lock().expect("replay cache").until_ms.len()
    }
}

/// A request whose headers passed every check that needs no body: well formed, for this
/// replica, in time, from a replica of the set, whose key is known. `Authenticated::check`
/// then checks the signature over the body and that it is not a replay.
struct Claim {
    from: ReplicaId,
    key: AccountId,
    time_ms: u64,
    nonce: [u8; NONCE_BYTES],
    signature: [u8; 64],
    method: String,
    path_and_query: String,
}

fn header<'a>(parts: &'a Parts, name: &'static str) -> Result<&'a str, Refusal> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).ok_or(Refusal::Malformed(name))
}

fn number(parts: &Parts, name: &'static str) -> Result<u64, Refusal> {
    let text = header(parts, name)?;
    // Decimal digits only, as `u64::to_string` writes them: no sign, no spaces.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed(name));
    }
    text.parse().map_err(|_| Refusal::Malformed(name))
}

fn hex_bytes<const N: usize>(parts: &Parts, name: &'static str) -> Result<[u8; N], Refusal> {
    let text = header(parts, name)?;
    let mut out = [0u8; N];
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(Refusal::Malformed(name));
    }
    hex::decode_to_slice(text, &mut out).map_err(|_| Refusal::Malformed(name))?;
    Ok(out)
}

impl Claim {
    fn of(parts: &Parts, me: ReplicaId, keys: &dyn ReplicaKeys, now_ms: u64) -> Result<Claim, Refusal> {
        const ALL: [&str; 5] =
            [headers::FROM, headers::TO, headers::TIME, headers::NONCE, headers::SIGNATURE];
        if ALL.iter().all(|name| !parts.headers.contains_key(*name)) {
            return Err(Refusal::Required);
        }
        let from = number(parts, headers::FROM)?;
        let to = number(parts, headers::TO)?;
        let time_ms = number(parts, headers::TIME)?;
        let nonce = hex_bytes::<NONCE_BYTES>(parts, headers::NONCE)?;
        let signature = hex_bytes::<64>(parts, headers::SIGNATURE)?;
        if to != me {
            return Err(Refusal::WrongReceiver);
        }
        if time_ms.abs_diff(now_ms) > REQUEST_SKEW_MS_MAX {
            return Err(Refusal::TimeSkew);
        }
        if from == me {
            return Err(Refusal::UnknownReplica);
        }
        let Some(key) = keys.key_of(from) else {
            keys.unknown(from);
            return Err(Refusal::UnknownReplica);
        };
        let path_and_query = parts.uri.path_and_query().map_or_else(|| parts.uri.path(), |p| p.as_str());
        Ok(Claim {
            from,
            key,
            time_ms,
            nonce,
            signature,
            method: parts.method.as_str().to_owned(),
            path_and_query: path_and_query.to_owned(),
        })
    }
}

/// A request from replica `from`, its headers checked (the body is read after this):
/// `check` with the body finishes the authentication.
pub(crate) struct Authenticated {
    claim: Claim,
}

impl Authenticated {
    /// The sender.
    fn from(&self) -> ReplicaId {
        self.claim.from
    }

    /// The signature over the request with this body, and that it was not answered before.
    fn check<S, B, K>(&self, peer: &Peer<S, B, K>, body: &[u8]) -> Result<(), Refusal> {
        let c = &self.claim;
        let digest = request_digest(
            &peer.identity.chain_id,
            c.from,
            peer.identity.id,
            c.time_ms,
            &c.nonce,
            &c.method,
            &c.path_and_query,
            body,
        );
        machi_ledger::verify_signature(&c.key, &c.signature, &digest.0).map_err(|_| Refusal::BadSignature)?;
        peer.replays.admit(digest, c.time_ms, machi_host::now_ms())
    }
}

impl<S, B, K> FromRequestParts<Peer<S, B, K>> for Authenticated
where
    S: Send + Sync,
    B: Send + Sync,
    K: ReplicaKeys,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, peer: &Peer<S, B, K>) -> Result<Self, Self::Rejection> {
        match Claim::of(parts, peer.identity.id, peer.keys.as_ref(), machi_host::now_ms()) {
            Ok(claim) => Ok(Authenticated { claim }),
            Err(refusal) => Err(peer.refused(refusal, parts.headers.get(headers::FROM))),
        }
    }
}

/// The body of `POST /raft/snapshot`.
#[derive(Debug, Serialize, Deserialize)]
struct SnapshotRequest {
    vote: Vote<ReplicaId>,
    meta: SnapshotMeta<ReplicaId, ReplicaNode>,
    tip: ChainTip,
    /// The sender, so the receiver knows where to pull blocks even before it has any
    /// membership.
    leader: ReplicaNode,
}

/// Why a replica did not install a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum SnapshotRefused {
    /// Raft has stopped on the receiver.
    #[error(transparent)]
    Fatal(#[from] Fatal<ReplicaId>),
    /// The receiver could not pull or verify the blocks up to the tip; the leader tries again.
    #[error("the snapshot was not installed: {0}")]
    NotInstalled(String),
}

/// The receiving side of a snapshot, implemented by the node: pull the blocks from the
/// replica's tip up to `tip` from the leader (`HttpNetwork::pull_blocks`: replica
/// `leader_id`, which signed the snapshot, at `leader`), verify and append them, then
/// `install` the snapshot.
pub(crate) trait SnapshotReceiver: Send + Sync + 'static {
    fn receive(
        &self,
        vote: Vote<ReplicaId>,
        meta: SnapshotMeta<ReplicaId, ReplicaNode>,
        tip: ChainTip,
        leader_id: ReplicaId,
        leader: ReplicaNode,
    ) -> impl Future<Output = Result<SnapshotResponse<ReplicaId>, SnapshotRefused>> + Send;
}

/// Hands a received snapshot to Raft, once the blocks up to `tip` are in the block log.
pub(crate) async fn install(
    raft: &Raft<TypeConfig>,
    vote: Vote<ReplicaId>,
    meta: SnapshotMeta<ReplicaId, ReplicaNode>,
    tip: ChainTip,
) -> Result<SnapshotResponse<ReplicaId>, SnapshotRefused> {
    Ok(raft.install_full_snapshot(vote, Snapshot { meta, snapshot: Box::new(tip) }).await?)
}

/// The blocks this replica holds, for replicas that lag behind: implemented by the node
/// from its block log. Blocking (it reads files); the route runs it off the async threads.
pub(crate) trait BlockSource: Send + Sync + 'static {
    /// Encoded blocks at heights `from..=to`, in order, stopping before `bytes_max` would be
    /// passed (but at least one) and at the tip (none when `from` is past it).
    fn blocks(&self, from: u64, to: u64, bytes_max: usize) -> io::Result<Vec<Vec<u8>>>;
}

// ---- the client side ----

/// openraft's network: HTTP to the other replicas' `raft_addr`, every request signed by
/// this replica's key.
#[derive(Clone)]
pub(crate) struct HttpNetwork {
    identity: Arc<Identity>,
    me: ReplicaNode,
    client: reqwest::Client,
}

impl HttpNetwork {
    /// The network of the replica `identity`, which is `me`.
    pub(crate) fn new(identity: Arc<Identity>, me: ReplicaNode) -> reqwest::Result<HttpNetwork> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // Replica traffic never goes through a proxy named in the environment.
            .no_proxy()
            .build()?;
        Ok(HttpNetwork { identity, me, client })
    }

    /// Who this replica is (for the routes it serves).
    pub(crate) fn identity(&self) -> Arc<Identity> {
        self.identity.clone()
    }

    /// Signs `request` for replica `to` and sends it.
    async fn send(
        &self,
        to: ReplicaId,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<reqwest::Response> {
        let request = self.identity.signed(to, request.build()?);
        self.client.execute(request).await
    }

    /// Blocks `from..=to` from the block log of replica `target`, which is `node`: a
    /// prefix of them (the answer is capped in bytes), or none when it does not hold
    /// `from` yet.
    pub(crate) async fn pull_blocks(
        &self,
        target: ReplicaId,
        node: &ReplicaNode,
        from: u64,
        to: u64,
    ) -> Result<Vec<Vec<u8>>, PullError> {
        let failed = |reason: String| PullError { node: node.raft_addr.clone(), from, to, reason };
        if from > to {
            return Err(failed("the range is empty".into()));
        }
        let url = format!("http://{}{}?from={from}&to={to}", node.raft_addr, paths::BLOCKS);
        let response = self
            .send(target, self.client.get(url).timeout(BLOCKS_PULL_TIMEOUT))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let body = read_answer(response, BLOCKS_ANSWER_BYTES_MAX).await.map_err(|e| failed(e.to_string()))?;
        let blocks: Vec<Vec<u8>> = postcard::from_bytes(&body).map_err(|e| failed(e.to_string()))?;
        if blocks.len() as u64 > to - from + 1 {
            return Err(failed(format!("{} blocks came back", blocks.len())));
        }
        Ok(blocks)
    }
}

/// Pulling blocks from another replica failed.
#[derive(Debug, thiserror::Error)]
#[error("pulling blocks {from}..={to} from {node}: {reason}")]
pub(crate) struct PullError {
    node: String,
    from: u64,
    to: u64,
    reason: String,
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = Connection;

    async fn new_client(&mut self, target: ReplicaId, node: &ReplicaNode) -> Connection {
        Connection { network: self.clone(), target, node: node.clone() }
    }
}

/// The way to one other replica (no connection is opened until an RPC needs one; the
/// client keeps connections alive between RPCs).
pub(crate) struct Connection {
    network: HttpNetwork,
    target: ReplicaId,
    node: ReplicaNode,
}

/// How an RPC failed before the remote Raft answered.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("timed out")]
    Timeout,
    #[error(transparent)]
    Network(AnyError),
}

impl From<reqwest::Error> for Failure {
    fn from(e: reqwest::Error) -> Failure {
        if e.is_connect() {
            Failure::Unreachable(e)
        } else if e.is_timeout() {
            Failure::Timeout
        } else {
            Failure::Network(AnyError::new(&e))
        }
    }
}

type RpcError<E = openraft::error::Infallible> = RPCError<ReplicaId, ReplicaNode, RaftError<ReplicaId, E>>;

impl Connection {
    /// POSTs `request` and decodes the answer, all within `ttl`.
    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
        ttl: Duration,
    ) -> Result<Resp, Failure> {
        let body = postcard::to_allocvec(request).map_err(|e| Failure::Network(AnyError::new(&e)))?;
        let request = self
            .network
            .client
            .post(format!("http://{}{path}", self.node.raft_addr))
            .timeout(ttl)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(body);
        let response = self.network.send(self.target, request).await?;
        let answer = read_answer(response, ANSWER_BYTES_MAX).await?;
        postcard::from_bytes(&answer).map_err(|e| Failure::Network(AnyError::new(&e)))
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        failure: Failure,
        action: RPCTypes,
        ttl: Duration,
    ) -> RpcError<E> {
        match failure {
            Failure::Unreachable(e) => RPCError::Unreachable(Unreachable::new(&e)),
            Failure::Timeout => RPCError::Timeout(self.timeout(action, ttl)),
            Failure::Network(e) => RPCError::Network(NetworkError::new(&e)),
        }
    }

    fn timeout(&self, action: RPCTypes, ttl: Duration) -> Timeout<ReplicaId> {
        Timeout { action, id: self.network.identity.id, target: self.target, timeout: ttl }
    }

    /// One Raft RPC: the transport's failure, or the remote Raft's answer.
    async fn raft_call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        request: &Req,
        ttl: Duration,
    ) -> Result<Result<Resp, RaftError<ReplicaId>>, Failure> {
        self.call(path, request, ttl).await
    }

    fn remote(&self, e: RaftError<ReplicaId>) -> RpcError {
        RPCError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), e))
    }
}

/// Reads an answer of at most `bytes_max` bytes; any status but 200 is a failure.
async fn read_answer(mut response: reqwest::Response, bytes_max: usize) -> Result<Vec<u8>, Failure> {
    let status = response.status();
    let too_large =
        || Failure::Network(AnyError::error(format!("the answer is larger than {bytes_max} bytes")));
    if response.content_length().is_some_and(|len| len > bytes_max as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > bytes_max {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    if status != reqwest::StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        return Err(Failure::Network(AnyError::error(format!("answered {status}: {text}"))));
    }
    Ok(body)
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        request: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ReplicaId>, RpcError> {
        let entries = request.entries.len() as u64;
        let ttl = match entries > 1 {
            true => option.hard_ttl() * BATCH_DEADLINE_PERCENT / 100,
            false => option.hard_ttl(),
        };
        match self.raft_call(paths::APPEND, &request, ttl).await {
            Ok(answer) => answer.map_err(|e| self.remote(e)),
            Err(Failure::Timeout) if entries > 1 => {
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)))
            }
            Err(failure) => Err(self.rpc_error(failure, RPCTypes::AppendEntries, ttl)),
        }
    }

    async fn vote(
        &mut self,
        request: VoteRequest<ReplicaId>,
        option: RPCOption,
    ) -> Result<VoteResponse<ReplicaId>, RpcError> {
        let ttl = option.hard_ttl();
        match self.raft_call(paths::VOTE, &request, ttl).await {
            Ok(answer) => answer.map_err(|e| self.remote(e)),
            Err(failure) => Err(self.rpc_error(failure, RPCTypes::Vote, ttl)),
        }
    }

    /// Sends the tip; the receiver pulls the blocks, so this waits up to the snapshot
    /// timeout, or until openraft closes the replication.
    async fn full_snapshot(
        &mut self,
        vote: Vote<ReplicaId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<ReplicaId>, StreamingError<TypeConfig, Fatal<ReplicaId>>> {
        let ttl = option.hard_ttl();
        let request = SnapshotRequest {
            vote,
            meta: snapshot.meta,
            tip: *snapshot.snapshot,
            leader: self.network.me.clone(),
        };
        let answer: Result<SnapshotResponse<ReplicaId>, SnapshotRefused> = tokio::select! {
            answer = self.call(paths::SNAPSHOT, &request, ttl) => match answer {
                Ok(answer) => answer,
                Err(Failure::Unreachable(e)) => return Err(StreamingError::Unreachable(Unreachable::new(&e))),
                Err(Failure::Timeout) => return Err(StreamingError::Timeout(self.timeout(RPCTypes::InstallSnapshot, ttl))),
                Err(Failure::Network(e)) => return Err(StreamingError::Network(NetworkError::new(&e))),
            },
            closed = cancel => return Err(StreamingError::Closed(closed)),
        };
        answer.map_err(|refused| match refused {
            SnapshotRefused::Fatal(fatal) => {
                StreamingError::RemoteError(RemoteError::new_with_node(self.target, self.node.clone(), fatal))
            }
            SnapshotRefused::NotInstalled(reason) => {
                StreamingError::Network(NetworkError::new(&AnyError::error(reason)))
            }
        })
    }
}

// ---- the server side ----

/// What the routes need.
pub(crate) struct Peer<S, B, K> {
    raft: Raft<TypeConfig>,
    identity: Arc<Identity>,
    keys: Arc<K>,
    replays: Arc<ReplayCache>,
    refusals: Arc<RefusalLog>,
    snapshots: Arc<S>,
    blocks: Arc<B>,
}

impl<S, B, K> Clone for Peer<S, B, K> {
    fn clone(&self) -> Peer<S, B, K> {
        Peer {
            raft: self.raft.clone(),
            identity: self.identity.clone(),
            keys: self.keys.clone(),
            replays: self.replays.clone(),
            refusals: self.refusals.clone(),
            snapshots: self.snapshots.clone(),
            blocks: self.blocks.clone(),
        }
    }
}

impl<S, B, K> Peer<S, B, K> {
    /// The answer to a refused request, noted in the log (at most a line every
    /// `REFUSAL_LOG_EVERY_MS`).
    fn refused(&self, refusal: Refusal, from: Option<&HeaderValue>) -> Response {
        self.refusals.note(refusal, from);
        refusal.into_response()
    }

    /// Checks the signature over `body`: the refusal's answer if it fails.
    fn refusal(&self, request: &Authenticated, body: &[u8]) -> Option<Response> {
        let refusal = request.check(self, body).err()?;
        Some(self.refused(refusal, Some(&HeaderValue::from(request.from()))))
    }
}

/// Refused requests, logged without flooding the log.
#[derive(Default)]
pub(crate) struct RefusalLog {
    last_ms: AtomicU64,
    unlogged: AtomicU64,
}

impl RefusalLog {
    fn note(&self, refusal: Refusal, from: Option<&HeaderValue>) {
        let now = machi_host::now_ms();
        let last = self.last_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < REFUSAL_LOG_EVERY_MS
            || self.last_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let unlogged = self.unlogged.swap(0, Ordering::Relaxed);
        tracing::warn!(
            code = refusal.code(),
            from = ?from,
            "refused a request on the replica port ({}); {unlogged} more refused since the last such line",
            refusal.message()
        );
    }
}

/// The replica-to-replica routes of the replica `identity`, to be served on its
/// `raft_addr`; `keys`: whom it takes requests from.
pub(crate) fn router<S: SnapshotReceiver, B: BlockSource, K: ReplicaKeys>(
    raft: Raft<TypeConfig>,
    identity: Arc<Identity>,
    keys: Arc<K>,
    snapshots: Arc<S>,
    blocks: Arc<B>,
) -> Router {
    let peer =
        Peer { raft, identity, keys, replays: Arc::default(), refusals: Arc::default(), snapshots, blocks };
    Router::new()
        .route(paths::APPEND, post(append::<S, B, K>).layer(DefaultBodyLimit::max(APPEND_BODY_BYTES_MAX)))
        .route(paths::VOTE, post(vote::<S, B, K>).layer(DefaultBodyLimit::max(VOTE_BODY_BYTES_MAX)))
        .route(
            paths::SNAPSHOT,
            post(snapshot::<S, B, K>).layer(DefaultBodyLimit::max(SNAPSHOT_BODY_BYTES_MAX)),
        )
        .route(paths::BLOCKS, get(pull::<S, B, K>))
        .with_state(peer)
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(body)
}

fn undecodable(e: postcard::Error) -> Response {
    (StatusCode::BAD_REQUEST, format!("the body does not decode: {e}")).into_response()
}

fn answer<T: Serialize>(value: &T) -> Response {
    let body = postcard::to_allocvec(value).expect("an answer always encodes");
    ([(header::CONTENT_TYPE, OCTET_STREAM)], body).into_response()
}

// Each route takes `Authenticated` before the body: a request whose headers fail is
// refused before its body is read; the signature is checked over the body before it is
// decoded.

async fn append<S: SnapshotReceiver, B: BlockSource, K: ReplicaKeys>(
    State(peer): State<Peer<S, B, K>>,
    request: Authenticated,
    body: Bytes,
) -> Response {
    if let Some(refused) = peer.refusal(&request, &body) {
        return refused;
    }
    match decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(request) => answer(&peer.raft.append_entries(request).await),
        Err(e) => undecodable(e),
    }
}

async fn vote<S: SnapshotReceiver, B: BlockSource, K: ReplicaKeys>(
    State(peer): State<Peer<S, B, K>>,
    request: Authenticated,
    body: Bytes,
) -> Response {
    if let Some(refused) = peer.refusal(&request, &body) {
        return refused;
    }
    match decode::<VoteRequest<ReplicaId>>(&body) {
        Ok(request) => answer(&peer.raft.vote(request).await),
        Err(e) => undecodable(e),
    }
}

async fn snapshot<S: SnapshotReceiver, B: BlockSource, K: ReplicaKeys>(
    State(peer): State<Peer<S, B, K>>,
    request: Authenticated,
    body: Bytes,
) -> Response {
    if let Some(refused) = peer.refusal(&request, &body) {
        return refused;
    }
    match decode::<SnapshotRequest>(&body) {
        Ok(SnapshotRequest { vote, meta, tip, leader }) => {
            answer(&peer.snapshots.receive(vote, meta, tip, request.from(), leader).await)
        }
        Err(e) => undecodable(e),
    }
}

#[derive(Deserialize)]
struct BlocksQuery {
    from: u64,
    to: u64,
}

async fn pull<S: SnapshotReceiver, B: BlockSource, K: ReplicaKeys>(
    State(peer): State<Peer<S, B, K>>,
    request: Authenticated,
    query: Result<Query<BlocksQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A GET's body is not read: it is signed as empty.
    if let Some(refused) = peer.refusal(&request, &[]) {
        return refused;
    }
    let Ok(Query(BlocksQuery { from, to })) = query else {
        return (StatusCode::BAD_REQUEST, "from and to are heights").into_response();
    };
    if from > to {
        return (StatusCode::BAD_REQUEST, "from is past to").into_response();
    }
    let source = peer.blocks.clone();
    match tokio::task::spawn_blocking(move || source.blocks(from, to, BLOCKS_RESPONSE_BYTES_MAX)).await {
        Ok(Ok(blocks)) => answer(&within_cap(blocks, from, to)),
        Ok(Err(e)) => {
            tracing::error!(error = %e, from, to, "reading blocks for another replica failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the block log could not be read").into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, from, to, "reading blocks for another replica failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "the block log could not be read").into_response()
        }
    }
}

/// The blocks a source returned, held to the range and the byte cap whatever it did.
fn within_cap(blocks: Vec<Vec<u8>>, from: u64, to: u64) -> Vec<Vec<u8>> {
    let mut bytes = 0;
    let count = usize::try_from(to - from).map_or(usize::MAX, |n| n.saturating_add(1));
    blocks
        .into_iter()
        .take(count)
        .enumerate()
        .take_while(|(i, block)| {
            bytes += block.len();
            *i == 0 || bytes <= BLOCKS_RESPONSE_BYTES_MAX
        })
        .map(|(_, block)| block)
        .collect()
}

#[cfg(test)]
#[path = "network_tests.rs"]
mod tests;
