//! The shop's back office (`full`): balances by issue and kind with cash-out deadlines,
//! cash-outs (fee and net shown before confirming) and their history, monthly
//! statements, and the shop's devices and API tokens.

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use machi_host::ApiError;
use machi_ledger::{AccountId, Kind};
use maud::{html, Markup};

use super::counter::parse_yen;
use super::layout::{csrf, form_error, shell, when, yen};
use super::{see_other, OrPage, Page, PageResult, Posted, Refused};
use crate::api::AppState;
use crate::model::{
    CashOutRequest, CashOutStatus, DeviceCaller, Scope, SessionRecord, TokenCreated, TokenRecord,
};
use crate::secrets::random_id;
use crate::sessions::show_pairing_code;

/// Months the statements page lists, this one included.
const STATEMENT_MONTHS: u32 = 12;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/office", get(balances))
        .route("/office/cash-out", get(cash_out_form).post(cash_out_preview))
        .route("/office/cash-out/confirm", post(cash_out_confirm))
        .route("/office/cash-outs", get(cash_outs))
        .route("/office/statements", get(statements))
        .route("/office/statements/{month}", get(statement))
        .route("/office/devices", get(devices))
        .route("/office/devices/pairing", post(make_pairing))
        .route("/office/devices/{id}/revoke", post(revoke_device))
        .route("/office/tokens", post(make_token))
        .route("/office/tokens/{id}/revoke", post(revoke_token))
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Local => "local",
        Kind::Common => "common",
    }
}

async fn balances(page: Page) -> PageResult {
    let shop = page.shop(Scope::Full)?;
    let balance = page.merchant.balance(&shop).await.or_page(&page)?;
    Ok(shell(
        Some(&page),
        "残高",
        "office",
        html! {
            h1 { "残高 " span lang="en" .en { "Balance" } }
            p .total { "合計 " strong #balance-total { (yen(balance.total)) } }
            div .table-wrap {
                table #balances {
                    thead { tr { th { "発行回" } th { "種類" } th .num { "残高" } th { "換金の期限" } } }
                    tbody {
                        @for line in &balance.issues {
                            @for (kind, amount) in [(Kind::Local, line.local), (Kind::Common, line.common)] {
                                tr data-issue=(line.issue) data-kind=(kind_name(kind)) {
                                    td { (line.issue) "：" (line.issue_name) }
                                    td { @if kind == Kind::Local { "地元券" } @else { "共通券" } }
                                    td .balance { (yen(amount)) }
                                    td .deadline { (when(line.cash_out_deadline_ms)) }
                                }
                            }
                        }
                    }
                }
            }
            @if balance.issues.iter().any(|l| !l.pending_cash_out.is_zero()) {
                p { "換金待ち（振込予定）: "
                    @for line in balance.issues.iter().filter(|l| !l.pending_cash_out.is_zero()) {
                        span { (line.issue_name) " " (yen(line.pending_cash_out)) " " }
                    }
                }
            }
            p .actions { a .button .primary href="/office/cash-out" { "換金を申請する" } }
        },
    )
    .into_response())
}

async fn cash_out_form_page(
    page: &Page,
    shop: &AccountId,
    error: Option<&ApiError>,
) -> Result<Markup, Refused> {
    let balance = page.merchant.balance(shop).await.or_page(page)?;
    Ok(shell(
        Some(page),
        "換金の申請",
        "cash-out",
        html! {
            h1 { "換金の申請 " span lang="en" .en { "Cash out" } }
            (form_error(error))
            form method="post" action="/office/cash-out" {
                (csrf(page))
                label for="cash-out-issue" { "発行回" }
                select #cash-out-issue name="issue" {
                    @for line in &balance.issues {
                        option value=(line.issue) { (line.issue) "：" (line.issue_name) "（残高 " (yen(line.total)) "・期限 " (when(line.cash_out_deadline_ms)) "）" }
                    }
                }
                label for="cash-out-amount" { "金額（空欄で全額） " span lang="en" .en { "Amount (blank: all)" } }
                input #cash-out-amount name="amount" type="text" inputmode="numeric";
                button #cash-out-preview .primary type="submit" { "手数料を確認する" }
            }
        },
    ))
}

async fn cash_out_form(page: Page) -> PageResult {
    let shop = page.shop(Scope::Full)?;
    Ok(cash_out_form_page(&page, &shop, None).await?.into_response())
}

fn parse_issue(text: &str) -> Result<u32, ApiError> {
    text.parse().map_err(|_| ApiError::bad_request("not_found", "choose an issue"))
}

/// The fee and net, before anything is asked of the chain.
async fn cash_out_preview(posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::Full)?;
    let typed = posted.field("amount");
    let amount = if typed.is_empty() {
        None
    } else {
        match parse_yen(typed) {
            Some(a) => Some(a),
            None => {
                let e = ApiError::bad_request("bad_amount", "an amount is whole yen");
                return Err((e.status, cash_out_form_page(page, &shop, Some(&e)).await?)
                    .into_response()
                    .into());
            }
        }
    };
    let preview = match parse_issue(posted.field("issue")) {
        Ok(issue) => page.merchant.cash_out_preview(&shop, issue, amount).await,
        Err(e) => Err(e),
    };
    let preview = match preview {
        Ok(p) => p,
        Err(e) => {
            return Err((e.status, cash_out_form_page(page, &shop, Some(&e)).await?).into_response().into())
        }
    };
    Ok(shell(
        Some(page),
        "換金の確認",
        "cash-out",
        html! {
            h1 { "換金の確認" }
            div .table-wrap { table {
                tr { th { "発行回" } td { (preview.issue) } }
                tr { th { "換金額" } td .amount #cash-out-amount-shown { (yen(preview.amount)) } }
                tr { th { "手数料" } td .amount #cash-out-fee { (yen(preview.fee)) } }
                tr { th { "振込額" } td .amount #cash-out-net { (yen(preview.net)) } }
            } }
            form method="post" action="/office/cash-out/confirm" {
                (csrf(page))
                input type="hidden" name="issue" value=(preview.issue);
                input type="hidden" name="amount" value=(preview.amount.0);
                // One cash-out per confirmation, however often it is sent.
                input type="hidden" name="key" value=(random_id("cashout"));
                button #cash-out-confirm .primary type="submit" { (yen(preview.amount)) " を換金する（振込 " (yen(preview.net)) "）" }
            }
            a .button href="/office/cash-out" { "やめる" }
        },
    )
    .into_response())
}

async fn cash_out_confirm(posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::Full)?;
    let issue = parse_issue(posted.field("issue")).or_page(page)?;
    let amount = parse_yen(posted.field("amount"))
        .ok_or_else(|| page.error(ApiError::bad_request("bad_amount", "an amount is whole yen")))?;
    let request = CashOutRequest { issue, amount: Some(amount) };
    let raw = serde_json::to_vec(&request).expect("requests encode");
    let key = Some(posted.field("key")).filter(|k| !k.is_empty());
    let made = page.merchant.request_cash_out(&shop, &request, &raw, key).await.or_page(page)?;
    Ok(see_other(&format!("/office/cash-outs?requested={}", made.id)))
}

#[derive(serde::Deserialize)]
struct CashOutsQuery {
    requested: Option<String>,
}

async fn cash_outs(page: Page, query: axum::extract::Query<CashOutsQuery>) -> PageResult {
    let shop = page.shop(Scope::Full)?;
    let list = page.merchant.cash_outs(&shop);
    let requested = query.requested.as_deref().and_then(|id| list.iter().find(|c| c.id.to_string() == id));
    Ok(shell(
        Some(&page),
        "換金履歴",
        "cash-outs",
        html! {
            h1 { "換金履歴 " span lang="en" .en { "Cash-outs" } }
            @if let Some(c) = requested {
                p #notice .notice role="status" { (yen(c.amount)) " の換金を申請しました（手数料 " (yen(c.fee)) "・振込 " (yen(c.net)) "）" }
            }
            @if list.is_empty() { p .empty { "換金の申請はまだありません。" } }
            @else {
                div .table-wrap { table {
                    thead { tr { th { "申請日時" } th { "発行回" } th .num { "換金額" } th .num { "手数料" } th .num { "振込額" } th { "状態" } th { "振込日" } } }
                    tbody {
                        @for c in &list {
                            tr data-cash-out=(c.id) {
                                td .time { (when(c.requested_ms)) }
                                td { (c.issue) }
                                td .amount { (yen(c.amount)) }
                                td .amount .fee { (yen(c.fee)) }
                                td .amount .net { (yen(c.net)) }
                                td .status data-status=(match c.status { CashOutStatus::Pending => "pending", CashOutStatus::Paid => "paid" }) {
                                    @match c.status { CashOutStatus::Pending => "振込待ち", CashOutStatus::Paid => "振込済み" }
                                }
                                td .transfer-date { (c.transfer_date.as_deref().unwrap_or("—")) }
                            }
                        }
                    }
                } }
            }
        },
    )
    .into_response())
}

/// `YYYY-MM` of this month and the ones before it, newest first.
fn recent_months(now_ms: u64, count: u32) -> Vec<String> {
    let today = machi_ledger::time::format_jst_date(now_ms);
    let (mut year, mut month): (i32, u32) =
        (today[..4].parse().unwrap_or(2026), today[5..7].parse().unwrap_or(1));
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(format!("{year:04}-{month:02}"));
        if month == 1 {
            (year, month) = (year - 1, 12);
        } else {
            month -= 1;
        }
    }
    out
}

async fn statements(page: Page) -> PageResult {
    page.shop(Scope::Full)?;
    let months = recent_months(page.merchant.now_ms(), STATEMENT_MONTHS);
    Ok(shell(
        Some(&page),
        "明細",
        "statements",
        html! {
            h1 { "月次明細 " span lang="en" .en { "Monthly statements" } }
            div .table-wrap { table #months {
                tbody {
                    @for month in &months {
                        tr data-month=(month) {
                            td { (month) }
                            td { a .button href=(format!("/office/statements/{month}")) { "印刷用の明細" } }
                            td { a .button href=(format!("/office/statements/{month}.csv")) download { "CSV" } }
                        }
                    }
                }
            } }
        },
    )
    .into_response())
}

/// `…/2026-11.csv`: the API's CSV bytes; `…/2026-11`: the printable page.
async fn statement(page: Page, Path(month): Path<String>) -> PageResult {
    let shop = page.shop(Scope::Full)?;
    if let Some(month) = month.strip_suffix(".csv") {
        let (csv, closed) = page.merchant.statement(&shop, month).or_page(&page)?;
        let disposition = format!("attachment; filename=\"statement-{month}.csv\"");
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (header::CONTENT_DISPOSITION, disposition),
                (
                    header::HeaderName::from_static("x-statement-status"),
                    if closed { "closed" } else { "open" }.to_string(),
                ),
            ],
            csv,
        )
            .into_response());
    }
    let (csv, closed) = page.merchant.statement(&shop, &month).or_page(&page)?;
    let text = String::from_utf8_lossy(&csv);
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let name = page.merchant.shop(&shop).map(|s| s.record.name.clone()).unwrap_or_default();
    Ok(shell(
        Some(&page),
        "明細",
        "statement",
        html! {
            h1 { (name) " " (month) " の明細" }
            p { @if closed { "締め済み（この明細はもう変わりません）" } @else { "今月分（まだ変わることがあります）" } }
            p .actions .no-print { a .button href=(format!("/office/statements/{month}.csv")) { "CSVでダウンロード" } }
            div .table-wrap { table #statement {
                thead { tr { @for h in &head { th { (h) } } } }
                tbody { @for row in &rows { tr { @for cell in row { td { (cell) } } } } }
            } }
        },
    )
    .into_response())
}

pub(super) fn scope_name(scope: Scope) -> &'static str {
    match scope {
        Scope::ReadOnly => "read_only",
        Scope::PointOfSale => "point_of_sale",
        Scope::Full => "full",
    }
}

pub(super) fn scope_label(scope: Scope) -> &'static str {
    match scope {
        Scope::ReadOnly => "閲覧のみ",
        Scope::PointOfSale => "レジ",
        Scope::Full => "バックオフィス",
    }
}

pub(super) fn parse_scope(text: &str) -> Result<Scope, ApiError> {
    match text {
        "read_only" => Ok(Scope::ReadOnly),
        "point_of_sale" => Ok(Scope::PointOfSale),
        "full" => Ok(Scope::Full),
        _ => Err(ApiError::bad_request("bad_scope", "the scope is read_only, point_of_sale or full")),
    }
}

/// A fresh pairing code, large.
pub(super) fn pairing_made(code: &str, expires_ms: u64) -> Markup {
    html! {
        section .card .notice role="status" {
            p { "この端末の /pair で次のコードを入力してください（" (when(expires_ms)) " まで・1回限り）" }
            p #pairing-code .pairing-code data-code=(code) { (show_pairing_code(code)) }
        }
    }
}

/// A new token, shown once.
pub(super) fn token_made(token: &TokenCreated) -> Markup {
    html! {
        section .card .secret role="status" {
            p { "新しいトークン（" (scope_label(token.scope)) "）。この画面でしか表示されません。安全な場所に控えてください。" }
            p { code #new-token { (token.token) } }
        }
    }
}

/// Devices (sessions) as rows with their revoke forms.
pub(super) fn device_rows(page: &Page, list: &[SessionRecord], revoke_base: &str) -> Markup {
    html! {
        div .table-wrap { table #devices {
            thead { tr { th { "名前" } th { "権限" } th { "登録" } th { "最終利用" } th {} } }
            tbody {
                @for d in list {
                    tr data-device=(d.device) {
                        td { (if d.label.is_empty() { "（名前なし）" } else { d.label.as_str() }) }
                        td { @match d.caller { DeviceCaller::TownOffice => "役場", DeviceCaller::Shop { scope, .. } => (scope_label(scope)) } }
                        td { (when(d.created_ms)) }
                        td { (when(d.last_seen_ms)) }
                        td {
                            @if d.revoked_ms.is_some() { "取り消し済み" }
                            @else {
                                form method="post" action=(format!("{revoke_base}/{}/revoke", d.device)) {
                                    (csrf(page))
                                    button .danger type="submit" data-revoke-device=(d.device) { "取り消す" }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// Tokens as rows with their revoke forms.
pub(super) fn token_rows(page: &Page, list: &[TokenRecord], revoke_base: &str) -> Markup {
    html! {
        div .table-wrap { table #tokens {
            thead { tr { th { "名前" } th { "権限" } th { "作成" } th {} } }
            tbody {
                @for t in list {
                    tr data-token=(t.id) {
                        td { (t.label) }
                        td data-scope=(scope_name(t.scope)) { (scope_label(t.scope)) }
                        td { (when(t.created_ms)) }
                        td {
                            @if t.revoked_ms.is_some() { "無効" }
                            @else {
                                form method="post" action=(format!("{revoke_base}/{}/revoke", t.id)) {
                                    (csrf(page))
                                    button .danger type="submit" data-revoke-token=(t.id) { "無効にする" }
                                }
                            }
                        }
                    }
                }
            }
        } }
    }
}

/// The form that makes an API token (a label and a scope), posted to `action`.
pub(super) fn token_form(page: &Page, action: &str) -> Markup {
    html! {
        form method="post" action=(action) {
            (csrf(page))
            div .row {
                div { label for="token-label" { "トークンの名前" } input #token-label name="label" type="text" maxlength="100"; }
                div { label for="token-scope" { "権限" }
                    select #token-scope name="scope" {
                        option value="point_of_sale" { "レジ（point_of_sale）" }
                        option value="read_only" { "閲覧のみ（read_only）" }
                        option value="full" { "バックオフィス（full）" }
                    }
                }
            }
            button #make-token .primary type="submit" { "トークンを作る" }
        }
    }
}

fn devices_page(page: &Page, shop: &AccountId, made: Markup, error: Option<&ApiError>) -> Markup {
    let m = &page.merchant;
    let list = m.devices(Some(shop));
    let tokens = m.shop_tokens(shop);
    shell(
        Some(page),
        "端末とトークン",
        "devices",
        html! {
            h1 { "端末とトークン " span lang="en" .en { "Devices and tokens" } }
            (made)
            (form_error(error))
            h2 { "端末を追加する（ペアリングコード）" }
            form method="post" action="/office/devices/pairing" {
                (csrf(page))
                div .row {
                    div { label for="device-label" { "端末の名前" } input #device-label name="label" type="text" maxlength="100"; }
                    div { label for="device-scope" { "権限" }
                        select #device-scope name="scope" {
                            option value="point_of_sale" { "レジ（point_of_sale）" }
                            option value="full" { "バックオフィス（full）" }
                        }
                    }
                }
                button #make-pairing .primary type="submit" { "ペアリングコードを作る" }
            }
            h2 { "登録済みの端末" }
            (device_rows(page, &list, "/office/devices"))
            h2 { "APIトークン" }
            (token_rows(page, &tokens, "/office/tokens"))
            (token_form(page, "/office/tokens"))
        },
    )
}

async fn devices(page: Page) -> PageResult {
    let shop = page.shop(Scope::Full)?;
    Ok(devices_page(&page, &shop, html! {}, None).into_response())
}

async fn make_pairing(posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::Full)?;
    let made = match parse_scope(posted.field("scope")) {
        Ok(Scope::ReadOnly) => {
            Err(ApiError::bad_request("bad_scope", "a device is a counter or a back office"))
        }
        Ok(scope) => {
            page.merchant.make_pairing_code(DeviceCaller::Shop { shop, scope }, posted.field("label")).await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok((code, expires)) => {
            Ok(devices_page(page, &shop, pairing_made(&code, expires), None).into_response())
        }
        Err(e) => Err((e.status, devices_page(page, &shop, html! {}, Some(&e))).into_response().into()),
    }
}

async fn revoke_device(Path(id): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::Full)?;
    page.merchant.revoke_device(&id, Some(&shop)).await.or_page(page)?;
    Ok(see_other("/office/devices"))
}

async fn make_token(posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::Full)?;
    let made = match parse_scope(posted.field("scope")) {
        Ok(scope) => page.merchant.create_token(shop, scope, posted.field("label").to_string()).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(token) => Ok(devices_page(page, &shop, token_made(&token), None).into_response()),
        Err(e) => Err((e.status, devices_page(page, &shop, html! {}, Some(&e))).into_response().into()),
    }
}

async fn revoke_token(Path(id): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::Full)?;
    // Only this shop's own tokens: another's is "not found", as in the API.
    if !page.merchant.shop_tokens(&shop).iter().any(|t| t.id == id) {
        return Err(page.error(ApiError::not_found("token")));
    }
    page.merchant.revoke_token(&id).await.or_page(page)?;
    Ok(see_other("/office/devices"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_months_run_back_across_the_year() {
        // 2026-02-15 12:00 JST.
        let ms = machi_ledger::time::start_of_day_jst_ms("2026-02-15").unwrap() + 12 * 3_600_000;
        assert_eq!(recent_months(ms, 3), ["2026-02", "2026-01", "2025-12"]);
    }

    #[test]
    fn scopes_read_back() {
        for scope in [Scope::ReadOnly, Scope::PointOfSale, Scope::Full] {
            assert_eq!(parse_scope(scope_name(scope)).unwrap(), scope);
        }
        assert_eq!(parse_scope("admin").unwrap_err().code, "bad_scope");
    }
}
