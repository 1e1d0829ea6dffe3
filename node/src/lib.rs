//! machi-node: one replica of the chain; a node alone is a cluster of one.
//!
//! Layout: `storage` (the block log: append-only, checksummed, fdatasync'd — the source of
//! truth), `index` (a state checkpoint file and its metadata in sled, rebuildable),
//! `chain` (state and every account's history in memory, rebuilt from the log),
//! `producer` (the single writer: it makes the blocks while this replica leads), `verify`
//! (signature checks in batches), `replica` (openraft: the Raft log, the state machine
//! that verifies every committed block, replica-to-replica HTTP), `cluster` (setting up
//! a cluster: keygen, genesis), `shared` (what the handlers and the producer share), `access`
//! (read challenges and sessions, who a reader is, the access log), `api` (axum HTTP API,
//! each route's access, and its OpenAPI document), `audit` (replay, export and verify), and
//! `metrics`; serving with limits, key files, the clock, durable files and supervision
//! are machi-host's (`serve`, `keys`, `chain` re-export them). `node` opens and runs it:
//! `Node::open` + `Node::serve`; tests bind `127.0.0.1:0`.

mod access;
mod api;
mod audit;
mod chain;
mod index;
mod keys;
mod metrics;
mod node;
mod producer;
mod replica;
mod serve;
mod setup;
mod shared;
mod storage;
mod verify;

/// Every path the HTTP API serves.
pub use api::paths as api_paths;
/// The HTTP error shape and JSON extractor, shared with the merchant API so both answer alike.
pub use api::{ApiError, JsonBody, BODY_BYTES_MAX};
pub use audit::{
    audit_data_dir, export, report_cash_csv, report_csv, report_text, verify_export, AuditReport,
    LotteryAudit, ProducersFrom,
};
pub use chain::{index_path, log_path, now_ms, Clock, ManualClock, SystemClock};
/// Key files, serving with limits and the shutdown signal: machi-host's, shared with the
/// merchant API.
pub use machi_host::{
    generate_key, read_key, refuse_oversized, serve, shutdown_signal, write_key, ServeLimits,
    CONNECTIONS_MAX, DRAIN_BYTES_MAX, HEADER_READ_TIMEOUT, REQUEST_TIMEOUT,
};
pub use node::Node;
pub use setup::{
    cluster_genesis, genesis_path, init, init_cluster, init_from_genesis, init_log, keygen,
    producer_key_path, read_cluster_file, read_genesis_file,
};
pub use shared::{ReopenLog, Shared};
pub use storage::{BlockLog, DiskFile, FaultyFile, LogFile, LogFormat, MemFile};

// A request may take longer than the longest long poll of the chain's head, with room to
// spare: a follower's wait is never cut by the request time limit.
const _: () = assert!(REQUEST_TIMEOUT.as_millis() > api::HEAD_WAIT_MS_MAX as u128 + 5_000);

/// The HTTP API's OpenAPI document (served at `GET /openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <api::ApiDoc as utoipa::OpenApi>::openapi()
}
