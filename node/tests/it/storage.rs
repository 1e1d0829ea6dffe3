//! The block log on disk: a torn append of a block whose payment holds bytes that look
//! like whole records is cut on restart (never taken for damage in the middle), and a
//! format-1 log is converted when the node opens it.

use machi_api::TxStatus;
use machi_ledger::testkit::standard_issue;
use machi_ledger::{Action, Hash32, ShopClass, Yen};

use crate::audit::{crc32, log_records};
use crate::harness::{id, new_key, TestNode};

/// An invoice string (at most 64 characters) holding a whole format-1 record
/// (`u32le(len) || u32le(crc) || body`) and a whole format-2 record between two 0x00
/// bytes (`0x00 || COBS(u32le(len) || u32le(crc) || body) || 0x00`).
fn invoice_with_fake_records() -> String {
    // A body whose checksum bytes are ASCII, so the fake records are valid UTF-8.
    let body = (0u32..)
        .map(|i| format!("blk{i}"))
        .find(|b| crc32(b.as_bytes()).to_le_bytes().iter().all(|c| (1..0x80).contains(c)))
        .unwrap();
    let (len, crc) = ((body.len() as u32).to_le_bytes(), crc32(body.as_bytes()).to_le_bytes());
    let mut fake = Vec::new();
    fake.extend_from_slice(&len);
    fake.extend_from_slice(&crc);
    fake.extend_from_slice(body.as_bytes());
    // Format 2: the length's zero bytes become stuffing codes.
    let mut plain = len.to_vec();
    plain.extend_from_slice(&crc);
    plain.extend_from_slice(body.as_bytes());
    fake.push(0);
    let mut code_at = fake.len();
    fake.push(0);
    for byte in plain {
        if byte != 0 {
            fake.push(byte);
        } else {
            fake[code_at] = (fake.len() - code_at) as u8;
            code_at = fake.len();
            fake.push(0);
        }
    }
    fake[code_at] = (fake.len() - code_at) as u8;
    fake.push(0);
    let invoice = String::from_utf8(fake).expect("ASCII");
    assert!(invoice.chars().count() <= machi_ledger::INVOICE_CHARS_MAX);
    invoice
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_block_whose_invoice_holds_fake_records_is_cut_on_restart() {
    let mut node = TestNode::start().await;
    let town = node.town.clone();
    let (op, shop, resident) = (new_key(), new_key(), new_key());
    node.ok(&town, Action::RegisterOperator { operator: id(&op), name: "窓口".into() }).await;
    node.ok(&town, Action::RegisterShop { shop: id(&shop), name: "店".into(), class: ShopClass::Local })
        .await;
    node.ok(&town, Action::CreateIssue { issue: standard_issue(1, 10, 2, node.now()) }).await;
    node.ok(
        &op,
        Action::RegisterResident { resident: id(&resident), resident_hash: Hash32([3; 32]), worker: false },
    )
    .await;
    node.ok(&op, Action::SellSets { issue: 1, resident: id(&resident), sets: 1, cash_received: Yen(10_000) })
        .await;
    let invoice = invoice_with_fake_records();
    let pay =
        node.ok(&resident, Action::Pay { shop: id(&shop), amount: Yen(500), invoice: Some(invoice) }).await;
    let pay_height = pay.height.unwrap();
    node.shutdown().await;

    let records = log_records(node.path());
    assert_eq!(records.len() as u64, pay_height + 1, "the payment's block is the last");
    let log = std::fs::read(machi_node::log_path(node.path())).unwrap();
    let last_start = log.len() - 1 - log[..log.len() - 1].iter().rev().position(|b| *b == 0).unwrap();
    // Every torn append of that block: any prefix of its record reached the disk.
    for len in last_start..log.len() {
        let copy = tempfile::tempdir().unwrap();
        let path = machi_node::log_path(copy.path());
        std::fs::write(&path, &log[..len]).unwrap();
        let opened = machi_node::BlockLog::open_path(&path).unwrap_or_else(|e| panic!("torn at {len}: {e}"));
        assert_eq!(opened.records.len() as u64, pay_height, "torn at {len}");
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, last_start, "torn at {len}: cut");
    }
    // The node itself reopens with the block cut in the middle of the fake records.
    let torn = last_start + (log.len() - last_start) * 3 / 4;
    std::fs::write(machi_node::log_path(node.path()), &log[..torn]).unwrap();
    let clock = node.clock.clone();
    let dir = std::mem::replace(&mut node.dir, tempfile::tempdir().unwrap());
    let node = TestNode::open(dir, clock).await;
    let head = node.client.head().await.unwrap();
    assert_eq!(head.height, pay_height - 1);
    // The resident's retry of the same payment commits it again.
    let again = node
        .client
        .submit(&node.sign(
            &resident,
            Action::Pay { shop: id(&shop), amount: Yen(500), invoice: Some(invoice_with_fake_records()) },
        ))
        .await
        .unwrap();
    assert_eq!(again.status, TxStatus::Applied);
}

/// A data folder whose log is format 1 opens: the node converts it to format 2, keeps the
/// old file, and serves the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_log_is_converted_when_the_node_opens() {
    let mut node = TestNode::start().await;
    let town = node.town.clone();
    for name in ["一", "二"] {
        node.ok(
            &town,
            Action::RegisterShop { shop: id(&new_key()), name: name.into(), class: ShopClass::Local },
        )
        .await;
    }
    let head = node.client.head().await.unwrap();
    node.shutdown().await;
    let records = log_records(node.path());
    let mut v1 = b"machilg1".to_vec();
    for payload in &records {
        v1.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        v1.extend_from_slice(&crc32(payload).to_le_bytes());
        v1.extend_from_slice(payload);
    }
    let path = machi_node::log_path(node.path());
    std::fs::write(&path, &v1).unwrap();
    std::fs::remove_dir_all(machi_node::index_path(node.path())).unwrap();

    let node = node.restart().await;
    assert_eq!(node.client.head().await.unwrap(), head);
    assert_eq!(std::fs::read(path.with_extension("log.v1")).unwrap(), v1);
    assert_eq!(&std::fs::read(&path).unwrap()[..8], b"machilg2");
    assert_eq!(log_records(node.path()), records);
    node.ok(&town, Action::RegisterShop { shop: id(&new_key()), name: "三".into(), class: ShopClass::Local })
        .await;
}
