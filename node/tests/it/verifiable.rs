//! What anyone can check without logging in: the public headers and a node's signed
//! attestation, also carried by the supply report (docs/AUDIT.md, "What a citizen can
//! check without logging in"). Every request here is anonymous.

use machi_api::{AttestationView, ErrorBody, HeadersView, SupplyReport};
use machi_ledger::{AccountId, Action, Hash32, ShopClass};

use crate::harness::{id, new_key, TestNode};

async fn get<T: serde::de::DeserializeOwned>(node: &TestNode, path: &str) -> (u16, T) {
    let answer = reqwest::get(format!("{}{path}", node.url)).await.expect("answered");
    let status = answer.status().as_u16();
    (status, answer.json().await.expect("JSON"))
}

fn producer(node: &TestNode) -> AccountId {
    id(&machi_node::read_key(&node.path().join("keys/producer.key")).expect("producer key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anyone_reads_headers_that_recompute_link_and_are_signed_by_the_producer() {
    let node = TestNode::start().await;
    for name in ["八百屋", "魚屋", "本屋"] {
        node.ok(
            &node.town,
            Action::RegisterShop { shop: id(&new_key()), name: name.into(), class: ShopClass::Local },
        )
        .await;
    }
    let (status, headers): (u16, HeadersView) = get(&node, "/v1/headers?from=0&to=3").await;
    assert_eq!(status, 200);
    assert_eq!(
        (headers.chain_id.as_str(), headers.head, headers.headers.len()),
        (node.chain_id.as_str(), 3, 4)
    );
    let mut prev = Hash32([0; 32]);
    for (height, h) in headers.headers.iter().enumerate() {
        assert_eq!(h.height, height as u64);
        assert_eq!(h.header(&headers.chain_id).hash(), h.hash, "block {height}'s hash recomputes");
        assert_eq!(h.prev_hash, prev, "block {height} links");
        assert_eq!(h.producer, producer(&node));
        let signature = h.signature_bytes().expect("128 hex digits");
        assert_eq!(machi_ledger::verify_signature(&h.producer, &signature, &h.hash.0), Ok(()));
        prev = h.hash;
    }
    let head = node.client.head().await.unwrap();
    assert_eq!(headers.headers[3].hash, head.hash);

    // A range that passes the head ends there; one above it is empty; `to` defaults.
    let (_, tail): (u16, HeadersView) = get(&node, "/v1/headers?from=2&to=900").await;
    assert_eq!(tail.headers, headers.headers[2..]);
    let (_, above): (u16, HeadersView) = get(&node, "/v1/headers?from=4").await;
    assert!(above.headers.is_empty());
    let (_, all): (u16, HeadersView) = get(&node, "/v1/headers?from=0").await;
    assert_eq!(all.headers, headers.headers);
    for bad in ["/v1/headers", "/v1/headers?from=x", "/v1/headers?from=3&to=2", "/v1/headers?from=0&to=-1"] {
        let (status, error): (u16, ErrorBody) = get(&node, bad).await;
        assert_eq!((status, error.error.code.as_str()), (400, "bad_query"), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_attests_its_head_and_supply_with_its_key_and_the_report_hashes_to_it() {
    let node = TestNode::start().await;
    let (status, attestation): (u16, AttestationView) = get(&node, "/v1/attestation").await;
    assert_eq!(status, 200);
    let key = producer(&node);
    assert_eq!((attestation.replica, attestation.key, attestation.height), (1, key, 0));
    assert!(attestation.signed_by(&key), "signed by the genesis producer's key");
    assert!(!attestation.signed_by(&id(&node.town)), "and by no other");
    assert_eq!(attestation.replicas.len(), 1);
    assert_eq!((attestation.replicas[0].id, attestation.replicas[0].key), (1, key));
    let (_, genesis): (u16, HeadersView) = get(&node, "/v1/headers?from=0&to=0").await;
    assert_eq!(genesis.headers[0].producer, key, "the key is the genesis header's producer");
    assert_eq!(attestation.block_hash, genesis.headers[0].hash);

    // The supply report carries the same attestation, and hashes to its digest.
    let (_, report): (u16, SupplyReport) = get(&node, "/v1/supply").await;
    assert_eq!(report.attestation, attestation);
    assert_eq!(report.digest(), Some(attestation.supply_digest));

    // After a block, it attests the new head; the report, with its issue, still hashes.
    let issue = machi_ledger::testkit::standard_issue(1, 100, 2, node.now());
    node.ok(&node.town, Action::CreateIssue { issue }).await;
    let (_, moved): (u16, AttestationView) = get(&node, "/v1/attestation").await;
    assert_eq!(moved.height, 1);
    assert_ne!((moved.block_hash, moved.supply_digest), (attestation.block_hash, attestation.supply_digest));
    assert!(moved.signed_by(&key));
    let (_, report): (u16, SupplyReport) = get(&node, "/v1/supply").await;
    assert_eq!(report.issues.len(), 1);
    assert_eq!(report.attestation, moved);
    assert_eq!(report.digest(), Some(moved.supply_digest));

    // A report that says anything else does not hash to the digest the node signed.
    let mut tampered = report.clone();
    tampered.issues[0].sets_left -= 1;
    assert_ne!(tampered.digest(), Some(moved.supply_digest));
    let mut renamed = report.clone();
    renamed.issues[0].name.push('!');
    assert_ne!(renamed.digest(), Some(moved.supply_digest));
    // And an attestation changed in any field no longer verifies.
    let mut forged = moved.clone();
    forged.supply_digest = tampered.digest().unwrap();
    assert!(!forged.signed_by(&key));
}

/// Three replicas as real processes: each signs what it applied with its own key, the
/// one the chain lists for it; at the same height all attest the same block and supply
/// digest, which each one's supply report hashes to; they serve the same headers; and an
/// attestation moves with the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_attest_the_same_block_and_supply_each_with_its_own_key() {
    let mut cluster = crate::processes::Cluster::create("attest-town", 3, false).await;
    cluster.start_all().await;
    let leader = cluster.leader(None, &[]).await;
    let client = cluster.client(leader).clone();
    let shop = |name: &str| {
        machi_client::sign(
            &cluster.chain_id,
            &cluster.town,
            Action::RegisterShop { shop: id(&new_key()), name: name.into(), class: ShopClass::Local },
        )
    };
    let first = client.submit(&shop("八百屋")).await.unwrap().height.expect("committed");
    cluster.heads_agree(first).await;
    let keys: Vec<AccountId> = cluster
        .replicas
        .iter()
        .map(|r| id(&machi_node::read_key(&r.dir.join("keys/producer.key")).unwrap()))
        .collect();
    let http = reqwest::Client::new();
    let read = |url: String| {
        let http = http.clone();
        async move { http.get(url).send().await.unwrap().json::<serde_json::Value>().await.unwrap() }
    };
    let mut attested = Vec::new();
    for (i, replica) in cluster.replicas.iter().enumerate() {
        let at = format!("{}/v1/attestation?min_height={first}", replica.url);
        let attestation: AttestationView = serde_json::from_value(read(at).await).unwrap();
        assert_eq!((attestation.replica, attestation.key), (replica.id, keys[i]), "replica {}", replica.id);
        assert!(attestation.signed_by(&keys[i]), "replica {} signs with its key on chain", replica.id);
        assert!(!attestation.signed_by(&keys[(i + 1) % 3]), "and not with another's");
        let listed: Vec<(u64, AccountId)> = attestation.replicas.iter().map(|r| (r.id, r.key)).collect();
        assert_eq!(listed, vec![(1, keys[0]), (2, keys[1]), (3, keys[2])], "the set it applied");
        let report: SupplyReport =
            serde_json::from_value(read(format!("{}/v1/supply", replica.url)).await).unwrap();
        assert_eq!(
            report.digest(),
            Some(report.attestation.supply_digest),
            "the report hashes to its digest"
        );
        assert!(report.attestation.signed_by(&keys[i]));
        attested.push(attestation);
    }
    for attestation in &attested[1..] {
        assert_eq!(
            (attestation.height, attestation.block_hash, attestation.supply_digest),
            (attested[0].height, attested[0].block_hash, attested[0].supply_digest),
            "the replicas agree at height {first}"
        );
    }

    // The attestation moves with the head, and the headers are the same everywhere.
    let second = client.submit(&shop("魚屋")).await.unwrap().height.expect("committed");
    let head = cluster.heads_agree(second).await;
    let mut served = Vec::new();
    for (i, replica) in cluster.replicas.iter().enumerate() {
        let moved: AttestationView =
            serde_json::from_value(read(format!("{}/v1/attestation", replica.url)).await).unwrap();
        assert_eq!((moved.height, moved.block_hash), (head.height, head.hash));
        assert_ne!(moved.signature, attested[i].signature);
        assert!(moved.signed_by(&keys[i]));
        let url = format!("{}/v1/headers?from=0&to={}", replica.url, head.height);
        let headers: HeadersView = serde_json::from_value(read(url).await).unwrap();
        let mut prev = Hash32([0; 32]);
        for h in &headers.headers {
            assert_eq!(h.header(&headers.chain_id).hash(), h.hash);
            assert_eq!(h.prev_hash, prev);
            let signature = h.signature_bytes().unwrap();
            assert_eq!(machi_ledger::verify_signature(&h.producer, &signature, &h.hash.0), Ok(()));
            assert!(keys.contains(&h.producer), "block {} is signed by a replica", h.height);
            prev = h.hash;
        }
        assert_eq!(prev, head.hash);
        served.push(headers.headers);
    }
    assert!(served.iter().all(|h| *h == served[0]), "every replica serves the same headers");
    cluster.stop_all().await;
}

/// One answer holds at most 1,000 headers; a reader pages on from the last height + 1 and
/// gets every header once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_come_at_most_a_thousand_an_answer_and_page_on() {
    let node = TestNode::start().await;
    // One block per transaction: each is sent once the one before is committed.
    for n in 0..machi_api::HEADERS_MAX {
        let action =
            Action::RegisterShop { shop: id(&new_key()), name: format!("店{n}"), class: ShopClass::Local };
        node.ok(&node.town, action).await;
    }
    let head = node.client.head().await.unwrap().height;
    assert_eq!(head, machi_api::HEADERS_MAX);
    let (_, first): (u16, HeadersView) = get(&node, &format!("/v1/headers?from=0&to={head}")).await;
    assert_eq!(first.headers.len() as u64, machi_api::HEADERS_MAX, "at most 1,000 in one answer");
    let last = first.headers.last().unwrap().height;
    assert_eq!(last, machi_api::HEADERS_MAX - 1);
    let (_, rest): (u16, HeadersView) = get(&node, &format!("/v1/headers?from={}&to={head}", last + 1)).await;
    assert_eq!(rest.headers.len(), 1);
    assert_eq!(rest.headers[0].prev_hash, first.headers.last().unwrap().hash, "the pages link");
    assert_eq!(rest.headers[0].hash, node.client.head().await.unwrap().hash);
}
