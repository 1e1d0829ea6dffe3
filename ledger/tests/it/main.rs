//! The ledger's one integration-test binary: format vectors, one table of tests per
//! rule of docs/RULES.md, and properties of the formats, yen text and signatures.

mod blocks;
mod cash;
mod crafted;
mod format_doc;
mod formats;
mod lottery;
mod replicas;
mod rules;
mod signatures;
mod strategies;
mod town;
mod vectors;
mod yen_text;
