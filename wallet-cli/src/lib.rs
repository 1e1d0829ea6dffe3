//! The wallet's keystore and kiosk drawing as a library: PIN-protected wallet files (Argon2id +
//! ChaCha20-Poly1305) and card numbers. The `machi-wallet` binary is built on it, and
//! `machi-merchant demo` uses it to give demo residents their cards.

pub mod keystore;
pub mod screen;
