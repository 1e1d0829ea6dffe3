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

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use machi_api::{TxCode, TxResultView};
use machi_ledger::{sha256, AccountId, Hash32, SignedTx};
use machi_node::ApiError;
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

/// One async lock per key, made when first wanted and dropped when no request holds or
/// waits for it.
#[derive(Default)]
pub(crate) struct KeyLocks {
    held: Mutex<HashMap<Vec<u8>, Arc<tokio::sync::Mutex<()>>>>,
}

pub(crate) struct KeyGuard<'a> {
    locks: &'a KeyLocks,
    key: Vec<u8>,
    cell: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl KeyLocks {
    pub(crate) async fn lock(&self, key: &[u8]) -> KeyGuard<'_> {
        let cell = self.held.lock().expect("key locks").entry(key.to_vec()).or_default().clone();
        let guard = cell.clone().lock_owned().await;
        KeyGuard { locks: self, key: key.to_vec(), cell, guard: Some(guard) }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.lock().expect("key locks").len()
    }
}

impl Drop for KeyGuard<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut held = self.locks.held.lock().expect("key locks");
        // The table and this guard hold the only references: nobody waits for this key,
        // and nobody can start to without the table's lock.
        if Arc::strong_count(&self.cell) == 2 {
            held.remove(&self.key);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_lock_passes_to_the_next_request_and_is_dropped_when_nobody_wants_it() {
        let locks = Arc::new(KeyLocks::default());
        let first = locks.lock(b"a").await;
        let other = locks.lock(b"b").await;
        assert_eq!(locks.len(), 2);
        let (acquired, on_acquired) = tokio::sync::oneshot::channel();
        let (release, on_release) = tokio::sync::oneshot::channel::<()>();
        let next = tokio::spawn({
            let locks = locks.clone();
            async move {
                let _guard = locks.lock(b"a").await;
                acquired.send(()).unwrap();
                on_release.await.unwrap();
            }
        });
        drop(other);
        assert_eq!(locks.len(), 1, "nobody wants b any more");
        drop(first);
        on_acquired.await.unwrap();
        assert_eq!(locks.len(), 1, "the next request holds a");
        release.send(()).unwrap();
        next.await.unwrap();
        assert_eq!(locks.len(), 0);
    }
}
