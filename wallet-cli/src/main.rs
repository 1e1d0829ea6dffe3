//! `machi-wallet`: the signing client for everyone who holds a key — residents, counter
//! staff (operators) and the town. Keys live in a PIN-protected keystore; every command
//! that signs shows what it will do, and answers in Japanese by default
//! (`--lang en` for English) or as JSON (`--json`).
//!
//! Exit codes: 0 done; 2 the input was wrong (card, PIN, amount, locked card);
//! 3 the ledger refused or rejected the transaction; 4 the node could not be reached;
//! 1 anything else.

mod commands;
mod kiosk;
use machi_wallet::keystore;
mod text;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// machi-wallet: pay, check balances, and run the counter — for residents, counter staff
/// and the town.
///
/// Examples:
///   machi-wallet create --pin 2468
///   machi-wallet balance --card 1234-5678-9 --pin 2468
///   machi-wallet pay --card 1234-5678-9 --pin 2468 --code 40789964
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
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Lang {
    Ja,
    En,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a new wallet (a new key) protected by a PIN; prints its card number.
    Create {
        /// 4 to 8 digits.
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        /// Who holds it: resident, operator or town (for people reading the keystore).
        #[arg(long, default_value = "resident")]
        label: String,
    },
    /// Put an existing key file (e.g. DIR/keys/town.key of `machi-node init`) into the
    /// keystore behind a PIN.
    Import {
        #[arg(long)]
        key_file: PathBuf,
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long, default_value = "town")]
        label: String,
    },
    /// Show a card's balance: total, common and local value, and until when it is valid.
    Balance {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
    },
    /// Pay a shop from a card: by the pay code the shop shows (looked up at the merchant
    /// API), or by the shop's id and an amount.
    Pay {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
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
        #[arg(long, default_value_t = 90)]
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
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
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
    /// Register a resident and give them a new card. Only a keyed hash of the resident
    /// number goes on the chain.
    RegisterResident {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        /// The town's resident number (住民番号).
        #[arg(long)]
        resident_number: String,
        /// The town's secret key for hashing resident numbers (a file of hex).
        #[arg(long)]
        id_key: PathBuf,
        /// The PIN the resident chose for the new card.
        #[arg(long)]
        resident_pin: String,
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
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        /// The buyer's card number.
        #[arg(long)]
        resident_card: String,
        #[arg(long)]
        issue: u32,
        #[arg(long)]
        sets: u32,
    },
    /// Replace a lost card: a new key and card number; balances move, the old key is revoked.
    ReplaceCard {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        /// The lost card's number.
        #[arg(long)]
        lost_card: String,
        /// The PIN the resident chose for the new card.
        #[arg(long)]
        new_pin: String,
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
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
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
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long)]
        operator_card: String,
        #[arg(long)]
        name: String,
    },
    /// Expire what residents did not spend of an issue (after its spend-until day).
    Expire {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The card's PIN (or set MACHI_PIN).
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
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
