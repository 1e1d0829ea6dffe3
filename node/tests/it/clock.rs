//! Block times under a wall clock that jumps: a jump forward does not carry the chain's
//! time with it (block times follow the monotonic clock from the last block), the node
//! alarms in `/metrics` and `/v1/health`, and a node started with a clock behind its
//! head says so.

use machi_ledger::{Action, ShopClass};
use serde_json::Value;

use crate::harness::{id, new_key, TestNode, DAY_MS};

/// Registers a shop with a transaction signed at `signed_ms` (the town's own clock is
/// right); returns the time of the block it went into.
async fn register_shop(node: &TestNode, signed_ms: u64) -> u64 {
    let action = Action::RegisterShop { shop: id(&new_key()), name: "店".into(), class: ShopClass::Local };
    let tx = machi_client::sign_at(&node.chain_id, &node.town, action, signed_ms);
    let result = node.client.submit(&tx).await.unwrap();
    assert_eq!(result.status, machi_api::TxStatus::Applied, "{result:?}");
    node.client.block(result.height.unwrap()).await.unwrap().timestamp_ms
}

async fn health(node: &TestNode) -> Value {
    reqwest::get(format!("{}/v1/health", node.url)).await.unwrap().json().await.unwrap()
}

async fn metric(node: &TestNode, name: &str) -> u64 {
    let text = reqwest::get(format!("{}/metrics", node.url)).await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(" ")?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test]
async fn a_clock_jump_forward_does_not_carry_block_times_with_it() {
    let node = TestNode::start().await;
    let start = node.now();
    let first = register_shop(&node, start).await;
    assert_eq!(first, start);
    assert_eq!(health(&node).await["status"], "ok");

    // Someone sets the system clock a year ahead; no time passes.
    node.clock.jump(start + 365 * DAY_MS);
    let second = register_shop(&node, start).await;
    assert_eq!(second, first, "the block time stays where the monotonic clock says");
    let ahead = metric(&node, "machi_clock_ahead_ms").await;
    assert_eq!(ahead, 365 * DAY_MS);
    let h = health(&node).await;
    assert_eq!((h["status"].as_str(), h["clock"]["ahead_ms"].as_u64()), (Some("clock_ahead"), Some(ahead)));
    assert_eq!(metric(&node, "machi_blocks_clock_bounded_total").await, 1);

    // Five seconds pass: block times move five seconds.
    node.clock.set(node.now() + 5_000);
    assert_eq!(register_shop(&node, start + 5_000).await, first + 5_000);

    // The clock is put right: block times follow it again and the alarm ends.
    node.clock.jump(start + 5_000 + 700);
    assert_eq!(register_shop(&node, start + 5_700).await, start + 5_700);
    assert_eq!(health(&node).await["status"], "ok");
    assert_eq!(metric(&node, "machi_clock_ahead_ms").await, 0);
    // A step within the allowance (an NTP correction) is followed.
    node.clock.jump(start + 5_700 + 1_500);
    assert_eq!(register_shop(&node, start + 7_200).await, start + 7_200);
}

#[tokio::test]
async fn a_node_started_with_its_clock_behind_the_head_says_so() {
    let node = TestNode::start().await;
    let head = register_shop(&node, node.now()).await;
    let node = {
        node.clock.jump(head - 3_600_000);
        node.restart().await
    };
    let h = health(&node).await;
    assert_eq!(h["status"], "head_ahead_of_clock");
    assert_eq!(h["clock"]["head_ahead_ms"].as_u64(), Some(3_600_000));
    // Block times do not go back; once the clock passes the head the alarm ends.
    assert_eq!(register_shop(&node, head).await, head);
    node.clock.jump(head + 1_000);
    assert_eq!(register_shop(&node, head + 1_000).await, head + 1_000);
    assert_eq!(health(&node).await["status"], "ok");
}
