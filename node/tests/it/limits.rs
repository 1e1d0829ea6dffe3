//! Connection limits over real sockets: clients that send half a request head and stall
//! are closed after the header time-out, never hold more than the connection cap, and a
//! normal client is still answered; a body that never finishes gets 408; an idle
//! keep-alive connection is closed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::TestNode;

const LIMITS: machi_node::ServeLimits = machi_node::ServeLimits {
    connections_max: 4,
    header_read_timeout: Duration::from_millis(300),
    request_timeout: Duration::from_millis(500),
};

fn addr(node: &TestNode) -> String {
    node.url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection (`read` returns 0); what it sent.
/// (The bound only turns a server that never closes into a failure instead of a hang.)
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .expect("closed cleanly by the server");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_closed_and_cannot_crowd_out_others() {
    let node = TestNode::start_with(LIMITS).await;
    let mut stalled = Vec::new();
    for _ in 0..2 * LIMITS.connections_max {
        let mut stream = TcpStream::connect(addr(&node)).await.unwrap();
        stream.write_all(b"GET /v1/health HTTP/1.1\r\nHost: machi\r\nX-Half: ").await.unwrap();
        stalled.push(stream);
    }
    // A normal client after them is answered: the cap keeps the extras waiting in the
    // listen queue, and the header time-out frees the slots the stalled ones hold.
    let health = node.client.health().await.expect("answered");
    assert_eq!(health.chain_id, node.chain_id);
    for (i, stream) in stalled.iter_mut().enumerate() {
        let got = until_closed(stream).await;
        assert!(got.is_empty() || got.starts_with(b"HTTP/1.1 408"), "client {i} got {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_finishes_gets_408_and_an_idle_connection_is_closed() {
    let node = TestNode::start_with(LIMITS).await;
    let mut slow_body = TcpStream::connect(addr(&node)).await.unwrap();
    slow_body
        .write_all(b"POST /v1/transactions HTTP/1.1\r\nHost: machi\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"signer\":")
        .await
        .unwrap();
    let got = String::from_utf8(until_closed(&mut slow_body).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("\"code\":\"request_timeout\""), "{got}");

    let mut idle = TcpStream::connect(addr(&node)).await.unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nHost: machi\r\n\r\n").await.unwrap();
    let got = String::from_utf8(until_closed(&mut idle).await).unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "answered, then closed when idle: {got}");
}
