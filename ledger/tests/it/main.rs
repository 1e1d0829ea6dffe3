//! The ledger's one integration-test binary: format vectors and one table of tests per
//! rule of SPEC §2-3.

mod blocks;
mod rules;
mod town;
mod vectors;
