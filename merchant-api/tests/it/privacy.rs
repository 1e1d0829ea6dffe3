//! What the merchant API reads from the node, and as whom (docs/PRIVACY.md): every read
//! is made as the town's delegated shop registrar with the service's purpose, through one
//! read session, so the service keeps matching payments when the node refuses anonymous
//! reads; and a shop's token reads through the merchant API only that shop's own things.

use machi_api::ReaderRole;
use serde_json::{json, Value};

use crate::harness::{id, Town};
use crate::proxy::{Fault, Seen};

#[track_caller]
fn refused(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!((answer.0, answer.1["error"]["code"].as_str()), (status, Some(code)), "{}", answer.1);
}

/// Reads the node answers without a credential (docs/PRIVACY.md, "Public").
fn public(seen: &Seen) -> bool {
    ["/v1/chain/head", "/v1/health", "/v1/issues"].iter().any(|p| seen.path.starts_with(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_matches_payments_reading_as_the_registrar() {
    let mut town = Town::start_behind_proxy().await;
    // From the start (genesis, delegates, shops), the stand-in refuses what the node
    // refuses to anonymous readers.
    town.stop_merchant().await;
    town.proxy().set(Fault::RefuseAnonymousReads);
    let before = town.proxy().seen().len();
    town.start_merchant().await;
    let shop = town.register_shop("山田商店", "local", "ヤマダ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&pos), Some(json!({"amount": 800}))).await;
    let invoice = invoice["id"].as_str().unwrap().to_string();
    let paid = town.pay(0, &shop, 800, &invoice).await;
    let view = town.invoice_when(&pos, &invoice, "paid").await;
    assert_eq!(view["payment"]["resident"], id(&town.residents[0]).to_hex());
    let (status, balance) = town.call("GET", "/v1/balance", Some(&pos), None).await;
    assert_eq!((status, &balance["total"]), (200, &json!(800)), "{balance}");

    // Every read that is not public carried the session's token, and one session served
    // the whole run (genesis, delegates, blocks, the balance).
    let seen = town.proxy().seen().split_off(before);
    let private: Vec<&Seen> = seen.iter().filter(|s| s.method == "GET" && !public(s)).collect();
    assert!(private.iter().all(|s| s.bearer), "{private:?}");
    let height = paid.height.expect("applied in a block");
    for path in ["/v1/blocks/0", &format!("/v1/blocks/{height}"), &format!("/v1/accounts/{shop}")] {
        assert!(private.iter().any(|s| s.path == path), "read {path}: {private:?}");
    }
    let sessions = seen.iter().filter(|s| s.path == "/v1/auth/session").count();
    assert_eq!(sessions, 1, "one read session for the run, not one a read");
    // The node itself refuses those reads to anyone without a session.
    let anonymous = town.node.block(height).await.expect_err("the node refuses anonymous block reads");
    assert_eq!(anonymous.code(), "read_auth_required");
    let anonymous = town.node.account(&id(&town.residents[0])).await.expect_err("and accounts");
    assert_eq!(anonymous.code(), "not_found");

    // The node's access log names the registrar, as the town's service, and why.
    let log = town.reading_as(&town.town).access_log(0, 1_000).await.expect("the town reads its log");
    let ours: Vec<_> = log.entries.iter().filter(|e| e.account == id(&town.registrar)).collect();
    assert!(!ours.is_empty(), "the service's reads are logged");
    assert!(
        ours.iter().all(|e| e.role == ReaderRole::Service && e.purpose == machi_merchant::READ_PURPOSE),
        "{ours:?}"
    );
    let block = format!("/v1/blocks/{height}");
    assert!(ours.iter().any(|e| e.path == block && e.status == 200), "{ours:?}");
}

/// No merchant route passes the node's reads on: a shop's token reaches its own
/// invoices, balance, statements and events, and another shop's or a resident's things
/// are "not found" exactly like things that do not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_token_reads_only_its_own_shop() {
    let town = Town::start().await;
    let a = town.register_shop("山田商店", "local", "ヤマダ").await;
    let b = town.register_shop("鈴木商店", "local", "スズキ").await;
    let a_full = town.token(&a, "full").await;
    let b_full = town.token(&b, "full").await;
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&a_full), Some(json!({"amount": 500}))).await;
    let a_invoice = invoice["id"].as_str().unwrap().to_string();
    let paid = town.pay(1, &a, 500, &a_invoice).await;
    town.invoice_when(&a_full, &a_invoice, "paid").await;
    let resident = id(&town.residents[1]).to_hex();
    let tx = paid.tx_id.to_hex();

    // Shop B: A's invoice, A's payment and the resident who paid are not found, as an id
    // that names nothing is.
    let missing = "0".repeat(64);
    for path in [
        format!("/v1/invoices/{a_invoice}"),
        format!("/v1/invoices/{resident}"),
        format!("/v1/invoices/{tx}"),
        format!("/v1/invoices/{missing}"),
    ] {
        refused(town.call("GET", &path, Some(&b_full), None).await, 404, "not_found");
    }
    let nothing = town.call("GET", &format!("/v1/invoices/{missing}"), Some(&b_full), None).await;
    let theirs = town.call("GET", &format!("/v1/invoices/{a_invoice}"), Some(&b_full), None).await;
    assert_eq!(theirs, nothing, "the same answer: another shop's invoice is not told from none");
    let refund = Some(json!({"amount": 100}));
    let path = format!("/v1/invoices/{a_invoice}/refunds");
    refused(town.call("POST", &path, Some(&b_full), refund).await, 404, "not_found");
    let (_, b_list) = town.call("GET", "/v1/invoices", Some(&b_full), None).await;
    assert_eq!(b_list, json!([]));
    let (_, b_balance) = town.call("GET", "/v1/balance", Some(&b_full), None).await;
    assert_eq!(b_balance["total"], 0, "B's balance is B's, not A's");
    let (_, b_shop) = town.call("GET", "/v1/shop", Some(&b_full), None).await;
    assert_eq!(b_shop["id"], b.as_str());

    // The node's own reads are not passed on, whoever asks: the merchant API has no such
    // route, for a shop's token, the admin's, or none.
    for path in [
        format!("/v1/accounts/{resident}"),
        format!("/v1/accounts/{a}"),
        format!("/v1/transactions/{tx}"),
        "/v1/blocks/1".to_string(),
        "/v1/cash/days".to_string(),
        format!("/v1/shops/{a}"),
    ] {
        for token in [Some(b_full.as_str()), Some(a_full.as_str()), Some(town.admin.as_str()), None] {
            let (status, body) = town.call("GET", &path, token, None).await;
            let leaked = body.to_string().contains(&resident);
            assert!(!leaked, "{path} gave the resident's id: {body}");
            assert_eq!((status, body["error"]["code"].as_str()), (404, Some("not_found")), "{path}: {body}");
        }
    }

    // A's own token sees the resident who paid A: the payment is A's.
    let (_, a_view) = town.call("GET", &format!("/v1/invoices/{a_invoice}"), Some(&a_full), None).await;
    assert_eq!(a_view["payment"]["resident"], resident.as_str());
}
