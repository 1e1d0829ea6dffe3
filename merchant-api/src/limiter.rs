//! A token bucket per client address for the public pay-code look-up: enough for a
//! kiosk or a phone that mistypes a few times, far too few to walk the code space.

use std::collections::HashMap;
use std::net::IpAddr;

/// Look-ups a client may make at once.
pub(crate) const PAY_LOOKUP_BURST: u32 = 20;
/// One more look-up per this many milliseconds (20 a minute).
pub(crate) const PAY_LOOKUP_REFILL_MS: u64 = 3_000;
/// Addresses tracked at once; beyond it, buckets that are full again are dropped.
const CLIENTS_MAX: usize = 100_000;

#[derive(Default)]
pub(crate) struct Limiter {
    buckets: HashMap<IpAddr, (u32, u64)>,
}

impl Limiter {
    /// Takes one look-up for `client` at `now_ms`; `Err` holds the milliseconds until the
    /// next is allowed.
    pub(crate) fn take(&mut self, client: IpAddr, now_ms: u64) -> Result<(), u64> {
        if self.buckets.len() >= CLIENTS_MAX {
            self.buckets.retain(|_, (tokens, at)| {
                u64::from(*tokens) + now_ms.saturating_sub(*at) / PAY_LOOKUP_REFILL_MS
                    < u64::from(PAY_LOOKUP_BURST)
            });
        }
        let (tokens, at) = self.buckets.entry(client).or_insert((PAY_LOOKUP_BURST, now_ms));
        let refill = now_ms.saturating_sub(*at) / PAY_LOOKUP_REFILL_MS;
        if refill > 0 {
            *tokens = (u64::from(*tokens) + refill).min(u64::from(PAY_LOOKUP_BURST)) as u32;
            *at += refill * PAY_LOOKUP_REFILL_MS;
        }
        if *tokens == 0 {
            return Err(PAY_LOOKUP_REFILL_MS - now_ms.saturating_sub(*at));
        }
        *tokens -= 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_one_per_refill() {
        let mut limiter = Limiter::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..PAY_LOOKUP_BURST {
            assert!(limiter.take(a, 1_000).is_ok());
        }
        assert_eq!(limiter.take(a, 1_000), Err(PAY_LOOKUP_REFILL_MS));
        assert!(limiter.take(b, 1_000).is_ok(), "another client has its own bucket");
        assert!(limiter.take(a, 1_000 + PAY_LOOKUP_REFILL_MS).is_ok());
        assert!(limiter.take(a, 1_000 + PAY_LOOKUP_REFILL_MS).is_err());
    }
}
