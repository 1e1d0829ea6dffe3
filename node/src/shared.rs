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
