//! Who may do what: no token, a wrong token, a revoked token, the wrong scope, the
//! wrong side (admin vs shop), another shop's things — each refused with its status and
//! code, and nothing changes. Also bad input and the pay-code rate limit.

use serde_json::{json, Value};

use crate::harness::Town;

#[track_caller]
fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!((answer.0, answer.1["error"]["code"].as_str()), (status, Some(code)), "{}", answer.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scopes_and_shops_are_kept_apart() {
    let town = Town::start().await;
    let a = town.register_shop("山田商店", "local", "ヤマダ").await;
    let b = town.register_shop("鈴木商店", "local", "スズキ").await;
    let a_read = town.token(&a, "read_only").await;
    let a_pos = town.token(&a, "point_of_sale").await;
    let b_full = town.token(&b, "full").await;
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&a_pos), Some(json!({"amount": 500}))).await;
    let a_invoice = invoice["id"].as_str().unwrap().to_string();
    town.pay(0, &a, 500, &a_invoice).await;
    town.invoice_when(&a_pos, &a_invoice, "paid").await;
    let head = town.node.head().await.unwrap().height;
    let before = town.call("GET", "/v1/invoices", Some(&a_read), None).await;

    let invoice_body = Some(json!({"amount": 100}));
    refused(town.call("POST", "/v1/invoices", None, invoice_body.clone()).await, 401, "missing_token");
    refused(
        town.call("POST", "/v1/invoices", Some("mst_0000"), invoice_body.clone()).await,
        401,
        "bad_token",
    );
    refused(
        town.call("POST", "/v1/invoices", Some("mta_0000"), invoice_body.clone()).await,
        401,
        "bad_token",
    );
    refused(town.call("POST", "/v1/invoices", Some(&a_read), invoice_body.clone()).await, 403, "wrong_scope");
    let refund = Some(json!({"amount": 100}));
    let refund_path = format!("/v1/invoices/{a_invoice}/refunds");
    refused(town.call("POST", &refund_path, Some(&a_read), refund.clone()).await, 403, "wrong_scope");
    let cash_out = Some(json!({"issue": 1}));
    refused(town.call("POST", "/v1/cashouts", Some(&a_pos), cash_out.clone()).await, 403, "wrong_scope");
    refused(
        town.call("POST", "/v1/invoices", Some(&town.admin), invoice_body.clone()).await,
        403,
        "shop_only",
    );
    refused(town.call("GET", "/v1/admin/shops", Some(&a_pos), None).await, 403, "admin_only");
    let settle = Some(json!({"transfer_date": "2026-11-20"}));
    refused(town.call("POST", "/v1/admin/settlements", Some(&b_full), settle).await, 403, "admin_only");
    let token_path = format!("/v1/admin/shops/{b}/tokens");
    refused(
        town.call("POST", &token_path, Some(&b_full), Some(json!({"scope": "full"}))).await,
        403,
        "admin_only",
    );

    // Shop B cannot see or touch shop A's invoice: it is "not found", like no invoice.
    refused(
        town.call("GET", &format!("/v1/invoices/{a_invoice}"), Some(&b_full), None).await,
        404,
        "not_found",
    );
    refused(town.call("POST", &refund_path, Some(&b_full), refund.clone()).await, 404, "not_found");
    let (_, b_list) = town.call("GET", "/v1/invoices", Some(&b_full), None).await;
    assert_eq!(b_list, json!([]));
    let (_, b_balance) = town.call("GET", "/v1/balance", Some(&b_full), None).await;
    assert_eq!(b_balance["total"], 0);
    let (_, _, b_statement) = town.get_bytes("/v1/statements/2026-11", &b_full).await;
    assert_eq!(b_statement.iter().filter(|&&b| b == b'\n').count(), 1, "header only");

    // A revoked token stops working at once.
    let (_, tokens) = town.call("GET", &format!("/v1/admin/shops/{a}/tokens"), Some(&town.admin), None).await;
    let read_id =
        tokens.as_array().unwrap().iter().find(|t| t["scope"] == "read_only").unwrap()["id"].clone();
    assert!(tokens.to_string().find("mst_").is_none(), "token listings never hold the secret");
    let (status, _) = town
        .call("DELETE", &format!("/v1/admin/tokens/{}", read_id.as_str().unwrap()), Some(&town.admin), None)
        .await;
    assert_eq!(status, 200);
    refused(town.call("GET", "/v1/invoices", Some(&a_read), None).await, 401, "token_revoked");

    // Nothing changed: no transaction reached the chain, shop A's invoices are as before.
    assert_eq!(town.node.head().await.unwrap().height, head);
    assert_eq!(town.call("GET", "/v1/invoices", Some(&a_pos), None).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let town = Town::start().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let raw = |body: &'static str| {
        let request = town.http.post(format!("{}/v1/invoices", town.url)).bearer_auth(&pos);
        request.header("content-type", "application/json").body(body)
    };
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    refused(send(raw("{\"amount\": 1")).await, 400, "malformed_json");
    refused(send(raw("{\"amount\": -5}")).await, 400, "invalid_request");
    refused(send(raw("{\"amount\": 5, \"tip\": 1}")).await, 400, "invalid_request");
    refused(send(raw("{\"amount\": 0}")).await, 400, "bad_amount");
    refused(send(raw("{\"amount\": 5, \"expires_in_s\": 5}")).await, 400, "bad_expiry");
    let huge = format!("{{\"amount\": 5, \"memo\": \"{}\"}}", "x".repeat(100_000));
    let request = town.http.post(format!("{}/v1/invoices", town.url)).bearer_auth(&pos).body(huge);
    refused(send(request).await, 413, "body_too_large");
    refused(
        town.call_with(
            "POST",
            "/v1/invoices",
            Some(&pos),
            Some(json!({"amount": 5})),
            &[("Idempotency-Key", "")],
        )
        .await,
        400,
        "bad_idempotency_key",
    );
    let (_, list) = town.call("GET", "/v1/invoices", Some(&pos), None).await;
    assert_eq!(list, json!([]), "no invoice was made by any of these");

    let shop_with =
        |bank: Value| json!({"name": "x", "kana_name": "エックス", "class": "local", "bank": bank});
    let bank = |code: &str, branch: &str, number: &str, holder: &str| json!({"bank_code": code, "branch_code": branch, "account_type": "ordinary", "account_number": number, "holder_kana": holder});
    for bad in [
        bank("9999", "101", "0012345", "ヤマダ"),
        bank("0126", "999", "0012345", "ヤマダ"),
        bank("0126", "101", "12345", "ヤマダ"),
        bank("0126", "101", "0012345", "山田"),
        bank("0126", "101", "0012345", &"ア".repeat(31)),
    ] {
        refused(
            town.call("POST", "/v1/admin/shops", Some(&town.admin), Some(shop_with(bad))).await,
            400,
            "bad_bank_account",
        );
    }
    let (_, shops) = town.call("GET", "/v1/admin/shops", Some(&town.admin), None).await;
    assert_eq!(shops.as_array().unwrap().len(), 1);
    refused(town.call("GET", "/v1/statements/2026-13", Some(&pos), None).await, 400, "bad_month");
    refused(town.call("GET", "/v1/pay/123", None, None).await, 404, "unknown_pay_code");
    refused(town.call("GET", "/v1/nowhere", None, None).await, 404, "not_found");

    // Pay-code look-ups are limited per client: the burst, then 429 with Retry-After.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(town.call("GET", "/v1/pay/00000000", None, None).await.0);
    }
    let limited = statuses.iter().filter(|&&s| s == 429).count();
    assert!(limited >= 5 && statuses[..19].iter().all(|&s| s == 404), "{statuses:?}");

    // The OpenAPI document names every route.
    let (status, doc) = town.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    for path in [
        "/v1/invoices",
        "/v1/invoices/{id}/refunds",
        "/v1/pay/{code}",
        "/v1/admin/settlements/{id}/zengin",
        "/v1/statements/{month}",
        "/v1/events",
        "/v1/cashouts",
        "/v1/balance",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    // Its schemas are the real types: the pay code's answer is machi-api's PayCodeView,
    // ids are hex strings and amounts whole yen wherever they appear.
    let pay =
        &doc["paths"]["/v1/pay/{code}"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(pay["$ref"], "#/components/schemas/PayCodeView", "{pay}");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["PayCodeView"]["properties"]["shop"]["$ref"], "#/components/schemas/AccountId");
    assert_eq!(schemas["Invoice"]["properties"]["amount"]["$ref"], "#/components/schemas/Yen");
    assert_eq!(schemas["AccountId"]["pattern"], "^[0-9a-f]{64}$");
    assert_eq!(schemas["ShopClass"]["enum"], json!(["large", "local"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_counters_create_invoices_at_once() {
    let town = Town::start().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    // The requests run on their own thread and runtime, so a service that hangs makes
    // this test fail after a minute instead of hanging it.
    let (http, url, token) = (town.http.clone(), town.url.clone(), pos.clone());
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let statuses = runtime.block_on(futures_util::future::join_all((0..64u64).map(|i| {
            let request =
                http.post(format!("{url}/v1/invoices")).bearer_auth(&token).json(&json!({"amount": 100 + i}));
            async move { request.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })));
        let _ = done.send(statuses);
    });
    let statuses =
        tokio::task::spawn_blocking(move || finished.recv_timeout(std::time::Duration::from_secs(60)))
            .await
            .unwrap()
            .expect("64 concurrent invoice requests answered within a minute");
    assert!(statuses.iter().all(|&s| s == 201), "{statuses:?}");
    let (_, list) = town.call("GET", "/v1/invoices", Some(&pos), None).await;
    let codes: std::collections::HashSet<&str> =
        list.as_array().unwrap().iter().map(|i| i["pay_code"].as_str().unwrap()).collect();
    assert_eq!(codes.len(), 64, "every open invoice has its own pay code");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_made_while_the_service_runs_works_at_once() {
    let town = Town::start().await;
    assert_eq!(town.call("GET", "/v1/admin/shops", Some(&town.admin), None).await.0, 200);
    let second = machi_merchant::new_admin_token(&town.merchant_dir).unwrap();
    assert_eq!(town.call("GET", "/v1/admin/shops", Some(&second), None).await.0, 200);
    assert_eq!(town.call("GET", "/v1/admin/shops", Some(&town.admin), None).await.0, 200);
    refused(town.call("GET", "/v1/admin/shops", Some(&format!("{second}0")), None).await, 401, "bad_token");
}

/// Pay-code look-ups behind the town's reverse proxy: each resident has a bucket of their
/// own (from `X-Forwarded-For`, believed only from a trusted proxy), an IPv6 client is one
/// /64, and a client that is not a trusted proxy cannot choose its bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pay_code_look_ups_are_limited_per_resident_behind_a_trusted_proxy() {
    let mut town = Town::start().await;
    let look_ups = |town: &Town, forwarded: &'static str, n: usize| {
        let (http, url) = (town.http.clone(), town.url.clone());
        async move {
            let mut limited = 0;
            for _ in 0..n {
                let response = http
                    .get(format!("{url}/v1/pay/00000000"))
                    .header("x-forwarded-for", forwarded)
                    .send()
                    .await
                    .unwrap();
                limited += usize::from(response.status() == 429);
            }
            limited
        }
    };
    let burst = 20;
    // Not behind a trusted proxy: the header is the client's own word, and ignored.
    assert_eq!(look_ups(&town, "203.0.113.1", burst).await, 0);
    assert_eq!(look_ups(&town, "203.0.113.2", 1).await, 1, "one bucket for this socket address");

    town.stop_merchant().await;
    town.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    town.start_merchant().await;
    assert_eq!(look_ups(&town, "203.0.113.1", burst).await, 0);
    assert_eq!(look_ups(&town, "203.0.113.1", 1).await, 1, "resident 1's bucket is empty");
    assert_eq!(look_ups(&town, "203.0.113.2", 1).await, 0, "resident 2 has a bucket of its own");
    // The rightmost address the trusted proxy did not add is the client; what the
    // client itself put before it does not choose the bucket.
    assert_eq!(look_ups(&town, "198.51.100.9, 203.0.113.1", 1).await, 1);
    assert_eq!(look_ups(&town, "203.0.113.1, 127.0.0.1", 1).await, 1, "trusted hops are skipped");
    // An IPv6 client is its /64: rotating the low bits does not escape the limit.
    assert_eq!(look_ups(&town, "2001:db8:1:2::1", burst).await, 0);
    assert_eq!(look_ups(&town, "2001:db8:1:2:ffff::7", 1).await, 1);
    assert_eq!(look_ups(&town, "2001:db8:1:3::1", 1).await, 0, "another /64");
}
