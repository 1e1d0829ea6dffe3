//! Opening a data folder, starting the producer and verifier threads, and serving HTTP.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{bail, Context};
use machi_host::supervise::Part;
use machi_ledger::{SignedTx, SigningKey};
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::api::AppState;
use crate::chain::{self, Chain, Clock, SystemClock};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::replica::replication::{Members, Replicas, Replication};
use crate::shared::{ReopenLog, Shared, Submission};
use crate::storage::{DiskFile, LogFile};

/// Submissions waiting for the producer; beyond this clients are told the node is busy.
pub(crate) const SUBMIT_QUEUE_MAX: usize = 4_096;
const EVENTS_QUEUE_MAX: usize = 1_024;

pub struct Node {
    pub shared: Arc<Shared>,
    pub(crate) replicas: Arc<Replicas>,
    producer: machi_ledger::AccountId,
    submit: SyncSender<Submission>,
    verifier: crate::verify::Verifier,
    readers: Arc<crate::access::Readers>,
    attestor: Arc<crate::api::verifiable::Attestor>,
    threads: Vec<JoinHandle<()>>,
}

impl Node {
    /// Opens `data_dir` (after `init`): rebuilds state and every account's history from
    /// the block log (from the index's state checkpoint when it matches the log) and
    /// starts the producer, the verifiers and replication. Refuses a broken chain.
    pub fn open(data_dir: &Path) -> anyhow::Result<Node> {
        Node::open_with_clock(data_dir, Arc::new(SystemClock))
    }

    /// Opens `data_dir` with block times from `clock`.
    pub fn open_with_clock(data_dir: &Path, clock: Arc<dyn Clock>) -> anyhow::Result<Node> {
        let producer = crate::keys::read_key(&data_dir.join("keys").join("producer.key"))?;
        let log = chain::log_path(data_dir);
        let converting = std::time::Instant::now();
        if let Some(blocks) = crate::storage::convert_v1(&log)
            .with_context(|| format!("converting {} to block log format 2", log.display()))?
        {
            tracing::warn!(
                "converted the block log {} from format 1 to format 2 ({blocks} blocks in {:?}): records are \
                 now framed so that no payload can pass for a record; the format-1 file is kept as {}",
                log.display(),
                converting.elapsed(),
                log.with_extension("log.v1").display()
            );
        }
        let reopen: ReopenLog = Box::new(move || Ok(Box::new(DiskFile::open(&log)?) as Box<dyn LogFile>));
        Node::open_with(reopen, data_dir, producer, clock)
    }

    /// Opens with any block log file (tests use memory and fault injection) and any
    /// clock; the index and the Raft files go in `data_dir`. Must be called within a tokio
    /// runtime: replication starts in it a moment later.
    pub fn open_with(
        reopen_log: ReopenLog,
        data_dir: &Path,
        producer: SigningKey,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Node> {
        let runtime = tokio::runtime::Handle::try_current()
            .context("a node is opened within a tokio runtime (replication runs in it)")?;
        let index = Index::open(&chain::index_path(data_dir))?;
        let access_log = crate::access::AccessLog::open(&crate::access::access_log_path(data_dir))?;
        let readers = Arc::new(crate::access::Readers::new(clock.clone(), access_log));
        let chain = Chain::open(reopen_log()?, Some(&index))?;
        if chain.log.format() != crate::storage::LogFormat::V2 {
            bail!("the block log is format 1, which is only read: `Node::open` (machi-node run) converts it");
        }
        let producer_id = machi_ledger::AccountId::of(&producer);
        let joining = crate::setup::joining_id(data_dir)?;
        let members = Members::of(&chain.state.replicas, &producer_id, joining)?;
        if chain.state.replicas.is_empty() && chain.state.producer != Some(producer_id) {
            bail!("the producer key does not match the producer named in this chain's genesis");
        }
        let (head_ms, head_height) = (chain.head.timestamp_ms, chain.head.height);
        let (events, _) = broadcast::channel(EVENTS_QUEUE_MAX);
        let shared = Arc::new(Shared {
            chain_id: chain.chain_id().to_string(),
            chain: tokio::sync::RwLock::new(chain),
            index,
            events,
            metrics: Metrics::default(),
            stopping: AtomicBool::new(false),
            closing: tokio::sync::watch::Sender::new(false),
            reopen_log,
            clock,
            own: std::sync::Mutex::new(None),
            halted: std::sync::Mutex::new(None),
            applied: tokio::sync::watch::Sender::new(head_height),
            forwarding: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(1))
                .build()
                .context("an HTTP client for forwarding writes")?,
        });
        let (submit, submissions) = sync_channel::<Submission>(SUBMIT_QUEUE_MAX);
        let block_clock = crate::producer::BlockClock::start(&shared, head_ms);
        let replicas = Arc::new(Replicas::new(shared.clone()));
        // The producer key also signs this replica's requests to the others.
        let replica_key = producer.clone();
        // And this replica's attestations, learners' too (each holds its key on chain).
        let attestor = Arc::new(crate::api::verifiable::Attestor::new(producer.clone()));
        let producer_thread = {
            let (shared, replicas) = (shared.clone(), replicas.clone());
            Part::vital("producer").spawn_thread("producer", move || {
                crate::producer::run(shared, replicas, producer, submissions, block_clock)
            })?
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let verifier = crate::verify::Verifier::start(cores, shared.metrics.verify.clone())?;
        let raft_base = data_dir.to_path_buf();
        let (starting, started) = (shared.clone(), replicas.clone());
        runtime.spawn(Part::vital("replication start-up").task(async move {
            match Replication::start(starting.clone(), &raft_base, members, replica_key).await {
                Ok((replication, side)) => started.started(replication, side),
                Err(e) => {
                    let height = starting.chain.read().await.head.height + 1;
                    let reason = format!("replication did not start: {e:#}");
                    starting.halt(crate::shared::Halt { height, log_index: 0, reason });
                    started.failed();
                }
            }
        }));
        Ok(Node {
            shared,
            replicas,
            producer: producer_id,
            submit,
            verifier,
            readers,
            attestor,
            threads: vec![producer_thread],
        })
    }

    /// This replica in the chain's replica set (found by its producer key), or `None` for
    /// a node alone.
    pub async fn replica(&self) -> Option<machi_ledger::Replica> {
        let chain = self.shared.chain.read().await;
        chain.state.replicas.iter().find(|r| r.producer == self.producer).cloned()
    }

    /// Whether the chain names replicas (else this is a node alone).
    pub async fn names_replicas(&self) -> bool {
        !self.shared.chain.read().await.state.replicas.is_empty()
    }

    /// Submits transactions in-process, exactly as `POST /v1/transactions` would, and
    /// waits for their durable outcomes.
    pub async fn submit(&self, txs: Vec<SignedTx>) -> anyhow::Result<Vec<machi_api::TxResultView>> {
        // This replica must lead: in-process writes are not forwarded.
        let route = self.replicas.route(std::time::Duration::from_secs(5)).await;
        if !matches!(route, crate::replica::replication::Route::Here) {
            bail!("this replica does not lead ({route:?}); submit to the leader");
        }
        crate::api::transactions::submit_all(&self.app_state(), txs)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))
    }

    pub fn router(&self) -> axum::Router {
        crate::api::app(self.app_state())
    }

    fn app_state(&self) -> AppState {
        AppState {
            shared: self.shared.clone(),
            replicas: self.replicas.clone(),
            submit: self.submit.clone(),
            verifier: self.verifier.clone(),
            readers: self.readers.clone(),
            attestor: self.attestor.clone(),
        }
    }

    /// Serves HTTP on `listener` with the default limits until `shutdown` resolves, then
    /// stops the producer, which writes a state checkpoint as it stops.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        self.serve_with(listener, crate::serve::ServeLimits::default(), shutdown).await
    }

    /// `serve` within the given connection and time limits.
    pub async fn serve_with(
        self,
        listener: TcpListener,
        limits: crate::serve::ServeLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let router = self.router();
        let shared = self.shared.clone();
        let shutdown = async move {
            shutdown.await;
            shared.closing.send_replace(true);
        };
        let result = crate::serve::serve(listener, router, limits, shutdown).await;
        self.stop();
        result.context("serving HTTP")
    }

    /// Serves a replica: the HTTP API on `api`, and replica-to-replica traffic on `raft`,
    /// until `shutdown` resolves; then stops Raft and the threads.
    pub async fn serve_replica(
        self,
        api: TcpListener,
        raft: TcpListener,
        limits: crate::serve::ServeLimits,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Some((replication, side)) = self.replicas.ready().await else {
            let halt = self.shared.halted.lock().expect("halted").as_ref().map(|h| h.reason.clone());
            self.stop();
            bail!("{}", halt.unwrap_or_else(|| "replication did not start".into()));
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            }
        };
        let shared = self.shared.clone();
        let raft_router = crate::replica::network::router(
            replication.raft.clone(),
            replication.network.identity(),
            side.clone(),
            side.clone(),
            side,
        );
        let peers = Part::vital("replica listener").spawn_task(crate::serve::serve(
            raft,
            raft_router,
            limits,
            until_stopped(),
        ));
        let clients = crate::serve::serve(api, self.router(), limits, {
            let until = until_stopped();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    () = until => {}
                }
                shared.closing.send_replace(true);
            }
        });
        let served = clients.await;
        stop.send_replace(true);
        let peers_served = peers.await.context("the replica listener's task")?;
        replication.shutdown().await;
        drop(replication);
        self.stop();
        served.context("serving HTTP")?;
        peers_served.context("serving replicas")
    }

    /// Stops the threads and waits for them.
    pub fn stop(self) {
        self.shared.stopping.store(true, Ordering::Relaxed);
        drop(self.submit);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}
