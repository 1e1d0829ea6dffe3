//! A real node in a temp folder serving on 127.0.0.1:0; a port nothing listens on; a
//! server that answers every request 503 with one code; a proxy that forwards the first
//! transaction to a node and drops its answer.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use machi_ledger::SigningKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Bytes one test request or answer may have, head and body together.
const MESSAGE_BYTES_MAX: usize = 1 << 20;

pub(crate) struct LiveNode {
    pub(crate) url: String,
    pub(crate) chain_id: String,
    pub(crate) town: SigningKey,
    _dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveNode {
    pub(crate) async fn start() -> LiveNode {
        let dir = tempfile::tempdir().expect("temp dir");
        machi_node::init(dir.path(), "test-town").expect("init");
        let town = machi_node::read_key(&dir.path().join("keys/town.key")).expect("town key");
        let node = machi_node::Node::open(dir.path()).expect("node opens");
        let chain_id = node.shared.chain_id.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            node.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        LiveNode { url, chain_id, town, _dir: dir, stop: Some(stop), task: Some(task) }
    }

    /// Stops the node and waits until it no longer listens.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("node task");
        }
    }
}

impl Drop for LiveNode {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The URL of a loopback port that nothing listens on: bound, then let go.
pub(crate) fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

/// Serves `router` on a fresh loopback port; its URL.
pub(crate) async fn serve(router: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serves") });
    url
}

/// A server that answers every request 503 with error `code`, as a replica without a
/// leader does; and how many requests it answered.
pub(crate) async fn refusing(code: &'static str) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let answer = move |_: HeaderMap| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = serde_json::json!({"error": {"code": code, "message": "not this replica, not now"}});
            Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        }
    };
    let url = serve(axum::Router::new().fallback(answer)).await;
    (url, hits)
}

/// A loopback proxy to `node` that forwards every request; the node's answer to the
/// first transaction it forwards is dropped with the connection, as when a replica is
/// lost after it committed. Everything else passes through.
pub(crate) struct DroppingProxy {
    pub(crate) url: String,
    submissions: Arc<AtomicUsize>,
}

impl DroppingProxy {
    pub(crate) async fn start(node: &str) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let node = node.trim_start_matches("http://").to_string();
        let submissions = Arc::new(AtomicUsize::new(0));
        let counter = submissions.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, node.clone(), counter.clone()));
            }
        });
        DroppingProxy { url, submissions }
    }

    /// Transactions forwarded to the node (each answered there).
    pub(crate) fn submissions(&self) -> usize {
        self.submissions.load(Ordering::SeqCst)
    }
}

/// One client connection: each request forwarded on one node connection, in order.
async fn relay(mut client: TcpStream, node: String, submissions: Arc<AtomicUsize>) {
    let Ok(mut upstream) = TcpStream::connect(&node).await else { return };
    let (mut from_client, mut from_node) = (Vec::new(), Vec::new());
    loop {
        let Some(request) = read_message(&mut client, &mut from_client).await else { return };
        let is_submission = request.starts_with(b"POST /v1/transactions ");
        if upstream.write_all(&request).await.is_err() {
            return;
        }
        let Some(answer) = read_message(&mut upstream, &mut from_node).await else { return };
        if is_submission && submissions.fetch_add(1, Ordering::SeqCst) == 0 {
            return; // the answer is lost with the connection
        }
        if client.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// One HTTP/1.1 message (head and a `Content-Length` body) from `stream`; `buffer`
/// keeps bytes read past it.
async fn read_message(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            let total = end + 4 + length;
            if buffer.len() >= total {
                let rest = buffer.split_off(total);
                return Some(std::mem::replace(buffer, rest));
            }
        }
        if buffer.len() > MESSAGE_BYTES_MAX {
            return None;
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// An event-stream answer whose body is `chunks`, each sent as one HTTP chunk, then
/// held open if `hold` (as a live stream is) or ended.
pub(crate) fn event_stream(chunks: Vec<Vec<u8>>, hold: bool) -> Response {
    let chunks = futures_util::stream::iter(
        chunks.into_iter().map(|c| Ok::<_, Infallible>(axum::body::Bytes::from(c))),
    );
    let body = if hold {
        Body::from_stream(futures_util::StreamExt::chain(chunks, futures_util::stream::pending()))
    } else {
        Body::from_stream(chunks)
    };
    Response::builder().header(header::CONTENT_TYPE, "text/event-stream").body(body).unwrap()
}
