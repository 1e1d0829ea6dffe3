//! What each command does: unlock, sign, submit, explain.

use std::path::Path;

use hmac::{Hmac, Mac};
use machi_client::{sign, Client, ClientError};
use machi_ledger::api::{TxResultView, TxStatus};
use machi_ledger::{AccountId, Action, Hash32, IssueParams, RateBp, SigningKey, Yen};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::keystore::{CardNumber, Keystore, KeystoreError, Wallet};
use crate::text::{kind, reason, t};
use crate::{Cli, Command, Lang, OperatorCommand, TownCommand};

pub(crate) const EXIT_USER: i32 = 2;
pub(crate) const EXIT_REFUSED: i32 = 3;
pub(crate) const EXIT_UNREACHABLE: i32 = 4;

/// Why a command did not do what was asked, with the exit code that says so.
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

pub(crate) fn user(message: impl Into<String>) -> Failure {
    Failure { code: EXIT_USER, kind: "user_error", message: message.into() }
}

impl From<KeystoreError> for Failure {
    fn from(e: KeystoreError) -> Failure {
        match e {
            KeystoreError::Io(_) | KeystoreError::Tampered(_) => {
                Failure { code: 1, kind: "keystore", message: e.to_string() }
            }
            _ => user(e.to_string()),
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Failure {
        match e {
            ClientError::Unreachable(..) => {
                Failure { code: EXIT_UNREACHABLE, kind: "unreachable", message: e.to_string() }
            }
            ClientError::Api { status, .. } if (400..500).contains(&status) => {
                Failure { code: EXIT_REFUSED, kind: "refused", message: e.to_string() }
            }
            _ => Failure { code: 1, kind: "node_error", message: e.to_string() },
        }
    }
}

pub(crate) struct Ctx {
    pub(crate) client: Client,
    pub(crate) merchant: Client,
    pub(crate) store: Keystore,
    pub(crate) lang: Lang,
    json: bool,
}

impl Ctx {
    pub(crate) fn t<'a>(&self, ja: &'a str, en: &'a str) -> &'a str {
        t(self.lang, ja, en)
    }

    fn unlock(&self, card: &str, pin: &str) -> Result<Wallet, Failure> {
        let card = CardNumber::parse(card)?;
        Ok(self.store.unlock(&card, pin, machi_client::now_ms())?)
    }

    /// Signs, submits and waits for the durable outcome; a rejection is a failure with
    /// the ledger's reason in plain words.
    pub(crate) async fn submit(&self, key: &SigningKey, action: Action) -> Result<TxResultView, Failure> {
        let chain_id = self.client.head().await?.chain_id;
        let result = self.client.submit(&sign(&chain_id, key, action)).await?;
        match result.status {
            TxStatus::Applied => Ok(result),
            _ => {
                let code = result.reason.clone().unwrap_or_default();
                let fallback = result.message.clone().unwrap_or_else(|| code.clone());
                Err(Failure {
                    code: EXIT_REFUSED,
                    kind: "rejected",
                    message: format!("{} ({code})", reason(self.lang, &code, &fallback)),
                })
            }
        }
    }

    fn print(&self, value: Value, text: &str) {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value).expect("json"));
        } else {
            println!("{text}");
        }
    }
}

pub(crate) async fn run(cli: Cli) -> i32 {
    let store = match Keystore::open(&cli.keystore) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let ctx = Ctx {
        client: Client::new(&cli.node),
        merchant: Client::new(&cli.merchant),
        store,
        lang: cli.lang,
        json: cli.json,
    };
    match execute(&ctx, cli.command).await {
        Ok(()) => 0,
        Err(failure) => {
            if ctx.json {
                println!("{}", json!({ "error": { "kind": failure.kind, "message": failure.message } }));
            } else {
                eprintln!("{}: {}", ctx.t("できませんでした", "Not done"), failure.message);
            }
            failure.code
        }
    }
}

fn yen(text: &str) -> Result<Yen, Failure> {
    text.parse::<Yen>().map_err(|e| user(e.to_string()))
}

fn account_id(text: &str) -> Result<AccountId, Failure> {
    text.trim().parse().map_err(|_| user("an account id is 64 hex digits"))
}

async fn execute(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        Command::Create { pin, label } => {
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let card = ctx.store.create(&key, &pin, &label)?;
            let account = AccountId(key.verifying_key().to_bytes());
            let text = format!(
                "{}: {}\n{}: {account}",
                ctx.t("カード番号", "Card number"),
                card.display(),
                ctx.t("アカウント", "Account")
            );
            ctx.print(json!({ "card": card.display(), "account": account }), &text);
            Ok(())
        }
        Command::Import { key_file, pin, label } => {
            let key = read_key(&key_file)?;
            let card = ctx.store.create(&key, &pin, &label)?;
            let account = AccountId(key.verifying_key().to_bytes());
            let text = format!(
                "{}: {} ({label})\n{}: {account}",
                ctx.t("カード番号", "Card number"),
                card.display(),
                ctx.t("アカウント", "Account")
            );
            ctx.print(json!({ "card": card.display(), "account": account }), &text);
            Ok(())
        }
        Command::Balance { card, pin } => balance(ctx, &ctx.unlock(&card, &pin)?).await,
        Command::Pay { card, pin, code, shop, amount, invoice } => {
            let wallet = ctx.unlock(&card, &pin)?;
            let (shop, amount, invoice) = match code {
                Some(code) => {
                    let view = pay_code(ctx, &code).await?;
                    (view.shop, view.amount, Some(view.invoice_id))
                }
                None => (
                    account_id(shop.as_deref().unwrap_or_default())?,
                    yen(amount.as_deref().unwrap_or_default())?,
                    invoice,
                ),
            };
            let name = ctx.client.account(&shop).await.map(|a| a.name).unwrap_or_default();
            let result = ctx.submit(&wallet.key, Action::Pay { shop, amount, invoice }).await?;
            let left = ctx.client.account(&wallet.account()).await?.total;
            let text = format!(
                "{} {amount} → {name}\n{}: {left}\n{}: {}",
                ctx.t("支払いが完了しました", "Payment complete:"),
                ctx.t("残高", "Balance"),
                ctx.t("取引ID", "Transaction"),
                result.tx_id
            );
            ctx.print(json!({ "tx_id": result.tx_id, "amount": amount, "shop": shop, "shop_name": name, "balance": left, "height": result.height }), &text);
            Ok(())
        }
        Command::Kiosk { timeout_s, receipts } => {
            crate::kiosk::run(ctx, std::time::Duration::from_secs(timeout_s.max(1)), &receipts).await
        }
        Command::History { card, pin, limit } => {
            let wallet = ctx.unlock(&card, &pin)?;
            let view = ctx.client.account(&wallet.account()).await?;
            let entries: Vec<_> = view.history.into_iter().take(limit).collect();
            let text = entries
                .iter()
                .map(|h| {
                    format!(
                        "{}  {:<18} {:?}  {}",
                        machi_ledger::time::format_jst(h.timestamp_ms),
                        h.kind,
                        h.status,
                        h.tx_id
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            ctx.print(
                json!({ "history": entries }),
                if text.is_empty() {
                    ctx.t("取引はまだありません", "No transactions yet")
                } else {
                    &text
                },
            );
            Ok(())
        }
        Command::Receipt { tx_id, out } => receipt(ctx, &tx_id, &out).await,
        Command::Operator(command) => operator(ctx, command).await,
        Command::Town(command) => town(ctx, command).await,
    }
}

async fn balance(ctx: &Ctx, wallet: &Wallet) -> Result<(), Failure> {
    let view = ctx.client.account(&wallet.account()).await?;
    let issues = ctx.client.issues().await?;
    let mut lines = vec![format!(
        "{} {} {}: {}",
        ctx.t("カード", "Card"),
        wallet.card.display(),
        ctx.t("の残高", "balance"),
        view.total
    )];
    for b in &view.balances {
        let name =
            issues.iter().find(|i| i.params.id == b.issue).map_or(String::new(), |i| i.params.name.clone());
        lines.push(format!(
            "  {name}  {} {}  {} {}",
            kind(ctx.lang, b.kind),
            b.amount,
            ctx.t("有効期限", "valid until"),
            b.spend_until_jst
        ));
    }
    ctx.print(json!({ "card": wallet.card.display(), "account": view.id, "total": view.total, "balances": view.balances }), &lines.join("\n"));
    Ok(())
}

/// The look-up of a shop's pay code at the merchant API, with plain-language failures.
pub(crate) async fn pay_code(ctx: &Ctx, code: &str) -> Result<machi_ledger::api::PayCodeView, Failure> {
    let code: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect();
    ctx.merchant.pay_code(&code).await.map_err(|e| match &e {
        ClientError::Api { status: 404, .. } => user(ctx.t(
            "その支払いコードは見つかりません（期限切れか、番号の間違いです）",
            "no open payment request has that pay code (expired, or a wrong number)",
        )),
        ClientError::Api { status: 429, .. } => user(
            ctx.t("少し待ってからもう一度お試しください", "too many look-ups; wait a moment and try again"),
        ),
        _ => Failure::from(e),
    })
}

async fn receipt(ctx: &Ctx, tx_id: &str, out: &Path) -> Result<(), Failure> {
    let id: machi_ledger::TxId =
        tx_id.trim().parse().map_err(|_| user("a transaction id is 64 hex digits"))?;
    let text = receipt_text(ctx, &id).await?;
    std::fs::write(out, &text).map_err(|e| user(format!("{}: {e}", out.display())))?;
    ctx.print(
        json!({ "receipt": out, "tx_id": id }),
        &format!("{} {}", ctx.t("領収書を書き出しました:", "Receipt written to"), out.display()),
    );
    Ok(())
}

/// A committed payment's receipt as plain text for the kiosk printer.
pub(crate) async fn receipt_text(ctx: &Ctx, id: &machi_ledger::TxId) -> Result<String, Failure> {
    let tx = ctx.client.tx(id).await?;
    let body: machi_ledger::TxBody = serde_json::from_value(tx["body"].clone())
        .map_err(|_| user("not a transaction this wallet can print"))?;
    let Action::Pay { shop, amount, invoice } = body.action else {
        return Err(user(ctx.t("支払いの取引ではありません", "that transaction is not a payment")));
    };
    let shop_name = ctx.client.account(&shop).await.map(|a| a.name).unwrap_or_default();
    let when = machi_ledger::time::format_jst(tx["timestamp_ms"].as_u64().unwrap_or(0));
    Ok(format!(
        "machi プレミアム商品券\nお支払い明細 / Receipt\n------------------------------\n日時 Date   : {when} (JST)\nお店 Shop   : {shop_name}\n金額 Amount : {amount}\n{}取引ID Tx  : {id}\nブロック    : {}\n------------------------------\nおつりは出ません / No change is given\n",
        invoice.map(|i| format!("請求番号    : {i}\n")).unwrap_or_default(),
        tx["height"]
    ))
}

fn read_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| user(format!("{} does not hold 64 hex digits", path.display())))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// HMAC-SHA256 of the resident number under the town's secret: one resident, one
/// account, and the number itself never leaves the counter.
fn resident_hash(id_key: &Path, number: &str) -> Result<Hash32, Failure> {
    let key = std::fs::read_to_string(id_key).map_err(|e| user(format!("{}: {e}", id_key.display())))?;
    let key = hex::decode(key.trim()).map_err(|_| user("the resident-number key file must hold hex"))?;
    let number: String = number.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    if number.is_empty() {
        return Err(user("the resident number is empty"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| user("bad resident-number key"))?;
    mac.update(number.as_bytes());
    Ok(Hash32(mac.finalize().into_bytes().into()))
}

async fn operator(ctx: &Ctx, command: OperatorCommand) -> Result<(), Failure> {
    match command {
        OperatorCommand::RegisterResident { card, pin, resident_number, id_key, resident_pin, worker } => {
            let operator = ctx.unlock(&card, &pin)?;
            let resident_hash = resident_hash(&id_key, &resident_number)?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let resident = AccountId(key.verifying_key().to_bytes());
            ctx.submit(&operator.key, Action::RegisterResident { resident, resident_hash, worker }).await?;
            let new_card =
                ctx.store.create(&key, &resident_pin, if worker { "worker" } else { "resident" })?;
            let text = format!(
                "{}: {}",
                ctx.t("登録しました。新しいカード番号", "Registered. New card number"),
                new_card.display()
            );
            ctx.print(json!({ "card": new_card.display(), "account": resident }), &text);
            Ok(())
        }
        OperatorCommand::Sell { card, pin, resident_card, issue, sets } => {
            let operator = ctx.unlock(&card, &pin)?;
            let resident = ctx.store.account(&CardNumber::parse(&resident_card)?)?;
            let view = ctx.client.issue(issue).await?;
            let cash = view.params.price.checked_mul(u64::from(sets)).ok_or_else(|| user("too many sets"))?;
            let result = ctx
                .submit(&operator.key, Action::SellSets { issue, resident, sets, cash_received: cash })
                .await?;
            let after = ctx.client.issue(issue).await?;
            let text = format!(
                "{} {sets} {} ({} {cash})\n{}: {} / {}",
                ctx.t("販売しました:", "Sold:"),
                ctx.t("セット", "set(s)"),
                ctx.t("受取", "cash received"),
                ctx.t("残りセット", "Sets left"),
                after.sets_left,
                after.params.total_sets
            );
            ctx.print(json!({ "tx_id": result.tx_id, "sets": sets, "cash_received": cash, "sets_left": after.sets_left }), &text);
            Ok(())
        }
        OperatorCommand::ReplaceCard { card, pin, lost_card, new_pin } => {
            let operator = ctx.unlock(&card, &pin)?;
            let old = ctx.store.account(&CardNumber::parse(&lost_card)?)?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let new = AccountId(key.verifying_key().to_bytes());
            ctx.submit(&operator.key, Action::ReplaceKey { old, new }).await?;
            let new_card = ctx.store.create(&key, &new_pin, "resident")?;
            let text = format!(
                "{}: {}",
                ctx.t("カードを再発行しました。新しいカード番号", "Card replaced. New card number"),
                new_card.display()
            );
            ctx.print(json!({ "card": new_card.display(), "account": new, "revoked": old }), &text);
            Ok(())
        }
    }
}

fn day(text: &str, end: bool) -> Result<u64, Failure> {
    let ms = if end {
        machi_ledger::time::end_of_day_jst_ms(text)
    } else {
        machi_ledger::time::start_of_day_jst_ms(text)
    };
    ms.ok_or_else(|| user(format!("{text:?} is not a date like 2027-01-31")))
}

async fn town(ctx: &Ctx, command: TownCommand) -> Result<(), Failure> {
    match command {
        TownCommand::CreateIssue { card, pin, file, flags } => {
            let town = ctx.unlock(&card, &pin)?;
            let flags = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| user(format!("{}: {e}", path.display())))?;
                    Box::new(toml::from_str(&text).map_err(|e| user(format!("{}: {e}", path.display())))?)
                }
                None => flags,
            };
            let issue = issue_params(&flags)?;
            let (id, name) = (issue.id, issue.name.clone());
            let result = ctx.submit(&town.key, Action::CreateIssue { issue }).await?;
            ctx.print(
                json!({ "tx_id": result.tx_id, "issue": id }),
                &format!("{} {id}: {name}", ctx.t("発行回を作成しました", "Issue created")),
            );
            Ok(())
        }
        TownCommand::RegisterOperator { card, pin, operator_card, name } => {
            let town = ctx.unlock(&card, &pin)?;
            let operator = ctx.store.account(&CardNumber::parse(&operator_card)?)?;
            let result =
                ctx.submit(&town.key, Action::RegisterOperator { operator, name: name.clone() }).await?;
            ctx.print(
                json!({ "tx_id": result.tx_id, "operator": operator }),
                &format!("{}: {name}", ctx.t("窓口担当を登録しました", "Operator registered")),
            );
            Ok(())
        }
        TownCommand::Expire { card, pin, issue } => {
            let town = ctx.unlock(&card, &pin)?;
            let result = ctx.submit(&town.key, Action::ExpireIssue { issue }).await?;
            let supply = ctx.client.issue(issue).await?.supply;
            ctx.print(
                json!({ "tx_id": result.tx_id, "expired": supply.expired }),
                &format!("{}: {}", ctx.t("失効しました", "Expired"), supply.expired),
            );
            Ok(())
        }
        TownCommand::SaleStatus { issue, watch } => loop {
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
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        },
    }
}

fn required<T: Clone>(value: &Option<T>, flag: &str) -> Result<T, Failure> {
    value.clone().ok_or_else(|| user(format!("--{flag} is needed (or --file)")))
}

/// An issue from flags or a TOML file with the same names.
fn issue_params(f: &crate::IssueFlags) -> Result<IssueParams, Failure> {
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
        cash_out_fee: f.fee.as_deref().unwrap_or("0%").parse::<RateBp>().map_err(user)?,
    })
}
