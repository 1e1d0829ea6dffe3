//! `lottery …` and `town set-lottery`: an issue sold by lottery (抽選). The town names the
//! parties and windows; each party commits to a secret from the OS's random source (kept
//! in a 0600 file beside the keystore before its commitment is sent, never printed),
//! reveals it after the applications close, and anyone named draws; residents apply and
//! read their result in plain words with the seed and how to check it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use machi_api::{LotteryEntryView, LotteryStatus};
use machi_ledger::lottery::LotteryParams;
use machi_ledger::{Action, Hash32};
use serde_json::json;

use super::{account_id, unlock};
use crate::ctx::{user, Ctx, Failure};
use crate::keystore::CardNumber;

/// Milliseconds in a minute (the windows are given to the minute, in JST).
const MINUTE_MS: u64 = 60_000;
/// A secret file is the owner's alone.
const SECRET_FILE_MODE: u32 = 0o600;

#[derive(clap::Subcommand)]
pub(crate) enum LotteryCommand {
    /// A named party (the town, the bank, the auditor): make a 32-byte secret, keep it in
    /// a 0600 file beside the keystore, then send its SHA-256 before the commit deadline.
    Commit(PartyArgs),
    /// A named party, after the applications close: reveal the kept secret.
    Reveal(PartyArgs),
    /// The town or a named party: draw, once every party revealed or the reveal period ended.
    Draw(PartyArgs),
    /// Apply for sets of an issue sold by lottery, for yourself (one application per
    /// person; a second replaces the first while the window is open).
    Apply {
        /// Your card number, e.g. 1234-5678-9.
        #[arg(long)]
        card: String,
        #[arg(long)]
        issue: u32,
        #[arg(long)]
        sets: u32,
    },
    /// Your result: 当選 N セット / 落選 / 補欠 M 番目, with the seed and how to check it.
    /// Asks for the card's PIN: a result is shown only to its card.
    Result {
        /// Your card number, e.g. 1234-5678-9.
        #[arg(long)]
        card: String,
        #[arg(long)]
        issue: u32,
    },
}

/// Flags of a party's command.
#[derive(clap::Args)]
pub(crate) struct PartyArgs {
    /// The party's card number in this keystore.
    #[arg(long)]
    card: String,
    #[arg(long)]
    issue: u32,
}

/// Flags of `town set-lottery`. Times are JST, `YYYY-MM-DD HH:MM`.
#[derive(clap::Args)]
pub(crate) struct SetLotteryArgs {
    /// The town's card number.
    #[arg(long)]
    card: String,
    #[arg(long)]
    issue: u32,
    /// The parties' account ids (64 hex digits), in the order their secrets are hashed.
    #[arg(long, value_delimiter = ',', required = true)]
    parties: Vec<String>,
    #[arg(long)]
    commit_deadline: String,
    #[arg(long)]
    apply_start: String,
    #[arg(long)]
    apply_end: String,
    #[arg(long)]
    reveal_end: String,
    /// End of the winners' purchase window.
    #[arg(long)]
    purchase_end: String,
    /// End of the waiting list's window; first come after it.
    #[arg(long)]
    waiting_end: String,
}

/// `operator lottery-apply`: apply on a resident's (or a family member's) behalf.
#[derive(clap::Args)]
pub(crate) struct OperatorApplyArgs {
    /// Your own (the operator's) card number.
    #[arg(long)]
    card: String,
    /// The applicant's card number.
    #[arg(long)]
    resident_card: String,
    #[arg(long)]
    issue: u32,
    #[arg(long)]
    sets: u32,
}

pub(crate) async fn run(ctx: &Ctx, command: LotteryCommand) -> Result<(), Failure> {
    match command {
        LotteryCommand::Commit(a) => commit(ctx, a).await,
        LotteryCommand::Reveal(a) => reveal(ctx, a).await,
        LotteryCommand::Draw(a) => draw(ctx, a).await,
        LotteryCommand::Apply { card, issue, sets } => {
            let wallet = unlock(ctx, &card)?;
            apply(ctx, &wallet.key, wallet.account(), issue, sets).await
        }
        LotteryCommand::Result { card, issue } => {
            let wallet = unlock(ctx, &card)?;
            let reader = ctx.reading_as(&wallet.key, "lottery result");
            let entry = reader.lottery_entry(issue, &wallet.account()).await?;
            ctx.print(json!(entry), &describe(ctx, &entry));
            Ok(())
        }
    }
}

pub(crate) async fn operator_apply(ctx: &Ctx, a: OperatorApplyArgs) -> Result<(), Failure> {
    let operator = unlock(ctx, &a.card)?;
    let resident = ctx.store.account(&CardNumber::parse(&a.resident_card)?)?;
    apply(ctx, &operator.key, resident, a.issue, a.sets).await
}

async fn apply(
    ctx: &Ctx,
    key: &machi_ledger::SigningKey,
    resident: machi_ledger::AccountId,
    issue: u32,
    sets: u32,
) -> Result<(), Failure> {
    if sets == 0 {
        return Err(user(ctx.t("セット数は1以上です", "sets must be at least 1")));
    }
    let result = ctx.submit(key, Action::ApplyLottery { issue, resident, sets }).await?;
    let text = format!(
        "{} {sets} {}",
        ctx.t("申し込みました:", "Applied for"),
        ctx.t(
            "セット(抽選の結果は抽選後に lottery result で見られます)",
            "set(s) (see `lottery result` after the draw)"
        )
    );
    ctx.print(json!({ "issue": issue, "resident": resident, "sets": sets, "tx_id": result.tx_id }), &text);
    Ok(())
}

fn secret_path(ctx: &Ctx, issue: u32, party: &machi_ledger::AccountId) -> PathBuf {
    ctx.store.dir().join(format!("lottery-{issue}-{party}.secret"))
}

async fn commit(ctx: &Ctx, a: PartyArgs) -> Result<(), Failure> {
    let wallet = unlock(ctx, &a.card)?;
    let path = secret_path(ctx, a.issue, &wallet.account());
    // An existing secret is never replaced: its commitment may already be on the chain.
    let secret = match fs::read_to_string(&path) {
        Ok(text) => {
            text.trim().parse::<Hash32>().map_err(|_| user(format!("{}: not a secret", path.display())))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (secret, _) = machi_client::lottery_secret();
            let mut file =
                fs::OpenOptions::new().write(true).create_new(true).mode(SECRET_FILE_MODE).open(&path)?;
            file.write_all(secret.to_hex().as_bytes())?;
            file.sync_all()?;
            fs::File::open(ctx.store.dir())?.sync_all()?;
            secret
        }
        Err(e) => return Err(e.into()),
    };
    let commitment = machi_ledger::sha256(&secret.0);
    let result = ctx.submit(&wallet.key, Action::CommitLotterySecret { issue: a.issue, commitment }).await?;
    let text = format!(
        "{}: {}\n{}: {}",
        ctx.t("コミットしました", "Committed"),
        commitment,
        ctx.t("秘密は公開まで保管してください", "Keep the secret until the reveal"),
        path.display()
    );
    ctx.print(
        json!({ "issue": a.issue, "commitment": commitment, "secret_file": path, "tx_id": result.tx_id }),
        &text,
    );
    Ok(())
}

async fn reveal(ctx: &Ctx, a: PartyArgs) -> Result<(), Failure> {
    let wallet = unlock(ctx, &a.card)?;
    let path = secret_path(ctx, a.issue, &wallet.account());
    let text = fs::read_to_string(&path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let secret =
        text.trim().parse::<Hash32>().map_err(|_| user(format!("{}: not a secret", path.display())))?;
    let result = ctx.submit(&wallet.key, Action::RevealLotterySecret { issue: a.issue, secret }).await?;
    ctx.print(
        json!({ "issue": a.issue, "tx_id": result.tx_id }),
        ctx.t("秘密を公開しました", "Secret revealed"),
    );
    Ok(())
}

async fn draw(ctx: &Ctx, a: PartyArgs) -> Result<(), Failure> {
    let wallet = unlock(ctx, &a.card)?;
    let result = ctx.submit(&wallet.key, Action::DrawLottery { issue: a.issue }).await?;
    // The public view: the seed and the counts (who won is each resident's to read).
    let view = ctx.client.lottery(a.issue).await?;
    let d = view.draw.as_ref().ok_or_else(|| user("the draw is not on record"))?;
    let text = format!(
        "{}: seed {}\n{} {} / {} {} / {} {}",
        ctx.t("抽選しました", "Drawn"),
        d.seed,
        ctx.t("当選", "winners"),
        d.winners_count,
        ctx.t("補欠", "waiting list"),
        d.waiting_list_count,
        ctx.t("当選セット", "sets won"),
        d.sets_won
    );
    ctx.print(json!({ "issue": a.issue, "tx_id": result.tx_id, "draw": d }), &text);
    Ok(())
}

pub(crate) async fn set_lottery(ctx: &Ctx, a: SetLotteryArgs) -> Result<(), Failure> {
    let parties = a.parties.iter().map(|p| account_id(p)).collect::<Result<Vec<_>, _>>()?;
    let lottery = LotteryParams {
        parties,
        commit_deadline_ms: jst_minute(&a.commit_deadline)?,
        apply_start_ms: jst_minute(&a.apply_start)?,
        apply_end_ms: jst_minute(&a.apply_end)?,
        reveal_end_ms: jst_minute(&a.reveal_end)?,
        purchase_end_ms: jst_minute(&a.purchase_end)?,
        waiting_end_ms: jst_minute(&a.waiting_end)?,
    };
    let l = &lottery;
    let order = [
        l.commit_deadline_ms <= l.apply_start_ms,
        l.apply_start_ms < l.apply_end_ms,
        l.apply_end_ms < l.reveal_end_ms,
        l.reveal_end_ms < l.purchase_end_ms,
        l.purchase_end_ms <= l.waiting_end_ms,
    ];
    if order.contains(&false) {
        return Err(user(ctx.t(
            "時刻の順序: コミット締切 ≤ 申込開始 < 申込終了 < 公開終了 < 当選者購入終了 ≤ 補欠購入終了",
            "times must be in order: commit-deadline <= apply-start < apply-end < reveal-end < purchase-end <= waiting-end",
        )));
    }
    let mut seen = l.parties.clone();
    seen.sort();
    seen.dedup();
    if seen.len() != l.parties.len() {
        return Err(user(ctx.t("同じ当事者が二度あります", "a party is named twice")));
    }
    let town = unlock(ctx, &a.card)?;
    let result = ctx.submit(&town.key, Action::SetLottery { issue: a.issue, lottery }).await?;
    ctx.print(
        json!({ "issue": a.issue, "tx_id": result.tx_id }),
        ctx.t("抽選販売を設定しました", "Lottery set"),
    );
    Ok(())
}

/// `YYYY-MM-DD HH:MM` (or `YYYY-MM-DDTHH:MM`) in JST, as milliseconds since the epoch.
fn jst_minute(text: &str) -> Result<u64, Failure> {
    let bad = || user(format!("{text}: expected YYYY-MM-DD HH:MM (JST)"));
    let (day, time) = text.trim().split_once([' ', 'T']).ok_or_else(bad)?;
    let (h, m) = time.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    let start = machi_ledger::time::start_of_day_jst_ms(day).ok_or_else(bad)?;
    Ok(start + (h * 60 + m) * MINUTE_MS)
}

/// A resident's result in plain words, and how to check it.
pub(crate) fn describe(ctx: &Ctx, e: &LotteryEntryView) -> String {
    let mut lines = vec![headline(ctx.lang, e)];
    if let Some(n) = e.can_buy_now.filter(|n| *n > 0) {
        lines.push(format!(
            "{} {n} {}",
            ctx.t("いま買えるのは", "You can buy"),
            ctx.t("セットです", "set(s) now")
        ));
    }
    if let Some(seed) = e.seed {
        lines.push(format!("seed: {seed}"));
        lines.push(ctx.t(
            "確かめ方: docs/FORMAT.md「Lottery draw」の計算、または machi-node verify で誰でも再計算できます。",
            "To check: anyone can recompute it (docs/FORMAT.md \"Lottery draw\", or machi-node verify).",
        ).to_string());
    }
    lines.join("\n")
}

/// 当選 N セット / 落選 / 補欠 M 番目 / 申込済み / 申込なし.
pub(crate) fn headline(lang: crate::Lang, e: &LotteryEntryView) -> String {
    let ja = lang == crate::Lang::Ja;
    match e.status {
        LotteryStatus::NotApplied => (if ja { "申し込みはありません" } else { "No application" }).to_string(),
        LotteryStatus::Applied => {
            let n = e.applied_sets.unwrap_or(0);
            if ja {
                format!("{n} セット申込済み(抽選前)")
            } else {
                format!("Applied for {n} set(s) (not drawn yet)")
            }
        }
        LotteryStatus::Won => {
            let n = e.won_sets.unwrap_or(0);
            if ja {
                format!("当選 {n} セット")
            } else {
                format!("Won {n} set(s)")
            }
        }
        LotteryStatus::Waiting => match e.waiting_allotted {
            Some(0) => (if ja { "落選" } else { "Not drawn" }).to_string(),
            Some(n) => {
                if ja {
                    format!("補欠から {n} セット買えます")
                } else {
                    format!("From the waiting list: {n} set(s)")
                }
            }
            None => {
                let m = e.waiting_position.unwrap_or(0);
                if ja {
                    format!("補欠 {m} 番目")
                } else {
                    format!("Waiting list, number {m}")
                }
            }
        },
    }
}
