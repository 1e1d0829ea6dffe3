//! The load scenarios: payments (batch or single submission) and sale-open.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use machi_api::{TxResultView, TxStatus, SUBMIT_TXS_MAX};
use machi_client::Client;

use machi_ledger::{AccountId, Action, SignedTx, TxBody, TxId, Yen};
use serde::Serialize;

use crate::stats::percentile;
use crate::town::{id, sign_all, Town};

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
        mode: Mode,
        concurrency: usize,
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
            mode: format!("{mode:?}").to_lowercase(),
            concurrency,
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

/// Drives `txs` at the node until they run out or the duration ends.
async fn drive(
    client: &Client,
    txs: Vec<SignedTx>,
    load: &Load,
    scenario: &str,
) -> (Outcome, Vec<TxResultView>) {
    let txs = Arc::new(txs);
    let next = Arc::new(AtomicUsize::new(0));
    let tally = Arc::new(Tally::default());
    let per_request = if load.mode == Mode::Batch { load.batch_size.clamp(1, SUBMIT_TXS_MAX) } else { 1 };
    let started = Instant::now();
    let deadline = started + load.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..load.concurrency {
        let (client, txs, next, tally) = (client.clone(), txs.clone(), next.clone(), tally.clone());
        let mode = load.mode;
        let concurrency = load.concurrency;
        let pace = load.rate.map(|r| Duration::from_secs_f64(concurrency as f64 / r));
        tasks.spawn(async move {
            // Open loop: each worker sends on its own ticks, spread over one period.
            let mut ticker = pace.map(|p| {
                let first = tokio::time::Instant::now() + p.mul_f64(worker as f64 / concurrency as f64);
                tokio::time::interval_at(first, p)
            });
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
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let submitted = next.load(Ordering::Relaxed).min(txs.len());
    let tally = Arc::try_unwrap(tally).ok().expect("all workers done");
    tally.finish(scenario, load.mode, load.concurrency, submitted, elapsed)
}

pub(crate) fn write_acked(path: &std::path::Path, results: &[TxResultView]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in results.iter().filter(|r| r.status != TxStatus::Refused) {
        writeln!(out, "{}", r.tx_id)?;
    }
    out.flush()?;
    Ok(())
}

/// Residents paying shops ¥1-¥100, round robin over residents, random shops.
pub(crate) async fn payments(
    client: &Client,
    town: &Town,
    load: &Load,
    pool: usize,
) -> (Outcome, Vec<TxResultView>) {
    let work = (0..pool)
        .map(|i| {
            let resident = town.residents[i % town.residents.len()].clone();
            let shop = id(&town.shops[rand::random::<usize>() % town.shops.len()]);
            let amount = Yen(1 + rand::random::<u64>() % 100);
            (resident, Action::Pay { shop, amount, invoice: None })
        })
        .collect();
    let txs = sign_all(&town.chain_id, work);
    drive(client, txs, load, "payments").await
}

/// An issue opens and `attempts` purchase attempts from the operators arrive at once.
pub(crate) async fn sale_open(
    client: &Client,
    town: &Town,
    attempts: usize,
    cap: u32,
) -> anyhow::Result<(Outcome, Vec<TxResultView>)> {
    let work = (0..attempts)
        .map(|i| {
            let resident = id(&town.residents[i % town.residents.len()]);
            let operator = town.operators[i % town.operators.len()].clone();
            let sets = 1 + (i as u32 / town.residents.len() as u32) % cap;
            let cash_received = Yen(10_000 * u64::from(sets));
            (operator, Action::SellSets { issue: town.issue, resident, sets, cash_received })
        })
        .collect();
    let txs = sign_all(&town.chain_id, work);
    // Who each attempt was for, to check the per-person cap from the answers.
    let buyers: HashMap<TxId, (AccountId, u32)> = txs
        .iter()
        .map(|tx| match TxBody::decode(&tx.body).map(|b| b.action) {
            Ok(Action::SellSets { resident, sets, .. }) => (tx.id(&town.chain_id), (resident, sets)),
            _ => unreachable!("sale-open signs only sales"),
        })
        .collect();
    let load = Load {
        mode: Mode::Single,
        concurrency: town.operators.len() * 8,
        batch_size: 1,
        duration: Duration::from_secs(120),
        rate: None,
    };
    let (mut outcome, results) = drive(client, txs, &load, "sale-open").await;
    let issue = client.issue(town.issue).await?;
    let mut bought: HashMap<AccountId, u32> = HashMap::new();
    for r in results.iter().filter(|r| r.status == TxStatus::Applied) {
        let (resident, sets) = buyers[&r.tx_id];
        *bought.entry(resident).or_default() += sets;
    }
    let over_cap = bought.values().filter(|&&n| n > cap).count();
    let sold: u32 = bought.values().sum();
    // Time to sell out as the chain recorded it: from the first attempt's block to the
    // block of the last sale.
    let first = results.iter().filter_map(|r| r.height).min().unwrap_or(0);
    let last_sale =
        results.iter().filter(|r| r.status == TxStatus::Applied).filter_map(|r| r.height).max().unwrap_or(0);
    let (t0, t1) = (client.block(first).await?.timestamp_ms, client.block(last_sale).await?.timestamp_ms);
    outcome.notes.push(format!(
        "sets sold {} of {} (left {}); by the answers {sold}",
        issue.sets_sold, issue.params.total_sets, issue.sets_left
    ));
    outcome.notes.push(format!("buyers over the cap of {cap}: {over_cap}"));
    outcome.notes.push(format!("every attempt answered: {}", results.len() == attempts));
    outcome.notes.push(format!("sold out {:.2} s after the first attempt's block", (t1 - t0) as f64 / 1e3));
    if issue.sets_left != 0 || results.len() != attempts || over_cap > 0 || sold != issue.sets_sold {
        outcome.errors += 1;
    }
    Ok((outcome, results))
}

pub(crate) fn print(o: &Outcome, batch_verify_per_s: f64) {
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

/// Goodput under a flood of bad signatures: residents pay shops (single requests, `good`
/// load) alone, then again while `bad_concurrency` other clients send payments whose
/// signatures are bad, half naming registered residents as signers and half from keys
/// the chain does not know. The outcome is the good payments' during the flood; the
/// notes give the rate without it and what the flood got.
pub(crate) async fn flood(
    client: &Client,
    town: &Town,
    good: &Load,
    bad_concurrency: usize,
    pool: usize,
) -> (Outcome, Vec<TxResultView>) {
    let payment = |i: usize| {
        let resident = town.residents[i % town.residents.len()].clone();
        let shop = id(&town.shops[rand::random::<usize>() % town.shops.len()]);
        (resident, Action::Pay { shop, amount: Yen(1 + rand::random::<u64>() % 100), invoice: None })
    };
    let mut quiet = sign_all(&town.chain_id, (0..pool).map(payment).collect());
    let loud = quiet.split_off(pool / 2);
    let (alone, _) = drive(client, quiet, good, "payments alone").await;

    // Bad requests, sent over and over: refused ones are never stored, so each is
    // checked afresh every time.
    let strangers: Vec<_> =
        (0..64).map(|_| machi_ledger::SigningKey::generate(&mut rand::rngs::OsRng)).collect();
    let bad_work = (0..2_000)
        .map(|i| {
            let (resident, action) = payment(i);
            let signer = if i % 2 == 0 { resident } else { strangers[i % strangers.len()].clone() };
            (signer, action)
        })
        .collect();
    let mut bad = sign_all(&town.chain_id, bad_work);
    for tx in &mut bad {
        tx.signature[7] ^= 0x10;
    }
    let bad = Arc::new(bad);
    let deadline = Instant::now() + good.duration;
    let reasons = Arc::new(Mutex::new(HashMap::<String, u64>::new()));
    let mut flooders = tokio::task::JoinSet::new();
    for worker in 0..bad_concurrency {
        let (client, bad, reasons) = (client.clone(), bad.clone(), reasons.clone());
        flooders.spawn(async move {
            let mut i = worker;
            while Instant::now() < deadline {
                let reason = match client.submit(&bad[i % bad.len()]).await {
                    Ok(r) => {
                        r.reason.map(|code| code.to_string()).unwrap_or_else(|| format!("{:?}", r.status))
                    }
                    Err(e) => e.to_string().split(':').next().unwrap_or("error").to_string(),
                };
                *reasons.lock().expect("poisoned").entry(reason).or_default() += 1;
                i += bad_concurrency;
            }
        });
    }
    let (mut outcome, results) = drive(client, loud, good, "flood").await;
    while flooders.join_next().await.is_some() {}
    let reasons = Arc::try_unwrap(reasons).expect("flooders done").into_inner().expect("poisoned");
    let bad_total: u64 = reasons.values().sum();
    outcome.notes.push(format!(
        "good payments alone: {:.0} tx/s (p99 {:.1} ms); during the flood {:.0} tx/s = {:.2} × alone",
        alone.committed_tx_per_s,
        alone.p99_ms,
        outcome.committed_tx_per_s,
        outcome.committed_tx_per_s / alone.committed_tx_per_s
    ));
    outcome.notes.push(format!(
        "bad requests answered: {bad_total} ({:.0}/s) from {bad_concurrency} clients; {}",
        bad_total as f64 / outcome.elapsed_s,
        reasons.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ")
    ));
    (outcome, results)
}
