//! The command line: flags, commands, and `main_with`, which runs one.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;

/// machi-wallet: pay, check balances, and run the counter — for residents, counter staff
/// and the town.
///
/// PINs are asked for (typed with echo off), read from standard input, or taken from
/// MACHI_PIN (the card's PIN) and MACHI_NEW_PIN (a new card's PIN); never arguments.
///
/// Examples:
///   machi-wallet create                      # asks for the new card's PIN twice
///   machi-wallet balance --card 1234-5678-9  # asks for the PIN
///   machi-wallet pay --card 1234-5678-9 --code 40789964
///   echo 2468 | machi-wallet --json balance --card 1234-5678-9
///   machi-wallet check TX_ID                 # what became of a transaction
///   machi-wallet kiosk                       # the assisted kiosk at the town hall
///   machi-wallet verify-receipt receipt.txt --block-hash HASH  # check a receipt
///   machi-wallet audit account ID --card 1234-5678-9 --why "開示請求 2027-014"
///
/// A card reads only what is its own: its balance, its transactions, its lottery
/// result. The town's and auditors' cards read everything, each read with a reason
/// (--why) that the node writes in its access log.
#[derive(Parser)]
#[command(name = "machi-wallet", version, verbatim_doc_comment)]
pub(crate) struct Cli {
    /// The node's address, or a chain's replicas separated by commas
    /// (http://10.0.0.1:7101,http://10.0.0.2:7101): a request that one cannot serve
    /// (down, no leader, halted) goes to the next, the same signed transaction. May be
    /// given more than once (verify-chain reads each replica named).
    #[arg(
        long,
        global = true,
        env = "MACHI_NODE",
        default_value = "http://127.0.0.1:7070",
        value_parser = machi_client::node_list,
        action = clap::ArgAction::Append
    )]
    pub(crate) node: Vec<String>,
    /// The merchant API's address (for pay codes).
    #[arg(long, global = true, env = "MACHI_MERCHANT", default_value = "http://127.0.0.1:7071")]
    pub(crate) merchant: String,
    /// Folder of wallet files.
    #[arg(long, global = true, env = "MACHI_KEYSTORE", default_value = "machi-keystore")]
    pub(crate) keystore: PathBuf,
    /// Language of messages.
    #[arg(long, global = true, value_enum, default_value = "ja")]
    pub(crate) lang: Lang,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Seconds to wait for the node's answer to one request; a transaction that gets no
    /// answer in time is looked up and sent again (the same one), never signed anew.
    #[arg(
        long,
        global = true,
        env = "MACHI_REQUEST_TIMEOUT_S",
        default_value_t = machi_client::REQUEST_TIMEOUT_S_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..=REQUEST_TIMEOUT_S_MAX)
    )]
    pub(crate) request_timeout_s: u64,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Longest wait for one request that can be asked for.
const REQUEST_TIMEOUT_S_MAX: u64 = 3_600;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    Ja,
    En,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a new wallet (a new key) protected by a PIN (asked twice, or MACHI_NEW_PIN);
    /// prints its card number.
    Create(commands::card::CreateArgs),
    /// Put an existing key file (e.g. DIR/keys/town.key of `machi-node init`) into the
    /// keystore behind a PIN (asked twice, or MACHI_NEW_PIN).
    Import(commands::card::ImportArgs),
    /// Show a card's balance: total, common and local value, and until when it is valid.
    Balance(commands::balance::BalanceArgs),
    /// Pay a shop from a card: by the pay code the shop shows (looked up at the merchant
    /// API), or by the shop's id and an amount.
    Pay(commands::pay::PayArgs),
    /// The assisted kiosk: a guided, numbered screen flow in large text — card number,
    /// PIN, then balance, payment by pay code, history and receipts. Enter 0 to cancel
    /// at any step; after a time without input it goes back to the start.
    Kiosk(commands::kiosk::KioskArgs),
    /// A card's latest transactions.
    History(commands::history::HistoryArgs),
    /// What became of a transaction: looks its id up on the chain; one this keystore
    /// still holds unanswered is sent again (the same signed bytes) until the node says.
    /// Exit 0 applied, 3 refused or rejected, 5 still unknown.
    Check(commands::check::CheckArgs),
    /// Write the receipt of a committed payment or purchase as a plain-text file for the
    /// kiosk printer, with its check code and QR code.
    Receipt(commands::receipt::ReceiptArgs),
    /// Check a receipt without the rest of the chain: its block, proven against a block
    /// hash you trust (--block-hash, as the town publishes it, or read from --trust-node
    /// or --node), holds the transaction and an "applied" outcome. Exit 0 proven, 6 not
    /// proven.
    VerifyReceipt(commands::verify_receipt::VerifyReceiptArgs),
    /// Check the chain without logging in, against every replica named with --node:
    /// each replica's signed attestation with its key on chain, the public block headers
    /// (hashes, signatures, links: no fork, no rewrite), the supply reports against their
    /// signed digests, and that replicas at the same height agree. Exit 0 verified, 7 not
    /// verified.
    VerifyChain(commands::verify_chain::VerifyChainArgs),
    /// Counter staff: register residents, sell sets, replace lost cards.
    #[command(subcommand)]
    Operator(commands::operator::OperatorCommand),
    /// The town: issues, operators, expiry, sale progress.
    #[command(subcommand)]
    Town(commands::town::TownCommand),
    /// Lottery sales (抽選): parties commit, reveal and draw; residents apply and see
    /// their result (当選 / 落選 / 補欠) with the seed and how to check it.
    #[command(subcommand)]
    Lottery(commands::lottery::LotteryCommand),
    /// The town and its auditors: read an account, export the whole chain, read the
    /// node's access log — each with the town's or an auditor's card and a reason
    /// (--why), which the node logs.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
}

/// Runs the wallet on a command line and returns the process's exit code. `args` begins
/// with the name the program was called by (as `std::env::args_os()` does), which its
/// help and usage show: `machi-wallet` and `machi-demo wallet` both run this.
pub fn main_with<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are printed to stdout with 0, a wrong command line to stderr with 2.
            let _ = e.print();
            return e.exit_code();
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(commands::run(cli))
}
