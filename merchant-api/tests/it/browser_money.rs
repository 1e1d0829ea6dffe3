//! Money out, in a real browser: the back office requests a cash-out (fee and net shown
//! before it is confirmed), the town office settles it and downloads the Zengin file, and
//! the file is the API's, byte for byte.

use machi_merchant::{DeviceCaller, Scope};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::browser::{visible_js, Chrome, DESKTOP, PHONE, TABLET};
use crate::browser_counter::{pair, shop_id};
use crate::harness::Town;

/// `¥12,345` as yen.
fn yen(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{text:?} is an amount in yen"))
}

/// A resident pays `amount` on an invoice of the shop's counter, and the merchant has seen it.
pub(crate) async fn paid(town: &Town, shop: &str, pos: &str, resident: usize, amount: u64) {
    let (status, invoice) =
        town.call("POST", "/v1/invoices", Some(pos), Some(json!({"amount": amount, "memo": "やさい"}))).await;
    assert_eq!(status, 201, "{invoice}");
    let id = invoice["id"].as_str().unwrap().to_string();
    town.pay(resident, shop, amount, &id).await;
    town.invoice_when(pos, &id, "paid").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_office_cashes_out_and_the_town_office_downloads_the_apis_zengin_file() {
    let town = Town::start().await;
    let shop = town.register_shop("パン屋", "local", "パンヤ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let full = town.token(&shop, "full").await;
    paid(&town, &shop, &pos, 0, 5_000).await;
    let chrome = Chrome::launch().await;

    // The back office: the amount, then the fee and the net before anything is sent.
    let office = chrome.device(&town.url, TABLET).await;
    pair(&town, &office, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }, "事務所の PC")
        .await;
    assert_eq!(office.text("#balance-total").await.as_deref(), Some("¥5,000"));
    office.open("/office/cash-out").await;
    office.wait_screen("cash-out").await;
    office.select("#cash-out-issue", "1").await;
    office.type_into("#cash-out-amount", "4000").await;
    office.check_screen(&[TABLET, PHONE], "-form").await;
    office.click("#cash-out-preview").await;
    office.wait_for(&visible_js("#cash-out-confirm"), "the cash-out's preview").await;
    let fee = yen(&office.text("#cash-out-fee").await.expect("the fee shown"));
    let net = yen(&office.text("#cash-out-net").await.expect("the net shown"));
    assert_eq!((fee, fee + net), (40, 4_000), "1% of ¥4,000, and the rest transferred");
    let (_, before) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    assert_eq!(before, json!([]), "nothing is requested before the confirmation");
    office.check_screen(&[TABLET, PHONE], "-preview").await;
    office.click("#cash-out-confirm").await;
    office
        .wait_for(
            "location.pathname === '/office/cash-outs' && document.querySelector('#notice') !== null",
            "the cash-outs after the confirmation",
        )
        .await;
    assert_eq!(office.screen().await, "cash-outs");
    let (_, cash_outs) = town.call("GET", "/v1/cashouts", Some(&full), None).await;
    let cash_out = &cash_outs[0];
    assert_eq!((cash_out["amount"].as_u64(), cash_out["fee"].as_u64()), (Some(4_000), Some(fee)));
    let row = format!("[data-cash-out=\"{}\"]", cash_out["id"].as_str().unwrap());
    assert_eq!(office.attribute(&format!("{row} .status"), "data-status").await.as_deref(), Some("pending"));
    office.check_screen(&[TABLET, PHONE], "-requested").await;

    // The town office, on its PC: the pending cash-out, a settlement, the file.
    let town_office = chrome.device(&town.url, DESKTOP).await;
    pair(&town, &town_office, DeviceCaller::TownOffice, "役場 出納室").await;
    town_office.open("/town/settlements").await;
    town_office.wait_screen("settlements").await;
    let pending = format!("[data-pending-shop=\"{shop}\"] .amount");
    assert_eq!(town_office.text(&pending).await.map(|t| yen(&t)), Some(net), "the shop's transfer");
    town_office.check_screen(&[DESKTOP, TABLET, PHONE], "-pending").await;
    town_office.click("#create-settlement").await;
    town_office.wait_screen("settlement").await;
    let path = town_office.path().await;
    let id = path.strip_prefix("/town/settlements/").expect("the settlement's page").to_string();
    town_office.reload_until(&visible_js("#download-zengin"), "the settlement recorded on chain").await;
    let height = town_office.text("#on-chain .height").await.expect("the block height");
    assert!(height.chars().filter(char::is_ascii_digit).count() > 0, "{height}");
    let file_sha256 = town_office.text("#on-chain .file-sha256").await.expect("the file's SHA-256");
    town_office.check_screen(&[DESKTOP, TABLET, PHONE], "-recorded").await;

    let (name, downloaded) = chrome.download(&town_office, "#download-zengin").await;
    let (status, _, api) = town.get_bytes(&format!("/v1/admin/settlements/{id}/zengin"), &town.admin).await;
    assert_eq!(status, 200);
    assert!(!api.is_empty());
    assert!(
        downloaded == api,
        "the downloaded {name} ({} bytes) is the API's file ({} bytes)",
        downloaded.len(),
        api.len()
    );
    assert_eq!(file_sha256, hex::encode(Sha256::digest(&downloaded)), "the page names the file's SHA-256");

    // The back office sees the transfer date.
    office.open("/office/cash-outs").await;
    office.wait_screen("cash-outs").await;
    let date = town_office.text("#settlement-date").await.expect("the transfer date");
    assert_eq!(office.text(&format!("{row} .transfer-date")).await, Some(date));
    chrome.close().await;
}
