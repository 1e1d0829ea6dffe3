//! The ledger's one integration-test binary: format vectors and one table of tests per
//! rule of SPEC §2-3.

mod blocks;
mod crafted;
mod format_doc;
mod formats;
mod rules;
mod signatures;
mod town;
mod vectors;
mod yen_text;
