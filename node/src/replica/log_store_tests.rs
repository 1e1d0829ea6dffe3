//! The Raft log on real files and on a simulated disk that knows what a power cut keeps:
//! only bytes fdatasynced, under names whose folder was fsynced.

use std::collections::BTreeMap;

use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{CommittedLeaderId, EntryPayload, Membership};

use super::*;
use crate::replica::test_machine::TestMachine;
use crate::replica::BlockProposal;

// ---- a simulated disk ----

#[derive(Clone, Default)]
struct SimFile {
    /// What the OS shows.
    bytes: Vec<u8>,
    /// What survives a power cut.
    synced: Vec<u8>,
}

#[derive(Default)]
struct Faults {
    appends: bool,
    syncs: bool,
    rename: bool,
    folder_sync: bool,
}

#[derive(Default)]
struct Disk {
    files: Vec<SimFile>,
    /// The folder as the OS shows it, and as a power cut leaves it (its last fsync).
    names: BTreeMap<&'static str, usize>,
    durable_names: BTreeMap<&'static str, usize>,
    faults: Faults,
}

#[derive(Clone, Default)]
struct SimDisk(Arc<Mutex<Disk>>);

impl SimDisk {
    fn disk(&self) -> MutexGuard<'_, Disk> {
        self.0.lock().expect("not poisoned")
    }

    fn faults(&self, set: impl FnOnce(&mut Faults)) {
        set(&mut self.disk().faults);
    }

    /// The disk after a power cut now: synced bytes under durable names.
    fn power_cut(&self) -> SimDisk {
        let disk = self.disk();
        let mut after = Disk::default();
        for (name, id) in &disk.durable_names {
            let synced = disk.files[*id].synced.clone();
            after.files.push(SimFile { bytes: synced.clone(), synced });
            after.names.insert(name, after.files.len() - 1);
        }
        after.durable_names = after.names.clone();
        SimDisk(Arc::new(Mutex::new(after)))
    }

    /// The disk after the process dies now (the OS keeps what it was given).
    fn process_crash(&self) -> SimDisk {
        let disk = self.disk();
        let mut after = Disk::default();
        for (name, id) in &disk.names {
            let bytes = disk.files[*id].bytes.clone();
            after.files.push(SimFile { bytes: bytes.clone(), synced: bytes });
            after.names.insert(name, after.files.len() - 1);
        }
        after.durable_names = after.names.clone();
        SimDisk(Arc::new(Mutex::new(after)))
    }

    fn log_bytes(&self) -> Vec<u8> {
        let disk = self.disk();
        disk.files[disk.names[LOG_FILE]].bytes.clone()
    }
}

struct SimHandle {
    disk: SimDisk,
    id: usize,
}

impl LogFile for SimHandle {
    fn size(&self) -> io::Result<u64> {
        Ok(self.disk.disk().files[self.id].bytes.len() as u64)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let disk = self.disk.disk();
        let bytes = &disk.files[self.id].bytes;
        let slice =
            bytes.get(offset as usize..offset as usize + buf.len()).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(slice);
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut disk = self.disk.disk();
        if disk.faults.appends {
            return Err(io::Error::other("injected: no space left on device"));
        }
        disk.files[self.id].bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut disk = self.disk.disk();
        if disk.faults.syncs {
            return Err(io::Error::other("injected: fdatasync failed"));
        }
        let file = &mut disk.files[self.id];
        file.synced = file.bytes.clone();
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut disk = self.disk.disk();
        let fail = disk.faults.syncs;
        let file = &mut disk.files[self.id];
        file.bytes.truncate(len as usize);
        if fail {
            return Err(io::Error::other("injected: fsync after truncate failed"));
        }
        file.synced = file.bytes.clone();
        Ok(())
    }
}

struct SimPlace(SimDisk);

/// A place whose compactor waits at `create_aside` until the test lets it go.
struct HeldPlace {
    place: SimPlace,
    release: Mutex<mpsc::Receiver<()>>,
}

impl LogPlace for HeldPlace {
    fn open(&self) -> io::Result<Box<dyn LogFile>> {
        self.place.open()
    }

    fn create_aside(&self) -> io::Result<Box<dyn LogFile>> {
        self.release.lock().expect("not poisoned").recv().map_err(io::Error::other)?;
        self.place.create_aside()
    }

    fn rename_aside(&self) -> io::Result<()> {
        self.place.rename_aside()
    }

    fn sync_folder(&self) -> io::Result<()> {
        self.place.sync_folder()
    }

    fn remove_aside(&self) -> io::Result<()> {
        self.place.remove_aside()
    }
}

impl LogPlace for SimPlace {
    fn open(&self) -> io::Result<Box<dyn LogFile>> {
        let mut disk = self.0.disk();
        let id = match disk.names.get(LOG_FILE) {
            Some(id) => *id,
            None => {
                disk.files.push(SimFile::default());
                let id = disk.files.len() - 1;
                disk.names.insert(LOG_FILE, id);
                disk.durable_names.insert(LOG_FILE, id);
                id
            }
        };
        Ok(Box::new(SimHandle { disk: self.0.clone(), id }))
    }

    fn create_aside(&self) -> io::Result<Box<dyn LogFile>> {
        let mut disk = self.0.disk();
        disk.files.push(SimFile::default());
        let id = disk.files.len() - 1;
        disk.names.insert(ASIDE_FILE, id);
        Ok(Box::new(SimHandle { disk: self.0.clone(), id }))
    }

    fn rename_aside(&self) -> io::Result<()> {
        let mut disk = self.0.disk();
        if disk.faults.rename {
            return Err(io::Error::other("injected: rename failed"));
        }
        let id = disk.names.remove(ASIDE_FILE).ok_or(io::ErrorKind::NotFound)?;
        disk.names.insert(LOG_FILE, id);
        Ok(())
    }

    fn sync_folder(&self) -> io::Result<()> {
        let mut disk = self.0.disk();
        if disk.faults.folder_sync {
            return Err(io::Error::other("injected: folder fsync failed"));
        }
        disk.durable_names = disk.names.clone();
        Ok(())
    }

    fn remove_aside(&self) -> io::Result<()> {
        self.0.disk().names.remove(ASIDE_FILE);
        Ok(())
    }
}

// ---- helpers ----

/// No compaction unless a test asks for it.
const NEVER: CompactAt = CompactAt { records_min: u64::MAX / 4, bytes_min: u64::MAX / 4 };

fn open_sim(disk: &SimDisk, at: CompactAt) -> RaftLog {
    RaftLog::open_in(Arc::new(SimPlace(disk.clone())), at).expect("opens")
}

fn normal(term: u64, index: u64) -> RaftEntry {
    let block = format!("block of term {term} at {index}").into_bytes();
    Entry { log_id: log_id(term, 1, index), payload: EntryPayload::Normal(BlockProposal { block }) }
}

fn entries(term: u64, indexes: std::ops::Range<u64>) -> Vec<RaftEntry> {
    indexes.map(|index| normal(term, index)).collect()
}

/// Appends and waits for the callback.
async fn append(log: &RaftLog, entries: Vec<RaftEntry>) -> io::Result<()> {
    let (tx, rx) = oneshot::channel();
    log.append_then(entries, Box::new(move |result| drop(tx.send(result)))).expect("follows the log");
    rx.await.expect("the callback runs")
}

/// Everything the log holds, to compare across a reopen.
#[derive(Debug, PartialEq)]
struct View {
    vote: Option<Vote<ReplicaId>>,
    committed: Option<LogId<ReplicaId>>,
    last_purged: Option<LogId<ReplicaId>>,
    entries: Vec<RaftEntry>,
}

fn view(log: &RaftLog) -> View {
    log.read(|mem| View {
        vote: mem.vote,
        committed: mem.committed,
        last_purged: mem.last_purged,
        entries: mem.entries.values().map(|held| RaftEntry::clone(&held.entry)).collect(),
    })
}

async fn wait_stats(log: &RaftLog, what: &str, f: impl Fn(&LogStats) -> bool) -> LogStats {
    let mut stats = log.stats();
    let seen = tokio::time::timeout(Duration::from_secs(10), stats.wait_for(|s| f(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("the writer publishes")
        .clone();
    seen
}

use std::time::Duration;

// ---- tests ----

/// After each acknowledged operation, a power cut keeps it.
#[tokio::test]
async fn every_operation_survives_a_power_cut_right_after_it_is_acknowledged() {
    let disk = SimDisk::default();
    let mut log = open_sim(&disk, NEVER);
    let check = |log: &RaftLog, step: &str| {
        let reopened = open_sim(&disk.power_cut(), NEVER);
        assert_eq!(view(&reopened), view(log), "after {step}");
    };

    append(&log, entries(1, 0..5)).await.unwrap();
    check(&log, "append");
    log.save_vote(&Vote::new(2, 2)).await.unwrap();
    check(&log, "save_vote");
    log.truncate(log_id(1, 1, 3)).await.unwrap();
    assert_eq!(view(&log).entries.len(), 3, "entries from 3 on are gone");
    check(&log, "truncate");
    append(&log, entries(2, 3..8)).await.unwrap();
    check(&log, "append after truncate");
    log.purge(log_id(1, 1, 2)).await.unwrap();
    check(&log, "purge");
    log.save_committed(Some(log_id(2, 1, 6))).await.unwrap();
    log.save_vote(&Vote::new_committed(2, 2)).await.unwrap();
    check(&log, "save_committed, carried by the next write");

    let reopened = open_sim(&disk.power_cut(), NEVER);
    let mut reopened = reopened;
    assert_eq!(reopened.read_committed().await.unwrap(), Some(log_id(2, 1, 6)));
    assert_eq!(reopened.read_vote().await.unwrap(), Some(Vote::new_committed(2, 2)));
    let state = reopened.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 1, 7)));
    let got = reopened.try_get_log_entries(0..100).await.unwrap();
    let want: Vec<RaftEntry> = vec![normal(2, 3), normal(2, 4), normal(2, 5), normal(2, 6), normal(2, 7)];
    assert_eq!(got, want);
}

#[tokio::test]
async fn a_failed_fdatasync_fails_the_callback_and_loses_nothing_acknowledged() {
    let disk = SimDisk::default();
    let mut log = open_sim(&disk, NEVER);
    append(&log, entries(1, 0..3)).await.unwrap();
    let acknowledged = view(&log).entries;

    disk.faults(|f| f.syncs = true);
    let failed = append(&log, entries(1, 3..5)).await;
    assert!(failed.is_err(), "the callback reports the failed fdatasync");
    disk.faults(|f| f.syncs = false);
    assert!(wait_stats(&log, "the failure", |s| s.failed.is_some()).await.failed.is_some());

    // Every later write is refused: after a failed sync the state in memory is not the disk.
    assert!(append(&log, entries(1, 5..6)).await.is_err(), "an append after the failure");
    assert!(log.save_vote(&Vote::new(3, 1)).await.is_err(), "a vote after the failure");

    for (how, image) in [("power cut", disk.power_cut()), ("process crash", disk.process_crash())] {
        let reopened = open_sim(&image, NEVER);
        assert_eq!(view(&reopened).entries, acknowledged, "{how}: the failed append is gone, whole");
        assert_eq!(view(&reopened).vote, None, "{how}");
        append(&reopened, entries(1, 3..4)).await.expect("the reopened log takes writes");
    }
}

#[tokio::test]
async fn a_failed_write_fails_the_callback_and_leaves_nothing_behind() {
    let disk = SimDisk::default();
    let log = open_sim(&disk, NEVER);
    append(&log, entries(1, 0..2)).await.unwrap();
    let before = disk.log_bytes();
    disk.faults(|f| f.appends = true);
    assert!(append(&log, entries(1, 2..4)).await.is_err());
    disk.faults(|f| f.appends = false);
    assert_eq!(disk.log_bytes(), before, "nothing of the failed write is in the file");
    assert_eq!(view(&open_sim(&disk.process_crash(), NEVER)).entries, entries(1, 0..2));
}

#[tokio::test]
async fn a_torn_last_record_is_cut_and_the_log_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let log = RaftLog::open(dir.path()).unwrap();
    append(&log, entries(1, 0..4)).await.unwrap();
    append(&log, entries(1, 4..6)).await.unwrap();
    let closed = log.stats();
    drop(log);
    wait_closed(closed).await;

    let path = raft_log_path(dir.path());
    let whole = fs::read(&path).unwrap();
    for cut in [1, 7, 20] {
        fs::write(&path, &whole[..whole.len() - cut]).unwrap();
        let log = RaftLog::open(dir.path()).unwrap();
        assert_eq!(view(&log).entries, entries(1, 0..4), "cut {cut} bytes");
        append(&log, entries(1, 4..5)).await.unwrap();
        let closed = log.stats();
        drop(log);
        wait_closed(closed).await;
        assert_eq!(view(&RaftLog::open(dir.path()).unwrap()).entries, entries(1, 0..5));
    }
}

async fn wait_closed(mut stats: watch::Receiver<LogStats>) {
    tokio::time::timeout(Duration::from_secs(10), stats.wait_for(|s| s.closed))
        .await
        .expect("the writer closes")
        .expect("closes");
}

#[tokio::test]
async fn damage_before_the_last_record_is_refused() {
    let disk = SimDisk::default();
    let log = open_sim(&disk, NEVER);
    append(&log, entries(1, 0..2)).await.unwrap();
    append(&log, entries(1, 2..4)).await.unwrap();
    let image = disk.process_crash();
    {
        let mut d = image.disk();
        let id = d.names[LOG_FILE];
        d.files[id].bytes[12] ^= 0x20;
    }
    let err = RaftLog::open_in(Arc::new(SimPlace(image)), NEVER).err().expect("refused");
    assert!(err.to_string().contains("intact record follows"), "{err}");
}

#[tokio::test]
async fn entries_must_follow_the_log() {
    let disk = SimDisk::default();
    let log = open_sim(&disk, NEVER);
    append(&log, entries(1, 0..3)).await.unwrap();
    let hole = log.append_then(entries(1, 4..5), Box::new(|_| {}));
    assert!(hole.is_err(), "a hole is refused");
    let overlap = log.append_then(entries(1, 2..3), Box::new(|_| {}));
    assert!(overlap.is_err(), "an entry that is already there is refused (truncate first)");
}

#[tokio::test]
async fn truncate_then_append_replaces_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = RaftLog::open(dir.path()).unwrap();
    append(&log, entries(1, 0..10)).await.unwrap();
    log.truncate(log_id(1, 1, 6)).await.unwrap();
    assert!(log.try_get_log_entries(6..).await.unwrap().is_empty(), "truncated entries are not readable");
    append(&log, entries(3, 6..8)).await.unwrap();
    let want: Vec<RaftEntry> = entries(1, 0..6).into_iter().chain(entries(3, 6..8)).collect();
    assert_eq!(log.try_get_log_entries(..).await.unwrap(), want);
    let closed = log.stats();
    drop(log);
    wait_closed(closed).await;
    let mut reopened = RaftLog::open(dir.path()).unwrap();
    assert_eq!(reopened.try_get_log_entries(..).await.unwrap(), want);
    assert_eq!(reopened.get_log_state().await.unwrap().last_log_id, Some(log_id(3, 1, 7)));
}

#[tokio::test]
async fn after_purging_everything_the_log_state_still_names_the_purge_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = RaftLog::open(dir.path()).unwrap();
    append(&log, entries(1, 0..5)).await.unwrap();
    log.purge(log_id(1, 1, 4)).await.unwrap();
    let expected = LogState { last_purged_log_id: Some(log_id(1, 1, 4)), last_log_id: Some(log_id(1, 1, 4)) };
    assert_eq!(log.get_log_state().await.unwrap(), expected);
    // A purge past the last entry (a snapshot installed from the leader) moves both.
    log.purge(log_id(2, 1, 20)).await.unwrap();
    let closed = log.stats();
    drop(log);
    wait_closed(closed).await;
    let mut reopened = RaftLog::open(dir.path()).unwrap();
    let expected =
        LogState { last_purged_log_id: Some(log_id(2, 1, 20)), last_log_id: Some(log_id(2, 1, 20)) };
    assert_eq!(reopened.get_log_state().await.unwrap(), expected);
    append(&reopened, entries(2, 21..23)).await.expect("the log goes on after the purge point");
}

#[tokio::test]
async fn a_read_for_one_append_entries_is_capped_in_bytes() {
    let disk = SimDisk::default();
    let mut log = open_sim(&disk, NEVER);
    let big = |index: u64| Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(BlockProposal { block: vec![index as u8; 3 * 1024 * 1024] }),
    };
    append(&log, (0..5).map(big).collect()).await.unwrap();
    let read = log.limited_get_log_entries(0, 5).await.unwrap();
    assert_eq!(read.len(), 2, "two 3 MiB entries fit in {RPC_ENTRIES_BYTES_MAX} bytes, three do not");
    assert_eq!(read[0].log_id.index, 0);
    let huge = Entry {
        log_id: log_id(1, 1, 5),
        payload: EntryPayload::Normal(BlockProposal { block: vec![1; RPC_ENTRIES_BYTES_MAX as usize + 1] }),
    };
    append(&log, vec![huge]).await.unwrap();
    assert_eq!(
        log.limited_get_log_entries(5, 6).await.unwrap().len(),
        1,
        "one entry alone is always returned"
    );
    assert!(log.limited_get_log_entries(3, 3).await.unwrap().is_empty());
}

const SMALL: CompactAt = CompactAt { records_min: 40, bytes_min: u64::MAX / 4 };

/// Appends one entry per write, then purges most of them.
async fn fill_and_purge(log: &mut RaftLog, count: u64, purge_upto: u64) {
    for index in 0..count {
        append(log, vec![normal(1, index)]).await.unwrap();
    }
    log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    log.purge(log_id(1, 1, purge_upto)).await.unwrap();
}

#[tokio::test]
async fn compaction_rewrites_the_file_and_keeps_everything_readable() {
    let dir = tempfile::tempdir().unwrap();
    let place = Arc::new(DiskPlace { dir: dir.path().join("raft") });
    let mut log = RaftLog::open_in(place.clone(), SMALL).unwrap();
    fill_and_purge(&mut log, 60, 49).await;
    let before = view(&log);
    wait_stats(&log, "a compaction", |s| s.compactions == 1).await;
    let records = BlockLog::open_path(&raft_log_path(dir.path())).unwrap().records.len();
    assert!(records < 10, "the rewrite holds {records} records, not one per write");
    assert!(!dir.path().join("raft").join(ASIDE_FILE).exists(), "nothing is left beside the log");
    assert_eq!(view(&log), before, "the state is unchanged");
    assert_eq!(log.try_get_log_entries(50..60).await.unwrap(), entries(1, 50..60));

    append(&log, entries(1, 60..62)).await.unwrap();
    let after = view(&log);
    let closed = log.stats();
    drop(log);
    wait_closed(closed).await;
    assert_eq!(view(&RaftLog::open_in(place, SMALL).unwrap()), after, "the rewrite and what followed reopen");
}

#[tokio::test]
async fn writes_made_during_a_compaction_land_in_the_rewrite() {
    let disk = SimDisk::default();
    let (release, held) = mpsc::channel();
    let place = HeldPlace { place: SimPlace(disk.clone()), release: Mutex::new(held) };
    let mut log = RaftLog::open_in(Arc::new(place), SMALL).unwrap();
    fill_and_purge(&mut log, 60, 49).await;
    assert!(log.read(|mem| mem.compacting.is_some()), "the purge started a rewrite");
    // The compactor waits: these go to the old file and must be added to the rewrite.
    for index in 60..70 {
        append(&log, vec![normal(1, index)]).await.unwrap();
    }
    log.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    release.send(()).unwrap();
    wait_stats(&log, "a compaction", |s| s.compactions == 1).await;
    let expected = view(&log);
    assert_eq!(expected.entries, entries(1, 50..70));
    let cut = disk.power_cut();
    assert_eq!(view(&open_sim(&cut, NEVER)), expected);
    let records = BlockLog::open(place_file(&cut)).unwrap().records.len();
    assert!(records < 20, "the log is the rewrite and what followed ({records} records)");
}

/// A crash at each step of a rewrite: while it is written aside, after it is synced,
/// after the rename but before the folder's fsync, and after.
#[tokio::test]
async fn compaction_survives_a_crash_at_each_step() {
    let disk = SimDisk::default();
    let mut log = open_sim(&disk, NEVER);
    fill_and_purge(&mut log, 60, 49).await;
    let expected = view(&log);
    let place = SimPlace(disk.clone());
    let snapshot = log.read(|mem| mem.snapshot());

    // Written aside but not synced: a power cut loses the rewrite, the log is whole.
    let held = Arc::new(AtomicBool::new(true));
    let mut partial =
        BlockLog::open(Box::new(SyncGate { file: place.create_aside().unwrap(), held: held.clone() }))
            .unwrap()
            .log;
    for record in snapshot.writes().take(1) {
        partial.append(&record).unwrap();
    }
    assert_eq!(view(&open_sim(&disk.power_cut(), NEVER)), expected, "crash while writing aside");
    assert_eq!(view(&open_sim(&disk.process_crash(), NEVER)), expected, "process crash while writing aside");
    drop(partial);

    // Synced aside, not renamed.
    let (aside, _) = write_aside(&place, &snapshot).unwrap();
    assert_eq!(view(&open_sim(&disk.power_cut(), NEVER)), expected, "crash before the rename");

    // Renamed, the folder not fsynced: a power cut may bring back the old name.
    place.rename_aside().unwrap();
    assert_eq!(view(&open_sim(&disk.power_cut(), NEVER)), expected, "power cut before the folder's fsync");
    assert_eq!(view(&open_sim(&disk.process_crash(), NEVER)), expected, "process crash after the rename");
    drop(aside);

    place.sync_folder().unwrap();
    let cut = disk.power_cut();
    assert_eq!(view(&open_sim(&cut, NEVER)), expected, "after the folder's fsync");
    assert!(
        BlockLog::open(place_file(&cut)).unwrap().records.len() < 10,
        "the power cut now keeps the rewrite"
    );
}

fn place_file(disk: &SimDisk) -> Box<dyn LogFile> {
    SimPlace(disk.clone()).open().unwrap()
}

#[tokio::test]
async fn a_failed_rename_leaves_the_log_as_it_was_and_writable() {
    let disk = SimDisk::default();
    disk.faults(|f| f.rename = true);
    let mut log = open_sim(&disk, SMALL);
    fill_and_purge(&mut log, 60, 49).await;
    append(&log, entries(1, 60..61)).await.unwrap();
    let writes = log.read(|mem| mem.file_records);
    assert!(writes > 60, "no rewrite replaced the file: it holds {writes} records");
    assert!(log.stats().borrow().failed.is_none(), "a failed compaction does not fail the log");
    assert_eq!(view(&open_sim(&disk.power_cut(), NEVER)), view(&log));

    disk.faults(|f| f.rename = false);
    let end = 61 + SMALL.records_min + 1;
    for index in 61..end {
        append(&log, vec![normal(1, index)]).await.unwrap();
    }
    log.purge(log_id(1, 1, end - 5)).await.unwrap();
    wait_stats(&log, "a compaction once renames work", |s| s.compactions == 1).await;
    assert_eq!(view(&open_sim(&disk.power_cut(), NEVER)), view(&log));
}

#[tokio::test]
async fn a_failed_folder_fsync_after_the_rename_stops_the_log() {
    let disk = SimDisk::default();
    disk.faults(|f| f.folder_sync = true);
    let mut log = open_sim(&disk, SMALL);
    fill_and_purge(&mut log, 60, 49).await;
    let expected = view(&log);
    wait_stats(&log, "the failure", |s| s.failed.is_some()).await;
    assert!(append(&log, entries(1, 60..61)).await.is_err(), "later writes would land in one name only");
    for (how, image) in [("power cut", disk.power_cut()), ("process crash", disk.process_crash())] {
        assert_eq!(view(&open_sim(&image, NEVER)), expected, "{how}");
    }
}

// ---- openraft's own storage suite ----

struct Builder;

impl StoreBuilder<TypeConfig, RaftLog, TestMachine, tempfile::TempDir> for Builder {
    async fn build(&self) -> Result<(tempfile::TempDir, RaftLog, TestMachine), StorageError<ReplicaId>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write_logs(&e))?;
        let log = RaftLog::open(dir.path()).map_err(|e| StorageIOError::write_logs(&e))?;
        Ok((dir, log, TestMachine::default()))
    }
}

type OpenraftSuite = Suite<TypeConfig, RaftLog, TestMachine, Builder, tempfile::TempDir>;

/// Runs one of openraft's storage tests on a fresh log in a fresh runtime; its error or
/// panic message, if any.
fn suite_case<F, Fut>(test: F) -> Result<(), String>
where
    F: FnOnce(RaftLog, TestMachine) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), StorageError<ReplicaId>>>,
{
    let run = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("a runtime");
        rt.block_on(async {
            let (_dir, log, machine) = Builder.build().await.expect("builds");
            test(log, machine).await.map_err(|e| e.to_string())
        })
    });
    match run.join() {
        Ok(result) => result,
        Err(panic) => Err(panic.downcast_ref::<String>().cloned().unwrap_or_else(|| "panicked".into())),
    }
}

macro_rules! suite_cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), suite_case(OpenraftSuite::$name))),*]
    };
}

#[test]
fn openraft_storage_suite() {
    let results = suite_cases![
        last_membership_in_log_initial,
        last_membership_in_log,
        last_membership_in_log_multi_step,
        get_membership_initial,
        get_membership_from_log_and_empty_sm,
        get_membership_from_empty_log_and_sm,
        get_membership_from_log_le_sm_last_applied,
        get_membership_from_log_gt_sm_last_applied_1,
        get_membership_from_log_gt_sm_last_applied_2,
        get_initial_state_without_init,
        get_initial_state_membership_from_log_and_sm,
        get_initial_state_with_state,
        get_initial_state_last_log_gt_sm,
        get_initial_state_last_log_lt_sm,
        get_initial_state_log_ids,
        get_initial_state_re_apply_committed,
        save_vote,
        get_log_entries,
        limited_get_log_entries,
        try_get_log_entry,
        initial_logs,
        get_log_state,
        get_log_id,
        last_id_in_log,
        last_applied_state,
        purge_logs_upto_0,
        purge_logs_upto_5,
        purge_logs_upto_20,
        delete_logs_since_11,
        delete_logs_since_0,
        append_to_log,
        snapshot_meta,
        apply_single,
        apply_multiple,
    ];
    let failed: Vec<_> = results.into_iter().filter(|(_, r)| r.is_err()).collect();
    // This case appends entry 1 after openraft purged the log up to entry 2, which a
    // running node never does; the log refuses it as a hole instead of going backwards.
    let below_purge_point = |(name, result): &(&str, Result<(), String>)| {
        *name == "get_initial_state_membership_from_log_and_sm"
            && result.as_ref().is_err_and(|e| e.contains("T1-N0-1 does not follow the log (next index 3)"))
    };
    assert!(failed.len() == 1 && below_purge_point(&failed[0]), "{failed:#?}");

    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(OpenraftSuite::transfer_snapshot(&Builder)).expect("transfer_snapshot passes");
}

#[tokio::test]
async fn membership_and_blank_entries_round_trip() {
    {
        let disk = SimDisk::default();
        let log = open_sim(&disk, NEVER);
        let nodes: BTreeMap<ReplicaId, super::super::ReplicaNode> = (1..=3)
            .map(|id| (id, super::super::ReplicaNode { name: format!("r{id}"), ..Default::default() }))
            .collect();
        let membership = Membership::new(vec![nodes.keys().copied().collect()], nodes);
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 0),
            payload: EntryPayload::Membership(membership),
        };
        append(&log, vec![entry.clone(), openraft::testing::blank_ent::<TypeConfig>(1, 1, 1)]).await.unwrap();
        assert_eq!(
            view(&open_sim(&disk.power_cut(), NEVER)).entries,
            vec![entry, openraft::testing::blank_ent::<TypeConfig>(1, 1, 1)]
        );
    }
}
