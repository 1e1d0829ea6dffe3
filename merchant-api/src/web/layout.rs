//! The page shell (header with the caller's links and signing out), money as people read
//! it, and every error code in plain Japanese.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use machi_api::{explain, Lang, TxCode};
use machi_host::ApiError;
use machi_ledger::Yen;
use maud::{html, Markup, DOCTYPE};

use super::Page;
use crate::model::{DeviceCaller, Scope};

/// `¥1,200`.
pub(crate) fn yen(amount: Yen) -> String {
    amount.to_string()
}

/// A time in JST as people read it: `2026-11-28 14:05`.
pub(crate) fn when(ms: u64) -> String {
    let text = machi_ledger::time::format_jst(ms);
    text.get(..16).unwrap_or(&text).replace('T', " ")
}

/// The merchant API's own codes in plain Japanese (the ledger's are `machi_api::explain`'s).
fn merchant_text(code: &str) -> Option<&'static str> {
    Some(match code {
        "csrf_failed" => "画面の有効期限が切れました。もう一度ページを開き直してください。",
        "wrong_scope" => "この端末の権限では開けない画面です。",
        "shop_only" => "お店の端末で開く画面です。",
        "admin_only" => "役場の端末で開く画面です。",
        "shop_suspended" => "このお店は役場により一時停止されています。役場にお問い合わせください。",
        "bad_pairing_code" => "ペアリングコードが正しくないか、使用済みか、期限（10分）が切れています。",
        "bad_token" => "このトークンは登録されていません。",
        "token_revoked" => "このトークンは無効にされています。",
        "rate_limited" => "試行回数が多すぎます。少し待ってからもう一度お試しください。",
        "bad_amount" => "金額は1円から1,000万円までの整数で入力してください。",
        "bad_memo" => "メモは200文字までです。",
        "bad_scope" => "権限を選んでください。",
        "bad_label" => "名前は100文字までです。",
        "bad_name" => "店名は1〜100文字で入力してください。",
        "bad_kana_name" => "フリガナはカタカナで入力してください。",
        "bad_bank_account" => {
            "口座情報が正しくありません（金融機関コード4桁・支店コード3桁・口座番号7桁・名義はカタカナ）。"
        }
        "invoice_not_paid" => "支払いが済んでいない請求は返金できません。",
        "refund_exceeds_payment" => "返金額は1円から、支払額から返金済み額を引いた額までです。",
        "nothing_to_cash_out" => "換金できる残高がありません。",
        "bad_transfer_date" => "振込指定日は今日以降の日付（YYYY-MM-DD）で入力してください。",
        "nothing_to_settle" => "換金待ちの申請はありません。",
        "town_bank_not_configured" => "役場の口座が設定されていません（--town-bank）。",
        "settlement_not_recorded" => "この精算はまだ台帳に記録されていません。記録後にダウンロードできます。",
        "settlement_rejected" => "台帳がこの精算を拒否しました。このファイルは使えません。",
        "bad_month" => "月はYYYY-MMの形で指定してください。",
        "bad_issue" => "発行回の内容が正しくありません。",
        "issuer_not_configured" => "発行回を作成する鍵（--issuer-key）が設定されていません。",
        "not_found" => "見つかりません。",
        "node_unavailable" => "台帳のサーバーにつながりません。少し待ってからもう一度お試しください。",
        "not_yet_seen" => {
            "台帳には記録されましたが、まだ反映されていません。少し待って画面を開き直してください。"
        }
        "chain_not_trusted" => "台帳の確認に失敗したため、処理を止めています。役場にお問い合わせください。",
        "idempotency_conflict" => "同じ操作が別の内容ですでに行われています。画面を開き直してください。",
        "internal" => "内部のエラーです。役場にお問い合わせください。",
        _ => return None,
    })
}

/// An error code in plain Japanese.
pub(crate) fn japanese(error: &ApiError) -> String {
    if let Some(text) = merchant_text(&error.code) {
        return text.to_string();
    }
    match TxCode::from_name(&error.code) {
        Some(code) => explain(code, Lang::Ja).to_string(),
        None => error.message.clone(),
    }
}

/// `#form-error`: the code in `data-code`, the Japanese text, and the API's own words.
pub(crate) fn form_error(error: Option<&ApiError>) -> Markup {
    html! {
        @if let Some(e) = error {
            div #form-error .error role="alert" data-code=(e.code) {
                p { (japanese(e)) }
                p .detail lang="en" { (e.code) ": " (e.message) }
            }
        }
    }
}

/// A hidden field with the session's CSRF token.
pub(crate) fn csrf(page: &Page) -> Markup {
    html! { input type="hidden" name="csrf" value=(page.session.csrf); }
}

fn nav(page: &Page) -> Markup {
    let links: &[(&str, &str)] = match page.session.caller {
        DeviceCaller::TownOffice => &[
            ("/town", "発行状況"),
            ("/town/shops", "お店"),
            ("/town/issues/new", "発行回の作成"),
            ("/town/settlements", "精算"),
        ],
        DeviceCaller::Shop { scope: Scope::Full, .. } => &[
            ("/counter", "レジ"),
            ("/counter/today", "今日の支払い"),
            ("/office", "残高"),
            ("/office/cash-out", "換金"),
            ("/office/cash-outs", "換金履歴"),
            ("/office/statements", "明細"),
            ("/office/devices", "端末"),
        ],
        DeviceCaller::Shop { .. } => &[("/counter", "レジ"), ("/counter/today", "今日の支払い")],
    };
    let who = match page.session.caller {
        DeviceCaller::TownOffice => "役場".to_string(),
        DeviceCaller::Shop { shop, .. } => {
            page.merchant.shop(&shop).map(|s| s.record.name.clone()).unwrap_or_default()
        }
    };
    html! {
        header .top {
            span #who .who { (who) }
            nav {
                @for (href, label) in links {
                    a href=(href) { (label) }
                }
            }
            form method="post" action="/signout" .signout {
                (csrf(page))
                button #signout type="submit" { "ログアウト" }
            }
        }
    }
}

/// A whole page: `#screen` carries `data-screen`.
pub(crate) fn shell(page: Option<&Page>, title: &str, screen: &str, body: Markup) -> Markup {
    let muted = page.is_some_and(|p| p.muted);
    html! {
        (DOCTYPE)
        html lang="ja" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — machi" }
                link rel="stylesheet" href=(super::assets::CSS_PATH);
                script src=(super::assets::JS_PATH) defer {}
            }
            body data-muted=(if muted { "1" } else { "0" }) {
                @if let Some(page) = page { (nav(page)) }
                main #screen data-screen=(screen) {
                    (body)
                }
            }
        }
    }
}

/// The page for an error: its status, `#error-code`, and for a 403 `#forbidden`.
pub(crate) fn error_page(page: Option<&Page>, error: &ApiError) -> Response {
    let status = if error.status.is_client_error() || error.status.is_server_error() {
        error.status
    } else {
        StatusCode::BAD_REQUEST
    };
    let forbidden = status == StatusCode::FORBIDDEN;
    let screen = if forbidden { "forbidden" } else { "error" };
    let markup = shell(
        page,
        if forbidden { "開けません" } else { "エラー" },
        screen,
        html! {
            section .card #(if forbidden { "forbidden" } else { "error" }) {
                h1 { @if forbidden { "この画面は開けません" } @else { "うまくいきませんでした" } }
                p .lead { (japanese(error)) }
                p .detail lang="en" { code #error-code { (error.code) } " — " (error.message) }
                p {
                    @if let Some(page) = page {
                        a .button href=(page.home()) { "はじめの画面へ" }
                    } @else {
                        a .button href="/pair" { "端末の登録へ" }
                    }
                }
            }
        },
    );
    (status, markup).into_response()
}
