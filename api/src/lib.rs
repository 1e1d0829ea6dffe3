//! machi's HTTP contracts: the request and response types of machi-node's API, and the
//! merchant API's pay-code view that wallets read. Servers and clients both use these
//! types, so they cannot drift apart, and the ledger never changes because an endpoint
//! did.
//!
//! Layout by resource: `tx` (submit, results, a committed transaction), `auth` (read
//! sessions, the access log, a shop's public profile), `code`
//! (`TxCode`, every code a transaction's result can carry, typed), `explain` (every
//! code in plain Japanese and English, the one source of those words), `account`,
//! `issue` (issues and the supply report), `cash` (the counters' cash by day: received,
//! counted, deposited, and the gaps), `chain` (head, health, blocks as exported,
//! events), `proof` (a transaction's inclusion proofs, and checking them against a block
//! hash), `verifiable` (public headers, a replica's attestation, the supply digest), `pay`
//! (the merchant API's pay code), `error` (the error body of every
//! service). Amounts are integer yen; hashes and keys are lowercase hex.

mod account;
mod auth;
mod cash;
mod chain;
mod cluster;
mod code;
mod error;
mod explain;
mod issue;
mod pay;
mod proof;
mod tx;
mod verifiable;

pub use account::{AccountView, BalanceView, HistoryEntry, SetsBoughtView};
pub use auth::{
    AccessLogEntry, AccessLogPage, ReadChallenge, ReadScope, ReadSession, ReadSessionRequest, ReaderRole,
    ShopView, ACCESS_LOG_ENTRIES_MAX, READ_CHALLENGE_TTL_MS, READ_SESSION_TTL_MS,
};
pub use cash::{CashDayView, CashGap, CashIssueDayView, CashReport, CloseView, CounterDayView, DepositView};
pub use chain::{
    BlockTxView, BlockView, ClockView, ClusterView, HaltView, HeadView, HealthView, MemberView, TxEvent,
};
pub use cluster::{ClusterFile, ReplicaEntry};
pub use code::TxCode;
pub use error::{ErrorBody, ErrorDetail};
pub use explain::{explain, Lang};
pub use issue::{
    IssueSupplyView, IssueView, LotteryDrawView, LotteryEntryView, LotteryPartyView, LotteryStage,
    LotteryStatus, LotteryView, SaleMode, SupplyReport,
};
pub use pay::PayCodeView;
pub use proof::{BlockHeaderView, OutcomeRecordView, ProofCheck, TxProof};
pub use tx::{SubmitRequest, SubmitResponse, TxErrorBody, TxResultView, TxStatus, TxView, SUBMIT_TXS_MAX};
pub use verifiable::{report_digest, AttestationView, AttestedReplica, HeaderView, HeadersView, HEADERS_MAX};
