//! Money moves once per Idempotency-Key. Before a refund or cash-out transaction is sent,
//! its key reserves the exact signed transaction, on disk, under a lock held by one
//! request with that key at a time. Every later request with the key (a concurrent one,
//! or a retry after a lost answer, a crash or a restart) sends that same transaction
//! again, and the node answers a transaction it has with its first outcome.
//!
//! A new transaction is signed for a key only when the reserved one can never reach the
//! chain: the node refused it as `ttl_expired`. The node checks for a replay before the
//! time-to-live, and block time never goes back, so once a block's time is past the
//! transaction's time-to-live and the transaction is not on chain, it never will be.

use std::future::Future;

use axum::http::StatusCode;
use machi_api::{TxCode, TxResultView};
use machi_host::ApiError;
use machi_ledger::{sha256, AccountId, Hash32, SignedTx};
use serde::{Deserialize, Serialize};

use crate::invoices::idempotency_key;
use crate::merchant::Merchant;
use crate::store::{get_json, put_json};

/// What a key reserved: the request it came with and the transaction that carries it.
#[derive(Serialize, Deserialize)]
struct Reservation {
    request_sha256: Hash32,
    tx: SignedTx,
}

impl Merchant {
    /// Submits the transaction that `sign` makes, once per `key`: see the module's
    /// documentation. Without a key every call is a new transaction. `sign` checks the
    /// request against what is known now; it is called again only for a transaction that
    /// expired unsent.
    pub(crate) async fn submit_once<F, Fut>(
        &self,
        shop: &AccountId,
        op: &str,
        key: Option<&str>,
        request: &[u8],
        sign: F,
    ) -> Result<TxResultView, ApiError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<SignedTx, ApiError>>,
    {
        let Some(key) = key else { return self.submit_applied(&sign().await?).await };
        let store_key = idempotency_key(shop, op, key);
        let _guard = self.key_locks.lock(&store_key).await;
        let request_sha256 = sha256(request);
        let tx = match get_json::<Reservation>(&self.store.reservations, &store_key) {
            Some(prior) if prior.request_sha256 != request_sha256 => return Err(conflict()),
            Some(prior) => prior.tx,
            None => self.reserve(&store_key, request_sha256, sign().await?)?,
        };
        match self.submit_reserved(&tx).await {
            Err(error) if error.code == TxCode::TtlExpired.name() => {
                tracing::info!("transaction {} expired unsent; signing it again", tx.id(&self.chain_id));
                let tx = self.reserve(&store_key, request_sha256, sign().await?)?;
                self.submit_reserved(&tx).await
            }
            answer => answer,
        }
    }

    fn reserve(&self, store_key: &[u8], request_sha256: Hash32, tx: SignedTx) -> Result<SignedTx, ApiError> {
        let reservation = Reservation { request_sha256, tx };
        put_json(&self.store.reservations, store_key, &reservation)
            .map_err(|e| ApiError::internal("reserving a transaction", e))?;
        Ok(reservation.tx)
    }

    /// The reservation reaches the disk before its transaction leaves (this also covers
    /// one made by a request that was cancelled before it could send it).
    async fn submit_reserved(&self, tx: &SignedTx) -> Result<TxResultView, ApiError> {
        self.store.flush().await.map_err(|e| ApiError::internal("writing a reservation", e))?;
        self.submit_applied(tx).await
    }
}

fn conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_conflict",
        "this Idempotency-Key was already used with a different request",
    )
}
