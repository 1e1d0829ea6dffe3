//! Who reads what (docs/RULES.md §5): read challenges and sessions, kept in memory by
//! each replica, and the access log of every read served under the everything scope,
//! kept in the index's sled.
//!
//! A reader asks for a challenge, signs `machi_ledger::read_auth::message` with its
//! account's key and gets a token; each request then names the token. Who the reader is
//! (its role, frozen or replaced) is read from the chain's state at every request, so a
//! key the town freezes or an operator replaces stops reading at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use machi_api::{AccessLogEntry, ReaderRole, READ_CHALLENGE_TTL_MS, READ_SESSION_TTL_MS};
use machi_ledger::{AccountId, State};
use rand::RngCore;

use crate::chain::Clock;

/// Most challenges outstanding at once (those expired are dropped first).
pub(crate) const READ_CHALLENGES_MAX: usize = 100_000;
/// Most sessions open at once (those expired are dropped first).
pub(crate) const READ_SESSIONS_MAX: usize = 100_000;

/// Why a challenge is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChallengeRefused {
    /// Never issued by this replica (or so long ago it is forgotten).
    Unknown,
    /// Already answered once.
    Used,
    Expired,
}

impl ChallengeRefused {
    pub(crate) fn code(self) -> &'static str {
        match self {
            ChallengeRefused::Unknown => "challenge_unknown",
            ChallengeRefused::Used => "challenge_used",
            ChallengeRefused::Expired => "challenge_expired",
        }
    }

    pub(crate) fn message(self) -> &'static str {
        match self {
            ChallengeRefused::Unknown => "this node did not give that challenge; ask it for a new one",
            ChallengeRefused::Used => "that challenge was already answered; ask for a new one",
            ChallengeRefused::Expired => "that challenge expired; ask for a new one",
        }
    }
}

/// Why a session token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SessionRefused {
    /// Not a token this replica gave (or malformed).
    Invalid,
    Expired,
    /// The key was replaced (a lost card) since the session opened.
    KeyReplaced,
    /// The account is frozen (a revoked delegate, a lost card).
    Frozen,
}

struct Challenge {
    expires_ms: u64,
    used: bool,
}

/// The session behind a token.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) account: AccountId,
    pub(crate) purpose: String,
    pub(crate) expires_ms: u64,
}

#[derive(Default)]
struct Challenges {
    by_value: HashMap<[u8; 32], Challenge>,
    /// In the order given, for pruning by age.
    order: VecDeque<([u8; 32], u64)>,
}

#[derive(Default)]
struct Sessions {
    by_hash: HashMap<[u8; 32], Session>,
    order: VecDeque<([u8; 32], u64)>,
}

/// A reader resolved for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reader {
    /// No credential.
    Anonymous,
    Key(KeyReader),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyReader {
    pub(crate) account: AccountId,
    pub(crate) role: ReaderRole,
    /// The account's name on chain ("town", a delegate's or an operator's name).
    pub(crate) name: String,
    pub(crate) purpose: String,
}

impl Reader {
    /// The town, an auditor or a town service: reads everything, and is logged.
    pub(crate) fn everything(&self) -> bool {
        matches!(self, Reader::Key(k) if k.role.scope() == machi_api::ReadScope::Everything)
    }

    pub(crate) fn role(&self) -> Option<ReaderRole> {
        match self {
            Reader::Anonymous => None,
            Reader::Key(k) => Some(k.role),
        }
    }

    /// Whether this reader may read what belongs to `account`: the everything scope, or
    /// the account's own key (the key now holding it, after a lost card's replacement).
    pub(crate) fn may_read(&self, state: &State, account: &AccountId) -> bool {
        match self {
            Reader::Anonymous => false,
            Reader::Key(k) => self.everything() || state.current_key(*account) == k.account,
        }
    }

    /// Whether this reader may read something that concerns `accounts`.
    pub(crate) fn may_read_any(&self, state: &State, accounts: &[AccountId]) -> bool {
        self.everything() || accounts.iter().any(|a| self.may_read(state, a))
    }
}

/// Read challenges and sessions of this replica, and its access log.
pub(crate) struct Readers {
    clock: Arc<dyn Clock>,
    challenges: Mutex<Challenges>,
    sessions: Mutex<Sessions>,
    pub(crate) log: AccessLog,
}

impl Readers {
    pub(crate) fn new(clock: Arc<dyn Clock>, log: AccessLog) -> Readers {
        Readers {
            clock,
            challenges: Mutex::new(Challenges::default()),
            sessions: Mutex::new(Sessions::default()),
            log,
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A fresh challenge and when it expires; `None` when `READ_CHALLENGES_MAX` are
    /// outstanding.
    pub(crate) fn challenge(&self) -> Option<([u8; 32], u64)> {
        let now = self.now_ms();
        let mut challenges = self.challenges.lock().expect("challenges");
        // A challenge is remembered for a TTL after it expired, so that a late or
        // replayed answer hears why it is refused; then it is forgotten.
        let forget_before = now.saturating_sub(READ_CHALLENGE_TTL_MS);
        challenges.prune(|expires_ms| expires_ms <= forget_before);
        if challenges.by_value.len() >= READ_CHALLENGES_MAX {
            challenges.prune(|expires_ms| expires_ms <= now);
        }
        if challenges.by_value.len() >= READ_CHALLENGES_MAX {
            return None;
        }
        let mut value = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut value);
        let expires_ms = now.saturating_add(READ_CHALLENGE_TTL_MS);
        challenges.by_value.insert(value, Challenge { expires_ms, used: false });
        challenges.order.push_back((value, expires_ms));
        Some((value, expires_ms))
    }

    /// Uses `value` up: checked and marked in one step, so two answers to one challenge
    /// cannot both pass.
    pub(crate) fn use_challenge(&self, value: &[u8; 32]) -> Result<(), ChallengeRefused> {
        let now = self.now_ms();
        let mut challenges = self.challenges.lock().expect("challenges");
        match challenges.by_value.get_mut(value) {
            None => Err(ChallengeRefused::Unknown),
            Some(c) if c.used => Err(ChallengeRefused::Used),
            Some(c) if now > c.expires_ms => Err(ChallengeRefused::Expired),
            Some(c) => {
                c.used = true;
                Ok(())
            }
        }
    }

    /// Opens a session: the token and when it expires; `None` when `READ_SESSIONS_MAX`
    /// are open.
    pub(crate) fn open_session(&self, account: AccountId, purpose: String) -> Option<([u8; 32], u64)> {
        let now = self.now_ms();
        let mut sessions = self.sessions.lock().expect("sessions");
        sessions.prune(now);
        if sessions.by_hash.len() >= READ_SESSIONS_MAX {
            return None;
        }
        let mut token = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut token);
        let expires_ms = now.saturating_add(READ_SESSION_TTL_MS);
        let hash = machi_ledger::sha256(&token).0;
        sessions.by_hash.insert(hash, Session { account, purpose, expires_ms });
        sessions.order.push_back((hash, expires_ms));
        Some((token, expires_ms))
    }

    /// The reader a bearer token stands for, as the chain's `state` has its account now.
    pub(crate) fn reader(&self, token: &str, state: &State) -> Result<Reader, SessionRefused> {
        let mut raw = [0u8; 32];
        hex::decode_to_slice(token, &mut raw).map_err(|_| SessionRefused::Invalid)?;
        let hash = machi_ledger::sha256(&raw).0;
        let now = self.now_ms();
        let session = {
            let mut sessions = self.sessions.lock().expect("sessions");
            let session = sessions.by_hash.get(&hash).cloned().ok_or(SessionRefused::Invalid)?;
            if now >= session.expires_ms {
                sessions.by_hash.remove(&hash);
                return Err(SessionRefused::Expired);
            }
            session
        };
        let refused = |why| {
            self.sessions.lock().expect("sessions").by_hash.remove(&hash);
            why
        };
        let account = state.accounts.get(&session.account).ok_or(SessionRefused::Invalid)?;
        if account.replaced_by.is_some() {
            return Err(refused(SessionRefused::KeyReplaced));
        }
        if account.frozen {
            return Err(refused(SessionRefused::Frozen));
        }
        Ok(Reader::Key(KeyReader {
            account: session.account,
            role: ReaderRole::of(account.role),
            name: account.name.clone(),
            purpose: session.purpose,
        }))
    }
}

impl Challenges {
    /// Forgets the oldest challenges while `old(expires_ms)` holds of them.
    fn prune(&mut self, old: impl Fn(u64) -> bool) {
        while let Some(&(value, expires_ms)) = self.order.front() {
            if !old(expires_ms) {
                break;
            }
            self.order.pop_front();
            self.by_value.remove(&value);
        }
    }
}

impl Sessions {
    /// Drops the sessions that expired by `now`, oldest first.
    fn prune(&mut self, now: u64) {
        while let Some(&(hash, expires_ms)) = self.order.front() {
            if expires_ms > now {
                break;
            }
            self.order.pop_front();
            self.by_hash.remove(&hash);
        }
    }
}

/// The access log: one entry per read served under the everything scope, in its own sled
/// database (`DATA_DIR/access-log`, key `u64be(seq)`, value the entry's JSON), apart from
/// the index: the index may be deleted and rebuilt from the block log, the access log
/// cannot be — it is not part of the chain; each replica logs the reads it served. Each
/// entry is flushed to disk before the read is answered.
pub(crate) struct AccessLog {
    db: sled::Db,
    next: Mutex<u64>,
}

/// Where a node keeps its access log.
pub(crate) fn access_log_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("access-log")
}

impl AccessLog {
    pub(crate) fn open(path: &std::path::Path) -> anyhow::Result<AccessLog> {
        let db = sled::Config::new()
            .path(path)
            .open()
            .with_context(|| format!("opening the access log at {}", path.display()))?;
        let tree: &sled::Tree = &db;
        let last = match tree.last()? {
            Some((key, _)) => u64::from_be_bytes(
                key.as_ref().try_into().map_err(|_| anyhow::anyhow!("an access log key is not 8 bytes"))?,
            ),
            None => 0,
        };
        Ok(AccessLog { db, next: Mutex::new(last + 1) })
    }

    /// Records one read, durably: its sequence number is the next one.
    pub(crate) async fn record(&self, mut entry: AccessLogEntry) -> std::io::Result<u64> {
        {
            let mut next = self.next.lock().expect("access log");
            entry.seq = *next;
            let value = serde_json::to_vec(&entry).expect("an entry encodes");
            self.db.insert(entry.seq.to_be_bytes(), value).map_err(std::io::Error::other)?;
            *next += 1;
        }
        // sled's own flush, on the blocking pool (an fsync must not hold a runtime thread).
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        Ok(entry.seq)
    }

    /// Up to `limit` entries after `after`, oldest first.
    pub(crate) fn after(&self, after: u64, limit: usize) -> std::io::Result<Vec<AccessLogEntry>> {
        let start = after.saturating_add(1).to_be_bytes();
        let mut entries = Vec::new();
        for item in self.db.range(start..).take(limit) {
            let (_, value) = item.map_err(std::io::Error::other)?;
            entries.push(serde_json::from_slice(&value).map_err(std::io::Error::other)?);
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers(dir: &std::path::Path, clock: Arc<crate::ManualClock>) -> Readers {
        Readers::new(clock, AccessLog::open(&access_log_path(dir)).unwrap())
    }

    /// At most `READ_CHALLENGES_MAX` challenges are outstanding: one more is refused until
    /// the oldest expire; a challenge is answered once.
    #[test]
    fn challenges_are_bounded_and_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::ManualClock::new(1_000_000));
        let readers = readers(dir.path(), clock.clone());
        let first = readers.challenge().expect("a challenge").0;
        for _ in 1..READ_CHALLENGES_MAX {
            readers.challenge().expect("within the limit");
        }
        assert!(readers.challenge().is_none(), "one more than the limit is refused");
        assert_eq!(readers.use_challenge(&first), Ok(()));
        assert_eq!(readers.use_challenge(&first), Err(ChallengeRefused::Used));
        clock.set(1_000_000 + READ_CHALLENGE_TTL_MS + 1);
        assert!(readers.challenge().is_some(), "the expired ones make room");
        let (late, _) = readers.challenge().unwrap();
        clock.set(1_000_000 + 3 * READ_CHALLENGE_TTL_MS);
        assert_eq!(readers.use_challenge(&late), Err(ChallengeRefused::Expired));
        assert_eq!(readers.use_challenge(&[0; 32]), Err(ChallengeRefused::Unknown));
    }

    /// At most `READ_SESSIONS_MAX` sessions are open; expired ones make room.
    #[test]
    fn sessions_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(crate::ManualClock::new(1_000_000));
        let readers = readers(dir.path(), clock.clone());
        for _ in 0..READ_SESSIONS_MAX {
            readers.open_session(AccountId([1; 32]), String::new()).expect("within the limit");
        }
        assert!(readers.open_session(AccountId([1; 32]), String::new()).is_none());
        clock.set(1_000_000 + READ_SESSION_TTL_MS);
        assert!(readers.open_session(AccountId([1; 32]), String::new()).is_some());
    }

    /// The access log's sequence goes on after a restart and pages by `after`; it is not
    /// in the index, so deleting the index (which the node rebuilds) keeps it.
    #[tokio::test]
    async fn the_access_log_goes_on_after_a_restart_and_outlives_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let entry = |path: &str| AccessLogEntry {
            seq: 0,
            time_ms: 1,
            account: AccountId([2; 32]),
            role: ReaderRole::Auditor,
            name: "監査".into(),
            purpose: "年次監査".into(),
            method: "GET".into(),
            path: path.into(),
            status: 200,
        };
        {
            let log = AccessLog::open(&access_log_path(dir.path())).unwrap();
            assert_eq!(log.record(entry("/a")).await.unwrap(), 1);
            assert_eq!(log.record(entry("/b")).await.unwrap(), 2);
        }
        assert!(!access_log_path(dir.path()).starts_with(crate::chain::index_path(dir.path())));
        let log = AccessLog::open(&access_log_path(dir.path())).unwrap();
        assert_eq!(log.record(entry("/c")).await.unwrap(), 3);
        let paths =
            |entries: Vec<AccessLogEntry>| entries.into_iter().map(|e| (e.seq, e.path)).collect::<Vec<_>>();
        assert_eq!(
            paths(log.after(0, 10).unwrap()),
            vec![(1, "/a".into()), (2, "/b".into()), (3, "/c".into())]
        );
        assert_eq!(paths(log.after(1, 1).unwrap()), vec![(2, "/b".into())]);
        assert!(log.after(3, 10).unwrap().is_empty());
    }
}
