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
    dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LiveNode {
    pub(crate) async fn start() -> LiveNode {
        let dir = tempfile::tempdir().expect("temp dir");
        machi_node::init(dir.path(), "test-town").expect("init");
        LiveNode::open(dir, "127.0.0.1:0").await
    }

    /// Two nodes of one chain, each with its own copy of the same genesis: what one
    /// holds, the other holds too, but each keeps its own read sessions, as two replicas do.
    pub(crate) async fn start_two() -> (LiveNode, LiveNode) {
        let first = tempfile::tempdir().expect("temp dir");
        machi_node::init(first.path(), "test-town").expect("init");
        let second = tempfile::tempdir().expect("temp dir");
        copy_dir(first.path(), second.path());
        (LiveNode::open(first, "127.0.0.1:0").await, LiveNode::open(second, "127.0.0.1:0").await)
    }

    async fn open(dir: tempfile::TempDir, addr: &str) -> LiveNode {
        let town = machi_node::read_key(&dir.path().join("keys/town.key")).expect("town key");
        let node = machi_node::Node::open(dir.path()).expect("node opens");
        let chain_id = node.shared.chain_id.clone();
        let listener = TcpListener::bind(addr).await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            node.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serves");
        });
        LiveNode { url, chain_id, town, dir, stop: Some(stop), task: Some(task) }
    }

    /// Stops the node and starts it again from its folder on the same address: the
    /// chain is the same, the read sessions it kept in memory are gone.
    pub(crate) async fn restart(self) -> LiveNode {
        let mut old = self;
        old.stop().await;
        let addr = old.url.trim_start_matches("http://").to_string();
        let dir = std::mem::replace(&mut old.dir, tempfile::tempdir().expect("temp dir"));
        LiveNode::open(dir, &addr).await
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

/// Copies the folder `from` (files and folders) into `to`.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A loopback proxy to a node that forwards everything and counts the read sessions
/// opened through it (`POST /v1/auth/session`) and the reads (`GET`).
pub(crate) struct CountingProxy {
    pub(crate) url: String,
    sessions: Arc<AtomicUsize>,
    reads: Arc<AtomicUsize>,
}

impl CountingProxy {
    pub(crate) async fn start(node: &str) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().unwrap());
        let node = node.trim_start_matches("http://").to_string();
        let (sessions, reads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = (sessions.clone(), reads.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(count(client, node.clone(), counters.clone()));
            }
        });
        CountingProxy { url, sessions, reads }
    }

    /// Read sessions opened through the proxy.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    /// Reads forwarded.
    pub(crate) fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

/// One client connection of a `CountingProxy`: each request forwarded on one node
/// connection, in order, and counted.
async fn count(mut client: TcpStream, node: String, (sessions, reads): (Arc<AtomicUsize>, Arc<AtomicUsize>)) {
    let Ok(mut upstream) = TcpStream::connect(&node).await else { return };
    let (mut from_client, mut from_node) = (Vec::new(), Vec::new());
    loop {
        let Some(request) = read_message(&mut client, &mut from_client).await else { return };
        if request.starts_with(b"POST /v1/auth/session ") {
            sessions.fetch_add(1, Ordering::SeqCst);
        } else if request.starts_with(b"GET ") {
            reads.fetch_add(1, Ordering::SeqCst);
        }
        if upstream.write_all(&request).await.is_err() {
            return;
        }
        let Some(answer) = read_message(&mut upstream, &mut from_node).await else { return };
        if client.write_all(&answer).await.is_err() {
            return;
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
