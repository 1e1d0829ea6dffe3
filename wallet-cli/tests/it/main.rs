//! machi-wallet through its real binary (and, for the kiosk, a real pseudo-terminal)
//! against a real node and merchant API on loopback.

mod commands;
mod faults;
mod kiosk;
mod recovery;
