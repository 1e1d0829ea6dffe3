//! One async lock per Idempotency-Key, so two requests with the same key run one after
//! the other (`reservations.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
