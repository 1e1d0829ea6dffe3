//! machi-host: what machi's programs share on the machine they run on, so that no
//! service needs another service as a library.
//!
//! - `durable`: the one way a small file that must survive a crash is written (aside,
//!   0600, synced, renamed over, folder synced).
//! - `keys`: key files (the Ed25519 seed in hex, 0600).
//! - `clock`: where times come from (`Clock`, `SystemClock`, `ManualClock` for tests).
//! - with the feature `server`, for machi-node and machi-merchant: `serve` with its limits
//!   and `shutdown_signal`, and `ApiError` and `JsonBody` (`error`), so both services
//!   answer alike; and `supervise`: a part a service cannot live without stops the
//!   process when it fails.

mod clock;
mod durable;
#[cfg(feature = "server")]
mod error;
mod keys;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
pub mod supervise;

pub use clock::{now_ms, Clock, ManualClock, SystemClock};
pub use durable::{create_durable, write_durable, FILE_MODE};
#[cfg(feature = "server")]
pub use error::{ApiError, JsonBody};
pub use keys::{generate_key, read_key, write_key};
#[cfg(feature = "server")]
pub use serve::{
    refuse_oversized, serve, shutdown_signal, ServeLimits, CONNECTIONS_MAX, DRAIN_BYTES_MAX,
    HEADER_READ_TIMEOUT, REQUEST_TIMEOUT,
};
