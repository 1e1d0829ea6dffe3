//! Pairing a device (a code from the back office, the town office or `machi-merchant
//! pair`, or a token pasted once) and signing out.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use machi_host::ApiError;
use maud::html;

use super::layout::{form_error, shell};
use super::{parse_form, same_origin, see_other, set_cookie, Posted, SESSION_COOKIE};
use crate::api::AppState;
use crate::limiter::client_address;
use crate::sessions::SESSION_ABSOLUTE_MS;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/pair", get(pair_form).post(pair)).route("/signout", post(sign_out))
}

fn pair_page(signed_out: bool, error: Option<&ApiError>) -> maud::Markup {
    shell(
        None,
        "端末の登録",
        "pair",
        html! {
            section .card {
                h1 { "端末の登録 " span lang="en" .en { "Pair this device" } }
                @if signed_out {
                    p #signed-out .notice role="status" {
                        "この端末はログアウトされました（取り消し・期限切れ）。もう一度登録してください。"
                    }
                }
                p { "バックオフィスまたは役場で発行された8桁のペアリングコード（10分間有効）を入力してください。"
                    "トークン（mst_… / mta_…）を一度だけ貼り付けることもできます。" }
                (form_error(error))
                form method="post" action="/pair" {
                    label for="pair-code" { "ペアリングコード " span lang="en" .en { "Pairing code" } }
                    input #pair-code name="code" type="text" inputmode="numeric" autocomplete="off"
                        required placeholder="1234-5678";
                    label for="pair-label" { "端末の名前（任意） " span lang="en" .en { "Device name" } }
                    input #pair-label name="label" type="text" maxlength="100" placeholder="レジのタブレット";
                    button #pair-submit .primary type="submit" { "登録する" }
                }
            }
        },
    )
}

#[derive(serde::Deserialize)]
struct PairQuery {
    #[serde(rename = "signed-out")]
    signed_out: Option<String>,
}

async fn pair_form(query: Query<PairQuery>) -> Response {
    let signed_out = query.signed_out.is_some();
    pair_page(signed_out, None).into_response()
}

/// Uses the code (or token) and sets the session cookie; 303 to the caller's home.
async fn pair(
    State(m): State<AppState>,
    headers: HeaderMap,
    request_parts: RequestParts,
    body: Bytes,
) -> Response {
    let refuse = |error: ApiError| (error.status, pair_page(false, Some(&error))).into_response();
    if !same_origin(&headers) {
        return refuse(ApiError::new(StatusCode::FORBIDDEN, "csrf_failed", "a form from another site"));
    }
    if let Some(peer) = request_parts.peer {
        let client = client_address(peer, &headers, &m.network.trusted_proxies);
        if m.pair_limiter.lock().expect("limiter lock").take(client, m.now_ms()).is_err() {
            return refuse(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many pairing attempts; wait a moment",
            ));
        }
    }
    let fields = parse_form(&body).await;
    let code = fields.get("code").map_or("", |c| c.trim());
    let label = fields.get("label").map_or("", |l| l.trim());
    let paired = if code.starts_with("mst_") || code.starts_with("mta_") {
        m.pair_with_token(code, label).await
    } else {
        m.pair(code, label).await
    };
    match paired {
        Ok((cookie, session)) => {
            let age = SESSION_ABSOLUTE_MS / 1000;
            let cookie = set_cookie(SESSION_COOKIE, &cookie, Some(age), request_parts.secure);
            ([(header::SET_COOKIE, cookie)], see_other(super::home_of(&session))).into_response()
        }
        Err(error) => refuse(error),
    }
}

/// Whether the request came over TLS, for the cookie's `Secure` flag.
struct RequestParts {
    secure: bool,
    peer: Option<std::net::IpAddr>,
}

impl axum::extract::FromRequestParts<AppState> for RequestParts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        m: &AppState,
    ) -> Result<RequestParts, std::convert::Infallible> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(RequestParts { secure: super::over_tls(m, parts), peer })
    }
}

async fn sign_out(headers: HeaderMap, posted: Posted) -> Response {
    let m = &posted.page.merchant;
    if let Some(cookie) = super::cookie(&headers, SESSION_COOKIE) {
        if let Err(e) = m.sign_out(cookie).await {
            return posted.page.error(e).into_response();
        }
    }
    let clear = set_cookie(SESSION_COOKIE, "", Some(0), posted.page.secure);
    ([(header::SET_COOKIE, clear)], see_other("/pair")).into_response()
}
