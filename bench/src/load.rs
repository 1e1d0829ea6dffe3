//! The load driver that payments, flood and sale-open share: their common flags, the
//! workers that send signed transactions at the node, the tallies they keep, and the
//! report each scenario ends with.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use machi_api::{TxResultView, TxStatus, SUBMIT_TXS_MAX};
use machi_client::Client;
use machi_ledger::SignedTx;
use serde::Serialize;
use serde_json::json;

use crate::limits::{self, Limits};
use crate::stats::percentile;
use crate::town::TownSize;

/// Flags every load scenario takes.
#[derive(clap::Args)]
pub(crate) struct Common {
    /// The node's address (e.g. http://127.0.0.1:7070), or a chain's replicas separated by commas
    /// (http://10.0.0.1:7101,http://10.0.0.2:7101): a request that one cannot serve
    /// (down, no leader, halted) goes to the next, the same signed transaction.
    #[arg(long, env = "MACHI_NODE", default_value = "http://127.0.0.1:7070", value_parser = machi_client::node_list)]
    pub(crate) node: String,
    /// The town's key file (DIR/keys/town.key of `machi-node init`).
    #[arg(long)]
    pub(crate) town_key: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    pub(crate) residents: usize,
    #[arg(long, default_value_t = 40)]
    pub(crate) shops: usize,
    /// Longest time the load runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub(crate) duration: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write the id of every transaction the node acknowledged as committed, one a line.
    #[arg(long)]
    pub(crate) acked_log: Option<PathBuf>,
}

impl Common {
    /// A town whose residents have each bought ten sets, ready to pay.
    pub(crate) fn paying_town(&self) -> TownSize {
        TownSize {
            operators: 2,
            shops: self.shops,
            residents: self.residents,
            sets_each: 10,
            total_sets: (self.residents * 10) as u32,
            cap: 10,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// Arrays of transactions per request.
    Batch,
    /// One transaction per request, many concurrent keep-alive connections.
    Single,
}

#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Outcome {
    pub(crate) scenario: String,
    pub(crate) mode: String,
    pub(crate) concurrency: usize,
    pub(crate) submitted: u64,
    pub(crate) committed: u64,
    pub(crate) applied: u64,
    pub(crate) rejected: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed_s: f64,
    pub(crate) committed_tx_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// Scenario-specific checks and figures.
    pub(crate) notes: Vec<String>,
}

/// Shared tallies of a running scenario.
#[derive(Default)]
struct Tally {
    latencies_ms: Mutex<Vec<f64>>,
    results: Mutex<Vec<TxResultView>>,
    errors: AtomicUsize,
}

impl Tally {
    fn record(&self, started: Instant, results: Vec<TxResultView>) {
        let ms = started.elapsed().as_secs_f64() * 1e3;
        self.latencies_ms.lock().expect("poisoned").push(ms);
        self.results.lock().expect("poisoned").extend(results);
    }

    fn finish(
        self,
        scenario: &str,
        load: &Load,
        submitted: usize,
        elapsed: Duration,
    ) -> (Outcome, Vec<TxResultView>) {
        let mut latencies = self.latencies_ms.into_inner().expect("poisoned");
        let results = self.results.into_inner().expect("poisoned");
        let committed = results.iter().filter(|r| r.status != TxStatus::Refused).count() as u64;
        let applied = results.iter().filter(|r| r.status == TxStatus::Applied).count() as u64;
        let refused = results.len() as u64 - committed;
        let outcome = Outcome {
            scenario: scenario.into(),
            mode: format!("{:?}", load.mode).to_lowercase(),
            concurrency: load.concurrency,
            submitted: submitted as u64,
            committed,
            applied,
            rejected: committed - applied,
            errors: self.errors.load(Ordering::Relaxed) as u64 + refused,
            elapsed_s: elapsed.as_secs_f64(),
            committed_tx_per_s: committed as f64 / elapsed.as_secs_f64(),
            p50_ms: percentile(&mut latencies, 50.0),
            p99_ms: percentile(&mut latencies, 99.0),
            max_ms: percentile(&mut latencies, 100.0),
            notes: Vec::new(),
        };
        (outcome, results)
    }
}

pub(crate) struct Load {
    pub(crate) mode: Mode,
    pub(crate) concurrency: usize,
    pub(crate) batch_size: usize,
    pub(crate) duration: Duration,
    /// Offered transactions per second (single mode); None: as fast as answers come.
    pub(crate) rate: Option<f64>,
}

impl Load {
    /// One transaction per request from `concurrency` connections, as fast as answers come.
    pub(crate) fn single(concurrency: usize, duration: Duration) -> Load {
        Load { mode: Mode::Single, concurrency, batch_size: 1, duration, rate: None }
    }

    fn per_request(&self) -> usize {
        if self.mode == Mode::Batch {
            self.batch_size.clamp(1, SUBMIT_TXS_MAX)
        } else {
            1
        }
    }
}

/// What the workers of one run share: the signed transactions, the next one to send, and
/// the tallies.
struct Shared {
    txs: Vec<SignedTx>,
    next: AtomicUsize,
    tally: Tally,
}

/// Drives `txs` at the node until they run out or the duration ends.
pub(crate) async fn drive(
    client: &Client,
    txs: Vec<SignedTx>,
    load: &Load,
    scenario: &str,
) -> (Outcome, Vec<TxResultView>) {
    let shared = Arc::new(Shared { txs, next: AtomicUsize::new(0), tally: Tally::default() });
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..load.concurrency {
        let pace = load.rate.map(|r| Duration::from_secs_f64(load.concurrency as f64 / r));
        // Open loop: each worker sends on its own ticks, spread over one period.
        let ticker = pace.map(|p| {
            let first = tokio::time::Instant::now() + p.mul_f64(worker as f64 / load.concurrency as f64);
            tokio::time::interval_at(first, p)
        });
        let (client, shared) = (client.clone(), shared.clone());
        tasks.spawn(send_until(client, shared, load.mode, load.per_request(), ticker, deadline));
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let shared = Arc::try_unwrap(shared).ok().expect("all workers done");
    let submitted = shared.next.load(Ordering::Relaxed).min(shared.txs.len());
    shared.tally.finish(scenario, load, submitted, elapsed)
}

/// One worker: takes the next `per_request` transactions and sends them, on its ticks if
/// it has any, until they run out or the deadline passes.
async fn send_until(
    client: Client,
    shared: Arc<Shared>,
    mode: Mode,
    per_request: usize,
    mut ticker: Option<tokio::time::Interval>,
    deadline: Instant,
) {
    let Shared { txs, next, tally } = &*shared;
    while Instant::now() < deadline {
        if let Some(t) = ticker.as_mut() {
            t.tick().await;
        }
        let from = next.fetch_add(per_request, Ordering::Relaxed);
        if from >= txs.len() {
            break;
        }
        let chunk = &txs[from..(from + per_request).min(txs.len())];
        let sent = Instant::now();
        let answer = match mode {
            Mode::Batch => client.submit_batch(chunk).await,
            Mode::Single => client.submit(&chunk[0]).await.map(|r| vec![r]),
        };
        match answer {
            Ok(results) => tally.record(sent, results),
            Err(_) => {
                tally.errors.fetch_add(chunk.len(), Ordering::Relaxed);
            }
        }
    }
}

/// Ends a scenario: the acknowledged ids to the log, the outcome as a table or JSON beside
/// the machine's limits, and exit status 2 when anything went wrong.
pub(crate) fn report(
    common: &Common,
    limits: &Limits,
    outcome: &Outcome,
    results: &[TxResultView],
) -> anyhow::Result<()> {
    if let Some(path) = &common.acked_log {
        write_acked(path, results)?;
    }
    if common.json {
        let fraction = outcome.committed_tx_per_s / limits.ed25519_batch_verify_per_s;
        let value = json!({
            "limits": limits,
            "scenario": outcome,
            "committed_tx_per_s": outcome.committed_tx_per_s,
            "p50_ms": outcome.p50_ms,
            "p99_ms": outcome.p99_ms,
            "errors": outcome.errors,
            "ed25519_batch_verify_per_s": limits.ed25519_batch_verify_per_s,
            "fraction_of_batch_verify": fraction,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        limits::print(limits);
        print(outcome, limits.ed25519_batch_verify_per_s);
    }
    if outcome.errors > 0 {
        std::process::exit(2);
    }
    Ok(())
}

fn write_acked(path: &std::path::Path, results: &[TxResultView]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in results.iter().filter(|r| r.status != TxStatus::Refused) {
        writeln!(out, "{}", r.tx_id)?;
    }
    out.flush()?;
    Ok(())
}

fn print(o: &Outcome, batch_verify_per_s: f64) {
    println!("scenario {} ({}, concurrency {}):", o.scenario, o.mode, o.concurrency);
    println!(
        "  committed            {:>10} ({} applied, {} rejected) of {} submitted",
        o.committed, o.applied, o.rejected, o.submitted
    );
    println!("  errors               {:>10}", o.errors);
    println!(
        "  committed tx/s       {:>10.0}  ({:.2} × the machine's Ed25519 batch-verify rate)",
        o.committed_tx_per_s,
        o.committed_tx_per_s / batch_verify_per_s
    );
    println!("  latency p50 / p99 / max   {:.1} / {:.1} / {:.1} ms", o.p50_ms, o.p99_ms, o.max_ms);
    for note in &o.notes {
        println!("  {note}");
    }
}
