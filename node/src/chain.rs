//! The chain as the node holds it: state in memory, rebuilt on start from the block log
//! (from a sled checkpoint when one matches), and the single-writer block producer.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use machi_ledger::api::{TxEvent, TxResultView, TxStatus};
use machi_ledger::{
    replay, Action, Block, BlockHeader, Hash32, Outcome, Refusal, SignatureCheck, SigningKey,
    State, TxBody, VerifiedTx, BLOCK_TXS_MAX,
};
use tokio::sync::oneshot;

use crate::index::{Checkpoint, Index, IndexedTx};
use crate::storage::{BlockLog, LogFile};
use crate::Shared;

/// How many of the newest blocks have every transaction signature re-checked on start.
pub(crate) const TAIL_VERIFY_BLOCKS: u64 = 64;
/// A state checkpoint is written to sled after this many transactions.
pub(crate) const CHECKPOINT_TXS: u64 = 200_000;

pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("blocks.log")
}

pub fn index_path(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

pub struct Chain {
    pub state: State,
    pub head: BlockHeader,
    /// Block hash by height.
    pub hashes: Vec<Hash32>,
    pub txs_total: u64,
    log: BlockLog,
    txs_since_checkpoint: u64,
}

impl Chain {
    pub fn chain_id(&self) -> &str {
        &self.state.chain_id
    }

    pub fn read_block(&self, height: u64) -> std::io::Result<Block> {
        let bytes = self.log.read(height)?;
        Block::decode(&bytes).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "block record does not decode",
            )
        })
    }

    /// Creates a new chain's log with its genesis block.
    pub fn create(file: Box<dyn LogFile>, genesis: &Block) -> anyhow::Result<()> {
        let opened = BlockLog::open(file)?;
        if opened.log.count() != 0 {
            bail!("a block log already exists here");
        }
        let mut log = opened.log;
        log.append(&genesis.encode())?;
        Ok(())
    }

    /// Opens the log, cuts a torn tail, and rebuilds state: from the checkpoint in `index`
    /// when it matches the log, else from genesis. Every block's hash link, roots,
    /// outcomes and producer signature are checked; the newest blocks' transaction
    /// signatures too. A chain that fails any check is refused.
    pub fn open(file: Box<dyn LogFile>, index: Option<&Index>) -> anyhow::Result<Chain> {
        let opened = BlockLog::open(file).context("opening the block log")?;
        if opened.cut_bytes > 0 {
            tracing::warn!(
                "cut {} bytes of a torn last record from the block log (an unacknowledged block)",
                opened.cut_bytes
            );
        }
        let count = opened.records.len() as u64;
        if count == 0 {
            bail!("the block log is empty: run `machi-node init` first");
        }
        let blocks: Vec<Block> = opened
            .records
            .iter()
            .enumerate()
            .map(|(h, bytes)| {
                Block::decode(bytes).with_context(|| format!("block {h} does not decode"))
            })
            .collect::<anyhow::Result<_>>()?;
        let chain_id = blocks[0].header.chain_id.clone();
        let (mut state, start) = match index.and_then(|i| usable_checkpoint(i, &blocks)) {
            Some((state, height)) => (state, height + 1),
            None => (State::new(&chain_id), 0),
        };
        let mut txs_total: u64 = blocks[..start as usize]
            .iter()
            .map(|b| b.txs.len() as u64)
            .sum();
        for (height, block) in blocks.iter().enumerate().skip(start as usize) {
            let height = height as u64;
            let prev = height.checked_sub(1).map(|p| &blocks[p as usize].header);
            let check = if height + TAIL_VERIFY_BLOCKS >= count {
                SignatureCheck::All
            } else {
                SignatureCheck::Skip
            };
            replay(&mut state, prev, block, check)
                .map_err(|e| anyhow::anyhow!("refusing to serve a broken chain: {e}"))?;
            txs_total += block.txs.len() as u64;
        }
        if start > 0 {
            // The checkpointed prefix was verified when it was written; still check the
            // tail's links and signatures so a damaged end of the log is caught.
            let tail_from = count.saturating_sub(TAIL_VERIFY_BLOCKS).max(1);
            for h in tail_from..count {
                let (prev, block) = (&blocks[h as usize - 1], &blocks[h as usize]);
                if block.header.prev_hash != prev.hash() {
                    bail!("refusing to serve a broken chain: block {h}: prev_hash does not match");
                }
                machi_ledger::verify_producer(block).map_err(|_| {
                    anyhow::anyhow!(
                        "refusing to serve a broken chain: block {h}: producer signature"
                    )
                })?;
            }
        }
        state
            .check_full()
            .map_err(|e| anyhow::anyhow!("state rebuilt from the log is inconsistent: {e}"))?;
        let hashes = blocks.iter().map(Block::hash).collect();
        let head = blocks.last().expect("not empty").header.clone();
        Ok(Chain {
            state,
            head,
            hashes,
            txs_total,
            log: opened.log,
            txs_since_checkpoint: 0,
        })
    }
}

fn usable_checkpoint(index: &Index, blocks: &[Block]) -> Option<(State, u64)> {
    let checkpoint = index.load_checkpoint()?;
    let block = blocks.get(usize::try_from(checkpoint.height).ok()?)?;
    if block.hash() != checkpoint.hash {
        tracing::warn!("the state checkpoint does not match the block log; replaying from genesis");
        return None;
    }
    let state: State = postcard::from_bytes(&checkpoint.state).ok()?;
    Some((state, checkpoint.height))
}

/// One client request's worth of verified transactions waiting for a block.
pub(crate) struct Submission {
    pub txs: Vec<VerifiedTx>,
    pub reply: oneshot::Sender<Vec<TxResultView>>,
}

/// Work handed to the indexer thread after a block is durable.
pub(crate) struct Committed {
    pub height: u64,
    pub txs: Vec<IndexedTx>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Where block times come from. The ledger never reads a clock; the producer asks this.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
}

/// A clock that moves only when told: tests move a town through its sale, spending
/// period and expiry without waiting for the calendar.
pub struct ManualClock(pub std::sync::atomic::AtomicU64);

impl ManualClock {
    pub fn new(ms: u64) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicU64::new(ms))
    }

    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The single writer. Takes every waiting submission (group commit), applies them in
/// order, appends and syncs one block, and only then answers the clients.
pub(crate) fn run_producer(
    shared: Arc<Shared>,
    producer: SigningKey,
    rx: Receiver<Submission>,
    indexer: std::sync::mpsc::SyncSender<Committed>,
) {
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(s) => s,
            Err(RecvTimeoutError::Timeout) => {
                if shared.stopping.load(Ordering::Relaxed) {
                    break;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = vec![first];
        let mut count = batch[0].txs.len();
        while count < BLOCK_TXS_MAX - machi_ledger::api::SUBMIT_TXS_MAX {
            match rx.try_recv() {
                Ok(s) => {
                    count += s.txs.len();
                    batch.push(s);
                }
                Err(_) => break,
            }
        }
        produce_one(&shared, &producer, batch, &indexer);
    }
    let chain = shared.chain.blocking_read();
    write_checkpoint(&shared, &chain);
}

fn produce_one(
    shared: &Shared,
    producer: &SigningKey,
    batch: Vec<Submission>,
    indexer: &std::sync::mpsc::SyncSender<Committed>,
) {
    let started = Instant::now();
    let mut chain = shared.chain.blocking_write();
    let sizes: Vec<usize> = batch.iter().map(|s| s.txs.len()).collect();
    let mut replies = Vec::with_capacity(batch.len());
    let mut txs = Vec::with_capacity(sizes.iter().sum());
    for submission in batch {
        txs.extend(submission.txs);
        replies.push(submission.reply);
    }
    let ids: Vec<_> = txs.iter().map(|t| t.id).collect();
    let bodies: Vec<(TxBody, machi_ledger::AccountId, Vec<u8>)> = txs
        .iter()
        .map(|t| (t.body.clone(), t.signed.signer, t.signed.body.clone()))
        .collect();
    let prev = chain.head.clone();
    let (block, results) = machi_ledger::produce(
        &mut chain.state,
        &prev,
        shared.clock.now_ms(),
        txs,
        producer,
    );
    if block.txs.is_empty() {
        // Everything was refused or already on the chain: nothing to write.
        drop(chain);
        answer_without_block(shared, &ids, &results, replies, sizes);
        return;
    }
    let bytes = block.encode();
    if let Err(e) = chain.log.append(&bytes) {
        tracing::error!(
            "block {} could not be written: {e}; rebuilding state from the log",
            block.header.height
        );
        shared
            .metrics
            .storage_errors
            .fetch_add(1, Ordering::Relaxed);
        recover(shared, &mut chain);
        drop(chain);
        for (reply, size) in replies.into_iter().zip(sizes) {
            let views = (0..size).map(|_| storage_failure()).collect();
            let _ = reply.send(views);
        }
        return;
    }
    let height = block.header.height;
    let hash = block.hash();
    chain.hashes.push(hash);
    chain.head = block.header.clone();
    chain.txs_total += block.txs.len() as u64;
    chain.txs_since_checkpoint += block.txs.len() as u64;

    let mut views = Vec::with_capacity(results.len());
    let mut committed = Vec::with_capacity(block.txs.len());
    for ((id, result), (body, signer, body_bytes)) in ids.iter().zip(&results).zip(bodies) {
        match result {
            Ok(outcome) => {
                views.push(TxResultView::committed(*id, *outcome, height, hash));
                let accounts = involved(&chain.state, *id, signer, &body);
                let index = committed.len() as u32;
                committed.push(IndexedTx {
                    height,
                    index,
                    timestamp_ms: block.header.timestamp_ms,
                    signer,
                    outcome: *outcome,
                    body: body_bytes,
                    accounts,
                });
            }
            Err(Refusal::Duplicate) => {
                let record = chain.state.txs[id];
                views.push(TxResultView::committed(
                    *id,
                    record.outcome,
                    record.height,
                    chain.hashes[record.height as usize],
                ));
            }
            Err(refusal) => views.push(TxResultView::from_refusal(*id, *refusal)),
        }
    }
    if chain.txs_since_checkpoint >= CHECKPOINT_TXS {
        write_checkpoint(shared, &chain);
        chain.txs_since_checkpoint = 0;
    }
    drop(chain);
    shared.metrics.record_block(&views, started.elapsed());
    publish_events(shared, &committed);
    let mut views = views.into_iter();
    for (reply, size) in replies.into_iter().zip(sizes) {
        let _ = reply.send(views.by_ref().take(size).collect());
    }
    // The index is rebuilt from the log if this is lost, so never block the writer on it.
    if indexer
        .try_send(Committed {
            height,
            txs: committed,
        })
        .is_err()
    {
        shared
            .metrics
            .index_lag_drops
            .fetch_add(1, Ordering::Relaxed);
        shared.index_stale.store(true, Ordering::Relaxed);
    }
}

fn answer_without_block(
    shared: &Shared,
    ids: &[machi_ledger::TxId],
    results: &[machi_ledger::TxResult],
    replies: Vec<oneshot::Sender<Vec<TxResultView>>>,
    sizes: Vec<usize>,
) {
    let chain = shared.chain.blocking_read();
    let mut views = ids.iter().zip(results).map(|(id, result)| match result {
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
        Ok(_) => unreachable!("an empty block applied nothing"),
    });
    for (reply, size) in replies.into_iter().zip(sizes) {
        let _ = reply.send(views.by_ref().take(size).collect());
    }
}

fn storage_failure() -> TxResultView {
    TxResultView::refused(
        machi_ledger::TxId::default(),
        "storage_unavailable",
        "the block could not be written to disk; nothing was committed, try again".to_string(),
    )
}

/// After a failed write the in-memory state has the failed block applied: throw it away
/// and rebuild from what is durable.
fn recover(shared: &Shared, chain: &mut Chain) {
    let file = match (shared.reopen_log)() {
        Ok(file) => file,
        Err(e) => panic!("block log cannot be reopened after a failed write: {e}"),
    };
    match Chain::open(file, None) {
        Ok(fresh) => *chain = fresh,
        Err(e) => panic!("state cannot be rebuilt after a failed write: {e}"),
    }
}

/// Everyone a transaction concerns: signer, named parties, and for refunds and
/// settlements the residents and shops behind the ids they name.
fn involved(
    state: &State,
    _id: machi_ledger::TxId,
    signer: machi_ledger::AccountId,
    body: &TxBody,
) -> Vec<machi_ledger::AccountId> {
    let mut accounts = vec![signer];
    accounts.extend(body.action.counterparties());
    match &body.action {
        Action::Refund { payment, .. } => {
            if let Some(p) = state.payments.get(payment) {
                accounts.push(state.current_key(p.payer));
            }
        }
        Action::SettleCashOuts { cash_outs, .. } => {
            accounts.extend(
                cash_outs
                    .iter()
                    .filter_map(|c| state.cash_outs.get(c))
                    .map(|c| c.shop),
            );
        }
        _ => {}
    }
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}

fn publish_events(shared: &Shared, committed: &[IndexedTx]) {
    if shared.events.receiver_count() == 0 || committed.is_empty() {
        return;
    }
    let chain_id = &shared.chain_id;
    let events: Vec<TxEvent> = committed
        .iter()
        .filter_map(|tx| {
            let body = TxBody::decode(&tx.body).ok()?;
            let (status, reason) = match tx.outcome {
                Outcome::Applied => (TxStatus::Applied, None),
                Outcome::Rejected(r) => (TxStatus::Rejected, Some(r.name().to_string())),
            };
            Some(TxEvent {
                tx_id: machi_ledger::tx_id(chain_id, &tx.signer, &tx.body),
                height: tx.height,
                timestamp_ms: tx.timestamp_ms,
                kind: body.action.kind_name().to_string(),
                status,
                reason,
                signer: tx.signer,
                accounts: tx.accounts.clone(),
                body,
            })
        })
        .collect();
    let _ = shared.events.send(Arc::new(events));
}

fn write_checkpoint(shared: &Shared, chain: &Chain) {
    let state = match postcard::to_allocvec(&chain.state) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!("state checkpoint not encoded: {e}");
            return;
        }
    };
    let checkpoint = Checkpoint {
        height: chain.head.height,
        hash: chain.head.hash(),
        state,
    };
    if let Err(e) = shared.index.save_checkpoint(&checkpoint) {
        tracing::warn!("state checkpoint not written: {e}");
    }
}

/// Indexes committed blocks into sled, off the acknowledgement path.
pub(crate) fn run_indexer(shared: Arc<Shared>, rx: Receiver<Committed>) {
    for committed in rx {
        if let Err(e) = shared.index.index_block(committed.height, &committed.txs) {
            tracing::warn!("indexing block {} failed: {e}", committed.height);
            shared.index_stale.store(true, Ordering::Relaxed);
        }
        shared.indexed_height.send_replace(committed.height);
    }
    shared.index.flush();
}

/// Brings the index up to the log's head on start: re-indexes every block after the last
/// one indexed (all of them if the index is new, was dropped, or disagrees).
pub(crate) fn reindex(chain: &Chain, index: &Index) -> anyhow::Result<()> {
    let head = chain.head.height;
    let from = match index.indexed_height() {
        Some(h) if h <= head => h + 1,
        Some(_) => {
            index.clear()?;
            0
        }
        None => 0,
    };
    let mut state = State::new(chain.chain_id());
    let replay_needed = from <= head;
    if !replay_needed {
        return Ok(());
    }
    tracing::info!("indexing blocks {from}..={head}");
    // Refund and settlement parties need the state as of each block: replay from genesis.
    let mut prev: Option<BlockHeader> = None;
    for height in 0..=head {
        let block = chain.read_block(height)?;
        replay(&mut state, prev.as_ref(), &block, SignatureCheck::Skip)?;
        if height >= from {
            let chain_id = chain.chain_id();
            let txs: Vec<IndexedTx> = block
                .txs
                .iter()
                .zip(&block.outcomes)
                .enumerate()
                .filter_map(|(i, (tx, outcome))| {
                    let body = TxBody::decode(&tx.body).ok()?;
                    let id = tx.id(chain_id);
                    Some(IndexedTx {
                        height,
                        index: i as u32,
                        timestamp_ms: block.header.timestamp_ms,
                        signer: tx.signer,
                        outcome: *outcome,
                        body: tx.body.clone(),
                        accounts: involved(&state, id, tx.signer, &body),
                    })
                })
                .collect();
            index.index_block(height, &txs)?;
        }
        prev = Some(block.header);
    }
    index.flush();
    Ok(())
}
