//! Browser sessions for the pages (docs/MERCHANT-API.md, "Screens"): a device pairs once
//! with an 8-digit code (or a token pasted once) and then holds a session cookie. Sessions
//! and pairing codes live in sled, kept by SHA-256 only, and are flushed before the answer;
//! a code is used once, by compare-and-swap. Sessions end when idle too long, after
//! `SESSION_ABSOLUTE_MS`, when signed out, or when their device is revoked.

use std::path::Path;

use axum::http::StatusCode;
use machi_host::ApiError;
use machi_ledger::{sha256, AccountId};
use rand::{Rng, RngCore};
use subtle::ConstantTimeEq;

use crate::auth::Caller;
use crate::merchant::{Merchant, NAME_CHARS_MAX};
use crate::model::{DeviceCaller, PairingRecord, Scope, SessionRecord, ShopRecord};
use crate::secrets::random_id;
use crate::store::{get_json, put_json, read_all, update_json, write_durable};

/// Digits in a pairing code (shown `1234-5678`).
pub(crate) const PAIRING_CODE_DIGITS: usize = 8;
/// How long a pairing code may be used.
pub const PAIRING_CODE_VALID_MS: u64 = 10 * 60 * 1000;
/// A counter's session ends after this long without a request.
pub(crate) const COUNTER_IDLE_MS: u64 = 12 * 60 * 60 * 1000;
/// A back office's or the town office's session ends after this long without a request.
pub(crate) const OFFICE_IDLE_MS: u64 = 30 * 60 * 1000;
/// Every session ends this long after pairing, however busy.
pub(crate) const SESSION_ABSOLUTE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// A session's last-seen time is written again only after this long (a counter makes many
/// requests a minute; idle expiry needs no finer time).
const LAST_SEEN_WRITE_MS: u64 = 60 * 1000;

/// A used or expired pairing code's record is kept this long after its expiry (so a late
/// second use still reads "used"), then removed.
const PAIRING_KEEP_MS: u64 = 24 * 60 * 60 * 1000;

/// Removes pairing codes past `PAIRING_KEEP_MS` after their expiry and sessions that have
/// expired (revoked ones included, once their time is up). Returns how many went.
pub(crate) fn prune(pairings: &sled::Tree, sessions: &sled::Tree, now_ms: u64) -> sled::Result<usize> {
    let mut removed = 0;
    for item in pairings.iter() {
        let (key, value) = item?;
        let old = serde_json::from_slice::<PairingRecord>(&value)
            .map_or(true, |r| now_ms > r.expires_ms.saturating_add(PAIRING_KEEP_MS));
        if old && pairings.compare_and_swap(&key, Some(&value), None::<&[u8]>)?.is_ok() {
            removed += 1;
        }
    }
    for item in sessions.iter() {
        let (key, value) = item?;
        let old = serde_json::from_slice::<SessionRecord>(&value).map_or(true, |r| r.expired(now_ms));
        if old && sessions.compare_and_swap(&key, Some(&value), None::<&[u8]>)?.is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Why a browser has no session.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NoSession {
    /// No cookie, or one this service never made.
    Missing,
    /// It had one: revoked, expired, or its shop is gone.
    SignedOut,
}

/// A new session cookie's value: 32 random bytes in hex.
fn new_cookie() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn new_pairing_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..PAIRING_CODE_DIGITS).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect()
}

/// `12345678` as people read it: `1234-5678`.
pub(crate) fn show_pairing_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a}-{b}")
}

/// The digits of a code as typed (`1234-5678`, `1234 5678`), if it is 8 digits.
pub(crate) fn parse_pairing_code(text: &str) -> Option<String> {
    let digits: String = text.chars().filter(|c| !matches!(c, '-' | ' ' | '\u{3000}')).collect();
    (digits.len() == PAIRING_CODE_DIGITS && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// The key a secret is kept under.
fn key_of(secret: &str) -> [u8; 32] {
    sha256(secret.as_bytes()).0
}

/// Whether two strings are equal, in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl SessionRecord {
    /// How long this session may be idle.
    pub(crate) fn idle_ms(&self) -> u64 {
        match self.caller {
            DeviceCaller::Shop { scope: Scope::PointOfSale | Scope::ReadOnly, .. } => COUNTER_IDLE_MS,
            DeviceCaller::Shop { scope: Scope::Full, .. } | DeviceCaller::TownOffice => OFFICE_IDLE_MS,
        }
    }

    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        now_ms > self.last_seen_ms.saturating_add(self.idle_ms())
            || now_ms > self.created_ms.saturating_add(SESSION_ABSOLUTE_MS)
    }

    /// The caller the API's rules see: the same checks as a bearer token's.
    pub(crate) fn api_caller(&self) -> Caller {
        match self.caller {
            DeviceCaller::TownOffice => Caller::Admin,
            DeviceCaller::Shop { shop, scope } => Caller::Shop { shop, scope },
        }
    }
}

fn bad_code() -> ApiError {
    ApiError::bad_request("bad_pairing_code", "that pairing code is not known, was used, or has expired")
}

fn check_label(label: &str) -> Result<String, ApiError> {
    let label = label.trim();
    if label.chars().count() > NAME_CHARS_MAX {
        return Err(ApiError::bad_request(
            "bad_label",
            format!("a label is at most {NAME_CHARS_MAX} characters"),
        ));
    }
    Ok(label.to_string())
}

/// Makes a pairing code while the service may be running (`machi-merchant pair`): it is
/// written as a file the service takes into sled when the code is first used. A shop must
/// be one of the data folder's.
pub fn pairing_code_offline(
    data_dir: &Path,
    caller: DeviceCaller,
    label: &str,
    now_ms: u64,
) -> anyhow::Result<String> {
    if let Some(shop) = caller.shop() {
        let shops = read_all::<ShopRecord>(&data_dir.join("shops"))?;
        anyhow::ensure!(shops.iter().any(|s| s.account == shop), "no shop {shop} in {}", data_dir.display());
    }
    let label = check_label(label).map_err(|e| anyhow::anyhow!(e.message))?;
    let code = new_pairing_code();
    let record = PairingRecord {
        caller,
        label,
        created_ms: now_ms,
        expires_ms: now_ms + PAIRING_CODE_VALID_MS,
        used_ms: None,
    };
    let path = crate::store::pairing_dir(data_dir).join(format!("{}.json", hex::encode(key_of(&code))));
    write_durable(&path, &serde_json::to_vec(&record)?)?;
    Ok(code)
}

/// The shops in a data folder, oldest first (for `machi-merchant demo`).
pub fn shops_in(data_dir: &Path) -> anyhow::Result<Vec<(AccountId, String)>> {
    let mut shops = read_all::<ShopRecord>(&data_dir.join("shops"))?;
    shops.sort_by_key(|s| s.created_ms);
    Ok(shops.into_iter().map(|s| (s.account, s.name)).collect())
}

impl Merchant {
    /// A new pairing code for `caller`, valid `PAIRING_CODE_VALID_MS`.
    pub(crate) async fn make_pairing_code(
        &self,
        caller: DeviceCaller,
        label: &str,
    ) -> Result<(String, u64), ApiError> {
        if let Some(shop) = caller.shop() {
            self.shop(&shop).ok_or_else(|| ApiError::not_found("shop"))?;
        }
        let label = check_label(label)?;
        let now = self.now_ms();
        let record = PairingRecord {
            caller,
            label,
            created_ms: now,
            expires_ms: now + PAIRING_CODE_VALID_MS,
            used_ms: None,
        };
        let bytes = serde_json::to_vec(&record).expect("records encode");
        let store = |e| ApiError::internal("storing a pairing code", e);
        let code = loop {
            let code = new_pairing_code();
            let put =
                self.store.pairings.compare_and_swap(key_of(&code), None::<&[u8]>, Some(bytes.as_slice()));
            if put.map_err(store)?.is_ok() {
                break code;
            }
        };
        self.store.flush().await.map_err(|e| ApiError::internal("flushing a pairing code", e))?;
        Ok((code, record.expires_ms))
    }

    /// Uses a pairing code (once: of two browsers racing with it, one wins) and starts a
    /// session for what it pairs. Returns the cookie and the session.
    pub(crate) async fn pair(&self, code: &str, label: &str) -> Result<(String, SessionRecord), ApiError> {
        let code = parse_pairing_code(code).ok_or_else(bad_code)?;
        let label = check_label(label)?;
        let key = key_of(&code);
        self.take_offline_code(&key).await?;
        let now = self.now_ms();
        let used = update_json(&self.store.pairings, key, |mut record: PairingRecord| {
            if record.used_ms.is_some() || now > record.expires_ms {
                return None;
            }
            record.used_ms = Some(now);
            Some(record)
        })
        .map_err(|e| ApiError::internal("using a pairing code", e))?
        .ok_or_else(bad_code)?;
        let label = if label.is_empty() { used.label } else { label };
        self.start_session(used.caller, label).await
    }

    /// A code `machi-merchant pair` wrote as a file goes into sled (if sled has no record
    /// under its key yet), and the file goes.
    async fn take_offline_code(&self, key: &[u8; 32]) -> Result<(), ApiError> {
        let path = self.store.pairing_dir().join(format!("{}.json", hex::encode(key)));
        let read = tokio::task::spawn_blocking({
            let path = path.clone();
            move || std::fs::read(path).ok()
        });
        let Some(bytes) = read.await.ok().flatten() else { return Ok(()) };
        if serde_json::from_slice::<PairingRecord>(&bytes).is_err() {
            return Err(bad_code());
        }
        let _ = self
            .store
            .pairings
            .compare_and_swap(key, None::<&[u8]>, Some(bytes))
            .map_err(|e| ApiError::internal("storing a pairing code", e))?;
        self.store.flush().await.map_err(|e| ApiError::internal("flushing a pairing code", e))?;
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
        Ok(())
    }

    /// Pairs with a token pasted once (`mst_…` of `point_of_sale` or `full`, or `mta_…`):
    /// the session acts as the token would; the token is not kept.
    pub(crate) async fn pair_with_token(
        &self,
        token: &str,
        label: &str,
    ) -> Result<(String, SessionRecord), ApiError> {
        let label = check_label(label)?;
        let caller = match self.authenticate(token.trim())? {
            Caller::Admin => DeviceCaller::TownOffice,
            Caller::Shop { scope: Scope::ReadOnly, .. } => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_scope",
                    "a read_only token has no screen; use a point_of_sale or full token",
                ))
            }
            Caller::Shop { shop, scope } => DeviceCaller::Shop { shop, scope },
        };
        self.start_session(caller, label).await
    }

    async fn start_session(
        &self,
        caller: DeviceCaller,
        label: String,
    ) -> Result<(String, SessionRecord), ApiError> {
        let now = self.now_ms();
        let record = SessionRecord {
            device: random_id("dev"),
            caller,
            label,
            csrf: new_cookie(),
            created_ms: now,
            last_seen_ms: now,
            revoked_ms: None,
        };
        let cookie = new_cookie();
        put_json(&self.store.sessions, key_of(&cookie), &record)
            .map_err(|e| ApiError::internal("storing a session", e))?;
        // Each pairing sweeps what has run out, so neither tree grows for ever.
        if let Err(e) = prune(&self.store.pairings, &self.store.sessions, now) {
            tracing::warn!("removing old sessions and pairing codes: {e}");
        }
        self.store.flush().await.map_err(|e| ApiError::internal("flushing a session", e))?;
        Ok((cookie, record))
    }

    /// The live session behind a cookie. An expired one is removed.
    pub(crate) fn session(&self, cookie: Option<&str>) -> Result<SessionRecord, NoSession> {
        let cookie = cookie.ok_or(NoSession::Missing)?;
        let key = key_of(cookie);
        let record: SessionRecord = get_json(&self.store.sessions, key).ok_or(NoSession::Missing)?;
        let now = self.now_ms();
        let shop_gone = record.caller.shop().is_some_and(|shop| self.shop(&shop).is_none());
        if record.revoked_ms.is_some() || shop_gone {
            return Err(NoSession::SignedOut);
        }
        if record.expired(now) {
            let _ = self.store.sessions.remove(key);
            return Err(NoSession::SignedOut);
        }
        if now >= record.last_seen_ms.saturating_add(LAST_SEEN_WRITE_MS) {
            // Not flushed: a power cut loses at most a little idle time.
            let _ = update_json(&self.store.sessions, key, |mut r: SessionRecord| {
                r.last_seen_ms = r.last_seen_ms.max(now);
                Some(r)
            });
        }
        Ok(record)
    }

    pub(crate) async fn sign_out(&self, cookie: &str) -> Result<(), ApiError> {
        self.store.sessions.remove(key_of(cookie)).map_err(|e| ApiError::internal("ending a session", e))?;
        self.store.flush().await.map_err(|e| ApiError::internal("flushing sessions", e))?;
        Ok(())
    }

    /// Paired devices: a shop's (`Some`), or every one (`None`, the town office), newest
    /// first. Expired sessions are left out.
    pub(crate) fn devices(&self, shop: Option<&AccountId>) -> Vec<SessionRecord> {
        let now = self.now_ms();
        let mut list: Vec<SessionRecord> = self
            .store
            .sessions
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .filter_map(|v| serde_json::from_slice::<SessionRecord>(&v).ok())
            .filter(|s| !s.expired(now))
            .filter(|s| shop.is_none_or(|shop| s.caller.shop() == Some(*shop)))
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
        list
    }

    /// Revokes a device: its session ends at once. `shop` limits it to that shop's
    /// devices (a back office); the town office passes `None`.
    pub(crate) async fn revoke_device(&self, device: &str, shop: Option<&AccountId>) -> Result<(), ApiError> {
        let now = self.now_ms();
        let mut found = false;
        for (key, value) in self.store.sessions.iter().filter_map(|item| item.ok()) {
            let Ok(record) = serde_json::from_slice::<SessionRecord>(&value) else { continue };
            if record.device != device || shop.is_some_and(|shop| record.caller.shop() != Some(*shop)) {
                continue;
            }
            found = true;
            update_json(&self.store.sessions, key, |mut r: SessionRecord| {
                r.revoked_ms.is_none().then(|| {
                    r.revoked_ms = Some(now);
                    r
                })
            })
            .map_err(|e| ApiError::internal("revoking a device", e))?;
        }
        if !found {
            return Err(ApiError::not_found("device"));
        }
        self.store.flush().await.map_err(|e| ApiError::internal("flushing sessions", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_codes_and_ended_sessions_are_swept_and_live_ones_kept() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let (pairings, sessions) = (db.open_tree("p").unwrap(), db.open_tree("s").unwrap());
        let caller = DeviceCaller::TownOffice;
        let code = |expires_ms| PairingRecord {
            caller,
            label: String::new(),
            created_ms: 0,
            expires_ms,
            used_ms: None,
        };
        put_json(&pairings, "old", &code(1_000)).unwrap();
        put_json(&pairings, "recent", &code(1_000 + PAIRING_KEEP_MS)).unwrap();
        let session = |last_seen_ms, revoked_ms| SessionRecord {
            device: "dev_1".into(),
            caller,
            label: String::new(),
            csrf: "x".into(),
            created_ms: 0,
            last_seen_ms,
            revoked_ms,
        };
        let now = 2_000 + PAIRING_KEEP_MS;
        put_json(&sessions, "idle", &session(now - OFFICE_IDLE_MS - 1, None)).unwrap();
        put_json(&sessions, "live", &session(now - 1, None)).unwrap();
        put_json(&sessions, "revoked", &session(now - 1, Some(now - 1))).unwrap();
        assert_eq!(prune(&pairings, &sessions, now).unwrap(), 2);
        let keys = |tree: &sled::Tree| -> Vec<String> {
            tree.iter().keys().map(|k| String::from_utf8(k.unwrap().to_vec()).unwrap()).collect()
        };
        assert_eq!(keys(&pairings), ["recent"]);
        assert_eq!(
            keys(&sessions),
            ["live", "revoked"],
            "a revoked session stays listed until its time is up"
        );
    }

    #[test]
    fn codes_are_read_as_people_type_them() {
        assert_eq!(parse_pairing_code("1234-5678").as_deref(), Some("12345678"));
        assert_eq!(parse_pairing_code(" 1234 5678 ").as_deref(), Some("12345678"));
        assert_eq!(parse_pairing_code("1234-567"), None);
        assert_eq!(parse_pairing_code("1234-567a"), None);
        assert_eq!(parse_pairing_code("１２３４５６７８"), None, "full-width digits are not digits here");
        assert_eq!(show_pairing_code("12345678"), "1234-5678");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abcdef", "abcdef"));
        assert!(!same_secret("abcdef", "abcdeg"));
        assert!(!same_secret("abcdef", "abcde"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn counters_stay_signed_in_longer_than_offices_and_nothing_outlives_the_absolute_limit() {
        let shop = AccountId([1; 32]);
        let session = |caller| SessionRecord {
            device: "dev_1".into(),
            caller,
            label: String::new(),
            csrf: "x".into(),
            created_ms: 0,
            last_seen_ms: 0,
            revoked_ms: None,
        };
        let counter = session(DeviceCaller::Shop { shop, scope: Scope::PointOfSale });
        let office = session(DeviceCaller::Shop { shop, scope: Scope::Full });
        let town = session(DeviceCaller::TownOffice);
        assert!(!counter.expired(COUNTER_IDLE_MS) && counter.expired(COUNTER_IDLE_MS + 1));
        assert!(!office.expired(OFFICE_IDLE_MS) && office.expired(OFFICE_IDLE_MS + 1));
        assert!(town.expired(OFFICE_IDLE_MS + 1));
        let busy = SessionRecord { last_seen_ms: SESSION_ABSOLUTE_MS, ..counter };
        assert!(!busy.expired(SESSION_ABSOLUTE_MS) && busy.expired(SESSION_ABSOLUTE_MS + 1));
    }
}
