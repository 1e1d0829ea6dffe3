//! machi-demo through its real binary: the quick-start town, and the wallet (run as
//! `machi-demo wallet`, through a real pseudo-terminal for the kiosk) against a real node
//! and merchant API on loopback.

mod faults;
mod kiosk;
mod quick_start;
mod recovery;
mod run;
