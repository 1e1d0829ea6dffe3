//! Setting up a cluster, in the order the parties follow, each keeping its own private
//! key: every replica makes its producer key (`keygen`); the town writes `cluster.toml`
//! naming the replicas and makes the genesis (`init_cluster`), which names them on chain;
//! every other replica starts its chain from that genesis file (`init_from_genesis`),
//! after checking it by replay.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use machi_api::BlockView;
use machi_ledger::{
    decode, genesis_with, replay, AccountId, Action, ApplyAt, Block, Outcome, Replica, SignatureCheck,
    SignedTx, SigningKey, State, TxBody, REPLICAS_MAX,
};
use serde::Deserialize;

use crate::chain::{self, Chain};
use crate::storage::DiskFile;

/// The genesis file the town hands to the other replicas: the genesis block as one line
/// of the export format (docs/FORMAT.md).
pub fn genesis_path(data_dir: &Path) -> PathBuf {
    data_dir.join("genesis.json")
}

pub fn producer_key_path(data_dir: &Path) -> PathBuf {
    data_dir.join("keys").join("producer.key")
}

/// Largest genesis file read: one block of a few transactions.
const GENESIS_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// Makes `DIR/keys/producer.key` (mode 0600, in a folder of mode 0700) and returns its
/// path and public key. Refuses to replace a key that exists.
pub fn keygen(data_dir: &Path) -> anyhow::Result<(PathBuf, AccountId)> {
    let keys_dir = data_dir.join("keys");
    std::fs::create_dir_all(&keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
    crate::node::set_mode(&keys_dir, 0o700)?;
    let path = producer_key_path(data_dir);
    if path.exists() {
        bail!("{} exists: this replica already has a producer key", path.display());
    }
    let key = crate::keys::generate();
    crate::keys::write_key(&path, &key)?;
    Ok((path, AccountId::of(&key)))
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
    pub fn read(path: &Path) -> anyhow::Result<ClusterFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("{} is not a cluster file", path.display()))
    }

    /// The replica set, sorted by id, with each problem named the way the file says it.
    pub fn replicas(&self) -> anyhow::Result<Vec<Replica>> {
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
                entry.producer_key.parse().map_err(|e: String| anyhow::anyhow!("{at}: producer_key: {e}"))?;
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

/// The town's replica: makes the town key and a genesis that names the replicas of
/// `cluster`, signed by this replica's producer key (from `keygen`), which the cluster
/// must name. Writes the block log and `DIR/genesis.json`; returns the town key's path.
pub fn init_cluster(data_dir: &Path, chain_id: &str, cluster: &ClusterFile) -> anyhow::Result<PathBuf> {
    crate::node::check_new_chain(data_dir, chain_id)?;
    let replicas = cluster.replicas()?;
    let producer_path = producer_key_path(data_dir);
    let producer = crate::keys::read_key(&producer_path)
        .with_context(|| format!("run `machi-node keygen --data-dir {}` first", data_dir.display()))?;
    let producer_id = AccountId::of(&producer);
    ensure!(
        replicas.iter().any(|r| r.producer == producer_id && r.voter),
        "this replica's producer key {producer_id} is not a voter in the cluster file: the town's replica \
         signs the genesis, so it must be one"
    );
    let town_path = data_dir.join("keys").join("town.key");
    let town = crate::keys::generate();
    crate::keys::write_key(&town_path, &town)?;
    let block = cluster_genesis(chain_id, &town, &producer, replicas, chain::now_ms())?;
    Chain::create(Box::new(DiskFile::open(&chain::log_path(data_dir))?), &block)?;
    write_genesis_file(&genesis_path(data_dir), &block)?;
    Ok(town_path)
}

/// The genesis block of a cluster: the town's genesis naming `producer` (who signs this
/// block), then the replica set. Fails, rather than panics, on a set the rules refuse.
pub fn cluster_genesis(
    chain_id: &str,
    town: &SigningKey,
    producer: &SigningKey,
    replicas: Vec<Replica>,
    now_ms: u64,
) -> anyhow::Result<Block> {
    let sign = |nonce: u64, action: Action| {
        let body =
            TxBody { chain_id: chain_id.to_string(), created_ms: now_ms, ttl_ms: 60_000, nonce, action };
        decode(chain_id, SignedTx::sign(chain_id, town, &body)).expect("own transaction decodes")
    };
    let txs = vec![
        sign(0, Action::Genesis { town: AccountId::of(town), producer: AccountId::of(producer) }),
        sign(1, Action::SetReplicas { replicas }),
    ];
    let mut trial = State::new(chain_id);
    for (index, tx) in txs.iter().enumerate() {
        let at = ApplyAt { now_ms, height: 0, index: index as u32 };
        match trial.apply(tx, at) {
            Ok(Outcome::Applied) => {}
            Ok(Outcome::Rejected(reason)) => bail!("the rules refuse the cluster's genesis: {reason:?}"),
            Err(refusal) => bail!("the rules refuse the cluster's genesis: {refusal:?}"),
        }
    }
    Ok(genesis_with(&mut State::new(chain_id), txs, now_ms, producer))
}

fn write_genesis_file(path: &Path, block: &Block) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    serde_json::to_writer(&mut file, &BlockView::new(block))?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    Ok(())
}

/// Reads a genesis file (one block of the export format).
pub fn read_genesis_file(path: &Path) -> anyhow::Result<Block> {
    let len = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len();
    ensure!(len <= GENESIS_FILE_BYTES_MAX, "{} is {len} bytes: too large for a genesis", path.display());
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let view: BlockView = serde_json::from_str(text.trim())
        .with_context(|| format!("{} does not hold a block", path.display()))?;
    view.to_block().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Another replica: starts its chain from the town's genesis file, after replaying it
/// (every signature and rule, the roots and hash) and checking that it names this
/// replica's producer key (from `keygen`). Returns the genesis and this replica's entry.
pub fn init_from_genesis(data_dir: &Path, genesis_file: &Path) -> anyhow::Result<(Block, Replica)> {
    let block = read_genesis_file(genesis_file)?;
    ensure!(
        block.header.height == 0,
        "{} holds block {}, not a genesis",
        genesis_file.display(),
        block.header.height
    );
    crate::node::check_new_chain(data_dir, &block.header.chain_id)?;
    let mut state = State::new(&block.header.chain_id);
    replay(&mut state, None, &block, SignatureCheck::All)
        .map_err(|e| anyhow::anyhow!("{} does not replay: {e}", genesis_file.display()))?;
    let producer = crate::keys::read_key(&producer_key_path(data_dir))
        .with_context(|| format!("run `machi-node keygen --data-dir {}` first", data_dir.display()))?;
    let producer_id = AccountId::of(&producer);
    let me = state.replicas.iter().find(|r| r.producer == producer_id).cloned().with_context(|| {
        format!("the genesis does not name this replica's producer key {producer_id}: send it to the town")
    })?;
    Chain::create(Box::new(DiskFile::open(&chain::log_path(data_dir))?), &block)?;
    Ok((block, me))
}
