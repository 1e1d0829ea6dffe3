//! The one typed HTTP client of machi-node's API (and of the merchant API's public
//! pay-code look-up and shop events), used by the wallet, the merchant API,
//! the load generator and the tests. Request and response types come from machi-api,
//! so client and server cannot drift apart.
//!
//! Layout: `lib.rs` holds `Client` (its requests and the settling of a transaction whose
//! answer was lost), `ClientError` and the signing helpers; `nodes` the replicas a client
//! knows and which answers send a call on to the next one; `events` server-sent event
//! streams, read with eventsource-stream and reconnected to another replica when one is
//! lost; `reading` the read sessions of a client that reads as a key (`reading_as`).

mod events;
mod nodes;
mod reading;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use machi_api::{
    AccountView, BlockView, ErrorBody, HeadView, HealthView, IssueView, PayCodeView, SupplyReport,
    TxErrorBody, TxProof, TxResultView, TxView,
};
use machi_ledger::{AccountId, Action, Hash32, SignedTx, SigningKey, TxBody, TxId};
use serde::de::DeserializeOwned;

pub use events::{EventStream, ServerEvent, EVENTS_READ_TIMEOUT_S, RECONNECT_PAUSE_MS};
pub use nodes::node_list;
use nodes::{submit_elsewhere, submit_unknown, Nodes};
pub use reading::SESSION_RENEW_MS_BEFORE;
use reading::{session_gone, Reader};

/// Default time-to-live of transactions built here: long enough for a kiosk queue.
pub const TTL_MS_DEFAULT: u32 = 10 * 60 * 1000;
/// How long one request may take before the client stops waiting for its answer.
pub const REQUEST_TIMEOUT_S_DEFAULT: u64 = 60;
/// How long a client tries to connect to one node before it moves on to the next.
pub const CONNECT_TIMEOUT_S: u64 = 5;
/// The first pause of `settle` between two tries; each further pause doubles, up to
/// `SETTLE_PAUSE_MS_MAX`.
pub const SETTLE_PAUSE_MS_FIRST: u64 = 250;
pub const SETTLE_PAUSE_MS_MAX: u64 = 5_000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error (`code` is the stable machine-readable code).
    #[error("{code}: {message} (HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// No connection could be made: the request never reached the node.
    #[error("the node at {0} could not be reached: {1}")]
    Unreachable(String, String),
    /// The request may have reached the node, but no answer came back (time-out,
    /// connection lost, a proxy's gateway error). For a transaction this means its
    /// outcome is unknown until its id is looked up.
    #[error("no answer from {0}: {1}")]
    NoAnswer(String, String),
    #[error("the node's answer was not understood: {0}")]
    Decode(String),
    /// An event stream may have skipped events: the server said a slow reader missed
    /// some, or the stream was reconnected (to another replica) and cannot resume where
    /// it was. Whoever follows it re-reads what it follows; the stream goes on.
    #[error("events may have been missed: {0}")]
    EventsMissed(String),
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            ClientError::Unreachable(..) => "unreachable",
            ClientError::NoAnswer(..) => "no_answer",
            ClientError::Decode(_) => "bad_response",
            ClientError::EventsMissed(_) => "events_missed",
        }
    }

    /// Whether the node said it could not take the request now and nothing happened
    /// (busy, stopping, disk unavailable): the same request may be sent again.
    fn is_transient(&self) -> bool {
        matches!(self, ClientError::Api { status: 503, .. })
    }
}

/// A client of one chain's nodes: one node, or the replicas of a cluster. Any replica
/// serves reads and forwards writes to the leader; a call goes to the node that last
/// answered and, if that one cannot serve it (not reached, connection lost, or 503
/// `no_leader`, `halted`, `unavailable`, `unconfirmed`, `shutting_down`), to the next,
/// each at most once. A transaction sent on is the same signed bytes, never signed
/// anew, so it commits at most once. With several nodes, a read asks the node to answer
/// only once it has applied the highest block this client has seen (`?min_height=`), so
/// a replica that lags shows this client's writes all the same. Clones share the memory
/// of which node answered and of that block.
///
/// Reads are anonymous unless the client was made with `reading_as`: then every read
/// (and event stream) is made as that key, which the node checks against what the key
/// may read (docs/PRIVACY.md).
#[derive(Clone)]
pub struct Client {
    nodes: Arc<Nodes>,
    /// The key reads are made as, and its sessions (shared by clones); none: anonymous.
    reader: Option<Arc<Reader>>,
    http: reqwest::Client,
    /// For event streams: no limit on the whole answer, which lasts as long as the
    /// stream, but one on the silence between two reads (the servers send keep-alives).
    streams: reqwest::Client,
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Signs `action` for `chain_id` now, with a random nonce.
pub fn sign(chain_id: &str, key: &SigningKey, action: Action) -> SignedTx {
    sign_at(chain_id, key, action, now_ms())
}

/// Signs `action` as created at `created_ms`, with a random nonce.
pub fn sign_at(chain_id: &str, key: &SigningKey, action: Action, created_ms: u64) -> SignedTx {
    let body = TxBody {
        chain_id: chain_id.to_string(),
        created_ms,
        ttl_ms: TTL_MS_DEFAULT,
        nonce: rand::random(),
        action,
    };
    SignedTx::sign(chain_id, key, &body)
}

/// A lottery party's new secret (32 random bytes from the operating system's generator)
/// and its commitment `SHA-256(secret)`, for `CommitLotterySecret` now and
/// `RevealLotterySecret` after the application window. Keep the secret until then and
/// show it to nobody.
pub fn lottery_secret() -> (Hash32, Hash32) {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let secret = Hash32(bytes);
    (secret, machi_ledger::lottery::commitment(&secret))
}

impl Client {
    /// `nodes` is one base URL like `http://127.0.0.1:7070`, or the replicas of one
    /// chain separated by commas (`http://10.0.0.1:7101,http://10.0.0.2:7101`).
    pub fn new(nodes: &str) -> Client {
        Client::with_timeout(nodes, Duration::from_secs(REQUEST_TIMEOUT_S_DEFAULT))
    }

    /// A client that stops waiting for one node's answer after `timeout`.
    pub fn with_timeout(nodes: &str, timeout: Duration) -> Client {
        Client::of(Nodes::parse(nodes), timeout)
    }

    /// A client of the nodes at `urls` (each a base URL), tried in this order.
    pub fn with_nodes(urls: &[impl AsRef<str>], timeout: Duration) -> Client {
        let list: Vec<&str> = urls.iter().map(AsRef::as_ref).collect();
        Client::of(Nodes::parse(&list.join(",")), timeout)
    }

    fn of(nodes: Nodes, timeout: Duration) -> Client {
        let connect_timeout = Duration::from_secs(CONNECT_TIMEOUT_S).min(timeout);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .pool_max_idle_per_host(1024)
            .build()
            .expect("a client without TLS always builds");
        let streams = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(Duration::from_secs(EVENTS_READ_TIMEOUT_S))
            .build()
            .expect("a client without TLS always builds");
        Client { nodes: Arc::new(nodes), reader: None, http, streams }
    }

    /// A clone of this client (the same nodes, the same memory of which answered) that
    /// makes every read as `key`: at each node it asks for a challenge, signs it with
    /// `key` and `purpose` (why it reads: the node writes it in its access log for the
    /// town's and the auditors' reads), and sends the session token it gets with each
    /// read there. Sessions are opened when first needed, kept by every clone of the
    /// returned client, and opened anew before they expire or when a node no longer
    /// knows one. Writes are the same as before: a transaction's signature is its
    /// authority.
    pub fn reading_as(&self, key: SigningKey, purpose: impl Into<String>) -> Client {
        let reader = Reader::new(key, purpose.into(), self.nodes.urls().len());
        Client { reader: Some(Arc::new(reader)), ..self.clone() }
    }

    /// The account this client reads as (`None`: it reads anonymously).
    pub fn reader(&self) -> Option<AccountId> {
        self.reader.as_ref().map(|reader| reader.account())
    }

    /// Drops every read session this client (and its clones) holds, so the next read
    /// on each node opens a new one.
    pub async fn forget_sessions(&self) {
        if let Some(reader) = &self.reader {
            reader.forget().await;
        }
    }

    /// The base URL of the node that answered last (the first one before any answer).
    pub fn base(&self) -> &str {
        self.nodes.url(self.nodes.current())
    }

    /// Every node this client knows, in the order given.
    pub fn nodes(&self) -> &[String] {
        self.nodes.urls()
    }

    /// Sends a request to the node at `base`. Only a failure to connect means the
    /// request never left; any later failure (time-out, connection lost) leaves it
    /// unknown whether the node acted on it.
    async fn send(
        &self,
        base: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let response = request.send().await.map_err(|e| transport_error(base, e))?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| transport_error(base, e))?;
        Ok((status, body.to_vec()))
    }

    /// Makes `call` on the node that answered last and, while an answer says another
    /// node may serve it (`elsewhere`), on the next ones round robin, each at most once.
    /// If none serves it, the answer is the first that left the outcome unknown
    /// (`unknown`), else the last one.
    async fn on_nodes<T, Fut>(
        &self,
        call: impl Fn(usize) -> Fut,
        elsewhere: impl Fn(&Result<T, ClientError>) -> bool,
        unknown: impl Fn(&Result<T, ClientError>) -> bool,
    ) -> Result<T, ClientError>
    where
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let mut kept: Option<Result<T, ClientError>> = None;
        for index in self.nodes.from(self.nodes.current()) {
            let outcome = call(index).await;
            if !elsewhere(&outcome) {
                self.nodes.answered(index);
                return outcome;
            }
            if !kept.as_ref().is_some_and(&unknown) {
                kept = Some(outcome);
            }
        }
        kept.expect("a client knows at least one node")
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let path = &self.nodes.read_path(path);
        let read = |index: usize| async move {
            let (status, body) = self.read_at(index, path).await?;
            decode(status, &body)
        };
        let elsewhere =
            |outcome: &Result<T, ClientError>| outcome.as_ref().is_err_and(ClientError::try_elsewhere);
        self.on_nodes(read, elsewhere, |_| false).await
    }

    /// One read at node `index`: anonymous, or with this client's session there (opened
    /// if need be, and opened anew once if the node no longer knows it).
    async fn read_at(&self, index: usize, path: &str) -> Result<(u16, Vec<u8>), ClientError> {
        let base = self.nodes.url(index);
        let url = format!("{base}{path}");
        let Some(reader) = &self.reader else {
            return self.send(base, self.http.get(&url)).await;
        };
        let token = reader.token(self, index, None).await?;
        let (status, body) = self.send(base, self.http.get(&url).bearer_auth(&token)).await?;
        if status != 401 || !session_gone(&error_answer(status, &body)) {
            return Ok((status, body));
        }
        let token = reader.token(self, index, Some(&token)).await?;
        self.send(base, self.http.get(&url).bearer_auth(&token)).await
    }

    /// Submits one transaction once and waits until it is in a durable block (or
    /// refused). Rejections and refusals come back as `Ok` with that status; `Err` means
    /// no result at all: `Unreachable` (it never left), `NoAnswer` (it may have
    /// committed: `settle` finds out), `Api` (malformed request, node busy).
    ///
    /// With several nodes, a node that cannot take it now (see `Client`) is followed by
    /// the next, with the same signed transaction: a replica that already holds it
    /// answers with its first outcome.
    pub async fn submit(&self, tx: &SignedTx) -> Result<TxResultView, ClientError> {
        fn one(outcome: &Result<TxResultView, ClientError>) -> Result<&[TxResultView], &ClientError> {
            outcome.as_ref().map(std::slice::from_ref)
        }
        let result = self
            .on_nodes(
                |index| self.submit_to(index, tx),
                |outcome| submit_elsewhere(one(outcome)),
                |outcome| submit_unknown(one(outcome)),
            )
            .await?;
        self.saw(std::slice::from_ref(&result));
        Ok(result)
    }

    /// Remembers the blocks that hold `results`, for reads on other replicas.
    fn saw(&self, results: &[TxResultView]) {
        results.iter().filter_map(|r| r.height).for_each(|height| self.nodes.saw(height));
    }

    async fn submit_to(&self, index: usize, tx: &SignedTx) -> Result<TxResultView, ClientError> {
        let base = self.nodes.url(index);
        let request = self.http.post(format!("{base}/v1/transactions")).json(tx);
        let (status, body) = self.send(base, request).await?;
        if status == 200 {
            return decode(status, &body);
        }
        // A rejection or refusal carries the transaction's result beside the error.
        if let Ok(TxErrorBody { result, .. }) = serde_json::from_slice(&body) {
            return Ok(result);
        }
        match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(ErrorBody { error }) => {
                Err(ClientError::Api { status, code: error.code, message: error.message })
            }
            // Not the node's own answer: a proxy in between gave up waiting for it.
            Err(_) if status >= 500 => Err(ClientError::NoAnswer(base.to_string(), format!("HTTP {status}"))),
            Err(e) => Err(ClientError::Decode(e.to_string())),
        }
    }

    /// Submits `tx` and, if no answer says what became of it, settles it: the same
    /// signed bytes are looked up and sent again, never a new signature, so the
    /// transaction commits at most once. `attempts` bounds the tries after the first.
    pub async fn submit_settled(
        &self,
        tx: &SignedTx,
        id: &TxId,
        attempts: u32,
    ) -> Result<TxResultView, ClientError> {
        match self.submit(tx).await {
            Ok(result) if !result.is_transient_refusal() => Ok(result),
            Ok(_) => self.settle(tx, id, attempts, false).await,
            Err(ClientError::NoAnswer(..)) => self.settle(tx, id, attempts, true).await,
            Err(e) if e.is_transient() || matches!(e, ClientError::Unreachable(..)) => {
                self.settle(tx, id, attempts, false).await
            }
            Err(e) => Err(e),
        }
    }

    /// Finds out what became of `tx` after an attempt that got no answer: looks its id
    /// up, and while it is not on the chain sends the same signed bytes again (the node
    /// answers a transaction it already holds with its first outcome, and one whose
    /// time-to-live has passed with `ttl_expired`, so every answer is final). Each try
    /// comes after a pause, growing from `SETTLE_PAUSE_MS_FIRST`. `may_have_arrived` says whether
    /// an earlier attempt may have reached the node: then an error after the last try
    /// is `NoAnswer` (outcome unknown) even if the node was merely unreachable since.
    pub async fn settle(
        &self,
        tx: &SignedTx,
        id: &TxId,
        attempts: u32,
        may_have_arrived: bool,
    ) -> Result<TxResultView, ClientError> {
        let mut unknown = may_have_arrived;
        let mut last = ClientError::NoAnswer(self.base().to_string(), "no try was made".into());
        let mut pause_ms = SETTLE_PAUSE_MS_FIRST;
        for _ in 0..attempts {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            pause_ms = (pause_ms * 2).min(SETTLE_PAUSE_MS_MAX);
            if unknown {
                match self.lookup(id).await {
                    Ok(Some(result)) => return Ok(result),
                    Ok(None) => {}
                    Err(e) => {
                        last = e;
                        continue;
                    }
                }
            }
            match self.submit(tx).await {
                Ok(result) if result.is_transient_refusal() => {
                    last = ClientError::Api {
                        status: 503,
                        code: result.reason.map(|code| code.name().to_string()).unwrap_or_default(),
                        message: result.message.unwrap_or_default(),
                    };
                }
                Ok(result) => return Ok(result),
                Err(e @ ClientError::NoAnswer(..)) => {
                    unknown = true;
                    last = e;
                }
                Err(e) if e.is_transient() || matches!(e, ClientError::Unreachable(..)) => last = e,
                Err(e) => return Err(e),
            }
        }
        match last {
            ClientError::NoAnswer(..) => Err(last),
            other if unknown => Err(ClientError::NoAnswer(self.base().to_string(), other.to_string())),
            other => Err(other),
        }
    }

    /// A transaction's result if it is on the chain, `None` if it is not (yet) — or if
    /// it is not this client's to read (the node answers both alike).
    pub async fn lookup(&self, id: &TxId) -> Result<Option<TxResultView>, ClientError> {
        match self.get::<TxResultView>(&format!("/v1/transactions/{id}")).await {
            Ok(result) => Ok(Some(result)),
            Err(ClientError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Submits up to `SUBMIT_TXS_MAX` transactions in one request; results line up. A
    /// batch that a replica could not take (or any of whose results it refused as not
    /// its to take now) goes whole to the next node: those already committed are
    /// answered with their first outcome.
    pub async fn submit_batch(&self, txs: &[SignedTx]) -> Result<Vec<TxResultView>, ClientError> {
        let send = |index: usize| async move {
            let base = self.nodes.url(index);
            let request = self.http.post(format!("{base}/v1/transactions")).json(txs);
            let (status, body) = self.send(base, request).await?;
            decode(status, &body)
        };
        fn all(outcome: &Result<Vec<TxResultView>, ClientError>) -> Result<&[TxResultView], &ClientError> {
            outcome.as_ref().map(Vec::as_slice)
        }
        let results = self
            .on_nodes(send, |outcome| submit_elsewhere(all(outcome)), |outcome| submit_unknown(all(outcome)))
            .await?;
        self.saw(&results);
        Ok(results)
    }

    /// A committed transaction: its result, its place in the block, its body.
    pub async fn tx(&self, id: &TxId) -> Result<TxView, ClientError> {
        self.get(&format!("/v1/transactions/{id}")).await
    }

    /// The proof that a committed transaction and its outcome are in its block: the
    /// block header and the inclusion proofs (check it with `TxProof::check` against a
    /// block hash from elsewhere). 404 `not_found` while it is not on the chain.
    pub async fn proof(&self, id: &TxId) -> Result<TxProof, ClientError> {
        self.get(&format!("/v1/transactions/{id}/proof")).await
    }

    pub async fn account(&self, id: &AccountId) -> Result<AccountView, ClientError> {
        self.get(&format!("/v1/accounts/{id}")).await
    }

    /// A registered shop's public profile (name, class, frozen): whom a payment goes to.
    /// `not_found` for an account that is not a shop.
    pub async fn shop(&self, id: &AccountId) -> Result<machi_api::ShopView, ClientError> {
        self.get(&format!("/v1/shops/{id}")).await
    }

    /// The node's access log: the reads served under the everything scope (who, role,
    /// purpose, what, answer), oldest first, those after `after` (0: from the start), at
    /// most `limit` (`ACCESS_LOG_ENTRIES_MAX`). Only the town and auditors may read it,
    /// and their reading it is logged too. Each replica keeps its own.
    pub async fn access_log(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<machi_api::AccessLogPage, ClientError> {
        self.get(&format!("/v1/access-log?after={after}&limit={limit}")).await
    }

    pub async fn issue(&self, id: u32) -> Result<IssueView, ClientError> {
        self.get(&format!("/v1/issues/{id}")).await
    }

    pub async fn issues(&self) -> Result<Vec<IssueView>, ClientError> {
        self.get("/v1/issues").await
    }

    /// A lottery issue's lottery: schedule, parties, applications, and once drawn the seed,
    /// winners, waiting list and purchases (`not_found` for an issue sold first come).
    pub async fn lottery(&self, issue: u32) -> Result<machi_api::LotteryView, ClientError> {
        self.get(&format!("/v1/issues/{issue}/lottery")).await
    }

    /// One resident's lottery application and result, by their current key.
    pub async fn lottery_entry(
        &self,
        issue: u32,
        account: &AccountId,
    ) -> Result<machi_api::LotteryEntryView, ClientError> {
        self.get(&format!("/v1/issues/{issue}/lottery/{account}")).await
    }

    pub async fn block(&self, height: u64) -> Result<BlockView, ClientError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    pub async fn head(&self) -> Result<HeadView, ClientError> {
        let head: HeadView = self.get("/v1/chain/head").await?;
        self.nodes.saw(head.height);
        Ok(head)
    }

    /// The head once it is above `after`, or after `wait_ms` (at most 30 s) if no block
    /// came: a long poll for followers of the chain.
    pub async fn head_after(&self, after: u64, wait_ms: u64) -> Result<HeadView, ClientError> {
        let head: HeadView = self.get(&format!("/v1/chain/head?after={after}&wait_ms={wait_ms}")).await?;
        self.nodes.saw(head.height);
        Ok(head)
    }

    /// Block headers from height `from` to `to` (public: hashes, roots, producers and
    /// their signatures, no bodies), at most `machi_api::HEADERS_MAX` in one answer; the
    /// answer may end earlier (at the replica's head, or with large blocks): ask again
    /// from the last height + 1.
    pub async fn headers(&self, from: u64, to: u64) -> Result<machi_api::HeadersView, ClientError> {
        self.get(&format!("/v1/headers?from={from}&to={to}")).await
    }

    /// This replica's signed statement of the head it applied and its supply digest.
    pub async fn attestation(&self) -> Result<machi_api::AttestationView, ClientError> {
        self.get("/v1/attestation").await
    }

    pub async fn supply(&self) -> Result<SupplyReport, ClientError> {
        self.get("/v1/supply").await
    }

    /// The cash by sale day: received by the chain, counted at counters, deposited, gaps.
    pub async fn cash_days(&self) -> Result<machi_api::CashReport, ClientError> {
        self.get("/v1/cash/days").await
    }

    /// One sale day's cash (`YYYY-MM-DD`, JST); empty figures for a day without any.
    pub async fn cash_day(&self, day: &str) -> Result<machi_api::CashDayView, ClientError> {
        self.get(&format!("/v1/cash/days/{day}")).await
    }

    pub async fn health(&self) -> Result<HealthView, ClientError> {
        self.get("/v1/health").await
    }

    /// The merchant API's public look-up of an open invoice by its pay code (this client
    /// made with the merchant API's base URL): what a wallet shows before paying.
    pub async fn pay_code(&self, code: &str) -> Result<PayCodeView, ClientError> {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ClientError::Api {
                status: 404,
                code: "unknown_pay_code".into(),
                message: "a pay code is digits".into(),
            });
        }
        self.get(&format!("/v1/pay/{code}")).await
    }
}

/// A request that failed before an answer came: not sent at all when no connection
/// could be made, else of unknown effect.
fn transport_error(base: &str, e: reqwest::Error) -> ClientError {
    if e.is_connect() {
        ClientError::Unreachable(base.to_string(), e.to_string())
    } else {
        ClientError::NoAnswer(base.to_string(), e.to_string())
    }
}

fn decode<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, ClientError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()));
    }
    Err(error_answer(status, body))
}

/// The error a node answered with (`ErrorBody`), or the start of whatever else came.
fn error_answer(status: u16, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => ClientError::Api { status, code: error.code, message: error.message },
        Err(_) => ClientError::Api {
            status,
            code: "http_error".into(),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
        },
    }
}
