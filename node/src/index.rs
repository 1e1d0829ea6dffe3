//! sled holds only what can be rebuilt from the block log: a checkpoint of the state and
//! of every account's history, so a restart replays only the blocks after it. sled's
//! flush is not an fsync, so nothing here is trusted: a checkpoint is used only when the
//! block at its height has the hash it recorded, and an index sled cannot open is
//! deleted.

use std::path::Path;

use machi_ledger::Hash32;
use serde::{Deserialize, Serialize};

pub struct Index {
    db: sled::Db,
    meta: sled::Tree,
}

const CHECKPOINT: &[u8] = b"checkpoint";

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
        Ok(Index { db, meta })
    }

    pub(crate) fn save_checkpoint(&self, checkpoint: &Checkpoint) -> sled::Result<()> {
        let bytes = postcard::to_allocvec(checkpoint).expect("encoding into a Vec cannot fail");
        self.meta.insert(CHECKPOINT, bytes)?;
        self.db.flush()?;
        Ok(())
    }

    pub(crate) fn load_checkpoint(&self) -> Option<Checkpoint> {
        let bytes = self.meta.get(CHECKPOINT).ok()??;
        postcard::from_bytes(&bytes).ok()
    }

    pub(crate) fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!("index flush failed: {e}");
        }
    }
}
