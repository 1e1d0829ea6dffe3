//! Replication: the chain held by several replicas (the town office, the bank, an auditor),
//! ordered by openraft 0.9 (pinned at 0.9.25, the stable line).
//!
//! One Raft entry is one produced, signed block (`BlockProposal`): a block is committed when
//! a majority of voters hold its entry durably, and every replica then applies it to its own
//! block log after verifying it. A snapshot is only the chain tip (`ChainTip`): a replica
//! that lags behind the leader's purged log pulls the missing blocks and verifies them.
//!
//! Layout: this file holds the openraft type configuration, the proposal cap and the Raft
//! timing; `log_store` the durable Raft log (`RaftLog`, `DIR/raft/raft.log`); `network`
//! the replica-to-replica HTTP traffic (`HttpNetwork` and `router`).

// The node's producer and API wire replication in next; until then its items are unused.
#![allow(dead_code)]

pub(crate) mod log_store;
pub(crate) mod machine;
pub(crate) mod network;
pub(crate) mod replication;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod test_machine;

use machi_ledger::{Block, Hash32};
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{Config, Raft, SnapshotPolicy};
use serde::{Deserialize, Serialize};

/// A replica's id: the `id` of its `[[replica]]` in cluster.toml.
pub(crate) type ReplicaId = u64;

/// What every replica knows of another: it comes back in each Raft membership and in
/// `ForwardToLeader`, so a follower can send a client to the leader's API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplicaNode {
    pub(crate) name: String,
    /// `host:port` of the HTTP API.
    pub(crate) api_addr: String,
    /// `host:port` of the replica-to-replica traffic.
    pub(crate) raft_addr: String,
}

/// The data of a normal Raft entry: one produced block, postcard-encoded (`Block::encode`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockProposal {
    #[serde(with = "byte_string")]
    pub(crate) block: Vec<u8>,
}

/// A `Vec<u8>` as one byte string rather than a sequence of bytes. In postcard both are
/// the length then the bytes, so the encoding is the same; the byte string is copied at
/// once instead of byte by byte, which matters for blocks of megabytes.
mod byte_string {
    use serde::de::{Deserializer, SeqAccess, Visitor};
    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(ByteString)
    }

    struct ByteString;

    impl<'de> Visitor<'de> for ByteString {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            Ok(bytes.to_vec())
        }

        fn visit_byte_buf<E>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(bytes)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut bytes = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(byte) = seq.next_element()? {
                bytes.push(byte);
            }
            Ok(bytes)
        }
    }
}

/// What applying an entry gave, returned to the leader's `client_write`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ApplyOutcome {
    /// The block is now in this replica's block log at `height`.
    Applied { height: u64, hash: Hash32 },
    /// The block does not follow the tip (it was produced on a tip that another block
    /// replaced); every replica skips it alike.
    Stale,
    /// A blank or membership entry: no block.
    NotBlock,
}

/// A snapshot: the chain up to and including this block. The block log is append-only,
/// so this names the whole snapshot; a replica that installs it pulls the blocks it lacks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ChainTip {
    pub(crate) height: u64,
    pub(crate) hash: Hash32,
}

openraft::declare_raft_types!(
    /// machi's openraft types.
    pub(crate) TypeConfig:
        D = BlockProposal,
        R = ApplyOutcome,
        NodeId = ReplicaId,
        Node = ReplicaNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = ChainTip,
);

/// Most bytes of one block in one Raft entry. Every AppendEntries must cross the link and
/// be fdatasynced on the follower within the heartbeat interval (openraft 0.9 uses it as
/// the AppendEntries timeout). A block of `BLOCK_TXS_MAX` payments (about 200 bytes each)
/// fits; transaction bodies may be up to 4 KiB, so the producer must also end a block
/// before its encoding passes this.
pub(crate) const BLOCK_PROPOSAL_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Milliseconds between the leader's heartbeats. In openraft 0.9 this is also the timeout
/// of every AppendEntries, entries and the follower's fdatasync included.
pub(crate) const HEARTBEAT_INTERVAL_MS: u64 = 100;
/// The shortest election timeout. Above the heartbeat interval (openraft requires it), and
/// short enough that a new leader commits within 2 s of the old one's loss: a follower
/// campaigns about `leader lease (= the longest timeout) + its own timeout` after the last
/// heartbeat, 0.9 to 1.2 s.
pub(crate) const ELECTION_TIMEOUT_MIN_MS: u64 = 300;
/// The longest election timeout; each replica draws its own between the two, so two
/// replicas rarely campaign at once.
pub(crate) const ELECTION_TIMEOUT_MAX_MS: u64 = 600;
/// Most entries in one AppendEntries. Entries are whole blocks, so a few suffice; the log
/// reader also caps the bytes of one AppendEntries (`log_store::RPC_ENTRIES_BYTES_MAX`).
pub(crate) const PAYLOAD_ENTRIES_MAX: u64 = 16;
/// A snapshot is taken after this many entries. Ours costs nothing to build (it is the
/// chain tip), so it can be frequent; it lets the log before it be purged.
pub(crate) const SNAPSHOT_AFTER_ENTRIES: u64 = 1_000;
/// Entries kept in the log below the last snapshot, so that a replica a little behind
/// catches up from the log instead of by snapshot (pulling blocks).
pub(crate) const SNAPSHOT_LOG_KEPT_ENTRIES: u64 = 1_000;
/// The log is purged in steps of at least this many entries, so a purge (one fdatasynced
/// record) is not written for every block.
pub(crate) const PURGE_BATCH_ENTRIES: u64 = 64;
/// How long the leader waits for a replica to install a snapshot: the replica pulls and
/// verifies every block it lacks before it answers.
pub(crate) const INSTALL_SNAPSHOT_TIMEOUT_MS: u64 = 60_000;
/// A learner being added counts as caught up within this many entries of the leader
/// (`add_learner` with `blocking` waits for it).
pub(crate) const REPLICATION_LAG_ENTRIES_MAX: u64 = 100;

/// The openraft configuration of a chain's replicas, the same on every replica.
pub(crate) fn raft_config(chain_id: &str) -> Config {
    Config {
        cluster_name: chain_id.to_owned(),
        heartbeat_interval: HEARTBEAT_INTERVAL_MS,
        election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
        election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
        max_payload_entries: PAYLOAD_ENTRIES_MAX,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_AFTER_ENTRIES),
        max_in_snapshot_log_to_keep: SNAPSHOT_LOG_KEPT_ENTRIES,
        purge_batch_size: PURGE_BATCH_ENTRIES,
        install_snapshot_timeout: INSTALL_SNAPSHOT_TIMEOUT_MS,
        replication_lag_threshold: REPLICATION_LAG_ENTRIES_MAX,
        ..Config::default()
    }
    .validate()
    .expect("the replication constants make a valid openraft config")
}

/// Why a block cannot be, or is not, a proposal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProposalError {
    #[error(
        "a block of {bytes} bytes does not fit in one Raft entry (at most {BLOCK_PROPOSAL_BYTES_MAX} bytes)"
    )]
    TooLarge { bytes: usize },
    #[error("the proposal does not hold a block in its one canonical encoding")]
    NotABlock,
}

impl BlockProposal {
    /// The proposal of a block, refused when the block is too large for one entry.
    pub(crate) fn new(block: &Block) -> Result<BlockProposal, ProposalError> {
        let proposal = BlockProposal { block: block.encode() };
        proposal.check_size()?;
        Ok(proposal)
    }

    /// The block, decoded only when within the cap and in its canonical encoding: an
    /// entry from the log is not trusted to be either.
    pub(crate) fn decode(&self) -> Result<Block, ProposalError> {
        self.check_size()?;
        Block::decode(&self.block).ok_or(ProposalError::NotABlock)
    }

    fn check_size(&self) -> Result<(), ProposalError> {
        if self.block.len() > BLOCK_PROPOSAL_BYTES_MAX {
            return Err(ProposalError::TooLarge { bytes: self.block.len() });
        }
        Ok(())
    }
}

/// Why a proposal was not committed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProposeError {
    #[error(transparent)]
    Proposal(#[from] ProposalError),
    /// Not the leader, or Raft stopped: the block may or may not commit later (a
    /// `ForwardToLeader` names the leader).
    #[error(transparent)]
    Raft(Box<RaftError<ReplicaId, ClientWriteError<ReplicaId, ReplicaNode>>>),
}

impl From<RaftError<ReplicaId, ClientWriteError<ReplicaId, ReplicaNode>>> for ProposeError {
    fn from(e: RaftError<ReplicaId, ClientWriteError<ReplicaId, ReplicaNode>>) -> ProposeError {
        ProposeError::Raft(Box::new(e))
    }
}

/// Proposes a block through Raft; returns once it is committed on a majority and applied
/// on this replica. A proposal over the cap is refused before it reaches the log.
pub(crate) async fn propose(
    raft: &Raft<TypeConfig>,
    proposal: BlockProposal,
) -> Result<ClientWriteResponse<TypeConfig>, ProposeError> {
    proposal.check_size()?;
    Ok(raft.client_write(proposal).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_valid_and_holds_the_named_values() {
        let config = raft_config("machi-test");
        assert_eq!(config.cluster_name, "machi-test");
        assert_eq!(config.heartbeat_interval, HEARTBEAT_INTERVAL_MS);
        assert_eq!((config.election_timeout_min, config.election_timeout_max), (300, 600));
        assert_eq!(config.max_payload_entries, PAYLOAD_ENTRIES_MAX);
        assert_eq!(config.snapshot_policy, SnapshotPolicy::LogsSinceLast(SNAPSHOT_AFTER_ENTRIES));
        assert_eq!(config.install_snapshot_timeout, INSTALL_SNAPSHOT_TIMEOUT_MS);
        assert!(config.election_timeout_min > 2 * config.heartbeat_interval);
    }

    #[test]
    fn a_proposal_over_the_cap_is_refused_where_it_is_made_and_where_it_is_decoded() {
        let over = BlockProposal { block: vec![0; BLOCK_PROPOSAL_BYTES_MAX + 1] };
        assert_eq!(over.decode(), Err(ProposalError::TooLarge { bytes: BLOCK_PROPOSAL_BYTES_MAX + 1 }));
        let garbage = BlockProposal { block: vec![7; 100] };
        assert_eq!(garbage.decode(), Err(ProposalError::NotABlock));
    }

    /// The byte string encodes exactly as a plain `Vec<u8>` would, in postcard and JSON.
    #[test]
    fn a_proposal_encodes_as_a_plain_byte_vector() {
        #[derive(Serialize)]
        struct Plain {
            block: Vec<u8>,
        }
        for len in [0usize, 1, 127, 128, 300, 70_000] {
            let block: Vec<u8> = (0..len).map(|i| (i % 256) as u8).collect();
            let proposal = BlockProposal { block: block.clone() };
            let wire = postcard::to_allocvec(&proposal).unwrap();
            assert_eq!(wire, postcard::to_allocvec(&Plain { block: block.clone() }).unwrap(), "len {len}");
            assert_eq!(postcard::from_bytes::<BlockProposal>(&wire).unwrap(), proposal);
            let json = serde_json::to_string(&proposal).unwrap();
            assert_eq!(json, serde_json::to_string(&Plain { block }).unwrap());
            assert_eq!(serde_json::from_str::<BlockProposal>(&json).unwrap(), proposal);
        }
    }
}
