//! Who reads what (docs/RULES.md §5): read sessions opened by signing a challenge, and
//! every route answering every kind of reader as the table says.

use machi_ledger::lottery::LotteryParams;
use machi_ledger::testkit::standard_issue;
use machi_ledger::{sha256, AccountId, Action, Delegation, IssueParams, ShopClass, SigningKey, TxId, Yen};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{id, new_key, TestNode, DAY_MS};

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
    let answer = http.get(&url).header("authorization", format!("bearer {token}")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "the scheme's name in any case");
    let answer = http.get(&url).header("authorization", format!("Basic {token}")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "not a bearer token");
    let answer = http.get(&url).bearer_auth("ab".repeat(32)).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(code(&body), "read_session_invalid");
}

/// Every kind of reader of docs/RULES.md §5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// A resident reading another resident's things.
    Other,
    /// The resident whose things they are.
    Resident,
    Shop,
    Operator,
    Town,
    Auditor,
    /// The merchant API's delegated key (a shop registrar).
    Service,
}

const EVERYONE: [Who; 8] = [
    Who::Anonymous,
    Who::Other,
    Who::Resident,
    Who::Shop,
    Who::Operator,
    Who::Town,
    Who::Auditor,
    Who::Service,
];

impl Who {
    fn everything(self) -> bool {
        matches!(self, Who::Town | Who::Auditor | Who::Service)
    }
}

/// What one reader gets from one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// The answer itself, at this status (a public POST answers its own error).
    Status(u16),
    /// 404 with exactly the bytes the missing object's request gets from the same reader.
    Hidden,
    /// 401 `read_auth_required`.
    AuthRequired,
    /// 403 `not_allowed`.
    NotAllowed,
}

/// A small town: an operator, a shop, two residents (one paid the shop), an auditor, the
/// merchant API's shop registrar, an issue on sale and a drawn lottery.
struct Town {
    node: TestNode,
    keys: Vec<(Who, SigningKey)>,
    resident: AccountId,
    other: AccountId,
    shop: AccountId,
    payment: TxId,
    lottery_issue: u32,
}

impl Town {
    async fn new() -> Town {
        let node = TestNode::start().await;
        let start = node.now();
        let town = node.town.clone();
        let (operator, shop, resident, other, auditor, service) =
            (new_key(), new_key(), new_key(), new_key(), new_key(), new_key());
        node.ok(&town, Action::RegisterOperator { operator: id(&operator), name: "役場窓口".into() }).await;
        node.ok(
            &town,
            Action::RegisterShop { shop: id(&shop), name: "山田商店".into(), class: ShopClass::Local },
        )
        .await;
        for (key, name, delegation) in [
            (&auditor, "町議会監査", Delegation::Auditor),
            (&service, "merchant API", Delegation::ShopRegistrar),
        ] {
            node.ok(&town, Action::RegisterDelegate { delegate: id(key), name: name.into(), delegation })
                .await;
        }
        for (i, r) in [&resident, &other].into_iter().enumerate() {
            let resident_hash = sha256(format!("resident-{i}").as_bytes());
            node.ok(&operator, Action::RegisterResident { resident: id(r), resident_hash, worker: false })
                .await;
        }
        node.ok(&town, Action::CreateIssue { issue: standard_issue(1, 100, 2, start) }).await;
        let sell =
            Action::SellSets { issue: 1, resident: id(&resident), sets: 1, cash_received: Yen(10_000) };
        node.ok(&operator, sell).await;
        let payment =
            node.ok(&resident, Action::Pay { shop: id(&shop), amount: Yen(1_000), invoice: None }).await;

        // A lottery issue, applied for by both residents and drawn.
        let issue = IssueParams {
            sale_start_ms: start + 10 * DAY_MS,
            sale_end_ms: start + 20 * DAY_MS,
            ..standard_issue(2, 10, 2, start + 10 * DAY_MS)
        };
        node.ok(&town, Action::CreateIssue { issue }).await;
        let lottery = LotteryParams {
            parties: vec![id(&town)],
            commit_deadline_ms: start + DAY_MS,
            apply_start_ms: start + DAY_MS,
            apply_end_ms: start + 2 * DAY_MS,
            reveal_end_ms: start + 3 * DAY_MS,
            purchase_end_ms: start + 12 * DAY_MS,
            waiting_end_ms: start + 15 * DAY_MS,
        };
        node.ok(&town, Action::SetLottery { issue: 2, lottery }).await;
        let (secret, commitment) = machi_client::lottery_secret();
        node.ok(&town, Action::CommitLotterySecret { issue: 2, commitment }).await;
        node.clock.set(start + DAY_MS);
        for r in [&resident, &other] {
            node.ok(r, Action::ApplyLottery { issue: 2, resident: id(r), sets: 1 }).await;
        }
        node.clock.set(start + 2 * DAY_MS);
        node.ok(&town, Action::RevealLotterySecret { issue: 2, secret }).await;
        node.ok(&town, Action::DrawLottery { issue: 2 }).await;

        let keys = vec![
            (Who::Other, other.clone()),
            (Who::Resident, resident.clone()),
            (Who::Shop, shop.clone()),
            (Who::Operator, operator),
            (Who::Town, town),
            (Who::Auditor, auditor),
            (Who::Service, service),
        ];
        Town {
            resident: id(&resident),
            other: id(&other),
            shop: id(&shop),
            payment: payment.tx_id,
            lottery_issue: 2,
            node,
            keys,
        }
    }

    fn key(&self, who: Who) -> &SigningKey {
        &self.keys.iter().find(|(w, _)| *w == who).expect("a key for every reader but the anonymous").1
    }

    /// A token for each reader (none for the anonymous).
    async fn tokens(&self) -> Vec<(Who, Option<String>)> {
        let mut tokens = vec![(Who::Anonymous, None)];
        for (who, key) in &self.keys {
            let purpose = format!("privacy test as {who:?}");
            tokens.push((*who, Some(token(&self.node.url, &self.node.chain_id, key, &purpose).await)));
        }
        tokens
    }
}

/// `method path` as `token`'s reader: the status, the content type and the body (an event
/// stream's body is not read: it does not end).
async fn ask(
    url: &str,
    method: &Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String, Vec<u8>) {
    let http = reqwest::Client::new();
    let mut request = http.request(method.clone(), format!("{url}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("answered");
    let status = answer.status().as_u16();
    let kind =
        answer.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    if kind.starts_with("text/event-stream") {
        return (status, kind, Vec::new());
    }
    (status, kind, answer.bytes().await.expect("a body").to_vec())
}

/// One route of `machi_node::api_paths()`: the request the matrix makes, the request for a
/// missing object whose answer a hidden one must equal, and what each reader gets.
struct Row {
    method: Method,
    path: String,
    missing: Option<String>,
    body: Option<Value>,
    answer: fn(Who) -> Answer,
}

fn public(_: Who) -> Answer {
    Answer::Status(200)
}

fn everything_only(who: Who) -> Answer {
    match who {
        Who::Anonymous => Answer::AuthRequired,
        w if w.everything() => Answer::Status(200),
        _ => Answer::NotAllowed,
    }
}

/// Every route of the API, each answered to every kind of reader as docs/RULES.md §5 says,
/// and nothing else: a hidden account, transaction or lottery result is byte for byte the
/// answer a missing one gets; the public lottery view names no resident. A route that is
/// served but has no row here fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_reader_as_the_table_says() {
    let town = Town::new().await;
    let url = town.node.url.clone();
    let (resident, shop, lottery) = (town.resident.to_hex(), town.shop.to_hex(), town.lottery_issue);
    let nobody = AccountId([0x5a; 32]).to_hex();
    let payment = town.payment.to_hex();
    let row = |method: Method, path: String, answer: fn(Who) -> Answer| Row {
        method,
        path,
        missing: None,
        body: None,
        answer,
    };
    let rows: Vec<(&str, Row)> = vec![
        ("/v1/auth/challenge", row(Method::POST, "/v1/auth/challenge".into(), public)),
        (
            "/v1/auth/session",
            Row {
                body: Some(
                    json!({"account": resident, "challenge": "11".repeat(32), "signature": "22".repeat(64),
                    "purpose": "privacy test"}),
                ),
                ..row(Method::POST, "/v1/auth/session".into(), |_| Answer::Status(401))
            },
        ),
        (
            "/v1/access-log",
            row(Method::GET, "/v1/access-log".into(), |who| match who {
                Who::Anonymous => Answer::AuthRequired,
                Who::Town | Who::Auditor => Answer::Status(200),
                _ => Answer::NotAllowed,
            }),
        ),
        ("/v1/shops/{id}", row(Method::GET, format!("/v1/shops/{shop}"), public)),
        (
            "/v1/transactions",
            Row {
                body: Some(json!([])),
                ..row(Method::POST, "/v1/transactions".into(), |_| Answer::Status(400))
            },
        ),
        (
            "/v1/transactions/{id}",
            Row {
                missing: Some(format!("/v1/transactions/{}", "77".repeat(32))),
                ..row(Method::GET, format!("/v1/transactions/{payment}"), |who| match who {
                    Who::Resident | Who::Shop => Answer::Status(200),
                    w if w.everything() => Answer::Status(200),
                    _ => Answer::Hidden,
                })
            },
        ),
        (
            "/v1/transactions/{id}/proof",
            row(Method::GET, format!("/v1/transactions/{payment}/proof"), public),
        ),
        (
            "/v1/accounts/{id}",
            Row {
                missing: Some(format!("/v1/accounts/{nobody}")),
                ..row(Method::GET, format!("/v1/accounts/{resident}"), |who| match who {
                    Who::Resident => Answer::Status(200),
                    w if w.everything() => Answer::Status(200),
                    _ => Answer::Hidden,
                })
            },
        ),
        ("/v1/issues", row(Method::GET, "/v1/issues".into(), public)),
        ("/v1/issues/{id}", row(Method::GET, "/v1/issues/1".into(), public)),
        ("/v1/issues/{id}/lottery", row(Method::GET, format!("/v1/issues/{lottery}/lottery"), public)),
        (
            "/v1/issues/{id}/lottery/{account}",
            Row {
                missing: Some(format!("/v1/issues/{lottery}/lottery/{nobody}")),
                ..row(Method::GET, format!("/v1/issues/{lottery}/lottery/{resident}"), |who| match who {
                    Who::Resident => Answer::Status(200),
                    w if w.everything() => Answer::Status(200),
                    _ => Answer::Hidden,
                })
            },
        ),
        ("/v1/blocks/{height}", row(Method::GET, "/v1/blocks/1".into(), everything_only)),
        ("/v1/chain/head", row(Method::GET, "/v1/chain/head".into(), public)),
        ("/v1/supply", row(Method::GET, "/v1/supply".into(), public)),
        ("/v1/health", row(Method::GET, "/v1/health".into(), public)),
        ("/metrics", row(Method::GET, "/metrics".into(), public)),
        ("/v1/cluster", row(Method::GET, "/v1/cluster".into(), public)),
        ("/", row(Method::GET, "/".into(), public)),
        ("/dashboard/live", row(Method::GET, "/dashboard/live".into(), public)),
        ("/openapi.json", row(Method::GET, "/openapi.json".into(), public)),
        (
            "/v1/cash/days",
            row(Method::GET, "/v1/cash/days".into(), |who| match who {
                Who::Anonymous => Answer::AuthRequired,
                Who::Operator => Answer::Status(200),
                w if w.everything() => Answer::Status(200),
                _ => Answer::NotAllowed,
            }),
        ),
        (
            "/v1/cash/days/{day}",
            row(Method::GET, "/v1/cash/days/2027-01-05".into(), |who| match who {
                Who::Anonymous => Answer::AuthRequired,
                Who::Operator => Answer::Status(200),
                w if w.everything() => Answer::Status(200),
                _ => Answer::NotAllowed,
            }),
        ),
        ("/v1/events", row(Method::GET, "/v1/events".into(), everything_only)),
        // Also the route with `?account=`: the account's own stream.
        (
            "/v1/events",
            Row {
                missing: Some(format!("/v1/events?account={nobody}")),
                ..row(Method::GET, format!("/v1/events?account={resident}"), |who| match who {
                    Who::Resident => Answer::Status(200),
                    w if w.everything() => Answer::Status(200),
                    _ => Answer::Hidden,
                })
            },
        ),
        // The verifiability routes: public headers and this replica's attestation.
        ("/v1/headers", row(Method::GET, "/v1/headers?from=0&to=1".into(), public)),
        ("/v1/attestation", row(Method::GET, "/v1/attestation".into(), public)),
    ];
    let served = machi_node::api_paths();
    for path in &served {
        assert!(rows.iter().any(|(p, _)| p == path), "{path} is served but has no row in the privacy table");
    }
    for (path, _) in &rows {
        assert!(served.contains(path), "{path} has a row but is not served");
    }

    let tokens = town.tokens().await;
    assert_eq!(tokens.iter().map(|(who, _)| *who).collect::<Vec<_>>(), EVERYONE, "every kind of reader");
    let ids = [town.resident.to_hex(), town.other.to_hex(), town.shop.to_hex()];
    let residents = [town.resident.to_hex(), town.other.to_hex()];
    for (route, row) in &rows {
        let public_route = matches!((row.answer)(Who::Anonymous), Answer::Status(_));
        for (who, token) in &tokens {
            let what = format!("{} {} as {who:?}", row.method, row.path);
            let (status, kind, body) =
                ask(&url, &row.method, &row.path, token.as_deref(), row.body.clone()).await;
            let text = String::from_utf8_lossy(&body).to_string();
            match (row.answer)(*who) {
                Answer::Status(expected) => assert_eq!(status, expected, "{what}: {text}"),
                Answer::Hidden => {
                    let missing = row.missing.as_deref().expect("a hidden row names its missing object");
                    let (missing_status, _, missing_body) =
                        ask(&url, &row.method, missing, token.as_deref(), None).await;
                    assert_eq!(status, 404, "{what}: {text}");
                    assert_eq!(
                        (status, &body),
                        (missing_status, &missing_body),
                        "{what}: the hidden answer differs from the missing one's"
                    );
                    assert_eq!(json_code(&body), "not_found", "{what}");
                }
                Answer::AuthRequired => {
                    assert_eq!(
                        (status, json_code(&body).as_str()),
                        (401, "read_auth_required"),
                        "{what}: {text}"
                    )
                }
                Answer::NotAllowed => {
                    assert_eq!((status, json_code(&body).as_str()), (403, "not_allowed"), "{what}: {text}")
                }
            }
            // What anyone may read names no resident (the dashboard, metrics, proofs, the
            // lottery's public view...).
            if public_route && !(*route == "/v1/issues/{id}/lottery" && who.everything()) {
                for resident in &residents {
                    assert!(!text.contains(resident.as_str()), "{what} names a resident: {text}");
                }
            }
            if *route == "/v1/issues/{id}/lottery" {
                let view: Value = serde_json::from_slice(&body).unwrap();
                let named = ids.iter().any(|id| text.contains(id.as_str()));
                if who.everything() {
                    assert_eq!(view["lists_withheld"], false, "{what}");
                    assert!(named, "{what}: the everything scope reads the lists");
                } else {
                    assert_eq!(view["lists_withheld"], true, "{what}");
                    assert!(!named, "{what}: the public lottery view names an account: {text}");
                    assert_eq!(view["applicants"], 2, "{what}: the counts are public");
                }
            }
            if matches!((row.answer)(*who), Answer::Status(200)) && *route == "/v1/events" {
                assert!(kind.starts_with("text/event-stream"), "{what}: {kind}");
            }
        }
    }
}

fn json_code(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).ok().map(|v| code(&v).to_string()).unwrap_or_default()
}

/// An answer that reaches the signature check uses the challenge up, even when the
/// signature is wrong; an expired challenge and an unknown one are refused with their
/// codes; a key no account holds, a missing purpose for the everything scope and an
/// overlong one are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_refused_when_replayed_expired_unknown_or_badly_signed() {
    let node = TestNode::start().await;
    let (url, chain) = (node.url.clone(), node.chain_id.clone());
    let town = node.town.clone();

    let challenge_ = challenge(&url).await;
    let wrong = session_body(&chain, &challenge_, &town, "another purpose");
    let signed = session_body(&chain, &challenge_, &town, "監査 2026");
    // Signed for another purpose than the one sent.
    let mut bad = signed.clone();
    bad["signature"] = wrong["signature"].clone();
    let (status, body) = post_session(&url, bad).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "bad_signature"));
    let (status, body) = post_session(&url, signed).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "challenge_used"),
        "a bad signature burns it"
    );

    let challenge_ = challenge(&url).await;
    node.clock.set(node.now() + machi_api::READ_CHALLENGE_TTL_MS + 1);
    let (status, body) = post_session(&url, session_body(&chain, &challenge_, &town, "監査 2026")).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "challenge_expired"));

    let (status, body) = post_session(&url, session_body(&chain, &[3; 32], &town, "監査 2026")).await;
    assert_eq!((status, code(&body)), (StatusCode::UNAUTHORIZED, "challenge_unknown"));

    let (status, body) = try_session(&url, &chain, &new_key(), "kiosk").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "not_registered"));
    let (status, body) = try_session(&url, &chain, &town, "ok").await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "purpose_required"));
    let (status, body) = post_session(&url, session_body(&chain, &challenge(&url).await, &town, "")).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "purpose_required"));
    let long = "監".repeat(67);
    let mut overlong = session_body(&chain, &challenge(&url).await, &town, "x");
    overlong["purpose"] = json!(long);
    let (status, body) = post_session(&url, overlong).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "purpose_too_long"));
    let (status, body) =
        post_session(&url, json!({"account": "xyz", "challenge": "00", "signature": "00"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_id"));
}

/// A session lasts ten minutes from its opening; then `read_session_expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_session_expires() {
    let node = TestNode::start().await;
    let token = token(&node.url, &node.chain_id, &node.town, "監査 2026").await;
    let path = format!("/v1/accounts/{}", id(&node.town));
    assert_eq!(ask(&node.url, &Method::GET, &path, Some(&token), None).await.0, 200);
    node.clock.set(node.now() + machi_api::READ_SESSION_TTL_MS - 1);
    assert_eq!(ask(&node.url, &Method::GET, &path, Some(&token), None).await.0, 200);
    node.clock.set(node.now() + 1);
    let (status, _, body) = ask(&node.url, &Method::GET, &path, Some(&token), None).await;
    assert_eq!((status, json_code(&body).as_str()), (401, "read_session_expired"));
}

/// A key the town freezes (an auditor's) or an operator replaces (a lost card) reads
/// nothing more from the next request on, with the session it already holds or a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_or_replaced_key_stops_reading_at_once() {
    let town = Town::new().await;
    let node = &town.node;
    let (url, chain) = (node.url.clone(), node.chain_id.clone());
    let auditor = town.key(Who::Auditor).clone();
    let resident = town.key(Who::Resident).clone();
    let auditor_token = token(&url, &chain, &auditor, "年次監査").await;
    let resident_token = token(&url, &chain, &resident, "").await;
    let account = format!("/v1/accounts/{}", town.resident);
    assert_eq!(ask(&url, &Method::GET, &account, Some(&auditor_token), None).await.0, 200);
    assert_eq!(ask(&url, &Method::GET, &account, Some(&resident_token), None).await.0, 200);

    node.ok(&node.town, Action::Freeze { account: id(&auditor) }).await;
    let (status, _, body) = ask(&url, &Method::GET, &account, Some(&auditor_token), None).await;
    assert_eq!((status, json_code(&body).as_str()), (403, "account_frozen"));
    let (status, body) = try_session(&url, &chain, &auditor, "年次監査").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "account_frozen"));

    let new_card = new_key();
    node.ok(town.key(Who::Operator), Action::ReplaceKey { old: town.resident, new: id(&new_card) }).await;
    let (status, _, body) = ask(&url, &Method::GET, &account, Some(&resident_token), None).await;
    assert_eq!((status, json_code(&body).as_str()), (403, "key_replaced"));
    let (status, body) = try_session(&url, &chain, &resident, "").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "key_replaced"));
    // The new card reads the account it took over, and its history.
    let new_token = token(&url, &chain, &new_card, "").await;
    assert_eq!(ask(&url, &Method::GET, &account, Some(&new_token), None).await.0, 200);
}

/// A read by the town is logged with who, the purpose it stated, what and the answer; an
/// anonymous read or a resident's own is not; the log is read by the town and auditors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_records_reads_under_the_everything_scope() {
    let town = Town::new().await;
    let node = &town.node;
    let url = node.url.clone();
    let town_token = token(&url, &node.chain_id, &node.town, "開示請求 2026-17 の確認").await;
    let resident_token = token(&url, &node.chain_id, town.key(Who::Resident), "").await;
    let account = format!("/v1/accounts/{}?history=5", town.resident);
    assert_eq!(ask(&url, &Method::GET, &account, None, None).await.0, 404);
    assert_eq!(ask(&url, &Method::GET, &account, Some(&resident_token), None).await.0, 200);
    assert_eq!(ask(&url, &Method::GET, &account, Some(&town_token), None).await.0, 200);
    assert_eq!(ask(&url, &Method::GET, "/v1/blocks/999", Some(&town_token), None).await.0, 404);

    let auditor_token = token(&url, &node.chain_id, town.key(Who::Auditor), "年次監査").await;
    let (status, _, body) = ask(&url, &Method::GET, "/v1/access-log", Some(&auditor_token), None).await;
    assert_eq!(status, 200);
    let page: machi_api::AccessLogPage = serde_json::from_slice(&body).unwrap();
    let entries: Vec<_> = page.entries.iter().filter(|e| e.account == id(&node.town)).collect();
    assert_eq!(entries.len(), 2, "{:?}", page.entries);
    let read = entries[0];
    assert_eq!(
        (
            read.role,
            read.name.as_str(),
            read.purpose.as_str(),
            read.method.as_str(),
            read.path.as_str(),
            read.status
        ),
        (machi_api::ReaderRole::Town, "town", "開示請求 2026-17 の確認", "GET", account.as_str(), 200)
    );
    assert_eq!((entries[1].path.as_str(), entries[1].status), ("/v1/blocks/999", 404));
    assert!(page.entries.iter().all(|e| e.account != town.resident), "a resident's own read is not logged");
    assert!(page.entries.windows(2).all(|w| w[0].seq < w[1].seq));
    // Reading the log is logged too, and paging goes on after the last entry read.
    let last = page.entries.last().unwrap().seq;
    let (_, _, body) =
        ask(&url, &Method::GET, &format!("/v1/access-log?after={last}"), Some(&auditor_token), None).await;
    let next: machi_api::AccessLogPage = serde_json::from_slice(&body).unwrap();
    assert_eq!(next.entries.len(), 1);
    assert_eq!(
        (next.entries[0].name.as_str(), next.entries[0].path.as_str()),
        ("町議会監査", "/v1/access-log")
    );
}

/// An event stream open under a key ends when the town freezes that key: the block that
/// freezes it is not delivered, nor anything after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_ends_when_its_key_is_frozen() {
    use futures_util::StreamExt as _;
    let town = Town::new().await;
    let node = &town.node;
    let auditor = town.key(Who::Auditor).clone();
    let token = token(&node.url, &node.chain_id, &auditor, "年次監査").await;
    let answer = reqwest::Client::new()
        .get(format!("{}/v1/events", node.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let mut stream = answer.bytes_stream();
    let shop = new_key();
    let register =
        Action::RegisterShop { shop: id(&shop), name: "八百屋".into(), class: ShopClass::Local };
    node.ok(&node.town, register).await;
    node.ok(&node.town, Action::Freeze { account: id(&auditor) }).await;
    node.ok(&node.town, Action::RegisterOperator { operator: id(&new_key()), name: "2番窓口".into() }).await;
    let mut text = String::new();
    // The bound only turns a stream that never ends into a failure instead of a hang.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => text.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the stream ended: {text}");
    assert!(text.contains("register_shop"), "what came before the freeze was delivered: {text}");
    assert!(!text.contains("\"freeze\""), "the freeze's block was not: {text}");
    assert!(!text.contains("register_operator"), "nor anything after: {text}");
}
