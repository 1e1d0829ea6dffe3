//! machi-wallet through its real binary against a real node on loopback.

mod commands;
