//! The node serves HTTP with machi-host's `serve`, under the same limits as the merchant
//! API.

pub(crate) use machi_host::{refuse_oversized, serve, ServeLimits};
