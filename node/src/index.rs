//! The index folder holds only what can be rebuilt from the block log: a checkpoint of
//! the state, every account's history and the block hashes, so a restart replays only
//! the blocks after it. The checkpoint itself is a file written aside and renamed into
//! place (large values are not what sled is for); sled keeps its metadata (height, block
//! hash, length, checksum). Nothing here is trusted: a checkpoint is used only when its
//! checksum holds and the block at its height has the hash it recorded, and an index
//! sled cannot open is deleted.

use std::path::Path;

use machi_ledger::Hash32;
use serde::{Deserialize, Serialize};

pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
    file: std::path::PathBuf,
}

const CHECKPOINT: &[u8] = b"checkpoint";

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
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
                tracing::warn!("index at {} is unreadable ({e}); starting it afresh", path.display());
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

    /// Writes the checkpoint file aside, syncs it, renames it into place, then records
    /// its metadata in sled.
    pub(crate) fn save_checkpoint(&self, checkpoint: &Checkpoint) -> std::io::Result<()> {
        use std::io::Write;
        let bytes = postcard::to_allocvec(checkpoint).expect("encoding into a Vec cannot fail");
        let meta = CheckpointMeta {
            height: checkpoint.height,
            hash: checkpoint.hash,
            len: bytes.len() as u64,
            crc: crc32fast::hash(&bytes),
        };
        let aside = self.file.with_extension("tmp");
        let mut file = std::fs::File::create(&aside)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&aside, &self.file)?;
        let meta = postcard::to_allocvec(&meta).expect("encoding into a Vec cannot fail");
        self.meta.insert(CHECKPOINT, meta).map_err(std::io::Error::other)?;
        self.db.flush().map_err(std::io::Error::other)?;
        Ok(())
    }

    pub(crate) fn load_checkpoint(&self) -> Option<Checkpoint> {
        let meta: CheckpointMeta = postcard::from_bytes(&self.meta.get(CHECKPOINT).ok()??).ok()?;
        let bytes = std::fs::read(&self.file).ok()?;
        if bytes.len() as u64 != meta.len || crc32fast::hash(&bytes) != meta.crc {
            tracing::warn!("the state checkpoint file does not match its checksum; replaying from genesis");
            return None;
        }
        let checkpoint: Checkpoint = postcard::from_bytes(&bytes).ok()?;
        (checkpoint.height == meta.height && checkpoint.hash == meta.hash).then_some(checkpoint)
    }

    pub(crate) fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!("index flush failed: {e}");
        }
    }
}
