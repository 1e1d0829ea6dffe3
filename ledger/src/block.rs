//! Blocks: the header of docs/FORMAT.md ("Block") and its hash, block production (pure: the caller gives
//! the time and the producer's key) and replay with every check an auditor makes.

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};

use crate::hash::{merkle_root, outcome_record, AccountId, Hash32, TxId, BLOCK_DOMAIN};
use crate::reason::TxError;
use crate::reason::{Outcome, Refusal};
use crate::state::{ApplyAt, State};
use crate::tx::{decode, verify_batch, SignedTx, VerifiedTx};

/// Most transactions one block holds.
pub const BLOCK_TXS_MAX: usize = 8_192;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    #[serde(deserialize_with = "checked_chain_id")]
    pub chain_id: String,
    pub height: u64,
    pub prev_hash: Hash32,
    pub timestamp_ms: u64,
    pub tx_count: u32,
    pub tx_root: Hash32,
    pub outcome_root: Hash32,
    pub producer: AccountId,
}

/// A header read from anywhere carries a valid chain id, so hashing it cannot fail.
fn checked_chain_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let chain_id = String::deserialize(d)?;
    if !crate::hash::chain_id_is_valid(&chain_id) {
        return Err(serde::de::Error::custom("chain id is not 1-64 letters, digits, '-', '_' or '.'"));
    }
    Ok(chain_id)
}

impl BlockHeader {
    /// The exact bytes hashed into `block_hash` (docs/FORMAT.md, "Block").
    pub fn bytes(&self) -> Vec<u8> {
        let chain = self.chain_id.as_bytes();
        let chain_len = crate::hash::chain_id_len(chain);
        let mut out = Vec::with_capacity(BLOCK_DOMAIN.len() + 1 + 2 + chain.len() + 8 + 32 + 8 + 4 + 96);
        out.extend_from_slice(BLOCK_DOMAIN);
        out.push(0);
        out.extend_from_slice(&chain_len);
        out.extend_from_slice(chain);
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.prev_hash.0);
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.tx_count.to_be_bytes());
        out.extend_from_slice(&self.tx_root.0);
        out.extend_from_slice(&self.outcome_root.0);
        out.extend_from_slice(&self.producer.0);
        out
    }

    pub fn hash(&self) -> Hash32 {
        crate::hash::sha256(&self.bytes())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    #[serde(with = "crate::tx::sig_serde")]
    pub signature: [u8; 64],
    pub txs: Vec<SignedTx>,
    pub outcomes: Vec<Outcome>,
}

impl Block {
    pub fn hash(&self) -> Hash32 {
        self.header.hash()
    }

    pub fn tx_ids(&self) -> Vec<TxId> {
        self.txs.iter().map(|tx| tx.id(&self.header.chain_id)).collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("encoding a block into a Vec cannot fail")
    }

    /// Decodes and insists on the one canonical encoding (no trailing bytes, no overlong
    /// integers), so a block record has one byte form, as a transaction body does.
    pub fn decode(bytes: &[u8]) -> Option<Block> {
        let block: Block = postcard::from_bytes(bytes).ok()?;
        (block.encode() == bytes).then_some(block)
    }
}

/// Roots of a block's transactions and outcomes.
pub fn roots(ids: &[TxId], outcomes: &[Outcome]) -> (Hash32, Hash32) {
    let leaves: Vec<[u8; 32]> = ids.iter().map(|id| id.0).collect();
    let records: Vec<[u8; 32]> =
        ids.iter().zip(outcomes).map(|(id, o)| outcome_record(id, o.status(), o.reason_code()).0).collect();
    (merkle_root(&leaves), merkle_root(&records))
}

fn seal(header: BlockHeader, producer: &SigningKey, txs: Vec<SignedTx>, outcomes: Vec<Outcome>) -> Block {
    let signature = producer.sign(&header.hash().0).to_bytes();
    Block { header, signature, txs, outcomes }
}

/// The genesis block: height 0, zero previous hash, one transaction naming the town and
/// the producer, signed by the town.
pub fn genesis(state: &mut State, genesis_tx: VerifiedTx, now_ms: u64, producer: &SigningKey) -> Block {
    genesis_with(state, vec![genesis_tx], now_ms, producer)
}

/// The genesis block with more of the town's transactions after the genesis one (a
/// cluster's genesis names its replicas). Every one must apply.
pub fn genesis_with(state: &mut State, txs: Vec<VerifiedTx>, now_ms: u64, producer: &SigningKey) -> Block {
    assert!(state.town.is_none(), "genesis on a chain that has one");
    assert!(matches!(txs.first().map(|t| &t.body.action), Some(crate::tx::Action::Genesis { .. })));
    let mut outcomes = Vec::with_capacity(txs.len());
    for (index, tx) in txs.iter().enumerate() {
        let at = ApplyAt { now_ms, height: 0, index: index as u32 };
        let outcome = state.apply(tx, at).expect("genesis transactions are admitted");
        assert_eq!(outcome, Outcome::Applied, "genesis transaction {index} applies");
        outcomes.push(outcome);
    }
    let ids: Vec<TxId> = txs.iter().map(|t| t.id).collect();
    let (tx_root, outcome_root) = roots(&ids, &outcomes);
    let header = BlockHeader {
        chain_id: state.chain_id.clone(),
        height: 0,
        prev_hash: Hash32::default(),
        timestamp_ms: now_ms,
        tx_count: txs.len() as u32,
        tx_root,
        outcome_root,
        producer: AccountId::of(producer),
    };
    seal(header, producer, txs.into_iter().map(|t| t.signed).collect(), outcomes)
}

/// What block production did with one offered transaction.
pub type TxResult = Result<Outcome, Refusal>;

/// Applies `txs` in order on top of `prev` at time `now_ms` and seals the block. Refused
/// transactions stay out of the block; the returned results line up with `txs`.
pub fn produce(
    state: &mut State,
    prev: &BlockHeader,
    now_ms: u64,
    txs: Vec<VerifiedTx>,
    producer: &SigningKey,
) -> (Block, Vec<TxResult>) {
    assert!(txs.len() <= BLOCK_TXS_MAX, "block over its transaction limit");
    let height = prev.height + 1;
    let now_ms = now_ms.max(prev.timestamp_ms);
    let mut results = Vec::with_capacity(txs.len());
    let mut ids = Vec::with_capacity(txs.len());
    let mut signed = Vec::with_capacity(txs.len());
    let mut outcomes = Vec::with_capacity(txs.len());
    for tx in txs {
        let index = u32::try_from(ids.len()).expect("bounded by BLOCK_TXS_MAX");
        let result = state.apply(&tx, ApplyAt { now_ms, height, index });
        if let Ok(outcome) = result {
            ids.push(tx.id);
            signed.push(tx.signed);
            outcomes.push(outcome);
        }
        results.push(result);
    }
    state.assert_supply_invariant();
    let (tx_root, outcome_root) = roots(&ids, &outcomes);
    let header = BlockHeader {
        chain_id: state.chain_id.clone(),
        height,
        prev_hash: prev.hash(),
        timestamp_ms: now_ms,
        tx_count: u32::try_from(ids.len()).expect("bounded"),
        tx_root,
        outcome_root,
        producer: AccountId::of(producer),
    };
    (seal(header, producer, signed, outcomes), results)
}

/// What is wrong with a block, found by replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("block {height}: {what}")]
    Bad { height: u64, what: String },
    /// Every rule replayed, yet the books do not balance after this block: the ledger
    /// that made (or replays) the chain has a bug. Reported, so an auditor names the block.
    #[error("block {height}: supply invariant broken: {what}")]
    InvariantBroken { height: u64, what: String },
}

impl ChainError {
    pub fn height(&self) -> u64 {
        match self {
            ChainError::Bad { height, .. } | ChainError::InvariantBroken { height, .. } => *height,
        }
    }
}

fn bad(height: u64, what: impl Into<String>) -> ChainError {
    ChainError::Bad { height, what: what.into() }
}

/// How much replay checks transaction signatures. The node's own log was verified when it
/// was written and is checksummed; auditors check everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCheck {
    All,
    Skip,
}

/// Replays one block on `state`, checking everything docs/RULES.md §4 promises: hash
/// link, height, time, roots, producer signature, transaction signatures, and that each
/// transaction's recorded outcome is the one the rules give. `state` is unusable after an
/// error.
pub fn replay(
    state: &mut State,
    prev: Option<&BlockHeader>,
    block: &Block,
    check: SignatureCheck,
) -> Result<(), ChainError> {
    let h = &block.header;
    let height = h.height;
    if h.chain_id != state.chain_id {
        return Err(bad(height, format!("chain id {:?} is not {:?}", h.chain_id, state.chain_id)));
    }
    match prev {
        None if height != 0 || h.prev_hash != Hash32::default() => {
            return Err(bad(height, "the first block is not a genesis block (height 0, zero prev_hash)"))
        }
        Some(p) if height != p.height + 1 => return Err(bad(height, format!("height follows {}", p.height))),
        Some(p) if h.prev_hash != p.hash() => {
            return Err(bad(height, format!("prev_hash does not match block {}'s hash", p.height)))
        }
        Some(p) if h.timestamp_ms < p.timestamp_ms => return Err(bad(height, "timestamp goes backwards")),
        _ => {}
    }
    if block.txs.len() != block.outcomes.len() || h.tx_count as usize != block.txs.len() {
        return Err(bad(height, "tx_count, transactions and outcomes disagree"));
    }
    let txs = block
        .txs
        .iter()
        .enumerate()
        .map(|(i, tx)| decode(&h.chain_id, tx.clone()).map_err(|e| bad(height, format!("tx {i}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ids: Vec<TxId> = txs.iter().map(|tx| tx.id).collect();
    let (tx_root, outcome_root) = roots(&ids, &block.outcomes);
    if tx_root != h.tx_root {
        return Err(bad(height, "tx_root does not match the transactions"));
    }
    if outcome_root != h.outcome_root {
        return Err(bad(height, "outcome_root does not match the outcomes"));
    }
    if check == SignatureCheck::All {
        for (i, result) in verify_batch(&txs).into_iter().enumerate() {
            if let Err(e) = result {
                return Err(bad(height, format!("tx {i} ({}): {e}", ids[i])));
            }
        }
    }
    let producers: Vec<AccountId> = producers_in_office(state);
    for (i, (tx, recorded)) in txs.iter().zip(&block.outcomes).enumerate() {
        let at = ApplyAt { now_ms: h.timestamp_ms, height, index: i as u32 };
        match state.apply(tx, at) {
            Ok(outcome) if outcome == *recorded => {}
            Ok(outcome) => {
                return Err(bad(
                    height,
                    format!("tx {i} ({}): recorded {recorded:?}, rules give {outcome:?}", tx.id),
                ))
            }
            Err(refusal) => {
                return Err(bad(height, format!("tx {i} ({}): must be refused: {refusal}", tx.id)))
            }
        }
    }
    // The producers in office are those named before this block: at genesis, the one the
    // genesis transaction names; later, the voters of the replica set in force.
    let may_produce =
        if height == 0 { state.producer == Some(h.producer) } else { producers.contains(&h.producer) };
    if !may_produce {
        return Err(bad(height, "producer is not a voting replica named on chain before this block"));
    }
    verify_producer(block).map_err(|_| bad(height, "producer signature does not verify"))?;
    state.supply_invariant().map_err(|what| ChainError::InvariantBroken { height, what })
}

/// The keys that may sign the next block, as the state stands before it.
fn producers_in_office(state: &State) -> Vec<AccountId> {
    if state.replicas.is_empty() {
        return state.producer.into_iter().collect();
    }
    state.replicas.iter().filter(|r| r.voter).map(|r| r.producer).collect()
}

pub fn verify_producer(block: &Block) -> Result<(), TxError> {
    crate::signature::verify(&block.header.producer, &block.signature, &block.hash().0)
}
