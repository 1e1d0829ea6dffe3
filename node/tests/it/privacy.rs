//! Who reads what (docs/RULES.md §5): read sessions opened by signing a challenge, and
//! every route answering every kind of reader as the table says.

use machi_ledger::{AccountId, SigningKey};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::TestNode;

/// Opens a read session on `url` as `key` for `purpose`: the session's JSON.
pub(crate) async fn open_session(url: &str, chain_id: &str, key: &SigningKey, purpose: &str) -> Value {
    let (status, body) = try_session(url, chain_id, key, purpose).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A read session's bearer token on `url` for `key`.
pub(crate) async fn token(url: &str, chain_id: &str, key: &SigningKey, purpose: &str) -> String {
    open_session(url, chain_id, key, purpose).await["token"].as_str().expect("a token").to_string()
}

async fn challenge(url: &str) -> [u8; 32] {
    let answer = reqwest::Client::new().post(format!("{url}/v1/auth/challenge")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let body: Value = answer.json().await.unwrap();
    let mut challenge = [0u8; 32];
    hex::decode_to_slice(body["challenge"].as_str().unwrap(), &mut challenge).unwrap();
    challenge
}

async fn post_session(url: &str, body: Value) -> (StatusCode, Value) {
    let answer =
        reqwest::Client::new().post(format!("{url}/v1/auth/session")).json(&body).send().await.unwrap();
    (answer.status(), answer.json().await.unwrap())
}

fn session_body(chain_id: &str, challenge: &[u8; 32], key: &SigningKey, purpose: &str) -> Value {
    let signature = machi_ledger::read_auth::sign(chain_id, challenge, key, purpose);
    json!({
        "account": AccountId::of(key).to_hex(),
        "challenge": hex::encode(challenge),
        "signature": hex::encode(signature),
        "purpose": purpose,
    })
}

async fn try_session(url: &str, chain_id: &str, key: &SigningKey, purpose: &str) -> (StatusCode, Value) {
    let challenge = challenge(url).await;
    post_session(url, session_body(chain_id, &challenge, key, purpose)).await
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// The town opens a session with a purpose: its role and scope are named, and the token
/// reads as the town; a challenge answers once, and an unknown one never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_session_opens_once_per_challenge() {
    let node = TestNode::start().await;
    let session = open_session(&node.url, &node.chain_id, &node.town, "監査 2026").await;
    assert_eq!(session["role"], "town");
    assert_eq!(session["scope"], "everything");
    assert_eq!(session["account"], AccountId::of(&node.town).to_hex());
    assert_eq!(session["token"].as_str().unwrap().len(), 64);

    let challenge = challenge(&node.url).await;
    let body = session_body(&node.chain_id, &challenge, &node.town, "監査 2026");
    assert_eq!(post_session(&node.url, body.clone()).await.0, StatusCode::OK);
    let (status, replayed) = post_session(&node.url, body).await;
    assert_eq!((status, code(&replayed)), (StatusCode::UNAUTHORIZED, "challenge_used"));
    let (status, unknown) =
        post_session(&node.url, session_body(&node.chain_id, &[5; 32], &node.town, "監査 2026")).await;
    assert_eq!((status, code(&unknown)), (StatusCode::UNAUTHORIZED, "challenge_unknown"));
}

/// A token reads on the replica that gave it; a token it never gave is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bearer_token_names_the_reader() {
    let node = TestNode::start().await;
    let token = token(&node.url, &node.chain_id, &node.town, "監査 2026").await;
    let http = reqwest::Client::new();
    let url = format!("{}/v1/accounts/{}", node.url, AccountId::of(&node.town).to_hex());
    let answer = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let answer = http.get(&url).bearer_auth("ab".repeat(32)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(code(&body), "read_session_invalid");
}
