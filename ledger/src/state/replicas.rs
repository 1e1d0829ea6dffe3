//! The replicas the town names: who keeps a copy, who votes, who may sign blocks.

use super::*;
use crate::limits::{ADDR_BYTES_MAX, REPLICAS_MAX};

impl State {
    /// Replaces the replica set (from the next block on). The set must be 1 to 16
    /// replicas with unique ids and producer keys, valid keys, names and `host:port`
    /// addresses, and at least one voter, sorted by id.
    pub(super) fn set_replicas(&mut self, replicas: &[Replica]) -> Result<(), Reason> {
        if !replicas_are_valid(replicas) {
            return Err(Reason::InvalidParameters);
        }
        self.replicas = replicas.to_vec();
        Ok(())
    }
}

fn replicas_are_valid(replicas: &[Replica]) -> bool {
    let sorted_unique_ids = replicas.windows(2).all(|w| w[0].id < w[1].id);
    let mut keys: Vec<&AccountId> = replicas.iter().map(|r| &r.producer).collect();
    keys.sort_unstable();
    keys.dedup();
    (1..=REPLICAS_MAX).contains(&replicas.len())
        && sorted_unique_ids
        && keys.len() == replicas.len()
        && replicas.iter().any(|r| r.voter)
        && replicas.iter().all(|r| {
            let name = r.name.trim();
            !name.is_empty()
                && r.name.chars().count() <= NAME_CHARS_MAX
                && address_is_valid(&r.api_addr)
                && address_is_valid(&r.raft_addr)
                && check_key(&r.producer).is_ok()
        })
}

/// `host:port`: a host of visible ASCII without `:` other than an IPv6 literal in
/// brackets, and a port from 1 to 65535.
pub fn address_is_valid(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else { return false };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic() && b != b':' && b != b'/'),
    };
    addr.len() <= ADDR_BYTES_MAX && host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}
