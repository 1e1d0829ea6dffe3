//! Setting up a chain: a node alone (`init`: the town's and the producer's keys and a
//! genesis), or a cluster, in the order the parties follow, each keeping its own private
//! key: every replica makes its producer key (`keygen`); the town writes `cluster.toml`
//! naming the replicas and makes the genesis (`init_cluster`), which names them on chain;
//! every other replica starts its chain from that genesis file (`init_from_genesis`),
//! after checking it by replay.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context};
use machi_api::{BlockView, ClusterFile};
use machi_ledger::{
    decode, genesis, genesis_with, replay, AccountId, Action, ApplyAt, Block, Outcome, Replica,
    SignatureCheck, SignedTx, SigningKey, State, TxBody,
};

use crate::chain::{self, Chain};
use crate::storage::{DiskFile, LogFile};

/// Creates a new chain in `data_dir`: keys for the town and the producer, and genesis.
pub fn init(data_dir: &Path, chain_id: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    check_new_chain(data_dir, chain_id)?;
    let keys_dir = data_dir.join("keys");
    std::fs::create_dir_all(&keys_dir).with_context(|| format!("creating {}", keys_dir.display()))?;
    set_mode(&keys_dir, 0o700)?;
    let (town, producer) = (crate::keys::generate(), crate::keys::generate());
    let (town_path, producer_path) = (keys_dir.join("town.key"), keys_dir.join("producer.key"));
    crate::keys::write_key(&town_path, &town)?;
    crate::keys::write_key(&producer_path, &producer)?;
    let block = genesis_block(chain_id, &town, &producer, chain::now_ms());
    Chain::create(Box::new(DiskFile::open(&chain::log_path(data_dir))?), &block)?;
    Ok((town_path, producer_path))
}

/// Writes a new chain's genesis block into `file` (tests use memory files).
pub fn init_log(
    file: Box<dyn LogFile>,
    chain_id: &str,
    town: &SigningKey,
    producer: &SigningKey,
) -> anyhow::Result<()> {
    Chain::create(file, &genesis_block(chain_id, town, producer, chain::now_ms()))
}

pub(crate) fn genesis_block(
    chain_id: &str,
    town: &SigningKey,
    producer: &SigningKey,
    now_ms: u64,
) -> machi_ledger::Block {
    let town_id = machi_ledger::AccountId::of(town);
    let producer_id = machi_ledger::AccountId::of(producer);
    let body = TxBody {
        chain_id: chain_id.to_string(),
        created_ms: now_ms,
        ttl_ms: 60_000,
        nonce: 0,
        action: Action::Genesis { town: town_id, producer: producer_id },
    };
    let tx = decode(chain_id, SignedTx::sign(chain_id, town, &body)).expect("own genesis decodes");
    genesis(&mut State::new(chain_id), tx, now_ms, producer)
}

/// A valid chain id, and a data folder without a chain.
pub(crate) fn check_new_chain(data_dir: &Path, chain_id: &str) -> anyhow::Result<()> {
    if !machi_ledger::chain_id_is_valid(chain_id) {
        let max = machi_ledger::CHAIN_ID_BYTES_MAX;
        bail!("chain id must be 1-{max} characters of letters, digits, '-', '_' or '.'");
    }
    if chain::log_path(data_dir).exists() {
        bail!("{} already holds a chain", data_dir.display());
    }
    Ok(())
}

pub(crate) fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

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
    set_mode(&keys_dir, 0o700)?;
    let path = producer_key_path(data_dir);
    if path.exists() {
        bail!("{} exists: this replica already has a producer key", path.display());
    }
    let key = crate::keys::generate();
    crate::keys::write_key(&path, &key)?;
    Ok((path, AccountId::of(&key)))
}

/// Reads `cluster.toml`.
pub fn read_cluster_file(path: &Path) -> anyhow::Result<ClusterFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not a cluster file", path.display()))
}

/// The town's replica: makes the town key and a genesis that names the replicas of
/// `cluster`, signed by this replica's producer key (from `keygen`), which the cluster
/// must name. Writes the block log and `DIR/genesis.json`; returns the town key's path.
pub fn init_cluster(data_dir: &Path, chain_id: &str, cluster: &ClusterFile) -> anyhow::Result<PathBuf> {
    check_new_chain(data_dir, chain_id)?;
    let replicas = cluster.replicas().map_err(|e| anyhow::anyhow!(e))?;
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

/// Where a replica that joins later keeps the id the town gave it.
fn joining_path(data_dir: &Path) -> PathBuf {
    data_dir.join("replica-id")
}

/// The id of a replica that joins a running cluster (`init --genesis … --replica-id N`),
/// until the chain names it.
pub(crate) fn joining_id(data_dir: &Path) -> anyhow::Result<Option<u64>> {
    let path = joining_path(data_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            text.trim().parse().map(Some).with_context(|| format!("{} does not hold an id", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Another replica: starts its chain from the town's genesis file, after replaying it
/// (every signature and rule, the roots and hash) and checking that it names this
/// replica's producer key (from `keygen`). Returns the genesis and this replica's entry.
/// A replica the town adds later (`joining`: the id the town gives it in the new set)
/// is not named in the genesis: it catches up from the others once the town's
/// `set_replicas` names it.
pub fn init_from_genesis(
    data_dir: &Path,
    genesis_file: &Path,
    joining: Option<u64>,
) -> anyhow::Result<(Block, Option<Replica>)> {
    let block = read_genesis_file(genesis_file)?;
    ensure!(
        block.header.height == 0,
        "{} holds block {}, not a genesis",
        genesis_file.display(),
        block.header.height
    );
    check_new_chain(data_dir, &block.header.chain_id)?;
    let mut state = State::new(&block.header.chain_id);
    replay(&mut state, None, &block, SignatureCheck::All)
        .map_err(|e| anyhow::anyhow!("{} does not replay: {e}", genesis_file.display()))?;
    let producer = crate::keys::read_key(&producer_key_path(data_dir))
        .with_context(|| format!("run `machi-node keygen --data-dir {}` first", data_dir.display()))?;
    let producer_id = AccountId::of(&producer);
    let me = state.replicas.iter().find(|r| r.producer == producer_id).cloned();
    match (&me, joining) {
        (Some(me), Some(id)) => bail!("the genesis names this replica already, as replica {} (not {id})", me.id),
        (None, None) => bail!(
            "the genesis does not name this replica's producer key {producer_id}: send it to the town (a replica \
             added later gives --replica-id)"
        ),
        (None, Some(id)) => {
            ensure!(!state.replicas.iter().any(|r| r.id == id), "replica id {id} is another replica's in the genesis");
            std::fs::write(joining_path(data_dir), format!("{id}\n"))?;
        }
        (Some(_), None) => {}
    }
    Chain::create(Box::new(DiskFile::open(&chain::log_path(data_dir))?), &block)?;
    Ok((block, me))
}
