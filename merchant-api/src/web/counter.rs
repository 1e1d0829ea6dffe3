//! The shop's counter (`point_of_sale` and above): the keypad, the payment request with
//! its QR code and pay code (live: paid or expired), today's payments with refunds.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use futures_util::stream::{self, Stream};
use machi_host::ApiError;
use machi_ledger::{AccountId, TxId, Yen};
use maud::{html, Markup, PreEscaped};
use serde::Deserialize;

use super::layout::{csrf, form_error, shell, when, yen};
use super::{see_other, set_cookie, OrPage, Page, PageResult, Posted, Refused, MUTE_COOKIE};
use crate::api::AppState;
use crate::invoices::EXPIRES_IN_S_MAX;
use crate::model::{CreateInvoiceRequest, Invoice, InvoiceStatus, Scope};
use crate::secrets::random_id;

/// How often an open request's page stream looks at the clock for its expiry (a
/// payment is sent at once, from the merchant's events).
const EXPIRY_CHECK: Duration = Duration::from_secs(1);
/// Digits the keypad takes (¥99,999,999 is far above the API's largest invoice).
const AMOUNT_DIGITS_MAX: usize = 8;
/// The QR code's drawn size in CSS pixels.
const QR_PIXELS: u32 = 280;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/counter", get(keypad))
        .route("/counter/requests", post(create_request))
        .route("/counter/requests/{id}", get(request))
        .route("/counter/requests/{id}/events", get(request_events))
        .route("/counter/mute", post(mute))
        .route("/counter/today", get(today))
        .route("/counter/payments/{tx}/refund", get(refund_form).post(refund_check))
        .route("/counter/payments/{tx}/refund/confirm", post(refund_confirm))
}

/// Whole yen typed as digits (`1200`, `1,200`, `¥1,200`); `None` if not.
pub(super) fn parse_yen(text: &str) -> Option<Yen> {
    let digits: String = text.trim().trim_start_matches(['¥', '￥']).chars().filter(|c| *c != ',').collect();
    if digits.is_empty()
        || digits.len() > AMOUNT_DIGITS_MAX + 2
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.parse().ok().map(Yen)
}

fn bad_amount() -> ApiError {
    ApiError::bad_request("bad_amount", "an amount is whole yen, at least ¥1")
}

fn keypad_page(page: &Page, error: Option<&ApiError>, amount: &str, memo: &str) -> Markup {
    let shown = parse_yen(amount).map_or_else(|| yen(Yen(0)), yen);
    let keys = ["7", "8", "9", "4", "5", "6", "1", "2", "3", "0", "00", "back"];
    shell(
        Some(page),
        "レジ",
        "counter",
        html! {
            form method="post" action="/counter/requests" .counter {
                (csrf(page))
                input type="hidden" name="key" value=(random_id("req"));
                output #amount .amount-display for="amount-input" { (shown) }
                label .visually-hidden for="amount-input" { "金額（円）" }
                input #amount-input name="amount" type="number" inputmode="numeric" min="1" step="1"
                    value=(amount) .amount-input;
                (form_error(error))
                div .keypad role="group" aria-label="テンキー" {
                    @for key in keys {
                        @match key {
                            "back" => button type="button" data-key="back" .key .key-back aria-label="1文字消す" { "⌫" },
                            _ => button type="button" data-key=(key) .key { (key) },
                        }
                    }
                    button type="button" data-key="clear" .key .key-clear { "クリア" }
                }
                label for="memo" { "メモ（任意） " span lang="en" .en { "Memo" } }
                input #memo name="memo" type="text" maxlength="200" value=(memo);
                button #request-payment .primary .big type="submit" { "お支払いを受ける" }
            }
        },
    )
}

async fn keypad(page: Page) -> PageResult {
    page.shop(Scope::PointOfSale)?;
    Ok(keypad_page(&page, None, "", "").into_response())
}

/// Creates the invoice (once per form, by the form's key) and shows it.
async fn create_request(posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::PointOfSale)?;
    let (amount, memo) = (posted.field("amount"), posted.field("memo"));
    let again =
        |e: ApiError| Refused::from((e.status, keypad_page(page, Some(&e), amount, memo)).into_response());
    let Some(yen_amount) = parse_yen(amount) else { return Err(again(bad_amount())) };
    let request = CreateInvoiceRequest { amount: yen_amount, memo: memo.to_string(), expires_in_s: None };
    let raw = serde_json::to_vec(&request).expect("requests encode");
    let key = Some(posted.field("key")).filter(|k| !k.is_empty());
    match page.merchant.create_invoice(shop, &request, &raw, key).await {
        Ok((invoice, _)) => Ok(see_other(&format!("/counter/requests/{}", invoice.id))),
        Err(e) => Err(again(e)),
    }
}

/// The QR code of a payload as an inline SVG element with id `qr`.
fn qr_svg(payload: &str) -> Markup {
    let Ok(code) = qrcode::QrCode::new(payload.as_bytes()) else { return html! {} };
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(QR_PIXELS, QR_PIXELS)
        .quiet_zone(true)
        .build();
    // The renderer writes an XML declaration first; inline SVG in HTML starts at <svg.
    let start = svg.find("<svg").unwrap_or(0);
    let svg = svg[start..].replacen("<svg", "<svg id=\"qr\" role=\"img\" aria-label=\"支払い用QRコード\"", 1);
    PreEscaped(svg)
}

/// `12345678` → `1234 5678`.
fn spaced(code: &str) -> String {
    let (a, b) = code.split_at(code.len() / 2);
    format!("{a} {b}")
}

fn request_page(page: &Page, invoice: &Invoice) -> Markup {
    let now = page.merchant.now_ms();
    let paid = invoice.payment.is_some();
    let expired = invoice.status == InvoiceStatus::Expired;
    let left_s = invoice.expires_ms.saturating_sub(now) / 1000;
    shell(
        Some(page),
        "お支払い",
        "request",
        html! {
            section .request data-events=(format!("/counter/requests/{}/events", invoice.id)) {
                div #waiting hidden[paid || expired] {
                    p #request-amount .amount-display { (yen(invoice.amount)) }
                    @if !invoice.memo.is_empty() { p .memo { (invoice.memo) } }
                    @if let Some(payload) = &invoice.qr_payload { div .qr { (qr_svg(payload)) } }
                    @if let Some(code) = &invoice.pay_code {
                        p .label { "支払いコード " span lang="en" .en { "Pay code" } }
                        p #pay-code .pay-code data-code=(code) { (spaced(code)) }
                    }
                    p .time-left { "残り時間 " span #time-left data-seconds=(left_s) {
                        (format!("{}:{:02}", left_s / 60, left_s % 60)) } }
                }
                div #thank-you .thank-you hidden[!paid] role="status" {
                    p .big-message { "お支払いありがとうございます" }
                    p #thank-you-amount .amount-display { (yen(invoice.amount)) }
                    p lang="en" .en { "Thank you for your payment" }
                }
                div #expired .expired hidden[!expired || paid] role="status" {
                    p .big-message { "この支払い依頼は期限が切れました" }
                    p lang="en" .en { "This payment request has expired." }
                }
                div .actions {
                    a #new-request .button .primary href="/counter" { "次のお支払い" }
                    form method="post" action="/counter/mute" {
                        (csrf(page))
                        input type="hidden" name="back" value=(format!("/counter/requests/{}", invoice.id));
                        input type="hidden" name="mute" value=(if page.muted { "0" } else { "1" });
                        button #mute type="submit" aria-pressed=(if page.muted { "true" } else { "false" }) {
                            @if page.muted { "🔇 音：オフ" } @else { "🔔 音：オン" }
                        }
                    }
                }
            }
        },
    )
}

async fn request(page: Page, Path(id): Path<String>) -> PageResult {
    let shop = page.shop(Scope::ReadOnly)?;
    let invoice = page.merchant.invoice(&shop, &id).or_page(&page)?;
    Ok(request_page(&page, &invoice).into_response())
}

struct Watch {
    merchant: AppState,
    shop: AccountId,
    id: String,
    live: tokio::sync::broadcast::Receiver<crate::model::ShopEvent>,
    closing: tokio::sync::watch::Receiver<bool>,
    done: bool,
}

/// `paid` (with the amount as shown) or `expired`, once, for the request page's script.
async fn request_events(
    page: Page,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refused> {
    let shop = page.shop(Scope::ReadOnly)?;
    let m = page.merchant.clone();
    // Subscribed before the first look, so a payment between the two is not missed.
    let live = m.events.subscribe();
    m.invoice(&shop, &id).or_page(&page)?;
    let closing = m.closing.subscribe();
    let watch = Watch { merchant: m, shop, id, live, closing, done: false };
    let stream = stream::unfold(watch, |mut w| async move {
        if w.done {
            return None;
        }
        loop {
            let invoice = w.merchant.invoice(&w.shop, &w.id).ok()?;
            if invoice.payment.is_some() {
                w.done = true;
                let data = serde_json::json!({ "amount": yen(invoice.amount) }).to_string();
                return Some((Ok(Event::default().event("paid").data(data)), w));
            }
            if invoice.status == InvoiceStatus::Expired {
                w.done = true;
                return Some((Ok(Event::default().event("expired").data("{}")), w));
            }
            tokio::select! {
                received = w.live.recv() => {
                    if matches!(received, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                        return None;
                    }
                }
                _ = tokio::time::sleep(EXPIRY_CHECK) => {}
                _ = w.closing.wait_for(|c| *c) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// Mutes (or unmutes) the chime on this device, in a cookie; back to the page.
async fn mute(posted: Posted) -> PageResult {
    posted.page.shop(Scope::ReadOnly)?;
    let back = posted.field("back");
    let back = if back.starts_with("/counter") && !back.starts_with("//") { back } else { "/counter" };
    let on = posted.field("mute") == "1";
    let age = if on { 10 * 365 * DAY_MS / 1000 } else { 0 };
    let cookie = set_cookie(MUTE_COOKIE, if on { "1" } else { "0" }, Some(age), posted.page.secure);
    Ok(([(header::SET_COOKIE, cookie)], see_other(back)).into_response())
}

/// Today's (JST) paid invoices, newest first, by when they were paid.
fn paid_today(page: &Page, shop: &AccountId) -> Vec<Invoice> {
    let m = &page.merchant;
    let today = machi_ledger::time::format_jst_date(m.now_ms());
    let start = machi_ledger::time::start_of_day_jst_ms(&today).expect("a date this program wrote");
    let end = machi_ledger::time::end_of_day_jst_ms(&today).expect("a date this program wrote");
    // An invoice made before midnight may be paid after it.
    let made_from = start.saturating_sub(u64::from(EXPIRES_IN_S_MAX) * 1000);
    let mut list: Vec<Invoice> = m
        .invoices(shop, None, made_from, end, crate::invoices::INVOICES_LIST_MAX)
        .into_iter()
        .filter(|i| i.payment.as_ref().is_some_and(|p| (start..=end).contains(&p.timestamp_ms)))
        .collect();
    list.sort_by_key(|i| std::cmp::Reverse(i.payment.as_ref().map(|p| p.timestamp_ms)));
    list
}

#[derive(Deserialize)]
struct TodayQuery {
    refunded: Option<String>,
}

async fn today(page: Page, query: Query<TodayQuery>) -> PageResult {
    let shop = page.shop(Scope::ReadOnly)?;
    let may_refund = page.shop(Scope::PointOfSale).is_ok();
    let list = paid_today(&page, &shop);
    let total = list
        .iter()
        .try_fold(Yen(0), |sum, i| sum.checked_add(i.amount.checked_sub(i.refunded)?))
        .ok_or_else(|| page.error(ApiError::internal("adding today's payments", "overflow")))?;
    let refunded = query.refunded.as_deref().and_then(parse_yen);
    Ok(shell(
        Some(&page),
        "今日の支払い",
        "today",
        html! {
            h1 { "今日の支払い " span lang="en" .en { "Today's payments" } }
            @if let Some(amount) = refunded {
                p #notice .notice role="status" { (yen(amount)) " を返金しました" }
            }
            p .total { "今日の合計（返金を除く） " strong #today-total { (yen(total)) } }
            @if list.is_empty() {
                p .empty { "今日の支払いはまだありません。" }
            } @else {
                div .table-wrap {
                    table .payments {
                        thead { tr { th { "時刻" } th { "金額" } th { "返金済み" } th { "メモ" } th {} } }
                        tbody {
                            @for invoice in &list {
                                @let payment = invoice.payment.as_ref().expect("paid invoices only");
                                tr data-payment=(payment.tx_id) {
                                    td .time { (when(payment.timestamp_ms).get(11..).unwrap_or_default()) }
                                    td .amount { (yen(invoice.amount)) }
                                    td .refunded { (yen(invoice.refunded)) }
                                    td .memo { (invoice.memo) }
                                    td {
                                        @if may_refund && invoice.refunded < invoice.amount {
                                            a .button data-refund=(payment.tx_id)
                                                href=(format!("/counter/payments/{}/refund", payment.tx_id)) { "返金" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response())
}

/// The invoice a payment paid, if it is this shop's.
fn paid_invoice(page: &Page, shop: &AccountId, tx: &str) -> Result<Invoice, Refused> {
    let not_found = || page.error(ApiError::not_found("payment"));
    let tx = TxId::from_hex(tx).ok_or_else(not_found)?;
    let id = page.merchant.store.payments.get(tx.0).ok().flatten().ok_or_else(not_found)?;
    page.merchant.invoice(shop, &String::from_utf8_lossy(&id)).map_err(|_| not_found())
}

fn left_to_refund(invoice: &Invoice) -> Yen {
    invoice.amount.checked_sub(invoice.refunded).unwrap_or(Yen(0))
}

fn refund_page(page: &Page, tx: &str, invoice: &Invoice, amount: &str, error: Option<&ApiError>) -> Markup {
    shell(
        Some(page),
        "返金",
        "refund",
        html! {
            h1 { "返金 " span lang="en" .en { "Refund" } }
            p { "お支払い " strong { (yen(invoice.amount)) } "（返金済み " (yen(invoice.refunded)) "）" }
            (form_error(error))
            form method="post" action=(format!("/counter/payments/{tx}/refund")) {
                (csrf(page))
                label for="refund-amount" { "返金する金額（円） " span lang="en" .en { "Amount" } }
                input #refund-amount name="amount" type="text" inputmode="numeric"
                    value=(amount) required;
                button #refund-next .primary type="submit" { "次へ（確認）" }
            }
            a .button href="/counter/today" { "戻る" }
        },
    )
}

async fn refund_form(page: Page, Path(tx): Path<String>) -> PageResult {
    let shop = page.shop(Scope::PointOfSale)?;
    let invoice = paid_invoice(&page, &shop, &tx)?;
    let left = left_to_refund(&invoice).0.to_string();
    Ok(refund_page(&page, &tx, &invoice, &left, None).into_response())
}

fn refund_too_much(left: Yen) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::UNPROCESSABLE_ENTITY,
        "refund_exceeds_payment",
        format!("a refund is ¥1 to {left} (what the payment took less earlier refunds)"),
    )
}

/// Checks the amount and asks for a confirmation that names it.
async fn refund_check(Path(tx): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::PointOfSale)?;
    let invoice = paid_invoice(page, &shop, &tx)?;
    let typed = posted.field("amount");
    let left = left_to_refund(&invoice);
    let again = |e: ApiError| {
        Refused::from((e.status, refund_page(page, &tx, &invoice, typed, Some(&e))).into_response())
    };
    let amount = parse_yen(typed).ok_or_else(|| again(bad_amount()))?;
    if amount.is_zero() || amount > left {
        return Err(again(refund_too_much(left)));
    }
    Ok(shell(
        Some(page),
        "返金の確認",
        "refund",
        html! {
            h1 { "返金の確認" }
            p .lead { strong #refund-confirm-amount .amount-display { (yen(amount)) } " を返金します。よろしいですか？" }
            p lang="en" .en { "Refund " (yen(amount)) " to the customer who paid?" }
            form method="post" action=(format!("/counter/payments/{tx}/refund/confirm")) {
                (csrf(page))
                input type="hidden" name="amount" value=(amount.0);
                // One refund per confirmation, however often it is sent.
                input type="hidden" name="key" value=(random_id("refund"));
                button #refund-confirm .primary .danger type="submit" { (yen(amount)) " を返金する" }
            }
            a .button href="/counter/today" { "やめる" }
        },
    )
    .into_response())
}

async fn refund_confirm(Path(tx): Path<String>, posted: Posted) -> PageResult {
    let page = &posted.page;
    let shop = page.shop(Scope::PointOfSale)?;
    let invoice = paid_invoice(page, &shop, &tx)?;
    let amount = parse_yen(posted.field("amount")).ok_or_else(|| page.error(bad_amount()))?;
    let key = posted.field("key");
    let raw = serde_json::to_vec(&crate::model::RefundRequest { amount }).expect("requests encode");
    let key = Some(key).filter(|k| !k.is_empty());
    page.merchant.refund(&shop, &invoice.id, amount, &raw, key).await.or_page(page)?;
    Ok(see_other(&format!("/counter/today?refunded={}", amount.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_typed() {
        assert_eq!(parse_yen("1200"), Some(Yen(1200)));
        assert_eq!(parse_yen("¥1,200"), Some(Yen(1200)));
        assert_eq!(parse_yen(" 300 "), Some(Yen(300)));
        assert_eq!(parse_yen(""), None);
        assert_eq!(parse_yen("12.5"), None);
        assert_eq!(parse_yen("-5"), None);
        assert_eq!(parse_yen("99999999999"), None, "more digits than any amount");
    }

    #[test]
    fn the_qr_code_is_an_inline_svg_with_its_id() {
        let svg = qr_svg("machi:pay?code=12345678").into_string();
        assert!(svg.starts_with("<svg id=\"qr\""), "{}", &svg[..40]);
        assert!(!svg.contains("<?xml") && !svg.contains("style="));
    }
}
