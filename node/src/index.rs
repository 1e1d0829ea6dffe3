//! sled holds only what can be rebuilt from the block log: each account's history and a
//! state checkpoint. sled's flush is not an fsync, so nothing here is trusted to be
//! durable: a missing, stale or unreadable index is rebuilt from the log on start.

use std::path::Path;

use machi_ledger::api::{HistoryEntry, TxStatus};
use machi_ledger::{AccountId, Hash32, Outcome, TxBody};
use serde::{Deserialize, Serialize};

pub struct Index {
    db: sled::Db,
    history: sled::Tree,
    meta: sled::Tree,
}

const INDEXED_HEIGHT: &[u8] = b"indexed_height";
const CHECKPOINT: &[u8] = b"checkpoint";

/// One transaction in an account's history, as stored.
#[derive(Serialize, Deserialize)]
struct StoredEntry {
    timestamp_ms: u64,
    signer: AccountId,
    outcome: Outcome,
    body: Vec<u8>,
}

/// What the indexer is given per committed transaction.
pub struct IndexedTx {
    pub height: u64,
    pub index: u32,
    pub timestamp_ms: u64,
    pub signer: AccountId,
    pub outcome: Outcome,
    pub body: Vec<u8>,
    pub accounts: Vec<AccountId>,
}

#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    pub height: u64,
    pub hash: Hash32,
    pub state: Vec<u8>,
}

impl Index {
    /// Opens the index; an index sled cannot open is deleted and started afresh.
    pub fn open(path: &Path) -> anyhow::Result<Index> {
        match Index::try_open(path) {
            Ok(index) => Ok(index),
            Err(e) => {
                tracing::warn!(
                    "index at {} is unreadable ({e}); rebuilding it from the block log",
                    path.display()
                );
                std::fs::remove_dir_all(path)?;
                Ok(Index::try_open(path)?)
            }
        }
    }

    fn try_open(path: &Path) -> sled::Result<Index> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(64 * 1024 * 1024)
            .open()?;
        let history = db.open_tree("history")?;
        let meta = db.open_tree("meta")?;
        Ok(Index { db, history, meta })
    }

    pub fn indexed_height(&self) -> Option<u64> {
        let value = self.meta.get(INDEXED_HEIGHT).ok()??;
        Some(u64::from_be_bytes(value.as_ref().try_into().ok()?))
    }

    /// Forgets everything (the log was found to differ from what was indexed).
    pub fn clear(&self) -> sled::Result<()> {
        self.history.clear()?;
        self.meta.clear()
    }

    pub fn index_block(&self, height: u64, txs: &[IndexedTx]) -> sled::Result<()> {
        let mut batch = sled::Batch::default();
        for tx in txs {
            let entry = StoredEntry {
                timestamp_ms: tx.timestamp_ms,
                signer: tx.signer,
                outcome: tx.outcome,
                body: tx.body.clone(),
            };
            let value = postcard::to_allocvec(&entry).expect("encoding into a Vec cannot fail");
            for account in &tx.accounts {
                batch.insert(
                    history_key(account, tx.height, tx.index).as_slice(),
                    value.as_slice(),
                );
            }
        }
        self.history.apply_batch(batch)?;
        self.meta.insert(INDEXED_HEIGHT, &height.to_be_bytes())?;
        Ok(())
    }

    /// The newest `limit` entries of an account's history, newest first.
    pub fn history(&self, account: &AccountId, limit: usize) -> Vec<HistoryEntry> {
        self.history
            .scan_prefix(account.0)
            .rev()
            .filter_map(Result::ok)
            .take(limit)
            .filter_map(|(key, value)| {
                let height = u64::from_be_bytes(key.get(32..40)?.try_into().ok()?);
                let tx_index = u32::from_be_bytes(key.get(40..44)?.try_into().ok()?);
                let stored: StoredEntry = postcard::from_bytes(&value).ok()?;
                let body = TxBody::decode(&stored.body).ok();
                let chain_id = body
                    .as_ref()
                    .map(|b| b.chain_id.clone())
                    .unwrap_or_default();
                let (status, reason) = match stored.outcome {
                    Outcome::Applied => (TxStatus::Applied, None),
                    Outcome::Rejected(r) => (TxStatus::Rejected, Some(r.name().to_string())),
                };
                let _ = tx_index;
                Some(HistoryEntry {
                    tx_id: machi_ledger::tx_id(&chain_id, &stored.signer, &stored.body),
                    height,
                    timestamp_ms: stored.timestamp_ms,
                    kind: body
                        .as_ref()
                        .map_or("unknown", |b| b.action.kind_name())
                        .to_string(),
                    status,
                    reason,
                    signer: stored.signer,
                    body,
                })
            })
            .collect()
    }

    pub fn save_checkpoint(&self, checkpoint: &Checkpoint) -> sled::Result<()> {
        let bytes = postcard::to_allocvec(checkpoint).expect("encoding into a Vec cannot fail");
        self.meta.insert(CHECKPOINT, bytes)?;
        self.db.flush()?;
        Ok(())
    }

    pub fn load_checkpoint(&self) -> Option<Checkpoint> {
        let bytes = self.meta.get(CHECKPOINT).ok()??;
        postcard::from_bytes(&bytes).ok()
    }

    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!("index flush failed: {e}");
        }
    }
}

fn history_key(account: &AccountId, height: u64, index: u32) -> [u8; 44] {
    let mut key = [0u8; 44];
    key[..32].copy_from_slice(&account.0);
    key[32..40].copy_from_slice(&height.to_be_bytes());
    key[40..].copy_from_slice(&index.to_be_bytes());
    key
}
