//! machi-client's one integration-test binary: real nodes in temp folders and small
//! servers on loopback sockets that answer as a replica can (refusing, dropping an
//! answer, splitting an event inside a character).

mod events;
mod failover;
mod harness;
