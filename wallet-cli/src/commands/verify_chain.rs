//! `verify-chain`: what a citizen can check without logging in (docs/AUDIT.md, "What a
//! citizen can check without logging in"). From each replica named with `--node` it reads
//! the replica's signed attestation and its supply report, then the public headers from
//! genesis (or from `--from` with a trusted `--block-hash`) up to the highest attested
//! height, and checks:
//! - each attestation is signed by the key the chain lists for that replica (the replica
//!   set every replica reports must be the same, and the keys the town publishes, given
//!   with `--replica-key`, must be the keys listed);
//! - every header hashes to its hash, is signed by its producer, a replica's key, and
//!   links to the one before: one chain;
//! - every replica's attested head is a block of that chain (the lower heads are
//!   ancestors of the highest: no fork, no rewrite);
//! - each supply report hashes to the digest its replica signed, and replicas at the same
//!   height attest the same block and the same digest.
//!
//! Anything else is "not verified", with its own exit code.

use std::collections::BTreeMap;
use std::time::Duration;

use machi_api::{AttestationView, AttestedReplica, HeadersView, SupplyReport};
use machi_ledger::{AccountId, Hash32};
use serde_json::{json, Value};

use crate::ctx::{user, Ctx, Failure, EXIT_UNREACHABLE};

/// The chain is not verified: a signature, a hash, a link, a supply report or an
/// agreement between replicas does not hold, or a replica named could not be read.
pub(crate) const EXIT_NOT_VERIFIED: i32 = 7;
/// Longest wait for one answer of one replica.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `verify-chain` (the replicas are the global `--node`, repeated or separated
/// by commas).
#[derive(clap::Args)]
pub(crate) struct VerifyChainArgs {
    /// Check the headers from this height instead of genesis; needs --block-hash, the
    /// hash you trust at that height (e.g. from your last check, or the town's notice).
    #[arg(long, requires = "block_hash")]
    from: Option<u64>,
    /// With --from: the block hash you trust at that height.
    #[arg(long, requires = "from")]
    block_hash: Option<String>,
    /// A replica's key as the town publishes it on its notice board, `ID=KEY` (64 hex
    /// digits); repeat for each. The keys the replicas report must be these; a retired
    /// replica's key given here is accepted as the producer of its old blocks.
    #[arg(long = "replica-key", value_name = "ID=KEY")]
    replica_keys: Vec<String>,
}

/// What one replica answered.
struct Replica {
    url: String,
    attestation: AttestationView,
    supply: SupplyReport,
}

/// The problems found, by the check they fail.
#[derive(Default)]
struct Problems {
    reached: Vec<String>,
    keys: Vec<String>,
    headers: Vec<String>,
    linked: Vec<String>,
    supply: Vec<String>,
    agree: Vec<String>,
}

impl Problems {
    /// Every problem once, in the order of the checks.
    fn all(&self) -> Vec<&String> {
        let mut all: Vec<&String> = Vec::new();
        for problem in [&self.reached, &self.keys, &self.headers, &self.linked, &self.supply, &self.agree]
            .into_iter()
            .flatten()
        {
            if !all.contains(&problem) {
                all.push(problem);
            }
        }
        all
    }
}

fn ja_en(ctx: &Ctx, ja: String, en: String) -> String {
    match ctx.lang {
        crate::Lang::Ja => ja,
        crate::Lang::En => en,
    }
}

fn parse_anchors(texts: &[String]) -> Result<BTreeMap<u64, AccountId>, Failure> {
    let mut anchors = BTreeMap::new();
    for text in texts {
        let parsed = text.split_once('=').and_then(|(id, key)| {
            Some((id.trim().parse::<u64>().ok()?, key.trim().to_ascii_lowercase().parse::<AccountId>().ok()?))
        });
        let (id, key) =
            parsed.ok_or_else(|| user(format!("--replica-key {text:?} is not ID=KEY (64 hex digits)")))?;
        if anchors.insert(id, key).is_some() {
            return Err(user(format!("--replica-key names replica {id} twice")));
        }
    }
    Ok(anchors)
}

async fn fetch<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, String> {
    let response = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {status}"));
    }
    response.json().await.map_err(|e| e.to_string())
}

pub(crate) async fn run(ctx: &Ctx, args: VerifyChainArgs) -> Result<(), Failure> {
    let anchors = parse_anchors(&args.replica_keys)?;
    let trusted = match &args.block_hash {
        Some(text) => Some(
            Hash32::from_hex(&text.trim().to_ascii_lowercase())
                .ok_or_else(|| user("--block-hash is 64 hex digits"))?,
        ),
        None => None,
    };
    let from = args.from.unwrap_or(0);
    let http = reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build().map_err(|e| Failure {
        code: 1,
        kind: "http",
        message: e.to_string(),
        details: Value::Null,
    })?;
    let mut problems = Problems::default();

    // Each replica's attestation and supply report.
    let mut replicas = Vec::new();
    for url in ctx.client.nodes() {
        let attestation = fetch::<AttestationView>(&http, &format!("{url}/v1/attestation")).await;
        let supply = fetch::<SupplyReport>(&http, &format!("{url}/v1/supply")).await;
        match (attestation, supply) {
            (Ok(attestation), Ok(supply)) => replicas.push(Replica { url: url.clone(), attestation, supply }),
            (Err(e), _) | (_, Err(e)) => problems.reached.push(ja_en(
                ctx,
                format!("{url} から読めませんでした（{e}）"),
                format!("could not read from {url} ({e})"),
            )),
        }
    }
    // Replicas are compared at one height: one behind the highest is asked again once
    // it has applied that block (`?min_height=`, which a replica waits up to 10 s for).
    let highest = replicas.iter().map(|r| r.attestation.height.max(r.supply.height)).max().unwrap_or(0);
    for r in replicas.iter_mut().filter(|r| r.attestation.height < highest || r.supply.height < highest) {
        let attestation =
            fetch::<AttestationView>(&http, &format!("{}/v1/attestation?min_height={highest}", r.url)).await;
        let supply = fetch::<SupplyReport>(&http, &format!("{}/v1/supply?min_height={highest}", r.url)).await;
        if let (Ok(attestation), Ok(supply)) = (attestation, supply) {
            (r.attestation, r.supply) = (attestation, supply);
        }
    }
    if replicas.is_empty() {
        let message = ctx.t("どのレプリカからも読めませんでした", "no replica could be read");
        let details = json!({ "verdict": "unreachable", "problems": problems.all() });
        return Err(Failure {
            code: EXIT_UNREACHABLE,
            kind: "unreachable",
            message: message.into(),
            details,
        });
    }
    let chain_id = replicas[0].attestation.chain_id.clone();
    // Every statement a replica signed: its attestation, and the one its report carries.
    let statements: Vec<(&str, &AttestationView)> = replicas
        .iter()
        .flat_map(|r| [(r.url.as_str(), &r.attestation), (r.url.as_str(), &r.supply.attestation)])
        .collect();
    for (url, a) in &statements {
        if a.chain_id != chain_id {
            problems.agree.push(ja_en(
                ctx,
                format!("{url} は別のチェーン（{}）のものです", a.chain_id),
                format!("{url} is of another chain ({})", a.chain_id),
            ));
        }
    }

    // The replica set: every replica must report the same; the town's keys must be its keys.
    let top = statements.iter().map(|(_, a)| a.height).max().expect("a replica answered");
    let reference: &Vec<AttestedReplica> =
        &statements.iter().find(|(_, a)| a.height == top).expect("the highest").1.replicas;
    for (url, a) in &statements {
        if a.replicas != *reference {
            problems.keys.push(ja_en(
                ctx,
                format!("{url} の報告するレプリカの一覧が、ほかのレプリカのものとちがいます"),
                format!("{url} reports another replica set than the others"),
            ));
        }
    }
    let mut keys: BTreeMap<u64, AccountId> = reference.iter().map(|r| (r.id, r.key)).collect();
    for (id, key) in &anchors {
        match keys.get(id) {
            Some(listed) if listed != key => problems.keys.push(ja_en(
                ctx,
                format!("レプリカ {id} の鍵が、町の公表した鍵ではありません（{listed}）"),
                format!("replica {id}'s key is not the one the town publishes ({listed})"),
            )),
            Some(_) => {}
            None => {
                keys.insert(*id, *key);
            }
        }
    }

    // Each statement is signed by the key listed for its replica.
    for (url, a) in &statements {
        match keys.get(&a.replica).filter(|_| reference.iter().any(|r| r.id == a.replica)) {
            None => problems.keys.push(ja_en(
                ctx,
                format!("{url} のレプリカ {} は、レプリカの一覧にありません", a.replica),
                format!("{url}: replica {} is not in the replica set", a.replica),
            )),
            Some(listed) if *listed != a.key || !a.signed_by(listed) => problems.keys.push(ja_en(
                ctx,
                format!("{url}（レプリカ {}）の署名が、そのレプリカの鍵で確かめられません", a.replica),
                format!(
                    "{url} (replica {}): the signature does not verify with that replica's key",
                    a.replica
                ),
            )),
            Some(_) => {}
        }
    }

    // Each supply report hashes to the digest its replica signed for it.
    for r in &replicas {
        let s = &r.supply;
        let matches = s.digest() == Some(s.attestation.supply_digest)
            && s.chain_id == s.attestation.chain_id
            && s.height == s.attestation.height
            && s.block_hash == s.attestation.block_hash;
        if !matches {
            problems.supply.push(ja_en(
                ctx,
                format!("{} の発行残高の報告が、署名されたダイジェストと一致しません", r.url),
                format!("{}: the supply report does not hash to its signed digest", r.url),
            ));
        }
    }

    // Replicas at the same height attest the same block and the same supply.
    let mut by_height: BTreeMap<u64, (Hash32, Hash32, &str)> = BTreeMap::new();
    for (url, a) in &statements {
        let first = *by_height.entry(a.height).or_insert((a.block_hash, a.supply_digest, url));
        if (first.0, first.1) != (a.block_hash, a.supply_digest) {
            problems.agree.push(ja_en(
                ctx,
                format!("高さ {} で {} と {url} の内容がちがいます", a.height, first.2),
                format!("at height {}, {} and {url} attest different blocks or supply", a.height, first.2),
            ));
        }
    }

    // Each replica's headers from `from` to its attested height: hashes, signatures,
    // links, and the same block at each height as every other replica serves.
    let producers: Vec<AccountId> = keys.values().copied().collect();
    let mut order: Vec<&Replica> = replicas.iter().collect();
    order.sort_by_key(|r| std::cmp::Reverse(r.attestation.height));
    let mut chain: BTreeMap<u64, Hash32> = BTreeMap::new();
    if from > top {
        problems.headers.push(ja_en(
            ctx,
            format!("--from {from} は、どのレプリカの高さ（最高 {top}）よりも上です"),
            format!("--from {from} is above every replica's height (at most {top})"),
        ));
    }
    for r in order.iter().filter(|r| r.attestation.height >= from) {
        match headers(&http, &r.url, from, r.attestation.height).await {
            Err(e) => problems.reached.push(ja_en(
                ctx,
                format!("{} のブロックヘッダーを読めませんでした（{e}）", r.url),
                format!("could not read the block headers of {} ({e})", r.url),
            )),
            Ok(list) => {
                let range = (from, r.attestation.height);
                check_headers(
                    ctx,
                    &r.url,
                    &list,
                    &chain_id,
                    range,
                    trusted,
                    &producers,
                    &mut problems,
                    &mut chain,
                );
            }
        }
    }
    let checked = chain.len() as u64;

    // Every attested head is a block of that one chain.
    if !chain.is_empty() && problems.headers.is_empty() && problems.linked.is_empty() {
        for (url, a) in &statements {
            match chain.get(&a.height) {
                Some(hash) if *hash == a.block_hash => {}
                Some(_) => problems.linked.push(ja_en(
                    ctx,
                    format!(
                        "{url} の先頭（高さ {}）は、ほかのレプリカの記録の上にありません（分岐か書き換え）",
                        a.height
                    ),
                    format!(
                        "{url}'s head (height {}) is not on the others' chain: a fork or a rewrite",
                        a.height
                    ),
                )),
                None => problems.linked.push(ja_en(
                    ctx,
                    format!("{url} の先頭（高さ {}）は、確かめたヘッダーの範囲の外です", a.height),
                    format!("{url}'s head (height {}) is outside the headers checked", a.height),
                )),
            }
        }
    }

    let verified = problems.all().is_empty();
    let report = json!({
        "verdict": if verified { "verified" } else { "not_verified" },
        "chain_id": chain_id,
        "from": from,
        "to": top,
        "headers_checked": checked,
        "replicas": replicas.iter().map(|r| json!({
            "url": r.url,
            "replica": r.attestation.replica,
            "name": r.attestation.name,
            "key": r.attestation.key,
            "height": r.attestation.height,
            "block_hash": r.attestation.block_hash,
            "supply_digest": r.attestation.supply_digest,
        })).collect::<Vec<_>>(),
        "checks": {
            "reached": problems.reached.is_empty(),
            "keys": problems.keys.is_empty(),
            "headers": problems.headers.is_empty() && checked > 0,
            "linked": problems.linked.is_empty(),
            "supply": problems.supply.is_empty(),
            "agree": problems.agree.is_empty(),
        },
        "problems": problems.all(),
    });
    if !ctx.json {
        println!("{}", text(ctx, &chain_id, &replicas, &problems, from, top, checked));
    }
    if !verified {
        let first = problems.all()[0].clone();
        let message = ja_en(
            ctx,
            format!("町の記録を確かめられませんでした（{first}）"),
            format!("the chain is not verified: {first}"),
        );
        return Err(Failure { code: EXIT_NOT_VERIFIED, kind: "not_verified", message, details: report });
    }
    let verdict = ctx.t(
        "結果: 確かめられました。どのレプリカも同じ記録に署名し、記録は分岐も書き換えもなく、発行残高の報告は署名どおりです。",
        "Verdict: verified. Every replica signed the same chain, it did not fork or rewrite, and the supply \
         reports are as signed.",
    );
    ctx.print(report, verdict);
    Ok(())
}

/// The headers `from..=to` of one replica, page by page.
async fn headers(
    http: &reqwest::Client,
    url: &str,
    from: u64,
    to: u64,
) -> Result<(String, Vec<machi_api::HeaderView>), String> {
    let mut out = Vec::new();
    let mut chain_id = String::new();
    let mut next = from;
    while next <= to {
        let page: HeadersView = fetch(http, &format!("{url}/v1/headers?from={next}&to={to}")).await?;
        chain_id = page.chain_id;
        let Some(last) = page.headers.last() else {
            return Err(format!("no header at height {next}"));
        };
        if last.height < next || last.height > to {
            return Err(format!("asked for the headers from {next} to {to}, got up to {}", last.height));
        }
        next = last.height.checked_add(1).ok_or("a header at the largest height")?;
        out.extend(page.headers);
    }
    Ok((chain_id, out))
}

/// Checks each header's hash, signature and link, in order, and records the chain's
/// hashes by height.
#[allow(clippy::too_many_arguments)]
fn check_headers(
    ctx: &Ctx,
    url: &str,
    (served_chain, list): &(String, Vec<machi_api::HeaderView>),
    chain_id: &str,
    (from, to): (u64, u64),
    trusted: Option<Hash32>,
    producers: &[AccountId],
    problems: &mut Problems,
    chain: &mut BTreeMap<u64, Hash32>,
) {
    if served_chain != chain_id || !machi_ledger::chain_id_is_valid(chain_id) {
        problems.headers.push(ja_en(
            ctx,
            format!("{url} のヘッダーが別のチェーン（{served_chain}）のものです"),
            format!("{url}: the headers are of another chain ({served_chain})"),
        ));
        return;
    }
    let mut prev: Option<Hash32> = if from == 0 { Some(Hash32([0; 32])) } else { None };
    for (expected, h) in (from..=to).zip(list) {
        let fail = |ja: &str, en: &str| {
            ja_en(ctx, format!("{url} のブロック {expected}: {ja}"), format!("{url}, block {expected}: {en}"))
        };
        if h.height != expected {
            problems.headers.push(fail("高さが順になっていません", "the headers are not in height order"));
            return;
        }
        if h.header(chain_id).hash() != h.hash {
            problems
                .headers
                .push(fail("ヘッダーがそのハッシュになりません", "the header does not hash to its hash"));
            return;
        }
        let signed = h
            .signature_bytes()
            .is_some_and(|s| machi_ledger::verify_signature(&h.producer, &s, &h.hash.0).is_ok());
        if !signed {
            problems
                .headers
                .push(fail("作成者の署名が確かめられません", "the producer's signature does not verify"));
            return;
        }
        if !producers.contains(&h.producer) {
            problems.headers.push(fail(
                "レプリカの鍵ではない鍵で署名されています（引退したレプリカなら --replica-key で町の公表した鍵を）",
                "signed by a key that is no replica's (for a retired replica, give the town's published key with \
                 --replica-key)",
            ));
            return;
        }
        match prev {
            Some(prev) if h.prev_hash != prev => {
                problems
                    .linked
                    .push(fail("前のブロックにつながっていません", "does not link to the block before"));
                return;
            }
            None if trusted.is_some_and(|t| t != h.hash) => {
                problems.linked.push(fail(
                    "信頼するブロックハッシュ（--block-hash）と一致しません",
                    "is not the block hash you trust (--block-hash)",
                ));
                return;
            }
            _ => {}
        }
        if chain.get(&h.height).is_some_and(|other| *other != h.hash) {
            problems.linked.push(fail(
                "ほかのレプリカのブロックとちがいます（分岐か書き換え）",
                "is not the block other replicas serve there: a fork or a rewrite",
            ));
            return;
        }
        prev = Some(h.hash);
        chain.insert(h.height, h.hash);
    }
    if list.len() as u64 != to - from + 1 {
        problems.headers.push(ja_en(
            ctx,
            format!("{url} のヘッダーが {from}〜{to} のうち {} 個しかありません", list.len()),
            format!("{url} served only {} of the headers {from} to {to}", list.len()),
        ));
    }
}

/// The checks, one a line, for people: what holds (✔), what does not (✘, with why).
fn text(
    ctx: &Ctx,
    chain_id: &str,
    replicas: &[Replica],
    problems: &Problems,
    from: u64,
    top: u64,
    checked: u64,
) -> String {
    let mut lines = vec![
        ctx.t("町の記録の確認（ログインなし）", "Checking the town's chain (no login)").to_string(),
        format!("  {}: {chain_id}", ctx.t("チェーン", "chain")),
    ];
    for r in replicas {
        let a = &r.attestation;
        lines.push(ja_en(
            ctx,
            format!(
                "  レプリカ {}「{}」 {}: 高さ {} ハッシュ {}",
                a.replica, a.name, r.url, a.height, a.block_hash
            ),
            format!(
                "  replica {} \"{}\" {}: height {} hash {}",
                a.replica, a.name, r.url, a.height, a.block_hash
            ),
        ));
    }
    lines.push(String::new());
    let mut line = |found: &[String], yes: String, no: String| {
        if found.is_empty() {
            lines.push(format!("  ✔ {yes}"));
        } else {
            lines.push(format!("  ✘ {no}"));
            lines.extend(found.iter().map(|p| format!("      {p}")));
        }
    };
    line(
        &problems.reached,
        ctx.t("指定されたレプリカをすべて読めました", "every replica named was read").into(),
        ctx.t("読めないレプリカがあります", "a replica could not be read").into(),
    );
    line(
        &problems.keys,
        ctx.t(
            "各レプリカの署名を、記録にあるそのレプリカの鍵で確かめました",
            "each replica's signature verifies with its key on the chain",
        )
        .into(),
        ctx.t("レプリカの署名か鍵が確かめられません", "a replica's signature or key does not hold").into(),
    );
    line(
        &problems.headers,
        ja_en(
            ctx,
            format!("ブロックヘッダー {from}〜{top}（{checked} 個）のハッシュと署名を確かめました"),
            format!("the hashes and signatures of block headers {from} to {top} ({checked}) hold"),
        ),
        ctx.t("ブロックヘッダーが確かめられません", "the block headers do not hold").into(),
    );
    line(
        &problems.linked,
        ctx.t(
            "ヘッダーはつながり、どのレプリカの先頭も同じ記録の上にあります（分岐・書き換えなし）",
            "the headers link, and every replica's head is on the same chain (no fork, no rewrite)",
        )
        .into(),
        ctx.t("記録がつながっていません（分岐か書き換え）", "the chain does not link: a fork or a rewrite")
            .into(),
    );
    line(
        &problems.supply,
        ctx.t(
            "発行残高の報告が、署名されたダイジェストと一致しました",
            "each supply report hashes to its signed digest",
        )
        .into(),
        ctx.t("発行残高の報告が署名と一致しません", "a supply report is not as signed").into(),
    );
    line(
        &problems.agree,
        ctx.t("同じ高さのレプリカは同じ内容に署名しています", "replicas at the same height attest the same")
            .into(),
        ctx.t("レプリカの報告が食いちがっています", "the replicas disagree").into(),
    );
    if !problems.all().is_empty() {
        lines.push(ctx.t("結果: 確かめられませんでした。", "Verdict: not verified.").to_string());
    }
    lines.join("\n")
}
