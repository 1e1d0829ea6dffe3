//! The pages (docs/MERCHANT-API.md, "Screens"): the shop's counter, the shop's back
//! office and the town office, rendered on the server with maud and served on the API's
//! own listener. They are clients of the same `Merchant` operations the JSON API calls,
//! with the session's caller checked by the API's own `Auth` rules, so a counter can do
//! what a `point_of_sale` token can and no more.
//!
//! Layout: `mod.rs` (routes, the session and form extractors, security headers, error
//! pages), `layout` (the page shell, money, the Japanese error texts), `pair` (pairing and
//! signing out), `counter`, `office`, `town`, `assets` (CSS, the small JS, the chime).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use machi_host::ApiError;
use machi_ledger::AccountId;

use crate::api::{AppState, Auth};
use crate::model::{Scope, SessionRecord};
use crate::sessions::{same_secret, NoSession};

mod assets;
mod counter;
mod layout;
mod office;
mod pair;
mod town;

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "machi_session";
/// The cookie that mutes the counter's chime on this device.
pub(crate) const MUTE_COOKIE: &str = "machi_mute";

/// Every page's Content-Security-Policy: nothing inline, nothing from elsewhere.
pub(crate) const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .merge(pair::router())
        .merge(counter::router())
        .merge(office::router())
        .merge(town::router())
        .merge(assets::router())
        .layer(axum::middleware::from_fn(security_headers))
}

/// A page for a path nothing serves, with the pages' headers.
pub(crate) fn not_found() -> Response {
    let error = ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such page");
    let mut response = layout::error_page(None, &error);
    add_security_headers(&mut response);
    response
}

/// The headers every page and asset carries.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    add_security_headers(&mut response);
    response
}

fn add_security_headers(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

/// `/`: the caller's home, or pairing.
async fn home(page: Result<Page, Refused>) -> Response {
    match page {
        Ok(page) => Redirect::to(page.home()).into_response(),
        Err(_) => Redirect::to("/pair").into_response(),
    }
}

/// Where a session of this caller starts.
pub(crate) fn home_of(session: &SessionRecord) -> &'static str {
    match session.caller {
        crate::model::DeviceCaller::TownOffice => "/town",
        crate::model::DeviceCaller::Shop { scope: Scope::Full, .. } => "/office",
        crate::model::DeviceCaller::Shop { .. } => "/counter",
    }
}

/// The value of cookie `name` in a request's headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS: `--secure-cookies`, or a trusted reverse
/// proxy saying `X-Forwarded-Proto: https`.
pub(crate) fn over_tls(merchant: &crate::merchant::Merchant, parts: &Parts) -> bool {
    if merchant.network.secure_cookies {
        return true;
    }
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let trusted = peer.is_some_and(|p| merchant.network.trusted_proxies.contains(&p));
    trusted
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value with the flags every cookie of ours has.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_s: Option<u64>, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_s {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).expect("cookie values are ASCII")
}

/// A page request with a live session.
pub(crate) struct Page {
    pub(crate) merchant: AppState,
    pub(crate) session: SessionRecord,
    pub(crate) secure: bool,
    pub(crate) muted: bool,
}

impl FromRequestParts<AppState> for Page {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, merchant: &AppState) -> Result<Page, Refused> {
        let secure = over_tls(merchant, parts);
        let found = merchant.session(cookie(&parts.headers, SESSION_COOKIE));
        let session = match found {
            Ok(session) => session,
            Err(why) => {
                let to = match why {
                    NoSession::Missing => "/pair",
                    NoSession::SignedOut => "/pair?signed-out",
                };
                let clear = set_cookie(SESSION_COOKIE, "", Some(0), secure);
                return Err(([(header::SET_COOKIE, clear)], Redirect::to(to)).into_response().into());
            }
        };
        let page = Page {
            merchant: merchant.clone(),
            session,
            secure,
            muted: cookie(&parts.headers, MUTE_COOKIE) == Some("1"),
        };
        if let Some(shop) = page.session.caller.shop() {
            if let Err(e) = merchant.check_not_suspended(&shop) {
                return Err(page.error(e));
            }
        }
        Ok(page)
    }
}

impl Page {
    /// The session's shop, if its scope allows `needed` (the API's rule).
    pub(crate) fn shop(&self, needed: Scope) -> Result<AccountId, Refused> {
        Auth(self.session.api_caller()).shop(needed).map_err(|e| self.error(e))
    }

    /// The town office only (the API's rule).
    pub(crate) fn admin(&self) -> Result<(), Refused> {
        Auth(self.session.api_caller()).admin().map_err(|e| self.error(e))
    }

    pub(crate) fn home(&self) -> &'static str {
        home_of(&self.session)
    }

    /// An error as a whole page with its status: `#forbidden` for a 403.
    pub(crate) fn error(&self, error: ApiError) -> Refused {
        layout::error_page(Some(self), &error).into()
    }
}

/// A page's answer: the page, or an error page.
pub(crate) type PageResult = Result<Response, Refused>;

/// An error page or a redirect given instead of the page asked for (boxed: a response
/// is large, and most answers are not refusals).
pub(crate) struct Refused(Box<Response>);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        *self.0
    }
}

impl From<Response> for Refused {
    fn from(response: Response) -> Refused {
        Refused(Box::new(response))
    }
}

/// An `ApiError` turned into the error page, for `?`.
pub(crate) trait OrPage<T> {
    fn or_page(self, page: &Page) -> Result<T, Refused>;
}

impl<T> OrPage<T> for Result<T, ApiError> {
    fn or_page(self, page: &Page) -> Result<T, Refused> {
        self.map_err(|e| page.error(e))
    }
}

/// A POSTed form from a page with a session, its CSRF token checked (in constant time)
/// and, when the browser names one, its origin checked.
pub(crate) struct Posted {
    pub(crate) page: Page,
    pub(crate) fields: HashMap<String, String>,
}

impl Posted {
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", |v| v.trim())
    }
}

fn csrf_failed(page: Option<&Page>) -> Refused {
    let error = ApiError::new(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "the form's check token is missing or wrong; load the page again",
    );
    layout::error_page(page, &error).into()
}

/// Whether a POST comes from one of the service's own pages. A browser says so in
/// `Sec-Fetch-Site` (`same-origin`; `none` when the person typed it); without that header,
/// an `Origin` other than `null` must be this host (as the request names it, or as a
/// reverse proxy passes it on in `X-Forwarded-Host`). Under `Referrer-Policy: no-referrer`
/// a browser's own form says `Origin: null`, so `null` alone decides nothing: the CSRF
/// token does.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(site) = text("sec-fetch-site") {
        return site == "same-origin" || site == "none";
    }
    let origin = match text(header::ORIGIN.as_str()) {
        None | Some("null") => return true,
        Some(origin) => origin,
    };
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest);
    [header::HOST.as_str(), "x-forwarded-host"]
        .iter()
        .filter_map(|name| text(name))
        .any(|host| !host.is_empty() && origin_host == host)
}

impl FromRequest<AppState> for Posted {
    type Rejection = Refused;

    async fn from_request(request: Request, state: &AppState) -> Result<Posted, Refused> {
        let (mut parts, body) = request.into_parts();
        let page = Page::from_request_parts(&mut parts, state).await?;
        if !same_origin(&parts.headers) {
            return Err(csrf_failed(Some(&page)));
        }
        let request = Request::from_parts(parts, body);
        let raw = Bytes::from_request(request, state).await.map_err(|e| Refused::from(e.into_response()))?;
        let fields = parse_form(&raw).await;
        let sent = fields.get("csrf").map_or("", String::as_str);
        if !same_secret(sent, &page.session.csrf) {
            return Err(csrf_failed(Some(&page)));
        }
        Ok(Posted { page, fields })
    }
}

/// `a=1&b=x` as a map (the last of a repeated name wins); not a form, an empty map.
pub(crate) async fn parse_form(raw: &Bytes) -> HashMap<String, String> {
    let request = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(raw.clone()))
        .expect("a request of a body and one header");
    let form = axum::extract::Form::<Vec<(String, String)>>::from_request(request, &()).await;
    form.map(|f| f.0.into_iter().collect()).unwrap_or_default()
}

/// 303 to `to`.
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}
