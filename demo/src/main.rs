//! `machi-demo`: the quick start. A whole working town on this machine in one command —
//! the node and the merchant API in this process on loopback, seeded with an issue on
//! sale, two shops with tokens and residents with kiosk cards — and `machi-demo wallet …`,
//! the wallet, to try it with.

mod seed;
mod town;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// machi-demo: a working local town — the node on 127.0.0.1:7070 and the merchant API on
/// 127.0.0.1:7071, seeded with an issue on sale, two shops with tokens and residents with
/// kiosk cards; it prints the tokens, the cards, a pay code, the screens' URLs with pairing
/// codes and what to try next, and runs until Ctrl-C. Everything is kept in --data-dir,
/// and a second run goes on from there.
///
/// Examples:
///   machi-demo
///   machi-demo wallet --keystore machi-demo/keystore kiosk
#[derive(Parser)]
#[command(name = "machi-demo", version, verbatim_doc_comment, args_conflicts_with_subcommands = true)]
struct Cli {
    /// Folder for everything (kept between runs).
    #[arg(long, default_value = "machi-demo")]
    data_dir: PathBuf,
    /// Address the node listens on.
    #[arg(long, default_value = "127.0.0.1:7070")]
    node_listen: String,
    /// Address the merchant API listens on.
    #[arg(long, default_value = "127.0.0.1:7071")]
    listen: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run machi-wallet with the arguments that follow (`machi-demo wallet --help`).
    #[command(disable_help_flag = true)]
    Wallet {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Wallet { args }) = cli.command {
        let called = OsString::from("machi-demo wallet");
        std::process::exit(machi_wallet::main_with(std::iter::once(called).chain(args)));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sled=warn,openraft=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let options = town::DemoOptions {
        data_dir: cli.data_dir,
        node_listen: cli.node_listen,
        merchant_listen: cli.listen,
    };
    runtime.block_on(town::run_demo(options, machi_host::shutdown_signal()))
}
