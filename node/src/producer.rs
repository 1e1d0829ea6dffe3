//! The single writer. Takes every waiting submission (group commit), applies them in
//! order with the pure ledger, appends and syncs one block, and only then answers.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use machi_api::{TxCode, TxResultView, SUBMIT_TXS_MAX};
use machi_host::supervise::Part;
use machi_ledger::{AccountId, Block, Refusal, SigningKey, TxId, TxResult, BLOCK_TXS_MAX};
use tokio::sync::oneshot;

use crate::chain::Chain;
use crate::index::Checkpoint;
use crate::replica::replication::{Proposed, Replicas};
use crate::shared::{Shared, Submission};

/// A state checkpoint is written when the producer has been idle for a moment and at
/// least this many transactions came since the last one; writing it while clients wait
/// would stall them for as long as serialising the state takes.
pub(crate) const CHECKPOINT_IDLE_TXS: u64 = 10_000;
/// How long the producer must have had nothing to do before it writes that checkpoint:
/// encoding a large state holds the chain for about a second, which a rush must not feel.
const CHECKPOINT_IDLE: Duration = Duration::from_secs(5);
/// Under unbroken load, a checkpoint is written anyway after this many transactions, so
/// a restart after a crash never replays more than this.
pub(crate) const CHECKPOINT_TXS_MAX: u64 = 2_000_000;

/// How long the producer waits for committed blocks to be applied before it makes one;
/// past it the transactions are refused with `storage_unavailable` (nothing committed).
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// How far the wall clock may run ahead of the last block's time plus the time the
/// monotonic clock measured since, before block times stop following it (an NTP step
/// of a second or two is normal; a jump of hours is not).
pub(crate) const CLOCK_AHEAD_ALLOWANCE_MS: u64 = 2_000;

/// Block times: the wall clock, but never further ahead of the last block's time than
/// the monotonic time elapsed since plus `CLOCK_AHEAD_ALLOWANCE_MS`. A wall clock that
/// jumps forward would otherwise put a block, and so the chain's time for good, in the
/// future (block times never go back): expiring balances and closing sales early.
/// While the wall clock is ahead, block times advance at the monotonic rate from the
/// last good one, and the node alarms (error log, `machi_clock_ahead_ms`, `/v1/health`).
pub(crate) struct BlockClock {
    last_ms: u64,
    last_monotonic_ms: u64,
}

impl BlockClock {
    /// Anchors at the wall clock (the node may have been stopped for days), or at the
    /// head when the head is later, and alarms when it is later by more than the allowance
    /// (an earlier jump left the chain's time in the future, or the clock went back).
    pub(crate) fn start(shared: &Shared, head_ms: u64) -> BlockClock {
        let wall = shared.clock.now_ms();
        let behind = head_ms.saturating_sub(wall);
        if behind > CLOCK_AHEAD_ALLOWANCE_MS {
            tracing::error!(
                "the chain's head is {behind} ms ahead of this machine's clock: either the clock is wrong or \
                 an earlier clock jump put the chain's time in the future; block times stay at the head's \
                 until the clock passes it"
            );
            shared.metrics.head_ahead_of_clock_ms.store(behind, Ordering::Relaxed);
        }
        BlockClock { last_ms: wall.max(head_ms), last_monotonic_ms: shared.clock.monotonic_ms() }
    }

    /// The time for the next block.
    pub(crate) fn next(&mut self, shared: &Shared) -> u64 {
        let (wall, monotonic) = (shared.clock.now_ms(), shared.clock.monotonic_ms());
        let expected = self.last_ms.saturating_add(monotonic.saturating_sub(self.last_monotonic_ms));
        let metrics = &shared.metrics;
        let time = if wall > expected.saturating_add(CLOCK_AHEAD_ALLOWANCE_MS) {
            let ahead = wall - expected;
            if metrics.clock_ahead_ms.swap(ahead, Ordering::Relaxed) == 0 {
                tracing::error!(
                    "the system clock jumped {ahead} ms ahead of the time elapsed since the last block; block \
                     times follow the monotonic clock from the last block until the system clock is corrected"
                );
            }
            metrics.blocks_clock_bounded.fetch_add(1, Ordering::Relaxed);
            expected
        } else {
            if metrics.clock_ahead_ms.swap(0, Ordering::Relaxed) != 0 {
                tracing::warn!("the system clock is back in step with block times");
            }
            wall
        };
        if time >= self.last_ms {
            metrics.head_ahead_of_clock_ms.store(0, Ordering::Relaxed);
        }
        self.last_ms = self.last_ms.max(time);
        self.last_monotonic_ms = monotonic;
        time
    }
}

/// Writes checkpoints handed over by the producer, so the file write and fsync happen
/// while the producer goes on making blocks.
fn start_checkpoint_writer(shared: Arc<Shared>) -> (SyncSender<Checkpoint>, std::thread::JoinHandle<()>) {
    let (tx, rx) = sync_channel::<Checkpoint>(1);
    let handle = Part::vital("checkpoint writer")
        .spawn_thread("checkpoint", move || {
            for checkpoint in rx {
                if let Err(e) = shared.index.save_checkpoint(&checkpoint) {
                    tracing::warn!("state checkpoint not written: {e}");
                }
            }
        })
        .expect("checkpoint thread starts");
    (tx, handle)
}

/// Encodes a checkpoint and gives it to the writer; skipped if the writer is still busy
/// with the previous one.
fn hand_over_checkpoint(chain: &mut Chain, writer: &SyncSender<Checkpoint>) {
    if let Some(checkpoint) = chain.checkpoint() {
        if writer.try_send(checkpoint).is_err() {
            tracing::debug!("checkpoint writer busy; skipping this checkpoint");
        }
    }
}

pub(crate) fn run(
    shared: Arc<Shared>,
    replicas: Arc<Replicas>,
    producer: SigningKey,
    rx: Receiver<Submission>,
    mut clock: BlockClock,
) {
    let (checkpoints, writer) = start_checkpoint_writer(shared.clone());
    let mut last_block = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(s) => s,
            Err(RecvTimeoutError::Timeout) if shared.stopping.load(Ordering::Relaxed) => break,
            Err(RecvTimeoutError::Timeout) => {
                if last_block.elapsed() >= CHECKPOINT_IDLE {
                    let mut chain = shared.chain.blocking_write();
                    if chain.txs_since_checkpoint >= CHECKPOINT_IDLE_TXS {
                        hand_over_checkpoint(&mut chain, &checkpoints);
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut count = first.txs.len();
        let mut batch = vec![first];
        while count < BLOCK_TXS_MAX - SUBMIT_TXS_MAX {
            match rx.try_recv() {
                Ok(s) => {
                    count += s.txs.len();
                    batch.push(s);
                }
                Err(_) => break,
            }
        }
        let now_ms = clock.next(&shared);
        produce_one(&shared, &replicas, &producer, batch, now_ms, &checkpoints);
        last_block = Instant::now();
    }
    drop(checkpoints);
    let _ = writer.join();
    shared.chain.blocking_write().write_checkpoint(&shared.index);
    shared.index.flush();
}

fn produce_one(
    shared: &Shared,
    replicas: &Replicas,
    producer: &SigningKey,
    batch: Vec<Submission>,
    now_ms: u64,
    checkpoints: &SyncSender<Checkpoint>,
) {
    let started = Instant::now();
    let sizes: Vec<usize> = batch.iter().map(|s| s.txs.len()).collect();
    let mut replies = Vec::with_capacity(batch.len());
    let mut txs = Vec::with_capacity(sizes.iter().sum());
    for submission in batch {
        txs.extend(submission.txs);
        replies.push(submission.reply);
    }
    let ids: Vec<TxId> = txs.iter().map(|t| t.id).collect();
    let Some(replication) = replicas.get().filter(|r| r.can_produce()) else {
        return answer(replies, sizes, ids.iter().map(|id| not_leading(*id)).collect());
    };
    // A committed block not yet applied here (the disk refused it a moment ago) comes
    // first: a block made now would not follow it.
    if !replication.caught_up(CATCH_UP_WAIT) {
        return answer(replies, sizes, ids.iter().map(|id| storage_failure(*id)).collect());
    }
    let mut chain = shared.chain.blocking_write();
    if !chain.state.may_produce(&AccountId::of(producer)) {
        drop(chain);
        return answer(replies, sizes, ids.iter().map(|id| not_leading(*id)).collect());
    }
    let prev = chain.head.clone();
    let (block, results) = machi_ledger::produce(&mut chain.state, &prev, now_ms, txs, producer);
    if block.txs.is_empty() {
        // Everything was refused or already on the chain: nothing to write.
        let views = views_of(&chain, &ids, &results, None);
        drop(chain);
        answer(replies, sizes, views);
        return;
    }
    // The state holds the block; the chain's lock stays held until it is committed by a
    // majority and in the log, so no reader sees it before.
    let failure = match replication.propose(shared, &mut chain, &block) {
        Proposed::Committed => None,
        Proposed::StorageFailed(e) => {
            tracing::error!(
                "block {} could not be written: {e}; rebuilding state from the log",
                block.header.height
            );
            shared.metrics.storage_errors.fetch_add(1, Ordering::Relaxed);
            Some(storage_failure as fn(TxId) -> TxResultView)
        }
        Proposed::Unconfirmed(why) => {
            tracing::warn!(
                "block {} not confirmed: {why}; rebuilding state from the log",
                block.header.height
            );
            shared.metrics.proposals_unconfirmed.fetch_add(1, Ordering::Relaxed);
            Some(unconfirmed as fn(TxId) -> TxResultView)
        }
    };
    if let Some(failure) = failure {
        shared.recover(&mut chain);
        drop(chain);
        answer(replies, sizes, ids.iter().map(|id| failure(*id)).collect());
        return;
    }
    // Committed by a majority and durable here from now on.
    let involved = chain.commit_block(&block);
    let views = views_of(&chain, &ids, &results, Some(&block));
    if chain.txs_since_checkpoint >= CHECKPOINT_TXS_MAX {
        hand_over_checkpoint(&mut chain, checkpoints);
    }
    drop(chain);
    shared.metrics.record_block(&views, started.elapsed());
    shared.publish_events(&block, involved);
    answer(replies, sizes, views);
}

/// Each offered transaction's result: committed in `block`, already on the chain
/// (replay: the first outcome), or refused.
fn views_of(chain: &Chain, ids: &[TxId], results: &[TxResult], block: Option<&Block>) -> Vec<TxResultView> {
    ids.iter()
        .zip(results)
        .map(|(id, result)| match result {
            Ok(outcome) => {
                let block = block.expect("applied transactions are in the block");
                TxResultView::committed(*id, *outcome, block.header.height, block.hash())
            }
            Err(Refusal::Duplicate) => {
                let record = chain.state.txs[id];
                TxResultView::committed(
                    *id,
                    record.outcome,
                    record.height,
                    chain.hashes[record.height as usize],
                )
            }
            Err(refusal) => TxResultView::from_refusal(*id, *refusal),
        })
        .collect()
}

fn answer(replies: Vec<oneshot::Sender<Vec<TxResultView>>>, sizes: Vec<usize>, views: Vec<TxResultView>) {
    let mut views = views.into_iter();
    for (reply, size) in replies.into_iter().zip(sizes) {
        // A client that went away does not stop the others from hearing.
        let _ = reply.send(views.by_ref().take(size).collect());
    }
}

fn not_leading(id: TxId) -> TxResultView {
    TxResultView::refused(
        id,
        TxCode::NoLeader,
        "this replica does not lead now; nothing was committed, send the same transaction again".to_string(),
    )
}

fn unconfirmed(id: TxId) -> TxResultView {
    TxResultView::refused(
        id,
        TxCode::Unconfirmed,
        "the block holding it was not confirmed by a majority in time; it may still commit: send the same \
         transaction again to learn its outcome"
            .to_string(),
    )
}

fn storage_failure(id: TxId) -> TxResultView {
    TxResultView::refused(
        id,
        TxCode::StorageUnavailable,
        "the block could not be written to this replica's disk and is not applied yet; send the same \
         transaction again to learn its outcome"
            .to_string(),
    )
}
