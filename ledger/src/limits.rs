//! Upper bounds on what one transaction may carry: part of the rules, so every replica
//! and auditor refuses the same things.

/// Largest transaction body, in bytes.
pub const BODY_BYTES_MAX: usize = 4 * 1024;
/// Longest time-to-live a transaction may ask for.
pub const TTL_MS_MAX: u32 = 24 * 60 * 60 * 1000;
/// How far a transaction's creation time may run ahead of the block's clock.
pub const CLOCK_SKEW_MS_MAX: u64 = 60 * 1000;
/// Longest invoice id a payment may name.
pub const INVOICE_CHARS_MAX: usize = 64;
/// Most cash-out requests one settlement may settle.
pub const SETTLE_REQUESTS_MAX: usize = 1_000;
/// Most replicas a chain may name.
pub const REPLICAS_MAX: usize = 16;
/// Longest replica address (`host:port`), in bytes.
pub const ADDR_BYTES_MAX: usize = 255;
/// Longest bank deposit slip reference, in characters.
pub const SLIP_CHARS_MAX: usize = 64;
/// Most cash a counter's close or one deposit may state: ¥10,000,000,000.
pub const CASH_YEN_MAX: u64 = 10_000_000_000;
