//! A token bucket per client for the public pay-code look-up: enough for a kiosk or a
//! phone that mistypes a few times, far too few to walk the code space.
//!
//! The client is the peer's address, or, when the peer is one of the town's trusted
//! reverse proxies, the rightmost `X-Forwarded-For` address that is not a trusted proxy
//! (what the client itself wrote further left is not believed). An IPv6 client is its
//! /64: a home or a phone is given a whole /64 and can change addresses within it at
//! will. At most `CLIENTS_MAX` buckets are kept; each knows when it is full again, and a
//! set ordered by that time finds in O(log n) the buckets that can be forgotten without
//! changing anything, and, when the table is full, the one that is closest to full.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::http::HeaderMap;

/// Look-ups a client may make at once.
pub(crate) const PAY_LOOKUP_BURST: u32 = 20;
/// One more look-up per this many milliseconds (20 a minute).
pub(crate) const PAY_LOOKUP_REFILL_MS: u64 = 3_000;
/// Clients tracked at once.
pub(crate) const CLIENTS_MAX: usize = 100_000;
/// An IPv6 client is keyed by this many leading bits of its address.
const IPV6_PREFIX_BITS: u32 = 64;

/// Whom a bucket belongs to: an IPv4 address or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    pub(crate) fn of(ip: IpAddr) -> ClientKey {
        match canonical(ip) {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & (u128::MAX << (128 - IPV6_PREFIX_BITS));
                ClientKey(IpAddr::V6(Ipv6Addr::from(bits)))
            }
            v4 => ClientKey(v4),
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as a dual-stack listener sees it)
/// is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client behind a request from `peer`.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let trusted = |ip: IpAddr| trusted_proxies.iter().any(|t| canonical(*t) == canonical(ip));
    if !trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // Left of something that is not an address nothing is believed: the client is
        // then the last trusted hop, which shares its bucket with every such request.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted(ip) {
            break;
        }
    }
    client
}

/// An address as proxies write it: `a.b.c.d`, `v6`, or either with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: u32,
    at_ms: u64,
}

impl Bucket {
    /// When the bucket holds a whole burst again: from then on, forgetting it changes
    /// nothing.
    fn full_at_ms(&self) -> u64 {
        self.at_ms + u64::from(PAY_LOOKUP_BURST - self.tokens) * PAY_LOOKUP_REFILL_MS
    }
}

pub(crate) struct Limiter {
    buckets: HashMap<ClientKey, Bucket>,
    by_full_at: BTreeSet<(u64, ClientKey)>,
    clients_max: usize,
}

impl Default for Limiter {
    fn default() -> Limiter {
        Limiter::new(CLIENTS_MAX)
    }
}

impl Limiter {
    pub(crate) fn new(clients_max: usize) -> Limiter {
        assert!(clients_max > 0);
        Limiter { buckets: HashMap::new(), by_full_at: BTreeSet::new(), clients_max }
    }

    /// Takes one look-up for `client` at `now_ms`; `Err` holds the milliseconds until the
    /// next is allowed.
    pub(crate) fn take(&mut self, client: IpAddr, now_ms: u64) -> Result<(), u64> {
        let key = ClientKey::of(client);
        match self.buckets.get(&key) {
            Some(bucket) => {
                self.by_full_at.remove(&(bucket.full_at_ms(), key));
            }
            None => self.make_room(now_ms),
        }
        let bucket = self.buckets.entry(key).or_insert(Bucket { tokens: PAY_LOOKUP_BURST, at_ms: now_ms });
        let refill = now_ms.saturating_sub(bucket.at_ms) / PAY_LOOKUP_REFILL_MS;
        if refill > 0 {
            bucket.tokens = (u64::from(bucket.tokens) + refill).min(u64::from(PAY_LOOKUP_BURST)) as u32;
            bucket.at_ms += refill * PAY_LOOKUP_REFILL_MS;
        }
        if bucket.tokens == PAY_LOOKUP_BURST {
            bucket.at_ms = now_ms;
        }
        let taken = match bucket.tokens {
            0 => Err(PAY_LOOKUP_REFILL_MS - now_ms.saturating_sub(bucket.at_ms)),
            _ => {
                bucket.tokens -= 1;
                Ok(())
            }
        };
        self.by_full_at.insert((bucket.full_at_ms(), key));
        taken
    }

    /// Forgets the buckets that are full again, and, if the table is still full, the one
    /// closest to full.
    fn make_room(&mut self, now_ms: u64) {
        while let Some(&(full_at_ms, key)) = self.by_full_at.first() {
            if full_at_ms > now_ms && self.buckets.len() < self.clients_max {
                break;
            }
            self.by_full_at.pop_first();
            self.buckets.remove(&key);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        assert_eq!(self.buckets.len(), self.by_full_at.len());
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_client_gets_its_burst_then_one_per_refill() {
        let mut limiter = Limiter::default();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        for _ in 0..PAY_LOOKUP_BURST {
            assert!(limiter.take(a, 1_000).is_ok());
        }
        assert_eq!(limiter.take(a, 1_000), Err(PAY_LOOKUP_REFILL_MS));
        assert!(limiter.take(b, 1_000).is_ok(), "another client has its own bucket");
        assert!(limiter.take(a, 1_000 + PAY_LOOKUP_REFILL_MS).is_ok());
        assert!(limiter.take(a, 1_000 + PAY_LOOKUP_REFILL_MS).is_err());
    }

    #[test]
    fn an_ipv6_client_is_its_64_and_a_mapped_ipv4_is_the_ipv4() {
        let mut limiter = Limiter::default();
        for i in 0..PAY_LOOKUP_BURST {
            assert!(limiter.take(ip(&format!("2001:db8:1:2::{i:x}")), 0).is_ok());
        }
        assert!(limiter.take(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 0).is_err(), "the same /64");
        assert!(limiter.take(ip("2001:db8:1:3::1"), 0).is_ok(), "the next /64");
        for _ in 0..PAY_LOOKUP_BURST {
            assert!(limiter.take(ip("192.0.2.7"), 0).is_ok());
        }
        assert!(limiter.take(ip("::ffff:192.0.2.7"), 0).is_err());
        assert_eq!(ClientKey::of(ip("192.0.2.7")), ClientKey::of(ip("::ffff:192.0.2.7")));
    }

    #[test]
    fn the_table_is_bounded_and_an_empty_bucket_outlives_the_churn() {
        let mut limiter = Limiter::new(3);
        let greedy = ip("10.0.0.1");
        for _ in 0..PAY_LOOKUP_BURST {
            limiter.take(greedy, 0).unwrap();
        }
        for i in 0..1_000u32 {
            limiter.take(IpAddr::V4((0x0b00_0000 + i).into()), 0).unwrap();
            assert!(limiter.len() <= 3);
        }
        assert!(
            limiter.take(greedy, 0).is_err(),
            "churn pushes out the buckets closest to full, not the empty one"
        );
        // Once every bucket is full again, a new client finds them all forgotten.
        let later = u64::from(PAY_LOOKUP_BURST) * PAY_LOOKUP_REFILL_MS;
        limiter.take(ip("10.9.9.9"), later).unwrap();
        assert_eq!(limiter.len(), 1);
    }

    #[track_caller]
    fn check(peer: &str, forwarded: &[&str], trusted: &[&str], client: &str) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<IpAddr> = trusted.iter().map(|t| ip(t)).collect();
        assert_eq!(client_address(ip(peer), &headers, &trusted), ip(client));
    }

    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_added() {
        let proxy = "10.0.0.1";
        check("203.0.113.5", &["198.51.100.1"], &[proxy], "203.0.113.5");
        check("203.0.113.5", &["198.51.100.1"], &[], "203.0.113.5");
        check(proxy, &[], &[proxy], proxy);
        check(proxy, &["198.51.100.1"], &[proxy], "198.51.100.1");
        check(proxy, &["6.6.6.6, 198.51.100.1"], &[proxy], "198.51.100.1");
        check(proxy, &["6.6.6.6", "198.51.100.1"], &[proxy], "198.51.100.1");
        check(proxy, &["198.51.100.1, 10.0.0.2"], &[proxy, "10.0.0.2"], "198.51.100.1");
        check(proxy, &["6.6.6.6, 198.51.100.1:4711"], &[proxy], "198.51.100.1");
        check(proxy, &["[2001:db8::1]:443"], &[proxy], "2001:db8::1");
        check(proxy, &["198.51.100.1, garbage"], &[proxy], proxy);
        check("::ffff:10.0.0.1", &["198.51.100.1"], &[proxy], "198.51.100.1");
        check(proxy, &["10.0.0.2"], &[proxy, "10.0.0.2"], "10.0.0.2");
    }
}
