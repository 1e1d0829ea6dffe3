//! machi's ledger: the pure rules of a town's premium voucher currency.
//!
//! Layout: `yen` (integer money, rates), `hash` (the byte-exact hashes of
//! docs/FORMAT.md), `proof` (inclusion proofs in a block's two Merkle trees), `tx`
//! (transaction bodies, encoding), `signature` (the one Ed25519 acceptance rule, single
//! and batch), `read_auth` (the message a reader signs to open a read session), `attest` (the
//! supply digest and the replicas' signed statement of what they applied), `issue`
//! (issues and supply), `lottery` (the lottery draw, one pure
//! function), `state` (accounts and
//! the state transition `State::apply`), `block` (headers, production, replay), `reason`
//! (rejection and refusal codes), `limits` and `time` (JST); with the feature `testkit`,
//! which only tests turn on, `testkit` (the standard issue of machi's tests). No I/O, no
//! clock, no HTTP, no storage: given the same ordered transactions and block times, every
//! replica computes the same state. The rules are docs/RULES.md. The HTTP contracts built
//! on these types are machi-api's.

pub mod attest;
mod block;
mod hash;
mod issue;
mod limits;
pub mod lottery;
mod proof;
pub mod read_auth;
mod reason;
mod signature;
mod state;
mod tx;
mod yen;

#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;

pub use block::{
    genesis, genesis_with, produce, replay, roots, verify_producer, Block, BlockHeader, ChainError,
    SignatureCheck, TxResult, BLOCK_TXS_MAX,
};
pub use hash::{
    chain_id_is_valid, merkle_root, outcome_record, sha256, tx_id, AccountId, Hash32, TxId,
    CHAIN_ID_BYTES_MAX,
};
pub use issue::{IssueId, IssueParams, IssueState, Kind, Supply, NAME_CHARS_MAX};
pub use limits::{
    ADDR_BYTES_MAX, BODY_BYTES_MAX, CASH_YEN_MAX, CLOCK_SKEW_MS_MAX, INVOICE_CHARS_MAX, REPLICAS_MAX,
    SETTLE_REQUESTS_MAX, SLIP_CHARS_MAX, TTL_MS_MAX,
};
pub use proof::{inclusion_proof, verify_inclusion};
pub use reason::{Outcome, Reason, Refusal, TxError};
pub use signature::{check_key, verify as verify_signature, KeyCache};
pub use state::{
    address_is_valid, Account, ApplyAt, CashClose, CashOut, CashOutStatus, CounterDay, Deposit, Lot, Lottery,
    LotteryPhase, LotteryResult, Payment, Role, Settlement, State, TxRecord,
};
pub use tx::{
    decode, verify_batch, verify_batch_cached, verify_one, Action, DaySales, Delegation, Replica, ShopClass,
    SignedTx, TxBody, VerifiedTx,
};
pub use yen::{group_thousands, ParseYenError, RateBp, Yen};

pub use ed25519_dalek::SigningKey;
