//! Hostile requests at every door of the merchant API: each gets a JSON error with its
//! status and code, the service stays healthy, and nothing is created or changed.

use serde_json::Value;

use crate::harness::Town;

/// An Idempotency-Key one character over the limit.
const LONG_KEY: &[(&str, &str)] = &[(
    "idempotency-key",
    concat!(
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",
        "x"
    ),
)];

/// method, path, authorization header, body, expected status and code, other headers.
type Case = (
    &'static str,
    String,
    Option<String>,
    Vec<u8>,
    u16,
    &'static str,
    &'static [(&'static str, &'static str)],
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_errors_and_change_nothing() {
    let town = Town::start().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let full = town.token(&shop, "full").await;
    let admin = town.admin.clone();
    let head = town.node.head().await.unwrap().height;
    let bad_utf8: &[u8] = b"{\"amount\": \"\xff\xfe\"}";
    let nested = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let bearer = |t: &str| format!("Bearer {t}");
    let cases: Vec<Case> = vec![
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), bad_utf8.to_vec(), 400, "malformed_json", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), nested.clone().into_bytes(), 400, "invalid_request", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), b"".to_vec(), 400, "malformed_json", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), b"[]".to_vec(), 400, "invalid_request", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), b"{\"amount\": 1e3}".to_vec(), 400, "invalid_request", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), b"{\"amount\": 99999999999999999999999}".to_vec(), 400, "invalid_request", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), b"{\"amount\": 10000001}".to_vec(), 400, "bad_amount", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&full)), format!("{{\"amount\": 5, \"memo\": \"{}\"}}", "あ".repeat(201)).into_bytes(), 400, "bad_memo", &[]),
        ("POST", "/v1/invoices".into(), Some("Bearer".into()), b"{\"amount\": 5}".to_vec(), 401, "missing_token", &[]),
        ("POST", "/v1/invoices".into(), Some("Basic dXNlcjpwYXNz".into()), b"{\"amount\": 5}".to_vec(), 401, "missing_token", &[]),
        ("POST", "/v1/invoices".into(), Some(bearer(&format!("{full}x"))), b"{\"amount\": 5}".to_vec(), 401, "bad_token", &[]),
        ("GET", "/v1/invoices/..%2F..%2Fadmin-tokens".into(), Some(bearer(&full)), vec![], 404, "not_found", &[]),
        ("GET", format!("/v1/invoices/{}", "x".repeat(5_000)), Some(bearer(&full)), vec![], 404, "not_found", &[]),
        ("GET", "/v1/invoices?status=stolen".into(), Some(bearer(&full)), vec![], 400, "bad_query", &[]),
        ("GET", "/v1/invoices?from=yesterday".into(), Some(bearer(&full)), vec![], 400, "bad_date", &[]),
        ("POST", "/v1/invoices/inv_nope/refunds".into(), Some(bearer(&full)), b"{\"amount\": 5}".to_vec(), 404, "not_found", &[]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1, \"amount\": -5}".to_vec(), 400, "invalid_request", &[]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1}".to_vec(), 422, "nothing_to_cash_out", &[]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1, \"amount\": 100}".to_vec(), 422, "insufficient_balance", &[]),
        ("GET", "/v1/statements/..%2F..".into(), Some(bearer(&full)), vec![], 400, "bad_month", &[]),
        ("GET", "/v1/statements/2026-00".into(), Some(bearer(&full)), vec![], 400, "bad_month", &[]),
        ("GET", "/v1/pay/%00%00%00%00%00%00%00%00".into(), None, vec![], 404, "unknown_pay_code", &[]),
        ("POST", "/v1/admin/shops".into(), Some(bearer(&admin)), b"{\"name\": \"x\"}".to_vec(), 400, "invalid_request", &[]),
        ("POST", "/v1/admin/shops".into(), Some(bearer(&admin)), format!("{{\"name\": \"{}\", \"kana_name\": \"ア\", \"class\": \"local\", \"bank\": {{\"bank_code\": \"0126\", \"branch_code\": \"101\", \"account_type\": \"ordinary\", \"account_number\": \"0012345\", \"holder_kana\": \"ア\"}}}}", "長".repeat(101)).into_bytes(), 400, "bad_name", &[]),
        ("POST", "/v1/admin/shops".into(), Some(bearer(&admin)), b"{\"name\": \"x\", \"kana_name\": \"\xe5\xb1\xb1\", \"class\": \"huge\", \"bank\": {}}".to_vec(), 400, "invalid_request", &[]),
        ("POST", format!("/v1/admin/shops/{}/tokens", "0".repeat(64)), Some(bearer(&admin)), b"{\"scope\": \"full\"}".to_vec(), 404, "not_found", &[]),
        ("POST", format!("/v1/admin/shops/{shop}/tokens"), Some(bearer(&admin)), b"{\"scope\": \"root\"}".to_vec(), 400, "invalid_request", &[]),
        ("DELETE", "/v1/admin/tokens/tok_nope".into(), Some(bearer(&admin)), vec![], 404, "not_found", &[]),
        ("POST", "/v1/admin/settlements".into(), Some(bearer(&admin)), b"{\"transfer_date\": \"2000-01-01\"}".to_vec(), 400, "bad_transfer_date", &[]),
        ("POST", "/v1/admin/settlements".into(), Some(bearer(&admin)), b"{\"transfer_date\": \"2099-02-30\"}".to_vec(), 400, "bad_transfer_date", &[]),
        ("GET", "/v1/admin/settlements/..%2F..%2Fadmin-tokens/zengin".into(), Some(bearer(&admin)), vec![], 404, "not_found", &[]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1, \"amount\": 5}".to_vec(), 400, "bad_idempotency_key", &[("idempotency-key", "has spaces")]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1, \"amount\": 5}".to_vec(), 400, "bad_idempotency_key", LONG_KEY),
        ("POST", "/v1/invoices/inv_nope/refunds".into(), Some(bearer(&full)), b"{\"amount\": 18446744073709551615}".to_vec(), 404, "not_found", &[("idempotency-key", "r-1")]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1, \"amount\": 5}".to_vec(), 422, "insufficient_balance", &[("idempotency-key", "co-1")]),
        ("POST", "/v1/cashouts".into(), Some(bearer(&full)), b"{\"issue\": 1, \"amount\": 6}".to_vec(), 422, "insufficient_balance", &[("idempotency-key", "co-1")]),
        ("GET", "/v1/pay/00000000".into(), None, vec![], 404, "unknown_pay_code", &[("x-forwarded-for", "1.1.1.1, garbage, ::::, [::1]:x")]),
        ("GET", "/v1/pay/00000000".into(), None, vec![], 404, "unknown_pay_code", &[("x-forwarded-for", "")]),
        ("GET", "/v1/admin/settlements/stl_20990101_0001/zengin".into(), Some(bearer(&admin)), vec![], 404, "not_found", &[]),
        ("GET", "/v1/admin/settlements/stl_20990101_0001".into(), Some(bearer(&admin)), vec![], 404, "not_found", &[]),
    ];
    for (method, path, auth, body, status, code, headers) in cases {
        let mut request = town
            .http
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), format!("{}{path}", town.url))
            .header("content-type", "application/json")
            .body(body);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("answered");
        let got = response.status().as_u16();
        let json: Value = response.json().await.unwrap_or(Value::Null);
        let shown: String = path.chars().take(60).collect();
        assert_eq!((got, json["error"]["code"].as_str()), (status, Some(code)), "{method} {shown}: {json}");
        let (health, _) = town.call("GET", "/v1/health", None, None).await;
        assert_eq!(health, 200, "healthy after {method} {shown}");
    }
    let (_, invoices) = town.call("GET", "/v1/invoices", Some(&full), None).await;
    assert_eq!(invoices, serde_json::json!([]), "no invoice was made");
    let (_, shops) = town.call("GET", "/v1/admin/shops", Some(&admin), None).await;
    assert_eq!(shops.as_array().map(Vec::len), Some(1), "no shop was made");
    assert_eq!(town.node.head().await.unwrap().height, head, "nothing reached the chain");
    let (_, settlements) = town.call("GET", "/v1/admin/settlements", Some(&admin), None).await;
    assert_eq!(settlements, serde_json::json!([]), "no settlement was made");
    let (_, cash_outs) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    assert_eq!(cash_outs, serde_json::json!([]), "no cash-out was made");
}
