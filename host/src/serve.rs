//! Serving HTTP with limits, for the node and the merchant API alike: a cap on open
//! connections, a time limit on reading a request's head (which also closes a keep-alive
//! connection left idle that long), a time limit on each request, and graceful shutdown.
//!
//! axum's own `serve` takes no configuration, so this drives hyper's HTTP/1 connection
//! directly: `header_read_timeout` with tokio's timer, one task per connection holding a
//! slot of a semaphore taken before `accept` (past the cap, new connections wait in the
//! kernel's listen queue and use no descriptor of ours).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::StreamExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

use crate::ApiError;

/// Connections served at once; more wait in the listen queue until one closes. Well
/// under the usual 1,024 file descriptors a process may open, with room for the log,
/// sled and the outgoing connections of the merchant API.
pub const CONNECTIONS_MAX: usize = 512;
/// A client has this long to send a request's whole head (request line and headers);
/// a keep-alive connection that sends no new request for this long is closed too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a request may take until its response starts (reading the body included).
/// Longer than the longest long poll (the node's `GET /v1/chain/head?wait_ms=`, at most
/// 30 s, which machi-node checks); an event stream's response starts at once, so streams
/// are never cut.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of a too-large request body read and thrown away before it is refused. A client
/// sends its whole body before it reads the answer, so closing the connection mid-body
/// would show it a broken connection instead of the 413; past this many bytes the
/// service stops reading and closes anyway.
pub const DRAIN_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// How long a failed `accept` (e.g. out of file descriptors) waits before the next try.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The limits `serve` applies; tests make them small.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub request_timeout: Duration,
}

impl Default for ServeLimits {
    fn default() -> ServeLimits {
        ServeLimits {
            connections_max: CONNECTIONS_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops
/// accepting, lets requests in flight finish (idle connections close at once) and
/// returns when every connection is closed. Handlers can read the client's address with
/// `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router.layer(axum::middleware::from_fn_with_state(limits.request_timeout, time_limit));
    let slots = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let (closing, closing_seen) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = router.clone().map_request(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(remote));
            request.map(axum::body::Body::new)
        });
        let mut closing = closing_seen.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            let connection =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut connection = std::pin::pin!(connection);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(e) = served {
                            tracing::debug!("connection from {remote}: {e}");
                        }
                        break;
                    }
                    _ = closing.wait_for(|c| *c), if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    closing.send_replace(true);
    drop(closing_seen);
    // Every connection task holds a receiver; this resolves when the last one ends.
    closing.closed().await;
    Ok(())
}

/// Answers 408 `request_timeout` when a request has not produced its response in time.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request was not complete within {} s", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

/// Refuses a request body over `max` bytes with 413 `body_too_large`, having first read
/// and discarded what the client sends (up to `DRAIN_BYTES_MAX`), so that the client sees
/// the refusal. A body with a declared length within `max` passes untouched (hyper holds
/// the client to that length); one without (chunked) is read here, up to `max`, and
/// passed on whole. Layer it with the state `max` over a router whose handlers read
/// bodies, e.g. `.layer(from_fn_with_state(BODY_BYTES_MAX, refuse_oversized))`.
pub async fn refuse_oversized(State(max): State<usize>, request: Request, next: Next) -> Response {
    let max = max as u64;
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    match declared {
        Some(length) if length > max => {
            drain(request.into_body(), 0).await;
            ApiError::body_too_large().into_response()
        }
        Some(_) => next.run(request).await,
        None => {
            let (parts, body) = request.into_parts();
            let mut chunks = body.into_data_stream();
            let mut buffered = Vec::new();
            while let Some(chunk) = chunks.next().await {
                let Ok(chunk) = chunk else {
                    return ApiError::bad_request("bad_body", "the request body could not be read")
                        .into_response();
                };
                buffered.extend_from_slice(&chunk);
                if buffered.len() as u64 > max {
                    drain(Body::from_stream(chunks), buffered.len() as u64).await;
                    return ApiError::body_too_large().into_response();
                }
            }
            next.run(Request::from_parts(parts, Body::from(buffered))).await
        }
    }
}

/// Reads and discards `body` until it ends, fails, or `DRAIN_BYTES_MAX` have been read
/// (counting `already` read).
async fn drain(body: Body, already: u64) {
    let mut read = already;
    let mut chunks = body.into_data_stream();
    while read <= DRAIN_BYTES_MAX {
        match chunks.next().await {
            Some(Ok(chunk)) => read += chunk.len() as u64,
            _ => return,
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM: the shutdown signal of the machi services.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("stopping");
}
