//! `machi-wallet`: the signing client for everyone who holds a key — residents, counter
//! staff (operators) and the town. Keys live in a PIN-protected keystore; every command
//! that signs shows what it will do, and answers in Japanese by default
//! (`--lang en` for English) or as JSON (`--json`).
//!
//! Exit codes: 0 done; 2 the input was wrong (card, PIN, amount, locked card);
//! 3 the ledger refused or rejected the transaction; 4 the node could not be reached;
//! 1 anything else.

mod commands;
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
///   machi-wallet pay --card 1234-5678-9 --pin 2468 --shop SHOP_ID --amount 1200
#[derive(Parser)]
#[command(name = "machi-wallet", version, verbatim_doc_comment)]
pub(crate) struct Cli {
    /// The node's address.
    #[arg(long, global = true, env = "MACHI_NODE", default_value = "http://127.0.0.1:7070")]
    node: String,
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
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long, default_value = "town")]
        label: String,
    },
    /// Show a card's balance: total, common and local value, and until when it is valid.
    Balance {
        #[arg(long)]
        card: String,
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
    },
    /// Pay a shop from a card.
    Pay {
        #[arg(long)]
        card: String,
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        /// The shop's account id (64 hex digits).
        #[arg(long)]
        shop: String,
        /// Amount in yen: 1200, 1,200 or ¥1,200.
        #[arg(long)]
        amount: String,
        /// The shop's invoice id, if it gave one.
        #[arg(long)]
        invoice: Option<String>,
    },
    /// A card's latest transactions.
    History {
        #[arg(long)]
        card: String,
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
        /// The operator's card and PIN.
        #[arg(long)]
        card: String,
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
        #[arg(long)]
        card: String,
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
        #[arg(long)]
        card: String,
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
    /// Create an issue (発行回).
    CreateIssue {
        #[arg(long)]
        card: String,
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long)]
        id: u32,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "10000")]
        price: String,
        #[arg(long, default_value = "6250")]
        common: String,
        #[arg(long, default_value = "6250")]
        local: String,
        #[arg(long)]
        sets: u32,
        /// Most sets one person may buy.
        #[arg(long)]
        cap: u32,
        /// First day of the sale (YYYY-MM-DD, JST).
        #[arg(long)]
        sale_start: String,
        /// Last day of the sale.
        #[arg(long)]
        sale_end: String,
        /// Last day value may be spent.
        #[arg(long)]
        spend_until: String,
        /// Last day shops may ask to cash out.
        #[arg(long)]
        cash_out_deadline: String,
        /// Cash-out fee, e.g. 0.5%.
        #[arg(long, default_value = "0%")]
        fee: String,
        /// Workers (live elsewhere) may buy too.
        #[arg(long)]
        workers: bool,
    },
    /// Register a counter operator: their card (made with `create --label operator`).
    RegisterOperator {
        #[arg(long)]
        card: String,
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long)]
        operator_card: String,
        #[arg(long)]
        name: String,
    },
    /// Expire what residents did not spend of an issue (after its spend-until day).
    Expire {
        #[arg(long)]
        card: String,
        #[arg(long, env = "MACHI_PIN")]
        pin: String,
        #[arg(long)]
        issue: u32,
    },
    /// Sets sold and left of an issue.
    SaleStatus {
        #[arg(long)]
        issue: u32,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let code = runtime.block_on(commands::run(cli));
    std::process::exit(code);
}
