//! What the node's parts share: `Shared` (the chain, events, metrics, clock) for the HTTP
//! handlers, the producer and the checkpoint writer; `AppState`, what every handler
//! holds; and `Submission`, what a handler hands the producer. Both `node` (which starts
//! everything) and `api` (which serves it) import this; it imports neither.

use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use machi_api::{TxEvent, TxResultView};
use machi_ledger::VerifiedTx;
use tokio::sync::{broadcast, oneshot};

use crate::chain::{Chain, Clock};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::storage::LogFile;
use crate::verify::Verifier;

/// Opens the block log file again (after a failed write the producer rebuilds from it).
pub type ReopenLog = Box<dyn Fn() -> std::io::Result<Box<dyn LogFile>> + Send + Sync>;

/// What the HTTP handlers, the producer and the checkpoint writer share.
pub struct Shared {
    pub chain_id: String,
    /// Async-aware: a handler waiting for the producer parks its task, not a worker thread.
    pub chain: tokio::sync::RwLock<Chain>,
    pub index: Index,
    pub events: broadcast::Sender<Arc<Vec<TxEvent>>>,
    pub metrics: Metrics,
    pub stopping: AtomicBool,
    /// Becomes true when the HTTP server starts shutting down: open event streams end
    /// then, so a graceful shutdown is not held up by subscribers.
    pub closing: tokio::sync::watch::Sender<bool>,
    pub reopen_log: ReopenLog,
    pub clock: Arc<dyn Clock>,
    /// The block this replica's producer proposed and waits for (`replica::machine`).
    pub(crate) own: std::sync::Mutex<Option<OwnProposal>>,
    /// Set when this replica refused a committed block: it applies nothing more.
    pub halted: std::sync::Mutex<Option<Halt>>,
    /// Replication, once Raft has started (a moment after the node opens).
    pub(crate) replication: std::sync::OnceLock<Arc<crate::replica::replication::Replication>>,
    /// What the replica-to-replica routes ask of the node.
    pub(crate) raft_side: std::sync::OnceLock<Arc<crate::replica::replication::NodeSide>>,
    /// Woken once replication has started.
    pub(crate) replication_started: tokio::sync::Notify,
    /// The height of the last block applied here (reads with `?min_height=` wait on it).
    pub(crate) applied: tokio::sync::watch::Sender<u64>,
    /// For writes a follower sends on to the leader.
    pub(crate) forwarding: reqwest::Client,
}

/// The producer's proposed block: when it comes back committed, the state machine asks
/// the producer (which holds the chain's lock) to append it, through `append`.
pub(crate) struct OwnProposal {
    pub(crate) hash: machi_ledger::Hash32,
    pub(crate) append: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<std::io::Result<()>>>,
}

/// Why this replica stopped applying blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Halt {
    /// The block it refused.
    pub height: u64,
    /// Its Raft log index.
    pub log_index: u64,
    pub reason: String,
}

impl Shared {
    pub(crate) fn replication(&self) -> Option<&Arc<crate::replica::replication::Replication>> {
        self.replication.get()
    }

    /// Where a write goes now, waiting up to `wait` for replication to start and a leader
    /// to be known (a node that just opened, or an election).
    pub(crate) async fn route(&self, wait: std::time::Duration) -> crate::replica::replication::Route {
        use crate::replica::replication::Route;
        if self.halted.lock().expect("halted").is_some() {
            return Route::NoLeader;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let started = self.replication_started.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if self.replication().is_none()
            && tokio::time::timeout_at(deadline, started).await.is_err()
            && self.replication().is_none()
        {
            return Route::NoLeader;
        }
        let Some(replication) = self.replication() else { return Route::NoLeader };
        replication.route(deadline.saturating_duration_since(tokio::time::Instant::now())).await
    }

    /// Replication once it has started; `None` if it could not start (the replica is then
    /// halted, saying why).
    pub(crate) async fn replication_ready(
        &self,
    ) -> Option<(Arc<crate::replica::replication::Replication>, Arc<crate::replica::replication::NodeSide>)>
    {
        loop {
            let started = self.replication_started.notified();
            tokio::pin!(started);
            started.as_mut().enable();
            if let (Some(replication), Some(side)) = (self.replication.get(), self.raft_side.get()) {
                return Some((replication.clone(), side.clone()));
            }
            if self.halted.lock().expect("halted").is_some() {
                return None;
            }
            started.await;
        }
    }

    /// This replica's part: `halted`, or its Raft role.
    pub(crate) fn role(&self) -> &'static str {
        if self.halted.lock().expect("halted").is_some() {
            return "halted";
        }
        self.replication().map_or("follower", |r| r.role())
    }

    /// Waits up to `wait` until this replica has applied block `height`; false if not.
    pub(crate) async fn applied_at_least(&self, height: u64, wait: std::time::Duration) -> bool {
        let mut applied = self.applied.subscribe();
        tokio::time::timeout(wait, applied.wait_for(|h| *h >= height)).await.is_ok_and(|r| r.is_ok())
    }

    /// Stops this replica at a block that does not verify, loudly.
    pub(crate) fn halt(&self, halt: Halt) {
        tracing::error!(
            "HALTED: this replica refuses committed block {} (log index {}): {}; it applies nothing more \
             and serves the state as of block {}",
            halt.height,
            halt.log_index,
            halt.reason,
            halt.height.saturating_sub(1)
        );
        self.metrics.halted.store(1, std::sync::atomic::Ordering::Relaxed);
        *self.halted.lock().expect("halted") = Some(halt);
    }
}

/// What every HTTP handler holds: the shared state, the way to the producer, and the
/// signature verifier.
#[derive(Clone)]
pub(crate) struct AppState {
    pub shared: Arc<Shared>,
    pub submit: SyncSender<Submission>,
    pub verifier: Verifier,
}

/// One client request's worth of verified transactions waiting for a block.
pub(crate) struct Submission {
    pub(crate) txs: Vec<VerifiedTx>,
    pub(crate) reply: oneshot::Sender<Vec<TxResultView>>,
}
