//! Signed transactions whose outcome is not known yet, one file each in the keystore's
//! `pending/` folder: written (and synced) before the transaction is first sent, removed
//! once the node has said what became of it. Whatever retries it — the settling loop, a
//! second run of the same command, `machi-wallet check` — sends these same bytes again,
//! so it commits at most once.

use std::fs;
use std::path::{Path, PathBuf};

use machi_ledger::{SignedTx, TxId};
use serde::{Deserialize, Serialize};

use crate::keystore::create_private_dir;

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) tx_id: TxId,
    pub(crate) chain_id: String,
    pub(crate) tx: SignedTx,
    /// What a second run of the same command looks for, to send this transaction again
    /// instead of making another: `register-resident:<hash>`, `replace-card:<account>`.
    pub(crate) purpose: Option<String>,
    /// The card made for this transaction (register-resident, replace-card): it is
    /// removed if the transaction turns out refused or rejected.
    pub(crate) new_card: Option<String>,
}

pub(crate) struct PendingStore {
    dir: PathBuf,
}

impl PendingStore {
    pub(crate) fn open(keystore: &Path) -> std::io::Result<PendingStore> {
        let dir = keystore.join("pending");
        create_private_dir(&dir)?;
        Ok(PendingStore { dir })
    }

    fn path(&self, id: &TxId) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub(crate) fn save(&self, pending: &Pending) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(pending).expect("a pending transaction serialises");
        machi_host::write_durable(&self.path(&pending.tx_id), &bytes)
    }

    pub(crate) fn get(&self, id: &TxId) -> std::io::Result<Option<Pending>> {
        match fs::read(self.path(id)) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The pending transaction made for `purpose`, if there is one.
    pub(crate) fn find(&self, purpose: &str) -> std::io::Result<Option<Pending>> {
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Ok(pending) = serde_json::from_slice::<Pending>(&fs::read(&path)?) else { continue };
            if pending.purpose.as_deref() == Some(purpose) {
                return Ok(Some(pending));
            }
        }
        Ok(None)
    }

    pub(crate) fn remove(&self, id: &TxId) -> std::io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
