//! The counter's cash close and the town's deposits: `operator close-day` (the day's sales
//! at this counter from the chain, the cash the operator counts, the difference in plain
//! words, a typed confirmation, then the signed close) and `town record-deposit`.

use std::io::{BufRead, IsTerminal, Read, Write};

use machi_api::CashDayView;
use machi_ledger::{AccountId, Action, Yen};
use serde_json::json;

use super::{unlock, yen};
use crate::ctx::{user, Ctx, Failure};
use crate::Lang;

/// Longest line read for one answer.
const ANSWER_BYTES_MAX: u64 = 256;
/// Times the counted cash is asked again at a terminal after an answer that is not an amount.
const COUNT_ASKS_MAX: u32 = 3;

#[derive(clap::Args)]
pub(crate) struct CloseDayArgs {
    /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
    #[arg(long)]
    card: String,
    /// The day to close, YYYY-MM-DD in Japan time (default: today).
    #[arg(long)]
    day: Option<String>,
}

#[derive(clap::Args)]
pub(crate) struct RecordDepositArgs {
    /// The card number, e.g. 1234-5678-9 (for operator and town commands: your own card).
    #[arg(long)]
    card: String,
    /// The sale day whose cash was deposited, YYYY-MM-DD in Japan time.
    #[arg(long)]
    day: String,
    /// The amount on the deposit slip, e.g. 1,230,000.
    #[arg(long)]
    amount: String,
    /// The deposit slip's reference number, as printed.
    #[arg(long)]
    slip: String,
    /// The date on the slip, YYYY-MM-DD (default: today).
    #[arg(long)]
    deposited_on: Option<String>,
}

fn today() -> String {
    machi_ledger::time::format_jst_date(machi_client::now_ms())
}

fn checked_day(ctx: &Ctx, day: &str) -> Result<String, Failure> {
    let day = day.trim();
    if machi_ledger::time::parse_date(day).is_none() {
        return Err(user(ctx.t("日付は YYYY-MM-DD で入れてください", "a day is a date, YYYY-MM-DD")));
    }
    Ok(day.to_string())
}

/// A difference in plain words: `¥1,000 不足`, `¥500 過剰`, `過不足なし`.
pub(crate) fn difference_words(lang: Lang, difference: i64) -> String {
    let amount = Yen(difference.unsigned_abs());
    match (lang, difference.signum()) {
        (Lang::Ja, 0) => "過不足なし".to_string(),
        (Lang::Ja, -1) => format!("{amount} 不足"),
        (Lang::Ja, _) => format!("{amount} 過剰"),
        (Lang::En, 0) => "none: the cash matches".to_string(),
        (Lang::En, -1) => format!("{amount} short"),
        (Lang::En, _) => format!("{amount} over"),
    }
}

/// Shows a line to the person at the counter: on standard output, or on standard error
/// when standard output is for `--json`.
fn show(ctx: &Ctx, text: &str) {
    if ctx.json {
        eprintln!("{text}");
    } else {
        println!("{text}");
        let _ = std::io::stdout().flush();
    }
}

/// One answer typed at the terminal (shown as typed) or the next line of standard input.
fn ask(prompt: &str) -> Option<String> {
    if std::io::stdin().is_terminal() {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    match std::io::stdin().lock().take(ANSWER_BYTES_MAX).read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

/// The cash counted in the drawer; at a terminal asked again after a typing mistake.
fn ask_counted(ctx: &Ctx) -> Result<Yen, Failure> {
    let prompt = ctx.t("数えた現金の合計（円）: ", "Cash counted in the drawer (yen): ");
    let terminal = std::io::stdin().is_terminal();
    for _ in 0..COUNT_ASKS_MAX {
        let Some(answer) = ask(prompt) else { break };
        match yen(&answer) {
            Ok(amount) if amount.0 <= machi_ledger::CASH_YEN_MAX => return Ok(amount),
            Ok(_) => return Err(user(ctx.t("金額が大きすぎます", "that amount is too large"))),
            Err(e) if terminal => {
                eprintln!("{}: {}", ctx.t("金額として読めません", "not an amount"), e.message)
            }
            Err(e) => return Err(e),
        }
    }
    Err(user(ctx.t(
        "数えた現金の額が入力されていません。何も送っていません。",
        "no counted cash was typed; nothing was sent",
    )))
}

/// A typed yes: 1, はい, y or yes. Anything else, or nothing, is no.
fn confirmed(ctx: &Ctx) -> bool {
    let prompt =
        ctx.t("この内容で締めますか？ 1 はい / 0 やめる: ", "Close the day with this? 1 yes / 0 no: ");
    ask(prompt).is_some_and(|a| matches!(a.to_lowercase().as_str(), "1" | "はい" | "y" | "yes" | "１"))
}

/// The day's sales at this counter as a table, Japanese or English.
fn sales_table(ctx: &Ctx, day: &CashDayView, me: &AccountId, name: &str, names: &[(u32, String)]) -> String {
    let mut out = format!(
        "{} {} ({}) {}: {name}\n",
        ctx.t("締め", "Close of"),
        day.day,
        ctx.t("日本時間", "Japan time"),
        ctx.t("窓口", "counter")
    );
    let counter = day.counters.iter().find(|c| c.operator == *me);
    let sales = counter.map_or(&[][..], |c| &c.sales[..]);
    if sales.is_empty() {
        out.push_str(ctx.t("  この日の販売はありません\n", "  no sales that day\n"));
    }
    for sale in sales {
        let issue = names.iter().find(|(id, _)| *id == sale.issue).map_or("", |(_, n)| n.as_str());
        out.push_str(&format!(
            "  {issue}（第{}回）  {} {}  {}\n",
            sale.issue,
            sale.sets,
            ctx.t("セット", "set(s)"),
            sale.cash
        ));
    }
    let (sets, expected) = counter.map_or((0, Yen::ZERO), |c| (c.sets, c.expected));
    out.push_str(&format!(
        "  {}  {sets} {}  {expected}",
        ctx.t("台帳の販売記録による現金（見込み）", "cash the ledger expects"),
        ctx.t("セット", "set(s)")
    ));
    out
}

pub(crate) async fn close_day(ctx: &Ctx, args: CloseDayArgs) -> Result<(), Failure> {
    let day = checked_day(ctx, &args.day.unwrap_or_else(today))?;
    let operator = unlock(ctx, &args.card)?;
    let me = AccountId::of(&operator.key);
    // The counters' cash is the operators' to read (and the town's); the operator's
    // own account is its own.
    let reader = ctx.reading_as(&operator.key, "close-day");
    let view = reader.cash_day(&day).await?;
    let counter = view.counters.iter().find(|c| c.operator == me);
    let name = match counter {
        Some(c) => c.name.clone(),
        None => reader.account(&me).await?.name,
    };
    if let Some(close) = counter.and_then(|c| c.close.as_ref()) {
        return Err(user(format!(
            "{} {day}: {} {}, {} {} ({})",
            ctx.t("この窓口の締めはすでに記録されています", "this counter has already closed"),
            ctx.t("数えた現金", "counted"),
            close.counted,
            ctx.t("過不足", "difference"),
            difference_words(ctx.lang, close.difference),
            close.tx
        )));
    }
    let mut names = Vec::new();
    for sale in counter.map_or(&[][..], |c| &c.sales[..]) {
        let issue_name = ctx.client.issue(sale.issue).await.map(|i| i.params.name).unwrap_or_default();
        names.push((sale.issue, issue_name));
    }
    show(ctx, &sales_table(ctx, &view, &me, &name, &names));
    let sales = counter.map(|c| c.sales.clone()).unwrap_or_default();
    let expected = counter.map_or(Yen::ZERO, |c| c.expected);
    let counted = ask_counted(ctx)?;
    let difference = i64::try_from(i128::from(counted.0) - i128::from(expected.0))
        .map_err(|_| user(ctx.t("金額が大きすぎます", "that amount is too large")))?;
    show(
        ctx,
        &format!(
            "  {}  {counted}\n  {}  {}",
            ctx.t("数えた現金", "cash counted"),
            ctx.t("過不足", "difference"),
            difference_words(ctx.lang, difference)
        ),
    );
    if !confirmed(ctx) {
        return Err(user(ctx.t("締めていません。何も送っていません。", "not closed; nothing was sent")));
    }
    let action = Action::CloseDay { day: day.clone(), sales: sales.clone(), expected, counted };
    let result = ctx.submit(&operator.key, action).await?;
    let sets: u64 = sales.iter().map(|s| u64::from(s.sets)).sum();
    let text = format!(
        "{} {day}: {} {expected}, {} {counted}, {} {}\n{}: {}",
        ctx.t("締めを記録しました", "Day closed"),
        ctx.t("見込み", "expected"),
        ctx.t("現金", "counted"),
        ctx.t("過不足", "difference"),
        difference_words(ctx.lang, difference),
        ctx.t("取引ID", "Transaction"),
        result.tx_id
    );
    ctx.print(
        json!({
            "day": day, "operator": me, "sales": sales, "sets": sets, "expected": expected,
            "counted": counted, "difference": difference, "tx_id": result.tx_id,
        }),
        &text,
    );
    Ok(())
}

pub(crate) async fn record_deposit(ctx: &Ctx, args: RecordDepositArgs) -> Result<(), Failure> {
    let day = checked_day(ctx, &args.day)?;
    let deposited_on = checked_day(ctx, &args.deposited_on.unwrap_or_else(today))?;
    let amount = yen(&args.amount)?;
    let slip_reference = args.slip.trim().to_string();
    let town = unlock(ctx, &args.card)?;
    let action = Action::RecordDeposit { day: day.clone(), deposited_on, amount, slip_reference };
    let result = ctx.submit(&town.key, action).await?;
    let view =
        ctx.reading_as(&town.key, "record-deposit: the day's cash after the deposit").cash_day(&day).await?;
    let text = format!(
        "{} {day}: {amount}\n  {} {}  {} {}  {} {}  ({} {})\n{}: {}",
        ctx.t("入金を記録しました", "Deposit recorded for"),
        ctx.t("台帳の受領", "received"),
        view.cash_received,
        ctx.t("窓口の計数", "counted"),
        view.counted,
        ctx.t("入金合計", "deposited"),
        view.deposited,
        ctx.t("入金−計数", "deposited − counted"),
        view.deposit_difference,
        ctx.t("取引ID", "Transaction"),
        result.tx_id
    );
    ctx.print(
        json!({
            "day": day, "amount": amount, "tx_id": result.tx_id, "cash_received": view.cash_received,
            "counted": view.counted, "deposited": view.deposited,
            "deposit_difference": view.deposit_difference, "gaps": view.gaps,
        }),
        &text,
    );
    Ok(())
}
