//! machi-merchant against a real node, both on loopback sockets, sled in temp folders.

mod auth;
mod browser;
mod browser_counter;
mod browser_guard;
mod browser_money;
mod browser_screens;
mod day;
mod exactly_once;
mod follower;
mod harness;
mod hostile;
mod pages;
mod privacy;
mod proxy;
mod restart;
mod settlement;
