//! The counters' cash over HTTP: two sale days at two counters, closes with and without a
//! difference, deposits right and wrong, then `GET /v1/cash/days`, one day, a day with
//! nothing, a malformed day, and the town hall screen with each gap's row highlighted.

use machi_api::CashGap;
use machi_ledger::testkit::standard_issue;
use machi_ledger::{Action, DaySales, IssueParams, Yen};

use crate::harness::{id, new_key, TestNode, DAY_MS};

fn close(day: &str, sales: Vec<DaySales>, expected: u64, counted: u64) -> Action {
    Action::CloseDay { day: day.into(), sales, expected: Yen(expected), counted: Yen(counted) }
}

fn deposit(day: &str, amount: u64, slip: &str) -> Action {
    Action::RecordDeposit {
        day: day.into(),
        deposited_on: day.into(),
        amount: Yen(amount),
        slip_reference: slip.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cash_by_day_over_http_and_on_the_town_hall_screen() {
    let node = TestNode::start().await;
    let (first, second) = (new_key(), new_key());
    for (key, name) in [(&first, "1番窓口"), (&second, "2番窓口")] {
        node.ok(&node.town, Action::RegisterOperator { operator: id(key), name: name.into() }).await;
    }
    let start = node.now();
    let issue = IssueParams { sale_end_ms: start + 3 * DAY_MS, ..standard_issue(1, 100, 5, start) };
    node.ok(&node.town, Action::CreateIssue { issue }).await;
    let residents: Vec<_> = (0..4).map(|_| new_key()).collect();
    for (i, r) in residents.iter().enumerate() {
        let resident_hash = machi_ledger::sha256(format!("resident-{i}").as_bytes());
        node.ok(&first, Action::RegisterResident { resident: id(r), resident_hash, worker: false }).await;
    }
    let sell = |i: usize, sets: u32| Action::SellSets {
        issue: 1,
        resident: id(&residents[i]),
        sets,
        cash_received: Yen(10_000 * u64::from(sets)),
    };
    let sales = |sets: u32| vec![DaySales { issue: 1, sets, cash: Yen(10_000 * u64::from(sets)) }];

    // Day one: both counters sell; both close, one ¥500 over; the deposit is right.
    let day1 = machi_ledger::time::format_jst_date(node.now());
    node.ok(&first, sell(0, 2)).await;
    node.ok(&second, sell(1, 1)).await;
    node.ok(&first, close(&day1, sales(2), 20_000, 20_000)).await;
    node.ok(&second, close(&day1, sales(1), 10_000, 10_500)).await;
    node.ok(&node.town, deposit(&day1, 30_500, "D1-001")).await;

    // Day two: counter 2 does not close, and ¥1,000 less than counted is deposited.
    node.clock.set(node.now() + DAY_MS);
    let day2 = machi_ledger::time::format_jst_date(node.now());
    node.ok(&first, sell(2, 1)).await;
    node.ok(&second, sell(3, 3)).await;
    node.ok(&first, close(&day2, sales(1), 10_000, 10_000)).await;
    node.ok(&node.town, deposit(&day2, 9_000, "D2-001")).await;

    let report = node.client.cash_days().await.unwrap();
    assert_eq!(report.days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(), [&day1, &day2]);
    let (d1, d2) = (&report.days[0], &report.days[1]);
    assert_eq!((d1.cash_received, d1.counted, d1.deposited), (Yen(30_000), Yen(30_500), Yen(30_500)));
    assert_eq!((d1.count_difference, d1.deposit_difference), (500, 0));
    assert_eq!(
        d1.gaps,
        vec![CashGap::CountDiffers { operator: id(&second), name: "2番窓口".into(), difference: 500 }]
    );
    assert_eq!((d2.cash_received, d2.counted, d2.deposited), (Yen(40_000), Yen(10_000), Yen(9_000)));
    assert_eq!(d2.deposit_difference, -1_000);
    assert_eq!(
        d2.gaps,
        vec![
            CashGap::NotClosed { operator: id(&second), name: "2番窓口".into(), expected: Yen(30_000) },
            CashGap::DepositDiffers { difference: -1_000 },
        ]
    );
    assert_eq!(node.client.cash_day(&day2).await.unwrap(), *d2);
    let quiet = node.client.cash_day("2020-01-01").await.unwrap();
    assert!(quiet.counters.is_empty() && quiet.gaps.is_empty() && quiet.cash_received.is_zero());
    let bad = node.get_as_town("/v1/cash/days/2027-02-30").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("bad_day"));

    // The screen: newest day first, each gap's row highlighted and said in words.
    let page = reqwest::get(format!("{}/", node.url)).await.unwrap().text().await.unwrap();
    let row = |day: &str| {
        let at = page.find(&format!("id=\"cash-{day}\"")).unwrap_or_else(|| panic!("no row for {day}"));
        let from = page[..at].rfind("<tr").unwrap();
        page[from..from + page[from..].find("</tr>").unwrap()].to_string()
    };
    let (row1, row2) = (row(&day1), row(&day2));
    assert!(page.find(&format!("cash-{day2}")) < page.find(&format!("cash-{day1}")), "newest first");
    assert!(row2.starts_with("<tr class=\"gap\""), "{row2}");
    for text in [
        "¥40,000",
        "第1回 ¥40,000",
        "未締め 1 窓口",
        "-¥1,000",
        "未締め 2番窓口（見込み ¥30,000）",
        "入金額が計数額より ¥1,000 少ない",
    ] {
        assert!(row2.contains(text), "{text:?} not in {row2}");
    }
    assert!(row1.starts_with("<tr class=\"gap\"") && row1.contains("2番窓口 の現金 ¥500 過剰"), "{row1}");
    assert!(row1.contains("+¥500"), "{row1}");
}
