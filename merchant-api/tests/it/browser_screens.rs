//! Every screen at the sizes it is used at — a tablet (1280×800) and a phone (390×844),
//! and the town office's also at 1920×1080: no sideways scrolling, touch targets at least
//! 48 px tall; a screenshot of each is written to `target/screens/`.

use std::collections::BTreeSet;

use machi_ledger::testkit::DAY_MS;
use machi_merchant::{DeviceCaller, Scope};
use serde_json::json;

use crate::browser::{screens_dir, visible_js, Chrome, Tab, DESKTOP, PHONE, TABLET};
use crate::browser_counter::{pair, shop_id};
use crate::browser_money::paid;
use crate::harness::Town;

/// Every screen the pages have (`#screen`'s `data-screen`, docs/SCREENS.md).
const SCREENS: [&str; 17] = [
    "pair",
    "counter",
    "request",
    "today",
    "refund",
    "office",
    "cash-out",
    "cash-outs",
    "statements",
    "devices",
    "town",
    "shops",
    "shop",
    "issue-new",
    "settlements",
    "settlement",
    "forbidden",
];

/// Opens `path` on `tab`, checks it is the screen `screen`, and checks it at `sizes`.
async fn visit(
    tab: &Tab,
    path: &str,
    screen: &str,
    sizes: &[crate::browser::Size],
    seen: &mut BTreeSet<String>,
) {
    tab.open(path).await;
    tab.wait_screen(screen).await;
    tab.check_screen(sizes, "").await;
    seen.insert(screen.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_screen_fits_a_tablet_and_a_phone_without_scrolling_sideways_and_has_big_enough_targets() {
    let town = Town::start().await;
    let shop = town.register_shop("旅館 まちや", "local", "リヨカン マチヤ").await;
    let pos = town.token(&shop, "point_of_sale").await;
    let full = town.token(&shop, "full").await;
    paid(&town, &shop, &pos, 0, 12_000).await;
    paid(&town, &shop, &pos, 1, 3_500).await;
    let (status, cash_out) =
        town.call("POST", "/v1/cashouts", Some(&full), Some(json!({"issue": 1, "amount": 5000}))).await;
    assert_eq!(status, 201, "{cash_out}");
    let transfer_date = machi_ledger::time::format_jst_date(town.now() + DAY_MS);
    let (status, settlement) = town
        .call(
            "POST",
            "/v1/admin/settlements",
            Some(&town.admin),
            Some(json!({"transfer_date": transfer_date})),
        )
        .await;
    assert_eq!(status, 201, "{settlement}");
    let settlement = settlement["id"].as_str().unwrap().to_string();
    let (_, cash_out) =
        town.call("POST", "/v1/cashouts", Some(&full), Some(json!({"issue": 1, "amount": 2000}))).await;
    assert!(cash_out["id"].is_string(), "a second cash-out, pending: {cash_out}");
    let month = &machi_ledger::time::format_jst_date(town.now())[..7];

    let chrome = Chrome::launch().await;
    let mut seen = BTreeSet::new();
    let shop_sizes = [TABLET, PHONE];
    let town_sizes = [DESKTOP, TABLET, PHONE];

    // The counter.
    let counter = chrome.device(&town.url, TABLET).await;
    visit(&counter, "/pair", "pair", &shop_sizes, &mut seen).await;
    counter.type_into("#pair-code", "1234-0000").await;
    counter.click("#pair-submit").await;
    counter.wait_for(&visible_js("#form-error"), "a wrong code's error").await;
    counter.check_screen(&shop_sizes, "-error").await;
    pair(&town, &counter, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale }, "レジ")
        .await;
    visit(&counter, "/counter", "counter", &shop_sizes, &mut seen).await;
    for key in ["9", "8", "0"] {
        counter.click(&format!("[data-key=\"{key}\"]")).await;
    }
    counter.type_into("#memo", "やさい").await;
    counter.click("#request-payment").await;
    counter.wait_screen("request").await;
    counter.check_screen(&shop_sizes, "").await;
    seen.insert("request".into());
    visit(&counter, "/counter/today", "today", &shop_sizes, &mut seen).await;
    let tx = counter.attribute("[data-payment]", "data-payment").await.expect("a payment today");
    visit(&counter, &format!("/counter/payments/{tx}/refund"), "refund", &shop_sizes, &mut seen).await;
    visit(&counter, "/office", "forbidden", &shop_sizes, &mut seen).await;

    // The back office.
    let office = chrome.device(&town.url, TABLET).await;
    pair(&town, &office, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }, "帳場").await;
    for (path, screen) in [
        ("/office", "office"),
        ("/office/cash-out", "cash-out"),
        ("/office/cash-outs", "cash-outs"),
        ("/office/statements", "statements"),
        ("/office/devices", "devices"),
    ] {
        visit(&office, path, screen, &shop_sizes, &mut seen).await;
    }
    // The month's printable statement is a page of its own.
    office.open(&format!("/office/statements/{month}")).await;
    office.wait_for("document.readyState === 'complete'", "the month's statement").await;
    office.check_screen(&shop_sizes, &format!("-{month}")).await;

    // The town office.
    let town_office = chrome.device(&town.url, DESKTOP).await;
    pair(&town, &town_office, DeviceCaller::TownOffice, "役場").await;
    for (path, screen) in [
        ("/town".to_string(), "town"),
        ("/town/shops".to_string(), "shops"),
        (format!("/town/shops/{shop}"), "shop"),
        ("/town/issues/new".to_string(), "issue-new"),
        ("/town/settlements".to_string(), "settlements"),
        (format!("/town/settlements/{settlement}"), "settlement"),
    ] {
        visit(&town_office, &path, screen, &town_sizes, &mut seen).await;
    }

    let missing: Vec<&str> = SCREENS.iter().copied().filter(|s| !seen.contains(*s)).collect();
    assert!(missing.is_empty(), "screens not checked: {missing:?}");
    println!("screenshots of every screen in {}", screens_dir().display());
    chrome.close().await;
}
