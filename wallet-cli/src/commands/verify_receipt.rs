//! `verify-receipt`: checks a receipt without the rest of the chain (docs/FORMAT.md,
//! "Checking a receipt"). The proof (from `--proof FILE`, or fetched from any replica)
//! must show: its block header hashes to the block hash the person trusts (`--block-hash`,
//! as the town publishes it, or else read from `--node`), the transaction id is in the
//! header's transaction root, its outcome record is in the outcome root, and the outcome
//! is "applied". Anything else is "not proven", with its own exit code.

use std::path::PathBuf;

use machi_api::{ProofCheck, TxProof};
use machi_client::{Client, ClientError};
use machi_ledger::{Hash32, TxId};
use serde_json::{json, Value};

use super::tx_id;
use crate::ctx::{user, Ctx, Failure};
use crate::receipt_code::ReceiptCode;
use crate::text::explain;

/// The receipt is not proven: the proof does not hold, names another block or
/// transaction, or says the transaction was not applied.
pub(crate) const EXIT_NOT_PROVEN: i32 = 6;

/// Flags of `verify-receipt`.
#[derive(clap::Args)]
pub(crate) struct VerifyReceiptArgs {
    /// The receipt: the kiosk's receipt file, or the text of its code
    /// (MACHI-RECEIPT:V1:<chain id>:<tx id>:<height>:<block hash>, as its QR code reads).
    #[arg(required_unless_present = "tx", conflicts_with = "tx")]
    receipt: Option<String>,
    /// Or the transaction id printed on the receipt.
    #[arg(long)]
    tx: Option<String>,
    /// With --tx: the block height printed on the receipt.
    #[arg(long, requires = "tx")]
    height: Option<u64>,
    /// With --tx: the block hash printed on the receipt.
    #[arg(long, requires = "tx")]
    receipt_block_hash: Option<String>,
    /// The block hash you trust, e.g. as the town publishes it. Without it, the block
    /// hash at the receipt's height is read from --trust-node, else from --node.
    #[arg(long)]
    block_hash: Option<String>,
    /// A replica you trust (the bank's, the auditor's) to read the block hash from,
    /// when it is not the one that serves the proof.
    #[arg(long, conflicts_with = "block_hash", value_parser = machi_client::node_list)]
    trust_node: Option<String>,
    /// The proof, as `GET /v1/transactions/{id}/proof` answers it (a JSON file); without
    /// it, the proof is fetched from --node (any replica).
    #[arg(long)]
    proof: Option<PathBuf>,
}

/// What the receipt says.
struct Claim {
    chain_id: Option<String>,
    tx_id: TxId,
    height: Option<u64>,
    block_hash: Option<Hash32>,
}

fn hash(text: &str, what: &str) -> Result<Hash32, Failure> {
    Hash32::from_hex(&text.trim().to_ascii_lowercase())
        .ok_or_else(|| user(format!("{what} is 64 hex digits")))
}

fn claim(ctx: &Ctx, args: &VerifyReceiptArgs) -> Result<Claim, Failure> {
    let Some(receipt) = &args.receipt else {
        let tx = args.tx.as_deref().expect("clap asks for a receipt or --tx");
        return Ok(Claim {
            chain_id: None,
            tx_id: tx_id(tx)?,
            height: args.height,
            block_hash: args
                .receipt_block_hash
                .as_deref()
                .map(|h| hash(h, "--receipt-block-hash"))
                .transpose()?,
        });
    };
    let path = std::path::Path::new(receipt);
    let code = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
        ReceiptCode::find(&text).ok_or_else(|| {
            user(format!(
                "{}: {}",
                path.display(),
                ctx.t(
                    "領収書の確認用コード（MACHI-RECEIPT:V1:…）がありません",
                    "holds no receipt code (MACHI-RECEIPT:V1:…)"
                )
            ))
        })?
    } else {
        ReceiptCode::parse(receipt).ok_or_else(|| {
            user(ctx.t(
                "領収書のファイルか、確認用コード（MACHI-RECEIPT:V1:…）を入れてください",
                "give the receipt file, or its code (MACHI-RECEIPT:V1:…)",
            ))
        })?
    };
    Ok(Claim {
        chain_id: Some(code.chain_id),
        tx_id: code.tx_id,
        height: Some(code.height),
        block_hash: Some(code.block_hash),
    })
}

/// Where the trusted block hash came from.
enum Trust {
    Given,
    Node(String),
}

pub(crate) async fn run(ctx: &Ctx, args: VerifyReceiptArgs) -> Result<(), Failure> {
    let claim = claim(ctx, &args)?;
    let proof = proof(ctx, &args, &claim).await?;
    let (trusted, trust) = trusted_hash(&args, ctx, &claim, &proof).await?;
    let check = proof.check(&claim.tx_id, &trusted);
    let mismatch = receipt_mismatch(ctx, &claim, &proof, &trusted);
    let trusted_from = match &trust {
        Trust::Given => "given".to_string(),
        Trust::Node(url) => url.clone(),
    };
    let mut report = json!({
        "tx_id": claim.tx_id,
        "chain_id": proof.header.chain_id,
        "height": proof.header.height,
        "block_hash": proof.block_hash,
        "trusted_block_hash": trusted,
        "trusted_from": trusted_from,
        "receipt_matches": mismatch.is_none(),
        "checks": check_json(&check),
        "outcome": { "status": proof.outcome.status, "reason_code": proof.outcome.reason_code,
                     "reason": proof.outcome.reason },
    });
    if !ctx.json {
        println!("{}", steps(ctx, &claim, &proof, &check, &trusted, &trust, mismatch.is_none()));
        if mismatch.is_some() || !check.proven() {
            println!("{}", ctx.t("結果: 確かめられませんでした。", "Verdict: not proven."));
        }
    }
    if let Some(why) = mismatch {
        return Err(not_proven(ctx, &claim, Some(report), Some(&check), why.to_string()));
    }
    if !check.proven() {
        let why = reason(ctx, &proof, &check);
        return Err(not_proven(ctx, &claim, Some(report), Some(&check), why));
    }
    report["verdict"] = "proven".into();
    let verdict = ctx.t(
        "結果: 確かめられました。この取引は町の記録に入っていて、成立しています。",
        "Verdict: proven. This transaction is on the town's record, applied.",
    );
    ctx.print(report, verdict);
    Ok(())
}

/// The proof from `--proof`, else from the node; a transaction the node does not know
/// is not proven.
async fn proof(ctx: &Ctx, args: &VerifyReceiptArgs, claim: &Claim) -> Result<TxProof, Failure> {
    if let Some(file) = &args.proof {
        let text = std::fs::read(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
        return serde_json::from_slice(&text).map_err(|e| user(format!("{}: {e}", file.display())));
    }
    match ctx.client.proof(&claim.tx_id).await {
        Ok(proof) => Ok(proof),
        Err(ClientError::Api { status: 404, .. }) => {
            let why = ctx.t(
                "ノードはこの取引を知りません（まだ記録されていないか、取引IDのまちがいです）",
                "the node does not know this transaction (not recorded yet, or a wrong id)",
            );
            Err(not_proven(ctx, claim, None, None, why.to_string()))
        }
        Err(e) => Err(Failure::from(e)),
    }
}

/// The block hash to trust: given, or the hash of the block at the receipt's height as
/// `--trust-node` (else `--node`) serves it in its public headers.
async fn trusted_hash(
    args: &VerifyReceiptArgs,
    ctx: &Ctx,
    claim: &Claim,
    proof: &TxProof,
) -> Result<(Hash32, Trust), Failure> {
    if let Some(text) = &args.block_hash {
        return Ok((hash(text, "--block-hash")?, Trust::Given));
    }
    let trusted = match &args.trust_node {
        Some(url) => Client::new(url),
        None => ctx.client.clone(),
    };
    // The block's header as the trusted replica has it (headers are public).
    let height = claim.height.unwrap_or(proof.header.height);
    let header = trusted.headers(height, height).await?.headers.into_iter().find(|h| h.height == height);
    let header = header.ok_or_else(|| {
        user(format!(
            "{} {height}",
            ctx.t(
                "信頼するノードに、まだこの高さのブロックがありません:",
                "the trusted node has no block yet at height"
            )
        ))
    })?;
    Ok((header.hash, Trust::Node(trusted.base().to_string())))
}

/// What the receipt itself says must name the proof's block and the trusted one.
fn receipt_mismatch<'a>(ctx: &'a Ctx, claim: &Claim, proof: &TxProof, trusted: &Hash32) -> Option<&'a str> {
    if claim.chain_id.as_ref().is_some_and(|c| *c != proof.header.chain_id) {
        Some(ctx.t("領収書の町（チェーン）が、証明のものとちがいます", "the receipt is for another chain"))
    } else if claim.height.is_some_and(|h| h != proof.header.height) {
        Some(
            ctx.t(
                "領収書のブロックの高さが、証明のものとちがいます",
                "the receipt names another block height",
            ),
        )
    } else if claim.block_hash.is_some_and(|h| h != *trusted) {
        Some(ctx.t(
            "領収書のブロックハッシュが、信頼するブロックハッシュとちがいます",
            "the receipt's block hash is not the trusted block hash",
        ))
    } else {
        None
    }
}

fn check_json(check: &ProofCheck) -> Value {
    json!({
        "header_matches": check.header_matches,
        "tx_included": check.tx_included,
        "outcome_included": check.outcome_included,
        "applied": check.applied,
    })
}

/// The first check that failed, in plain words.
fn reason(ctx: &Ctx, proof: &TxProof, check: &ProofCheck) -> String {
    if !check.header_matches {
        ctx.t(
            "証明のブロックの中身が、信頼するブロックハッシュと一致しません",
            "the proof's block header does not hash to the trusted block hash",
        )
        .into()
    } else if !check.tx_included {
        ctx.t(
            "この取引が、そのブロックに入っていることを確かめられません",
            "the transaction is not proven to be in that block",
        )
        .into()
    } else if !check.outcome_included {
        ctx.t(
            "取引の結果の記録を、そのブロックで確かめられません",
            "the outcome record is not proven to be in that block",
        )
        .into()
    } else {
        let why = proof.outcome.reason.map(|code| explain(ctx.lang, code).to_string()).unwrap_or_default();
        match ctx.lang {
            crate::Lang::Ja => format!("この取引は記録されていますが、成立していません（{why}）"),
            crate::Lang::En => format!("the transaction is on record but was not applied ({why})"),
        }
    }
}

fn not_proven(
    ctx: &Ctx,
    claim: &Claim,
    report: Option<Value>,
    check: Option<&ProofCheck>,
    why: String,
) -> Failure {
    let mut details = report.unwrap_or_else(|| json!({ "tx_id": claim.tx_id }));
    details["verdict"] = "not_proven".into();
    if let Some(check) = check {
        details["checks"] = check_json(check);
    }
    let message = match ctx.lang {
        crate::Lang::Ja => format!("領収書を確かめられませんでした（{why}）"),
        crate::Lang::En => format!("the receipt is not proven: {why}"),
    };
    Failure { code: EXIT_NOT_PROVEN, kind: "not_proven", message, details }
}

/// Each check, one a line, for people: what holds (✔), what does not (✘), and what was
/// not checked because the block is not the trusted one (－).
fn steps(
    ctx: &Ctx,
    claim: &Claim,
    proof: &TxProof,
    check: &ProofCheck,
    trusted: &Hash32,
    trust: &Trust,
    receipt_matches: bool,
) -> String {
    let from = match trust {
        Trust::Given => ctx.t("指定されたもの（--block-hash）", "given (--block-hash)").to_string(),
        Trust::Node(url) => match ctx.lang {
            crate::Lang::Ja => format!("ノード {url} から読んだもの"),
            crate::Lang::En => format!("read from the node {url}"),
        },
    };
    let mut lines = vec![
        ctx.t("領収書の確認", "Checking a receipt").to_string(),
        format!("  {}: {}", ctx.t("取引ID          ", "transaction id  "), claim.tx_id),
        format!("  {}: {}", ctx.t("ブロックの高さ  ", "block height    "), proof.header.height),
        format!("  {}: {trusted}", ctx.t("信頼するハッシュ", "trusted hash    ")),
        format!("  {}  {from}", " ".repeat(16)),
        String::new(),
    ];
    lines.extend(checks(ctx, proof, check, receipt_matches));
    lines.join("\n")
}

/// The checks' lines; after a block that is not the trusted one, none but that.
fn checks(ctx: &Ctx, proof: &TxProof, check: &ProofCheck, receipt_matches: bool) -> Vec<String> {
    let line = |ok: bool, yes: (&str, &str), no: (&str, &str)| {
        if ok {
            format!("  ✔ {}", ctx.t(yes.0, yes.1))
        } else {
            format!("  ✘ {}", ctx.t(no.0, no.1))
        }
    };
    let mut lines = vec![
        line(
            receipt_matches,
            ("領収書の内容が、そのブロックをさしています", "the receipt names that block"),
            ("領収書の内容が、そのブロックとちがいます", "the receipt names another block"),
        ),
        line(
            check.header_matches,
            (
                "ブロックの中身が、信頼するブロックハッシュと一致しました",
                "the block header hashes to the trusted block hash",
            ),
            (
                "ブロックの中身が、信頼するブロックハッシュと一致しません",
                "the block header does not hash to the trusted block hash",
            ),
        ),
    ];
    if !check.header_matches {
        lines.push(format!(
            "  － {}",
            ctx.t(
                "信頼できるブロックではないため、取引と結果は確かめていません",
                "not the trusted block: the transaction and its outcome were not checked"
            )
        ));
        return lines;
    }
    lines.push(line(
        check.tx_included,
        ("取引が、そのブロックに記録されています", "the transaction is in that block"),
        (
            "取引が、そのブロックに記録されていることを確かめられません",
            "the transaction is not proven to be in that block",
        ),
    ));
    lines.push(line(
        check.outcome_included,
        ("取引の結果が、そのブロックに記録されています", "its outcome is recorded in that block"),
        (
            "取引の結果の記録を、そのブロックで確かめられません",
            "its outcome is not proven to be in that block",
        ),
    ));
    let why = proof.outcome.reason.map(|code| explain(ctx.lang, code).to_string()).unwrap_or_default();
    lines.push(line(
        check.applied,
        ("結果: 成立（取引は完了しています）", "outcome: applied (the transaction went through)"),
        ("結果: 不成立 —", "outcome: not applied —"),
    ));
    if !check.applied {
        let last = lines.last_mut().expect("just pushed");
        last.push(' ');
        last.push_str(&why);
    }
    lines
}
