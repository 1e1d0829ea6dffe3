//! The index folder holds only what can be rebuilt from the block log: a checkpoint of
//! the state, every account's history and the block hashes, so a restart replays only
//! the blocks after it. The checkpoint itself is a file written aside and renamed into
//! place (large values are not what sled is for); sled keeps its metadata (height, block
//! hash, length, checksum). Nothing here is trusted: a checkpoint is used only when its
//! checksum holds, its format is the one this build reads, and the block at its height has
//! the hash it recorded; an index sled cannot open is deleted. One tree is not rebuilt
//! from the chain: the access log (`crate::access`), this replica's record of the reads
//! it served under the everything scope; it is kept with the index and goes with it if
//! sled cannot open it (the node then says so in its log).

use std::path::Path;

use machi_ledger::Hash32;
use serde::{Deserialize, Serialize};

pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
    file: std::path::PathBuf,
}

const CHECKPOINT: &[u8] = b"checkpoint";

/// The checkpoint's format: raised whenever `State`, the history or `Checkpoint` changes
/// shape. A checkpoint of any other format is ignored (with a log line) and the node
/// replays the block log instead. Format 1 was the unversioned checkpoint.
pub(crate) const CHECKPOINT_FORMAT: u32 = 2;

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    /// `CHECKPOINT_FORMAT` of the build that wrote it; the file starts with it too.
    format: u32,
    height: u64,
    hash: Hash32,
    len: u64,
    crc: u32,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) height: u64,
    pub(crate) hash: Hash32,
    /// postcard of `machi_ledger::State`.
    pub(crate) state: Vec<u8>,
    /// postcard of the accounts' history.
    pub(crate) history: Vec<u8>,
    /// postcard of every block's hash up to `height`, so a restart need not decode them.
    pub(crate) hashes: Vec<u8>,
    pub(crate) txs_total: u64,
}

impl Index {
    /// Opens the index; an index sled cannot open is deleted and started afresh.
    pub fn open(path: &Path) -> anyhow::Result<Index> {
        match Index::try_open(path) {
            Ok(index) => Ok(index),
            Err(e) => {
                tracing::warn!(
                    "index at {} is unreadable ({e}); starting it afresh: the state is rebuilt from the block \
                     log",
                    path.display()
                );
                std::fs::remove_dir_all(path)?;
                Ok(Index::try_open(path)?)
            }
        }
    }

    fn try_open(path: &Path) -> sled::Result<Index> {
        let db = sled::Config::new().path(path).cache_capacity(16 * 1024 * 1024).open()?;
        let meta = db.open_tree("meta")?;
        Ok(Index { db, meta, file: path.join("checkpoint.bin") })
    }

    /// Writes the checkpoint file (`u32le(format) || postcard(checkpoint)`) durably (aside,
    /// synced, renamed into place), then records its metadata in sled.
    pub(crate) fn save_checkpoint(&self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        self.save_checkpoint_as(checkpoint, CHECKPOINT_FORMAT)
    }

    fn save_checkpoint_as(&self, checkpoint: &Checkpoint, format: u32) -> std::io::Result<()> {
        let bytes = postcard::to_extend(checkpoint, format.to_le_bytes().to_vec())
            .expect("encoding into a Vec cannot fail");
        let meta = CheckpointMeta {
            format,
            height: checkpoint.height,
            hash: checkpoint.hash,
            len: bytes.len() as u64,
            crc: crc32fast::hash(&bytes),
        };
        machi_host::write_durable(&self.file, &bytes)?;
        let meta = postcard::to_allocvec(&meta).expect("encoding into a Vec cannot fail");
        self.meta.insert(CHECKPOINT, meta).map_err(std::io::Error::other)?;
        self.db.flush().map_err(std::io::Error::other)?;
        Ok(())
    }

    pub(crate) fn load_checkpoint(&self) -> Option<Checkpoint> {
        let meta = self.meta.get(CHECKPOINT).ok()??;
        let meta = match postcard::from_bytes::<CheckpointMeta>(&meta) {
            Ok(meta) if meta.format == CHECKPOINT_FORMAT => meta,
            Ok(meta) => {
                tracing::warn!(
                    "the state checkpoint is format {}, this node reads format {CHECKPOINT_FORMAT}; \
                     ignoring it and replaying the block log",
                    meta.format
                );
                return None;
            }
            Err(_) => {
                tracing::warn!(
                    "the state checkpoint's metadata is of an unknown format; replaying the block log"
                );
                return None;
            }
        };
        let bytes = std::fs::read(&self.file).ok()?;
        if bytes.len() as u64 != meta.len || crc32fast::hash(&bytes) != meta.crc {
            tracing::warn!("the state checkpoint file does not match its checksum; replaying from genesis");
            return None;
        }
        let (format, body) = bytes.split_first_chunk::<4>()?;
        if u32::from_le_bytes(*format) != CHECKPOINT_FORMAT {
            tracing::warn!(
                "the state checkpoint file is of another format than its metadata; replaying the block log"
            );
            return None;
        }
        let checkpoint: Checkpoint = postcard::from_bytes(body).ok()?;
        (checkpoint.height == meta.height && checkpoint.hash == meta.hash).then_some(checkpoint)
    }

    pub(crate) fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!("index flush failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(height: u64) -> Checkpoint {
        Checkpoint {
            height,
            hash: Hash32([7; 32]),
            state: vec![1, 2, 3],
            history: vec![4],
            hashes: vec![5, 6],
            txs_total: 9,
        }
    }

    #[test]
    fn the_checkpoint_file_is_replaced_whole_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.save_checkpoint(&checkpoint(3)).unwrap();
        index.save_checkpoint(&checkpoint(4)).unwrap();
        assert_eq!(index.load_checkpoint().expect("the newest loads").height, 4);
        let mode = std::fs::metadata(&index.file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the checkpoint holds every account's history");
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("checkpoint") && name != "checkpoint.bin")
            .collect();
        assert!(aside.is_empty(), "nothing written aside is left: {aside:?}");
    }

    #[test]
    fn a_checkpoint_of_an_unknown_format_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path()).unwrap();
        index.save_checkpoint(&checkpoint(3)).unwrap();
        let loaded = index.load_checkpoint().expect("this format loads");
        assert_eq!((loaded.height, loaded.state, loaded.txs_total), (3, vec![1, 2, 3], 9));

        index.save_checkpoint_as(&checkpoint(4), CHECKPOINT_FORMAT + 1).unwrap();
        assert!(index.load_checkpoint().is_none(), "a newer format is not read");

        // The unversioned format 1: metadata {height, hash, len, crc}, the file postcard alone.
        #[derive(Serialize)]
        struct MetaV1 {
            height: u64,
            hash: Hash32,
            len: u64,
            crc: u32,
        }
        for height in [2, u64::from(CHECKPOINT_FORMAT), 1_000] {
            let bytes = postcard::to_allocvec(&checkpoint(height)).unwrap();
            std::fs::write(&index.file, &bytes).unwrap();
            let meta = MetaV1 {
                height,
                hash: Hash32([7; 32]),
                len: bytes.len() as u64,
                crc: crc32fast::hash(&bytes),
            };
            index.meta.insert(CHECKPOINT, postcard::to_allocvec(&meta).unwrap()).unwrap();
            assert!(index.load_checkpoint().is_none(), "format 1 at height {height} is not read");
        }
    }
}
