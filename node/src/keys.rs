//! Key files, written and read by machi-host (shared with the merchant API).

pub(crate) use machi_host::{generate_key as generate, read_key, write_key};
