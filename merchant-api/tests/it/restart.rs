//! Restarts lose nothing: a payment committed while the merchant API was down pays its
//! invoice once it is back; idempotency keys and tokens outlive a restart; a node restart
//! under a running merchant API loses no payment either.

use serde_json::json;

use crate::harness::Town;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_lose_no_payment() {
    let mut town = Town::start().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let key = [("Idempotency-Key", "sale-1")];
    let (_, invoice) =
        town.call_with("POST", "/v1/invoices", Some(&pos), Some(json!({"amount": 700})), &key).await;
    let id = invoice["id"].as_str().unwrap().to_string();

    // The merchant API is down while the resident pays. A counter listening for events
    // does not hold up its shutdown.
    let listening = town.events(&pos, None).await;
    tokio::time::timeout(std::time::Duration::from_secs(20), town.stop_merchant())
        .await
        .expect("the merchant API stops while a counter is listening");
    drop(listening);
    town.pay(0, &shop, 700, &id).await;
    town.start_merchant().await;
    let mut events = town.events(&pos, Some(0)).await;
    let paid = events.expect("invoice.paid").await;
    assert_eq!(paid["invoice"]["id"], id.as_str());
    assert_eq!(
        town.invoice_when(&pos, &id, "paid").await["payment"]["resident"],
        crate::harness::id(&town.residents[0]).to_hex()
    );
    let (status, again) =
        town.call_with("POST", "/v1/invoices", Some(&pos), Some(json!({"amount": 700})), &key).await;
    assert_eq!((status, &again["id"]), (200, &json!(id)), "the idempotency key outlives the restart");

    // The node restarts under a running merchant API.
    let (_, second) = town.call("POST", "/v1/invoices", Some(&pos), Some(json!({"amount": 300}))).await;
    let second_id = second["id"].as_str().unwrap().to_string();
    town.restart_node().await;
    town.pay(1, &shop, 300, &second_id).await;
    town.invoice_when(&pos, &second_id, "paid").await;

    // Reconnecting with Last-Event-ID gets what came after it, not what came before.
    let first_seq = paid["seq"].as_u64().unwrap();
    let mut resumed = town.events(&pos, Some(first_seq)).await;
    let next = resumed.expect("invoice.paid").await;
    assert_eq!(next["invoice"]["id"], second_id.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_invoices_expire_and_free_their_pay_code() {
    let town = Town::start().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let body = Some(json!({"amount": 400, "expires_in_s": 60}));
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&pos), body).await;
    let (id, code) =
        (invoice["id"].as_str().unwrap().to_string(), invoice["pay_code"].as_str().unwrap().to_string());
    assert_eq!(town.call("GET", &format!("/v1/pay/{code}"), None, None).await.0, 200);

    town.clock.set(town.now() + 61_000);
    let (_, expired) = town.call("GET", &format!("/v1/invoices/{id}"), Some(&pos), None).await;
    assert_eq!((expired["status"].as_str(), expired["pay_code"].as_str()), (Some("expired"), None));
    let (status, error) = town.call("GET", &format!("/v1/pay/{code}"), None, None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (404, Some("unknown_pay_code")));
    let (_, listed) = town.call("GET", "/v1/invoices?status=expired", Some(&pos), None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    let (_, open) = town.call("GET", "/v1/invoices?status=open", Some(&pos), None).await;
    assert_eq!(open, json!([]));

    // A payment that was on its way when the invoice expired still pays it: the money
    // is with the shop.
    town.pay(0, &shop, 400, &id).await;
    town.invoice_when(&pos, &id, "paid").await;
}
