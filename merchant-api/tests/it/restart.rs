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

    // The merchant API is down while the resident pays.
    town.stop_merchant().await;
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
