//! machi-merchant: the shops' backend (docs/RULES.md §6), run by the town for all shops.
//!
//! Layout: `merchant` (the service's state; shops and tokens), `invoices` (payment
//! requests, pay codes, refunds, idempotency), `money` (balance, cash-outs, statements,
//! settlement), `follower` (reads every block from the node and matches payments,
//! refunds, cash-outs and settlements), `api` (axum routes, bearer-token auth, OpenAPI),
//! `web` (the pages: counter, back office, town office) and `sessions` (their
//! pairing codes and browser sessions),
//! `store` (sled, and fsync'd files for what must survive a power cut), `secrets`
//! (tokens, sealed shop keys, pay codes), `limiter` (pay-code look-ups), `bank` (bank
//! and branch codes), `zengin` (the 総合振込 file), `town_bank` (the town's account). It
//! reaches the ledger only through the node's HTTP API (the quick-start town that runs it
//! beside a node is machi-demo).

mod api;
mod auth;
mod bank;
mod delegates;
mod follower;
mod invoices;
mod key_locks;
mod limiter;
mod merchant;
mod model;
mod money;
mod reservations;
mod secrets;
mod sessions;
mod settlements;
mod shops;
mod store;
mod tokens;
mod town_bank;
mod trust;
mod web;
mod zengin;

use std::future::Future;
use std::sync::Arc;

use machi_host::supervise::Part;

pub use bank::{half_width_kana, Bank, BankError, Banks};
pub use delegates::{
    generate_delegate_keys, generate_issuer_key, ISSUER_KEY_FILE, REGISTRAR_KEY_FILE, SETTLER_KEY_FILE,
};
pub use merchant::{Config, Merchant, Network, READ_PURPOSE};
pub use model::*;
pub use sessions::{pairing_code_offline, shops_in, PAIRING_CODE_VALID_MS};
pub use tokens::new_admin_token;
pub use town_bank::load_town_bank;
pub use zengin::{Originator, Transfer, ZenginError, ZenginFile, RECORD_BYTES, TRANSFERS_MAX};

/// The router alone (tests drive it with `tower::ServiceExt::oneshot`).
pub fn app(merchant: Arc<Merchant>) -> axum::Router {
    api::app(merchant)
}

/// The OpenAPI document of every endpoint.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <api::ApiDoc as utoipa::OpenApi>::openapi()
}

/// Serves the API on `listener` and follows the chain until `shutdown` completes.
pub async fn serve(
    merchant: Arc<Merchant>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The follower is the only writer of paid invoices: if it panics, or ends before the
    // service stops, the process stops rather than answer every wait 503 for ever.
    let follower = {
        let part = Part::vital("chain follower");
        let (ended, merchant) = (part.clone(), merchant.clone());
        part.spawn_task(async move {
            follower::follow(merchant, stopped.clone()).await;
            // Stopping: told so, or `serve` itself is gone (its sender dropped).
            if !*stopped.borrow() && stopped.has_changed().is_ok() {
                ended.failed("it returned while the service still runs");
            }
        })
    };
    let closing = merchant.clone();
    let shutdown = async move {
        shutdown.await;
        closing.closing.send_replace(true);
    };
    // machi-host's serve: connection cap, header and request time limits, client address.
    let limits = machi_host::ServeLimits::default();
    let result = machi_host::serve(listener, api::app(merchant), limits, shutdown).await;
    let _ = stop.send(true);
    let _ = follower.await;
    result
}
