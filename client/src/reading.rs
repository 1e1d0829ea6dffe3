//! Reads with credentials: a client made by `Client::reading_as` proves on each node
//! that it holds a key (a fresh challenge of that node, signed as docs/FORMAT.md "Read
//! sessions" says) and sends the session token it gets on every read
//! (`Authorization: Bearer`). A token is valid only on the replica that issued it, so
//! there is one per node; it is opened on the first read there, kept by every clone of
//! the client, opened anew shortly before it expires, and once more when the node says
//! it no longer knows it (`read_session_invalid`, `read_session_expired`: the replica
//! restarted, or its clock is ahead of ours).

use std::sync::OnceLock;

use machi_api::{ReadChallenge, ReadSession, ReadSessionRequest};
use machi_ledger::{read_auth, AccountId, SigningKey};
use tokio::sync::Mutex;

use crate::{decode, now_ms, Client, ClientError};

/// How long before its end a session is opened anew, so that a read never goes out with a
/// token about to expire (and a node whose clock runs a little ahead still takes it).
pub const SESSION_RENEW_MS_BEFORE: u64 = 60_000;

/// The error codes that say a node does not know a session (any more).
const SESSION_GONE_CODES: [&str; 2] = ["read_session_invalid", "read_session_expired"];

/// Whether an answer says the node no longer knows the session sent with it.
pub(crate) fn session_gone(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { status: 401, code, .. } if SESSION_GONE_CODES.contains(&code.as_str()))
}

/// The key a client reads as, why it reads, and its sessions, one per node (by index).
pub(crate) struct Reader {
    key: SigningKey,
    account: AccountId,
    purpose: String,
    /// The chain's id, read once from the first node that answers (it signs into every
    /// session's message, so a signature cannot open a session on another chain).
    chain_id: OnceLock<String>,
    /// The session at each node; the lock is held while one is opened, so concurrent
    /// reads open one session, not one each.
    sessions: Vec<Mutex<Option<Session>>>,
}

#[derive(Clone)]
struct Session {
    token: String,
    /// When the node said it ends (milliseconds since the epoch).
    expires_ms: u64,
}

impl Reader {
    pub(crate) fn new(key: SigningKey, purpose: String, nodes: usize) -> Reader {
        let account = AccountId::of(&key);
        let sessions = (0..nodes).map(|_| Mutex::new(None)).collect();
        Reader { key, account, purpose, chain_id: OnceLock::new(), sessions }
    }

    pub(crate) fn account(&self) -> AccountId {
        self.account
    }

    /// The token to read with at node `index`: the kept one while it has more than
    /// `SESSION_RENEW_MS_BEFORE` left, else a new session's. With `stale`, the node
    /// refused that token: a new session is opened unless another read already did.
    pub(crate) async fn token(
        &self,
        client: &Client,
        index: usize,
        stale: Option<&str>,
    ) -> Result<String, ClientError> {
        let mut slot = self.sessions[index].lock().await;
        if let Some(session) = slot.as_ref() {
            let refused = stale == Some(session.token.as_str());
            if !refused && now_ms().saturating_add(SESSION_RENEW_MS_BEFORE) < session.expires_ms {
                return Ok(session.token.clone());
            }
        }
        *slot = None;
        let session = self.open(client, index).await?;
        let token = session.token.clone();
        *slot = Some(session);
        Ok(token)
    }

    /// Forgets every session (for tests and for a key that was replaced).
    pub(crate) async fn forget(&self) {
        for slot in &self.sessions {
            *slot.lock().await = None;
        }
    }

    /// Opens a session at node `index`: its challenge, signed, exchanged for a token.
    async fn open(&self, client: &Client, index: usize) -> Result<Session, ClientError> {
        if self.purpose.len() > read_auth::PURPOSE_BYTES_MAX {
            return Err(ClientError::Api {
                status: 400,
                code: "purpose_too_long".into(),
                message: format!("a purpose is at most {} bytes", read_auth::PURPOSE_BYTES_MAX),
            });
        }
        let chain_id = self.chain_id(client, index).await?;
        let base = client.nodes.url(index);
        let (status, body) = client.send(base, client.http.post(format!("{base}/v1/auth/challenge"))).await?;
        let ReadChallenge { challenge, .. } = decode(status, &body)?;
        let bytes = machi_ledger::Hash32::from_hex(&challenge)
            .ok_or_else(|| ClientError::Decode(format!("a challenge is 64 hex digits, not {challenge:?}")))?;
        let signature = read_auth::sign(&chain_id, &bytes.0, &self.key, &self.purpose);
        let request = ReadSessionRequest {
            account: self.account.to_hex(),
            challenge,
            signature: hex::encode(signature),
            purpose: self.purpose.clone(),
        };
        // Like a read, the session waits on a replica that has not applied the highest
        // block this client saw (the key's own registration, say), rather than being
        // refused there as `not_registered`.
        let path = client.nodes.read_path("/v1/auth/session");
        let (status, body) =
            client.send(base, client.http.post(format!("{base}{path}")).json(&request)).await?;
        let view: ReadSession = decode(status, &body)?;
        Ok(Session { token: view.token, expires_ms: view.expires_ms })
    }

    async fn chain_id(&self, client: &Client, index: usize) -> Result<String, ClientError> {
        if let Some(id) = self.chain_id.get() {
            return Ok(id.clone());
        }
        let base = client.nodes.url(index);
        let (status, body) = client.send(base, client.http.get(format!("{base}/v1/chain/head"))).await?;
        let head: machi_api::HeadView = decode(status, &body)?;
        Ok(self.chain_id.get_or_init(|| head.chain_id).clone())
    }
}
