//! The town office (admin): sale status per issue, shops (registration with the bank and
//! branch names looked up as they are typed, bank account, devices, tokens, suspension),
//! a new issue checked as the wallet's `town create-issue` checks it, and settlements.

use std::collections::BTreeMap;

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use machi_host::ApiError;
use machi_ledger::{AccountId, IssueParams, RateBp, ShopClass, Yen};
use maud::{html, Markup};

use super::layout::{csrf, form_error, shell, when, yen};
use super::office::{device_rows, pairing_made, parse_scope, token_form, token_made, token_rows};
use super::{see_other, OrPage, Page, PageResult, Posted, Refused};
use crate::api::{parse_account, AppState};
use crate::model::{
    AccountType, BankAccountInput, DeviceCaller, RegisterShopRequest, Scope, SettlementStatus,
};

/// How often a settlement's page looks again while the chain has not recorded it.
const SETTLEMENT_REFRESH_S: u32 = 2;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/town", get(sale_status))
        .route("/town/issues.json", get(sale_numbers))
        .route("/town/pairing", post(make_town_pairing))
        .route("/town/banks/{bank}", get(bank_name))
        .route("/town/banks/{bank}/branches/{branch}", get(branch_name))
        .route("/town/shops", get(shops).post(register_shop))
        .route("/town/shops/{shop}", get(shop))
        .route("/town/shops/{shop}/bank", post(change_bank))
        .route("/town/shops/{shop}/pairing", post(make_pairing))
        .route("/town/shops/{shop}/tokens", post(make_token))
        .route("/town/shops/{shop}/freeze", post(freeze))
        .route("/town/shops/{shop}/unfreeze", post(unfreeze))
        .route("/town/tokens/{id}/revoke", post(revoke_token))
        .route("/town/devices/{id}/revoke", post(revoke_device))
        .route("/town/issues/new", get(issue_form).post(check_issue))
        .route("/town/settlements", get(settlements).post(settle))
        .route("/town/settlements/{id}", get(settlement))
        .route("/town/settlements/{id}/zengin", get(zengin))
}

async fn sale_status(page: Page) -> PageResult {
    page.admin()?;
    Ok(town_home(&page, html! {}).await?.into_response())
}

/// Another PC of the town office: a pairing code for it.
async fn make_town_pairing(posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let (code, expires) = page
        .merchant
        .make_pairing_code(DeviceCaller::TownOffice, posted.field("label"))
        .await
        .or_page(page)?;
    Ok(town_home(page, pairing_made(&code, expires)).await?.into_response())
}

/// The sale status, and the town office's own devices.
async fn town_home(page: &Page, made: Markup) -> Result<Markup, Refused> {
    let issues = page.merchant.node.issues().await.map_err(crate::merchant::node_error).or_page(page)?;
    let devices: Vec<_> =
        page.merchant.devices(None).into_iter().filter(|d| d.caller == DeviceCaller::TownOffice).collect();
    Ok(shell(
        Some(page),
        "発行状況",
        "town",
        html! {
            h1 { "発行状況 " span lang="en" .en { "Sale status" } }
            @if issues.is_empty() { p .empty { "発行回はまだありません。" } }
            div .table-wrap { table #issues data-live="/town/issues.json" {
                thead { tr { th { "発行回" } th .num { "販売済み" } th .num { "残り" } th .num { "総数" } th { "販売" } th { "販売期間" } } }
                tbody {
                    @for issue in &issues {
                        tr data-issue=(issue.params.id) {
                            td { (issue.params.id) "：" (issue.params.name) }
                            td .num .sold { (issue.sets_sold) }
                            td .num .left { (issue.sets_left) }
                            td .num .total-sets { (issue.params.total_sets) }
                            td .on-sale { @if issue.on_sale { "販売中" } @else { "—" } }
                            td { (when(issue.params.sale_start_ms)) " 〜 " (when(issue.params.sale_end_ms.saturating_sub(1))) }
                        }
                    }
                }
            } }
            p .actions {
                a .button href="/town/shops" { "お店" }
                a .button href="/town/issues/new" { "発行回の作成" }
                a .button href="/town/settlements" { "精算" }
            }
            h2 { "役場の端末" }
            (made)
            (device_rows(page, &devices, "/town/devices"))
            form method="post" action="/town/pairing" {
                (csrf(page))
                label for="town-pairing-label" { "端末の名前" }
                input #town-pairing-label name="label" type="text" maxlength="100";
                button #town-pairing .primary type="submit" { "役場の端末のペアリングコードを作る" }
            }
        },
    ))
}

/// Sets sold and left per issue, for the sale status page's script to refresh its rows.
async fn sale_numbers(page: Page) -> Result<Response, Refused> {
    page.admin()?;
    let issues = page.merchant.node.issues().await.map_err(crate::merchant::node_error).or_page(&page)?;
    let numbers: Vec<serde_json::Value> = issues
        .iter()
        .map(|i| serde_json::json!({ "id": i.params.id, "sold": i.sets_sold, "left": i.sets_left, "on_sale": i.on_sale }))
        .collect();
    Ok(Json(numbers).into_response())
}

/// `{"name": …}` of a bank (4 digits) from the bank code list; 404 with an empty name.
async fn bank_name(page: Page, Path(bank): Path<String>) -> Result<Response, Refused> {
    page.admin()?;
    Ok(name_answer(page.merchant.banks.bank(&bank).map(|b| b.name.clone()).ok()))
}

async fn branch_name(page: Page, Path((bank, branch)): Path<(String, String)>) -> Result<Response, Refused> {
    page.admin()?;
    Ok(name_answer(page.merchant.banks.branch(&bank, &branch).map(|b| b.name.clone()).ok()))
}

fn name_answer(name: Option<String>) -> Response {
    let status = if name.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND };
    (status, Json(serde_json::json!({ "name": name.unwrap_or_default() }))).into_response()
}

fn account_type_name(t: AccountType) -> &'static str {
    match t {
        AccountType::Ordinary => "ordinary",
        AccountType::Current => "current",
        AccountType::Savings => "savings",
    }
}

/// The bank account fields, filled with `values` (a form sent back) or a shop's account.
fn bank_fields(values: &dyn Fn(&str) -> String) -> Markup {
    let selected = values("account_type");
    html! {
        div .row {
            div {
                label for="bank-code" { "金融機関コード（4桁） " span lang="en" .en { "Bank code" } }
                input #bank-code name="bank_code" type="text" inputmode="numeric" maxlength="4" value=(values("bank_code")) required;
                p #bank-name .bank-name aria-live="polite" {}
            }
            div {
                label for="branch-code" { "支店コード（3桁） " span lang="en" .en { "Branch code" } }
                input #branch-code name="branch_code" type="text" inputmode="numeric" maxlength="3" value=(values("branch_code")) required;
                p #branch-name .bank-name aria-live="polite" {}
            }
        }
        div .row {
            div {
                label for="account-type" { "預金種目" }
                select #account-type name="account_type" {
                    @for (value, label) in [("ordinary", "普通"), ("current", "当座"), ("savings", "貯蓄")] {
                        option value=(value) selected[selected == value] { (label) }
                    }
                }
            }
            div {
                label for="account-number" { "口座番号（7桁）" }
                input #account-number name="account_number" type="text" inputmode="numeric" maxlength="7" value=(values("account_number")) required;
            }
        }
        label for="account-holder" { "口座名義（カタカナ） " span lang="en" .en { "Account holder (katakana)" } }
        input #account-holder name="holder_kana" type="text" value=(values("holder_kana")) required;
    }
}

fn bank_input(posted: &Posted) -> Result<BankAccountInput, ApiError> {
    let account_type = match posted.field("account_type") {
        "ordinary" => AccountType::Ordinary,
        "current" => AccountType::Current,
        "savings" => AccountType::Savings,
        _ => return Err(ApiError::bad_request("bad_bank_account", "choose the account type")),
    };
    Ok(BankAccountInput {
        bank_code: posted.field("bank_code").to_string(),
        branch_code: posted.field("branch_code").to_string(),
        account_type,
        account_number: posted.field("account_number").to_string(),
        holder_kana: posted.field("holder_kana").to_string(),
    })
}

fn shops_page(page: &Page, posted: Option<&Posted>, error: Option<&ApiError>) -> Markup {
    let list = page.merchant.shop_views();
    let value = |name: &str| posted.map(|p| p.field(name).to_string()).unwrap_or_default();
    let class = value("class");
    shell(
        Some(page),
        "お店",
        "shops",
        html! {
            h1 { "お店 " span lang="en" .en { "Shops" } }
            div .table-wrap { table #shops {
                thead { tr { th { "店名" } th { "区分" } th { "振込先" } th { "状態" } } }
                tbody {
                    @for s in &list {
                        tr data-shop=(s.id) {
                            td { a href=(format!("/town/shops/{}", s.id)) { (s.name) } }
                            td { @match s.class { ShopClass::Local => "地元のお店", ShopClass::Large => "大型店" } }
                            td { (s.bank.bank_name) " " (s.bank.branch_name) }
                            td .state { @if s.suspended { "停止中" } @else { "利用中" } }
                        }
                    }
                }
            } }
            h2 { "お店を登録する " span lang="en" .en { "Register a shop" } }
            (form_error(error))
            form method="post" action="/town/shops" {
                (csrf(page))
                div .row {
                    div { label for="shop-name" { "店名" } input #shop-name name="name" type="text" maxlength="100" value=(value("name")) required; }
                    div { label for="shop-kana" { "店名（カタカナ）" } input #shop-kana name="kana_name" type="text" value=(value("kana_name")) required; }
                }
                label for="shop-class" { "区分" }
                select #shop-class name="class" {
                    option value="local" selected[class != "large"] { "地元のお店（地元券・共通券）" }
                    option value="large" selected[class == "large"] { "大型店（共通券のみ）" }
                }
                (bank_fields(&value))
                button #register-shop .primary type="submit" { "登録する" }
            }
        },
    )
}

async fn shops(page: Page) -> PageResult {
    page.admin()?;
    Ok(shops_page(&page, None, None).into_response())
}

async fn register_shop(posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let class = match posted.field("class") {
        "large" => ShopClass::Large,
        _ => ShopClass::Local,
    };
    let request = bank_input(&posted).map(|bank| RegisterShopRequest {
        name: posted.field("name").to_string(),
        kana_name: posted.field("kana_name").to_string(),
        class,
        bank,
    });
    let made = match request {
        Ok(request) => page.merchant.register_shop(request).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(view) => Ok(see_other(&format!("/town/shops/{}", view.id))),
        Err(e) => Err((e.status, shops_page(page, Some(&posted), Some(&e))).into_response().into()),
    }
}

fn shop_account(page: &Page, text: &str) -> Result<AccountId, Refused> {
    let account = parse_account(text).or_page(page)?;
    page.merchant.shop(&account).ok_or_else(|| page.error(ApiError::not_found("shop")))?;
    Ok(account)
}

fn shop_page(
    page: &Page,
    account: &AccountId,
    made: Markup,
    error: Option<&ApiError>,
) -> Result<Markup, Refused> {
    let m = &page.merchant;
    let shop = m.shop(account).ok_or_else(|| page.error(ApiError::not_found("shop")))?;
    let r = &shop.record;
    let bank = r.bank.clone();
    let value = move |name: &str| match name {
        "bank_code" => bank.bank_code.clone(),
        "branch_code" => bank.branch_code.clone(),
        "account_type" => account_type_name(bank.account_type).to_string(),
        "account_number" => bank.account_number.clone(),
        "holder_kana" => bank.holder_kana.clone(),
        _ => String::new(),
    };
    let devices = m.devices(Some(account));
    let tokens = m.shop_tokens(account);
    Ok(shell(
        Some(page),
        &r.name,
        "shop",
        html! {
            h1 { (r.name) " " span .en { (r.kana_name) } }
            p { "アカウント: " code .mono #shop-account { (r.account) } }
            (made)
            (form_error(error))
            section .card #suspension {
                @if r.suspended_ms.is_some() {
                    p #suspended .error { "このお店は停止中です：トークン・端末・支払いコードは使えません。" }
                    form method="post" action=(format!("/town/shops/{account}/unfreeze")) {
                        (csrf(page))
                        button #unfreeze .primary type="submit" { "停止を解除する" }
                    }
                } @else {
                    p { "停止すると、このお店のトークン・端末・支払いコードはすぐに使えなくなり、新しい支払い依頼も作れません。" }
                    form method="post" action=(format!("/town/shops/{account}/freeze")) {
                        (csrf(page))
                        button #freeze .danger type="submit" { "このお店を停止する" }
                    }
                }
                p { "台帳上の凍結は町の鍵で行います（このサーバーは町の鍵を持ちません）。役場の端末で：" }
                p { code #freeze-command .mono { "machi-wallet town freeze --card <町のカード番号> --account " (r.account) } }
            }
            h2 { "振込先口座" }
            form method="post" action=(format!("/town/shops/{account}/bank")) {
                (csrf(page))
                (bank_fields(&value))
                button #save-bank .primary type="submit" { "口座を保存する" }
            }
            h2 { "バックオフィスの端末" }
            form method="post" action=(format!("/town/shops/{account}/pairing")) {
                (csrf(page))
                label for="shop-pairing-label" { "端末の名前" }
                input #shop-pairing-label name="label" type="text" maxlength="100";
                button #shop-pairing .primary type="submit" { "バックオフィスのペアリングコードを作る" }
            }
            (device_rows(page, &devices, "/town/devices"))
            h2 { "APIトークン" }
            (token_rows(page, &tokens, "/town/tokens"))
            (token_form(page, &format!("/town/shops/{account}/tokens")))
        },
    ))
}

async fn shop(page: Page, Path(shop): Path<String>) -> PageResult {
    page.admin()?;
    let account = shop_account(&page, &shop)?;
    Ok(shop_page(&page, &account, html! {}, None)?.into_response())
}

/// The shop's page again, with what was made or what went wrong.
fn shop_again(page: &Page, account: &AccountId, made: Result<Markup, ApiError>) -> PageResult {
    match made {
        Ok(made) => Ok(shop_page(page, account, made, None)?.into_response()),
        Err(e) => Err((e.status, shop_page(page, account, html! {}, Some(&e))?).into_response().into()),
    }
}

async fn change_bank(Path(shop): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let account = shop_account(page, &shop)?;
    let changed = match bank_input(&posted) {
        Ok(input) => page.merchant.change_bank(&account, &input).await,
        Err(e) => Err(e),
    };
    let made = changed.map(|view| {
        html! { p #notice .notice role="status" { "振込先を " (view.bank.bank_name) " " (view.bank.branch_name) " に変更しました" } }
    });
    shop_again(page, &account, made)
}

async fn make_pairing(Path(shop): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let account = shop_account(page, &shop)?;
    let caller = DeviceCaller::Shop { shop: account, scope: Scope::Full };
    let made = page.merchant.make_pairing_code(caller, posted.field("label")).await;
    shop_again(page, &account, made.map(|(code, expires)| pairing_made(&code, expires)))
}

async fn make_token(Path(shop): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let account = shop_account(page, &shop)?;
    let made = match parse_scope(posted.field("scope")) {
        Ok(scope) => page.merchant.create_token(account, scope, posted.field("label").to_string()).await,
        Err(e) => Err(e),
    };
    shop_again(page, &account, made.map(|token| token_made(&token)))
}

async fn freeze(Path(shop): Path<String>, posted: Posted) -> PageResult {
    suspend(shop, posted, true).await
}

async fn unfreeze(Path(shop): Path<String>, posted: Posted) -> PageResult {
    suspend(shop, posted, false).await
}

async fn suspend(shop: String, posted: Posted, suspended: bool) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let account = shop_account(page, &shop)?;
    page.merchant.set_suspended(&account, suspended).await.or_page(page)?;
    Ok(see_other(&format!("/town/shops/{account}")))
}

async fn revoke_token(Path(id): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let record = page.merchant.revoke_token(&id).await.or_page(page)?;
    Ok(see_other(&format!("/town/shops/{}", record.shop)))
}

async fn revoke_device(Path(id): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let shop = page.merchant.devices(None).into_iter().find(|d| d.device == id).and_then(|d| d.caller.shop());
    page.merchant.revoke_device(&id, None).await.or_page(page)?;
    Ok(see_other(&shop.map_or("/town".to_string(), |s| format!("/town/shops/{s}"))))
}

/// The issue form's fields: (name in the form and the wallet's TOML, label, input type).
const ISSUE_FIELDS: [(&str, &str, &str); 12] = [
    ("id", "発行回の番号", "number"),
    ("name", "名前", "text"),
    ("price", "1セットの価格（円）", "text"),
    ("common", "1セットの共通券（円）", "text"),
    ("local", "1セットの地元券（円）", "text"),
    ("sets", "販売セット数", "number"),
    ("cap", "1人あたりの上限セット数", "number"),
    ("sale_start", "販売開始日（YYYY-MM-DD）", "date"),
    ("sale_end", "販売終了日", "date"),
    ("spend_until", "使用期限", "date"),
    ("cash_out_deadline", "換金の期限", "date"),
    ("fee", "換金手数料（例 0.5%）", "text"),
];

fn bad_issue(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("bad_issue", message)
}

/// An issue from the form, read as the wallet's `town create-issue` reads its flags
/// (money as people type it, days in JST, the sale's last day whole, a fee in 0.01%
/// steps), then the ledger's own check of an issue's parameters.
pub(super) fn issue_from_form(field: &dyn Fn(&str) -> String) -> Result<IssueParams, ApiError> {
    let number = |name: &str| -> Result<u32, ApiError> {
        field(name).trim().parse().map_err(|_| bad_issue(format!("{name} is a whole number")))
    };
    let money = |name: &str, default: &str| -> Result<Yen, ApiError> {
        let text = field(name);
        let text = if text.trim().is_empty() { default.to_string() } else { text };
        text.parse::<Yen>().map_err(|e| bad_issue(format!("{name}: {e}")))
    };
    let day = |name: &str, end: bool| -> Result<u64, ApiError> {
        let text = field(name);
        let ms = if end {
            machi_ledger::time::end_of_day_jst_ms(text.trim())
        } else {
            machi_ledger::time::start_of_day_jst_ms(text.trim())
        };
        ms.ok_or_else(|| bad_issue(format!("{name}: {text:?} is not a date like 2027-01-31")))
    };
    let fee = field("fee");
    let fee = if fee.trim().is_empty() { "0%".to_string() } else { fee };
    let name = field("name").trim().to_string();
    if name.is_empty() {
        return Err(bad_issue("the issue needs a name"));
    }
    let params = IssueParams {
        id: number("id")?,
        name,
        price: money("price", "10000")?,
        common_per_set: money("common", "6250")?,
        local_per_set: money("local", "6250")?,
        total_sets: number("sets")?,
        max_sets_per_resident: number("cap")?,
        workers_may_buy: !field("workers").is_empty(),
        sale_start_ms: day("sale_start", false)?,
        sale_end_ms: day("sale_end", true)? + 1,
        spend_until_ms: day("spend_until", true)?,
        cash_out_deadline_ms: day("cash_out_deadline", true)?,
        cash_out_fee: fee.parse::<RateBp>().map_err(|e| bad_issue(format!("fee: {e}")))?,
    };
    if !params.is_valid() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            machi_api::TxCode::InvalidParameters.name(),
            "the issue's numbers do not fit together (days in order, cap within the sets, value per set above zero)",
        ));
    }
    Ok(params)
}

/// The issue as the wallet's `--file` TOML.
fn issue_toml(field: &dyn Fn(&str) -> String, params: &IssueParams) -> String {
    let mut out = format!("id = {}\nname = {:?}\n", params.id, params.name);
    for (name, _, _) in ISSUE_FIELDS.iter().skip(2) {
        let value = field(name);
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match *name {
            "sets" | "cap" => out.push_str(&format!("{name} = {value}\n")),
            _ => out.push_str(&format!("{name} = {value:?}\n")),
        }
    }
    if params.workers_may_buy {
        out.push_str("workers = true\n");
    }
    out
}

fn issue_page(page: &Page, field: &dyn Fn(&str) -> String, made: Markup, error: Option<&ApiError>) -> Markup {
    shell(
        Some(page),
        "発行回の作成",
        "issue-new",
        html! {
            h1 { "発行回の作成 " span lang="en" .en { "New issue" } }
            @if page.merchant.issuer.is_some() {
                p .notice { "内容を台帳と同じ規則で確認し、町が登録した発行用の鍵（issuer）で署名して台帳に記録します。" }
            } @else {
                p .notice #issuer-missing { "このサーバーには町が登録した発行用の鍵（--issuer-key）がなく、町の鍵（マスター鍵）も持たないため、"
                    "ここでは内容を台帳と同じ規則で確認し、役場の端末で署名するファイルとコマンドを作ります。" }
            }
            (made)
            (form_error(error))
            form method="post" action="/town/issues/new" {
                (csrf(page))
                div .row {
                    @for (name, label, kind) in ISSUE_FIELDS {
                        div {
                            label for=(format!("issue-{name}")) { (label) }
                            input id=(format!("issue-{name}")) name=(name) type=(kind) value=(field(name));
                        }
                    }
                }
                label for="issue-workers" { "町外で働く人も購入できる" }
                input #issue-workers name="workers" type="checkbox" value="1" checked[!field("workers").is_empty()];
                button #create-issue .primary type="submit" {
                    @if page.merchant.issuer.is_some() { "内容を確認して発行回を作成する" } @else { "内容を確認してファイルを作る" }
                }
            }
        },
    )
}

async fn issue_form(page: Page) -> PageResult {
    page.admin()?;
    Ok(issue_page(&page, &|_| String::new(), html! {}, None).into_response())
}

async fn check_issue(posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    let field = |name: &str| posted.field(name).to_string();
    let mut params = issue_from_form(&field);
    if page.merchant.issuer.is_some() {
        return match params {
            Ok(params) => match create_issue(page, params.clone()).await {
                Ok(height) => {
                    let made = html! {
                        section .card .notice #issue-created role="status" data-issue=(params.id) data-height=(height) {
                            p { "発行回 " strong { (params.id) "：" (params.name) } " を作成しました（ブロック " (height) "）。" }
                        }
                    };
                    Ok(issue_page(page, &|_| String::new(), made, None).into_response())
                }
                Err(e) => {
                    Err((e.status, issue_page(page, &field, html! {}, Some(&e))).into_response().into())
                }
            },
            Err(e) => Err((e.status, issue_page(page, &field, html! {}, Some(&e))).into_response().into()),
        };
    }
    if let Ok(p) = &params {
        // An issue number already on chain would be rejected: say so now.
        if page.merchant.node.issue(p.id).await.is_ok() {
            params = Err(ApiError::new(
                StatusCode::CONFLICT,
                machi_api::TxCode::IssueExists.name(),
                format!("issue {} already exists", p.id),
            ));
        }
    }
    match params {
        Ok(params) => {
            let toml = issue_toml(&field, &params);
            let made = html! {
                section .card .notice #issue-checked role="status" {
                    p { "内容は正しいです。次のファイルを " code { (format!("issue-{}.toml", params.id)) } " として保存し、町のカードで署名してください：" }
                    pre #issue-toml .mono { (toml) }
                    p { code #issue-command .mono { (format!("machi-wallet town create-issue --card <町のカード番号> --file issue-{}.toml", params.id)) } }
                }
            };
            Ok(issue_page(page, &field, made, None).into_response())
        }
        Err(e) => Err((e.status, issue_page(page, &field, html! {}, Some(&e))).into_response().into()),
    }
}

/// Signs the issue with the town's delegated issuer and sends it once: the signed
/// transaction is kept under the issue's number before it leaves, and a second post of the
/// same issue (after a lost answer) sends the same bytes again, so the chain answers it
/// with its first outcome. Returns the block height that holds it.
async fn create_issue(page: &Page, params: IssueParams) -> Result<u64, ApiError> {
    let m = &page.merchant;
    let issuer = m.issuer.as_ref().map(AccountId::of).expect("called only with an issuer key");
    let request = serde_json::to_vec(&params).map_err(|e| ApiError::internal("encoding an issue", e))?;
    let number = params.id.to_string();
    let sign = || {
        let action = machi_ledger::Action::CreateIssue { issue: params.clone() };
        let tx = m.sign_as_issuer(action);
        async move {
            tx.ok_or_else(|| ApiError::bad_request("issuer_not_configured", "the service has no issuer key"))
        }
    };
    let result = m.submit_once(&issuer, "create_issue", Some(&number), &request, sign).await?;
    let height = result.height.expect("applied transactions have a height");
    m.wait_synced(height).await?;
    Ok(height)
}

async fn settlements(page: Page) -> PageResult {
    page.admin()?;
    settlements_page(&page, None).await
}

async fn settlements_page(page: &Page, error: Option<&ApiError>) -> PageResult {
    let m = &page.merchant;
    let pending = m.all_pending_cash_outs().await;
    let mut by_shop: BTreeMap<AccountId, (Yen, usize)> = BTreeMap::new();
    for c in &pending {
        let entry = by_shop.entry(c.shop).or_insert((Yen(0), 0));
        entry.0 = entry
            .0
            .checked_add(c.net)
            .ok_or_else(|| page.error(ApiError::internal("adding cash-outs", "overflow")))?;
        entry.1 += 1;
    }
    let list = m.settlements().await;
    let today = machi_ledger::time::format_jst_date(m.now_ms());
    let status = if error.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
    let markup = shell(
        Some(page),
        "精算",
        "settlements",
        html! {
            h1 { "精算 " span lang="en" .en { "Settlements" } }
            h2 { "換金待ち（お店ごと）" }
            @if by_shop.is_empty() { p .empty { "換金待ちの申請はありません。" } }
            @else {
                div .table-wrap { table #pending {
                    thead { tr { th { "お店" } th .num { "件数" } th .num { "振込額" } } }
                    tbody {
                        @for (shop, (net, count)) in &by_shop {
                            tr data-pending-shop=(shop) {
                                td { (m.shop(shop).map(|s| s.record.name.clone()).unwrap_or_else(|| shop.to_string())) }
                                td .num { (count) }
                                td .amount { (yen(*net)) }
                            }
                        }
                    }
                } }
            }
            (form_error(error))
            form method="post" action="/town/settlements" {
                (csrf(page))
                label for="transfer-date" { "振込指定日 " span lang="en" .en { "Transfer date" } }
                input #transfer-date name="transfer_date" type="date" value=(today) min=(today) required;
                button #create-settlement .primary type="submit" { "精算して振込ファイルを作る" }
            }
            h2 { "これまでの精算" }
            div .table-wrap { table #settlement-list {
                thead { tr { th { "精算" } th { "振込日" } th .num { "件数" } th .num { "合計" } th { "状態" } } }
                tbody {
                    @for s in &list {
                        tr data-settlement=(s.id) {
                            td { a href=(format!("/town/settlements/{}", s.id)) { (s.id) } }
                            td { (s.transfer_date) }
                            td .num { (s.transfers) }
                            td .amount { (yen(s.total)) }
                            td { (status_label(s.status)) }
                        }
                    }
                }
            } }
        },
    );
    let response = (status, markup).into_response();
    if error.is_some() {
        Err(response.into())
    } else {
        Ok(response)
    }
}

fn status_label(status: SettlementStatus) -> &'static str {
    match status {
        SettlementStatus::Submitting => "台帳への記録待ち",
        SettlementStatus::Recorded => "記録済み",
        SettlementStatus::Rejected => "台帳が拒否",
    }
}

async fn settle(posted: Posted) -> PageResult {
    let page = &posted.page;
    page.admin()?;
    match page.merchant.settle(posted.field("transfer_date")).await {
        Ok(settlement) => Ok(see_other(&format!("/town/settlements/{}", settlement.id))),
        Err(e) => settlements_page(page, Some(&e)).await,
    }
}

async fn settlement(page: Page, Path(id): Path<String>) -> PageResult {
    page.admin()?;
    let s = page.merchant.settlement(&id).await.or_page(&page)?;
    let markup = shell(
        Some(&page),
        "精算",
        "settlement",
        html! {
            h1 { "精算 " (s.id) }
            div .table-wrap { table {
                tr { th { "振込指定日" } td #settlement-date { (s.transfer_date) } }
                tr { th { "振込件数" } td { (s.transfers) } }
                tr { th { "合計" } td .amount { (yen(s.total)) } }
                tr { th { "状態" } td #settlement-status { (status_label(s.status)) } }
            } }
            @match (s.status, s.height) {
                (SettlementStatus::Recorded, Some(height)) => {
                    section .card #on-chain {
                        p { "台帳に記録されました。" }
                        p { "ブロック高 " strong .height { (height) } }
                        p { "ファイルのSHA-256 " code .file-sha256 .mono { (s.file_sha256.to_hex()) } }
                        p { "取引ID " code .mono { (s.tx_id) } }
                    }
                    p .actions { a #download-zengin .button .primary href=(format!("/town/settlements/{}/zengin", s.id)) download { "全銀ファイルをダウンロード" } }
                },
                (SettlementStatus::Rejected, _) => {
                    p #rejected .error { "台帳がこの精算を拒否しました（"
                        (s.reason.map_or("", machi_api::TxCode::name)) "）。ファイルは使えません。換金待ちは次の精算に入ります。" }
                },
                _ => {
                    p #pending .notice role="status" { "台帳への記録を待っています。記録されるとダウンロードできます。" }
                    p { a .button href=(format!("/town/settlements/{}", s.id)) { "表示を更新" } }
                },
            }
        },
    );
    let mut response = markup.into_response();
    if s.status == SettlementStatus::Submitting {
        let value = header::HeaderValue::from_str(&SETTLEMENT_REFRESH_S.to_string()).expect("digits");
        response.headers_mut().insert(header::REFRESH, value);
    }
    Ok(response)
}

/// The settlement's Zengin file: the same bytes, and headers, as the API's.
async fn zengin(page: Page, Path(id): Path<String>) -> PageResult {
    page.admin()?;
    let bytes = page.merchant.zengin_file(&id).await.or_page(&page)?;
    let disposition = format!("attachment; filename=\"{id}.txt\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=Shift_JIS".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> String {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map_or(String::new(), |(_, v)| v.to_string())
    }

    const GOOD: &[(&str, &str)] = &[
        ("id", "7"),
        ("name", "2027年 プレミアム商品券"),
        ("price", "10,000"),
        ("common", "6250"),
        ("local", "¥6,250"),
        ("sets", "3000"),
        ("cap", "5"),
        ("sale_start", "2027-01-10"),
        ("sale_end", "2027-01-31"),
        ("spend_until", "2027-06-30"),
        ("cash_out_deadline", "2027-07-31"),
        ("fee", "0.5%"),
    ];

    #[test]
    fn an_issue_is_read_as_the_wallet_reads_one() {
        let params = issue_from_form(&form(GOOD)).unwrap();
        assert_eq!(params.price, Yen(10_000));
        assert_eq!(params.local_per_set, Yen(6_250));
        assert_eq!(params.cash_out_fee, RateBp(50));
        assert_eq!(params.sale_start_ms, machi_ledger::time::start_of_day_jst_ms("2027-01-10").unwrap());
        assert_eq!(params.sale_end_ms, machi_ledger::time::end_of_day_jst_ms("2027-01-31").unwrap() + 1);
        let toml = issue_toml(&form(GOOD), &params);
        assert!(toml.contains("fee = \"0.5%\"") && toml.contains("sets = 3000"), "{toml}");
    }

    #[test]
    fn an_issue_that_does_not_fit_together_is_refused_with_a_code() {
        let bad = |name: &'static str, value: &'static str| {
            let changed: Vec<(&str, &str)> =
                GOOD.iter().map(|(n, v)| if *n == name { (*n, value) } else { (*n, *v) }).collect();
            let leaked: &'static [(&str, &str)] = Box::leak(changed.into_boxed_slice());
            issue_from_form(&form(leaked)).unwrap_err().code
        };
        assert_eq!(bad("fee", "0.005%"), "bad_issue", "finer than 0.01%");
        assert_eq!(bad("fee", "101%"), "bad_issue");
        assert_eq!(bad("sale_end", "2027-13-01"), "bad_issue");
        assert_eq!(bad("price", "12.5"), "bad_issue");
        assert_eq!(bad("cap", "3001"), "invalid_parameters", "a cap above the sets");
        assert_eq!(bad("spend_until", "2027-01-15"), "invalid_parameters", "spending ends before the sale");
        assert_eq!(bad("name", " "), "bad_issue");
    }
}
