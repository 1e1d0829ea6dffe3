//! What a counter may not do, in a real browser: open the back office or the town office
//! (a 403 page), send a form without its CSRF token; and a counter revoked from the back
//! office is signed out at its next page.

use machi_merchant::{DeviceCaller, Scope};
use serde_json::json;

use crate::browser::{visible_js, Chrome, Tab, PHONE, TABLET};
use crate::browser_counter::{pair, shop_id};
use crate::harness::Town;

/// The HTTP status of the page the tab shows.
async fn status(tab: &Tab) -> u16 {
    tab.eval("performance.getEntriesByType('navigation')[0].responseStatus").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_cannot_open_the_offices_or_post_without_its_token_and_is_signed_out_when_revoked() {
    let town = Town::start().await;
    let shop = town.register_shop("魚屋", "local", "サカナヤ").await;
    let full = town.token(&shop, "full").await;
    let chrome = Chrome::launch().await;
    let counter = chrome.device(&town.url, TABLET).await;
    let pos = DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::PointOfSale };
    pair(&town, &counter, pos, "レジ 2").await;

    // The back office's and the town office's pages: a 403 page naming why.
    for (path, code) in [
        ("/office", "wrong_scope"),
        ("/office/cash-out", "wrong_scope"),
        ("/office/devices", "wrong_scope"),
        ("/town", "admin_only"),
        ("/town/settlements", "admin_only"),
    ] {
        counter.open(path).await;
        counter.wait_screen("forbidden").await;
        assert_eq!(status(&counter).await, 403, "{path}");
        assert!(counter.shows("#forbidden").await, "{path}");
        assert_eq!(counter.text("#error-code").await.as_deref(), Some(code), "{path}");
    }
    counter.check_screen(&[TABLET, PHONE], "-town").await;

    // The keypad's form sent without its CSRF token (taken out of the page) is refused,
    // and so is a POST from a script that has no token; nothing is made.
    counter.open("/counter").await;
    counter.wait_screen("counter").await;
    counter.eval::<usize>("(() => { const t = document.querySelectorAll('input[name=csrf]'); t.forEach((i) => i.remove()); return t.length; })()").await;
    assert_eq!(counter.count("input[name=csrf]").await, 0);
    for key in ["5", "0", "0"] {
        counter.click(&format!("[data-key=\"{key}\"]")).await;
    }
    counter.click("#request-payment").await;
    counter.wait_screen("forbidden").await;
    assert_eq!(
        (status(&counter).await, counter.text("#error-code").await.as_deref()),
        (403, Some("csrf_failed"))
    );
    counter.open("/counter").await;
    let (posted, body) =
        counter.post_from_page("/counter/requests", &[("amount", "700"), ("memo", "")]).await;
    assert_eq!(posted, 403, "{body}");
    assert!(body.contains("csrf_failed"), "{body}");
    let (posted, body) = counter
        .post_from_page("/counter/requests", &[("csrf", "0000"), ("amount", "700"), ("memo", "")])
        .await;
    assert_eq!(posted, 403, "a wrong token: {body}");
    let (_, invoices) = town.call("GET", "/v1/invoices", Some(&full), None).await;
    assert_eq!(invoices, json!([]), "no payment request was made");

    // The back office revokes the counter; the counter's next page is the pairing page.
    let office = chrome.device(&town.url, TABLET).await;
    pair(&town, &office, DeviceCaller::Shop { shop: shop_id(&shop), scope: Scope::Full }, "事務所").await;
    office.open("/office/devices").await;
    office.wait_screen("devices").await;
    let device: String = office
        .eval(
            "[...document.querySelectorAll('[data-device]')].find((r) => r.innerText.includes('レジ 2'))?.dataset.device ?? ''",
        )
        .await;
    assert!(!device.is_empty(), "the counter is listed by its name");
    office.check_screen(&[TABLET, PHONE], "-revoking").await;
    office.click(&format!("[data-revoke-device=\"{device}\"]")).await;
    office
        .wait_for(
            &format!("document.readyState === 'complete' && !document.querySelector('[data-revoke-device=\"{device}\"]')"),
            "the counter revoked",
        )
        .await;
    counter.open("/counter").await;
    counter.wait_screen("pair").await;
    assert!(counter.shows("#signed-out").await, "the counter is told it was signed out");
    counter.open("/counter/today").await;
    counter.wait_screen("pair").await;
    // The back office itself is still signed in.
    office.open("/office").await;
    office.wait_screen("office").await;
    assert!(office.eval::<bool>(&visible_js("#balances")).await || office.count("#balance-total").await == 1);
    chrome.close().await;
}
