//! `machi-wallet`: the signing client for everyone who holds a key — residents, counter
//! staff (operators) and the town. Keys live in a PIN-protected keystore; every command
//! that signs shows what it will do, and answers in Japanese by default
//! (`--lang en` for English) or as JSON (`--json`).
//!
//! PINs and resident numbers are never arguments: they are typed at the terminal (echo
//! off), piped on standard input, or set in `MACHI_PIN`, `MACHI_NEW_PIN`,
//! `MACHI_RESIDENT_NUMBER` (see `secrets`).
//!
//! Exit codes: 0 done; 2 the input was wrong (card, PIN, amount, locked card);
//! 3 the ledger refused or rejected the transaction; 4 the node could not be reached
//! (nothing was sent); 5 sent, but the outcome is unknown (`machi-wallet check TX_ID`);
//! 6 a receipt is not proven (`verify-receipt`); 1 anything else.
//!
//! As a library: `main_with` runs a command line (the `machi-wallet` binary is only that,
//! and `machi-demo wallet` passes its arguments to it); `keystore` (wallet files and card
//! numbers), `screen` (the kiosk's big digits) and `receipt_code` (a receipt's check code
//! and its QR code) are used by the demo and by tests.

mod cli;
mod commands;
mod ctx;
pub mod keystore;
mod kiosk;
mod pending;
pub mod receipt_code;
pub mod screen;
mod secrets;
mod text;

pub use cli::main_with;
pub(crate) use cli::{Cli, Command, Lang};
