//! `town …`: the town's commands — issues (from flags or a TOML file), operators, delegated
//! keys, freezes, expiry and sale progress — with the parsers of an issue's days and fee.

use std::path::{Path, PathBuf};
use std::time::Duration;

use machi_ledger::{AccountId, Action, IssueParams, RateBp};
use serde_json::json;

use super::{unlock, yen};
use crate::ctx::{user, Ctx, Failure};
use crate::keystore::CardNumber;

/// Pause between two refreshes of `sale-status --watch`.
const SALE_STATUS_REFRESH_S: u64 = 2;

/// Digits of a rate before and after the point: more cannot be a rate of 0% to 100%
/// in 0.01% steps, and would overflow the decimal arithmetic.
const RATE_INTEGER_DIGITS_MAX: usize = 3;
const RATE_FRACTION_DIGITS_MAX: usize = 6;

#[derive(clap::Subcommand)]
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
    /// An auditor's key (made with `create --label auditor`) signs nothing and reads
    /// everything with `machi-wallet audit`.
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
    /// Name the chain's replicas anew: the whole new set, from a cluster file like the
    /// one the chain began with (docs/OPERATIONS.md). Add an auditor, retire a replica,
    /// replace a producer key. From the next block on, only the voters' keys may sign
    /// blocks; the leader carries the change out.
    SetReplicas {
        /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
        #[arg(long)]
        card: String,
        /// The cluster file (TOML, `[[replica]]` entries).
        #[arg(long)]
        file: PathBuf,
    },
    /// Record the bank deposit of a sale day's cash, from the deposit slip: the day, the
    /// amount, the slip's reference and its date. Shows the day's cash received, counted
    /// and deposited after it.
    RecordDeposit(super::cash::RecordDepositArgs),
    /// Sell an issue by lottery (抽選): the parties whose secrets make the draw's seed, and
    /// the windows (JST, YYYY-MM-DD HH:MM), checked for order before signing. Only before
    /// the issue's sale opens.
    SetLottery(super::lottery::SetLotteryArgs),
}

/// The powers the town can delegate.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum DelegationArg {
    /// May register shops, nothing else.
    ShopRegistrar,
    /// May record settlements of shops' cash-outs, nothing else.
    Settler,
    /// A lottery party (the bank, the auditor): commits, reveals and draws, nothing else.
    LotteryParty,
    /// May create issues, nothing else (the merchant API's town office form).
    Issuer,
    /// The bank's or the town assembly's auditors: may sign nothing, reads everything
    /// (`machi-wallet audit`), each read logged with its reason.
    Auditor,
}

impl From<DelegationArg> for machi_ledger::Delegation {
    fn from(arg: DelegationArg) -> machi_ledger::Delegation {
        match arg {
            DelegationArg::ShopRegistrar => machi_ledger::Delegation::ShopRegistrar,
            DelegationArg::Settler => machi_ledger::Delegation::Settler,
            DelegationArg::LotteryParty => machi_ledger::Delegation::LotteryParty,
            DelegationArg::Issuer => machi_ledger::Delegation::Issuer,
            DelegationArg::Auditor => machi_ledger::Delegation::Auditor,
        }
    }
}

/// An issue's parameters as flags (all needed unless `--file` is given).
#[derive(clap::Args, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueFlags {
    #[arg(long)]
    id: Option<u32>,
    #[arg(long)]
    name: Option<String>,
    /// Price of one set (default ¥10,000).
    #[arg(long)]
    price: Option<String>,
    /// Common value per set (default ¥6,250).
    #[arg(long)]
    common: Option<String>,
    /// Local-only value per set (default ¥6,250).
    #[arg(long)]
    local: Option<String>,
    /// Sets on sale.
    #[arg(long)]
    sets: Option<u32>,
    /// Most sets one person may buy.
    #[arg(long)]
    cap: Option<u32>,
    /// First day of the sale (YYYY-MM-DD, JST).
    #[arg(long)]
    sale_start: Option<String>,
    /// Last day of the sale.
    #[arg(long)]
    sale_end: Option<String>,
    /// Last day value may be spent.
    #[arg(long)]
    spend_until: Option<String>,
    /// Last day shops may ask to cash out.
    #[arg(long)]
    cash_out_deadline: Option<String>,
    /// Cash-out fee, e.g. 0.5% (default 0%).
    #[arg(long)]
    fee: Option<String>,
    /// Workers (live elsewhere) may buy too.
    #[arg(long)]
    #[serde(default)]
    workers: bool,
}

pub(crate) async fn run(ctx: &Ctx, command: TownCommand) -> Result<(), Failure> {
    match command {
        TownCommand::CreateIssue { card, file, flags } => {
            create_issue(ctx, &card, file.as_deref(), &flags).await
        }
        TownCommand::RegisterOperator { card, operator_card, name } => {
            register_operator(ctx, &card, &operator_card, name).await
        }
        TownCommand::RegisterDelegate { card, delegation, account, name } => {
            register_delegate(ctx, &card, delegation, account, name).await
        }
        TownCommand::Freeze { card, account } => freeze(ctx, &card, account).await,
        TownCommand::Unfreeze { card, account } => unfreeze(ctx, &card, account).await,
        TownCommand::Expire { card, issue } => expire(ctx, &card, issue).await,
        TownCommand::SaleStatus { issue, watch } => sale_status(ctx, issue, watch).await,
        TownCommand::SetReplicas { card, file } => set_replicas(ctx, &card, &file).await,
        TownCommand::RecordDeposit(args) => super::cash::record_deposit(ctx, args).await,
        TownCommand::SetLottery(args) => super::lottery::set_lottery(ctx, args).await,
    }
}

async fn set_replicas(ctx: &Ctx, card: &str, file: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let cluster: machi_api::ClusterFile =
        toml::from_str(&text).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let replicas = cluster.replicas().map_err(|e| user(format!("{}: {e}", file.display())))?;
    let town = unlock(ctx, card)?;
    let names: Vec<String> = replicas
        .iter()
        .map(|r| format!("{} {}{}", r.id, r.name, if r.voter { "" } else { " (learner)" }))
        .collect();
    let result = ctx.submit(&town.key, Action::SetReplicas { replicas }).await?;
    ctx.print(
        json!({ "tx_id": result.tx_id, "height": result.height, "replicas": names }),
        &format!("{}: {}", ctx.t("台帳の複製を設定しました", "Replicas set"), names.join(", ")),
    );
    Ok(())
}

async fn create_issue(ctx: &Ctx, card: &str, file: Option<&Path>, flags: &IssueFlags) -> Result<(), Failure> {
    let from_file = file.map(read_issue_file).transpose()?;
    let issue = issue_params(from_file.as_ref().unwrap_or(flags))?;
    let town = unlock(ctx, card)?;
    let (id, name) = (issue.id, issue.name.clone());
    let result = ctx.submit(&town.key, Action::CreateIssue { issue }).await?;
    ctx.print(
        json!({ "tx_id": result.tx_id, "issue": id }),
        &format!("{} {id}: {name}", ctx.t("発行回を作成しました", "Issue created")),
    );
    Ok(())
}

/// An issue from a TOML file with the flags' names.
fn read_issue_file(path: &Path) -> Result<IssueFlags, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| user(format!("{}: {e}", path.display())))
}

async fn register_operator(ctx: &Ctx, card: &str, operator_card: &str, name: String) -> Result<(), Failure> {
    let operator = ctx.store.account(&CardNumber::parse(operator_card)?)?;
    let town = unlock(ctx, card)?;
    let result = ctx.submit(&town.key, Action::RegisterOperator { operator, name: name.clone() }).await?;
    ctx.print(
        json!({ "tx_id": result.tx_id, "operator": operator }),
        &format!("{}: {name}", ctx.t("窓口担当を登録しました", "Operator registered")),
    );
    Ok(())
}

async fn register_delegate(
    ctx: &Ctx,
    card: &str,
    delegation: DelegationArg,
    account: AccountId,
    name: String,
) -> Result<(), Failure> {
    let town = unlock(ctx, card)?;
    let action =
        Action::RegisterDelegate { delegate: account, name: name.clone(), delegation: delegation.into() };
    let result = ctx.submit(&town.key, action).await?;
    ctx.print(
        json!({ "tx_id": result.tx_id, "delegate": account }),
        &format!("{}: {name} ({account})", ctx.t("町の鍵の委任を登録しました", "Delegated key registered")),
    );
    Ok(())
}

async fn freeze(ctx: &Ctx, card: &str, account: AccountId) -> Result<(), Failure> {
    let town = unlock(ctx, card)?;
    let result = ctx.submit(&town.key, Action::Freeze { account }).await?;
    let done = ctx.t("凍結しました", "Frozen");
    ctx.print(json!({ "tx_id": result.tx_id, "account": account }), &format!("{done}: {account}"));
    Ok(())
}

async fn unfreeze(ctx: &Ctx, card: &str, account: AccountId) -> Result<(), Failure> {
    let town = unlock(ctx, card)?;
    let result = ctx.submit(&town.key, Action::Unfreeze { account }).await?;
    let done = ctx.t("凍結を解除しました", "Unfrozen");
    ctx.print(json!({ "tx_id": result.tx_id, "account": account }), &format!("{done}: {account}"));
    Ok(())
}

async fn expire(ctx: &Ctx, card: &str, issue: u32) -> Result<(), Failure> {
    let town = unlock(ctx, card)?;
    let result = ctx.submit(&town.key, Action::ExpireIssue { issue }).await?;
    let supply = ctx.client.issue(issue).await?.supply;
    ctx.print(
        json!({ "tx_id": result.tx_id, "expired": supply.expired }),
        &format!("{}: {}", ctx.t("失効しました", "Expired"), supply.expired),
    );
    Ok(())
}

/// Sets sold and left; with `watch`, again every `SALE_STATUS_REFRESH_S` until sold out.
async fn sale_status(ctx: &Ctx, issue: u32, watch: bool) -> Result<(), Failure> {
    loop {
        let view = ctx.client.issue(issue).await?;
        let text = format!(
            "{}\n{}: {} / {}: {} / {}: {}",
            view.params.name,
            ctx.t("販売済み", "Sold"),
            view.sets_sold,
            ctx.t("残り", "Left"),
            view.sets_left,
            ctx.t("総数", "Total"),
            view.params.total_sets
        );
        ctx.print(json!({ "issue": issue, "sets_sold": view.sets_sold, "sets_left": view.sets_left, "total_sets": view.params.total_sets, "on_sale": view.on_sale }), &text);
        if !watch || view.sets_left == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(SALE_STATUS_REFRESH_S)).await;
    }
}

fn required<T: Clone>(value: &Option<T>, flag: &str) -> Result<T, Failure> {
    value.clone().ok_or_else(|| user(format!("--{flag} is needed (or --file)")))
}

/// An issue from flags or a TOML file with the same names.
fn issue_params(f: &IssueFlags) -> Result<IssueParams, Failure> {
    Ok(IssueParams {
        id: required(&f.id, "id")?,
        name: required(&f.name, "name")?,
        price: yen(f.price.as_deref().unwrap_or("10000"))?,
        common_per_set: yen(f.common.as_deref().unwrap_or("6250"))?,
        local_per_set: yen(f.local.as_deref().unwrap_or("6250"))?,
        total_sets: required(&f.sets, "sets")?,
        max_sets_per_resident: required(&f.cap, "cap")?,
        workers_may_buy: f.workers,
        sale_start_ms: day(&required(&f.sale_start, "sale-start")?, false)?,
        sale_end_ms: day(&required(&f.sale_end, "sale-end")?, true)? + 1,
        spend_until_ms: day(&required(&f.spend_until, "spend-until")?, true)?,
        cash_out_deadline_ms: day(&required(&f.cash_out_deadline, "cash-out-deadline")?, true)?,
        cash_out_fee: rate(f.fee.as_deref().unwrap_or("0%"))?,
    })
}

/// A day as people write it (2027-01-31, JST): its first millisecond, or with `end` its
/// last.
fn day(text: &str, end: bool) -> Result<u64, Failure> {
    let ms = if end {
        machi_ledger::time::end_of_day_jst_ms(text)
    } else {
        machi_ledger::time::start_of_day_jst_ms(text)
    };
    ms.ok_or_else(|| user(format!("{text:?} is not a date like 2027-01-31")))
}

/// A fee rate as people write it (`0.5%`, `0.005`), refused with a clear message when it
/// is not one.
fn rate(text: &str) -> Result<RateBp, Failure> {
    let number = text.trim().strip_suffix('%').unwrap_or(text.trim()).trim();
    let (integer, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str, max: usize| part.len() <= max && part.bytes().all(|b| b.is_ascii_digit());
    if integer.len() + fraction.len() == 0
        || !digits(integer, RATE_INTEGER_DIGITS_MAX)
        || !digits(fraction, RATE_FRACTION_DIGITS_MAX)
    {
        return Err(user(format!(
            "fee {text:?} is not a rate: write it like 0.5% or 0.005 (0% to 100%, in steps of 0.01%)"
        )));
    }
    text.parse::<RateBp>().map_err(user)
}
