//! The state machine every replica runs. Applying a committed entry means, for a block:
//! verify it completely (`machi_ledger::replay` with every signature and rule, the roots,
//! the hash, and a producer in office) and only then append it to the block log, the
//! source of truth. A block that does not replay halts this replica: it is not applied,
//! the replica keeps serving the last good state, says so in `/v1/health`, and Raft stops
//! on it (an error from `apply` is fatal to openraft).
//!
//! The leader's own block is the one exception to replaying: its producer already
//! applied it to the state under the chain's lock (and holds that lock while the block is
//! replicated, so no reader sees it before it commits). When that block comes back
//! committed, it is only appended to the log; the producer then books it.
//!
//! A committed block that the disk refuses is tried again for a while (the disk may come
//! back: a full disk cleared, a remount); if it stays refused this replica halts, and
//! replicas with working disks go on.
//!
//! `sm.meta` (in `DIR/raft/`) keeps the last applied log id and the membership. Applying
//! is idempotent by height (a block already in the log is recognised by its hash), so the
//! file is synced only when the membership changed; after a crash Raft re-applies what the
//! file missed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use machi_ledger::{replay, Block, Hash32, SignatureCheck};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};

use super::{ApplyOutcome, BlockProposal, ChainTip, ReplicaId, ReplicaNode, TypeConfig};
use crate::shared::{Halt, Shared};

type SResult<T> = Result<T, StorageError<ReplicaId>>;

/// A committed block the disk refuses is tried again, first after this pause, doubling up
/// to `DISK_RETRY_MAX`, for `DISK_RETRY_FOR` in all; then this replica halts (the others,
/// whose disks work, go on without it).
const DISK_RETRY_FIRST: Duration = Duration::from_millis(50);
const DISK_RETRY_MAX: Duration = Duration::from_secs(1);
const DISK_RETRY_FOR: Duration = Duration::from_secs(10);

pub(crate) fn meta_path(raft_dir: &Path) -> PathBuf {
    raft_dir.join("sm.meta")
}

/// What the state machine keeps beside the block log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MachineMeta {
    pub(crate) last_applied: Option<LogId<ReplicaId>>,
    pub(crate) membership: StoredMembership<ReplicaId, ReplicaNode>,
    /// The last snapshot built or installed: the chain up to its tip.
    pub(crate) snapshot: Option<(SnapshotMeta<ReplicaId, ReplicaNode>, ChainTip)>,
}

impl MachineMeta {
    fn load(path: &Path) -> io::Result<MachineMeta> {
        match std::fs::read(path) {
            Ok(bytes) => postcard::from_bytes(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MachineMeta::default()),
            Err(e) => Err(e),
        }
    }

    fn save(&self, path: &Path, durable: bool) -> io::Result<()> {
        let bytes = postcard::to_allocvec(self).expect("meta encodes");
        if !durable {
            // Written beside the file and renamed over it: a replica killed meanwhile
            // leaves the old meta or the new one, never an empty or partial one (which
            // would stop it from starting). Not synced: after a crash Raft applies again
            // what the file on disk missed.
            let aside = path.with_extension("meta.next");
            std::fs::write(&aside, bytes)?;
            return std::fs::rename(&aside, path);
        }
        machi_host::write_durable(path, &bytes)
    }
}

/// The node's state machine: the chain in `Shared`, and `sm.meta`.
#[derive(Clone)]
pub(crate) struct ChainMachine {
    shared: Arc<Shared>,
    meta: Arc<std::sync::Mutex<MachineMeta>>,
    meta_path: PathBuf,
}

impl ChainMachine {
    pub(crate) fn open(shared: Arc<Shared>, raft_dir: &Path) -> io::Result<ChainMachine> {
        let meta_path = meta_path(raft_dir);
        let meta = MachineMeta::load(&meta_path)?;
        Ok(ChainMachine { shared, meta: Arc::new(std::sync::Mutex::new(meta)), meta_path })
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, MachineMeta> {
        self.meta.lock().expect("machine meta")
    }

    fn tip(&self) -> ChainTip {
        let chain = self.shared.chain.blocking_read();
        ChainTip { height: chain.head.height, hash: chain.head.hash() }
    }

    /// Applies one committed block, off the async threads.
    async fn apply_block(&self, log_id: LogId<ReplicaId>, proposal: BlockProposal) -> SResult<ApplyOutcome> {
        let shared = self.shared.clone();
        let applied = tokio::task::spawn_blocking(move || match proposal.decode() {
            Ok(block) => apply_committed(&shared, &block),
            Err(e) => Err(Refused::Halt(format!("a committed entry does not hold a block: {e}"))),
        })
        .await
        .map_err(|e| apply_error(log_id, format!("the apply task failed: {e}")))?;
        match applied {
            Ok(outcome) => Ok(outcome),
            Err(Refused::Halt(reason)) => {
                let height = self.shared.chain.read().await.head.height + 1;
                self.shared.halt(Halt { height, log_index: log_id.index, reason: reason.clone() });
                Err(apply_error(log_id, format!("halted at block {height}: {reason}")))
            }
            Err(Refused::Storage(e)) => {
                let height = self.shared.chain.read().await.head.height + 1;
                let reason = format!("the block log could not be written for {DISK_RETRY_FOR:?}: {e}");
                self.shared.halt(Halt { height, log_index: log_id.index, reason: reason.clone() });
                Err(apply_error(log_id, reason))
            }
        }
    }
}

fn apply_error(log_id: LogId<ReplicaId>, reason: String) -> StorageError<ReplicaId> {
    StorageIOError::apply(log_id, AnyError::error(reason)).into()
}

/// Why a committed block was not applied.
pub(crate) enum Refused {
    /// It does not verify: this replica halts.
    Halt(String),
    /// The disk failed: nothing was applied, and the state was rebuilt from the log.
    Storage(io::Error),
}

/// Applies a committed block to the chain: the producer's own (already applied to the
/// state, so only appended, by the producer, which holds the chain's lock), or another's
/// (verified by replay, then appended). A block that does not follow the chain's tip was
/// produced on a tip another block replaced: it is skipped, alike on every replica.
/// Blocking: runs off the async threads.
pub(crate) fn apply_committed(shared: &Shared, block: &Block) -> Result<ApplyOutcome, Refused> {
    let hash = block.hash();
    let height = block.header.height;
    match append_own(shared, &hash) {
        Some(Ok(())) => return Ok(ApplyOutcome::Applied { height, hash }),
        // The producer rebuilt its state without the block; it is applied like anyone's.
        Some(Err(e)) => tracing::error!("block {height} could not be appended: {e}; trying again"),
        None => {}
    }
    let started = Instant::now();
    let mut pause = DISK_RETRY_FIRST;
    loop {
        match apply_verified(shared, block) {
            Err(Refused::Storage(e))
                if started.elapsed() < DISK_RETRY_FOR && !shared.stopping.load(Ordering::Relaxed) =>
            {
                shared.metrics.storage_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("block {height} could not be appended: {e}; trying again in {pause:?}");
                std::thread::sleep(pause);
                pause = (pause * 2).min(DISK_RETRY_MAX);
            }
            applied => return applied,
        }
    }
}

/// Verifies `block` by replay and appends it, if it follows the chain's tip.
fn apply_verified(shared: &Shared, block: &Block) -> Result<ApplyOutcome, Refused> {
    let hash = block.hash();
    let height = block.header.height;
    let mut chain = shared.chain.blocking_write();
    if height <= chain.head.height {
        let same = chain.hashes.get(height as usize) == Some(&hash);
        return Ok(if same { ApplyOutcome::Applied { height, hash } } else { ApplyOutcome::Stale });
    }
    if height != chain.head.height + 1 || block.header.prev_hash != chain.head.hash() {
        return Ok(ApplyOutcome::Stale);
    }
    let prev = chain.head.clone();
    if let Err(e) = replay(&mut chain.state, Some(&prev), block, SignatureCheck::All) {
        // The state may hold part of the block: rebuild it from the log, which does not.
        shared.recover(&mut chain);
        return Err(Refused::Halt(e.to_string()));
    }
    if let Err(e) = chain.log.append(&block.encode()) {
        shared.recover(&mut chain);
        return Err(Refused::Storage(e));
    }
    let involved = chain.commit_block(block);
    drop(chain);
    shared.publish_events(block, involved);
    Ok(ApplyOutcome::Applied { height, hash })
}

/// If the producer is waiting for this block, it appends it (it holds the chain's lock)
/// and says whether the write held. `None` when it is not this replica's block, or the
/// producer stopped waiting for it (then it is applied like anyone's).
fn append_own(shared: &Shared, hash: &Hash32) -> Option<io::Result<()>> {
    let append = {
        let own = shared.own.lock().expect("own proposal");
        own.as_ref().filter(|o| o.hash == *hash).map(|o| o.append.clone())?
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    append.blocking_send(reply).ok()?;
    answer.blocking_recv().ok()
}

impl RaftSnapshotBuilder<TypeConfig> for ChainMachine {
    /// The snapshot is the chain up to the tip: the block log is append-only and synced,
    /// so naming the tip is the whole of it.
    async fn build_snapshot(&mut self) -> SResult<Snapshot<TypeConfig>> {
        let this = self.clone();
        let tip = tokio::task::spawn_blocking(move || this.tip()).await.map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::error(e.to_string())))
        })?;
        let mut meta = self.meta();
        let snapshot = SnapshotMeta {
            last_log_id: meta.last_applied,
            last_membership: meta.membership.clone(),
            snapshot_id: format!("{}-{}", tip.height, meta.last_applied.map_or(0, |id| id.index)),
        };
        meta.snapshot = Some((snapshot.clone(), tip));
        meta.save(&self.meta_path, true).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Ok(Snapshot { meta: snapshot, snapshot: Box::new(tip) })
    }
}

impl RaftStateMachine<TypeConfig> for ChainMachine {
    type SnapshotBuilder = ChainMachine;

    async fn applied_state(
        &mut self,
    ) -> SResult<(Option<LogId<ReplicaId>>, StoredMembership<ReplicaId, ReplicaNode>)> {
        let meta = self.meta();
        Ok((meta.last_applied, meta.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> SResult<Vec<ApplyOutcome>>
    where
        I: IntoIterator<Item = openraft::Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut outcomes = Vec::new();
        let mut membership_changed = false;
        for entry in entries {
            let outcome = match entry.payload {
                EntryPayload::Blank => ApplyOutcome::NotBlock,
                EntryPayload::Membership(membership) => {
                    self.meta().membership = StoredMembership::new(Some(entry.log_id), membership);
                    membership_changed = true;
                    ApplyOutcome::NotBlock
                }
                EntryPayload::Normal(proposal) => self.apply_block(entry.log_id, proposal).await?,
            };
            self.meta().last_applied = Some(entry.log_id);
            outcomes.push(outcome);
        }
        let meta = self.meta().clone();
        meta.save(&self.meta_path, membership_changed)
            .map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> ChainMachine {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> SResult<Box<ChainTip>> {
        Ok(Box::default())
    }

    /// The blocks up to the snapshot's tip were pulled, verified and appended before the
    /// snapshot was handed to Raft (`receiver.rs`): here the chain must stand at that tip.
    async fn install_snapshot(
        &mut self,
        snapshot_meta: &SnapshotMeta<ReplicaId, ReplicaNode>,
        snapshot: Box<ChainTip>,
    ) -> SResult<()> {
        let this = self.clone();
        let tip = tokio::task::spawn_blocking(move || this.tip()).await.map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::error(e.to_string())))
        })?;
        if tip != *snapshot {
            let reason = format!(
                "the chain stands at {} {}, the snapshot at {} {}",
                tip.height, tip.hash, snapshot.height, snapshot.hash
            );
            return Err(StorageIOError::write_snapshot(
                Some(snapshot_meta.signature()),
                AnyError::error(reason),
            )
            .into());
        }
        let mut meta = self.meta();
        meta.last_applied = snapshot_meta.last_log_id;
        meta.membership = snapshot_meta.last_membership.clone();
        meta.snapshot = Some((snapshot_meta.clone(), *snapshot));
        meta.save(&self.meta_path, true).map_err(|e| StorageIOError::write_state_machine(&e))?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> SResult<Option<Snapshot<TypeConfig>>> {
        let meta = self.meta();
        Ok(meta.snapshot.clone().map(|(meta, tip)| Snapshot { meta, snapshot: Box::new(tip) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sm.meta` is saved after every batch of applied entries, so a replica killed at any
    /// moment may be killed while saving it: what is on disk then must still load. A
    /// reader watching the file while it is saved over and over sees what a kill at that
    /// moment would leave.
    #[test]
    fn the_meta_on_disk_loads_at_every_moment_of_a_save() {
        const SAVES: u64 = 2_000;
        let dir = tempfile::tempdir().unwrap();
        let path = meta_path(dir.path());
        let meta = |index: u64| MachineMeta {
            last_applied: Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index)),
            ..MachineMeta::default()
        };
        meta(0).save(&path, true).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let (loads, last) = std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut loads = 0u64;
                let mut last = 0;
                while !done.load(Ordering::Relaxed) {
                    let loaded = MachineMeta::load(&path)
                        .unwrap_or_else(|e| panic!("after {loads} good loads the meta did not load: {e}"));
                    let index = loaded.last_applied.expect("a saved meta names its last entry").index;
                    assert!(index >= last, "the meta went back from {last} to {index}");
                    (loads, last) = (loads + 1, index);
                }
                (loads, last)
            });
            for index in 1..=SAVES {
                meta(index).save(&path, false).unwrap();
            }
            done.store(true, Ordering::Relaxed);
            reader.join().unwrap()
        });
        assert!(loads > 0 && last <= SAVES);
        assert_eq!(MachineMeta::load(&path).unwrap(), meta(SAVES));
    }
}
