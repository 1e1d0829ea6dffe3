//! `cluster.toml`: the replicas a cluster starts with, or the whole new set the town signs
//! (`machi-node init --cluster`, `machi-wallet town set-replicas`). The file is TOML; each
//! program parses it with its TOML reader into these types.

use std::collections::BTreeSet;

use machi_ledger::{AccountId, Replica, REPLICAS_MAX};
use serde::Deserialize;

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(format!($($arg)+));
        }
    };
}

/// `cluster.toml`: the replicas a cluster starts with.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub replica: Vec<ReplicaEntry>,
}

/// One `[[replica]]` of `cluster.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaEntry {
    pub id: u64,
    pub name: String,
    pub api_addr: String,
    pub raft_addr: String,
    /// The replica's producer public key, 64 lowercase hex digits (`machi-node keygen`).
    pub producer_key: String,
    /// A learner (`false`) follows and verifies without voting.
    #[serde(default = "voter_by_default")]
    pub voter: bool,
}

fn voter_by_default() -> bool {
    true
}

impl ClusterFile {
    /// The replica set, sorted by id, with each problem named the way the file says it.
    pub fn replicas(&self) -> Result<Vec<Replica>, String> {
        ensure!(
            (1..=REPLICAS_MAX).contains(&self.replica.len()),
            "a cluster has 1 to {REPLICAS_MAX} replicas; this file names {}",
            self.replica.len()
        );
        let mut replicas = Vec::with_capacity(self.replica.len());
        let (mut ids, mut keys) = (BTreeSet::new(), BTreeSet::new());
        for entry in &self.replica {
            let at = format!("replica {} ({:?})", entry.id, entry.name);
            let producer: AccountId =
                entry.producer_key.parse().map_err(|e: String| format!("{at}: producer_key: {e}"))?;
            ensure!(ids.insert(entry.id), "{at}: the id {} is used twice", entry.id);
            ensure!(keys.insert(producer), "{at}: its producer key is another replica's too");
            ensure!(!entry.name.trim().is_empty(), "{at}: the name is empty");
            for (field, addr) in [("api_addr", &entry.api_addr), ("raft_addr", &entry.raft_addr)] {
                ensure!(machi_ledger::address_is_valid(addr), "{at}: {field} {addr:?} is not host:port");
            }
            replicas.push(Replica {
                id: entry.id,
                name: entry.name.clone(),
                api_addr: entry.api_addr.clone(),
                raft_addr: entry.raft_addr.clone(),
                producer,
                voter: entry.voter,
            });
        }
        ensure!(replicas.iter().any(|r| r.voter), "at least one replica must vote (voter = true)");
        replicas.sort_by_key(|r| r.id);
        Ok(replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, key: u8) -> ReplicaEntry {
        ReplicaEntry {
            id,
            name: format!("replica {id}"),
            api_addr: format!("127.0.0.1:71{id:02}"),
            raft_addr: format!("127.0.0.1:72{id:02}"),
            producer_key: hex::encode(
                machi_ledger::SigningKey::from_bytes(&[key; 32]).verifying_key().to_bytes(),
            ),
            voter: true,
        }
    }

    #[test]
    fn a_good_file_gives_the_set_sorted_by_id() {
        let file = ClusterFile { replica: vec![entry(3, 3), entry(1, 1), entry(2, 2)] };
        let ids: Vec<u64> = file.replicas().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn each_problem_is_named() {
        let refused = |replica: Vec<ReplicaEntry>| ClusterFile { replica }.replicas().unwrap_err();
        assert!(refused(vec![]).contains("1 to 16"));
        assert!(refused(vec![entry(1, 1), entry(1, 2)]).contains("the id 1 is used twice"));
        assert!(refused(vec![entry(1, 1), entry(2, 1)]).contains("another replica's too"));
        let mut bad_key = entry(1, 1);
        bad_key.producer_key = "abc".into();
        assert!(refused(vec![bad_key]).contains("producer_key"));
        let mut bad_addr = entry(1, 1);
        bad_addr.raft_addr = "no port".into();
        assert!(refused(vec![bad_addr]).contains("raft_addr"));
        let mut learner = entry(1, 1);
        learner.voter = false;
        assert!(refused(vec![learner]).contains("at least one replica must vote"));
    }
}
