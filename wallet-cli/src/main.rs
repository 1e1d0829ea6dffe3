//! `machi-wallet`: the signing client for everyone who holds a key — residents, counter
//! staff (operators) and the town. Keys live in a PIN-protected keystore; every command
//! that signs shows what it will do, and answers in Japanese by default
//! (`--lang en` for English) or as JSON (`--json`).
//!
//! PINs and resident numbers are never arguments: they are typed at the terminal (echo
//! off), piped on standard input, or set in `MACHI_PIN`, `MACHI_NEW_PIN`,
//! `MACHI_RESIDENT_NUMBER` (see `secrets`).
//!
//! Exit codes: 0 done; 2 the input was wrong (card, PIN, amount, locked card);
//! 3 the ledger refused or rejected the transaction; 4 the node could not be reached
//! (nothing was sent); 5 sent, but the outcome is unknown (`machi-wallet check TX_ID`);
//! 1 anything else.

mod commands;
mod ctx;
mod kiosk;
use machi_wallet::keystore;
mod pending;
mod secrets;
mod text;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use machi_ledger::AccountId;

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
#[derive(Parser)]
#[command(name = "machi-wallet", version, verbatim_doc_comment)]
pub(crate) struct Cli {
    /// The node's address.
    #[arg(long, global = true, env = "MACHI_NODE", default_value = "http://127.0.0.1:7070")]
    node: String,
    /// The merchant API's address (for pay codes).
    #[arg(long, global = true, env = "MACHI_MERCHANT", default_value = "http://127.0.0.1:7071")]
    merchant: String,
    /// Folder of wallet files.
    #[arg(long, global = true, env = "MACHI_KEYSTORE", default_value = "machi-keystore")]
    keystore: PathBuf,
    /// Language of messages.
    #[arg(long, global = true, value_enum, default_value = "ja")]
    lang: Lang,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the node's answer to one request; a transaction that gets no
    /// answer in time is looked up and sent again (the same one), never signed anew.
    #[arg(
        long,
        global = true,
        env = "MACHI_REQUEST_TIMEOUT_S",
        default_value_t = machi_client::REQUEST_TIMEOUT_S_DEFAULT,
        value_parser = clap::value_parser!(u64).range(1..=REQUEST_TIMEOUT_S_MAX)
    )]
    request_timeout_s: u64,
    #[command(subcommand)]
    command: Command,
}

/// Longest wait for one request that can be asked for.
const REQUEST_TIMEOUT_S_MAX: u64 = 3_600;
/// Longest kiosk time-out that can be asked for.
const KIOSK_TIMEOUT_S_MAX: u64 = 86_400;
/// Most history rows shown.
const HISTORY_ROWS_MAX: u64 = 1_000;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    Ja,
    En,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a new wallet (a new key) protected by a PIN (asked twice, or MACHI_NEW_PIN);
    /// prints its card number.
    Create {
        /// 4 to 8 digits.
        /// Who holds it: resident, operator or town (for people reading the keystore).
        #[arg(long, default_value = "resident")]
        label: String,
    },
    /// Put an existing key file (e.g. DIR/keys/town.key of `machi-node init`) into the
    /// keystore behind a PIN (asked twice, or MACHI_NEW_PIN).
    Import {
        #[arg(long)]
        key_file: PathBuf,
        #[arg(long, default_value = "town")]
        label: String,
    },
    /// Show a card's balance: total, common and local value, and until when it is valid.
    Balance {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
    },
    /// Pay a shop from a card: by the pay code the shop shows (looked up at the merchant
    /// API), or by the shop's id and an amount.
    Pay {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The 8-digit pay code of the shop's payment request.
        #[arg(long, conflicts_with_all = ["shop", "amount", "invoice"])]
        code: Option<String>,
        /// The shop's account id (64 hex digits).
        #[arg(long, required_unless_present = "code", requires = "amount")]
        shop: Option<String>,
        /// Amount in yen: 1200, 1,200 or ¥1,200.
        #[arg(long)]
        amount: Option<String>,
        /// The shop's invoice id, if it gave one.
        #[arg(long)]
        invoice: Option<String>,
    },
    /// The assisted kiosk: a guided, numbered screen flow in large text — card number,
    /// PIN, then balance, payment by pay code, history and receipts. Enter 0 to cancel
    /// at any step; after a time without input it goes back to the start.
    Kiosk {
        /// Seconds without input before the kiosk goes back to the first screen.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=KIOSK_TIMEOUT_S_MAX))]
        timeout_s: u64,
        /// Folder where receipts are written for the kiosk printer.
        #[arg(long, default_value = "receipts")]
        receipts: PathBuf,
    },
    /// A card's latest transactions.
    History {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=HISTORY_ROWS_MAX))]
        limit: u64,
    },
    /// What became of a transaction: looks its id up on the chain; one this keystore
    /// still holds unanswered is sent again (the same signed bytes) until the node says.
    /// Exit 0 applied, 3 refused or rejected, 5 still unknown.
    Check {
        /// The transaction id (64 hex digits) that a command or the kiosk printed.
        tx_id: String,
    },
    /// Write the receipt of a committed payment as a plain-text file for the kiosk printer.
    Receipt {
        /// The payment's transaction id.
        tx_id: String,
        #[arg(long, default_value = "receipt.txt")]
        out: PathBuf,
    },
    /// Counter staff: register residents, sell sets, replace lost cards.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// The town: issues, operators, expiry, sale progress.
    #[command(subcommand)]
    Town(TownCommand),
}

#[derive(Subcommand)]
pub(crate) enum OperatorCommand {
    /// Register a resident and give them a new card. Asks for your PIN, the resident
    /// number (or MACHI_RESIDENT_NUMBER) and the new card's PIN (twice, or MACHI_NEW_PIN);
    /// the card file is written before anything is sent. Only a keyed hash of the
    /// resident number goes on the chain. If the outcome is unknown, run the same command
    /// again: it sends the same transaction for the same new card.
    RegisterResident {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The town's secret key for hashing resident numbers: a file of 32 to 128 hex
        /// digits (make one with `openssl rand -hex 32`).
        #[arg(long)]
        id_key: PathBuf,
        /// Works in the town but lives elsewhere.
        #[arg(long)]
        worker: bool,
    },
    /// Sell sets for cash to the holder of a card (also a family member's card, each
    /// within their own limit).
    Sell {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The buyer's card number.
        #[arg(long)]
        resident_card: String,
        #[arg(long)]
        issue: u32,
        #[arg(long)]
        sets: u32,
    },
    /// Replace a lost card: a new key and card number; balances move, the old key is
    /// revoked. Asks for your PIN and the new card's PIN (twice, or MACHI_NEW_PIN); the new
    /// card file is written before anything is sent. If the outcome is unknown, run the
    /// same command again: it sends the same transaction for the same new card.
    ReplaceCard {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The lost card's number.
        #[arg(long)]
        lost_card: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum TownCommand {
    /// Create an issue (発行回), from flags or from a TOML file with the same names
    /// (see docs/KIOSK.md).
    CreateIssue {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// A TOML file holding the issue (then the flags below are not used).
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        flags: Box<IssueFlags>,
    },
    /// Register a counter operator: their card (made with `create --label operator`).
    RegisterOperator {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        #[arg(long)]
        operator_card: String,
        #[arg(long)]
        name: String,
    },
    /// Give a service one narrow power of the town's, so the town's own key can stay
    /// offline: a shop registrar (the merchant API registers shops) or a settler (it
    /// records settlements). `machi-merchant keygen` prints the accounts to register.
    RegisterDelegate {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        #[arg(long, value_enum)]
        delegation: DelegationArg,
        /// The delegated key's account (64 hex digits).
        #[arg(long)]
        account: AccountId,
        /// Who holds it, e.g. "merchant API".
        #[arg(long)]
        name: String,
    },
    /// Freeze an account: it can sign nothing and receive no payments. Freezing a
    /// delegated key revokes it. Only the town lifts a freeze the town set.
    Freeze {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The account to freeze (64 hex digits).
        #[arg(long)]
        account: AccountId,
    },
    /// Lift a freeze.
    Unfreeze {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The account to unfreeze (64 hex digits).
        #[arg(long)]
        account: AccountId,
    },
    /// Expire what residents did not spend of an issue (after its spend-until day).
    Expire {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        #[arg(long)]
        issue: u32,
    },
    /// Sets sold and left of an issue.
    SaleStatus {
        #[arg(long)]
        issue: u32,
        /// Keep showing it, refreshed every 2 seconds, until sold out or Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
}

/// The powers the town can delegate.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum DelegationArg {
    /// May register shops, nothing else.
    ShopRegistrar,
    /// May record settlements of shops' cash-outs, nothing else.
    Settler,
}

impl From<DelegationArg> for machi_ledger::Delegation {
    fn from(arg: DelegationArg) -> machi_ledger::Delegation {
        match arg {
            DelegationArg::ShopRegistrar => machi_ledger::Delegation::ShopRegistrar,
            DelegationArg::Settler => machi_ledger::Delegation::Settler,
        }
    }
}

/// An issue's parameters as flags (all needed unless `--file` is given).
#[derive(clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueFlags {
    #[arg(long)]
    pub(crate) id: Option<u32>,
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Price of one set (default ¥10,000).
    #[arg(long)]
    pub(crate) price: Option<String>,
    /// Common value per set (default ¥6,250).
    #[arg(long)]
    pub(crate) common: Option<String>,
    /// Local-only value per set (default ¥6,250).
    #[arg(long)]
    pub(crate) local: Option<String>,
    /// Sets on sale.
    #[arg(long)]
    pub(crate) sets: Option<u32>,
    /// Most sets one person may buy.
    #[arg(long)]
    pub(crate) cap: Option<u32>,
    /// First day of the sale (YYYY-MM-DD, JST).
    #[arg(long)]
    pub(crate) sale_start: Option<String>,
    /// Last day of the sale.
    #[arg(long)]
    pub(crate) sale_end: Option<String>,
    /// Last day value may be spent.
    #[arg(long)]
    pub(crate) spend_until: Option<String>,
    /// Last day shops may ask to cash out.
    #[arg(long)]
    pub(crate) cash_out_deadline: Option<String>,
    /// Cash-out fee, e.g. 0.5% (default 0%).
    #[arg(long)]
    pub(crate) fee: Option<String>,
    /// Workers (live elsewhere) may buy too.
    #[arg(long)]
    #[serde(default)]
    pub(crate) workers: bool,
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let code = runtime.block_on(commands::run(cli));
    std::process::exit(code);
}
