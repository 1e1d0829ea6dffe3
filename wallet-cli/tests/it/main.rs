//! machi-wallet through its real binary against a real node on loopback. The kiosk and
//! the payments by pay code, which need a merchant API too, are machi-demo's tests.

mod cash;
mod commands;
mod lottery;
mod privacy;
mod verify_chain;
mod verify_receipt;
