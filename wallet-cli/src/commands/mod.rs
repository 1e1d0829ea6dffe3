//! What each command does: ask, unlock, sign, submit, explain. One module per command or
//! command group, each holding its flags (clap `Args`) beside its handler; this one opens
//! the keystore, dispatches, reports a failure with its exit code, and keeps the small
//! parsers the commands share.

pub(crate) mod audit;
pub(crate) mod balance;
pub(crate) mod card;
pub(crate) mod cash;
pub(crate) mod check;
pub(crate) mod history;
pub(crate) mod kiosk;
pub(crate) mod lottery;
pub(crate) mod operator;
pub(crate) mod pay;
pub(crate) mod receipt;
pub(crate) mod town;
pub(crate) mod verify_chain;
pub(crate) mod verify_receipt;

use std::time::Duration;

use machi_client::Client;
use machi_ledger::{AccountId, TxId, Yen};
use serde_json::{json, Value};

use crate::ctx::{read_words, user, Ctx, Failure, EXIT_UNKNOWN};
use crate::keystore::{CardNumber, Keystore, Wallet};
use crate::pending::PendingStore;
use crate::secrets::Secrets;
use crate::{Cli, Command};

/// Runs the command line's command and returns the process's exit code.
pub(crate) async fn run(cli: Cli) -> i32 {
    let opened = Keystore::open(&cli.keystore).and_then(|store| {
        let pending = PendingStore::open(&cli.keystore)?;
        Ok((store, pending))
    });
    let (store, pending) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let timeout = Duration::from_secs(cli.request_timeout_s);
    let ctx = Ctx {
        client: Client::with_timeout(&cli.node.join(","), timeout),
        merchant: Client::with_timeout(&cli.merchant, timeout),
        store,
        pending,
        lang: cli.lang,
        json: cli.json,
    };
    match execute(&ctx, cli.command).await {
        Ok(()) => 0,
        Err(failure) => report(&ctx, failure),
    }
}

/// Says why a command was not done (as JSON with `--json`) and returns its exit code.
fn report(ctx: &Ctx, mut failure: Failure) -> i32 {
    if let Some(words) = read_words(ctx.lang, failure.kind) {
        failure.message = words.to_string();
    }
    if ctx.json {
        let mut out = json!({ "error": { "kind": failure.kind, "message": failure.message } });
        if let Value::Object(details) = failure.details {
            out.as_object_mut().expect("an object").extend(details);
        }
        println!("{out}");
    } else if failure.code == EXIT_UNKNOWN {
        eprintln!("{}: {}", ctx.t("確認中", "Checking"), failure.message);
    } else {
        eprintln!("{}: {}", ctx.t("できませんでした", "Not done"), failure.message);
    }
    failure.code
}

async fn execute(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        Command::Create(args) => card::create(ctx, args),
        Command::Import(args) => card::import(ctx, args),
        Command::Balance(args) => balance::run(ctx, args).await,
        Command::Pay(args) => pay::run(ctx, args).await,
        Command::Kiosk(args) => kiosk::run(ctx, args).await,
        Command::History(args) => history::run(ctx, args).await,
        Command::Check(args) => check::run(ctx, args).await,
        Command::Receipt(args) => receipt::run(ctx, args).await,
        Command::VerifyReceipt(args) => verify_receipt::run(ctx, args).await,
        Command::VerifyChain(args) => verify_chain::run(ctx, args).await,
        Command::Operator(command) => operator::run(ctx, command).await,
        Command::Town(command) => town::run(ctx, command).await,
        Command::Lottery(command) => lottery::run(ctx, command).await,
        Command::Audit(command) => audit::run(ctx, command).await,
    }
}

/// Unlocks `card` with the PIN asked for now.
fn unlock(ctx: &Ctx, card: &str) -> Result<Wallet, Failure> {
    let card = CardNumber::parse(card)?;
    let pin = Secrets::new(ctx.lang).pin()?;
    ctx.unlock(card.digits(), &pin)
}

fn yen(text: &str) -> Result<Yen, Failure> {
    text.parse::<Yen>().map_err(|e| user(e.to_string()))
}

fn account_id(text: &str) -> Result<AccountId, Failure> {
    text.trim().parse().map_err(|_| user("an account id is 64 hex digits"))
}

fn tx_id(text: &str) -> Result<TxId, Failure> {
    text.trim().parse().map_err(|_| user("a transaction id is 64 hex digits"))
}
