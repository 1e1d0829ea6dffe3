//! machi-node: the one process that writes the chain.
//!
//! Layout: `storage` (the block log: append-only, checksummed, fdatasync'd — the source of
//! truth), `index` (sled: account history and state checkpoints, rebuildable), `chain`
//! (state rebuilt from the log, the single-writer block producer and the indexer),
//! `api` (axum HTTP API), `audit` (replay, export and verify), `keys` (key files), and
//! `metrics`. `Node::open` + `Node::serve` run it; tests bind `127.0.0.1:0`.

mod api;
mod audit;
mod chain;
mod demo;
mod index;
mod keys;
mod metrics;
mod node;
mod producer;
mod serve;
mod storage;
mod verify;

/// Every path the HTTP API serves.
pub use api::paths as api_paths;
/// The HTTP error shape and JSON extractor, shared with the merchant API so both answer alike.
pub use api::{ApiError, JsonBody, BODY_BYTES_MAX};
pub use audit::{audit_data_dir, export, report_csv, report_text, verify_export, AuditReport};
pub use chain::{index_path, log_path, now_ms, Clock, ManualClock, SystemClock};
pub use demo::{seed as seed_demo, seed_town as seed_demo_town, DEMO_RESIDENTS};
pub use keys::{generate as generate_key, read_key, write_key};
pub use node::{init, init_log, shutdown_signal, Node, ReopenLog, Shared};
pub use serve::{serve, ServeLimits, CONNECTIONS_MAX, HEADER_READ_TIMEOUT, REQUEST_TIMEOUT};
pub use storage::{BlockLog, DiskFile, LogFile, LogFormat, MemFile};

/// The HTTP API's OpenAPI document (served at `GET /openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <api::ApiDoc as utoipa::OpenApi>::openapi()
}
