//! Money moves once per Idempotency-Key: concurrent requests with one key, an answer lost
//! between the node and the merchant API (with a restart of the merchant API before the
//! retry), and a reserved transaction whose time-to-live ran out before it reached the
//! chain.

use serde_json::{json, Value};

use crate::harness::{id, Town};

/// Time-to-live of the merchant API's transactions, and a little more.
const PAST_TTL_MS: u64 = 10 * 60 * 1000 + 1_000;

/// A shop with a `full` token, and an invoice of ¥10,000 paid by resident 0.
async fn paid_invoice(town: &Town) -> (String, String, String) {
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let full = town.token(&shop, "full").await;
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&full), Some(json!({"amount": 10_000}))).await;
    let invoice = invoice["id"].as_str().unwrap().to_string();
    town.pay(0, &shop, 10_000, &invoice).await;
    town.invoice_when(&full, &invoice, "paid").await;
    (shop, full, invoice)
}

async fn resident_total(town: &Town, resident: usize) -> u64 {
    town.reading_as(&town.residents[resident]).account(&id(&town.residents[resident])).await.unwrap().total.0
}

async fn refund(town: &Town, token: &str, invoice: &str, amount: u64, key: &str) -> (u16, Value) {
    let path = format!("/v1/invoices/{invoice}/refunds");
    town.call_with("POST", &path, Some(token), Some(json!({"amount": amount})), &[("Idempotency-Key", key)])
        .await
}

async fn cash_out(town: &Town, token: &str, amount: u64, key: &str) -> (u16, Value) {
    let body = Some(json!({"issue": 1, "amount": amount}));
    town.call_with("POST", "/v1/cashouts", Some(token), body, &[("Idempotency-Key", key)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_refunds_with_one_key_refund_once() {
    let town = Town::start().await;
    let (_, full, invoice) = paid_invoice(&town).await;
    let before = resident_total(&town, 0).await;
    let answers =
        futures_util::future::join_all((0..16).map(|_| refund(&town, &full, &invoice, 5_000, "refund-1")))
            .await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["refunded"], 5_000, "{body}");
    }
    assert_eq!(resident_total(&town, 0).await, before + 5_000, "the resident got ¥5,000 back once");
    let (_, invoice) = town.call("GET", &format!("/v1/invoices/{invoice}"), Some(&full), None).await;
    assert_eq!(
        (invoice["refunded"].as_u64(), invoice["refunds"].as_array().map(Vec::len)),
        (Some(5_000), Some(1))
    );
    let (status, error) = refund(&town, &full, invoice["id"].as_str().unwrap(), 4_000, "refund-1").await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("idempotency_conflict")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_cash_outs_with_one_key_cash_out_once() {
    let town = Town::start().await;
    let (_, full, _) = paid_invoice(&town).await;
    let answers =
        futures_util::future::join_all((0..16).map(|_| cash_out(&town, &full, 3_000, "co-1"))).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 201, "{body}");
            body["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every answer is the same cash-out");
    let (_, list) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, balance) = town.call("GET", "/v1/balance", Some(&full), None).await;
    assert_eq!(balance["total"], 7_000, "¥3,000 left the shop once");
}

/// The node commits the refund but its answer is lost; the merchant API restarts; the
/// shop retries with the same key after the transaction's time-to-live: the node answers
/// with the first outcome and nothing moves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_answer_was_lost_is_not_made_twice() {
    let mut town = Town::start_behind_proxy().await;
    let (_, full, invoice) = paid_invoice(&town).await;
    let before = resident_total(&town, 0).await;
    town.proxy().set(crate::proxy::Fault::LoseSubmitAnswers);
    let (status, error) = refund(&town, &full, &invoice, 5_000, "refund-1").await;
    assert_eq!((status, error["error"]["code"].as_str()), (503, Some("node_unavailable")), "{error}");
    assert_eq!(resident_total(&town, 0).await, before + 5_000, "the node did commit it");

    town.stop_merchant().await;
    town.proxy().set(crate::proxy::Fault::None);
    town.clock.set(town.now() + PAST_TTL_MS);
    town.start_merchant().await;
    let (status, answer) = refund(&town, &full, &invoice, 5_000, "refund-1").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["refunded"].as_u64(), answer["refunds"].as_array().map(Vec::len)),
        (Some(5_000), Some(1))
    );
    assert_eq!(resident_total(&town, 0).await, before + 5_000, "refunded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cash_out_whose_answer_was_lost_is_not_made_twice() {
    let mut town = Town::start_behind_proxy().await;
    let (_, full, _) = paid_invoice(&town).await;
    town.proxy().set(crate::proxy::Fault::LoseSubmitAnswers);
    let (status, _) = cash_out(&town, &full, 3_000, "co-1").await;
    assert_eq!(status, 503);

    town.stop_merchant().await;
    town.proxy().set(crate::proxy::Fault::None);
    town.clock.set(town.now() + PAST_TTL_MS);
    town.start_merchant().await;
    let (status, answer) = cash_out(&town, &full, 3_000, "co-1").await;
    assert_eq!((status, answer["amount"].as_u64()), (201, Some(3_000)), "{answer}");
    let (_, list) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let (_, balance) = town.call("GET", "/v1/balance", Some(&full), None).await;
    assert_eq!(balance["total"], 7_000, "¥3,000 left the shop once");
}

/// The node is down when the refund is asked for, and stays down past the reserved
/// transaction's time-to-live: that transaction can never reach the chain, so the retry
/// signs a new one, and the refund is made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_refund_that_expired_unsent_is_signed_again_once() {
    let mut town = Town::start().await;
    let (_, full, invoice) = paid_invoice(&town).await;
    let before = resident_total(&town, 0).await;
    town.stop_node().await;
    let (status, error) = refund(&town, &full, &invoice, 5_000, "refund-1").await;
    assert_eq!((status, error["error"]["code"].as_str()), (503, Some("node_unavailable")), "{error}");
    town.clock.set(town.now() + PAST_TTL_MS);
    town.start_node().await;
    for _ in 0..2 {
        let (status, answer) = refund(&town, &full, &invoice, 5_000, "refund-1").await;
        assert_eq!((status, answer["refunds"].as_array().map(Vec::len)), (200, Some(1)), "{answer}");
    }
    assert_eq!(resident_total(&town, 0).await, before + 5_000, "refunded once");
}
