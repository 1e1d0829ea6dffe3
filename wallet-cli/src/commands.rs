//! What each command does: ask, unlock, sign, submit, explain.

use std::path::Path;
use std::time::Duration;

use hmac::{Hmac, Mac};
use machi_client::Client;
use machi_ledger::api::{TxResultView, TxStatus};
use machi_ledger::{AccountId, Action, Hash32, IssueParams, RateBp, SigningKey, TxId, Yen};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::ctx::{action_of, pay_code, receipt_text, user, Ctx, Failure, EXIT_UNKNOWN};
use crate::keystore::{CardNumber, Keystore, Wallet};
use crate::pending::{Pending, PendingStore};
use crate::secrets::Secrets;
use crate::text::kind;
use crate::{Cli, Command, OperatorCommand, TownCommand};

/// Most digits a resident number may have.
pub(crate) const RESIDENT_NUMBER_DIGITS_MAX: usize = 20;
/// Length bounds of the town's resident-number key (HMAC-SHA256 key).
pub(crate) const ID_KEY_BYTES_MIN: usize = 16;
pub(crate) const ID_KEY_BYTES_MAX: usize = 64;

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
        client: Client::with_timeout(&cli.node, timeout),
        merchant: Client::with_timeout(&cli.merchant, timeout),
        store,
        pending,
        lang: cli.lang,
        json: cli.json,
    };
    match execute(&ctx, cli.command).await {
        Ok(()) => 0,
        Err(failure) => {
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
    }
}

fn yen(text: &str) -> Result<Yen, Failure> {
    text.parse::<Yen>().map_err(|e| user(e.to_string()))
}

/// Digits of a rate before and after the point: more cannot be a rate of 0% to 100%
/// in 0.01% steps, and would overflow the decimal arithmetic.
const RATE_INTEGER_DIGITS_MAX: usize = 3;
const RATE_FRACTION_DIGITS_MAX: usize = 6;

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

fn account_id(text: &str) -> Result<AccountId, Failure> {
    text.trim().parse().map_err(|_| user("an account id is 64 hex digits"))
}

fn tx_id(text: &str) -> Result<TxId, Failure> {
    text.trim().parse().map_err(|_| user("a transaction id is 64 hex digits"))
}

async fn execute(ctx: &Ctx, command: Command) -> Result<(), Failure> {
    match command {
        Command::Create { label } => {
            let pin = Secrets::new(ctx.lang).new_pin()?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            new_card(ctx, &key, &pin, &label)
        }
        Command::Import { key_file, label } => {
            let key = read_key(&key_file)?;
            let pin = Secrets::new(ctx.lang).new_pin()?;
            new_card(ctx, &key, &pin, &label)
        }
        Command::Balance { card } => balance(ctx, &unlock(ctx, &card)?).await,
        Command::Pay { card, code, shop, amount, invoice } => {
            let wallet = unlock(ctx, &card)?;
            pay(ctx, &wallet, code, shop, amount, invoice).await
        }
        Command::Kiosk { timeout_s, receipts } => {
            crate::kiosk::run(ctx, Duration::from_secs(timeout_s), &receipts).await
        }
        Command::History { card, limit } => history(ctx, &unlock(ctx, &card)?, limit).await,
        Command::Check { tx_id: id } => check(ctx, &tx_id(&id)?).await,
        Command::Receipt { tx_id: id, out } => receipt(ctx, &tx_id(&id)?, &out).await,
        Command::Operator(command) => operator(ctx, command).await,
        Command::Town(command) => town(ctx, command).await,
    }
}

/// Unlocks `card` with the PIN asked for now.
fn unlock(ctx: &Ctx, card: &str) -> Result<Wallet, Failure> {
    let card = CardNumber::parse(card)?;
    let pin = Secrets::new(ctx.lang).pin()?;
    ctx.unlock(card.digits(), &pin)
}

fn new_card(ctx: &Ctx, key: &SigningKey, pin: &str, label: &str) -> Result<(), Failure> {
    let card = ctx.store.create(key, pin, label)?;
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

async fn pay(
    ctx: &Ctx,
    wallet: &Wallet,
    code: Option<String>,
    shop: Option<String>,
    amount: Option<String>,
    invoice: Option<String>,
) -> Result<(), Failure> {
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
    ctx.print(json!({ "status": "applied", "tx_id": result.tx_id, "amount": amount, "shop": shop, "shop_name": name, "balance": left, "height": result.height }), &text);
    Ok(())
}

async fn history(ctx: &Ctx, wallet: &Wallet, limit: u64) -> Result<(), Failure> {
    let view = ctx.client.account(&wallet.account()).await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
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
    let empty = ctx.t("取引はまだありません", "No transactions yet");
    ctx.print(json!({ "history": entries }), if text.is_empty() { empty } else { &text });
    Ok(())
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

/// What became of a transaction: on the chain, or (if this keystore still holds it)
/// sent again until the node says.
async fn check(ctx: &Ctx, id: &TxId) -> Result<(), Failure> {
    let pending = ctx.pending.get(id)?;
    let found = ctx.client.lookup(id).await?;
    let result = match (found, pending) {
        (Some(result), Some(pending)) => ctx.conclude(&pending, Ok(result))?,
        (Some(result), None) if result.status == TxStatus::Applied => result,
        (Some(result), None) => return Err(ctx.not_done(&result)),
        (None, Some(pending)) => {
            let answer = ctx.client.settle(&pending.tx, id, crate::ctx::SETTLE_ATTEMPTS, true).await;
            ctx.conclude(&pending, answer)?
        }
        (None, None) => {
            return Err(Failure {
                code: EXIT_UNKNOWN,
                kind: "unknown",
                message: ctx
                    .t(
                        "その取引はチェーンにありません。このキーストアには控えがないため、これから記録される可能性があるかは分かりません（署名から10分たてば記録されることはありません）。",
                        "that transaction is not on the chain, and this keystore holds no copy of it, so whether it may still arrive cannot be told (one signed by machi-wallet can arrive only within 10 minutes of signing)",
                    )
                    .to_string(),
                details: json!({ "status": "not_found", "tx_id": id }),
            })
        }
    };
    let text = format!(
        "{} {}: {}\n{}: {}",
        ctx.t("取引", "Transaction"),
        id,
        ctx.t("完了しています", "applied"),
        ctx.t("ブロック", "Block"),
        result.height.unwrap_or_default()
    );
    ctx.print(json!({ "status": "applied", "tx_id": id, "height": result.height }), &text);
    Ok(())
}

async fn receipt(ctx: &Ctx, id: &TxId, out: &Path) -> Result<(), Failure> {
    let text = receipt_text(ctx, id).await?;
    std::fs::write(out, &text).map_err(|e| user(format!("{}: {e}", out.display())))?;
    ctx.print(
        json!({ "receipt": out, "tx_id": id }),
        &format!("{} {}", ctx.t("領収書を書き出しました:", "Receipt written to"), out.display()),
    );
    Ok(())
}

fn read_key(path: &Path) -> Result<SigningKey, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| user(format!("{} does not hold 64 hex digits", path.display())))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The town's resident-number key from its file: hex, `ID_KEY_BYTES_MIN` to
/// `ID_KEY_BYTES_MAX` bytes.
fn read_id_key(path: &Path) -> Result<Vec<u8>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| user(format!("{}: {e}", path.display())))?;
    let key = hex::decode(text.trim()).map_err(|_| {
        user(format!("{}: the resident-number key file must hold hex digits only", path.display()))
    })?;
    if !(ID_KEY_BYTES_MIN..=ID_KEY_BYTES_MAX).contains(&key.len()) {
        return Err(user(format!(
            "{}: the resident-number key must be {ID_KEY_BYTES_MIN} to {ID_KEY_BYTES_MAX} bytes \
             ({} to {} hex digits); it holds {} (make one with `openssl rand -hex 32`)",
            path.display(),
            ID_KEY_BYTES_MIN * 2,
            ID_KEY_BYTES_MAX * 2,
            key.len()
        )));
    }
    Ok(key)
}

/// A resident number's digits: full-width digits become ASCII (as NFKC does), hyphens
/// and spaces (half or full width) are dropped, and anything else is refused rather than
/// silently left out.
pub(crate) fn resident_number_digits(text: &str) -> Result<String, Failure> {
    let mut digits = String::new();
    for c in text.trim().chars() {
        match c {
            '0'..='9' => digits.push(c),
            '０'..='９' => digits.push(char::from(b'0' + (u32::from(c) - u32::from('０')) as u8)),
            '-' | ' ' | '－' | '　' => {}
            _ => {
                return Err(user(format!(
                    "a resident number is digits, which hyphens or spaces may separate; {c:?} is not allowed"
                )))
            }
        }
    }
    if digits.is_empty() {
        return Err(user("the resident number is empty"));
    }
    if digits.len() > RESIDENT_NUMBER_DIGITS_MAX {
        return Err(user(format!("a resident number has at most {RESIDENT_NUMBER_DIGITS_MAX} digits")));
    }
    Ok(digits)
}

/// HMAC-SHA256 of the resident number's digits under the town's secret: one resident,
/// one account, and the number itself never leaves the counter.
fn resident_hash(key: &[u8], number: &str) -> Result<Hash32, Failure> {
    let digits = resident_number_digits(number)?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(digits.as_bytes());
    Ok(Hash32(mac.finalize().into_bytes().into()))
}

async fn operator(ctx: &Ctx, command: OperatorCommand) -> Result<(), Failure> {
    match command {
        OperatorCommand::RegisterResident { card, id_key, worker } => {
            let id_key = read_id_key(&id_key)?;
            let mut secrets = Secrets::new(ctx.lang);
            let operator = ctx.unlock(&card, &secrets.pin()?)?;
            let resident_hash = resident_hash(&id_key, &secrets.resident_number()?)?;
            let purpose = format!("register-resident:{}", resident_hash.to_hex());
            let label = if worker { "worker" } else { "resident" };
            let action = |resident| Action::RegisterResident { resident, resident_hash, worker };
            let (card, result) =
                new_card_on_chain(ctx, &mut secrets, &operator, &purpose, label, action).await?;
            let text = format!(
                "{}: {}",
                ctx.t("登録しました。新しいカード番号", "Registered. New card number"),
                card.display()
            );
            let account = ctx.store.account(&card)?;
            ctx.print(json!({ "card": card.display(), "account": account, "tx_id": result.tx_id }), &text);
            Ok(())
        }
        OperatorCommand::Sell { card, resident_card, issue, sets } => {
            let operator = unlock(ctx, &card)?;
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
        OperatorCommand::ReplaceCard { card, lost_card } => {
            let mut secrets = Secrets::new(ctx.lang);
            let operator = ctx.unlock(&card, &secrets.pin()?)?;
            let old = ctx.store.account(&CardNumber::parse(&lost_card)?)?;
            let purpose = format!("replace-card:{old}");
            let action = |new| Action::ReplaceKey { old, new };
            let (card, result) =
                new_card_on_chain(ctx, &mut secrets, &operator, &purpose, "resident", action).await?;
            let text = format!(
                "{}: {}",
                ctx.t("カードを再発行しました。新しいカード番号", "Card replaced. New card number"),
                card.display()
            );
            let new = ctx.store.account(&card)?;
            ctx.print(
                json!({ "card": card.display(), "account": new, "revoked": old, "tx_id": result.tx_id }),
                &text,
            );
            Ok(())
        }
    }
}

/// A new card whose account a transaction puts on the chain (register-resident,
/// replace-card). Everything that can go wrong at the counter goes wrong first: the PIN
/// is asked (twice at a terminal) and the card file written and synced, then the signed
/// transaction is kept, and only then sent. A second run for the same `purpose` finds the
/// kept transaction and sends it again for the same card; one that can no longer commit
/// (its time-to-live passed unsent) is signed anew for the same card.
async fn new_card_on_chain(
    ctx: &Ctx,
    secrets: &mut Secrets,
    operator: &Wallet,
    purpose: &str,
    label: &str,
    action: impl Fn(AccountId) -> Action,
) -> Result<(CardNumber, TxResultView), Failure> {
    let pending = match ctx.pending.find(purpose)? {
        Some(pending) => pending,
        None => {
            let pin = secrets.new_pin()?;
            let key = SigningKey::generate(&mut rand::rngs::OsRng);
            let card = ctx.store.create(&key, &pin, label)?;
            let account = AccountId(key.verifying_key().to_bytes());
            ctx.prepare(&operator.key, action(account), Some(purpose.to_string()), Some(&card)).await?
        }
    };
    let card = CardNumber::parse(pending.new_card.as_deref().unwrap_or_default())?;
    let answer = ctx.client.submit_settled(&pending.tx, &pending.tx_id, crate::ctx::SETTLE_ATTEMPTS).await;
    let pending = match answer {
        Ok(result) if result.reason.as_deref() == Some("ttl_expired") => {
            renew(ctx, operator, &pending, &card).await?
        }
        answer => return ctx.conclude(&pending, answer).map(|result| (card, result)),
    };
    let result = ctx.send(&pending).await?;
    Ok((card, result))
}

/// Signs a kept transaction's action anew, for one that can no longer commit: the old
/// copy is replaced by the new one before it is sent.
async fn renew(ctx: &Ctx, operator: &Wallet, old: &Pending, card: &CardNumber) -> Result<Pending, Failure> {
    let action = action_of(old).ok_or_else(|| user("a kept transaction could not be read"))?;
    let renewed = ctx.prepare(&operator.key, action, old.purpose.clone(), Some(card)).await?;
    ctx.pending.remove(&old.tx_id)?;
    Ok(renewed)
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
        TownCommand::CreateIssue { card, file, flags } => {
            let flags = match file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| user(format!("{}: {e}", path.display())))?;
                    Box::new(toml::from_str(&text).map_err(|e| user(format!("{}: {e}", path.display())))?)
                }
                None => flags,
            };
            let issue = issue_params(&flags)?;
            let town = unlock(ctx, &card)?;
            let (id, name) = (issue.id, issue.name.clone());
            let result = ctx.submit(&town.key, Action::CreateIssue { issue }).await?;
            ctx.print(
                json!({ "tx_id": result.tx_id, "issue": id }),
                &format!("{} {id}: {name}", ctx.t("発行回を作成しました", "Issue created")),
            );
            Ok(())
        }
        TownCommand::RegisterOperator { card, operator_card, name } => {
            let operator = ctx.store.account(&CardNumber::parse(&operator_card)?)?;
            let town = unlock(ctx, &card)?;
            let result =
                ctx.submit(&town.key, Action::RegisterOperator { operator, name: name.clone() }).await?;
            ctx.print(
                json!({ "tx_id": result.tx_id, "operator": operator }),
                &format!("{}: {name}", ctx.t("窓口担当を登録しました", "Operator registered")),
            );
            Ok(())
        }
        TownCommand::RegisterDelegate { card, delegation, account, name } => {
            let town = unlock(ctx, &card)?;
            let action = Action::RegisterDelegate {
                delegate: account,
                name: name.clone(),
                delegation: delegation.into(),
            };
            let result = ctx.submit(&town.key, action).await?;
            ctx.print(
                json!({ "tx_id": result.tx_id, "delegate": account }),
                &format!(
                    "{}: {name} ({account})",
                    ctx.t("町の鍵の委任を登録しました", "Delegated key registered")
                ),
            );
            Ok(())
        }
        TownCommand::Freeze { card, account } => {
            let town = unlock(ctx, &card)?;
            let result = ctx.submit(&town.key, Action::Freeze { account }).await?;
            let done = ctx.t("凍結しました", "Frozen");
            ctx.print(json!({ "tx_id": result.tx_id, "account": account }), &format!("{done}: {account}"));
            Ok(())
        }
        TownCommand::Unfreeze { card, account } => {
            let town = unlock(ctx, &card)?;
            let result = ctx.submit(&town.key, Action::Unfreeze { account }).await?;
            let done = ctx.t("凍結を解除しました", "Unfrozen");
            ctx.print(json!({ "tx_id": result.tx_id, "account": account }), &format!("{done}: {account}"));
            Ok(())
        }
        TownCommand::Expire { card, issue } => {
            let town = unlock(ctx, &card)?;
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
        cash_out_fee: rate(f.fee.as_deref().unwrap_or("0%"))?,
    })
}
