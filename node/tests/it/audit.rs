//! Export and verify: the auditor's view of a chain, and tampering it must catch.

use machi_ledger::testkit::standard_issue;
use machi_ledger::{Action, ShopClass};

use crate::harness::{id, new_key, TestNode};

#[tokio::test]
async fn verify_agrees_with_audit_and_catches_tampering() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    node.ok(&town, Action::CreateIssue { issue: standard_issue(1, 10, 2, node.now()) }).await;
    for name in ["一", "二", "三"] {
        node.ok(
            &town,
            Action::RegisterShop { shop: id(&new_key()), name: name.into(), class: ShopClass::Local },
        )
        .await;
    }
    let out = node.path().join("chain.jsonl");
    assert_eq!(machi_node::export(node.path(), &out).unwrap(), 5);
    let audited = machi_node::audit_data_dir(node.path()).unwrap();
    let verified = machi_node::verify_export(&out, None).unwrap();
    assert_eq!(audited, verified);
    assert_eq!((verified.height, verified.txs), (4, 5));

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // One changed character in a block line must be reported with that block's height.
    let tampered = |line: usize, from: &str, to: &str| {
        let mut copy: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        assert!(copy[line].contains(from), "line {line} has {from}");
        copy[line] = copy[line].replacen(from, to, 1);
        let path = node.path().join(format!("tampered-{line}.jsonl"));
        std::fs::write(&path, copy.join("\n")).unwrap();
        machi_node::verify_export(&path, None).expect_err("tampering caught").to_string()
    };
    let timestamp = format!("\"timestamp_ms\":{}", verified_timestamp(lines[2]));
    let err = tampered(2, &timestamp, "\"timestamp_ms\":1");
    assert!(err.contains("block 2"), "{err}");
    let err = tampered(3, "\"status\":0", "\"status\":1");
    assert!(err.contains("block 3"), "{err}");
    let sig = signature_of(lines[4]);
    let err = tampered(4, &sig, &flip_hex(&sig));
    assert!(err.contains("block 4"), "{err}");
    let body = body_of(lines[1]);
    let err = tampered(1, &body, &flip_hex(&body));
    assert!(err.contains("block 1"), "{err}");

    // A truncated export passes alone, but not against a head the auditor held.
    let short = node.path().join("short.jsonl");
    std::fs::write(&short, lines[..4].join("\n")).unwrap();
    assert!(machi_node::verify_export(&short, None).is_ok());
    let err = machi_node::verify_export(&short, Some((4, verified.head_hash))).unwrap_err().to_string();
    assert!(err.contains("block 4"), "{err}");
    assert!(machi_node::verify_export(&out, Some((4, verified.head_hash))).is_ok());
}

fn verified_timestamp(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["timestamp_ms"].as_u64().unwrap()
}

fn signature_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["txs"][0]["signature"].as_str().unwrap().to_string()
}

fn body_of(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["txs"][0]["body_hex"].as_str().unwrap().to_string()
}

fn flip_hex(hex: &str) -> String {
    let mut chars: Vec<char> = hex.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

/// Rewrites one block's record in a copy of the log, with a correct checksum, as someone
/// with write access to the disk could; returns what `machi-node audit` says.
fn audit_tampered(dir: &std::path::Path, height: usize, tamper: impl Fn(&mut Vec<u8>)) -> (bool, String) {
    let mut records = log_records(dir);
    tamper(&mut records[height]);
    let copy = tempfile::tempdir().unwrap();
    write_log(copy.path(), &records);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_machi-node"))
        .args(["audit", "--data-dir"])
        .arg(copy.path())
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).to_string())
}

/// The payload of every record of a block log (format 2 of docs/FORMAT.md, decoded here
/// independently of the node's code: `COBS(u32le(len) || u32le(crc) || payload) || 0x00`).
pub(crate) fn log_records(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let log = std::fs::read(machi_node::log_path(dir)).unwrap();
    assert_eq!(&log[..8], b"machilg2");
    log[8..]
        .split(|b| *b == 0)
        .filter(|frame| !frame.is_empty())
        .map(|frame| {
            let mut plain = Vec::new();
            let mut at = 0;
            while at < frame.len() {
                let code = frame[at] as usize;
                plain.extend_from_slice(&frame[at + 1..at + code]);
                at += code;
                if code < 0xff && at < frame.len() {
                    plain.push(0);
                }
            }
            let len = u32::from_le_bytes(plain[..4].try_into().unwrap()) as usize;
            assert_eq!(u32::from_le_bytes(plain[4..8].try_into().unwrap()), crc32(&plain[8..]));
            assert_eq!(len, plain.len() - 8);
            plain.split_off(8)
        })
        .collect()
}

/// Writes records as a format-2 block log.
pub(crate) fn write_log(dir: &std::path::Path, records: &[Vec<u8>]) {
    let mut out = b"machilg2".to_vec();
    for payload in records {
        let mut plain = (payload.len() as u32).to_le_bytes().to_vec();
        plain.extend_from_slice(&crc32(payload).to_le_bytes());
        plain.extend_from_slice(payload);
        let mut code_at = out.len();
        out.push(0);
        for byte in plain {
            if byte != 0 {
                out.push(byte);
            }
            if byte == 0 || out.len() - code_at == 0xff {
                out[code_at] = (out.len() - code_at) as u8;
                code_at = out.len();
                out.push(0);
            }
        }
        out[code_at] = (out.len() - code_at) as u8;
        out.push(0);
    }
    std::fs::write(machi_node::log_path(dir), out).unwrap();
}

pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    // The block log's checksum (CRC-32/ISO-HDLC), computed bit by bit here on purpose so
    // the test does not share code with what it checks.
    let mut crc = 0xffff_ffffu32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("bytes in the record")
}

#[tokio::test]
async fn audit_of_a_multi_issue_chain_names_the_tampered_block() {
    let mut node = TestNode::start().await;
    let town = node.town.clone();
    let op = new_key();
    let shop = new_key();
    let resident = new_key();
    node.ok(&town, Action::RegisterOperator { operator: id(&op), name: "窓口".into() }).await;
    node.ok(&town, Action::RegisterShop { shop: id(&shop), name: "店".into(), class: ShopClass::Local })
        .await;
    node.ok(&town, Action::CreateIssue { issue: standard_issue(1, 10, 2, node.now()) }).await;
    node.ok(&town, Action::CreateIssue { issue: standard_issue(2, 20, 3, node.now()) }).await;
    let resident_hash = machi_ledger::Hash32([9; 32]);
    node.ok(&op, Action::RegisterResident { resident: id(&resident), resident_hash, worker: false }).await;
    for issue in [1, 2] {
        let sell = Action::SellSets {
            issue,
            resident: id(&resident),
            sets: 2,
            cash_received: machi_ledger::Yen(20_000),
        };
        node.ok(&op, sell).await;
    }
    let pay = node
        .ok(&resident, Action::Pay { shop: id(&shop), amount: machi_ledger::Yen(9_000), invoice: None })
        .await;
    node.shutdown().await;
    let dir = node.path().to_path_buf();

    let audited = machi_node::audit_data_dir(&dir).unwrap();
    let out = dir.join("chain.jsonl");
    machi_node::export(&dir, &out).unwrap();
    assert_eq!(machi_node::verify_export(&out, None).unwrap(), audited);
    assert_eq!(audited.issues.len(), 2);
    assert_eq!(
        audited.issues[1].residents_local.0 + audited.issues[0].residents_local.0,
        12_500 + 12_500 - 9_000
    );

    let pay_height = pay.height.unwrap() as usize;
    let block = node.client.block(pay.height.unwrap()).await;
    assert!(block.is_err(), "node is stopped");
    let text = std::fs::read_to_string(&out).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().nth(pay_height).unwrap()).unwrap();
    let signature = hex::decode(line["txs"][0]["signature"].as_str().unwrap()).unwrap();
    let body = hex::decode(line["txs"][0]["body_hex"].as_str().unwrap()).unwrap();
    let prev_hash = hex::decode(line["prev_hash"].as_str().unwrap()).unwrap();
    type Tamper<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let cases: Vec<(&str, Tamper)> = vec![
        (
            "header prev_hash",
            Box::new(|p: &mut Vec<u8>| {
                let at = find(p, &prev_hash);
                p[at + 5] ^= 1;
            }),
        ),
        (
            "tx signature",
            Box::new(|p: &mut Vec<u8>| {
                let at = find(p, &signature);
                p[at + 7] ^= 1;
            }),
        ),
        (
            "tx body amount",
            Box::new(|p: &mut Vec<u8>| {
                let at = find(p, &body);
                let end = at + body.len();
                p[end - 2] ^= 1;
            }),
        ),
        (
            "outcome",
            Box::new(|p: &mut Vec<u8>| {
                let last = p.len() - 1;
                p[last] = 1;
                p.push(5);
            }),
        ),
    ];
    for (what, tamper) in cases {
        let (ok, stderr) = audit_tampered(&dir, pay_height, tamper);
        assert!(!ok, "{what}: audit must fail");
        assert!(stderr.contains(&format!("block {pay_height}")), "{what}: {stderr}");
    }
    // A flipped byte without a fixed checksum is caught as damage at that block: flip a
    // data byte (not a stuffing code) in the middle of that block's frame.
    let mut log = std::fs::read(machi_node::log_path(&dir)).unwrap();
    let frame_start = 8 + log[8..].split(|b| *b == 0).take(pay_height).map(|f| f.len() + 1).sum::<usize>();
    let frame_len = log[frame_start..].iter().position(|b| *b == 0).unwrap();
    let mut codes = vec![frame_start];
    while let Some(&last) = codes.last().filter(|&&c| c < frame_start + frame_len) {
        codes.push(last + log[last] as usize);
    }
    let at = (frame_start + frame_len / 2..).find(|i| !codes.contains(i)).unwrap();
    log[at] ^= if log[at] == 0x80 { 0x40 } else { 0x80 };
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(machi_node::log_path(copy.path()), log).unwrap();
    let err = machi_node::audit_data_dir(copy.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("block {pay_height}")), "{err}");
}

/// An export line whose chain id is far longer than any chain id (past the 65,535 bytes a
/// transaction id's length prefix can hold) is refused by `machi-node verify` with exit
/// code 1 and a message naming the line, never a panic.
#[tokio::test]
async fn verify_refuses_an_export_line_with_a_huge_chain_id() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    node.ok(&town, Action::RegisterShop { shop: id(&new_key()), name: "店".into(), class: ShopClass::Local })
        .await;
    let out = node.path().join("chain.jsonl");
    machi_node::export(node.path(), &out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let huge = "x".repeat(70_000);
    for line in [0, 1] {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        let quoted = format!("\"{}\"", node.chain_id);
        assert!(lines[line].contains(&quoted), "line {line} names the chain");
        lines[line] = lines[line].replace(&quoted, &format!("\"{huge}\""));
        let path = node.path().join(format!("huge-chain-id-{line}.jsonl"));
        std::fs::write(&path, lines.join("\n")).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_machi-node"))
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "line {line}: {stderr}");
        assert!(!stderr.contains("panicked"), "line {line}: {stderr}");
        assert!(stderr.contains("chain id"), "line {line}: {stderr}");
        assert!(stderr.contains(&format!("line {}", line + 1)), "line {line}: {stderr}");
    }
}
