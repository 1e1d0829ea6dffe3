//! The pages over real HTTP, as a browser uses them (cookies kept by hand, redirects
//! looked at, forms posted with their CSRF token): pairing, cookies and headers, CSRF,
//! who may open what, revoking and expiry, and the counter's, back office's and town
//! office's operations agreeing with the JSON API's.

use std::collections::HashMap;
use std::time::Duration;

use machi_merchant::{DeviceCaller, Scope};

use crate::harness::Town;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// One page answer.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The value of `attribute` on the first element that has `marker` in its tag.
    pub(crate) fn attribute(&self, marker: &str, attribute: &str) -> Option<String> {
        let at = self.body.find(marker)?;
        let tag_start = self.body[..at].rfind('<')?;
        let tag_end = at + self.body[at..].find('>')?;
        let tag = &self.body[tag_start..tag_end];
        let needle = format!(" {attribute}=\"");
        let from = tag.find(&needle)? + needle.len();
        Some(tag[from..from + tag[from..].find('"')?].to_string())
    }

    /// The text right inside the element with `id`.
    pub(crate) fn text_of(&self, id: &str) -> Option<String> {
        let at = self.body.find(&format!("id=\"{id}\""))?;
        let open_end = at + self.body[at..].find('>')? + 1;
        let close = open_end + self.body[open_end..].find('<')?;
        Some(self.body[open_end..close].trim().to_string())
    }

    pub(crate) fn csrf(&self) -> String {
        self.attribute("name=\"csrf\"", "value").expect("the page has a form with its CSRF token")
    }

    pub(crate) fn error_code(&self) -> Option<String> {
        self.text_of("error-code").or_else(|| self.attribute("id=\"form-error\"", "data-code"))
    }

    /// Whether the element with `id` is there and not `hidden`.
    pub(crate) fn shows(&self, id: &str) -> bool {
        let Some(at) = self.body.find(&format!("id=\"{id}\"")) else { return false };
        let start = self.body[..at].rfind('<').unwrap();
        let end = at + self.body[at..].find('>').unwrap();
        !self.body[start..end].contains(" hidden")
    }
}

/// A browser: keeps its cookies, follows no redirect by itself.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
    pub(crate) cookies: HashMap<String, String>,
    /// Headers sent with every request (e.g. a proxy's).
    extra: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new(town: &Town) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: town.url.clone(), cookies: HashMap::new(), extra: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let cleared = text.contains("Max-Age=0");
            if cleared || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let mut request = request.header("cookie", self.cookie_header());
        for (name, value) in &self.extra {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.expect("the merchant answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        self.keep_cookies(&headers);
        Answer { status, headers, body: response.text().await.unwrap() }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(request).await
    }

    /// Posts a form with the CSRF token of the page at `page`.
    pub(crate) async fn submit(&mut self, page: &str, path: &str, form: &[(&str, &str)]) -> Answer {
        let csrf = self.get(page).await.csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    /// Pairs with `code`; returns the answer to the POST.
    pub(crate) async fn pair(&mut self, code: &str) -> Answer {
        self.post("/pair", &[("code", code), ("label", "test device")]).await
    }
}

pub(crate) fn code_for(town: &Town, caller: DeviceCaller) -> String {
    machi_merchant::pairing_code_offline(&town.merchant_dir, caller, "", town.now()).expect("pairing code")
}

pub(crate) async fn paired(town: &Town, caller: DeviceCaller) -> Browser {
    let mut browser = Browser::new(town);
    let answer = browser.pair(&code_for(town, caller)).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    browser
}

pub(crate) fn shop_id(shop: &str) -> machi_ledger::AccountId {
    shop.parse().unwrap()
}

/// Opens a request page's event stream.
async fn watch(browser: &Browser, path: &str) -> reqwest::Response {
    let response = browser
        .http
        .get(format!("{}{path}", browser.base))
        .header("cookie", browser.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    response
}

/// Reads the stream until its text holds every one of `wanted` (up to 20 s); the text read.
async fn read_until(stream: &mut reqwest::Response, wanted: &[&str]) -> Result<String, String> {
    let mut seen = String::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.chunk().await.unwrap() {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if wanted.iter().all(|w| seen.contains(w)) {
                return true;
            }
        }
        false
    })
    .await;
    match read {
        Ok(true) => Ok(seen),
        _ => Err(seen),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_pairs_requests_a_payment_sees_it_paid_and_refunds_part_once() {
    let town = Town::start().await;
    let shop = town.register_shop("八百屋", "local", "ヤオヤ").await;
    let token = town.token(&shop, "read_only").await;
    let mut counter =
        paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale }).await;

    let keypad = counter.get("/counter").await;
    assert_eq!(keypad.status, 200, "{}", keypad.body);
    assert!(keypad.body.contains("data-screen=\"counter\""));
    for key in ["1", "9", "0", "00", "back", "clear"] {
        assert!(keypad.body.contains(&format!("data-key=\"{key}\"")), "key {key}");
    }
    let key = keypad.attribute("name=\"key\"", "value").unwrap();
    let made = counter
        .post(
            "/counter/requests",
            &[("csrf", &keypad.csrf()), ("key", &key), ("amount", "1200"), ("memo", "")],
        )
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    let request_path = made.location().to_string();
    let invoice = request_path.strip_prefix("/counter/requests/").unwrap().to_string();
    // The same form sent twice (a double tap) makes one request.
    let again = counter
        .post(
            "/counter/requests",
            &[("csrf", &keypad.csrf()), ("key", &key), ("amount", "1200"), ("memo", "")],
        )
        .await;
    assert_eq!(again.location(), request_path);

    let page = counter.get(&request_path).await;
    assert_eq!(page.status, 200);
    let code = page.attribute("id=\"pay-code\"", "data-code").unwrap();
    assert_eq!(code.len(), 8);
    assert_eq!(page.text_of("pay-code").unwrap(), format!("{} {}", &code[..4], &code[4..]));
    assert!(page.body.contains("<svg id=\"qr\""), "an inline SVG QR code");
    assert_eq!(page.text_of("request-amount").unwrap(), "¥1,200");
    assert!(page.shows("waiting") && !page.shows("thank-you") && !page.shows("expired"));
    // The pay code is the API's: a wallet looks it up.
    let (status, view) = town.call("GET", &format!("/v1/pay/{code}"), None, None).await;
    assert_eq!((status, view["invoice_id"].as_str()), (200, Some(invoice.as_str())));

    let mut live = watch(&counter, &format!("{request_path}/events")).await;
    town.pay(0, &shop, 1200, &invoice).await;
    let paid = read_until(&mut live, &["event: paid", "¥1,200"]).await;
    assert!(paid.is_ok(), "the page's stream says paid: {paid:?}");
    let page = counter.get(&request_path).await;
    assert!(page.shows("thank-you") && !page.shows("waiting"), "a reload shows the thank-you too");
    assert_eq!(page.text_of("thank-you-amount").unwrap(), "¥1,200");

    let today = counter.get("/counter/today").await;
    let tx = today.attribute("data-payment=", "data-payment").unwrap();
    assert_eq!(today.text_of("today-total").unwrap(), "¥1,200");
    let refund_path = format!("/counter/payments/{tx}/refund");
    assert!(today.body.contains(&format!("data-refund=\"{tx}\"")));
    let form = counter.get(&refund_path).await;
    assert_eq!(
        form.attribute("id=\"refund-amount\"", "value").unwrap(),
        "1200",
        "prefilled with what is left"
    );
    // More than is left is refused before any confirmation.
    let too_much = counter.post(&refund_path, &[("csrf", &form.csrf()), ("amount", "1201")]).await;
    assert_eq!(too_much.error_code().as_deref(), Some("refund_exceeds_payment"));
    let confirm = counter.post(&refund_path, &[("csrf", &form.csrf()), ("amount", "300")]).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert_eq!(confirm.text_of("refund-confirm-amount").unwrap(), "¥300");
    let fields = [
        ("csrf", confirm.csrf()),
        ("amount", confirm.attribute("name=\"amount\"", "value").unwrap()),
        ("key", confirm.attribute("name=\"key\"", "value").unwrap()),
    ];
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        // Sent twice (a double tap, a reload): refunded once.
        let done = counter.post(&format!("{refund_path}/confirm"), &fields).await;
        assert_eq!((done.status, done.location()), (303, "/counter/today?refunded=300"), "{}", done.body);
    }
    let (_, view) = town.call("GET", &format!("/v1/invoices/{invoice}"), Some(&token), None).await;
    assert_eq!((view["refunded"].as_u64(), view["refunds"].as_array().unwrap().len()), (Some(300), 1));
    let today = counter.get("/counter/today?refunded=300").await;
    assert!(today.text_of("notice").unwrap().contains("¥300"));
    assert_eq!(today.text_of("today-total").unwrap(), "¥900");
    let (_, balance) = town.call("GET", "/v1/balance", Some(&token), None).await;
    assert_eq!(balance["total"], 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pairing_code_is_used_once_within_ten_minutes_and_wrong_codes_are_refused() {
    let town = Town::start().await;
    let shop = town.register_shop("パン屋", "local", "パンヤ").await;
    let caller = DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale };
    let code = code_for(&town, caller);

    let mut first = Browser::new(&town);
    let form = first.get("/pair").await;
    assert!(form.body.contains("id=\"pair-code\"") && form.body.contains("id=\"pair-submit\""));
    let shown = format!("{}-{}", &code[..4], &code[4..]);
    let answer = first.pair(&shown).await;
    assert_eq!((answer.status, answer.location()), (303, "/counter"));
    let cookie = answer.headers.get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(cookie.starts_with("machi_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP without a proxy saying otherwise: {cookie}");
    assert_eq!(first.get("/counter").await.status, 200);

    // Used once: a second browser with the same code is refused.
    let mut second = Browser::new(&town);
    let again = second.pair(&code).await;
    assert_eq!((again.status, again.error_code().as_deref()), (400, Some("bad_pairing_code")));
    assert!(second.cookies.is_empty());
    assert_eq!(second.get("/counter").await.location(), "/pair");

    // Wrong and malformed codes.
    for wrong in ["00000000", "1234", "abcd-efgh", ""] {
        let answer = second.pair(wrong).await;
        assert_eq!(answer.error_code().as_deref(), Some("bad_pairing_code"), "{wrong:?}");
    }

    // A code made by the back office's page works the same; after ten minutes it does not.
    let mut office = paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }).await;
    let made = office
        .submit(
            "/office/devices",
            "/office/devices/pairing",
            &[("label", "レジ2"), ("scope", "point_of_sale")],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let late = made.attribute("id=\"pairing-code\"", "data-code").unwrap();
    town.clock.set(town.now() + machi_merchant::PAIRING_CODE_VALID_MS + 1);
    let expired = Browser::new(&town).pair(&late).await;
    assert_eq!(expired.error_code().as_deref(), Some("bad_pairing_code"));
    let offline = code_for(&town, caller);
    town.clock.set(town.now() + machi_merchant::PAIRING_CODE_VALID_MS + 1);
    assert_eq!(Browser::new(&town).pair(&offline).await.error_code().as_deref(), Some("bad_pairing_code"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_behind_tls_and_every_page_carries_the_security_headers() {
    let mut town = Town::start().await;
    let shop = town.register_shop("旅館", "local", "リョカン").await;
    let counter = DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale };

    // Behind a trusted proxy that says the browser came over TLS.
    town.stop_merchant().await;
    town.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    town.start_merchant().await;
    let mut proxied = Browser::new(&town);
    proxied.extra.push(("x-forwarded-proto".into(), "https".into()));
    let answer = proxied.pair(&code_for(&town, counter)).await;
    let cookie = answer.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("; Secure") && cookie.contains("HttpOnly"), "{cookie}");
    // The same proxy saying plain HTTP: not Secure.
    let mut plain = Browser::new(&town);
    plain.extra.push(("x-forwarded-proto".into(), "http".into()));
    let answer = plain.pair(&code_for(&town, counter)).await;
    assert!(!answer.headers.get("set-cookie").unwrap().to_str().unwrap().contains("Secure"));

    // --secure-cookies: always.
    town.stop_merchant().await;
    town.trusted_proxies = Vec::new();
    town.secure_cookies = true;
    town.start_merchant().await;
    let answer = Browser::new(&town).pair(&code_for(&town, counter)).await;
    assert!(answer.headers.get("set-cookie").unwrap().to_str().unwrap().contains("; Secure"));

    let mut office = paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }).await;
    let mut admin = paired(&town, DeviceCaller::TownOffice).await;
    let mut nobody = Browser::new(&town);
    let mut pages = Vec::new();
    for path in ["/pair", "/assets/app.css", "/assets/app.js", "/assets/chime.wav", "/counter/today"] {
        pages.push((path, nobody.get(path).await));
    }
    for path in [
        "/counter",
        "/counter/today",
        "/office",
        "/office/cash-out",
        "/office/cash-outs",
        "/office/statements",
        "/office/devices",
    ] {
        pages.push((path, office.get(path).await));
    }
    let shop_page = format!("/town/shops/{shop}");
    for path in
        ["/town", "/town/shops", shop_page.as_str(), "/town/issues/new", "/town/settlements", "/office"]
    {
        pages.push((path, admin.get(path).await));
    }
    for (path, answer) in &pages {
        let header = |name: &str| answer.headers.get(name).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(header("content-security-policy").as_deref(), Some(CSP), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
        assert!(header("cache-control").is_some(), "{path}");
        let html =
            answer.headers.get("content-type").is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
        if html {
            assert_eq!(header("cache-control").as_deref(), Some("no-store"), "{path}");
            assert!(answer.body.starts_with("<!DOCTYPE html><html lang=\"ja\">"), "{path}");
            assert!(
                !answer.body.contains("<script>") && !answer.body.contains(" style="),
                "nothing inline: {path}"
            );
            assert!(!answer.body.contains("<style"), "{path}");
        }
    }
    // A path nothing serves: a page for people, the API's JSON under /v1.
    let missing = nobody.get("/counter/nothing-here").await;
    assert_eq!((missing.status, missing.error_code().as_deref()), (404, Some("not_found")));
    assert_eq!(missing.headers["content-security-policy"], CSP);
    let (status, json) = town.call("GET", "/v1/nothing-here", None, None).await;
    assert_eq!((status, json["error"]["code"].as_str()), (404, Some("not_found")));
    // Every page names whom it serves.
    assert!(office.get("/office").await.text_of("who").unwrap().contains("旅館"));
    assert_eq!(admin.get("/town").await.text_of("who").as_deref(), Some("役場"));
    // The town office's session is not a shop's: /office is 403 admin-side too.
    let (_, office_as_town) = pages.last().unwrap();
    assert_eq!((office_as_town.status, office_as_town.error_code().as_deref()), (403, Some("shop_only")));
    // The JSON API never takes the cookie.
    let (status, _) = town
        .call_with(
            "GET",
            "/v1/shop",
            None,
            None,
            &[("cookie", &format!("machi_session={}", office.cookies["machi_session"]))],
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_cannot_open_the_offices_forms_need_their_token_revoked_or_idle_devices_sign_out() {
    let town = Town::start().await;
    let shop = town.register_shop("魚屋", "local", "サカナヤ").await;
    let token = town.token(&shop, "full").await;
    let mut counter = Browser::new(&town);
    let code = code_for(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale });
    let answer = counter.post("/pair", &[("code", &code), ("label", "till one")]).await;
    assert_eq!(answer.status, 303);
    for (path, code) in [
        ("/office", "wrong_scope"),
        ("/office/cash-out", "wrong_scope"),
        ("/office/devices", "wrong_scope"),
        ("/town", "admin_only"),
        ("/town/shops", "admin_only"),
        ("/town/settlements", "admin_only"),
    ] {
        let answer = counter.get(path).await;
        assert_eq!((answer.status, answer.error_code().as_deref()), (403, Some(code)), "{path}");
        assert!(answer.body.contains("id=\"forbidden\""), "{path}");
    }
    // Nor post to them.
    let csrf = counter.get("/counter").await.csrf();
    let posted = counter.post("/office/cash-out", &[("csrf", &csrf), ("issue", "1"), ("amount", "")]).await;
    assert_eq!(posted.error_code().as_deref(), Some("wrong_scope"));

    // CSRF: without the token, or with another session's, nothing is made.
    let before = town.call("GET", "/v1/invoices", Some(&token), None).await.1;
    let missing = counter.post("/counter/requests", &[("amount", "500")]).await;
    assert_eq!((missing.status, missing.error_code().as_deref()), (403, Some("csrf_failed")));
    let mut other =
        paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale }).await;
    let others = other.get("/counter").await.csrf();
    assert_ne!(others, csrf);
    let wrong = counter.post("/counter/requests", &[("csrf", &others), ("amount", "500")]).await;
    assert_eq!((wrong.status, wrong.error_code().as_deref()), (403, Some("csrf_failed")));
    let cut =
        counter.post("/counter/requests", &[("csrf", &csrf[..csrf.len() - 1]), ("amount", "500")]).await;
    assert_eq!(cut.error_code().as_deref(), Some("csrf_failed"));
    // A form posted from another site, with the right token even, is refused; so is pairing.
    counter.extra.push(("origin".into(), "http://shop.example".into()));
    let foreign = counter.post("/counter/requests", &[("csrf", &csrf), ("amount", "500")]).await;
    assert_eq!(foreign.error_code().as_deref(), Some("csrf_failed"));
    let code = code_for(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale });
    let mut lured = Browser::new(&town);
    lured.extra.push(("origin".into(), "http://shop.example".into()));
    assert_eq!(lured.pair(&code).await.error_code().as_deref(), Some("csrf_failed"));
    counter.extra.clear();
    let origin = format!("http://{}", town.url.trim_start_matches("http://"));
    counter.extra.push(("origin".into(), origin));
    let own = counter.post("/counter/requests", &[("csrf", &csrf), ("amount", "500")]).await;
    assert_eq!(own.status, 303, "the service's own origin is fine");
    counter.extra.clear();
    // Under `Referrer-Policy: no-referrer` a browser's own form says `Origin: null`, and
    // says where it comes from in `Sec-Fetch-Site`.
    counter.extra.push(("origin".into(), "null".into()));
    counter.extra.push(("sec-fetch-site".into(), "same-origin".into()));
    let chromium = counter.post("/counter/requests", &[("csrf", &csrf), ("amount", "500")]).await;
    assert_eq!(chromium.status, 303, "{}", chromium.body);
    counter.extra[1].1 = "cross-site".into();
    let framed = counter.post("/counter/requests", &[("csrf", &csrf), ("amount", "500")]).await;
    assert_eq!(framed.error_code().as_deref(), Some("csrf_failed"));
    counter.extra.clear();
    let made = town.call("GET", "/v1/invoices", Some(&token), None).await.1;
    assert_eq!(
        made.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 2,
        "only those two were made"
    );

    // Revoked from the back office: signed out at once.
    let mut office = paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }).await;
    let devices = office.get("/office/devices").await;
    let row = devices
        .body
        .find(">till one<")
        .unwrap_or_else(|| panic!("the counter is listed by its label: {}", devices.body));
    let device =
        devices.body[..row].rsplit("data-device=\"").next().unwrap().split('"').next().unwrap().to_string();
    assert!(devices.body.contains(&format!("data-revoke-device=\"{device}\"")));
    let revoked =
        office.post(&format!("/office/devices/{device}/revoke"), &[("csrf", &devices.csrf())]).await;
    assert_eq!((revoked.status, revoked.location()), (303, "/office/devices"), "{}", revoked.body);
    let mut signed_out = 0;
    for browser in [&mut counter, &mut other] {
        let answer = browser.get("/counter").await;
        if answer.location() == "/pair?signed-out" {
            signed_out += 1;
            let page = browser.get(answer.location()).await;
            assert!(page.body.contains("id=\"signed-out\""));
            assert!(browser.cookies.is_empty(), "the cookie is cleared");
        }
    }
    assert_eq!(signed_out, 1, "exactly the revoked device");

    // Idle too long: the office (30 minutes) is signed out, the counter (12 hours) is not.
    let mut counter =
        paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale }).await;
    town.clock.set(town.now() + 31 * 60 * 1000);
    assert_eq!(office.get("/office").await.location(), "/pair?signed-out");
    assert_eq!(counter.get("/counter").await.status, 200);
    town.clock.set(town.now() + 12 * 60 * 60 * 1000 + 1);
    assert_eq!(counter.get("/counter").await.location(), "/pair?signed-out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_with_a_token_acts_as_the_token_and_signing_out_ends_the_session() {
    let town = Town::start().await;
    let shop = town.register_shop("花屋", "local", "ハナヤ").await;
    let read_only = town.token(&shop, "read_only").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let mut browser = Browser::new(&town);
    let refused = browser.pair(&read_only).await;
    assert_eq!(refused.error_code().as_deref(), Some("wrong_scope"));
    let answer = browser.pair(&pos).await;
    assert_eq!((answer.status, answer.location()), (303, "/counter"));
    assert!(!answer.body.contains(&pos) && !answer.location().contains("mst_"));
    let page = browser.get("/counter").await;
    assert!(!page.body.contains("mst_"), "the token is nowhere in the page");
    let mut admin = Browser::new(&town);
    assert_eq!(admin.pair(&town.admin).await.location(), "/town");
    let out = browser.submit("/counter", "/signout", &[]).await;
    assert_eq!((out.status, out.location()), (303, "/pair"));
    assert!(browser.cookies.is_empty());
    assert_eq!(browser.get("/counter").await.location(), "/pair");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaid_request_shows_expired() {
    let town = Town::start().await;
    let shop = town.register_shop("肉屋", "local", "ニクヤ").await;
    let mut counter =
        paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale }).await;
    let made =
        counter.submit("/counter", "/counter/requests", &[("amount", "¥2,500"), ("memo", "コロッケ")]).await;
    let path = made.location().to_string();
    let page = counter.get(&path).await;
    assert_eq!(page.text_of("request-amount").unwrap(), "¥2,500");
    assert_eq!(page.text_of("time-left").unwrap(), "15:00");
    let mut live = watch(&counter, &format!("{path}/events")).await;
    town.clock.set(town.now() + 15 * 60 * 1000 + 1);
    let expired = read_until(&mut live, &["event: expired"]).await;
    assert!(expired.is_ok(), "{expired:?}");
    let page = counter.get(&path).await;
    assert!(page.shows("expired") && !page.shows("waiting") && !page.shows("thank-you"));
    assert!(!page.body.contains("id=\"pay-code\""), "an expired request has no pay code");
    // Bad amounts come back with the API's code.
    for (typed, code) in [("0", "bad_amount"), ("abc", "bad_amount"), ("10000001", "bad_amount")] {
        let answer = counter.submit("/counter", "/counter/requests", &[("amount", typed)]).await;
        assert_eq!(answer.error_code().as_deref(), Some(code), "{typed}");
        assert!(answer.body.contains("data-screen=\"counter\""));
    }
}

/// Fields of a form as `(name, value)` pairs borrowed for a post.
fn fields<'a>(pairs: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    pairs.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_office_cashes_out_with_the_apis_fee_and_the_town_office_settles_with_the_apis_file() {
    let town = Town::start().await;
    let shop = town.register_shop("酒屋", "local", "サカヤ").await;
    let full = town.token(&shop, "full").await;
    let (_, invoice) =
        town.call("POST", "/v1/invoices", Some(&full), Some(serde_json::json!({"amount": 5000}))).await;
    let invoice = invoice["id"].as_str().unwrap().to_string();
    town.pay(0, &shop, 5000, &invoice).await;
    town.invoice_when(&full, &invoice, "paid").await;
    let mut office = paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }).await;

    let balances = office.get("/office").await;
    assert_eq!(balances.status, 200, "{}", balances.body);
    assert_eq!(balances.text_of("balance-total").unwrap(), "¥5,000");
    assert!(balances.body.contains("data-issue=\"1\" data-kind=\"local\""));
    assert!(balances.body.contains("data-issue=\"1\" data-kind=\"common\""));

    // Two cash-outs: the fee is on the running total (1%, rounded down), as the ledger
    // charges it; each preview's fee is the one the API then reports.
    let mut fees = Vec::new();
    for amount in ["3000", "1999"] {
        let form = office.get("/office/cash-out").await;
        let preview = office
            .post("/office/cash-out", &[("csrf", &form.csrf()), ("issue", "1"), ("amount", amount)])
            .await;
        assert_eq!(preview.status, 200, "{}", preview.body);
        let fee = preview.text_of("cash-out-fee").unwrap();
        let net = preview.text_of("cash-out-net").unwrap();
        let confirm = [
            ("csrf", preview.csrf()),
            ("issue", "1".to_string()),
            ("amount", preview.attribute("name=\"amount\"", "value").unwrap()),
            ("key", preview.attribute("name=\"key\"", "value").unwrap()),
        ];
        let mut made = Vec::new();
        for _ in 0..2 {
            let done = office.post("/office/cash-out/confirm", &fields(&confirm)).await;
            assert_eq!(done.status, 303, "{}", done.body);
            made.push(done.location().to_string());
        }
        assert_eq!(made[0], made[1], "sent twice, cashed out once");
        let id = made[0].strip_prefix("/office/cash-outs?requested=").unwrap().to_string();
        let (_, list) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
        let api = list.as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).unwrap().clone();
        assert_eq!(fee, format!("¥{}", api["fee"]));
        assert_eq!(net, format!("¥{}", machi_ledger::group_thousands(api["net"].as_u64().unwrap())));
        let history = office.get(&made[0]).await;
        assert!(history.text_of("notice").is_some());
        assert!(history.body.contains(&format!("data-cash-out=\"{id}\"")));
        fees.push(fee);
    }
    assert_eq!(fees, ["¥30", "¥19"], "1% of 3,000; then 1% of 4,999 less 1% of 3,000");
    let (_, list) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    // Asking for more than is left is refused with the ledger's code, before anything is signed.
    let form = office.get("/office/cash-out").await;
    let refused =
        office.post("/office/cash-out", &[("csrf", &form.csrf()), ("issue", "1"), ("amount", "2")]).await;
    assert_eq!(refused.error_code().as_deref(), Some("insufficient_balance"));

    // The statement's CSV is the API's, byte for byte.
    let month = &machi_ledger::time::format_jst_date(town.now())[..7];
    let csv = office.get(&format!("/office/statements/{month}.csv")).await;
    let (_, _, api_csv) = town.get_bytes(&format!("/v1/statements/{month}"), &full).await;
    assert_eq!(csv.body.as_bytes(), api_csv.as_slice());
    assert_eq!(csv.body.lines().count(), 4, "payment and two cash-outs: {}", csv.body);
    let printable = office.get(&format!("/office/statements/{month}")).await;
    assert!(printable.body.contains("id=\"statement\"") && printable.body.contains("cash_out"));

    // The town office: what is pending per shop, a settlement, its file as the API's.
    let mut admin = paired(&town, DeviceCaller::TownOffice).await;
    let status = admin.get("/town").await;
    let issue = town.node.issue(1).await.unwrap();
    let row = status.body.find("data-issue=\"1\"").expect("issue 1's row");
    let sold = status.body[row..].split("class=\"num sold\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(sold, issue.sets_sold.to_string());
    assert_eq!(issue.sets_sold, 6, "three residents bought two sets each");
    let live: serde_json::Value = serde_json::from_str(&admin.get("/town/issues.json").await.body).unwrap();
    assert_eq!(
        live,
        serde_json::json!([{"id": 1, "sold": 6, "left": issue.sets_left, "on_sale": issue.on_sale}])
    );
    assert_eq!(office.get("/town/issues.json").await.error_code().as_deref(), Some("admin_only"));
    let pending = admin.get("/town/settlements").await;
    assert!(pending.body.contains(&format!("data-pending-shop=\"{shop}\"")), "{}", pending.body);
    let row = pending.body.find(&format!("data-pending-shop=\"{shop}\"")).unwrap();
    assert!(pending.body[row..].contains("¥4,950"), "3,000 + 1,999 less ¥49 of fees");
    let today = machi_ledger::time::format_jst_date(town.now());
    let made = admin.post("/town/settlements", &[("csrf", &pending.csrf()), ("transfer_date", &today)]).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let page = admin.get(made.location()).await;
    let id = made.location().strip_prefix("/town/settlements/").unwrap();
    let (_, api) = town.call("GET", &format!("/v1/admin/settlements/{id}"), Some(&town.admin), None).await;
    assert_eq!(api["status"], "recorded");
    assert!(page.shows("on-chain") && !page.body.contains("id=\"pending\""));
    let height = page.body.split("class=\"height\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(height, api["height"].to_string());
    let sha = page.body.split("file-sha256 mono\">").nth(1).unwrap().split('<').next().unwrap();
    assert_eq!(sha, api["file_sha256"].as_str().unwrap());
    let href = page.attribute("id=\"download-zengin\"", "href").unwrap();
    let file = admin.get(&href).await;
    let (_, headers, api_file) =
        town.get_bytes(&format!("/v1/admin/settlements/{id}/zengin"), &town.admin).await;
    assert_eq!(file.headers["content-type"], headers["content-type"]);
    // Shift_JIS is read back through the same lossy decoding on both sides: compare the bytes.
    let bytes = reqwest::Client::new()
        .get(format!("{}{href}", town.url))
        .header("cookie", format!("machi_session={}", admin.cookies["machi_session"]))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.as_ref(), api_file.as_slice());
    assert!(!file.body.is_empty());
    let history = office.get("/office/cash-outs").await;
    assert!(history.body.contains(&format!("<td class=\"transfer-date\">{today}</td>")), "{}", history.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_town_office_registers_a_shop_looks_up_banks_suspends_and_checks_an_issue() {
    let town = Town::start().await;
    let mut admin = paired(&town, DeviceCaller::TownOffice).await;
    let bank = admin.get("/town/banks/0126").await;
    assert_eq!(bank.status, 200);
    let name: serde_json::Value = serde_json::from_str(&bank.body).unwrap();
    assert!(!name["name"].as_str().unwrap().is_empty());
    let branch = admin.get("/town/banks/0126/branches/105").await;
    assert_eq!(branch.status, 200, "{}", branch.body);
    assert_eq!(admin.get("/town/banks/9998").await.status, 404);
    assert_eq!(admin.get("/town/banks/0126/branches/999").await.status, 404);

    let shop_form = [
        ("name", "米屋".to_string()),
        ("kana_name", "コメヤ".to_string()),
        ("class", "local".to_string()),
        ("bank_code", "0126".to_string()),
        ("branch_code", "105".to_string()),
        ("account_type", "ordinary".to_string()),
        ("account_number", "0012345".to_string()),
        ("holder_kana", "コメヤ".to_string()),
    ];
    let mut bad = shop_form.to_vec();
    bad[3].1 = "9998".into();
    let refused = admin.submit("/town/shops", "/town/shops", &fields(&bad)).await;
    assert_eq!(refused.error_code().as_deref(), Some("bad_bank_account"));
    assert!(refused.body.contains("value=\"米屋\""), "the form comes back filled in");
    let made = admin.submit("/town/shops", "/town/shops", &fields(&shop_form)).await;
    assert_eq!(made.status, 303, "{}", made.body);
    let shop = made.location().strip_prefix("/town/shops/").unwrap().to_string();
    let (_, shops) = town.call("GET", "/v1/admin/shops", Some(&town.admin), None).await;
    assert_eq!(shops[0]["id"], shop.as_str());

    // A new bank account, checked as at registration.
    let shop_page = format!("/town/shops/{shop}");
    let mut moved = shop_form[3..].to_vec();
    moved[1].1 = "101".into();
    let saved = admin.submit(&shop_page, &format!("{shop_page}/bank"), &fields(&moved)).await;
    assert!(saved.text_of("notice").is_some(), "{}", saved.body);
    let (_, shops) = town.call("GET", "/v1/admin/shops", Some(&town.admin), None).await;
    assert_eq!(shops[0]["bank"]["branch_code"], "101");

    // The shop's back office pairs from the town office's code.
    let made = admin.submit(&shop_page, &format!("{shop_page}/pairing"), &[("label", "事務所のPC")]).await;
    let code = made.attribute("id=\"pairing-code\"", "data-code").unwrap();
    let mut office = Browser::new(&town);
    assert_eq!(office.pair(&code).await.location(), "/office");
    let token = admin
        .submit(&shop_page, &format!("{shop_page}/tokens"), &[("label", "レジ"), ("scope", "point_of_sale")])
        .await;
    let secret = token.text_of("new-token").unwrap();
    assert!(secret.starts_with("mst_"));
    let (status, invoice) =
        town.call("POST", "/v1/invoices", Some(&secret), Some(serde_json::json!({"amount": 800}))).await;
    assert_eq!(status, 201);
    let code = invoice["pay_code"].as_str().unwrap().to_string();

    // Suspended: its token, its session and its pay code are refused at once.
    let frozen = admin.submit(&shop_page, &format!("{shop_page}/freeze"), &[]).await;
    assert_eq!(frozen.location(), shop_page);
    let page = admin.get(&shop_page).await;
    assert!(page.body.contains("id=\"suspended\"") && page.body.contains("id=\"unfreeze\""));
    assert!(page.text_of("freeze-command").unwrap().contains("machi-wallet town freeze --card"));
    let (status, error) =
        town.call("POST", "/v1/invoices", Some(&secret), Some(serde_json::json!({"amount": 800}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("shop_suspended")));
    let answer = office.get("/office").await;
    assert_eq!((answer.status, answer.error_code().as_deref()), (403, Some("shop_suspended")));
    assert_eq!(town.call("GET", &format!("/v1/pay/{code}"), None, None).await.0, 404);
    admin.submit(&shop_page, &format!("{shop_page}/unfreeze"), &[]).await;
    assert_eq!(office.get("/office").await.status, 200);
    assert_eq!(town.call("GET", &format!("/v1/pay/{code}"), None, None).await.0, 200);

    // The same through the JSON API: the town's only.
    let suspension = format!("/v1/admin/shops/{shop}/suspension");
    let body = Some(serde_json::json!({"suspended": true}));
    let (status, error) = town.call("PUT", &suspension, Some(&secret), body.clone()).await;
    assert_eq!((status, error["error"]["code"].as_str()), (403, Some("admin_only")));
    let (status, view) = town.call("PUT", &suspension, Some(&town.admin), body).await;
    assert_eq!((status, view["suspended"].as_bool()), (200, Some(true)));
    assert_eq!(town.call("GET", "/v1/shop", Some(&secret), None).await.0, 403);
    let body = Some(serde_json::json!({"suspended": false}));
    assert_eq!(town.call("PUT", &suspension, Some(&town.admin), body).await.0, 200);
    assert_eq!(town.call("GET", "/v1/shop", Some(&secret), None).await.0, 200);
    let bank = format!("/v1/admin/shops/{shop}/bank");
    let account = serde_json::json!({"bank_code": "0126", "branch_code": "105", "account_type": "savings",
        "account_number": "7654321", "holder_kana": "ｺﾒﾔ"});
    let (status, view) = town.call("PUT", &bank, Some(&town.admin), Some(account.clone())).await;
    assert_eq!((status, view["bank"]["account_number"].as_str()), (200, Some("7654321")), "{view}");
    let mut wrong = account;
    wrong["account_number"] = "123".into();
    let (status, error) = town.call("PUT", &bank, Some(&town.admin), Some(wrong)).await;
    assert_eq!((status, error["error"]["code"].as_str()), (400, Some("bad_bank_account")));
    let (_, shops) = town.call("GET", "/v1/admin/shops", Some(&town.admin), None).await;
    assert_eq!(shops[0]["bank"]["account_number"], "7654321", "a refused change changes nothing");

    // An issue is checked as the wallet checks it; the town's key signs it elsewhere.
    let issue = [
        ("id", "2".to_string()),
        ("name", "第2弾".to_string()),
        ("price", "10,000".to_string()),
        ("common", "".to_string()),
        ("local", "".to_string()),
        ("sets", "100".to_string()),
        ("cap", "5".to_string()),
        ("sale_start", "2027-01-10".to_string()),
        ("sale_end", "2027-01-31".to_string()),
        ("spend_until", "2027-06-30".to_string()),
        ("cash_out_deadline", "2027-07-31".to_string()),
        ("fee", "0.5%".to_string()),
    ];
    let checked = admin.submit("/town/issues/new", "/town/issues/new", &fields(&issue)).await;
    assert_eq!(checked.status, 200, "{}", checked.body);
    let toml = checked.text_of("issue-toml").unwrap();
    assert!(toml.contains("id = 2") && toml.contains("fee = &quot;0.5%&quot;"), "{toml}");
    assert!(checked.text_of("issue-command").unwrap().contains("town create-issue --card"));
    let mut taken = issue.to_vec();
    taken[0].1 = "1".into();
    let exists = admin.submit("/town/issues/new", "/town/issues/new", &fields(&taken)).await;
    assert_eq!(exists.error_code().as_deref(), Some("issue_exists"));
    let mut late = issue.to_vec();
    late[9].1 = "2027-01-20".into();
    let unordered = admin.submit("/town/issues/new", "/town/issues/new", &fields(&late)).await;
    assert_eq!(unordered.error_code().as_deref(), Some("invalid_parameters"));
    // Another PC of the town office is paired from the town office, and revoked there.
    let made = admin.submit("/town", "/town/pairing", &[("label", "窓口2")]).await;
    let code = made.attribute("id=\"pairing-code\"", "data-code").unwrap();
    let mut second = Browser::new(&town);
    let paired = second.post("/pair", &[("code", &code), ("label", "")]).await;
    assert_eq!(paired.location(), "/town");
    let home = admin.get("/town").await;
    let row = home.body.find(">窓口2<").expect("the new PC is listed");
    let device =
        home.body[..row].rsplit("data-device=\"").next().unwrap().split('"').next().unwrap().to_string();
    let revoked = admin.post(&format!("/town/devices/{device}/revoke"), &[("csrf", &home.csrf())]).await;
    assert_eq!(revoked.location(), "/town");
    assert_eq!(second.get("/town").await.location(), "/pair?signed-out");
    assert_eq!(admin.get("/town").await.status, 200, "the town office's own session goes on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machi_merchant_demo_prints_three_screens_with_codes_that_pair_while_the_service_runs() {
    let town = Town::start().await;
    let shop = town.register_shop("豆腐屋", "local", "トウフヤ").await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_machi-merchant"))
        .args(["demo", "--data-dir"])
        .arg(&town.merchant_dir)
        .args(["--url", &town.url])
        .output()
        .expect("machi-merchant runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("豆腐屋"), "{text}");
    for (screen, home) in [("counter", "/counter"), ("back office", "/office"), ("town office", "/town")] {
        let line =
            text.lines().find(|l| l.starts_with(&format!("{screen}:"))).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains(&format!("{}/pair", town.url)), "{line}");
        let code = line.split("pairing code ").nth(1).unwrap().split_whitespace().next().unwrap();
        let mut browser = Browser::new(&town);
        let answer = browser.pair(code).await;
        assert_eq!((answer.status, answer.location()), (303, home), "{line}");
        assert_eq!(browser.get(home).await.status, 200);
    }
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_machi-merchant"))
        .args(["pair", "--data-dir"])
        .arg(&town.merchant_dir)
        .args(["--shop", &shop, "--scope", "full", "--label", "事務所", "--url", &town.url])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let code = text.split("pairing code ").nth(1).unwrap().split_whitespace().next().unwrap();
    let mut office = Browser::new(&town);
    assert_eq!(office.pair(code).await.location(), "/office");
    // The code's label names the device when the browser gives none.
    let mut labelless = Browser::new(&town);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_machi-merchant"))
        .args(["pair", "--data-dir"])
        .arg(&town.merchant_dir)
        .args(["--shop", &shop, "--label", "レジ3"])
        .output()
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let code = text.split("pairing code ").nth(1).unwrap().split_whitespace().next().unwrap();
    assert_eq!(labelless.post("/pair", &[("code", code), ("label", "")]).await.location(), "/counter");
    assert!(office.get("/office/devices").await.body.contains(">レジ3<"));
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_machi-merchant"))
        .args(["pair", "--data-dir"])
        .arg(&town.merchant_dir)
        .args(["--shop", &"ab".repeat(32)])
        .output()
        .unwrap();
    assert!(!unknown.status.success(), "a shop not in the data folder is refused");
}

/// With the town's delegated issuer key the town office's form creates the issue on
/// chain (the same checks as the wallet's); without a registered issuer the service does
/// not start, and a shop's session cannot post the form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_town_office_creates_an_issue_with_the_issuer_key() {
    let mut town = Town::start().await;
    let issuer = machi_node::generate_key();
    town.stop_merchant().await;
    town.issuer = Some(issuer.clone());
    let network = machi_merchant::Network::default();
    let refused = match machi_merchant::Merchant::open_with(town.merchant_config(), network).await {
        Ok(_) => panic!("an unregistered issuer key must keep the service from starting"),
        Err(e) => format!("{e:#}"),
    };
    assert!(refused.contains("issuer") && refused.contains("not registered"), "{refused}");
    let delegation = machi_ledger::Delegation::Issuer;
    let register = machi_ledger::Action::RegisterDelegate {
        delegate: machi_ledger::AccountId::of(&issuer),
        name: "merchant API".into(),
        delegation,
    };
    town.submit(&town.town.clone(), register).await;
    town.start_merchant().await;

    let mut admin = paired(&town, DeviceCaller::TownOffice).await;
    let form = admin.get("/town/issues/new").await;
    assert!(!form.body.contains("issuer-missing"), "{}", form.body);
    let issue = [
        ("id", "2".to_string()),
        ("name", "第2弾".to_string()),
        ("price", "10,000".to_string()),
        ("common", "".to_string()),
        ("local", "".to_string()),
        ("sets", "100".to_string()),
        ("cap", "5".to_string()),
        ("sale_start", "2027-01-10".to_string()),
        ("sale_end", "2027-01-31".to_string()),
        ("spend_until", "2027-06-30".to_string()),
        ("cash_out_deadline", "2027-07-31".to_string()),
        ("fee", "0.5%".to_string()),
    ];
    fn fields<'a>(form: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        form.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
    let created = admin.submit("/town/issues/new", "/town/issues/new", &fields(&issue)).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert!(created.body.contains("id=\"issue-created\""), "{}", created.body);
    assert_eq!(created.attribute("id=\"issue-created\"", "data-issue").as_deref(), Some("2"));
    let on_chain = town.node.issue(2).await.expect("the issue is on the node");
    assert_eq!((on_chain.params.name.as_str(), on_chain.params.total_sets), ("第2弾", 100));
    // The same issue posted again (a lost answer) is the same transaction: still applied.
    let again = admin.submit("/town/issues/new", "/town/issues/new", &fields(&issue)).await;
    assert_eq!(again.status, 200, "{}", again.body);
    // A bad form gets the wallet's error, and nothing reaches the chain.
    let mut late = issue.to_vec();
    late[0].1 = "3".into();
    late[9].1 = "2027-01-20".into();
    let unordered = admin.submit("/town/issues/new", "/town/issues/new", &fields(&late)).await;
    assert_eq!(unordered.error_code().as_deref(), Some("invalid_parameters"));
    assert!(town.node.issue(3).await.is_err());
    // A different issue under a number already used is the ledger's refusal.
    let mut taken = issue.to_vec();
    taken[0].1 = "1".into();
    let exists = admin.submit("/town/issues/new", "/town/issues/new", &fields(&taken)).await;
    assert_eq!(exists.error_code().as_deref(), Some("issue_exists"), "{}", exists.body);
    // A shop's session cannot post the town office's form.
    let shop = town.register_shop("米屋", "local", "コメヤ").await;
    let mut office = paired(&town, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }).await;
    let csrf = office.get("/office").await.csrf();
    let mut posted = vec![("csrf", csrf)];
    posted.extend(issue.iter().cloned().map(|(k, v)| if k == "id" { (k, "4".to_string()) } else { (k, v) }));
    let forbidden = office.post("/town/issues/new", &fields(&posted)).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert!(town.node.issue(4).await.is_err());
}
