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
//! openraft believes whatever reaches this port: across sites it must be reachable only
//! by the other replicas (a private link, or TLS and authentication in front of it).

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use openraft::error::{
    Fatal, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, OptionalSend, Raft, Snapshot, SnapshotMeta, Vote};
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
/// replica's tip up to `tip` from `leader` (`HttpNetwork::pull_blocks`), verify and append
/// them, then `install` the snapshot.
pub(crate) trait SnapshotReceiver: Send + Sync + 'static {
    fn receive(
        &self,
        vote: Vote<ReplicaId>,
        meta: SnapshotMeta<ReplicaId, ReplicaNode>,
        tip: ChainTip,
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

/// openraft's network: HTTP to the other replicas' `raft_addr`.
#[derive(Clone)]
pub(crate) struct HttpNetwork {
    id: ReplicaId,
    me: ReplicaNode,
    client: reqwest::Client,
}

impl HttpNetwork {
    /// The network of replica `id`, which is `me`.
    pub(crate) fn new(id: ReplicaId, me: ReplicaNode) -> reqwest::Result<HttpNetwork> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // Replica traffic never goes through a proxy named in the environment.
            .no_proxy()
            .build()?;
        Ok(HttpNetwork { id, me, client })
    }

    /// Blocks `from..=to` from `node`'s block log: a prefix of them (the answer is capped
    /// in bytes), or none when `node` does not hold `from` yet.
    pub(crate) async fn pull_blocks(
        &self,
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
            .client
            .get(url)
            .timeout(BLOCKS_PULL_TIMEOUT)
            .send()
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
        let response = self
            .network
            .client
            .post(format!("http://{}{path}", self.node.raft_addr))
            .timeout(ttl)
            .header(header::CONTENT_TYPE, OCTET_STREAM)
            .body(body)
            .send()
            .await?;
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
        Timeout { action, id: self.network.id, target: self.target, timeout: ttl }
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
struct Peer<S, B> {
    raft: Raft<TypeConfig>,
    snapshots: Arc<S>,
    blocks: Arc<B>,
}

impl<S, B> Clone for Peer<S, B> {
    fn clone(&self) -> Peer<S, B> {
        Peer { raft: self.raft.clone(), snapshots: self.snapshots.clone(), blocks: self.blocks.clone() }
    }
}

/// The replica-to-replica routes, to be served on `raft_addr`.
pub(crate) fn router<S: SnapshotReceiver, B: BlockSource>(
    raft: Raft<TypeConfig>,
    snapshots: Arc<S>,
    blocks: Arc<B>,
) -> Router {
    Router::new()
        .route(paths::APPEND, post(append::<S, B>).layer(DefaultBodyLimit::max(APPEND_BODY_BYTES_MAX)))
        .route(paths::VOTE, post(vote::<S, B>).layer(DefaultBodyLimit::max(VOTE_BODY_BYTES_MAX)))
        .route(paths::SNAPSHOT, post(snapshot::<S, B>).layer(DefaultBodyLimit::max(SNAPSHOT_BODY_BYTES_MAX)))
        .route(paths::BLOCKS, get(pull::<S, B>))
        .with_state(Peer { raft, snapshots, blocks })
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

async fn append<S: SnapshotReceiver, B: BlockSource>(
    State(peer): State<Peer<S, B>>,
    body: Bytes,
) -> Response {
    match decode::<AppendEntriesRequest<TypeConfig>>(&body) {
        Ok(request) => answer(&peer.raft.append_entries(request).await),
        Err(e) => undecodable(e),
    }
}

async fn vote<S: SnapshotReceiver, B: BlockSource>(State(peer): State<Peer<S, B>>, body: Bytes) -> Response {
    match decode::<VoteRequest<ReplicaId>>(&body) {
        Ok(request) => answer(&peer.raft.vote(request).await),
        Err(e) => undecodable(e),
    }
}

async fn snapshot<S: SnapshotReceiver, B: BlockSource>(
    State(peer): State<Peer<S, B>>,
    body: Bytes,
) -> Response {
    match decode::<SnapshotRequest>(&body) {
        Ok(SnapshotRequest { vote, meta, tip, leader }) => {
            answer(&peer.snapshots.receive(vote, meta, tip, leader).await)
        }
        Err(e) => undecodable(e),
    }
}

#[derive(Deserialize)]
struct BlocksQuery {
    from: u64,
    to: u64,
}

async fn pull<S: SnapshotReceiver, B: BlockSource>(
    State(peer): State<Peer<S, B>>,
    Query(BlocksQuery { from, to }): Query<BlocksQuery>,
) -> Response {
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
