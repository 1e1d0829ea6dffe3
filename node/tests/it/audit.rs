//! Export and verify: the auditor's view of a chain, and tampering it must catch.

use machi_ledger::{Action, ShopClass};

use crate::harness::{id, new_key, TestNode};

#[tokio::test]
async fn verify_agrees_with_audit_and_catches_tampering() {
    let node = TestNode::start().await;
    let town = node.town.clone();
    node.ok(&town, Action::CreateIssue { issue: node.issue(1, 10, 2) }).await;
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
