//! Signature verification for all requests together: worker threads (one per core) take
//! whatever transactions are waiting, from any number of requests, and check them in one
//! Ed25519 batch. Under load, one request's single transaction rides in a batch with
//! hundreds of others, which is several times cheaper than checking it alone.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use machi_ledger::{verify_batch_cached, KeyCache, TxError, VerifiedTx};
use tokio::sync::oneshot;

/// Most signatures checked in one batch.
pub(crate) const VERIFY_BATCH_MAX: usize = 512;
/// Requests waiting for verification; beyond this clients are told the node is busy.
const VERIFY_QUEUE_MAX: usize = 8_192;

pub(crate) type Checked = (Vec<VerifiedTx>, Vec<Result<(), TxError>>);

struct Job {
    txs: Vec<VerifiedTx>,
    reply: oneshot::Sender<Checked>,
}

#[derive(Clone)]
pub(crate) struct Verifier {
    jobs: SyncSender<Job>,
}

pub(crate) enum VerifyError {
    Busy,
    Stopped,
}

impl Verifier {
    /// Starts `threads` workers; they stop when the last `Verifier` clone is dropped.
    pub(crate) fn start(threads: usize) -> std::io::Result<Verifier> {
        let (jobs, queue) = sync_channel::<Job>(VERIFY_QUEUE_MAX);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("verify-{i}")).spawn(move || worker(&queue))?;
        }
        Ok(Verifier { jobs })
    }

    pub(crate) async fn verify(&self, txs: Vec<VerifiedTx>) -> Result<Checked, VerifyError> {
        if txs.is_empty() {
            return Ok((txs, Vec::new()));
        }
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job { txs, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(VerifyError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(VerifyError::Stopped),
        }
        answer.await.map_err(|_| VerifyError::Stopped)
    }
}

fn worker(queue: &Mutex<Receiver<Job>>) {
    let mut keys = KeyCache::default();
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
        let sizes: Vec<usize> = jobs.iter().map(|j| j.txs.len()).collect();
        let mut all = Vec::with_capacity(sizes.iter().sum());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            all.extend(job.txs);
            replies.push(job.reply);
        }
        let mut results = verify_batch_cached(&all, &mut keys).into_iter();
        let mut txs = all.into_iter();
        for (reply, size) in replies.into_iter().zip(sizes) {
            let part = (txs.by_ref().take(size).collect(), results.by_ref().take(size).collect());
            let _ = reply.send(part);
        }
    }
}
