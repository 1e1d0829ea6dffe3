//! machi-node's one integration-test binary: real sockets, sled in temp folders, and the
//! real `machi-node` process where a crash is the point.

mod api;
mod audit;
mod clock;
mod crash;
mod harness;
mod history;
mod limits;
mod openapi;
mod sale_day;
mod storage;
