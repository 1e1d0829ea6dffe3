//! What the node's parts share: `Shared` (the chain, events, metrics, clock, a halt) for
//! the HTTP handlers, the producer, the checkpoint writer and the replica's state
//! machine; and `Submission`, what a handler hands the producer. Everything above imports
//! this; it imports none of them.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use machi_api::{TxCode, TxEvent, TxResultView, TxStatus};
use machi_ledger::{AccountId, Block, Outcome, TxBody, VerifiedTx};
use tokio::sync::{broadcast, oneshot};

use crate::chain::{Chain, Clock};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::storage::LogFile;

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
    /// Whether this replica halted (`halt`).
    pub(crate) fn is_halted(&self) -> bool {
        self.halted.lock().expect("halted").is_some()
    }

    /// After a failed write the in-memory state has the failed block applied: throw it away
    /// and rebuild from what is durable.
    pub(crate) fn recover(&self, chain: &mut Chain) {
        let file = match (self.reopen_log)() {
            Ok(file) => file,
            Err(e) => panic!("block log cannot be reopened after a failed write: {e}"),
        };
        match Chain::open(file, Some(&self.index)) {
            Ok(fresh) => *chain = fresh,
            Err(e) => panic!("state cannot be rebuilt after a failed write: {e:#}"),
        }
    }

    /// A block was appended: readers waiting on its height, and event streams, hear of it.
    pub(crate) fn publish_events(&self, block: &Block, involved: Vec<Vec<AccountId>>) {
        self.applied.send_replace(block.header.height);
        if self.events.receiver_count() == 0 {
            return;
        }
        let h = &block.header;
        let events: Vec<TxEvent> = block
            .txs
            .iter()
            .zip(&block.outcomes)
            .zip(involved)
            .filter_map(|((tx, outcome), accounts)| {
                let body = TxBody::decode(&tx.body).ok()?;
                let (status, reason) = match outcome {
                    Outcome::Applied => (TxStatus::Applied, None),
                    Outcome::Rejected(r) => (TxStatus::Rejected, Some(TxCode::from(*r))),
                };
                Some(TxEvent {
                    tx_id: tx.id(&h.chain_id),
                    height: h.height,
                    timestamp_ms: h.timestamp_ms,
                    kind: body.action.kind_name().to_string(),
                    status,
                    reason,
                    signer: tx.signer,
                    accounts,
                    body,
                })
            })
            .collect();
        let _ = self.events.send(Arc::new(events));
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

/// One client request's worth of verified transactions waiting for a block.
pub(crate) struct Submission {
    pub(crate) txs: Vec<VerifiedTx>,
    pub(crate) reply: oneshot::Sender<Vec<TxResultView>>,
}
