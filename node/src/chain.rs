//! The chain as the node holds it: state and each account's history in memory, rebuilt
//! on start from the block log (from the index's state checkpoint when it matches the log).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context};
use machi_ledger::{replay, AccountId, Action, Block, BlockHeader, Hash32, SignatureCheck, State, TxBody};
use serde::{Deserialize, Serialize};

use crate::index::{Checkpoint, Index};
use crate::storage::{BlockLog, LogFile};

/// The clock the producer asks for block times (machi-host's, shared with the merchant API).
pub use machi_host::{now_ms, Clock, ManualClock, SystemClock};

/// How many of the newest blocks have every transaction signature re-checked on start.
pub(crate) const TAIL_VERIFY_BLOCKS: u64 = 64;
/// Decoded blocks kept for history and transaction look-ups.
const BLOCK_CACHE_BLOCKS: usize = 64;

pub fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("blocks.log")
}

pub fn index_path(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Recently decoded blocks, shared with readers that work outside the chain's lock.
type BlockCache = Arc<Mutex<VecDeque<(u64, Arc<Block>)>>>;

fn cached(cache: &BlockCache, height: u64) -> Option<Arc<Block>> {
    let cache = cache.lock().expect("block cache poisoned");
    cache.iter().find(|(h, _)| *h == height).map(|(_, block)| block.clone())
}

fn cache_block(cache: &BlockCache, height: u64, block: Arc<Block>) {
    let mut cache = cache.lock().expect("block cache poisoned");
    if cache.iter().any(|(h, _)| *h == height) {
        return;
    }
    if cache.len() == BLOCK_CACHE_BLOCKS {
        cache.pop_front();
    }
    cache.push_back((height, block));
}

fn decode_block(bytes: &[u8]) -> std::io::Result<Block> {
    Block::decode(bytes)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "block record does not decode"))
}

/// Blocks to read without holding the chain's lock: where each record is in the log,
/// copied under the lock. Blocks never change once written, so the records are read
/// and decoded afterwards, from a handle of the log file's own, while the producer
/// goes on committing.
pub(crate) struct BlockReads {
    format: crate::storage::LogFormat,
    /// Each wanted location with its record's start and the next record's start.
    wanted: Vec<(TxLoc, u64, u64)>,
    cache: BlockCache,
}

impl BlockReads {
    /// The blocks holding each wanted location, in order; `open` gives a handle on the
    /// log file (opened only when a block is not in the cache).
    pub(crate) fn read(
        self,
        open: impl Fn() -> std::io::Result<Box<dyn LogFile>>,
    ) -> std::io::Result<Vec<(TxLoc, Arc<Block>)>> {
        let mut file = None;
        let mut blocks = Vec::with_capacity(self.wanted.len());
        for (loc, start, next) in self.wanted {
            let block = match cached(&self.cache, loc.height) {
                Some(block) => block,
                None => {
                    let file = match &mut file {
                        Some(file) => file,
                        None => file.insert(open()?),
                    };
                    let bytes = crate::storage::read_located(file.as_ref(), self.format, start, next)?;
                    let block = Arc::new(decode_block(&bytes)?);
                    cache_block(&self.cache, loc.height, block.clone());
                    block
                }
            };
            blocks.push((loc, block));
        }
        Ok(blocks)
    }
}

/// Where a transaction is on the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxLoc {
    pub height: u64,
    pub index: u32,
}

pub struct Chain {
    pub state: State,
    pub head: BlockHeader,
    /// Block hash by height.
    pub hashes: Vec<Hash32>,
    pub txs_total: u64,
    /// Every account's transactions, in chain order.
    pub history: HashMap<AccountId, Vec<TxLoc>>,
    pub(crate) log: BlockLog,
    cache: BlockCache,
    pub(crate) txs_since_checkpoint: u64,
}

impl Chain {
    pub fn chain_id(&self) -> &str {
        &self.state.chain_id
    }

    /// A block from the log, through a small cache of decoded blocks.
    pub fn block(&self, height: u64) -> std::io::Result<Arc<Block>> {
        if let Some(block) = cached(&self.cache, height) {
            return Ok(block);
        }
        let block = Arc::new(decode_block(&self.log.read(height)?)?);
        cache_block(&self.cache, height, block.clone());
        Ok(block)
    }

    /// The newest `limit` transactions of an account, newest first, as reads to do after
    /// the chain's lock is released.
    pub(crate) fn history_reads(&self, id: &AccountId, limit: usize) -> BlockReads {
        let wanted = self
            .history
            .get(id)
            .into_iter()
            .flat_map(|locations| locations.iter().rev().take(limit))
            .filter_map(|loc| {
                let (start, next) = self.log.locate(loc.height)?;
                Some((*loc, start, next))
            })
            .collect();
        BlockReads { format: self.log.format(), wanted, cache: self.cache.clone() }
    }

    /// The block holding `loc`, as a read to do after the chain's lock is released.
    pub(crate) fn block_read(&self, loc: TxLoc) -> BlockReads {
        let wanted =
            self.log.locate(loc.height).map(|(start, next)| (loc, start, next)).into_iter().collect();
        BlockReads { format: self.log.format(), wanted, cache: self.cache.clone() }
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

    /// Opens the log, cuts a torn tail, and rebuilds state and history: from the
    /// checkpoint in `index` when it matches the log, else from genesis. Every replayed
    /// block's hash link, roots, outcomes and producer signature are checked, and the
    /// newest blocks' transaction signatures. A chain that fails any check is refused.
    pub fn open(file: Box<dyn LogFile>, index: Option<&Index>) -> anyhow::Result<Chain> {
        let started = std::time::Instant::now();
        let opened = BlockLog::open(file).context("opening the block log")?;
        tracing::info!("read {} blocks from the log in {:?}", opened.records.len(), started.elapsed());
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
        let records = opened.records;
        let decode_at =
            |h: usize| Block::decode(&records[h]).with_context(|| format!("block {h} does not decode"));
        let genesis = decode_at(0)?;
        let mut chain = Chain {
            state: State::new(&genesis.header.chain_id),
            head: genesis.header.clone(),
            hashes: Vec::with_capacity(records.len()),
            txs_total: 0,
            history: HashMap::new(),
            log: opened.log,
            cache: BlockCache::default(),
            txs_since_checkpoint: 0,
        };
        let mut prev: Option<BlockHeader> = None;
        if let Some(restored) = index.and_then(|i| usable_checkpoint(i, &records)) {
            chain.state = restored.state;
            chain.history = restored.history;
            chain.hashes = restored.hashes;
            chain.txs_total = restored.txs_total;
            prev = Some(decode_at(restored.height as usize)?.header);
        }
        let start = chain.hashes.len();
        tracing::info!(
            "checkpoint: resuming after block {} ({:?} since start)",
            start as i64 - 1,
            started.elapsed()
        );
        for height in start..records.len() {
            let block = decode_at(height)?;
            let check = if (height as u64) + TAIL_VERIFY_BLOCKS >= count {
                SignatureCheck::All
            } else {
                SignatureCheck::Skip
            };
            replay(&mut chain.state, prev.as_ref(), &block, check)
                .map_err(|e| anyhow!("refusing to serve a broken chain: {e}"))?;
            chain.record(&block);
            chain.hashes.push(block.hash());
            prev = Some(block.header);
        }
        if start > 0 {
            verify_tail(&records, &chain.hashes)?;
        }
        tracing::info!("replayed blocks {start}..{} ({:?} since start)", records.len(), started.elapsed());
        chain.state.check_full().map_err(|e| anyhow!("state rebuilt from the log is inconsistent: {e}"))?;
        tracing::info!("state checked ({:?} since start)", started.elapsed());
        chain.head = prev.unwrap_or(genesis.header);
        chain.txs_since_checkpoint = 0;
        Ok(chain)
    }

    /// Makes a block that was applied to `state` and appended to the log the head: its
    /// hash, the head, totals and every account's history. Returns the accounts each
    /// transaction concerns.
    pub(crate) fn commit_block(&mut self, block: &Block) -> Vec<Vec<AccountId>> {
        self.hashes.push(block.hash());
        self.head = block.header.clone();
        self.record(block)
    }

    /// Books a block that was applied to `state`: totals and every account's history.
    /// Returns the accounts each transaction concerns.
    pub(crate) fn record(&mut self, block: &Block) -> Vec<Vec<AccountId>> {
        let height = block.header.height;
        let mut involved_all = Vec::with_capacity(block.txs.len());
        for (index, tx) in block.txs.iter().enumerate() {
            let accounts = match TxBody::decode(&tx.body) {
                Ok(body) => involved(&self.state, tx.signer, &body),
                Err(_) => vec![tx.signer],
            };
            for account in &accounts {
                self.history.entry(*account).or_default().push(TxLoc { height, index: index as u32 });
            }
            involved_all.push(accounts);
        }
        self.txs_total += block.txs.len() as u64;
        self.txs_since_checkpoint += block.txs.len() as u64;
        involved_all
    }

    /// The state, history and hashes as of the head, encoded (under the chain lock:
    /// this is the part that must see a consistent state).
    pub(crate) fn checkpoint(&mut self) -> Option<Checkpoint> {
        let started = std::time::Instant::now();
        let encoded = postcard::to_allocvec(&self.state).and_then(|s| {
            Ok((s, postcard::to_allocvec(&self.history)?, postcard::to_allocvec(&self.hashes)?))
        });
        let (state, history, hashes) = match encoded {
            Ok(parts) => parts,
            Err(e) => {
                tracing::warn!("state checkpoint not encoded: {e}");
                return None;
            }
        };
        self.txs_since_checkpoint = 0;
        tracing::debug!("checkpoint at height {} encoded in {:?}", self.head.height, started.elapsed());
        Some(Checkpoint {
            height: self.head.height,
            hash: self.head.hash(),
            state,
            history,
            hashes,
            txs_total: self.txs_total,
        })
    }

    /// Encodes and writes a checkpoint now (best effort: the log is the source of truth).
    pub(crate) fn write_checkpoint(&mut self, index: &Index) {
        if let Some(checkpoint) = self.checkpoint() {
            if let Err(e) = index.save_checkpoint(&checkpoint) {
                tracing::warn!("state checkpoint not written: {e}");
            }
        }
    }
}

/// The checkpointed prefix was verified when it was written; still check the newest
/// blocks' links and producer signatures so a damaged end of the log is caught.
fn verify_tail(records: &[Vec<u8>], hashes: &[Hash32]) -> anyhow::Result<()> {
    let count = records.len() as u64;
    for h in count.saturating_sub(TAIL_VERIFY_BLOCKS).max(1)..count {
        let block =
            Block::decode(&records[h as usize]).with_context(|| format!("block {h} does not decode"))?;
        if block.header.prev_hash != hashes[h as usize - 1] || block.hash() != hashes[h as usize] {
            bail!("refusing to serve a broken chain: block {h}: hash link does not match");
        }
        machi_ledger::verify_producer(&block)
            .map_err(|_| anyhow!("refusing to serve a broken chain: block {h}: producer signature"))?;
    }
    Ok(())
}

type History = HashMap<AccountId, Vec<TxLoc>>;

struct Restored {
    height: u64,
    state: State,
    history: History,
    hashes: Vec<Hash32>,
    txs_total: u64,
}

/// The index's state checkpoint, if the block at its height is in the log with the hash
/// it recorded (the index is never trusted on its own).
fn usable_checkpoint(index: &Index, records: &[Vec<u8>]) -> Option<Restored> {
    let checkpoint = index.load_checkpoint()?;
    let block = Block::decode(records.get(usize::try_from(checkpoint.height).ok()?)?)?;
    if block.hash() != checkpoint.hash {
        tracing::warn!("the state checkpoint does not match the block log; replaying from genesis");
        return None;
    }
    let hashes: Vec<Hash32> = postcard::from_bytes(&checkpoint.hashes).ok()?;
    if hashes.len() as u64 != checkpoint.height + 1 || hashes.last() != Some(&checkpoint.hash) {
        return None;
    }
    // State and history are independent: decode them on two cores.
    let (state, history) = std::thread::scope(|scope| {
        let history = scope.spawn(|| postcard::from_bytes::<History>(&checkpoint.history).ok());
        let state = postcard::from_bytes::<State>(&checkpoint.state).ok();
        (state, history.join().ok().flatten())
    });
    Some(Restored {
        height: checkpoint.height,
        state: state?,
        history: history?,
        txs_total: checkpoint.txs_total,
        hashes,
    })
}

/// Everyone a transaction concerns: signer, named parties, and for refunds and
/// settlements the residents and shops behind the ids they name.
pub(crate) fn involved(state: &State, signer: AccountId, body: &TxBody) -> Vec<AccountId> {
    let mut accounts = vec![signer];
    accounts.extend(body.action.counterparties());
    match &body.action {
        Action::Refund { payment, .. } => {
            if let Some(p) = state.payments.get(payment) {
                accounts.push(state.current_key(p.payer));
            }
        }
        Action::SettleCashOuts { cash_outs, .. } => {
            accounts.extend(cash_outs.iter().filter_map(|c| state.cash_outs.get(c)).map(|c| c.shop));
        }
        _ => {}
    }
    accounts.sort_unstable();
    accounts.dedup();
    accounts
}
