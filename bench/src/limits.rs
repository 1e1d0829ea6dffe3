//! `limits`: the machine's own limits, measured in the same run as a scenario so results
//! can be stated as fractions of them.

use std::io::Write;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use machi_ledger::{verify_batch_cached, Action, KeyCache, VerifiedTx, Yen};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};

/// Flags of `limits`.
#[derive(clap::Args)]
pub(crate) struct LimitsArgs {
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: LimitsArgs) -> anyhow::Result<()> {
    let limits = measure().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "limits": limits }))?);
    } else {
        print(&limits);
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Limits {
    pub(crate) cores: usize,
    /// Ed25519 batch verification on all cores (batches of 256), by ed25519-dalek's
    /// cofactorless batch equation.
    pub(crate) ed25519_batch_verify_per_s: f64,
    /// The chain's own signature rule (`machi_ledger::verify_batch_cached`: the
    /// per-signature checks, then ZIP-215's cofactored batch equation) on all cores, in
    /// batches of 256 from signers already checked, as admission and audit meet them.
    pub(crate) ledger_batch_verify_per_s: f64,
    /// Strict single verification on one core.
    pub(crate) ed25519_strict_verify_per_s_per_core: f64,
    /// SHA-256 of 200-byte messages on one core.
    pub(crate) sha256_200b_per_s_per_core: f64,
    /// SHA-256 of 1 MiB bodies on one core, in MiB/s (a replica hashes each request's
    /// body before signing or checking it).
    pub(crate) sha256_mib_per_s_per_core: f64,
    /// Ed25519 signatures on one core (a replica signs every request it sends).
    pub(crate) ed25519_sign_per_s_per_core: f64,
    /// Median of 4 KiB append + fdatasync.
    pub(crate) fsync_4k_median_us: f64,
}

const BATCH: usize = 256;
/// How long each rate is measured.
const SPAN_MS: u64 = 1_000;
/// Distinct signing keys among a batch's signatures.
const KEYS: usize = 251;

/// Measures the limits on the blocking pool (they keep every core busy for seconds).
pub(crate) async fn measure() -> anyhow::Result<Limits> {
    tokio::task::spawn_blocking(|| measure_for(Duration::from_millis(SPAN_MS))).await?
}

fn key(i: usize) -> SigningKey {
    SigningKey::from_bytes(&[(i % KEYS) as u8 + 1; 32])
}

fn signed_messages(n: usize) -> (Vec<[u8; 32]>, Vec<Signature>, Vec<VerifyingKey>) {
    let mut messages = Vec::with_capacity(n);
    let mut signatures = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = key(i);
        let message: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
        signatures.push(key.sign(&message));
        keys.push(key.verifying_key());
        messages.push(message);
    }
    (messages, signatures, keys)
}

/// Payments signed as residents sign them, each from one of `KEYS` keys.
fn signed_payments(n: usize) -> Vec<VerifiedTx> {
    const CHAIN: &str = "limits";
    let shop = machi_ledger::AccountId::of(&SigningKey::from_bytes(&[0xee; 32]));
    (0..n)
        .map(|i| {
            let action = Action::Pay { shop, amount: Yen(1 + i as u64 % 100), invoice: None };
            let signed = machi_client::sign(CHAIN, &key(i), action);
            machi_ledger::decode(CHAIN, signed).expect("a well-formed payment")
        })
        .collect()
}

/// Runs `work` for about `span`, returning items per second (work returns items done).
fn rate(span: Duration, mut work: impl FnMut() -> usize) -> f64 {
    let started = Instant::now();
    let mut items = 0;
    while started.elapsed() < span {
        items += work();
    }
    items as f64 / started.elapsed().as_secs_f64()
}

/// Runs `work` on `threads` threads at once for about `span`; the sum of their rates.
fn rate_on_threads<W: FnMut() -> usize>(threads: usize, span: Duration, work: impl Fn() -> W + Sync) -> f64 {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(|| rate(span, work()))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    })
}

fn measure_for(span: Duration) -> anyhow::Result<Limits> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (messages, signatures, keys) = signed_messages(BATCH);
    let refs: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
    let batch_rate = rate_on_threads(cores, span, || {
        || {
            ed25519_dalek::verify_batch(&refs, &signatures, &keys).expect("valid batch");
            BATCH
        }
    });
    let payments = signed_payments(BATCH);
    let payments = &payments;
    let ledger_rate = rate_on_threads(cores, span, || {
        // Each thread keeps its signers' checks, as each of the node's verifiers does.
        let mut cache = KeyCache::default();
        verify_batch_cached(payments, &mut cache);
        move || {
            let results = verify_batch_cached(payments, &mut cache);
            assert!(results.iter().all(Result::is_ok), "valid batch");
            BATCH
        }
    });
    let mut i = 0;
    let strict = rate(span, || {
        i = (i + 1) % BATCH;
        keys[i].verify_strict(&messages[i], &signatures[i]).expect("valid");
        1
    });
    Ok(Limits {
        cores,
        ed25519_batch_verify_per_s: batch_rate,
        ledger_batch_verify_per_s: ledger_rate,
        ed25519_strict_verify_per_s_per_core: strict,
        sha256_200b_per_s_per_core: sha256_rate(span),
        sha256_mib_per_s_per_core: sha256_bulk_rate(span),
        ed25519_sign_per_s_per_core: sign_rate(span),
        fsync_4k_median_us: fsync_median_us(200)?,
    })
}

fn sha256_rate(span: Duration) -> f64 {
    let data = [7u8; 200];
    rate(span, || {
        for _ in 0..1000 {
            std::hint::black_box(Sha256::digest(std::hint::black_box(&data)));
        }
        1000
    })
}

fn sha256_bulk_rate(span: Duration) -> f64 {
    let data = vec![7u8; 1024 * 1024];
    rate(span, || {
        std::hint::black_box(Sha256::digest(std::hint::black_box(&data)));
        1
    })
}

fn sign_rate(span: Duration) -> f64 {
    let signer = key(0);
    let message = [9u8; 32];
    rate(span, || {
        std::hint::black_box(signer.sign(std::hint::black_box(&message)));
        1
    })
}

fn fsync_median_us(rounds: usize) -> anyhow::Result<f64> {
    let path = std::env::temp_dir().join(format!("machi-bench-fsync-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
    let block = [0u8; 4096];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    std::fs::remove_file(&path)?;
    Ok(crate::stats::median(&mut times))
}

pub(crate) fn print(l: &Limits) {
    println!("machine limits ({} cores):", l.cores);
    println!("  Ed25519 batch verify, all cores   {:>12.0} /s", l.ed25519_batch_verify_per_s);
    println!("  ledger batch verify, all cores    {:>12.0} /s", l.ledger_batch_verify_per_s);
    println!("  Ed25519 strict verify, one core   {:>12.0} /s", l.ed25519_strict_verify_per_s_per_core);
    println!("  SHA-256 200 B, one core           {:>12.0} /s", l.sha256_200b_per_s_per_core);
    println!("  SHA-256 of 1 MiB, one core        {:>12.0} MiB/s", l.sha256_mib_per_s_per_core);
    println!("  Ed25519 sign, one core            {:>12.0} /s", l.ed25519_sign_per_s_per_core);
    println!("  4 KiB write + fdatasync, median   {:>12.1} µs", l.fsync_4k_median_us);
}
