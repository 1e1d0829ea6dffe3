//! Replicas on loopback sockets: each with a `RaftLog` in a temp folder, the HTTP network
//! served by axum on 127.0.0.1, and a test state machine that records what it applies.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use machi_ledger::{AccountId, Action, Block, BlockHeader, Hash32, Outcome, SignedTx, TxBody, Yen};
use openraft::{Entry, EntryPayload, LogId, ServerState};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::*;
use crate::replica::log_store::{LogStats, RaftLog};
use crate::replica::test_machine::TestMachine;
use crate::replica::{propose, raft_config, ApplyOutcome, BlockProposal, ProposalError, ProposeError};

/// How long any one wait in these tests may take before it fails.
const WAIT: Duration = Duration::from_secs(15);
const CHAIN: &str = "machi-test";

/// Replica `id`'s key in these tests.
fn key_of(id: ReplicaId) -> SigningKey {
    SigningKey::from_bytes(&[id as u8 + 100; 32])
}

fn identity(id: ReplicaId) -> Arc<Identity> {
    Arc::new(Identity::new(CHAIN.into(), id, key_of(id)))
}

/// The replica set every replica of a test cluster knows (the node reads it from the
/// chain), and the unknown senders it heard from.
#[derive(Default)]
struct TestKeys(std::sync::Mutex<BTreeMap<ReplicaId, AccountId>>, std::sync::Mutex<Vec<ReplicaId>>);

impl TestKeys {
    fn name(&self, id: ReplicaId) {
        self.0.lock().unwrap().insert(id, AccountId::of(&key_of(id)));
    }
}

impl ReplicaKeys for TestKeys {
    fn key_of(&self, id: ReplicaId) -> Option<AccountId> {
        self.0.lock().unwrap().get(&id).copied()
    }

    fn unknown(&self, id: ReplicaId) {
        self.1.lock().unwrap().push(id);
    }
}

/// Blocks as a replica's block log would serve them: proposal `i` is the block at height
/// `i + 1`.
struct MachineBlocks(TestMachine);

impl BlockSource for MachineBlocks {
    fn blocks(&self, from: u64, to: u64, bytes_max: usize) -> io::Result<Vec<Vec<u8>>> {
        let proposals = self.0.proposals();
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for height in from.max(1)..=to {
            let Some(block) = proposals.get(height as usize - 1) else { break };
            if !out.is_empty() && bytes + block.len() > bytes_max {
                break;
            }
            bytes += block.len();
            out.push(block.clone());
        }
        Ok(out)
    }
}

/// Receives a snapshot as the node will: pulls the blocks it lacks from the leader, checks
/// the last against the tip, then installs the snapshot.
struct PullingReceiver {
    raft: Raft<TypeConfig>,
    machine: TestMachine,
    network: HttpNetwork,
}

impl SnapshotReceiver for PullingReceiver {
    async fn receive(
        &self,
        vote: Vote<ReplicaId>,
        meta: SnapshotMeta<ReplicaId, ReplicaNode>,
        tip: ChainTip,
        leader_id: ReplicaId,
        leader: ReplicaNode,
    ) -> Result<SnapshotResponse<ReplicaId>, SnapshotRefused> {
        let refused = |e: String| SnapshotRefused::NotInstalled(e);
        loop {
            let have = self.machine.proposals().len() as u64;
            if have >= tip.height {
                break;
            }
            let blocks = self
                .network
                .pull_blocks(leader_id, &leader, have + 1, tip.height)
                .await
                .map_err(|e| refused(e.to_string()))?;
            if blocks.is_empty() {
                return Err(refused(format!("the leader holds no block past {have}")));
            }
            self.machine.state().proposals.extend(blocks);
        }
        let last = self.machine.proposals().get(tip.height as usize - 1).cloned().unwrap_or_default();
        if machi_ledger::sha256(&last) != tip.hash {
            return Err(refused("the pulled blocks do not end at the tip".into()));
        }
        install(&self.raft, vote, meta, tip).await
    }
}

struct Running {
    raft: Raft<TypeConfig>,
    machine: TestMachine,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    log: watch::Receiver<LogStats>,
}

struct Replica {
    node: ReplicaNode,
    dir: tempfile::TempDir,
    running: Option<Running>,
}

struct Cluster {
    replicas: BTreeMap<ReplicaId, Replica>,
    keys: Arc<TestKeys>,
}

fn node_at(id: ReplicaId, raft_addr: String) -> ReplicaNode {
    ReplicaNode { name: format!("replica {id}"), api_addr: format!("127.0.0.1:{}", 7100 + id), raft_addr }
}

async fn run(
    id: ReplicaId,
    node: &ReplicaNode,
    dir: &Path,
    listener: TcpListener,
    keys: Arc<TestKeys>,
) -> Running {
    let log = RaftLog::open(dir).expect("the raft log opens");
    let stats = log.stats();
    let machine = TestMachine::default();
    let network = HttpNetwork::new(identity(id), node.clone()).expect("a client");
    let config = Arc::new(raft_config(CHAIN));
    let raft = Raft::new(id, config, network.clone(), log, machine.clone()).await.expect("raft starts");
    let receiver = PullingReceiver { raft: raft.clone(), machine: machine.clone(), network };
    let app = router(
        raft.clone(),
        identity(id),
        keys,
        Arc::new(receiver),
        Arc::new(MachineBlocks(machine.clone())),
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { drop(stopped.await) })
            .await
            .expect("serves");
    });
    Running { raft, machine, stop, server, log: stats }
}

impl Cluster {
    /// `count` replicas, initialized as voters by the first.
    async fn start(count: u64) -> Cluster {
        let mut cluster = Cluster { replicas: BTreeMap::new(), keys: Arc::default() };
        let mut listeners = Vec::new();
        for id in 1..=count {
            cluster.keys.name(id);
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let node = node_at(id, listener.local_addr().unwrap().to_string());
            let replica = Replica { node, dir: tempfile::tempdir().unwrap(), running: None };
            cluster.replicas.insert(id, replica);
            listeners.push((id, listener));
        }
        for (id, listener) in listeners {
            cluster.serve(id, listener).await;
        }
        let members: BTreeMap<ReplicaId, ReplicaNode> =
            cluster.replicas.iter().map(|(id, r)| (*id, r.node.clone())).collect();
        cluster.raft(1).initialize(members).await.expect("initializes");
        cluster
    }

    async fn serve(&mut self, id: ReplicaId, listener: TcpListener) {
        let replica = self.replicas.get_mut(&id).unwrap();
        replica.running = Some(run(id, &replica.node, replica.dir.path(), listener, self.keys.clone()).await);
    }

    fn running(&self, id: ReplicaId) -> &Running {
        self.replicas[&id].running.as_ref().expect("running")
    }

    fn raft(&self, id: ReplicaId) -> &Raft<TypeConfig> {
        &self.running(id).raft
    }

    fn running_ids(&self) -> Vec<ReplicaId> {
        self.replicas.iter().filter(|(_, r)| r.running.is_some()).map(|(id, _)| *id).collect()
    }

    /// Waits for a leader among the running replicas, other than `not`.
    async fn leader(&self, not: Option<ReplicaId>) -> ReplicaId {
        let running = self.running_ids();
        let watcher = *running.iter().find(|id| Some(**id) != not).expect("a replica runs");
        let alive = running.clone();
        let metrics = self
            .raft(watcher)
            .wait(Some(WAIT))
            .metrics(
                move |m| m.current_leader.is_some_and(|l| Some(l) != not && alive.contains(&l)),
                "a leader among the running replicas",
            )
            .await
            .expect("a leader is elected");
        let leader = metrics.current_leader.expect("a leader");
        self.raft(leader).wait(Some(WAIT)).state(ServerState::Leader, "it leads").await.expect("leads");
        leader
    }

    /// Stops a replica's server and Raft, and waits until its log file is closed.
    async fn stop(&mut self, id: ReplicaId) {
        let running = self.replicas.get_mut(&id).unwrap().running.take().expect("running");
        let Running { raft, machine, stop, server, mut log } = running;
        let _ = stop.send(());
        raft.shutdown().await.expect("raft shuts down");
        server.await.expect("the server ends");
        drop((raft, machine));
        tokio::time::timeout(WAIT, log.wait_for(|s| s.closed))
            .await
            .expect("the log closes")
            .expect("closes");
    }

    /// Starts a stopped replica again on the same address and folder.
    async fn restart(&mut self, id: ReplicaId) {
        let listener =
            TcpListener::bind(&self.replicas[&id].node.raft_addr).await.expect("the address is free again");
        self.serve(id, listener).await;
    }

    async fn wait_applied(&self, index: u64) {
        for id in self.running_ids() {
            self.raft(id)
                .wait(Some(WAIT))
                .applied_index_at_least(Some(index), "the block is applied")
                .await
                .unwrap_or_else(|e| panic!("replica {id} applies up to {index}: {e}"));
        }
    }
}

fn block_bytes(n: usize, len: usize) -> Vec<u8> {
    let mut bytes = format!("block {n} ").into_bytes();
    bytes.resize(len.max(bytes.len()), (n % 251) as u8);
    bytes
}

/// Proposes on `leader` and checks the outcome; the log index of the entry.
async fn commit(raft: &Raft<TypeConfig>, block: Vec<u8>, height: u64) -> u64 {
    let hash = machi_ledger::sha256(&block);
    let written = propose(raft, BlockProposal { block }).await.expect("committed");
    assert_eq!(written.data, ApplyOutcome::Applied { height, hash });
    written.log_id.index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_apply_the_same_blocks_in_order_and_fail_over() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;

    let mut sent = Vec::new();
    let mut last = 0;
    for n in 0..50 {
        let block = block_bytes(n, 1_000);
        sent.push(block.clone());
        last = commit(cluster.raft(leader), block, n as u64 + 1).await;
    }
    cluster.wait_applied(last).await;
    for id in cluster.running_ids() {
        assert_eq!(cluster.running(id).machine.proposals(), sent, "replica {id}");
    }

    // A follower does not take writes: it names the leader.
    let follower = *cluster.running_ids().iter().find(|id| **id != leader).unwrap();
    let refused = propose(cluster.raft(follower), BlockProposal { block: vec![1] }).await.unwrap_err();
    let ProposeError::Raft(e) = refused else { panic!("not a Raft error: {refused}") };
    let forward = e.forward_to_leader().expect("forward to the leader");
    assert_eq!(forward.leader_id, Some(leader));
    assert_eq!(
        forward.leader_node.as_ref().map(|n| n.api_addr.clone()),
        Some(cluster.replicas[&leader].node.api_addr.clone())
    );

    // The leader goes away: another is elected and commits.
    cluster.stop(leader).await;
    let next = cluster.leader(Some(leader)).await;
    assert_ne!(next, leader);
    for n in 50..55 {
        let block = block_bytes(n, 1_000);
        sent.push(block.clone());
        last = commit(cluster.raft(next), block, n as u64 + 1).await;
    }
    cluster.wait_applied(last).await;
    for id in cluster.running_ids() {
        assert_eq!(cluster.running(id).machine.proposals(), sent, "replica {id} after the failover");
    }

    // A proposal over the cap never reaches the log.
    let before = cluster.raft(next).metrics().borrow().last_log_index;
    let over = BlockProposal { block: vec![0; BLOCK_PROPOSAL_BYTES_MAX + 1] };
    match propose(cluster.raft(next), over).await {
        Err(ProposeError::Proposal(ProposalError::TooLarge { bytes })) => {
            assert_eq!(bytes, BLOCK_PROPOSAL_BYTES_MAX + 1)
        }
        other => panic!("an oversized proposal is refused, not {other:?}"),
    }
    assert_eq!(cluster.raft(next).metrics().borrow().last_log_index, before);

    // The old leader comes back from its raft log and catches up.
    cluster.restart(leader).await;
    cluster.wait_applied(last).await;
    assert_eq!(cluster.running(leader).machine.proposals(), sent, "the restarted replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_learner_catches_up_by_snapshot_and_pulled_blocks() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader(None).await;
    let mut sent = Vec::new();
    let mut last = 0;
    for n in 0..30 {
        let block = block_bytes(n, 3_000);
        sent.push(block.clone());
        last = commit(cluster.raft(leader), block, n as u64 + 1).await;
    }
    cluster.wait_applied(last).await;

    // Snapshot and purge the log, so the learner cannot be sent entries from the start.
    let raft = cluster.raft(leader).clone();
    raft.trigger().snapshot().await.unwrap();
    raft.wait(Some(WAIT))
        .metrics(move |m| m.snapshot.is_some_and(|s| s.index >= last), "a snapshot")
        .await
        .expect("snapshot taken");
    raft.trigger().purge_log(last).await.unwrap();
    raft.wait(Some(WAIT))
        .metrics(move |m| m.purged.is_some_and(|p| p.index >= last), "purged")
        .await
        .expect("log purged");

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node = node_at(4, listener.local_addr().unwrap().to_string());
    cluster
        .replicas
        .insert(4, Replica { node: node.clone(), dir: tempfile::tempdir().unwrap(), running: None });
    cluster.keys.name(4);
    cluster.serve(4, listener).await;
    tokio::time::timeout(WAIT, raft.add_learner(4, node, true))
        .await
        .expect("in time")
        .expect("the learner joins");

    let learner = cluster.raft(4);
    learner
        .wait(Some(WAIT))
        .metrics(move |m| m.snapshot.is_some_and(|s| s.index >= last), "the learner installed the snapshot")
        .await
        .expect("installed");
    assert_eq!(cluster.running(4).machine.proposals(), sent, "the learner pulled every block");

    let block = block_bytes(30, 3_000);
    sent.push(block.clone());
    let last = commit(&raft, block, 31).await;
    cluster.wait_applied(last).await;
    assert_eq!(cluster.running(4).machine.proposals(), sent, "and applies what follows");
}

/// A follower too slow for a batch within the heartbeat interval: openraft is asked for
/// half as many entries, down to one, instead of timing out on the same batch forever.
#[tokio::test]
async fn a_batch_that_times_out_is_split() {
    let slow = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = slow.local_addr().unwrap().to_string();
    let app = Router::new().route(
        paths::APPEND,
        post(|body: Bytes| async move {
            let request: AppendEntriesRequest<TypeConfig> = postcard::from_bytes(&body).unwrap();
            if request.entries.len() > 1 {
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            answer(&Ok::<_, RaftError<ReplicaId>>(AppendEntriesResponse::<ReplicaId>::Success))
        }),
    );
    let server = tokio::spawn(async move { axum::serve(slow, app).await.unwrap() });
    let request = |count: u64| AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: (0..count)
            .map(|index| Entry {
                log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), index),
                payload: EntryPayload::Normal(BlockProposal { block: vec![1; 10] }),
            })
            .collect(),
    };
    let option = || RPCOption::new(Duration::from_millis(200));
    let mut connection = connection(addr);
    let err = connection.append_entries(request(6), option()).await.unwrap_err();
    assert!(matches!(&err, RPCError::PayloadTooLarge(p) if p.entries_hint() == 3), "{err:?}");
    let err = connection.append_entries(request(2), option()).await.unwrap_err();
    assert!(matches!(&err, RPCError::PayloadTooLarge(p) if p.entries_hint() == 1), "{err:?}");
    let one = connection.append_entries(request(1), option()).await.expect("one entry crosses in time");
    assert_eq!(one, AppendEntriesResponse::Success);
    server.abort();
}

/// A connection to replica 2 at `raft_addr` as replica 1 would open it.
fn connection(raft_addr: String) -> Connection {
    connection_as(1, 2, raft_addr)
}

/// A connection to replica `to` at `raft_addr` as replica `from` would open it.
fn connection_as(from: ReplicaId, to: ReplicaId, raft_addr: String) -> Connection {
    let network = HttpNetwork::new(identity(from), node_at(from, "127.0.0.1:1".into())).unwrap();
    Connection { network, target: to, node: node_at(to, raft_addr) }
}

/// `method path_and_query` with `body` to replica `to` at `addr`, signed by `signer` as
/// made at `time_ms`.
async fn send_signed(
    signer: &Identity,
    to: ReplicaId,
    time_ms: u64,
    method: &str,
    addr: &str,
    path_and_query: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let signed = signer.sign(to, time_ms, method, path_and_query, &body);
    send_with(&signed.headers(), method, addr, path_and_query, body).await
}

/// `method path_and_query` with `body` and `headers` to `addr`.
async fn send_with(
    headers: &HeaderMap,
    method: &str,
    addr: &str,
    path_and_query: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    reqwest::Client::new()
        .request(method, format!("http://{addr}{path_and_query}"))
        .headers(headers.clone())
        .body(body)
        .send()
        .await
        .unwrap()
}

fn vote_request() -> VoteRequest<ReplicaId> {
    VoteRequest::new(Vote::new(9, 1), None)
}

#[tokio::test]
async fn rpc_failures_map_to_the_errors_openraft_expects() {
    // Nothing listens: unreachable (openraft backs off).
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    let err =
        connection(addr).vote(vote_request(), RPCOption::new(Duration::from_secs(2))).await.unwrap_err();
    assert!(matches!(err, RPCError::Unreachable(_)), "{err:?}");

    // A peer that accepts and never answers: a timeout at openraft's deadline.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let err =
        connection(addr).vote(vote_request(), RPCOption::new(Duration::from_millis(200))).await.unwrap_err();
    assert!(matches!(&err, RPCError::Timeout(t) if t.target == 2 && t.action == RPCTypes::Vote), "{err:?}");
    holder.abort();

    // A peer that answers something else: a network error (retried at once).
    let junk = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = junk.local_addr().unwrap().to_string();
    let app = Router::new().route(paths::VOTE, post(|| async { vec![0xffu8; 40] }));
    let server = tokio::spawn(async move { axum::serve(junk, app).await.unwrap() });
    let err =
        connection(addr).vote(vote_request(), RPCOption::new(Duration::from_secs(2))).await.unwrap_err();
    assert!(matches!(err, RPCError::Network(_)), "{err:?}");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_answer_remote_errors_and_refuse_bad_bodies() {
    let cluster = Cluster::start(1).await;
    cluster.leader(None).await;
    let addr = cluster.replicas[&1].node.raft_addr.clone();
    for n in 0..3 {
        commit(cluster.raft(1), block_bytes(n, 5 * 1024 * 1024 / 2), n as u64 + 1).await;
    }
    // Replica 2 asks replica 1.
    cluster.keys.name(2);
    let two = identity(2);

    // Blocks: capped in bytes, checked in range.
    let network = HttpNetwork::new(two.clone(), node_at(2, "127.0.0.1:1".into())).unwrap();
    let node = cluster.replicas[&1].node.clone();
    let pulled = network.pull_blocks(1, &node, 1, 3).await.unwrap();
    assert_eq!(pulled.len(), 3, "three 2.5 MiB blocks fit in {BLOCKS_RESPONSE_BYTES_MAX} bytes");
    assert_eq!(pulled[2], block_bytes(2, 5 * 1024 * 1024 / 2));
    assert!(network.pull_blocks(1, &node, 4, 9).await.unwrap().is_empty(), "nothing past the tip");
    let now = machi_host::now_ms();
    let backwards =
        send_signed(&two, 1, now, "GET", &addr, &format!("{}?from=3&to=1", paths::BLOCKS), vec![]).await;
    assert_eq!(backwards.status(), StatusCode::BAD_REQUEST);

    // Bodies that do not decode, or are too large.
    let garbage = send_signed(&two, 1, now, "POST", &addr, paths::APPEND, vec![0xff; 64]).await;
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let huge = send_signed(&two, 1, now, "POST", &addr, paths::VOTE, vec![0; VOTE_BODY_BYTES_MAX + 1]).await;
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let request = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(1, 1),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 1), 0),
            payload: EntryPayload::Normal(BlockProposal { block: vec![0; APPEND_BODY_BYTES_MAX] }),
        }],
    };
    let err = connection_as(2, 1, addr.clone())
        .append_entries(request, RPCOption::new(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(matches!(&err, RPCError::Network(e) if e.to_string().contains("413")), "{err:?}");

    // A Raft that has stopped answers with its error, carried back as a remote error.
    cluster.raft(1).shutdown().await.unwrap();
    let err = connection_as(2, 1, addr)
        .vote(vote_request(), RPCOption::new(Duration::from_secs(2)))
        .await
        .unwrap_err();
    assert!(matches!(&err, RPCError::RemoteError(e) if e.target == 1), "{err:?}");
}

/// A block of `count` payments of about 200 bytes each, as the producer seals them.
fn payments_block(count: usize) -> Block {
    let chain = "machi-test";
    let shop = AccountId::of(&SigningKey::from_bytes(&[7; 32]));
    let keys: Vec<SigningKey> = (0..16u8).map(|i| SigningKey::from_bytes(&[i + 1; 32])).collect();
    let txs: Vec<SignedTx> = (0..count)
        .map(|i| {
            let body = TxBody {
                chain_id: chain.into(),
                created_ms: 1_760_000_000_000 + i as u64,
                ttl_ms: 60_000,
                nonce: i as u64,
                action: Action::Pay {
                    shop,
                    amount: Yen(1_000 + i as u64),
                    invoice: Some(format!("R-{i:06}")),
                },
            };
            SignedTx::sign(chain, &keys[i % keys.len()], &body)
        })
        .collect();
    let header = BlockHeader {
        chain_id: chain.into(),
        height: 1_234,
        prev_hash: Hash32([3; 32]),
        timestamp_ms: 1_760_000_000_000,
        tx_count: count as u32,
        tx_root: Hash32([4; 32]),
        outcome_root: Hash32([5; 32]),
        producer: AccountId::of(&keys[0]),
    };
    Block { header, signature: [6; 64], txs, outcomes: vec![Outcome::Applied; count] }
}

#[test]
fn a_block_of_1000_payments_is_one_small_append_entries() {
    let block = payments_block(1_000);
    let proposal = BlockProposal::new(&block).expect("fits in an entry");
    let block_len = proposal.block.len();
    assert_eq!(proposal.decode().expect("decodes"), block);
    let request = AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(4, 1),
        prev_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(4, 1), 1_233)),
        leader_commit: Some(LogId::new(openraft::CommittedLeaderId::new(4, 1), 1_233)),
        entries: vec![Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(4, 1), 1_234),
            payload: EntryPayload::Normal(proposal),
        }],
    };
    let wire = postcard::to_allocvec(&request).unwrap();
    eprintln!(
        "a block of 1000 payments: {block_len} bytes; its AppendEntries on the wire: {} bytes",
        wire.len()
    );
    assert!(wire.len() - block_len < 64, "the envelope is {} bytes", wire.len() - block_len);
    assert!(wire.len() <= APPEND_BODY_BYTES_MAX);
    let full = BlockProposal::new(&payments_block(machi_ledger::BLOCK_TXS_MAX))
        .expect("a full block of payments fits");
    eprintln!("a block of {} payments: {} bytes", machi_ledger::BLOCK_TXS_MAX, full.block.len());
}

/// Commit time of 64 KiB blocks on three replicas, and failover time (leader stopped to
/// the new leader's first commit). Failovers: `MACHI_RAFT_FAILOVERS` (default 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_and_failover_timings() {
    let failovers: u32 = std::env::var("MACHI_RAFT_FAILOVERS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut cluster = Cluster::start(3).await;
    let mut leader = cluster.leader(None).await;
    let mut height = 0;
    let started = Instant::now();
    let mut last = 0;
    for n in 0..100 {
        height += 1;
        last = commit(cluster.raft(leader), block_bytes(n, 64 * 1024), height).await;
    }
    let hundred = started.elapsed();
    cluster.wait_applied(last).await;
    eprintln!("100 sequential committed 64 KiB proposals on 3 replicas: {hundred:?}");

    for round in 0..failovers {
        let stopped_at = Instant::now();
        cluster.stop(leader).await;
        let next = cluster.leader(Some(leader)).await;
        height += 1;
        last = commit(cluster.raft(next), block_bytes(1_000 + round as usize, 1_000), height).await;
        eprintln!(
            "failover {round}: leader {leader} stopped, {next} committed after {:?}",
            stopped_at.elapsed()
        );
        cluster.restart(leader).await;
        cluster.wait_applied(last).await;
        let proposals = cluster.running(leader).machine.proposals().len() as u64;
        assert_eq!(proposals, height, "the restarted replica caught up");
        leader = next;
    }
}

/// A refused request: 401 with `code`, and not one byte of a block.
async fn assert_refused(response: reqwest::Response, code: &str, case: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
    let body = response.bytes().await.unwrap();
    assert!(!body.windows(6).any(|w| w == b"block "), "{case}: the answer holds block bytes");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], code, "{case}: {body}");
}

/// `GET /raft/blocks` serves full blocks only to a replica of the set, signing for this
/// replica, now, once: every other request is 401 with its code and no block bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_replica_of_the_set_reads_blocks() {
    let cluster = Cluster::start(1).await;
    cluster.leader(None).await;
    let addr = cluster.replicas[&1].node.raft_addr.clone();
    let blocks: Vec<Vec<u8>> = (0..2).map(|n| block_bytes(n, 2_000)).collect();
    for (n, block) in blocks.iter().enumerate() {
        commit(cluster.raft(1), block.clone(), n as u64 + 1).await;
    }
    cluster.keys.name(2);
    let two = identity(2);
    let path = format!("{}?from=1&to=2", paths::BLOCKS);
    let now = machi_host::now_ms();
    let get = |signer: Identity, to: ReplicaId, time_ms: u64| {
        let (addr, path) = (addr.clone(), path.clone());
        async move { send_signed(&signer, to, time_ms, "GET", &addr, &path, vec![]).await }
    };
    let as_two = || Identity::new(CHAIN.into(), 2, key_of(2));

    assert_refused(
        send_with(&HeaderMap::new(), "GET", &addr, &path, vec![]).await,
        "raft_auth_required",
        "none",
    )
    .await;
    let mut bad_hex = two.sign(1, now, "GET", &path, &[]).headers();
    bad_hex.insert(headers::SIGNATURE, HeaderValue::from_static("zz"));
    assert_refused(send_with(&bad_hex, "GET", &addr, &path, vec![]).await, "raft_auth_malformed", "bad hex")
        .await;
    let mut no_time = two.sign(1, now, "GET", &path, &[]).headers();
    no_time.remove(headers::TIME);
    assert_refused(send_with(&no_time, "GET", &addr, &path, vec![]).await, "raft_auth_malformed", "no time")
        .await;
    let wrong_key = Identity::new(CHAIN.into(), 2, key_of(5));
    assert_refused(get(wrong_key, 1, now).await, "raft_bad_signature", "replica 2's id, another key").await;
    assert_refused(get(Identity::new(CHAIN.into(), 5, key_of(5)), 1, now).await, "raft_unknown_replica", "5")
        .await;
    let stale = now - REQUEST_SKEW_MS_MAX - 1_000;
    assert_refused(get(as_two(), 1, stale).await, "raft_time_skew", "signed too long ago").await;
    let ahead = now + REQUEST_SKEW_MS_MAX + 1_000;
    assert_refused(get(as_two(), 1, ahead).await, "raft_time_skew", "signed in the future").await;
    assert_refused(get(as_two(), 3, now).await, "raft_wrong_receiver", "signed for replica 3").await;
    let other_chain = Identity::new("another-chain".into(), 2, key_of(2));
    assert_refused(get(other_chain, 1, now).await, "raft_bad_signature", "signed for another chain").await;
    let narrower = format!("{}?from=1&to=1", paths::BLOCKS);
    let signed = two.sign(1, now, "GET", &narrower, &[]);
    let widened = send_with(&signed.headers(), "GET", &addr, &path, vec![]).await;
    assert_refused(widened, "raft_bad_signature", "the query changed after signing").await;
    let post = two.sign(1, now, "POST", &path, &[]);
    assert_refused(
        send_with(&post.headers(), "GET", &addr, &path, vec![]).await,
        "raft_bad_signature",
        "method",
    )
    .await;

    // Replica 2, signing for replica 1 now: the blocks, once.
    let signed = two.sign(1, machi_host::now_ms(), "GET", &path, &[]);
    let served = send_with(&signed.headers(), "GET", &addr, &path, vec![]).await;
    assert_eq!(served.status(), StatusCode::OK);
    let served: Vec<Vec<u8>> = postcard::from_bytes(&served.bytes().await.unwrap()).unwrap();
    assert_eq!(served, blocks);
    let replayed = send_with(&signed.headers(), "GET", &addr, &path, vec![]).await;
    assert_refused(replayed, "raft_replayed", "the same request again").await;

    // Retired from the set: refused from then on.
    cluster.keys.0.lock().unwrap().remove(&2);
    assert_refused(get(as_two(), 1, machi_host::now_ms()).await, "raft_unknown_replica", "retired").await;
}

/// An AppendEntries, Vote or snapshot that fails authentication never reaches Raft: the
/// term, the vote and the log stay as they were. The same AppendEntries signed by a
/// replica of the set does reach it (the leader steps down to the higher term).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_raft_message_changes_nothing() {
    let cluster = Cluster::start(1).await;
    cluster.leader(None).await;
    let addr = cluster.replicas[&1].node.raft_addr.clone();
    commit(cluster.raft(1), block_bytes(0, 1_000), 1).await;
    cluster.keys.name(2);
    let state = || {
        let m = cluster.raft(1).metrics().borrow().clone();
        (m.current_term, m.vote, m.last_log_index, m.state, cluster.running(1).machine.proposals().len())
    };
    let before = state();

    let vote = postcard::to_allocvec(&VoteRequest::<ReplicaId>::new(Vote::new(99, 2), None)).unwrap();
    let append = postcard::to_allocvec(&AppendEntriesRequest::<TypeConfig> {
        vote: Vote::new_committed(99, 2),
        prev_log_id: None,
        leader_commit: None,
        entries: vec![],
    })
    .unwrap();
    let harmless = postcard::to_allocvec(&VoteRequest::<ReplicaId>::new(Vote::new(0, 2), None)).unwrap();
    let now = machi_host::now_ms();
    let stranger = Identity::new(CHAIN.into(), 5, key_of(5));
    let impostor = Identity::new(CHAIN.into(), 2, key_of(5));
    for (path, body) in [(paths::VOTE, &vote), (paths::APPEND, &append), (paths::SNAPSHOT, &append)] {
        let none = send_with(&HeaderMap::new(), "POST", &addr, path, body.clone()).await;
        assert_refused(none, "raft_auth_required", path).await;
        let from_stranger = send_signed(&stranger, 1, now, "POST", &addr, path, body.clone()).await;
        assert_refused(from_stranger, "raft_unknown_replica", path).await;
        let from_impostor = send_signed(&impostor, 1, now, "POST", &addr, path, body.clone()).await;
        assert_refused(from_impostor, "raft_bad_signature", path).await;
        let stale = now - REQUEST_SKEW_MS_MAX - 1;
        let late = send_signed(&identity(2), 1, stale, "POST", &addr, path, body.clone()).await;
        assert_refused(late, "raft_time_skew", path).await;
        // Replica 2 signed a harmless body; the one sent is another.
        let signed = identity(2).sign(1, now, "POST", path, &harmless);
        let tampered = send_with(&signed.headers(), "POST", &addr, path, body.clone()).await;
        assert_refused(tampered, "raft_bad_signature", path).await;
    }
    assert_eq!(state(), before, "nothing reached Raft");

    let signed =
        send_signed(&identity(2), 1, machi_host::now_ms(), "POST", &addr, paths::APPEND, append).await;
    assert_eq!(signed.status(), StatusCode::OK);
    let after = state();
    assert_eq!((after.0, after.3), (99, ServerState::Follower), "a replica of the set reaches Raft");
}

/// The digest covers every field, so a request cannot be moved to another chain, sender,
/// receiver, time, nonce, method, path or body; and its layout is pinned.
#[test]
fn the_request_digest_covers_every_field_and_is_pinned() {
    let nonce = [7u8; NONCE_BYTES];
    let base = || request_digest(CHAIN, 1, 2, 1_760_000_000_000, &nonce, "POST", "/raft/append", b"body");
    let variants = [
        request_digest("machi-test2", 1, 2, 1_760_000_000_000, &nonce, "POST", "/raft/append", b"body"),
        request_digest(CHAIN, 3, 2, 1_760_000_000_000, &nonce, "POST", "/raft/append", b"body"),
        request_digest(CHAIN, 1, 3, 1_760_000_000_000, &nonce, "POST", "/raft/append", b"body"),
        request_digest(CHAIN, 1, 2, 1_760_000_000_001, &nonce, "POST", "/raft/append", b"body"),
        request_digest(CHAIN, 1, 2, 1_760_000_000_000, &[8; NONCE_BYTES], "POST", "/raft/append", b"body"),
        request_digest(CHAIN, 1, 2, 1_760_000_000_000, &nonce, "GET", "/raft/append", b"body"),
        request_digest(CHAIN, 1, 2, 1_760_000_000_000, &nonce, "POST", "/raft/vote", b"body"),
        request_digest(CHAIN, 1, 2, 1_760_000_000_000, &nonce, "POST", "/raft/append", b"bodY"),
        // The separators keep the method and the path apart.
        request_digest(CHAIN, 1, 2, 1_760_000_000_000, &nonce, "POST/", "raft/append", b"body"),
    ];
    for (i, variant) in variants.iter().enumerate() {
        assert_ne!(*variant, base(), "variant {i}");
    }
    // The message bytes, spelled out once here as docs/OPERATIONS.md gives them.
    let mut message = b"machi.raft.v1\0".to_vec();
    message.extend_from_slice(&(CHAIN.len() as u16).to_be_bytes());
    message.extend_from_slice(CHAIN.as_bytes());
    message.extend_from_slice(&1u64.to_be_bytes());
    message.extend_from_slice(&2u64.to_be_bytes());
    message.extend_from_slice(&1_760_000_000_000u64.to_be_bytes());
    message.extend_from_slice(&nonce);
    message.extend_from_slice(b"POST\0/raft/append\0");
    message.extend_from_slice(&machi_ledger::sha256(b"body").0);
    assert_eq!(base(), machi_ledger::sha256(&message));
    assert_eq!(base().to_string(), PINNED_DIGEST);
    // Signed by an RFC 8032 key, accepted under the ledger's rule; by another key, not.
    let signed = identity(1).sign(2, 1_760_000_000_000, "POST", "/raft/append", b"body");
    let digest = request_digest(CHAIN, 1, 2, signed.time_ms, &signed.nonce, "POST", "/raft/append", b"body");
    let key = AccountId::of(&key_of(1));
    assert!(machi_ledger::verify_signature(&key, &signed.signature, &digest.0).is_ok());
    let other = AccountId::of(&key_of(2));
    assert!(machi_ledger::verify_signature(&other, &signed.signature, &digest.0).is_err());
}

/// Computed independently: `python3 -c "import hashlib,struct; c=b'machi-test'; m=b'machi.raft.v1\x00'+struct.pack('>H',len(c))+c+struct.pack('>QQQ',1,2,1760000000000)+bytes([7]*16)+b'POST\x00/raft/append\x00'+hashlib.sha256(b'body').digest(); print(hashlib.sha256(m).hexdigest())"`.
const PINNED_DIGEST: &str = "ceb6f41e39419df8385a6b14e4133a8eb243f51bfdc1d6ba2fffb5c8d66e2254";

#[test]
fn the_replay_cache_answers_a_request_once_and_forgets_it_when_it_is_too_old_anyway() {
    let cache = ReplayCache::default();
    let (a, b) = (Hash32([1; 32]), Hash32([2; 32]));
    let t = 1_760_000_000_000;
    assert_eq!(cache.admit(a, t, t), Ok(()));
    assert_eq!(cache.admit(a, t, t + 10), Err(Refusal::Replayed));
    assert_eq!(cache.admit(b, t, t + 10), Ok(()));
    assert_eq!(cache.len(), 2);
    // Past its time plus the skew a request is refused for its age: it leaves the cache.
    let later = t + REQUEST_SKEW_MS_MAX + REPLAY_PRUNE_EVERY_MS + 1;
    assert_eq!(cache.admit(Hash32([3; 32]), later, later), Ok(()));
    assert_eq!(cache.len(), 1);
}

/// A request of every size up to the largest AppendEntries is signed over its whole
/// body: the receiver's check accepts it as signed and refuses it with its last byte
/// changed. (What signing and checking cost is in docs/PERFORMANCE.md, from the machine's
/// own SHA-256 and Ed25519 rates that `machi-bench limits` measures.)
#[test]
fn a_request_of_any_size_is_signed_over_its_whole_body() {
    let signer = identity(1);
    let key = signer.account();
    assert_eq!(key, AccountId::of(&key_of(1)));
    for len in [0usize, 1_000, 64 * 1024, 4 * 1024 * 1024] {
        let mut body = vec![7u8; len];
        let s = signer.sign(2, 1_760_000_000_000, "POST", paths::APPEND, &body);
        let digest = request_digest(CHAIN, 1, 2, s.time_ms, &s.nonce, "POST", paths::APPEND, &body);
        assert!(machi_ledger::verify_signature(&key, &s.signature, &digest.0).is_ok(), "{len} bytes");
        if let Some(last) = body.last_mut() {
            *last ^= 1;
            let digest = request_digest(CHAIN, 1, 2, s.time_ms, &s.nonce, "POST", paths::APPEND, &body);
            assert!(machi_ledger::verify_signature(&key, &s.signature, &digest.0).is_err(), "{len} bytes");
        }
    }
}

/// A full replay cache refuses new requests with `raft_busy` (503) rather than forgetting
/// one that could still be replayed, and takes them again once old ones have expired.
#[test]
fn a_full_replay_cache_is_busy_until_its_requests_expire() {
    let cache = ReplayCache::default();
    let t = 1_760_000_000_000;
    let digest = |i: usize| {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(i as u64).to_be_bytes());
        Hash32(bytes)
    };
    for i in 0..REPLAY_CACHE_ENTRIES_MAX {
        assert_eq!(cache.admit(digest(i), t, t), Ok(()), "request {i}");
    }
    assert_eq!(cache.admit(digest(REPLAY_CACHE_ENTRIES_MAX), t, t + 1), Err(Refusal::Busy));
    assert_eq!(Refusal::Busy.into_response().status(), StatusCode::SERVICE_UNAVAILABLE);
    let later = t + REQUEST_SKEW_MS_MAX + 1;
    assert_eq!(cache.admit(digest(REPLAY_CACHE_ENTRIES_MAX), later, later), Ok(()));
    assert_eq!(cache.len(), 1);
}
