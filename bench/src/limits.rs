//! The machine's own limits, measured in the same run as a scenario so results can be
//! stated as fractions of them.

use std::io::Write;
use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Limits {
    pub(crate) cores: usize,
    /// Ed25519 batch verification on all cores (batches of 256).
    pub(crate) ed25519_batch_verify_per_s: f64,
    /// Strict single verification on one core.
    pub(crate) ed25519_strict_verify_per_s_per_core: f64,
    /// SHA-256 of 200-byte messages on one core.
    pub(crate) sha256_200b_per_s_per_core: f64,
    /// Median of 4 KiB append + fdatasync.
    pub(crate) fsync_4k_median_us: f64,
}

const BATCH: usize = 256;

fn signed_messages(n: usize) -> (Vec<[u8; 32]>, Vec<Signature>, Vec<VerifyingKey>) {
    let mut messages = Vec::with_capacity(n);
    let mut signatures = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let key = SigningKey::from_bytes(&[(i % 251) as u8 + 1; 32]);
        let message: [u8; 32] = Sha256::digest(i.to_le_bytes()).into();
        signatures.push(key.sign(&message));
        keys.push(key.verifying_key());
        messages.push(message);
    }
    (messages, signatures, keys)
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

pub(crate) fn measure(span: Duration) -> anyhow::Result<Limits> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (messages, signatures, keys) = signed_messages(BATCH);
    let refs: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
    let batch_rate: f64 = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                scope.spawn(|| {
                    rate(span, || {
                        ed25519_dalek::verify_batch(&refs, &signatures, &keys).expect("valid batch");
                        BATCH
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let mut i = 0;
    let strict = rate(span, || {
        i = (i + 1) % BATCH;
        keys[i].verify_strict(&messages[i], &signatures[i]).expect("valid");
        1
    });
    let data = [7u8; 200];
    let sha = rate(span, || {
        for _ in 0..1000 {
            std::hint::black_box(Sha256::digest(std::hint::black_box(&data)));
        }
        1000
    });
    Ok(Limits {
        cores,
        ed25519_batch_verify_per_s: batch_rate,
        ed25519_strict_verify_per_s_per_core: strict,
        sha256_200b_per_s_per_core: sha,
        fsync_4k_median_us: fsync_median_us(200)?,
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
    println!("  Ed25519 strict verify, one core   {:>12.0} /s", l.ed25519_strict_verify_per_s_per_core);
    println!("  SHA-256 200 B, one core           {:>12.0} /s", l.sha256_200b_per_s_per_core);
    println!("  4 KiB write + fdatasync, median   {:>12.1} µs", l.fsync_4k_median_us);
}
