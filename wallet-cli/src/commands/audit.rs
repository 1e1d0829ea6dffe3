//! `audit …`: what the town and its auditors (the bank's, the town assembly's) read of
//! everyone — one account, the whole chain as an export file, the node's access log —
//! each read made with their card's key and the reason they give (`--why`), which the
//! node writes in its access log with who read what (docs/PRIVACY.md).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use machi_client::Client;
use machi_ledger::read_auth::{PURPOSE_BYTES_MAX, PURPOSE_CHARS_MIN};
use machi_ledger::AccountId;
use serde_json::json;

use super::{account_id, unlock};
use crate::ctx::{user, Ctx, Failure};
use crate::text::explain;

/// Most entries of the access log one `audit access-log` shows.
const ACCESS_LOG_ROWS_MAX: u64 = machi_api::ACCESS_LOG_ENTRIES_MAX as u64;

#[derive(clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// One account as the town or an auditor sees it: role, balances and every
    /// transaction. Asks for your card's PIN; the reason is logged by the node.
    ///
    /// Example: machi-wallet audit account 3f…a1 --card 1234-5678-9 --why "開示請求 2027-014"
    Account {
        /// The account to read (64 hex digits).
        account: String,
        #[command(flatten)]
        reader: ReaderArgs,
    },
    /// The whole chain, block by block from the node, written as an export file
    /// exactly as `machi-node export` writes it: check it with `machi-node verify FILE`.
    ///
    /// Example: machi-wallet audit export --card 1234-5678-9 --why "年次監査 2027" --out chain.jsonl
    Export {
        #[command(flatten)]
        reader: ReaderArgs,
        /// The file to write (it appears whole, or not at all).
        #[arg(long, default_value = "chain.jsonl")]
        out: PathBuf,
    },
    /// The node's access log: every read of the town, its auditors and its services —
    /// who, why, what, and the answer — oldest first. Each replica keeps its own (give
    /// one replica with --node). Reading it is logged too.
    ///
    /// Example: machi-wallet audit access-log --card 1234-5678-9 --why "月次点検"
    AccessLog {
        #[command(flatten)]
        reader: ReaderArgs,
        /// Show the entries after this number (0: from the first).
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=ACCESS_LOG_ROWS_MAX))]
        limit: u64,
    },
}

/// Who reads, and why.
#[derive(clap::Args)]
pub(crate) struct ReaderArgs {
    /// Your card: the town's, or an auditor's (registered with `town register-delegate
    /// --delegation auditor`).
    #[arg(long)]
    card: String,
    /// Why you read this, in a few words (a case number, "annual audit 2027"): needed,
    /// and written in the node's access log with your name and what you read.
    #[arg(long)]
    why: Option<String>,
}

pub(crate) async fn run(ctx: &Ctx, command: AuditCommand) -> Result<(), Failure> {
    match command {
        AuditCommand::Account { account, reader } => {
            let id = account_id(&account)?;
            let client = reader_client(ctx, &reader)?;
            show_account(ctx, &client, &id).await
        }
        AuditCommand::Export { reader, out } => {
            let client = reader_client(ctx, &reader)?;
            export(ctx, &client, &out).await
        }
        AuditCommand::AccessLog { reader, after, limit } => {
            let client = reader_client(ctx, &reader)?;
            access_log(ctx, &client, after, limit).await
        }
    }
}

/// The reason given with `--why`, checked as the node checks it: at least
/// `PURPOSE_CHARS_MIN` characters, at most `PURPOSE_BYTES_MAX` bytes. Refused before any
/// PIN is asked.
pub(crate) fn why(ctx: &Ctx, why: Option<&str>) -> Result<String, Failure> {
    let why = why.map(str::trim).unwrap_or_default();
    if why.chars().count() < PURPOSE_CHARS_MIN {
        return Err(user(ctx.t(
            "なぜ読むのかを --why で書いてください（4文字以上。例: --why \"開示請求 2027-014\"）。理由は、読んだ人と読んだものと一緒にノードのアクセス記録に残ります。",
            "say why you read this with --why (at least 4 characters, e.g. --why \"disclosure request 2027-014\"); the node records it in its access log with who read what",
        )));
    }
    if why.len() > PURPOSE_BYTES_MAX {
        return Err(user(ctx.t(
            "--why が長すぎます（200バイトまで。日本語なら66文字ほど）",
            "--why is too long (at most 200 bytes)",
        )));
    }
    Ok(why.to_string())
}

/// The node's client reading as the card, with the reason (checked before the PIN).
fn reader_client(ctx: &Ctx, reader: &ReaderArgs) -> Result<Client, Failure> {
    let why = why(ctx, reader.why.as_deref())?;
    let wallet = unlock(ctx, &reader.card)?;
    Ok(ctx.reading_as(&wallet.key, &why))
}

async fn show_account(ctx: &Ctx, client: &Client, id: &AccountId) -> Result<(), Failure> {
    let view = client.account(id).await?;
    let mut lines = vec![
        format!("{}: {}", ctx.t("口座", "Account"), view.id),
        format!("{}: {} {}", ctx.t("種別", "Role"), view.role, view.name),
        format!("{}: {}", ctx.t("残高の合計", "Total"), view.total),
    ];
    if view.frozen {
        lines.push(ctx.t("凍結されています", "Frozen").to_string());
    }
    if let Some(new) = view.replaced_by {
        lines.push(format!("{}: {new}", ctx.t("再発行後の口座", "Replaced by")));
    }
    for b in &view.balances {
        lines.push(format!(
            "  {} {} {}  {} {}",
            ctx.t("発行回", "issue"),
            b.issue,
            crate::text::kind(ctx.lang, b.kind),
            b.amount,
            b.spend_until_jst
        ));
    }
    lines.push(format!("{} ({})", ctx.t("取引", "Transactions"), view.history.len()));
    for h in &view.history {
        let why = h.reason.map(|code| format!("  {}", explain(ctx.lang, code))).unwrap_or_default();
        lines.push(format!(
            "  {}  {:<18} {:?}  {}{why}",
            machi_ledger::time::format_jst(h.timestamp_ms),
            h.kind,
            h.status,
            h.tx_id
        ));
    }
    ctx.print(json!(view), &lines.join("\n"));
    Ok(())
}

/// Every block from 0 to the head, as one JSON line each (docs/FORMAT.md "Export"),
/// written beside `out` and renamed into place once whole and synced. Each block must
/// follow the one before it (its height, its previous hash), so an answer from another
/// chain or a replica that changed its mind mid-way is refused rather than written.
async fn export(ctx: &Ctx, client: &Client, out: &Path) -> Result<(), Failure> {
    let head = client.head().await?;
    let partial = out.with_extension("partial");
    let written = write_blocks(client, head.height, &partial).await;
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, out).map_err(|e| user(format!("{}: {e}", out.display())))?;
    let blocks = head.height + 1;
    ctx.print(
        json!({ "export": out, "blocks": blocks, "height": head.height, "head_hash": head.hash, "chain_id": head.chain_id }),
        &format!(
            "{} {blocks} {} {}\n{}: {}\n{}: machi-node verify {} --expect-head {}:{}",
            ctx.t("書き出しました:", "Exported"),
            ctx.t("ブロック →", "blocks to"),
            out.display(),
            ctx.t("先頭ブロックのハッシュ", "Head block hash"),
            head.hash,
            ctx.t("検証", "Verify"),
            out.display(),
            head.height,
            head.hash
        ),
    );
    Ok(())
}

async fn write_blocks(client: &Client, head: u64, path: &Path) -> Result<(), Failure> {
    let io = |e: std::io::Error| user(format!("{}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(io)?;
    let mut writer = std::io::BufWriter::new(file);
    let mut prev: Option<machi_api::BlockView> = None;
    for height in 0..=head {
        let block = client.block(height).await?;
        let follows = match &prev {
            None => block.height == 0,
            Some(p) => block.height == height && block.prev_hash == p.hash && block.chain_id == p.chain_id,
        };
        if !follows {
            return Err(user(format!(
                "block {height}: the node's answer does not follow block {} (height {}, previous hash {})",
                height.saturating_sub(1),
                block.height,
                block.prev_hash
            )));
        }
        serde_json::to_writer(&mut writer, &block).map_err(|e| io(e.into()))?;
        writer.write_all(b"\n").map_err(io)?;
        prev = Some(block);
    }
    writer.flush().map_err(io)?;
    writer.get_ref().sync_all().map_err(io)?;
    Ok(())
}

async fn access_log(ctx: &Ctx, client: &Client, after: u64, limit: u64) -> Result<(), Failure> {
    let limit = usize::try_from(limit).unwrap_or(machi_api::ACCESS_LOG_ENTRIES_MAX);
    let page = client.access_log(after, limit).await?;
    let lines: Vec<String> = page
        .entries
        .iter()
        .map(|e| {
            format!(
                "{:>6}  {}  {} ({}, {})  {} {} → {}\n        {}: {}",
                e.seq,
                machi_ledger::time::format_jst(e.time_ms),
                e.name,
                e.role.name(),
                e.account,
                e.method,
                e.path,
                e.status,
                ctx.t("理由", "why"),
                e.purpose
            )
        })
        .collect();
    let text = if lines.is_empty() {
        ctx.t("記録はありません", "No entries").to_string()
    } else {
        lines.join("\n")
    };
    ctx.print(json!(page), &text);
    Ok(())
}
