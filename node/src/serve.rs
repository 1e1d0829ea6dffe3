//! The node serves HTTP with machi-host's `serve`, under the same limits as the merchant
//! API.

pub(crate) use machi_host::{refuse_oversized, serve, ServeLimits};

// A request may take longer than the longest long poll of the chain's head.
const _: () = assert!(machi_host::REQUEST_TIMEOUT.as_millis() > crate::api::HEAD_WAIT_MS_MAX as u128 + 5_000);
