//! A stand-in for the node on loopback, between the merchant API and the real node: it
//! passes every request through (with its read session's `Authorization`), or loses the
//! node's answers to submissions (the node commits, the merchant API never hears), or
//! serves a forged head and block, or refuses every read without a credential but the
//! public ones. It notes each request it saw.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use machi_api::{BlockView, HeadView};
use tokio::sync::oneshot;

/// What the stand-in does wrong.
#[derive(Clone)]
pub(crate) enum Fault {
    None,
    /// Submissions reach the node; their answers are replaced by a 502.
    LoseSubmitAnswers,
    /// The head is this block's height and this block is served at it.
    ServeBlock(Box<BlockView>),
    /// A read without `Authorization` gets 401 `read_auth_required`, unless it is one of
    /// the node's public reads (`PUBLIC_READS`).
    RefuseAnonymousReads,
}

/// The reads anyone may make without a credential (docs/PRIVACY.md): what the merchant
/// API may read anonymously. Prefixes of the path.
const PUBLIC_READS: &[&str] = &["/v1/chain/head", "/v1/health", "/v1/issues", "/v1/supply", "/v1/headers"];

/// A request the stand-in saw: method, path, and whether it carried a bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) bearer: bool,
}

struct Shared {
    node: String,
    http: reqwest::Client,
    fault: Mutex<Fault>,
    seen: Mutex<Vec<Seen>>,
}

pub(crate) struct Proxy {
    pub(crate) url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl Proxy {
    pub(crate) async fn start(node: &str) -> Proxy {
        let shared = Arc::new(Shared {
            node: node.to_string(),
            http: reqwest::Client::new(),
            fault: Mutex::new(Fault::None),
            seen: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("proxy serves");
        });
        Proxy { url, shared, stop: Some(stop) }
    }

    pub(crate) fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap() = fault;
    }

    /// Every request seen so far, in order.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let path_and_query = request.uri().path_and_query().map_or(path.clone(), |p| p.to_string());
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let bearer = authorization.as_ref().is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
    shared.seen.lock().unwrap().push(Seen { method: method.to_string(), path: path.clone(), bearer });
    let body = axum::body::to_bytes(request.into_body(), usize::MAX).await.unwrap_or_default();
    let fault = shared.fault.lock().unwrap().clone();
    if matches!(fault, Fault::RefuseAnonymousReads)
        && method == Method::GET
        && authorization.is_none()
        && !PUBLIC_READS.iter().any(|public| path.starts_with(public))
    {
        let error =
            serde_json::json!({"error": {"code": "read_auth_required", "message": "read with a session"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    if let Fault::ServeBlock(block) = &fault {
        if path == "/v1/chain/head" {
            let head = HeadView {
                chain_id: block.chain_id.clone(),
                height: block.height,
                hash: block.hash,
                timestamp_ms: block.timestamp_ms,
                txs_total: 0,
            };
            return axum::Json(head).into_response();
        }
        if path == format!("/v1/blocks/{}", block.height) {
            return axum::Json(block.as_ref().clone()).into_response();
        }
    }
    let mut forwarded = shared
        .http
        .request(method.clone(), format!("{}{path_and_query}", shared.node))
        .header("content-type", "application/json");
    if let Some(authorization) = authorization {
        forwarded = forwarded.header(header::AUTHORIZATION, authorization);
    }
    let answer = forwarded.body(body).send().await;
    let Ok(answer) = answer else {
        return (StatusCode::BAD_GATEWAY, "the node could not be reached").into_response();
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let bytes: Bytes = answer.bytes().await.unwrap_or_default();
    if matches!(fault, Fault::LoseSubmitAnswers) && method == Method::POST && path == "/v1/transactions" {
        return (StatusCode::BAD_GATEWAY, "the answer was lost").into_response();
    }
    (status, [("content-type", "application/json")], bytes).into_response()
}
