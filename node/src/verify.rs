//! Signature verification for all requests together: worker threads (one per core) take
//! whatever transactions are waiting, from any number of requests, and check them in one
//! Ed25519 batch. Under load, one request's single transaction rides in a batch with
//! hundreds of others, which is several times cheaper than checking it alone.
//!
//! A bad signature makes its whole batch fail, and a failed batch is checked again one
//! signature at a time (by the ledger, so every path answers alike). So that bad requests
//! cannot make every request around them pay that, a worker whose last round held a bad
//! signature checks the next round request by request (a request of one transaction
//! alone, a larger one as its own batch): a bad request then costs about one check, and
//! only its own transactions fall to one-by-one checks. A round that passes clean
//! brings back combined batches. The queue is bounded by requests and by bytes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use machi_ledger::{verify_batch_cached, verify_one, KeyCache, TxError, VerifiedTx};
use tokio::sync::oneshot;

/// Most signatures checked in one batch.
pub(crate) const VERIFY_BATCH_MAX: usize = 512;
/// Requests waiting for verification; beyond this clients are told the node is busy.
const VERIFY_QUEUE_MAX: usize = 8_192;
/// Bytes of transactions waiting for verification (as counted by `job_bytes`); beyond
/// this clients are told the node is busy. About 100,000 typical payments.
pub(crate) const VERIFY_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// What a waiting transaction holds besides its body twice (encoded and decoded): id,
/// signer, signature and the containers around them.
const VERIFY_TX_OVERHEAD_BYTES: usize = 256;

type Queue = Arc<Mutex<Receiver<Job>>>;

pub(crate) type Checked = (Vec<VerifiedTx>, Vec<Result<(), TxError>>);

struct Job {
    txs: Vec<VerifiedTx>,
    bytes: usize,
    reply: oneshot::Sender<Checked>,
}

/// Signature checks done, for `/metrics`.
#[derive(Default)]
pub struct VerifyCounts {
    /// Signatures checked as part of a batch.
    pub batched: AtomicU64,
    /// Signatures checked one at a time (a request's own check, or after its batch failed).
    pub single: AtomicU64,
}

#[derive(Clone)]
pub(crate) struct Verifier {
    jobs: SyncSender<Job>,
    queued_bytes: Arc<AtomicUsize>,
    bytes_max: usize,
}

pub(crate) enum VerifyError {
    Busy,
    Stopped,
}

/// Bytes a request's transactions hold while they wait.
fn job_bytes(txs: &[VerifiedTx]) -> usize {
    txs.iter().map(|tx| 2 * tx.signed.body.len() + VERIFY_TX_OVERHEAD_BYTES).sum()
}

impl Verifier {
    /// Starts `threads` workers; they stop when the last `Verifier` clone is dropped.
    pub(crate) fn start(threads: usize, counts: Arc<VerifyCounts>) -> std::io::Result<Verifier> {
        Ok(Verifier::start_with(threads.max(1), VERIFY_QUEUE_BYTES_MAX, counts)?.0)
    }

    /// Also returns the queue's receiving end (the workers hold it too).
    fn start_with(
        threads: usize,
        bytes_max: usize,
        counts: Arc<VerifyCounts>,
    ) -> std::io::Result<(Verifier, Queue)> {
        let (jobs, queue) = sync_channel::<Job>(VERIFY_QUEUE_MAX);
        let queue = Arc::new(Mutex::new(queue));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        for i in 0..threads {
            let (queue, queued_bytes, counts) = (queue.clone(), queued_bytes.clone(), counts.clone());
            machi_host::supervise::Part::vital("signature verifier")
                .spawn_thread(&format!("verify-{i}"), move || worker(&queue, &queued_bytes, &counts))?;
        }
        Ok((Verifier { jobs, queued_bytes, bytes_max }, queue))
    }

    pub(crate) async fn verify(&self, txs: Vec<VerifiedTx>) -> Result<Checked, VerifyError> {
        if txs.is_empty() {
            return Ok((txs, Vec::new()));
        }
        let bytes = job_bytes(&txs);
        let before = self.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.bytes_max && before > 0 {
            self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
            return Err(VerifyError::Busy);
        }
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job { txs, bytes, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
                return Err(VerifyError::Busy);
            }
            Err(TrySendError::Disconnected(_)) => return Err(VerifyError::Stopped),
        }
        answer.await.map_err(|_| VerifyError::Stopped)
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, queued_bytes: &AtomicUsize, counts: &VerifyCounts) {
    let mut keys = KeyCache::default();
    let mut flooded = false;
    loop {
        let jobs = {
            let queue = queue.lock().expect("verify queue poisoned");
            let Ok(first) = queue.recv() else { return };
            let mut count = first.txs.len();
            let mut jobs = vec![first];
            while count < VERIFY_BATCH_MAX {
                match queue.try_recv() {
                    Ok(job) => {
                        count += job.txs.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        queued_bytes.fetch_sub(jobs.iter().map(|j| j.bytes).sum(), Ordering::AcqRel);
        let mut replies = Vec::with_capacity(jobs.len());
        let mut groups = Vec::with_capacity(jobs.len());
        for job in jobs {
            groups.push(job.txs);
            replies.push(job.reply);
        }
        let (results, failed) = check(&groups, &mut keys, flooded, counts);
        flooded = failed;
        for ((reply, txs), results) in replies.into_iter().zip(groups).zip(results) {
            let _ = reply.send((txs, results));
        }
    }
}

/// Checks the signatures of several requests: in one batch, or request by request when
/// the last round held a bad signature (`flooded`). Returns each request's results, and
/// whether any signature was bad.
fn check(
    groups: &[Vec<VerifiedTx>],
    keys: &mut KeyCache,
    flooded: bool,
    counts: &VerifyCounts,
) -> (Vec<Vec<Result<(), TxError>>>, bool) {
    let mut failed = false;
    let mut checked = |txs: &[VerifiedTx], keys: &mut KeyCache| {
        let results = match txs {
            [one] => vec![verify_one(one)],
            many => verify_batch_cached(many, keys),
        };
        let bad = results.iter().any(Result::is_err);
        // A batch with a bad signature was checked again one at a time.
        let counter = if bad || txs.len() == 1 { &counts.single } else { &counts.batched };
        counter.fetch_add(txs.len() as u64, Ordering::Relaxed);
        failed |= bad;
        results
    };
    let results = if flooded {
        groups.iter().map(|group| checked(group, keys)).collect()
    } else {
        let all: Vec<VerifiedTx> = groups.iter().flatten().cloned().collect();
        let mut results = checked(&all, keys).into_iter();
        groups.iter().map(|g| results.by_ref().take(g.len()).collect()).collect()
    };
    (results, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use machi_ledger::{Action, SignedTx, TxBody};

    fn tx(n: u64, bad: bool) -> VerifiedTx {
        let key = machi_ledger::SigningKey::from_bytes(&[(n % 200) as u8 + 1; 32]);
        let body = TxBody {
            chain_id: "test-town".into(),
            created_ms: 1_000,
            ttl_ms: 60_000,
            nonce: n,
            action: Action::RegisterOperator {
                operator: machi_ledger::AccountId([7; 32]),
                name: "窓口".into(),
            },
        };
        let mut signed = SignedTx::sign("test-town", &key, &body);
        if bad {
            signed.signature[5] ^= 1;
        }
        machi_ledger::decode("test-town", signed).expect("decodes")
    }

    /// Eight requests of 60 good transactions and one request of a single bad one share a
    /// round: the first such round falls to one-by-one checks, and the next ones check
    /// only the bad request alone. Every answer is right either way.
    #[test]
    fn a_bad_request_costs_about_one_check() {
        let mut groups: Vec<Vec<VerifiedTx>> =
            (0..8).map(|g| (0..60).map(|i| tx(g * 100 + i, false)).collect()).collect();
        groups.insert(3, vec![tx(999, true)]);
        let counts = VerifyCounts::default();
        let (results, failed) = check(&groups, &mut KeyCache::default(), false, &counts);
        assert!(failed);
        for (g, results) in results.iter().enumerate() {
            assert_eq!(results.len(), groups[g].len());
            assert_eq!(results.iter().all(Result::is_ok), g != 3, "request {g}");
        }
        assert_eq!(counts.single.load(Ordering::Relaxed), 481, "the combined batch failed");

        // The next round goes request by request: the bad request costs one check, and
        // the good ones are still batched.
        let counts = VerifyCounts::default();
        let (again, failed) = check(&groups, &mut KeyCache::default(), true, &counts);
        assert!(failed);
        assert_eq!(again, results);
        assert_eq!(counts.single.load(Ordering::Relaxed), 1);
        assert_eq!(counts.batched.load(Ordering::Relaxed), 480);

        // A clean round says so, and the worker goes back to combined batches.
        groups.remove(3);
        let (_, failed) = check(&groups, &mut KeyCache::default(), true, &VerifyCounts::default());
        assert!(!failed);
    }

    #[test]
    fn the_queue_is_bounded_by_bytes() {
        let request: Vec<VerifiedTx> = (0..10).map(|i| tx(i, false)).collect();
        let bytes = job_bytes(&request);
        // No workers: what is queued stays queued.
        let (verifier, _queue) = Verifier::start_with(0, 3 * bytes, Arc::default()).unwrap();
        for _ in 0..3 {
            assert!(verifier.verify(request.clone()).now_or_never().is_none(), "queued");
        }
        assert!(matches!(verifier.verify(request.clone()).now_or_never(), Some(Err(VerifyError::Busy))));
        assert_eq!(verifier.queued_bytes.load(Ordering::Relaxed), 3 * bytes);
        // A request larger than the whole bound is still taken when nothing waits.
        let (empty, _queue) = Verifier::start_with(0, 1, Arc::default()).unwrap();
        assert!(empty.verify(request).now_or_never().is_none());
    }
}
