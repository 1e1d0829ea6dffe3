//! A loopback HTTP/1.1 proxy in front of a real node that loses answers: it forwards a
//! transaction, so the node commits it, and then drops the connection or holds the
//! answer past the client's time-out. Everything else passes through.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes a test request or answer may have, head and body together.
const MESSAGE_BYTES_MAX: usize = 1 << 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fault {
    /// The node's answer to a transaction is dropped with the connection.
    DropAnswer,
    /// The node's answer is never sent; the connection stays open until the client
    /// gives up.
    HoldAnswer,
    /// The answer is dropped, and from then on every connection is closed at once
    /// (the node seems gone after committing).
    DropAnswerThenVanish,
}

pub(crate) struct Proxy {
    pub(crate) url: String,
    /// Transactions the proxy forwarded to the node (each committed or answered there).
    forwarded: Arc<AtomicU32>,
}

impl Proxy {
    /// A proxy to `node` (like `http://127.0.0.1:7070`) applying `fault` to the first
    /// `faulty` transaction submissions.
    pub(crate) async fn start(node: &str, fault: Fault, faulty: u32) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let node = node.trim_start_matches("http://").to_string();
        let forwarded = Arc::new(AtomicU32::new(0));
        let counter = forwarded.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                let vanished =
                    fault == Fault::DropAnswerThenVanish && counter.load(Ordering::SeqCst) >= faulty;
                if vanished {
                    drop(client);
                    continue;
                }
                tokio::spawn(serve(client, node.clone(), fault, faulty, counter.clone()));
            }
        });
        Proxy { url, forwarded }
    }

    pub(crate) fn transactions_forwarded(&self) -> u32 {
        self.forwarded.load(Ordering::SeqCst)
    }
}

/// One client connection: requests in order, each forwarded on one node connection.
async fn serve(mut client: TcpStream, node: String, fault: Fault, faulty: u32, counter: Arc<AtomicU32>) {
    let Ok(mut upstream) = TcpStream::connect(&node).await else { return };
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_message(&mut client, &mut buffer).await else { return };
        let is_submission = request.starts_with(b"POST /v1/transactions ");
        if upstream.write_all(&request).await.is_err() {
            return;
        }
        let mut node_buffer = Vec::new();
        let Some(answer) = read_message(&mut upstream, &mut node_buffer).await else { return };
        if is_submission && counter.fetch_add(1, Ordering::SeqCst) < faulty {
            if fault == Fault::HoldAnswer {
                // Wait for the client to hang up; whatever it sends is not answered.
                let mut rest = [0u8; 1024];
                while matches!(client.read(&mut rest).await, Ok(n) if n > 0) {}
            }
            return;
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
