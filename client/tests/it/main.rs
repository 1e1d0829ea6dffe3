//! machi-client's one integration-test binary: real nodes in temp folders and small
//! servers on loopback sockets that answer as a replica can (refusing, dropping an
//! answer, splitting an event inside a character), and reads with credentials (read
//! sessions opened once, renewed after a restart, opened again on another replica).

mod events;
mod failover;
mod harness;
mod reading;
