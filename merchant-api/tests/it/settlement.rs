//! A settlement file is never withdrawn nor made twice: while its transaction is not on
//! chain the file is not given out; after the transaction's time-to-live it is signed
//! again for the same file and cash-outs; ids are never reused, even when sled lost the
//! last number in a power cut.

use machi_ledger::{sha256, Action};
use serde_json::{json, Value};

use crate::harness::{Town, DAY_MS};

const PAST_TTL_MS: u64 = 10 * 60 * 1000 + 1_000;

/// A shop whose whole balance (a paid ¥10,000 invoice) is pending cash-out.
async fn shop_with_cash_out(town: &Town, name: &str) -> String {
    let shop = town.register_shop(name, "local", "ヤマダ").await;
    let full = town.token(&shop, "full").await;
    let (_, invoice) = town.call("POST", "/v1/invoices", Some(&full), Some(json!({"amount": 10_000}))).await;
    let invoice = invoice["id"].as_str().unwrap().to_string();
    town.pay(0, &shop, 10_000, &invoice).await;
    town.invoice_when(&full, &invoice, "paid").await;
    let (status, cash_out) = town.call("POST", "/v1/cashouts", Some(&full), Some(json!({"issue": 1}))).await;
    assert_eq!(status, 201, "{cash_out}");
    full
}

async fn settle(town: &Town, transfer_date: &str) -> (u16, Value) {
    let body = Some(json!({"transfer_date": transfer_date}));
    town.call("POST", "/v1/admin/settlements", Some(&town.admin), body).await
}

fn files(town: &Town) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(town.merchant_dir.join("settlements"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settlement_the_node_did_not_take_keeps_its_file_and_is_sent_again() {
    let mut town = Town::start().await;
    let full = shop_with_cash_out(&town, "山田商店").await;
    let transfer_date = machi_ledger::time::format_jst_date(town.now() + DAY_MS);
    town.stop_node().await;
    let (status, error) = settle(&town, &transfer_date).await;
    assert_eq!((status, error["error"]["code"].as_str()), (503, Some("node_unavailable")), "{error}");
    let (_, list) = town.call("GET", "/v1/admin/settlements", Some(&town.admin), None).await;
    let waiting = list[0].clone();
    assert_eq!((list.as_array().map(Vec::len), waiting["status"].as_str()), (Some(1), Some("submitting")));
    let id = waiting["id"].as_str().unwrap().to_string();
    let zengin = format!("/v1/admin/settlements/{id}/zengin");
    let (status, _, body) = town.get_bytes(&zengin, &town.admin).await;
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("settlement_not_recorded")), "{error}");

    // The node comes back after the transaction's time-to-live.
    town.clock.set(town.now() + PAST_TTL_MS);
    town.start_node().await;
    let (status, settled) = settle(&town, &transfer_date).await;
    assert_eq!(status, 201, "{settled}");
    assert_eq!((&settled["id"], settled["status"].as_str()), (&json!(id), Some("recorded")));
    assert_eq!(settled["file_sha256"], waiting["file_sha256"], "the same file");
    assert_ne!(settled["tx_id"], waiting["tx_id"], "signed again: the first transaction expired");
    let (status, _, file) = town.get_bytes(&zengin, &town.admin).await;
    assert_eq!(status, 200);
    assert_eq!(json!(sha256(&file).to_hex()), waiting["file_sha256"]);
    let block = town.reading_as(&town.town).block(settled["height"].as_u64().unwrap()).await.unwrap();
    let on_chain: Vec<_> = block
        .txs
        .iter()
        .filter_map(|tx| match tx.body.as_ref().map(|b| &b.action) {
            Some(Action::SettleCashOuts { file_sha256, .. }) => Some(*file_sha256),
            _ => None,
        })
        .collect();
    assert_eq!(on_chain, vec![sha256(&file)]);
    assert_eq!(files(&town), vec![format!("{id}.json"), format!("{id}.zengin")], "one settlement, one file");
    let (_, cash_outs) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    assert_eq!((cash_outs[0]["status"].as_str(), &cash_outs[0]["settlement"]), (Some("paid"), &json!(id)));
    let (status, error) = settle(&town, &transfer_date).await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("nothing_to_settle")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlement_ids_are_never_reused_for_a_transfer_date() {
    let mut town = Town::start().await;
    shop_with_cash_out(&town, "山田商店").await;
    let transfer_date = machi_ledger::time::format_jst_date(town.now() + DAY_MS);
    let (status, first) = settle(&town, &transfer_date).await;
    assert_eq!(status, 201, "{first}");
    let first_id = first["id"].as_str().unwrap().to_string();
    let first_path = format!("/v1/admin/settlements/{first_id}/zengin");
    let (_, _, first_file) = town.get_bytes(&first_path, &town.admin).await;

    // A power cut takes what sled had not yet written, such as a counter.
    town.stop_merchant().await;
    {
        let db = sled::open(town.merchant_dir.join("db")).unwrap();
        db.open_tree("meta").unwrap().remove("settlement_seq").unwrap();
        db.flush().unwrap();
    }
    town.start_merchant().await;
    shop_with_cash_out(&town, "鈴木商店").await;
    let (status, second) = settle(&town, &transfer_date).await;
    assert_eq!(status, 201, "{second}");
    assert_ne!(second["id"], first["id"]);
    let (_, _, again) = town.get_bytes(&first_path, &town.admin).await;
    assert_eq!(again, first_file, "the first file is unchanged");
    let (_, list) = town.call("GET", "/v1/admin/settlements", Some(&town.admin), None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(2));
}
