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

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;

use crate::api::ApiError;

/// Connections served at once; more wait in the listen queue until one closes. Well
/// under the usual 1,024 file descriptors a process may open, with room for the log,
/// sled and the outgoing connections of the merchant API.
pub const CONNECTIONS_MAX: usize = 512;
/// A client has this long to send a request's whole head (request line and headers);
/// a keep-alive connection that sends no new request for this long is closed too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest a request may take until its response starts (reading the body included).
/// Longer than the longest long poll (`GET /v1/chain/head?wait_ms=`, at most 30 s); an
/// event stream's response starts at once, so streams are never cut.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

const _: () = assert!(REQUEST_TIMEOUT.as_millis() > crate::api::HEAD_WAIT_MS_MAX as u128 + 5_000);

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
