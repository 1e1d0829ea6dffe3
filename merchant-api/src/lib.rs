//! machi-merchant: the shops' backend (SPEC §6).
//!
//! Layout so far: `bank` (Japanese bank and branch codes checked against the vendored
//! zengin-code list, with their kana names; half-width katakana as transfer files need
//! them) and `zengin` (the 総合振込 bank-transfer file the town sends to pay shops'
//! cash-outs). The HTTP service is built on these.

mod bank;
mod zengin;

pub use bank::{half_width_kana, Bank, BankError, Banks};
pub use zengin::{Originator, Transfer, ZenginError, ZenginFile, RECORD_BYTES, TRANSFERS_MAX};
