//! Where the merchant API keeps things.
//!
//! - Files written durably (aside, fsync, rename, fsync the folder: machi-host) for what
//!   the chain cannot give back and a power cut must not take: shops (sealed key, bank
//!   account), tokens, settlements and their Zengin files, admin token hashes. The API
//!   answers only after these are on disk.
//! - sled for what is rebuilt or re-read from the chain, or may be re-created by the
//!   shop: invoices, the chain position of the follower, statement lines, cash-outs,
//!   events, closed statements; and the transactions reserved by idempotency keys,
//!   which are flushed before the transaction is sent.
//! - Blocking file I/O and flushes run on tokio's blocking pool (`write_durable_async`,
//!   `Store::flush`), never on the threads that serve requests.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use machi_ledger::Hash32;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Writes `bytes` to `path` so that after a crash the file is either the old one or the
/// new one, whole, and on disk before this returns (machi-host's durable write), making
/// its folder first if need be.
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    fs::create_dir_all(path.parent().expect("durable files live in a folder"))?;
    machi_host::write_durable(path, bytes)
}

/// `write_durable` on the blocking pool.
pub(crate) async fn write_durable_async(path: PathBuf, bytes: Vec<u8>) -> std::io::Result<()> {
    tokio::task::spawn_blocking(move || write_durable(&path, &bytes)).await.map_err(std::io::Error::other)?
}

/// Every `*.json` file in `dir`, decoded.
pub(crate) fn read_all<T: DeserializeOwned>(dir: &Path) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return Ok(out) };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            out.push(serde_json::from_slice(&bytes).with_context(|| format!("decoding {}", path.display()))?);
        }
    }
    Ok(out)
}

pub(crate) struct Store {
    pub(crate) dir: PathBuf,
    pub(crate) db: sled::Db,
    pub(crate) invoices: sled::Tree,
    /// shop (32) ‖ created (u64be) ‖ invoice id → invoice id, for listing a shop's.
    pub(crate) shop_invoices: sled::Tree,
    pub(crate) pay_codes: sled::Tree,
    pub(crate) idempotency: sled::Tree,
    /// shop (32) ‖ operation ‖ 0 ‖ Idempotency-Key → the signed transaction it reserved.
    pub(crate) reservations: sled::Tree,
    /// Payment tx id → invoice id, for matching refunds.
    pub(crate) payments: sled::Tree,
    /// shop (32) ‖ timestamp (u64be) ‖ height (u64be) ‖ index in block (u32be) [‖ cash-out id] → statement line.
    pub(crate) entries: sled::Tree,
    pub(crate) cash_outs: sled::Tree,
    /// seq (u64be) → event.
    pub(crate) events: sled::Tree,
    /// shop (32) ‖ "YYYY-MM" → CSV of a closed month.
    pub(crate) statements: sled::Tree,
    pub(crate) meta: sled::Tree,
    /// SHA-256 of a session cookie → the browser's session (pages).
    pub(crate) sessions: sled::Tree,
    /// SHA-256 of a pairing code → what it pairs, and whether it was used.
    pub(crate) pairings: sled::Tree,
}

impl Store {
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Store> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let db = sled::open(dir.join("db")).with_context(|| format!("opening {}/db", dir.display()))?;
        Ok(Store {
            dir: dir.to_path_buf(),
            invoices: db.open_tree("invoices")?,
            shop_invoices: db.open_tree("shop_invoices")?,
            pay_codes: db.open_tree("pay_codes")?,
            idempotency: db.open_tree("idempotency")?,
            reservations: db.open_tree("reservations")?,
            payments: db.open_tree("payments")?,
            entries: db.open_tree("entries")?,
            cash_outs: db.open_tree("cash_outs")?,
            events: db.open_tree("events")?,
            statements: db.open_tree("statements")?,
            meta: db.open_tree("meta")?,
            sessions: db.open_tree("sessions")?,
            pairings: db.open_tree("pairings")?,
            db,
        })
    }

    pub(crate) fn shops_dir(&self) -> PathBuf {
        self.dir.join("shops")
    }

    pub(crate) fn tokens_dir(&self) -> PathBuf {
        self.dir.join("tokens")
    }

    pub(crate) fn settlements_dir(&self) -> PathBuf {
        self.dir.join("settlements")
    }

    /// Pairing codes made by `machi-merchant pair` while the service runs (sled allows
    /// one process): the service takes each into sled when it is first used.
    pub(crate) fn pairing_dir(&self) -> PathBuf {
        pairing_dir(&self.dir)
    }

    /// Writes everything sled holds to disk. sled 0.34's `flush_async` deadlocks when
    /// called concurrently (sled issue #1308), so the blocking flush runs on the blocking
    /// pool.
    pub(crate) async fn flush(&self) -> anyhow::Result<()> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush()).await??;
        Ok(())
    }

    pub(crate) fn meta_u64(&self, key: &str) -> u64 {
        self.meta
            .get(key)
            .ok()
            .flatten()
            .and_then(|v| v.as_ref().try_into().ok())
            .map_or(0, u64::from_be_bytes)
    }

    pub(crate) fn set_meta_u64(&self, key: &str, value: u64) -> sled::Result<()> {
        self.meta.insert(key, &value.to_be_bytes()).map(|_| ())
    }
}

pub(crate) fn get_json<T: DeserializeOwned>(tree: &sled::Tree, key: impl AsRef<[u8]>) -> Option<T> {
    let bytes = tree.get(key).ok().flatten()?;
    Some(serde_json::from_slice(&bytes).expect("values this program wrote decode"))
}

pub(crate) fn put_json<T: Serialize>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
    value: &T,
) -> sled::Result<()> {
    let bytes = serde_json::to_vec(value).expect("records always encode");
    tree.insert(key.as_ref(), bytes).map(|_| ())
}

/// Changes the JSON value at `key` with `change` (which returns `None` to leave it
/// alone) by compare-and-swap: if another writer changed the value in between, `change`
/// runs again on what that writer wrote, so no writer's change is lost. Returns the
/// value as written, or `None` if there was none or `change` left it alone.
pub(crate) fn update_json<T, F>(
    tree: &sled::Tree,
    key: impl AsRef<[u8]>,
    mut change: F,
) -> sled::Result<Option<T>>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(T) -> Option<T>,
{
    let key = key.as_ref();
    loop {
        let Some(old) = tree.get(key)? else { return Ok(None) };
        let value: T = serde_json::from_slice(&old).expect("values this program wrote decode");
        let Some(new) = change(value) else { return Ok(None) };
        let bytes = serde_json::to_vec(&new).expect("records always encode");
        if tree.compare_and_swap(key, Some(&old), Some(bytes))?.is_ok() {
            return Ok(Some(new));
        }
    }
}

pub(crate) fn pairing_dir(dir: &Path) -> PathBuf {
    dir.join("pairing-codes")
}

/// The admin token hashes, one hex line each, in `DIR/admin-tokens`: a file, so that
/// `machi-merchant admin-token` can add one while the service runs (sled allows one
/// process).
pub(crate) fn admin_tokens_path(dir: &Path) -> PathBuf {
    dir.join("admin-tokens")
}

/// The admin token hashes, kept in memory and read again only when the file changed
/// (another file in its place, or a new time or length): `machi-merchant admin-token`
/// adds one by writing a new file beside it and renaming it over the old one.
pub(crate) struct AdminTokens {
    path: PathBuf,
    cached: Mutex<Option<(FileStamp, HashSet<Hash32>)>>,
    loads: AtomicU64,
}

/// What tells one version of a file from another.
type FileStamp = Option<(u64, Option<std::time::SystemTime>, u64)>;

impl AdminTokens {
    pub(crate) fn new(path: PathBuf) -> AdminTokens {
        AdminTokens { path, cached: Mutex::new(None), loads: AtomicU64::new(0) }
    }

    /// Whether `hash` is an admin token's. One `stat` of the file per call; a read only
    /// after it changed.
    pub(crate) fn contains(&self, hash: &Hash32) -> bool {
        let stamp: FileStamp = fs::metadata(&self.path).ok().map(|m| (m.ino(), m.modified().ok(), m.len()));
        let mut cached = self.cached.lock().expect("admin tokens lock");
        if cached.as_ref().is_none_or(|(seen, _)| *seen != stamp) {
            self.loads.fetch_add(1, Ordering::Relaxed);
            let text = fs::read_to_string(&self.path).unwrap_or_default();
            let hashes = text.lines().filter_map(|line| Hash32::from_hex(line.trim())).collect();
            *cached = Some((stamp, hashes));
        }
        cached.as_ref().is_some_and(|(_, hashes)| hashes.contains(hash))
    }
}

pub(crate) fn add_admin_token_hash(dir: &Path, hash_hex: &str) -> std::io::Result<()> {
    let path = admin_tokens_path(dir);
    let mut text = fs::read_to_string(&path).unwrap_or_default();
    text.push_str(hash_hex);
    text.push('\n');
    write_durable(&path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_are_read_again_only_after_the_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (machi_ledger::sha256(b"mta_first"), machi_ledger::sha256(b"mta_second"));
        add_admin_token_hash(dir.path(), &first.to_hex()).unwrap();
        let tokens = AdminTokens::new(admin_tokens_path(dir.path()));
        for _ in 0..100 {
            assert!(tokens.contains(&first));
            assert!(!tokens.contains(&second));
        }
        assert_eq!(tokens.loads.load(Ordering::Relaxed), 1, "read once for 200 checks");
        add_admin_token_hash(dir.path(), &second.to_hex()).unwrap();
        assert!(tokens.contains(&second) && tokens.contains(&first));
        assert_eq!(tokens.loads.load(Ordering::Relaxed), 2);
    }
}
