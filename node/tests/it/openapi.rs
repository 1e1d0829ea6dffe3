//! `GET /openapi.json`: the document describes every route the node serves, with every
//! method each answers, and the contract types it speaks in.

use machi_api::TxCode;
use reqwest::Method;
use serde_json::Value;

use crate::harness::TestNode;

/// A path with its `{parameters}` filled in, so that it routes.
fn concrete(path: &str) -> String {
    path.split('/').map(|part| if part.starts_with('{') { "0" } else { part }).collect::<Vec<_>>().join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_method_served() {
    let mut node = TestNode::start().await;
    let http = reqwest::Client::new();
    let answer = http.get(format!("{}/openapi.json", node.url)).send().await.expect("answered");
    assert_eq!(answer.status(), 200);
    let doc: Value = answer.json().await.expect("JSON");
    assert_eq!(
        doc,
        serde_json::to_value(machi_node::openapi()).unwrap(),
        "served as `machi-node openapi` prints it"
    );
    let documented = doc["paths"].as_object().expect("paths");

    let served = machi_node::api_paths();
    for path in &served {
        let operations =
            documented.get(*path).unwrap_or_else(|| panic!("{path} is served but not documented"));
        // A method that no route has is answered 405, naming the methods the path serves.
        let probe = Method::from_bytes(b"PROBE").unwrap();
        let answer = http.request(probe, format!("{}{}", node.url, concrete(path))).send().await.unwrap();
        assert_eq!(answer.status(), 405, "{path}");
        let allow = answer.headers()["allow"].to_str().unwrap().to_string();
        let methods: Vec<String> =
            allow.split(',').map(|m| m.trim().to_lowercase()).filter(|m| m != "head").collect();
        assert!(!methods.is_empty(), "{path}: {allow:?}");
        for method in &methods {
            assert!(operations.get(method).is_some(), "{method} {path} is served but not documented");
        }
        for method in operations.as_object().unwrap().keys() {
            assert!(methods.contains(method), "{method} {path} is documented but not served ({allow})");
        }
    }
    for path in documented.keys() {
        assert!(served.contains(&path.as_str()), "{path} is documented but not served");
    }

    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in [
        "SubmitRequest",
        "SubmitResponse",
        "TxResultView",
        "TxErrorBody",
        "TxView",
        "TxProof",
        "BlockHeaderView",
        "OutcomeRecordView",
        "TxCode",
        "AccountView",
        "IssueView",
        "SupplyReport",
        "BlockView",
        "HeadView",
        "HealthView",
        "TxEvent",
        "ErrorBody",
        "SignedTx",
        "TxBody",
        "Action",
        "IssueParams",
        "Yen",
        "AccountId",
        "TxId",
        "Hash32",
        "ReadChallenge",
        "ReadSessionRequest",
        "ReadSession",
        "AccessLogPage",
        "AccessLogEntry",
        "ShopView",
        "LotteryView",
    ] {
        assert!(schemas.contains_key(name), "{name} is not among the schemas");
    }
    // Ids are hex strings, money is whole yen, and a result's reason is one of the codes.
    for hex in ["AccountId", "TxId", "Hash32"] {
        assert_eq!(schemas[hex]["type"], "string", "{hex}");
        assert_eq!(schemas[hex]["pattern"], "^[0-9a-f]{64}$", "{hex}");
    }
    assert_eq!(schemas["Yen"]["type"], "integer");
    let codes: Vec<&str> =
        schemas["TxCode"]["enum"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(codes, TxCode::ALL.iter().map(|c| c.name()).collect::<Vec<_>>());
    let reason = serde_json::to_string(&schemas["TxResultView"]["properties"]["reason"]).unwrap();
    assert!(reason.contains("#/components/schemas/TxCode"), "{reason}");

    // The read session is a bearer scheme, named on every route that takes one.
    let scheme = &doc["components"]["securitySchemes"]["read_session"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer")),
        "{scheme}"
    );
    for path in [
        "/v1/accounts/{id}",
        "/v1/transactions/{id}",
        "/v1/issues/{id}/lottery",
        "/v1/issues/{id}/lottery/{account}",
        "/v1/events",
        "/v1/blocks/{height}",
        "/v1/cash/days",
        "/v1/cash/days/{day}",
        "/v1/access-log",
    ] {
        let security = serde_json::to_string(&documented[path]["get"]["security"]).unwrap();
        assert!(security.contains("read_session"), "{path}: {security}");
    }
    for path in ["/v1/health", "/v1/supply", "/v1/shops/{id}", "/v1/transactions/{id}/proof"] {
        assert!(documented[path]["get"].get("security").is_none(), "{path} is public");
    }
    node.shutdown().await;
}
