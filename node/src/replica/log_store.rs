//! `RaftLog`: this replica's Raft log, vote and commit index, durable in one append-only
//! file, `DIR/raft/raft.log`, framed like the block log (`storage::BlockLog`: each record
//! COBS-stuffed with its length and CRC, fdatasynced before the next is written; on open a
//! torn tail is cut and damage in the middle refused).
//!
//! Each framed record is one write: a postcard `Vec<Record>` applied in order, all or
//! nothing. The records are `Entries` (appended after the last entry, no holes), `Vote`,
//! `Committed`, `Truncate { since }` and `Purge { upto }`. Opening the file replays them
//! into the vote, the commit index, the last purged log id and the entries after it, all
//! held in memory.
//!
//! Durability, as openraft 0.9 requires: an append's callback fires only once its record
//! is fdatasynced (with the error if the write or the sync failed, which stops this Raft
//! instance); `save_vote`, `truncate` and `purge` return once theirs is. The commit index
//! needs no sync of its own (openraft only uses it to re-apply entries sooner after a
//! restart), so it rides in the next write. One writer thread owns the file and takes the
//! writes in the order they were made, so no file I/O runs on async threads and vote and
//! log writes are serialized. After a failed write it refuses every later one: after a
//! failed fdatasync nothing in memory can be trusted to match the disk, so the node
//! reopens the log.
//!
//! Compaction: once the file holds much more than the live entries (purged and truncated
//! entries, old votes), a copy holding only the live state is written aside by another
//! thread while writes go on, the writes made meanwhile are added to it, and it is synced
//! and renamed over the log, and the folder fsynced. A crash before the rename leaves the
//! old file; after it, the new one; both hold every acknowledged write.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File};
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::{ReplicaId, TypeConfig};
use crate::storage::{BlockLog, DiskFile, LogFile};

type RaftEntry = Entry<TypeConfig>;
type SResult<T> = Result<T, StorageError<ReplicaId>>;

/// Most bytes of entries one read of the log returns, so one AppendEntries (which carries
/// one read) stays small enough to cross the link and be synced within the heartbeat
/// interval. A single larger entry is still returned alone.
pub(crate) const RPC_ENTRIES_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// Most bytes of entries in one record; a larger append becomes several records, each
/// synced (the block log refuses records over 64 MiB).
const RECORD_ENTRIES_BYTES_MAX: u64 = 32 * 1024 * 1024;
/// The file name of the log inside `DIR/raft/`, and of its rewrite while compacting.
const LOG_FILE: &str = "raft.log";
const ASIDE_FILE: &str = "raft.log.compacting";

/// When the log file is rewritten: once it holds more than twice the live entries, in
/// records or in bytes, and more than these minimums, so that compaction is rare.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CompactAt {
    pub(crate) records_min: u64,
    pub(crate) bytes_min: u64,
}

impl Default for CompactAt {
    fn default() -> CompactAt {
        CompactAt { records_min: 4_096, bytes_min: 64 * 1024 * 1024 }
    }
}

/// `DIR/raft/raft.log`.
pub(crate) fn raft_log_path(data_dir: &Path) -> PathBuf {
    data_dir.join("raft").join(LOG_FILE)
}

/// One change to the log's state. A framed record holds a list of them.
#[derive(Debug, Serialize, Deserialize)]
enum Record<E = Vec<RaftEntry>> {
    Entries(E),
    Vote(Vote<ReplicaId>),
    Committed(Option<LogId<ReplicaId>>),
    Truncate { since: u64 },
    Purge { upto: LogId<ReplicaId> },
}

/// What the writer thread has done, for metrics and for whoever waits on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LogStats {
    /// Records written and fdatasynced since the log was opened.
    pub(crate) writes: u64,
    /// Rewrites of the file installed since the log was opened.
    pub(crate) compactions: u64,
    /// The first write error; every write after it is refused.
    pub(crate) failed: Option<String>,
    /// The writer thread has ended (every handle on the log was dropped).
    pub(crate) closed: bool,
}

/// A live entry and the bytes it takes in postcard.
#[derive(Clone)]
struct Held {
    entry: Arc<RaftEntry>,
    bytes: u64,
}

/// The log's state, as of every write handed to the writer.
#[derive(Default)]
struct Mem {
    vote: Option<Vote<ReplicaId>>,
    committed: Option<LogId<ReplicaId>>,
    /// The commit index changed since it was last put in a write.
    committed_unwritten: bool,
    last_purged: Option<LogId<ReplicaId>>,
    entries: BTreeMap<u64, Held>,
    live_bytes: u64,
    /// Records and payload bytes in the file, and whether a rewrite is under way.
    file_records: u64,
    file_bytes: u64,
    compacting: Option<FileSize>,
    /// After a failed rewrite: no other until the file holds this many records.
    compacting_after: u64,
}

/// How big the file was when a rewrite's snapshot was taken.
#[derive(Clone, Copy)]
struct FileSize {
    records: u64,
    bytes: u64,
}

impl Mem {
    fn next_index(&self) -> u64 {
        match (self.entries.last_key_value(), self.last_purged) {
            (Some((index, _)), _) => index + 1,
            (None, Some(purged)) => purged.index + 1,
            (None, None) => 0,
        }
    }

    fn last_log_id(&self) -> Option<LogId<ReplicaId>> {
        self.entries.last_key_value().map(|(_, held)| held.entry.log_id).or(self.last_purged)
    }

    /// Applies one record. Replaying a file and writing at run time go through here, so
    /// both mean the same. An error is a record that breaks the log's rules.
    fn apply(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Entries(entries) => {
                for entry in entries {
                    // An empty log that never purged anything starts wherever it is told.
                    let fresh = self.entries.is_empty() && self.last_purged.is_none();
                    let next = if fresh { entry.log_id.index } else { self.next_index() };
                    if entry.log_id.index != next {
                        return Err(format!(
                            "entry {} does not follow the log (next index {next})",
                            entry.log_id
                        ));
                    }
                    let bytes = entry_bytes(&entry);
                    self.live_bytes += bytes;
                    self.entries.insert(next, Held { entry: Arc::new(entry), bytes });
                }
            }
            Record::Vote(vote) => self.vote = Some(vote),
            Record::Committed(committed) => self.committed = committed,
            Record::Truncate { since } => {
                if self.last_purged.is_some_and(|purged| since <= purged.index) {
                    return Err(format!("truncating since {since} reaches purged entries"));
                }
                let removed = self.entries.split_off(&since);
                self.live_bytes -= removed.values().map(|held| held.bytes).sum::<u64>();
            }
            Record::Purge { upto } => {
                if self.last_purged < Some(upto) {
                    let kept = self.entries.split_off(&(upto.index + 1));
                    let removed = std::mem::replace(&mut self.entries, kept);
                    self.live_bytes -= removed.values().map(|held| held.bytes).sum::<u64>();
                    self.last_purged = Some(upto);
                }
            }
        }
        Ok(())
    }

    /// Whether the file holds so much more than the live state that it should be rewritten.
    fn should_compact(&self, at: CompactAt) -> bool {
        let live_records = self.entries.len() as u64 + 3;
        self.compacting.is_none()
            && self.file_records >= self.compacting_after
            && ((self.file_records > at.records_min && self.file_records > 2 * live_records)
                || (self.file_bytes > at.bytes_min && self.file_bytes > 2 * self.live_bytes))
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            vote: self.vote,
            committed: self.committed,
            last_purged: self.last_purged,
            entries: self.entries.values().map(|held| held.entry.clone()).collect(),
        }
    }
}

fn entry_bytes(entry: &RaftEntry) -> u64 {
    postcard::experimental::serialized_size(entry).expect("an entry always encodes") as u64
}

fn encode<E: Serialize>(records: &[Record<E>]) -> Vec<u8> {
    postcard::to_allocvec(records).expect("a log record always encodes")
}

/// The live state at the moment a rewrite starts.
struct Snapshot {
    vote: Option<Vote<ReplicaId>>,
    committed: Option<LogId<ReplicaId>>,
    last_purged: Option<LogId<ReplicaId>>,
    entries: Vec<Arc<RaftEntry>>,
}

impl Snapshot {
    /// The snapshot as writes: first the purge point, vote and commit index, then the
    /// entries in records of at most `RECORD_ENTRIES_BYTES_MAX`.
    fn writes(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut head: Vec<Record<Vec<&RaftEntry>>> = Vec::new();
        head.extend(self.last_purged.map(|upto| Record::Purge { upto }));
        head.extend(self.vote.map(Record::Vote));
        head.push(Record::Committed(self.committed));
        let mut chunks: Vec<&[Arc<RaftEntry>]> = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, entry) in self.entries.iter().enumerate() {
            let size = entry_bytes(entry);
            if i > start && bytes + size > RECORD_ENTRIES_BYTES_MAX {
                chunks.push(&self.entries[start..i]);
                (start, bytes) = (i, 0);
            }
            bytes += size;
        }
        if start < self.entries.len() {
            chunks.push(&self.entries[start..]);
        }
        std::iter::once(encode(&head)).chain(chunks.into_iter().map(|chunk| {
            let entries: Vec<&RaftEntry> = chunk.iter().map(|entry| entry.as_ref()).collect();
            encode(&[Record::Entries(entries)])
        }))
    }
}

/// Where the log file lives: the file, and beside it the rewrite made by compaction.
pub(crate) trait LogPlace: Send + Sync + 'static {
    /// The log file, created (durably, in its folder) when missing.
    fn open(&self) -> io::Result<Box<dyn LogFile>>;
    /// A new, empty file beside the log; an earlier one is replaced.
    fn create_aside(&self) -> io::Result<Box<dyn LogFile>>;
    /// Renames the file beside the log over the log.
    fn rename_aside(&self) -> io::Result<()>;
    /// Makes the folder's names durable (fsync of the folder).
    fn sync_folder(&self) -> io::Result<()>;
    /// Removes a file left beside the log by a crash during compaction.
    fn remove_aside(&self) -> io::Result<()>;
}

/// The log in a folder on disk.
pub(crate) struct DiskPlace {
    dir: PathBuf,
}

impl LogPlace for DiskPlace {
    fn open(&self) -> io::Result<Box<dyn LogFile>> {
        let path = self.dir.join(LOG_FILE);
        if !self.dir.exists() {
            fs::create_dir_all(&self.dir)?;
            if let Some(parent) = self.dir.parent() {
                File::open(parent)?.sync_all()?;
            }
        }
        let created = !path.exists();
        let file = DiskFile::open(&path)?;
        if created {
            self.sync_folder()?;
        }
        Ok(Box::new(file))
    }

    fn create_aside(&self) -> io::Result<Box<dyn LogFile>> {
        self.remove_aside()?;
        Ok(Box::new(DiskFile::open(&self.dir.join(ASIDE_FILE))?))
    }

    fn rename_aside(&self) -> io::Result<()> {
        fs::rename(self.dir.join(ASIDE_FILE), self.dir.join(LOG_FILE))
    }

    fn sync_folder(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn remove_aside(&self) -> io::Result<()> {
        match fs::remove_file(self.dir.join(ASIDE_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A file whose syncs can be held back: the rewrite is written without syncing each
/// record and made durable at once by its last one.
struct SyncGate {
    file: Box<dyn LogFile>,
    held: Arc<AtomicBool>,
}

impl LogFile for SyncGate {
    fn size(&self) -> io::Result<u64> {
        self.file.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_at(offset, buf)
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.append(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.held.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.file.sync()
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.truncate(len)
    }
}

/// What to do once a write is durable (or failed).
type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

enum Job {
    /// Write this record and fdatasync it, then report.
    Write { record: Vec<u8>, done: Done },
    /// Start a rewrite from this snapshot of everything handed over before this job.
    Compact { snapshot: Snapshot, report: mpsc::Sender<Job> },
    /// The rewrite is written aside and synced (or failed); its size without the tail.
    AsideWritten(io::Result<(BlockLog, FileSize)>),
}

/// What the writer thread and the handles share.
struct Shared {
    mem: Mutex<Mem>,
    stats: watch::Sender<LogStats>,
    compact_at: CompactAt,
}

impl Shared {
    fn mem(&self) -> MutexGuard<'_, Mem> {
        self.mem.lock().expect("the raft log's state lock is never poisoned")
    }
}

/// The Raft log. Clones share the log (one is openraft's `LogReader`).
#[derive(Clone)]
pub(crate) struct RaftLog {
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
}

impl RaftLog {
    /// Opens (or creates) `DATA_DIR/raft/raft.log`. Blocking: it reads the whole file.
    pub(crate) fn open(data_dir: &Path) -> io::Result<RaftLog> {
        RaftLog::open_in(Arc::new(DiskPlace { dir: data_dir.join("raft") }), CompactAt::default())
    }

    /// Opens the log in `place`, replaying every record; a torn last record is cut.
    pub(crate) fn open_in(place: Arc<dyn LogPlace>, compact_at: CompactAt) -> io::Result<RaftLog> {
        place.remove_aside()?;
        let opened = BlockLog::open(place.open()?)?;
        let mut mem = Mem::default();
        for (n, payload) in opened.records.iter().enumerate() {
            let invalid =
                |e: String| io::Error::new(io::ErrorKind::InvalidData, format!("raft log record {n}: {e}"));
            let records: Vec<Record> = postcard::from_bytes(payload).map_err(|e| invalid(e.to_string()))?;
            for record in records {
                mem.apply(record).map_err(invalid)?;
            }
            mem.file_bytes += payload.len() as u64;
        }
        mem.file_records = opened.records.len() as u64;
        if opened.cut_bytes > 0 {
            tracing::warn!(bytes = opened.cut_bytes, "cut a torn last record from the raft log");
        }
        let (stats, _) = watch::channel(LogStats::default());
        let shared = Arc::new(Shared { mem: Mutex::new(mem), stats, compact_at });
        let (jobs, receiver) = mpsc::channel();
        let writer = Writer { log: opened.log, place, shared: shared.clone(), failed: None, tail: None };
        std::thread::Builder::new().name("raft-log".into()).spawn(move || writer.run(receiver))?;
        Ok(RaftLog { shared, jobs })
    }

    /// What the writer has done; `closed` turns true once every handle is dropped and
    /// the file is closed.
    pub(crate) fn stats(&self) -> watch::Receiver<LogStats> {
        self.shared.stats.subscribe()
    }

    /// Hands records to the writer as one write, after applying them to the state (so
    /// readers see them at once), with the commit index if it changed. Starts a rewrite
    /// when one is due.
    fn write(&self, records: Vec<Record>, done: Done) -> Result<(), String> {
        let mut mem = self.shared.mem();
        let mut all = Vec::with_capacity(records.len() + 1);
        if mem.committed_unwritten {
            all.push(Record::Committed(mem.committed));
            mem.committed_unwritten = false;
        }
        all.extend(records);
        let record = encode(&all);
        for change in all {
            mem.apply(change)?;
        }
        mem.file_records += 1;
        mem.file_bytes += record.len() as u64;
        self.send(Job::Write { record, done });
        if mem.should_compact(self.shared.compact_at) {
            mem.compacting = Some(FileSize { records: mem.file_records, bytes: mem.file_bytes });
            self.send(Job::Compact { snapshot: mem.snapshot(), report: self.jobs.clone() });
        }
        Ok(())
    }

    fn send(&self, job: Job) {
        // The writer owns the receiver and runs until every sender is gone.
        if self.jobs.send(job).is_err() {
            unreachable!("the raft log writer outlives its handles");
        }
    }

    /// Appends entries; `done` runs once they are durable (or failed). They are readable
    /// when this returns.
    fn append_then(&self, entries: Vec<RaftEntry>, done: Done) -> Result<(), String> {
        if entries.is_empty() {
            done(Ok(()));
            return Ok(());
        }
        let mut groups: Vec<Vec<RaftEntry>> = vec![Vec::new()];
        let mut bytes = 0;
        for entry in entries {
            let size = entry_bytes(&entry);
            let group = groups.last_mut().expect("one group");
            if bytes + size > RECORD_ENTRIES_BYTES_MAX && !group.is_empty() {
                groups.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            groups.last_mut().expect("one group").push(entry);
        }
        let mut done = Some(done);
        let count = groups.len();
        for (i, group) in groups.into_iter().enumerate() {
            let then: Done = match i + 1 == count {
                true => done.take().expect("the last write reports"),
                false => Box::new(|_| {}),
            };
            self.write(vec![Record::Entries(group)], then)?;
        }
        Ok(())
    }

    /// Writes records and waits until they are durable.
    async fn write_durably(&self, records: Vec<Record>) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.write(records, Box::new(move |result| drop(tx.send(result))))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        rx.await.unwrap_or_else(|_| Err(io::Error::other("the raft log writer stopped")))
    }

    fn read<T>(&self, f: impl FnOnce(&Mem) -> T) -> T {
        f(&self.shared.mem())
    }
}

/// A write that breaks the log's rules (a hole, a truncation into purged entries) is a bug
/// in the caller; it stops this Raft instance like a write error.
fn bug(reason: String) -> StorageError<ReplicaId> {
    StorageIOError::write_logs(AnyError::error(reason)).into()
}

/// Writes the snapshot beside the log without a sync per record; the last record's sync
/// makes the whole rewrite durable.
fn write_aside(place: &dyn LogPlace, snapshot: &Snapshot) -> io::Result<(BlockLog, FileSize)> {
    let held = Arc::new(AtomicBool::new(false));
    let file = SyncGate { file: place.create_aside()?, held: held.clone() };
    let mut log = BlockLog::open(Box::new(file))?.log;
    held.store(true, Ordering::Relaxed);
    let mut size = FileSize { records: 0, bytes: 0 };
    let mut writes = snapshot.writes().peekable();
    while let Some(record) = writes.next() {
        if writes.peek().is_none() {
            held.store(false, Ordering::Relaxed);
        }
        log.append(&record)?;
        size.records += 1;
        size.bytes += record.len() as u64;
    }
    Ok((log, size))
}

/// The thread that owns the file.
struct Writer {
    log: BlockLog,
    place: Arc<dyn LogPlace>,
    shared: Arc<Shared>,
    failed: Option<String>,
    /// While a rewrite is written aside: the records written since its snapshot.
    tail: Option<Vec<Vec<u8>>>,
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.recv() {
            match job {
                Job::Write { record, done } => {
                    let result = self.write(record);
                    done(result);
                }
                Job::Compact { snapshot, report } => self.start_compaction(snapshot, report),
                Job::AsideWritten(aside) => self.finish_compaction(aside),
            }
        }
        drop(self.log);
        self.shared.stats.send_modify(|stats| stats.closed = true);
    }

    fn write(&mut self, record: Vec<u8>) -> io::Result<()> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::other(format!(
                "the raft log refuses writes after an earlier failure: {failed}"
            )));
        }
        if let Err(e) = self.log.append(&record) {
            self.fail(&e);
            return Err(e);
        }
        if let Some(tail) = &mut self.tail {
            tail.push(record);
        }
        self.shared.stats.send_modify(|stats| stats.writes += 1);
        Ok(())
    }

    fn fail(&mut self, e: &io::Error) {
        tracing::error!(error = %e, "raft log write failed; the log refuses writes until it is reopened");
        self.failed = Some(e.to_string());
        self.shared.stats.send_modify(|stats| stats.failed = Some(e.to_string()));
    }

    fn start_compaction(&mut self, snapshot: Snapshot, report: mpsc::Sender<Job>) {
        self.tail = Some(Vec::new());
        let place = self.place.clone();
        let spawned = std::thread::Builder::new().name("raft-log-compact".into()).spawn(move || {
            let aside = write_aside(place.as_ref(), &snapshot);
            // The writer is still running: this sender keeps its queue open.
            let _ = report.send(Job::AsideWritten(aside));
        });
        if let Err(e) = spawned {
            self.finish_compaction(Err(e));
        }
    }

    fn finish_compaction(&mut self, aside: io::Result<(BlockLog, FileSize)>) {
        let tail = self.tail.take().unwrap_or_default();
        let installed = aside.and_then(|(aside, size)| self.install(aside, &tail).map(|()| size));
        let mut mem = self.shared.mem();
        let at_snapshot = mem.compacting.take().expect("a rewrite was started");
        match installed {
            Ok(size) => {
                // The new file: the rewrite, then every write handed over since its
                // snapshot (the tail, and those still queued).
                mem.file_records = size.records + (mem.file_records - at_snapshot.records);
                mem.file_bytes = size.bytes + (mem.file_bytes - at_snapshot.bytes);
                drop(mem);
                self.shared.stats.send_modify(|stats| stats.compactions += 1);
            }
            Err(e) => {
                // Not again until the file has grown by as much once more.
                mem.compacting_after = mem.file_records + self.shared.compact_at.records_min;
                drop(mem);
                tracing::warn!(error = %e, "raft log compaction failed; the log file is unchanged");
            }
        }
    }

    /// Adds the tail to the rewrite and renames it over the log. Once the rename is done
    /// the folder names the new file, so later writes go there; if the folder's fsync then
    /// fails, a crash may bring back either name, so the log refuses every later write
    /// (each would land in one file only).
    fn install(&mut self, mut aside: BlockLog, tail: &[Vec<u8>]) -> io::Result<()> {
        if let Some(failed) = &self.failed {
            return Err(io::Error::other(format!("the log failed while it was rewritten: {failed}")));
        }
        for record in tail {
            aside.append(record)?;
        }
        self.place.rename_aside()?;
        self.log = aside;
        self.place.sync_folder().inspect_err(|e| self.fail(e))
    }
}

impl RaftLogReader<TypeConfig> for RaftLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> SResult<Vec<RaftEntry>> {
        Ok(self.read(|mem| mem.entries.range(range).map(|(_, held)| RaftEntry::clone(&held.entry)).collect()))
    }

    /// Entries from `start` up to `end` (exclusive), at most `RPC_ENTRIES_BYTES_MAX` of
    /// them but at least one: the leader sends one such read per AppendEntries.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> SResult<Vec<RaftEntry>> {
        Ok(self.read(|mem| {
            let mut out = Vec::new();
            let mut bytes = 0;
            for held in mem.entries.range(start..end).map(|(_, held)| held) {
                if !out.is_empty() && bytes + held.bytes > RPC_ENTRIES_BYTES_MAX {
                    break;
                }
                bytes += held.bytes;
                out.push(RaftEntry::clone(&held.entry));
            }
            out
        }))
    }
}

impl RaftLogStorage<TypeConfig> for RaftLog {
    type LogReader = RaftLog;

    async fn get_log_state(&mut self) -> SResult<LogState<TypeConfig>> {
        Ok(self.read(|mem| LogState { last_purged_log_id: mem.last_purged, last_log_id: mem.last_log_id() }))
    }

    async fn get_log_reader(&mut self) -> RaftLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<ReplicaId>) -> SResult<()> {
        self.write_durably(vec![Record::Vote(*vote)]).await.map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> SResult<Option<Vote<ReplicaId>>> {
        Ok(self.read(|mem| mem.vote))
    }

    /// Kept in memory and written with the next write, not synced on its own.
    async fn save_committed(&mut self, committed: Option<LogId<ReplicaId>>) -> SResult<()> {
        let mut mem = self.shared.mem();
        mem.committed = committed;
        mem.committed_unwritten = true;
        Ok(())
    }

    async fn read_committed(&mut self) -> SResult<Option<LogId<ReplicaId>>> {
        Ok(self.read(|mem| mem.committed))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> SResult<()>
    where
        I: IntoIterator<Item = RaftEntry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<RaftEntry> = entries.into_iter().collect();
        self.append_then(entries, Box::new(move |result| callback.log_io_completed(result))).map_err(bug)
    }

    async fn truncate(&mut self, log_id: LogId<ReplicaId>) -> SResult<()> {
        let since = log_id.index;
        self.write_durably(vec![Record::Truncate { since }])
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, upto: LogId<ReplicaId>) -> SResult<()> {
        self.write_durably(vec![Record::Purge { upto }])
            .await
            .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

#[cfg(test)]
#[path = "log_store_tests.rs"]
mod tests;
