//! `machi-bench`: drives a running machi-node with real signed transactions from many
//! keys, and measures the machine's own limits in the same run.
//!
//! One module per command, its flags beside its runner: `limits`, `payments`, `flood`,
//! `sale_open`, `audit`, `cost`, `rehearse`, `counter`, `proofs`. Shared: `load` (the
//! flags, workers and report of the load scenarios), `town` (a town of residents and
//! shops on the node) and `stats`.

mod audit;
mod cost;
mod counter;
mod flood;
mod limits;
mod load;
mod payments;
mod proofs;
mod rehearse;
mod sale_open;
mod stats;
mod town;

use clap::{Parser, Subcommand};

/// machi-bench: sale-day load generator for machi-node.
///
/// Every scenario that reports figures first measures the machine's limits (Ed25519 batch
/// verification on all cores, by ed25519-dalek's equation and by the ledger's own rule,
/// strict verification, SHA-256, fsync) so results are also given as fractions of them.
/// Build with `cargo build --release -p machi-bench`.
#[derive(Parser)]
#[command(name = "machi-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure the machine's own limits only.
    Limits(limits::LimitsArgs),
    /// Residents paying shops, as batches or as single requests.
    Payments(payments::PaymentsArgs),
    /// Where each microsecond of a payment goes (parse, decode, verify, apply, encode,
    /// fsync), measured stage by stage, and the memory resident accounts take.
    Cost(cost::CostArgs),
    /// Replay/verify rate of the chain in DIR (`machi-node audit`) and restart-to-ready
    /// time. Make a long chain first, e.g. with `payments --pool 1000000`, then stop the
    /// node.
    Audit(audit::AuditArgs),
    /// A whole sale day, compressed: sale, payments, refunds, cash-outs, settlement,
    /// expiry; ends with the audit summary. For counter staff to rehearse on a practice
    /// node.
    Rehearse(rehearse::RehearseArgs),
    /// Shops' counters through the merchant API: invoice → resident pays → paid event.
    /// Needs a node and a merchant API (e.g. `machi-demo`) and its admin token.
    Counter(counter::CounterArgs),
    /// Goodput under a flood of bad signatures: residents' payments (single requests)
    /// alone, then while other clients send payments with bad signatures, half naming
    /// registered residents and half from unknown keys.
    Flood(flood::FloodArgs),
    /// An issue of 2,000 sets opens and 20,000 purchase attempts from 50 operators arrive.
    SaleOpen(sale_open::SaleOpenArgs),
    /// Receipts checked by many at once: inclusion proofs of transactions in full blocks
    /// (1,024 each), and plain look-ups for comparison.
    Proofs(proofs::ProofsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Limits(args) => limits::run(args).await,
            Command::Payments(args) => payments::run(args).await,
            Command::Cost(args) => cost::run(args).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Rehearse(args) => rehearse::run(args).await,
            Command::Counter(args) => counter::run(args).await,
            Command::Flood(args) => flood::run(args).await,
            Command::SaleOpen(args) => sale_open::run(args).await,
            Command::Proofs(args) => proofs::run(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Cli;

    /// The flags every load scenario takes, alone.
    #[derive(Parser)]
    struct Load {
        #[command(flatten)]
        common: crate::load::Common,
    }

    #[test]
    fn node_takes_a_list_of_replicas() {
        let replicas = "http://127.0.0.1:7101, http://127.0.0.1:7102/";
        let load = Load::try_parse_from(["load", "--node", replicas, "--town-key", "town.key"])
            .expect("a list of replicas parses");
        assert_eq!(load.common.node, "http://127.0.0.1:7101,http://127.0.0.1:7102/");

        let gap = Cli::try_parse_from(["machi-bench", "counter", "--node", "http://a:1,,http://b:2"]);
        assert!(gap.err().is_some_and(|e| e.to_string().contains("empty")));
        for command in ["payments", "rehearse", "counter"] {
            let help = Cli::command().find_subcommand_mut(command).expect(command).render_long_help();
            assert!(help.to_string().contains("replicas separated by commas"), "{command}: {help}");
        }
    }
}
