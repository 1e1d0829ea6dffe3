//! The one typed HTTP client of machi-node's API (and of the merchant API's public
//! pay-code look-up), used by the wallet, the merchant API,
//! the load generator and the tests. Request and response types come from
//! `machi_ledger::api`, so client and server cannot drift apart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use machi_ledger::api::{
    AccountView, BlockView, ErrorBody, HeadView, HealthView, IssueView, PayCodeView, SupplyReport,
    TxResultView,
};
use machi_ledger::{AccountId, Action, SignedTx, SigningKey, TxBody, TxId};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Default time-to-live of transactions built here: long enough for a kiosk queue.
pub const TTL_MS_DEFAULT: u32 = 10 * 60 * 1000;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    /// The node answered with an error (`code` is the stable machine-readable code).
    #[error("{code}: {message} (HTTP {status})")]
    Api { status: u16, code: String, message: String },
    #[error("the node at {0} could not be reached: {1}")]
    Unreachable(String, String),
    #[error("the node's answer was not understood: {0}")]
    Decode(String),
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            ClientError::Api { code, .. } => code,
            ClientError::Unreachable(..) => "unreachable",
            ClientError::Decode(_) => "bad_response",
        }
    }
}

#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// An error body that may also carry the transaction's result (rejections, refusals).
#[derive(Deserialize)]
struct ErrorWithResult {
    error: machi_ledger::api::ErrorDetail,
    result: Option<TxResultView>,
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

impl Client {
    /// `base` is like `http://127.0.0.1:7070`.
    pub fn new(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(1024)
            .build()
            .expect("a client without TLS always builds");
        Client { base: base.trim_end_matches('/').to_string(), http }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), ClientError> {
        let response =
            request.send().await.map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?;
        let status = response.status().as_u16();
        let body =
            response.bytes().await.map_err(|e| ClientError::Unreachable(self.base.clone(), e.to_string()))?;
        Ok((status, body.to_vec()))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let (status, body) = self.send(self.http.get(format!("{}{path}", self.base))).await?;
        decode(status, &body)
    }

    /// Submits one transaction and waits until it is in a durable block (or refused).
    /// Rejections and refusals come back as `Ok` with that status; `Err` means no
    /// result at all (malformed request, node busy or unreachable).
    pub async fn submit(&self, tx: &SignedTx) -> Result<TxResultView, ClientError> {
        let request = self.http.post(format!("{}/v1/transactions", self.base)).json(tx);
        let (status, body) = self.send(request).await?;
        if status == 200 {
            return decode(status, &body);
        }
        match serde_json::from_slice::<ErrorWithResult>(&body) {
            Ok(ErrorWithResult { result: Some(result), .. }) => Ok(result),
            Ok(ErrorWithResult { error, .. }) => {
                Err(ClientError::Api { status, code: error.code, message: error.message })
            }
            Err(e) => Err(ClientError::Decode(e.to_string())),
        }
    }

    /// Submits up to `SUBMIT_TXS_MAX` transactions in one request; results line up.
    pub async fn submit_batch(&self, txs: &[SignedTx]) -> Result<Vec<TxResultView>, ClientError> {
        let request = self.http.post(format!("{}/v1/transactions", self.base)).json(txs);
        let (status, body) = self.send(request).await?;
        decode(status, &body)
    }

    pub async fn tx(&self, id: &TxId) -> Result<serde_json::Value, ClientError> {
        self.get(&format!("/v1/transactions/{id}")).await
    }

    pub async fn account(&self, id: &AccountId) -> Result<AccountView, ClientError> {
        self.get(&format!("/v1/accounts/{id}")).await
    }

    pub async fn issue(&self, id: u32) -> Result<IssueView, ClientError> {
        self.get(&format!("/v1/issues/{id}")).await
    }

    pub async fn issues(&self) -> Result<Vec<IssueView>, ClientError> {
        self.get("/v1/issues").await
    }

    pub async fn block(&self, height: u64) -> Result<BlockView, ClientError> {
        self.get(&format!("/v1/blocks/{height}")).await
    }

    pub async fn head(&self) -> Result<HeadView, ClientError> {
        self.get("/v1/chain/head").await
    }

    /// The head once it is above `after`, or after `wait_ms` (at most 30 s) if no block
    /// came: a long poll for followers of the chain.
    pub async fn head_after(&self, after: u64, wait_ms: u64) -> Result<HeadView, ClientError> {
        self.get(&format!("/v1/chain/head?after={after}&wait_ms={wait_ms}")).await
    }

    pub async fn supply(&self) -> Result<SupplyReport, ClientError> {
        self.get("/v1/supply").await
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

fn decode<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, ClientError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice(body).map_err(|e| ClientError::Decode(e.to_string()));
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody { error }) => Err(ClientError::Api { status, code: error.code, message: error.message }),
        Err(_) => Err(ClientError::Api {
            status,
            code: "http_error".into(),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
        }),
    }
}
