//! Read sessions and who reads what (docs/RULES.md §5, docs/FORMAT.md "Read
//! authentication"): `POST /v1/auth/challenge`, `POST /v1/auth/session`, the access log
//! (`GET /v1/access-log`) and a shop's public profile (`GET /v1/shops/{id}`).

use machi_ledger::{AccountId, ShopClass};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long a read challenge may be answered, in ms.
pub const READ_CHALLENGE_TTL_MS: u64 = 60_000;
/// How long a read session lasts from its opening (absolute, not renewed by use), in ms.
pub const READ_SESSION_TTL_MS: u64 = 600_000;
/// Most entries one `GET /v1/access-log` answers with.
pub const ACCESS_LOG_ENTRIES_MAX: usize = 1_000;

/// `POST /v1/auth/challenge`: 32 random bytes to sign, used once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadChallenge {
    /// 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub challenge: String,
    /// The node's clock (ms since the Unix epoch) after which the challenge is refused.
    pub expires_ms: u64,
}

/// `POST /v1/auth/session`: the reader's account, the challenge, the Ed25519 signature of
/// `read_message` (docs/FORMAT.md) by the account's key, and the purpose of the reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadSessionRequest {
    /// 64 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub account: String,
    /// 64 lowercase hex digits, as the node gave it.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub challenge: String,
    /// 128 lowercase hex digits.
    #[schema(pattern = "^[0-9a-f]{128}$")]
    pub signature: String,
    /// Why the reader reads (at most 200 bytes). The town, auditors and the town's services
    /// must state one of at least 4 characters; it is written to the access log.
    #[serde(default)]
    pub purpose: String,
}

/// Who a reader is, from the chain's state when it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReaderRole {
    /// A resident's (or worker's) own key.
    Resident,
    /// A shop's own key.
    Shop,
    /// A counter operator's key.
    Operator,
    /// The town's key (genesis).
    Town,
    /// An auditor delegate (the bank's or the town assembly's auditors).
    Auditor,
    /// The town's delegated keys the merchant API runs with: shop registrar, settler, issuer.
    Service,
    /// Any other registered key (a lottery party): it reads only its own account.
    Other,
}

impl ReaderRole {
    /// The role's name in JSON and in the access log.
    pub fn name(self) -> &'static str {
        match self {
            ReaderRole::Resident => "resident",
            ReaderRole::Shop => "shop",
            ReaderRole::Operator => "operator",
            ReaderRole::Town => "town",
            ReaderRole::Auditor => "auditor",
            ReaderRole::Service => "service",
            ReaderRole::Other => "other",
        }
    }

    /// The reader role of a ledger role.
    pub fn of(role: machi_ledger::Role) -> ReaderRole {
        use machi_ledger::Role;
        match role {
            Role::Town => ReaderRole::Town,
            Role::Operator => ReaderRole::Operator,
            Role::Shop(_) => ReaderRole::Shop,
            Role::Resident { .. } => ReaderRole::Resident,
            Role::ShopRegistrar | Role::Settler | Role::Issuer => ReaderRole::Service,
            Role::Auditor => ReaderRole::Auditor,
            Role::LotteryParty => ReaderRole::Other,
        }
    }

    /// What the role may read.
    pub fn scope(self) -> ReadScope {
        match self {
            ReaderRole::Town | ReaderRole::Auditor | ReaderRole::Service => ReadScope::Everything,
            ReaderRole::Operator => ReadScope::Counter,
            ReaderRole::Resident | ReaderRole::Shop | ReaderRole::Other => ReadScope::Own,
        }
    }
}

/// What a reader may read (docs/RULES.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadScope {
    /// Its own account, transactions, events and lottery result.
    Own,
    /// A counter operator: its own, and the counters' cash by day.
    Counter,
    /// Everything, each read written to the access log: the town, auditors, the town's
    /// services.
    Everything,
}

/// `POST /v1/auth/session`'s answer: the token to send as `Authorization: Bearer <token>`
/// on this replica until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReadSession {
    /// 64 lowercase hex digits; the node keeps only its SHA-256.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub token: String,
    pub account: AccountId,
    pub role: ReaderRole,
    pub scope: ReadScope,
    /// The node's clock (ms since the Unix epoch) after which the token is refused
    /// (`read_session_expired`).
    pub expires_ms: u64,
}

/// One read served under the everything scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessLogEntry {
    /// Ascending from 1 on this replica; never reused.
    pub seq: u64,
    /// When the answer was given, ms since the Unix epoch.
    pub time_ms: u64,
    /// The reader's account.
    pub account: AccountId,
    pub role: ReaderRole,
    /// The reader's name on chain (the delegate's or "town").
    pub name: String,
    /// The purpose the reader stated when it opened the session.
    pub purpose: String,
    pub method: String,
    /// The path and query as asked.
    pub path: String,
    /// The answer's HTTP status.
    pub status: u16,
}

/// `GET /v1/access-log?after=SEQ&limit=N`: the entries after `SEQ`, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AccessLogPage {
    pub entries: Vec<AccessLogEntry>,
}

/// `GET /v1/shops/{id}`: a registered shop as its payers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShopView {
    pub id: AccountId,
    pub name: String,
    pub class: ShopClass,
    pub frozen: bool,
}
