//! machi-host: what machi's programs share on the machine they run on, so that no
//! service needs another service as a library.
//!
//! - `durable`: the one way a small file that must survive a crash is written (aside,
//!   0600, synced, renamed over, folder synced).

mod durable;

pub use durable::{create_durable, write_durable, FILE_MODE};
