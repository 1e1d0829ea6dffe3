//! The node's handle on replication. It starts openraft with the node's Raft log, state
//! machine and network; proposes the producer's blocks; says whether this replica may
//! produce now (it leads, and has applied everything committed before its term began);
//! and where the leader is, for followers that forward writes.
//!
//! A chain that names no replicas runs as a cluster of one (replica 1): the same path,
//! with one voter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use machi_ledger::{AccountId, Block, Replica};
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Raft, ServerState};
use tokio::sync::mpsc;

use super::machine::ChainMachine;
use super::network::{BlockSource, HttpNetwork, Identity, ReplicaKeys, SnapshotReceiver};
use super::{
    log_store::RaftLog, raft_config, ApplyOutcome, BlockProposal, ReplicaId, ReplicaNode, TypeConfig,
};
use crate::chain::Chain;
use crate::shared::{OwnProposal, Shared};

/// Longest the producer waits for a proposed block to be committed by a majority and
/// applied. Past it the block's clients are told it is not confirmed (it may still commit;
/// the same transaction sent again learns its outcome) and the producer rebuilds its
/// state from the log. Well above a failover (~1-2 s), so a healthy cluster never hits it.
pub(crate) const PROPOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the leader compares the Raft membership with the replica set on chain.
const RECONCILE_EVERY: Duration = Duration::from_millis(500);
/// A request from a replica this one does not know starts a catch-up from the replicas it
/// does know (`NodeSide::catch_up`) at most this often.
const CATCH_UP_EVERY_MS: u64 = 10_000;
/// Blocks asked for in one pull while catching up (the answer is also capped in bytes).
const CATCH_UP_PAGE_BLOCKS: u64 = 1_000;

/// This replica and the replicas it starts with.
#[derive(Clone, Debug)]
pub(crate) struct Members {
    pub(crate) me: ReplicaId,
    pub(crate) nodes: BTreeMap<ReplicaId, (ReplicaNode, bool)>,
}

impl Members {
    /// This replica in the chain's replica set, found by its producer key; or, for a chain
    /// that names none, a cluster of one; or, for a replica the town is adding (not named
    /// on chain yet), `joining` as its id: it waits for the leader to add it.
    pub(crate) fn of(
        replicas: &[Replica],
        producer: &AccountId,
        joining: Option<ReplicaId>,
    ) -> anyhow::Result<Members> {
        if replicas.is_empty() {
            let me = ReplicaNode { name: "node".into(), api_addr: String::new(), raft_addr: String::new() };
            return Ok(Members { me: 1, nodes: BTreeMap::from([(1, (me, true))]) });
        }
        let nodes = replicas.iter().map(|r| (r.id, (node_of(r), r.voter))).collect();
        if let Some(me) = replicas.iter().find(|r| r.producer == *producer) {
            return Ok(Members { me: me.id, nodes });
        }
        let me = joining.with_context(|| {
            format!("this replica's producer key {producer} is not named in the chain's replicas")
        })?;
        anyhow::ensure!(
            !replicas.iter().any(|r| r.id == me),
            "replica id {me} belongs to another replica of this chain"
        );
        Ok(Members { me, nodes })
    }

    /// Whether this replica is a voter of the set it starts with.
    fn starts_as_voter(&self) -> bool {
        self.nodes.get(&self.me).is_some_and(|(_, voter)| *voter)
    }

    /// This replica's addresses (empty while it joins: the leader learns them from the chain).
    pub(crate) fn node(&self) -> ReplicaNode {
        self.nodes.get(&self.me).map(|(node, _)| node.clone()).unwrap_or_else(|| ReplicaNode {
            name: format!("replica {} (joining)", self.me),
            api_addr: String::new(),
            raft_addr: String::new(),
        })
    }

    fn voters(&self) -> BTreeMap<ReplicaId, ReplicaNode> {
        self.nodes
            .iter()
            .filter(|(_, (_, voter))| *voter)
            .map(|(id, (node, _))| (*id, node.clone()))
            .collect()
    }
}

pub(crate) fn node_of(replica: &Replica) -> ReplicaNode {
    ReplicaNode {
        name: replica.name.clone(),
        api_addr: replica.api_addr.clone(),
        raft_addr: replica.raft_addr.clone(),
    }
}

/// Where a write goes.
#[derive(Clone, Debug)]
pub(crate) enum Route {
    Here,
    Leader(ReplicaId, ReplicaNode),
    NoLeader,
}

/// What became of a proposed block.
#[derive(Debug)]
pub(crate) enum Proposed {
    /// Committed by a majority and appended to this replica's block log.
    Committed,
    /// The block log could not be written: nothing was committed here.
    StorageFailed(std::io::Error),
    /// Not confirmed (leadership lost, or not in time): it may still commit.
    Unconfirmed(String),
}

/// This node's replication, once it has started (Raft starts a moment after the node
/// opens): what the HTTP handlers, the producer and the replica listener reach it by.
pub(crate) struct Replicas {
    shared: Arc<Shared>,
    replication: std::sync::OnceLock<Arc<Replication>>,
    side: std::sync::OnceLock<Arc<NodeSide>>,
    started: tokio::sync::Notify,
}

impl Replicas {
    pub(crate) fn new(shared: Arc<Shared>) -> Replicas {
        Replicas {
            shared,
            replication: std::sync::OnceLock::new(),
            side: std::sync::OnceLock::new(),
            started: tokio::sync::Notify::new(),
        }
    }

    /// Replication has started.
    pub(crate) fn started(&self, replication: Arc<Replication>, side: Arc<NodeSide>) {
        let _ = self.replication.set(replication);
        let _ = self.side.set(side);
        self.started.notify_waiters();
    }

    /// Replication could not start (the replica halted, saying why).
    pub(crate) fn failed(&self) {
        self.started.notify_waiters();
    }

    pub(crate) fn get(&self) -> Option<&Arc<Replication>> {
        self.replication.get()
    }

    /// Replication once it has started; `None` if it could not start.
    pub(crate) async fn ready(&self) -> Option<(Arc<Replication>, Arc<NodeSide>)> {
        loop {
            let started = self.started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            if let (Some(replication), Some(side)) = (self.replication.get(), self.side.get()) {
                return Some((replication.clone(), side.clone()));
            }
            if self.shared.is_halted() {
                return None;
            }
            started.await;
        }
    }

    /// Where a write goes now, waiting up to `wait` for replication to start and a leader
    /// to be known (a node that just opened, or an election).
    pub(crate) async fn route(&self, wait: Duration) -> Route {
        if self.shared.is_halted() {
            return Route::NoLeader;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let started = self.started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if self.get().is_none()
            && tokio::time::timeout_at(deadline, started).await.is_err()
            && self.get().is_none()
        {
            return Route::NoLeader;
        }
        let Some(replication) = self.get() else { return Route::NoLeader };
        replication.route(deadline.saturating_duration_since(tokio::time::Instant::now())).await
    }

    /// This replica's part: `halted`, or its Raft role.
    pub(crate) fn role(&self) -> &'static str {
        if self.shared.is_halted() {
            return "halted";
        }
        self.get().map_or("follower", |r| r.role())
    }
}

pub(crate) struct Replication {
    pub(crate) raft: Raft<TypeConfig>,
    pub(crate) members: Members,
    pub(crate) network: HttpNetwork,
    /// The term in which this replica leads and has applied everything before its first
    /// entry: only then does its producer make blocks. `u64::MAX` when none.
    ready_term: tokio::sync::watch::Sender<u64>,
    runtime: tokio::runtime::Handle,
}

impl Replication {
    /// Starts Raft on this replica (in a tokio runtime). The Raft log lives in
    /// `base/raft/`. A fresh voter of the starting set initialises the cluster with the
    /// set's voters; learners are added by the leader. `key`: this replica's key (its
    /// producer key, named for it on chain), which signs its requests to the others.
    pub(crate) async fn start(
        shared: Arc<Shared>,
        base: &Path,
        members: Members,
        key: machi_ledger::SigningKey,
    ) -> anyhow::Result<(Arc<Replication>, Arc<NodeSide>)> {
        let raft_dir = base.join("raft");
        std::fs::create_dir_all(&raft_dir).with_context(|| format!("creating {}", raft_dir.display()))?;
        let log = {
            let base = base.to_path_buf();
            tokio::task::spawn_blocking(move || RaftLog::open(&base)).await??
        };
        let machine = ChainMachine::open(shared.clone(), &raft_dir)?;
        let identity = Arc::new(Identity::new(shared.chain_id.clone(), members.me, key));
        let network = HttpNetwork::new(identity, members.node())?;
        let config = Arc::new(raft_config(&shared.chain_id));
        let raft = Raft::new(members.me, config, network.clone(), log, machine).await?;
        if !raft.is_initialized().await? && members.starts_as_voter() {
            match raft.initialize(members.voters()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(e).context("initialising the cluster"),
            }
        }
        let replication = Arc::new(Replication {
            raft,
            members,
            network,
            ready_term: tokio::sync::watch::Sender::new(u64::MAX),
            runtime: tokio::runtime::Handle::current(),
        });
        machi_host::supervise::Part::vital("leadership watch")
            .spawn_task(watch_leadership(replication.clone(), shared.clone()));
        machi_host::supervise::Part::vital("replica set reconciliation")
            .spawn_task(reconcile(replication.clone(), shared.clone()));
        let known = tokio::sync::watch::Sender::new(replica_keys(&shared.chain.read().await.state.replicas));
        let side = Arc::new(NodeSide {
            shared: shared.clone(),
            replication: Arc::downgrade(&replication),
            known,
            catch_up_ms: AtomicU64::new(0),
            catching_up: Arc::new(AtomicBool::new(false)),
        });
        machi_host::supervise::Part::vital("replica set watch")
            .spawn_task(watch_replica_set(Arc::downgrade(&side), shared));
        Ok((replication, side))
    }

    /// This replica's part in Raft: `leader`, `follower`, `learner` or `candidate`.
    pub(crate) fn role(&self) -> &'static str {
        match self.raft.metrics().borrow().state {
            ServerState::Leader => "leader",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Follower | ServerState::Shutdown => "follower",
        }
    }

    /// The current term and the leader this replica knows of (itself included).
    pub(crate) fn term_and_leader(&self) -> (u64, Option<ReplicaId>) {
        let metrics = self.raft.metrics().borrow().clone();
        (metrics.current_term, metrics.current_leader)
    }

    /// Whether this replica's producer may make a block now.
    pub(crate) fn can_produce(&self) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        metrics.state == ServerState::Leader && *self.ready_term.borrow() == metrics.current_term
    }

    /// The leader this replica knows of, other than itself.
    pub(crate) fn leader(&self) -> Option<(ReplicaId, ReplicaNode)> {
        let metrics = self.raft.metrics().borrow().clone();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader)?.clone();
        Some((leader, node))
    }

    /// Proposes `block`, which the producer already applied to `chain`'s state (it holds
    /// the chain's lock), and waits until it is committed and appended, or not confirmed.
    /// Called from the producer's thread.
    pub(crate) fn propose(&self, shared: &Shared, chain: &mut Chain, block: &Block) -> Proposed {
        let proposal = match BlockProposal::new(block) {
            Ok(proposal) => proposal,
            Err(e) => return Proposed::Unconfirmed(e.to_string()),
        };
        let bytes = proposal.block.clone();
        let (append, mut requests) = mpsc::channel(1);
        *shared.own.lock().expect("own proposal") = Some(OwnProposal { hash: block.hash(), append });
        let (written, appended) = self.runtime.block_on(async {
            let write = self.raft.client_write(proposal);
            let deadline = tokio::time::sleep(PROPOSE_TIMEOUT);
            tokio::pin!(write, deadline);
            let mut appended = None;
            loop {
                tokio::select! {
                    biased;
                    Some(reply) = requests.recv() => {
                        let result = chain.log.append(&bytes);
                        let failed = result.is_err();
                        appended = Some(result.as_ref().map(|_| ()).map_err(|e| e.kind()));
                        let _ = reply.send(result);
                        if failed {
                            // The state machine applies the block again once the producer
                            // has rebuilt the state and let go of the chain.
                            break (None, appended);
                        }
                    }
                    written = &mut write => break (Some(written), appended),
                    () = &mut deadline => break (None, appended),
                }
            }
        });
        *shared.own.lock().expect("own proposal") = None;
        match (appended, written) {
            (Some(Ok(())), _) => Proposed::Committed,
            (Some(Err(kind)), _) => Proposed::StorageFailed(std::io::Error::from(kind)),
            (None, Some(Ok(response))) => {
                // Applied, but not as this replica's block: skipped as stale.
                Proposed::Unconfirmed(format!("the block was {:?}", response.data))
            }
            (None, Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))))) => {
                Proposed::Unconfirmed("this replica no longer leads".into())
            }
            (None, Some(Err(e))) => Proposed::Unconfirmed(e.to_string()),
            (None, None) => Proposed::Unconfirmed(format!("not confirmed within {PROPOSE_TIMEOUT:?}")),
        }
    }

    /// Waits up to `wait` until this replica has applied every entry in its Raft log, so
    /// that a block the producer makes follows every committed one. False if it has not.
    pub(crate) fn caught_up(&self, wait: Duration) -> bool {
        let last = self.raft.metrics().borrow().last_log_index;
        self.runtime.block_on(async {
            self.raft.wait(Some(wait)).applied_index_at_least(last, "entries applied").await.is_ok()
        })
    }

    /// Where a write should go now: here, to the leader, or nowhere (no leader within
    /// `wait`). Waits while an election or this replica's first moments as leader run.
    pub(crate) async fn route(&self, wait: Duration) -> Route {
        let deadline = tokio::time::Instant::now() + wait;
        let mut metrics = self.raft.metrics();
        let mut ready = self.ready_term.subscribe();
        loop {
            if self.can_produce() {
                return Route::Here;
            }
            if let Some((id, node)) = self.leader().filter(|(id, _)| *id != self.members.me) {
                return Route::Leader(id, node);
            }
            tokio::select! {
                changed = metrics.changed() => if changed.is_err() { return Route::NoLeader },
                _ = ready.changed() => {}
                () = tokio::time::sleep_until(deadline) => return Route::NoLeader,
            }
        }
    }

    pub(crate) async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("stopping Raft: {e}");
        }
    }
}

/// Marks this replica ready to produce once it leads and has applied everything committed
/// before its term (`ensure_linearizable` waits for that); keeps the leader gauge.
async fn watch_leadership(replication: Arc<Replication>, shared: Arc<Shared>) {
    let mut metrics = replication.raft.metrics();
    loop {
        let (state, term) = {
            let m = metrics.borrow_and_update();
            (m.state, m.current_term)
        };
        let leads = state == ServerState::Leader;
        if leads && *replication.ready_term.borrow() != term {
            match replication.raft.ensure_linearizable().await {
                Ok(_) => {
                    replication.ready_term.send_replace(term);
                    tracing::info!("replica {} leads in term {term}", replication.members.me);
                }
                Err(e) => tracing::debug!("not ready to lead yet: {e}"),
            }
        }
        shared.metrics.leader.store(u64::from(replication.can_produce()), Ordering::Relaxed);
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// On the leader: brings the Raft membership in line with the replica set on chain, one
/// change at a time — new replicas join as learners, voters are promoted once added,
/// replicas the town retired are removed.
async fn reconcile(replication: Arc<Replication>, shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(RECONCILE_EVERY).await;
        if shared.stopping.load(Ordering::Relaxed) {
            return;
        }
        if !replication.can_produce() {
            continue;
        }
        let wanted = shared.chain.read().await.state.replicas.clone();
        if wanted.is_empty() {
            continue;
        }
        if let Err(e) = reconcile_once(&replication.raft, &wanted).await {
            tracing::warn!("bringing the replicas in line with the chain: {e}");
        }
    }
}

async fn reconcile_once(raft: &Raft<TypeConfig>, wanted: &[Replica]) -> anyhow::Result<()> {
    let membership = raft.metrics().borrow().membership_config.membership().clone();
    let present: BTreeSet<ReplicaId> = membership.nodes().map(|(id, _)| *id).collect();
    let voters: BTreeSet<ReplicaId> = membership.voter_ids().collect();
    if let Some(new) = wanted.iter().find(|r| !present.contains(&r.id)) {
        tracing::info!("adding replica {} ({}) as a learner", new.id, new.name);
        raft.add_learner(new.id, node_of(new), false).await?;
        return Ok(());
    }
    let wanted_voters: BTreeSet<ReplicaId> = wanted.iter().filter(|r| r.voter).map(|r| r.id).collect();
    if wanted_voters != voters {
        tracing::info!("voters become {wanted_voters:?} (were {voters:?})");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(wanted_voters), false).await?;
        return Ok(());
    }
    let retired: BTreeSet<ReplicaId> =
        present.iter().filter(|id| !wanted.iter().any(|r| r.id == **id)).copied().collect();
    if !retired.is_empty() {
        tracing::info!("removing retired replicas {retired:?}");
        raft.change_membership(ChangeMembers::RemoveNodes(retired), false).await?;
    }
    Ok(())
}

/// What the replica-to-replica routes need of the node: its blocks for replicas that lag,
/// catching up by snapshot, and whom to take requests from.
pub(crate) struct NodeSide {
    shared: Arc<Shared>,
    replication: std::sync::Weak<Replication>,
    /// The chain's replica set as last read (`watch_replica_set`), for when the chain is
    /// locked.
    known: tokio::sync::watch::Sender<Arc<BTreeMap<ReplicaId, AccountId>>>,
    /// When the last catch-up started (ms), and whether one runs.
    catch_up_ms: AtomicU64,
    catching_up: Arc<AtomicBool>,
}

fn replica_keys(replicas: &[Replica]) -> Arc<BTreeMap<ReplicaId, AccountId>> {
    Arc::new(replicas.iter().map(|r| (r.id, r.producer)).collect())
}

/// Keeps `NodeSide::known` at the replica set of the last applied block, until the node
/// closes.
async fn watch_replica_set(side: std::sync::Weak<NodeSide>, shared: Arc<Shared>) {
    let (mut applied, mut closing) = (shared.applied.subscribe(), shared.closing.subscribe());
    loop {
        tokio::select! {
            changed = applied.changed() => if changed.is_err() { return },
            _ = closing.wait_for(|closing| *closing) => return,
        }
        let keys = replica_keys(&shared.chain.read().await.state.replicas);
        let Some(side) = side.upgrade() else { return };
        side.known.send_if_modified(|known| {
            let changed = *known != keys;
            *known = keys;
            changed
        });
    }
}

impl ReplicaKeys for NodeSide {
    /// From the chain's replica set as this replica applied it: read at once when the
    /// chain is free; while it is locked (the producer holds it until its block commits,
    /// a block is being applied) as of the last applied block.
    fn key_of(&self, id: ReplicaId) -> Option<AccountId> {
        match self.shared.chain.try_read() {
            Ok(chain) => chain.state.replicas.iter().find(|r| r.id == id).map(|r| r.producer),
            Err(_) => self.known.borrow().get(&id).copied(),
        }
    }

    /// Replica `id` may be named in blocks this replica has not applied (it was stopped
    /// while the town changed the set, or it started from the genesis): it catches up from
    /// the replicas it knows, at most every `CATCH_UP_EVERY_MS`, one catch-up at a time.
    fn unknown(&self, id: ReplicaId) {
        let now = machi_host::now_ms();
        let last = self.catch_up_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < CATCH_UP_EVERY_MS
            || self.catch_up_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err()
            || self.catching_up.swap(true, Ordering::AcqRel)
        {
            return;
        }
        tracing::info!(
            "replica {id} is not in the replica set this replica has applied: catching up from the replicas it \
             knows"
        );
        let (shared, replication, running) =
            (self.shared.clone(), self.replication.clone(), self.catching_up.clone());
        tokio::spawn(async move {
            catch_up(&shared, &replication).await;
            running.store(false, Ordering::Release);
        });
    }
}

/// Pulls the blocks past this replica's tip from each replica of the set it applied, and
/// verifies and appends them as committed blocks (every block on another replica's block
/// log is committed). A block that does not verify is not applied, and ends the catch-up
/// from that replica: the answer is not authenticated, so it is not a reason to halt.
async fn catch_up(shared: &Arc<Shared>, replication: &std::sync::Weak<Replication>) {
    let others: Vec<Replica> = shared.chain.read().await.state.replicas.clone();
    for other in others {
        loop {
            let Some(replication) = replication.upgrade() else { return };
            if other.id == replication.members.me || shared.stopping.load(Ordering::Relaxed) {
                break;
            }
            let height = shared.chain.read().await.head.height;
            let to = height.saturating_add(CATCH_UP_PAGE_BLOCKS);
            let blocks =
                match replication.network.pull_blocks(other.id, &node_of(&other), height + 1, to).await {
                    Ok(blocks) if !blocks.is_empty() => blocks,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::info!("catching up from replica {}: {e}", other.id);
                        break;
                    }
                };
            if let Err(reason) = apply_pulled(shared, blocks, false).await {
                tracing::warn!("catching up from replica {}: {reason}", other.id);
                break;
            }
        }
    }
}

/// Verifies and appends blocks pulled from another replica, in order. A block that does
/// not verify halts this replica when `halt` (the leader's snapshot says it is committed).
async fn apply_pulled(shared: &Arc<Shared>, blocks: Vec<Vec<u8>>, halt: bool) -> Result<(), String> {
    for bytes in blocks {
        let shared = shared.clone();
        let applied = tokio::task::spawn_blocking(move || {
            let block = BlockProposal { block: bytes }.decode().map_err(|e| e.to_string())?;
            match super::machine::apply_committed(&shared, &block) {
                Ok(ApplyOutcome::Applied { .. }) => Ok(()),
                Ok(other) => Err(format!("a pulled block did not follow the tip ({other:?})")),
                Err(super::machine::Refused::Halt(reason)) => {
                    if halt {
                        let height = block.header.height;
                        shared.halt(crate::shared::Halt { height, log_index: 0, reason: reason.clone() });
                    }
                    Err(reason)
                }
                Err(super::machine::Refused::Storage(e)) => Err(e.to_string()),
            }
        })
        .await
        .map_err(|e| e.to_string())?;
        applied?;
    }
    Ok(())
}

impl BlockSource for NodeSide {
    fn blocks(&self, from: u64, to: u64, bytes_max: usize) -> std::io::Result<Vec<Vec<u8>>> {
        let chain = self.shared.chain.blocking_read();
        let log = &chain.log;
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        for height in from..=to.min(chain.head.height) {
            let record = log.read(height)?;
            if !out.is_empty() && bytes + record.len() > bytes_max {
                break;
            }
            bytes += record.len();
            out.push(record);
        }
        Ok(out)
    }
}

impl SnapshotReceiver for NodeSide {
    /// Pulls the blocks from this replica's tip up to the snapshot's tip from the leader,
    /// verifies and appends each (as a committed block is applied), then installs it.
    async fn receive(
        &self,
        vote: openraft::Vote<ReplicaId>,
        meta: openraft::SnapshotMeta<ReplicaId, ReplicaNode>,
        tip: super::ChainTip,
        leader_id: ReplicaId,
        leader: ReplicaNode,
    ) -> Result<openraft::raft::SnapshotResponse<ReplicaId>, super::network::SnapshotRefused> {
        use super::network::SnapshotRefused;
        let replication =
            self.replication.upgrade().ok_or_else(|| SnapshotRefused::NotInstalled("stopping".into()))?;
        loop {
            let (height, hash) = {
                let chain = self.shared.chain.read().await;
                (chain.head.height, chain.hashes.get(tip.height as usize).copied())
            };
            if height >= tip.height {
                if hash != Some(tip.hash) {
                    let reason =
                        format!("this replica's block {} is not the leader's {}", tip.height, tip.hash);
                    self.shared.halt(crate::shared::Halt {
                        height: tip.height,
                        log_index: 0,
                        reason: reason.clone(),
                    });
                    return Err(SnapshotRefused::NotInstalled(reason));
                }
                break;
            }
            let blocks = replication
                .network
                .pull_blocks(leader_id, &leader, height + 1, tip.height)
                .await
                .map_err(|e| SnapshotRefused::NotInstalled(e.to_string()))?;
            apply_pulled(&self.shared, blocks, true).await.map_err(SnapshotRefused::NotInstalled)?;
        }
        super::network::install(&replication.raft, vote, meta, tip).await
    }
}
