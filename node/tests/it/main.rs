//! machi-node's one integration-test binary: real sockets, sled in temp folders, and the
//! real `machi-node` process where a crash is the point.

mod api;
mod audit;
mod cash;
mod clock;
mod cluster;
mod crash;
mod harness;
mod history;
mod limits;
mod lottery;
mod lottery_day;
mod openapi;
mod privacy;
mod processes;
mod proof;
mod raft_proxy;
mod sale_day;
mod stop;
mod storage;
mod verifiable;
