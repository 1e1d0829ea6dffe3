//! A shop's day, end to end: invoice → resident's payment → paid (SSE) → partial refund
//! → statement → cash-out → settlement file (checked field by field) with its SHA-256 on
//! chain → statement closed once the month is over.

use machi_ledger::{sha256, Action};
use serde_json::json;

use crate::harness::{Town, DAY_MS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shops_day() {
    let town = Town::start().await;
    let (month, next_month_ms) = crate::harness::month_of(town.now());
    let statement_path = format!("/v1/statements/{month}");
    let transfer_date = machi_ledger::time::format_jst_date(town.now() + DAY_MS);
    let shop = town.register_shop("山田商店", "local", "ヤマダ タロウ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let full = town.token(&shop, "full").await;

    // The counter asks for ¥1,200; a retry with the same key gets the same invoice.
    let key = [("Idempotency-Key", "till-1-sale-42")];
    let request = json!({"amount": 1200, "memo": "りんご 3個"});
    let (status, invoice) =
        town.call_with("POST", "/v1/invoices", Some(&pos), Some(request.clone()), &key).await;
    assert_eq!(status, 201, "{invoice}");
    let (again_status, again) = town.call_with("POST", "/v1/invoices", Some(&pos), Some(request), &key).await;
    assert_eq!((again_status, &again["id"]), (200, &invoice["id"]));
    let other = json!({"amount": 1300, "memo": "りんご 3個"});
    let (conflict, error) = town.call_with("POST", "/v1/invoices", Some(&pos), Some(other), &key).await;
    assert_eq!((conflict, error["error"]["code"].as_str()), (409, Some("idempotency_conflict")));
    let id = invoice["id"].as_str().unwrap().to_string();
    let code = invoice["pay_code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 8);
    assert!(invoice["qr_payload"].as_str().unwrap().contains(&code));

    // What the wallet sees for the pay code: shop, class, amount, invoice — nothing private.
    let (status, view) = town.call("GET", &format!("/v1/pay/{code}"), None, None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["shop"], shop.as_str());
    assert_eq!(view["shop_name"], "山田商店");
    assert_eq!(view["shop_class"], "local");
    assert_eq!(view["amount"], 1200);
    assert_eq!(view["invoice_id"], id.as_str());
    assert!(view.get("memo").is_none() && view.get("bank").is_none());

    // The resident pays with their own key; the merchant API sees it on chain.
    let mut events = town.events(&pos, None).await;
    // A payment naming the invoice with the wrong amount does not pay it.
    town.pay(1, &shop, 1000, &id).await;
    let payment = town.pay(0, &shop, 1200, &id).await;
    let paid = events.expect("invoice.paid").await;
    assert_eq!(paid["invoice"]["id"], id.as_str());
    assert_eq!(paid["invoice"]["payment"]["tx_id"], payment.tx_id.to_hex());
    let (_, invoice) = town.call("GET", &format!("/v1/invoices/{id}"), Some(&pos), None).await;
    assert_eq!(invoice["status"], "paid");
    assert!(invoice["pay_code"].is_null());
    let (gone, _) = town.call("GET", &format!("/v1/pay/{code}"), None, None).await;
    assert_eq!(gone, 404, "a paid invoice's pay code is no longer looked up");

    // Partial refund, then one too many.
    let path = format!("/v1/invoices/{id}/refunds");
    let (status, refunded) = town.call("POST", &path, Some(&pos), Some(json!({"amount": 300}))).await;
    assert_eq!(status, 200, "{refunded}");
    assert_eq!(
        (refunded["status"].as_str(), refunded["refunded"].as_u64()),
        (Some("partly_refunded"), Some(300))
    );
    assert_eq!(events.expect("refund.done").await["invoice"]["refunded"], 300);
    let (status, error) = town.call("POST", &path, Some(&pos), Some(json!({"amount": 901}))).await;
    assert_eq!((status, error["error"]["code"].as_str()), (422, Some("refund_exceeds_payment")));
    let resident =
        town.reading_as(&town.residents[0]).account(&crate::harness::id(&town.residents[0])).await.unwrap();
    assert_eq!(resident.total.0, 25_000 - 1200 + 300, "the refund went back to the resident who paid");

    // Balance and cash-out (1% fee, rounded down).
    let (_, balance) = town.call("GET", "/v1/balance", Some(&pos), None).await;
    assert_eq!(balance["total"], 1000 + 900);
    let (status, cash_out) = town.call("POST", "/v1/cashouts", Some(&full), Some(json!({"issue": 1}))).await;
    assert_eq!(status, 201, "{cash_out}");
    assert_eq!(
        (cash_out["amount"].as_u64(), cash_out["fee"].as_u64(), cash_out["net"].as_u64()),
        (Some(1900), Some(19), Some(1881))
    );
    assert_eq!(cash_out["status"], "pending");

    // The statement so far (this month, still open).
    let (status, headers, csv) = town.get_bytes(&statement_path, &pos).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-statement-status"], "open");
    let csv = String::from_utf8(csv).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    let kinds: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(kinds, ["payment", "payment", "refund", "cash_out"], "{csv}");
    assert_eq!((rows[1][3], rows[1][5]), (id.as_str(), "1200"));
    assert_eq!((rows[2][3], rows[2][5]), (id.as_str(), "-300"));
    assert_eq!((rows[3][5], rows[3][6], rows[3][7]), ("-1900", "19", "1881"));

    // Settlement: one Zengin file for all pending cash-outs, its SHA-256 on chain.
    let second = town.register_shop("スーパーまち", "large", "カ)スーパーマチ").await;
    let second_full = town.token(&second, "full").await;
    town.submit(
        &town.residents[2],
        Action::Pay { shop: second.parse().unwrap(), amount: machi_ledger::Yen(5_000), invoice: None },
    )
    .await;
    let (status, _) = town
        .call("POST", "/v1/cashouts", Some(&second_full), Some(json!({"issue": 1, "amount": 5000})))
        .await;
    assert_eq!(status, 201);
    let (status, settlement) = town
        .call(
            "POST",
            "/v1/admin/settlements",
            Some(&town.admin),
            Some(json!({"transfer_date": transfer_date})),
        )
        .await;
    assert_eq!(status, 201, "{settlement}");
    assert_eq!(settlement["status"], "recorded");
    assert_eq!(
        (settlement["transfers"].as_u64(), settlement["total"].as_u64()),
        (Some(2), Some(1881 + 4950))
    );
    let settlement_id = settlement["id"].as_str().unwrap();
    let zengin_path = format!("/v1/admin/settlements/{settlement_id}/zengin");
    let (status, _, file) = town.get_bytes(&zengin_path, &town.admin).await;
    assert_eq!(status, 200);
    check_zengin(&file, &transfer_date, &[("ﾔﾏﾀﾞ ﾀﾛｳ", 1881), ("ｶ)ｽ-ﾊﾟ-ﾏﾁ", 4950)]);
    let (_, _, file_again) = town.get_bytes(&zengin_path, &town.admin).await;
    assert_eq!(file, file_again, "the same settlement gives the same bytes");
    let block = town.reading_as(&town.town).block(settlement["height"].as_u64().unwrap()).await.unwrap();
    let on_chain = block.txs.iter().find_map(|tx| match tx.body.as_ref().map(|b| &b.action) {
        Some(Action::SettleCashOuts { file_sha256, transfer_date, cash_outs }) => {
            Some((*file_sha256, transfer_date.clone(), cash_outs.len()))
        }
        _ => None,
    });
    assert_eq!(on_chain, Some((sha256(&file), transfer_date.clone(), 2)));
    let paid = events.expect("cash_out.paid").await;
    assert_eq!(
        (paid["cash_out"]["status"].as_str(), paid["cash_out"]["net"].as_u64()),
        (Some("paid"), Some(1881))
    );
    let (_, cash_outs) = town.call("GET", "/v1/cashouts", Some(&pos), None).await;
    assert_eq!(cash_outs.as_array().unwrap().len(), 1, "a shop sees only its own cash-outs");
    assert_eq!(cash_outs[0]["settlement"], settlement_id);
    let (status, error) = town
        .call(
            "POST",
            "/v1/admin/settlements",
            Some(&town.admin),
            Some(json!({"transfer_date": transfer_date})),
        )
        .await;
    assert_eq!((status, error["error"]["code"].as_str()), (409, Some("nothing_to_settle")));

    // Next month: this month's statement closes and never changes again.
    town.clock.set(next_month_ms + DAY_MS);
    town.submit(
        &town.residents[1],
        Action::Pay { shop: shop.parse().unwrap(), amount: machi_ledger::Yen(100), invoice: None },
    )
    .await;
    let closed = loop {
        let (_, headers, csv) = town.get_bytes(&statement_path, &pos).await;
        if headers["x-statement-status"] == "closed" {
            break csv;
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), events.next_event()).await;
    };
    let closed_text = String::from_utf8(closed.clone()).unwrap();
    assert!(closed_text.contains("cash_out_paid"), "{closed_text}");
    assert!(!closed_text.contains(",100,"), "next month's payment is not in this month");
    town.submit(
        &town.residents[1],
        Action::Pay { shop: shop.parse().unwrap(), amount: machi_ledger::Yen(200), invoice: None },
    )
    .await;
    let (_, _, later) = town.get_bytes(&statement_path, &pos).await;
    assert_eq!(later, closed);
    let (next_month, _) = crate::harness::month_of(next_month_ms);
    let (_, _, december) = town.get_bytes(&format!("/v1/statements/{next_month}"), &pos).await;
    assert!(String::from_utf8(december).unwrap().contains("payment"));
}

/// Checks a settlement file record by record against the Zengin 総合振込 layout.
fn check_zengin(file: &[u8], transfer_date: &str, payees: &[(&str, u64)]) {
    assert_eq!(file.len() % 122, 0, "records are 120 bytes + CRLF");
    let records: Vec<&[u8]> = file.chunks(122).collect();
    assert_eq!(records.len(), payees.len() + 3);
    for record in &records {
        assert_eq!(&record[120..], b"\r\n");
    }
    let text = |bytes: &[u8]| {
        let (text, _, bad) = encoding_rs::SHIFT_JIS.decode(bytes);
        assert!(!bad, "valid Shift_JIS");
        text.into_owned()
    };
    let header = records[0];
    assert_eq!(&header[..4], b"1210", "record type 1, 種別コード 21, コード区分 0");
    assert_eq!(&header[4..14], b"0000012345");
    assert_eq!(text(&header[14..54]).trim_end(), "ﾊﾞﾝﾀﾞｲﾏﾁ");
    assert_eq!(
        &header[54..58],
        format!("{}{}", &transfer_date[5..7], &transfer_date[8..10]).as_bytes(),
        "MMDD"
    );
    assert_eq!(&header[58..62], b"0126");
    assert_eq!(&header[77..80], b"101");
    assert_eq!(header[95], b'1');
    assert_eq!(&header[96..103], b"7654321");
    assert!(header[103..120].iter().all(|&b| b == b' '));
    // Data records: one per shop, in the order of their accounts; match by name.
    let mut seen = Vec::new();
    for record in &records[1..=payees.len()] {
        assert_eq!(record[0], b'2');
        assert_eq!(&record[1..5], b"0126");
        assert_eq!(&record[20..23], b"105");
        assert_eq!(text(&record[23..38]).trim_end(), "ﾅｶﾏﾁ", "branch kana from the code list");
        assert_eq!(record[42], b'1');
        assert_eq!(&record[43..50], b"0012345");
        let name = text(&record[50..80]).trim_end().to_string();
        let amount: u64 = std::str::from_utf8(&record[80..90]).unwrap().parse().unwrap();
        assert!(record[80..90].iter().all(u8::is_ascii_digit), "amount zero-filled");
        seen.push((name, amount));
    }
    seen.sort();
    let mut expected: Vec<(String, u64)> = payees.iter().map(|(n, a)| (n.to_string(), *a)).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let trailer = records[payees.len() + 1];
    assert_eq!(trailer[0], b'8');
    let count: usize = std::str::from_utf8(&trailer[1..7]).unwrap().parse().unwrap();
    let total: u64 = std::str::from_utf8(&trailer[7..19]).unwrap().parse().unwrap();
    assert_eq!((count, total), (payees.len(), payees.iter().map(|p| p.1).sum()));
    assert!(trailer[19..120].iter().all(|&b| b == b' '));
    let end = records[payees.len() + 2];
    assert_eq!(end[0], b'9');
    assert!(end[1..120].iter().all(|&b| b == b' '));
}

/// The ledger charges the cash-out fee on the shop's running total for the issue; the
/// merchant API's records say the same fee as the chain for each request. Three cash-outs
/// of ¥50 at 1%: ¥0, ¥1 (1% of ¥100), ¥0 (1% of ¥150 is still ¥1 in all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_out_fees_follow_the_running_total() {
    let town = Town::start().await;
    let shop = town.register_shop("八百屋", "local", "ヤオヤ").await;
    let full = town.token(&shop, "full").await;
    town.pay(0, &shop, 150, "paid-at-the-counter").await;
    let mut fees = Vec::new();
    for _ in 0..3 {
        let (status, cash_out) =
            town.call("POST", "/v1/cashouts", Some(&full), Some(json!({"issue": 1, "amount": 50}))).await;
        assert_eq!(status, 201, "{cash_out}");
        fees.push(cash_out["fee"].as_u64().unwrap());
    }
    assert_eq!(fees, [0, 1, 0]);
    let supply = town.node.supply().await.unwrap();
    assert_eq!(supply.issues[0].fees.0, 1, "the chain charged ¥1 in all");
    let (_, listed) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    let listed: Vec<u64> = listed.as_array().unwrap().iter().map(|c| c["fee"].as_u64().unwrap()).collect();
    assert_eq!(listed.iter().sum::<u64>(), 1);
}
