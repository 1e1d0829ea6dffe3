//! What the follower believes of the node. The anchor is the genesis block: it must be
//! signed by the town's key (the `--town` account the service runs with) and name the
//! block producer. Every later block must link to the one read before it (height,
//! `prev_hash`, time), hash to what the node says, have the roots of its transactions
//! and outcomes, and carry the named producer's signature over its hash. A node that
//! serves anything else is not believed at all.

use machi_api::BlockView;
use machi_client::Client;
use machi_ledger::{decode, roots, verify_one, verify_producer, AccountId, Action, Block, Hash32, Outcome};

/// The last block read: the next one must follow it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tip {
    pub(crate) height: u64,
    pub(crate) hash: Hash32,
    pub(crate) timestamp_ms: u64,
}

impl Tip {
    pub(crate) fn of(block: &Block) -> Tip {
        Tip { height: block.header.height, hash: block.hash(), timestamp_ms: block.header.timestamp_ms }
    }
}

/// A block that must not be believed, and why.
#[derive(Debug, thiserror::Error)]
#[error("block {height}: {problem}")]
pub(crate) struct Untrusted {
    pub(crate) height: u64,
    pub(crate) problem: String,
}

fn untrusted(height: u64, problem: impl Into<String>) -> Untrusted {
    Untrusted { height, problem: problem.into() }
}

/// The genesis block's tip and the producer it names, after checking that the town
/// signed it.
pub(crate) async fn genesis(
    node: &Client,
    chain_id: &str,
    town: &AccountId,
) -> anyhow::Result<(Tip, AccountId)> {
    let view = node.block(0).await?;
    Ok(check_genesis(&view, chain_id, town)?)
}

pub(crate) fn check_genesis(
    view: &BlockView,
    chain_id: &str,
    town: &AccountId,
) -> Result<(Tip, AccountId), Untrusted> {
    let block = view.to_block().map_err(|e| untrusted(0, e))?;
    let h = &block.header;
    if h.height != 0 || h.prev_hash != Hash32::default() || h.chain_id != chain_id {
        return Err(untrusted(0, format!("not the genesis block of chain {chain_id:?}")));
    }
    let [signed] = block.txs.as_slice() else {
        return Err(untrusted(0, "a genesis block holds one transaction"));
    };
    let tx =
        decode(chain_id, signed.clone()).map_err(|e| untrusted(0, format!("genesis transaction: {e}")))?;
    let Action::Genesis { town: named, producer } = tx.body.action else {
        return Err(untrusted(0, "the first transaction is not a genesis transaction"));
    };
    if named != *town || tx.signed.signer != *town {
        return Err(untrusted(0, "the genesis transaction is not the town's (another --town?)"));
    }
    verify_one(&tx).map_err(|e| untrusted(0, format!("the town's signature on genesis: {e}")))?;
    check_contents(&block, &producer)?;
    Ok((Tip::of(&block), producer))
}

/// The block that follows `tip`, checked; an error names what is wrong with it.
pub(crate) fn check_block(
    view: &BlockView,
    chain_id: &str,
    tip: &Tip,
    producer: &AccountId,
) -> Result<Block, Untrusted> {
    let height = tip.height + 1;
    let block = view.to_block().map_err(|e| untrusted(height, e))?;
    let h = &block.header;
    if h.chain_id != chain_id {
        return Err(untrusted(height, format!("chain id {:?} is not {chain_id:?}", h.chain_id)));
    }
    if h.height != height {
        return Err(untrusted(height, format!("the node sent block {} for block {height}", h.height)));
    }
    if h.prev_hash != tip.hash {
        return Err(untrusted(height, format!("prev_hash does not match block {}'s hash", tip.height)));
    }
    if h.timestamp_ms < tip.timestamp_ms {
        return Err(untrusted(height, "its time is before the block it follows"));
    }
    check_contents(&block, producer)?;
    Ok(block)
}

/// Roots, producer and the producer's signature.
fn check_contents(block: &Block, producer: &AccountId) -> Result<(), Untrusted> {
    let h = &block.header;
    if block.txs.len() != block.outcomes.len() || h.tx_count as usize != block.txs.len() {
        return Err(untrusted(h.height, "tx_count, transactions and outcomes disagree"));
    }
    let (tx_root, outcome_root) = roots(&block.tx_ids(), &block.outcomes);
    if tx_root != h.tx_root {
        return Err(untrusted(h.height, "tx_root does not match the transactions"));
    }
    if outcome_root != h.outcome_root {
        return Err(untrusted(h.height, "outcome_root does not match the outcomes"));
    }
    if h.producer != *producer {
        return Err(untrusted(h.height, "signed by a key that is not the producer genesis names"));
    }
    verify_producer(block).map_err(|_| untrusted(h.height, "the producer's signature does not verify"))?;
    if h.height == 0 && block.outcomes != [Outcome::Applied] {
        return Err(untrusted(0, "the genesis transaction did not apply"));
    }
    Ok(())
}
