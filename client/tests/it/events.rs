//! Event streams: a character split between two reads, a stream that moves to the next
//! node when its connection ends, and one that resumes from the last event's id.

use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::get;
use futures_util::StreamExt as _;
use machi_api::{TxEvent, TxStatus};
use machi_client::{Client, ClientError};
use machi_ledger::{AccountId, Action, ShopClass, TxBody};

use crate::harness::{event_stream, serve};

/// A TxEvent for a shop registration naming the shop `name`.
fn registration(name: &str, height: u64) -> TxEvent {
    let town = machi_node::generate_key();
    let shop = AccountId::of(&machi_node::generate_key());
    let action = Action::RegisterShop { shop, name: name.into(), class: ShopClass::Local };
    let tx = machi_client::sign("test-town", &town, action);
    TxEvent {
        tx_id: tx.id("test-town"),
        height,
        timestamp_ms: machi_client::now_ms(),
        kind: "register_shop".into(),
        status: TxStatus::Applied,
        reason: None,
        signer: tx.signer,
        accounts: vec![tx.signer, shop],
        body: TxBody::decode(&tx.body).unwrap(),
    }
}

fn frame(name: &str, event: &TxEvent) -> Vec<u8> {
    format!("event: {name}\ndata: {}\n\n", serde_json::to_string(event).unwrap()).into_bytes()
}

fn shop_name(event: &TxEvent) -> &str {
    match &event.body.action {
        Action::RegisterShop { name, .. } => name,
        other => panic!("not a registration: {other:?}"),
    }
}

#[tokio::test]
async fn an_event_split_inside_a_character_reads_whole() {
    let sent = registration("茶屋", 7);
    let whole = frame("tx", &sent);
    // Split inside 茶 (three bytes in UTF-8): the first read ends with a broken character.
    let split = whole.windows(3).position(|w| w == "茶".as_bytes()).expect("the name is in the frame") + 1;
    let (first, second) = (whole[..split].to_vec(), whole[split..].to_vec());
    assert!(std::str::from_utf8(&first).is_err(), "the first chunk ends inside a character");
    let chunks = vec![first.clone(), second];
    let url = serve(
        axum::Router::new().route("/v1/events", get(move || async move { event_stream(chunks, true) })),
    )
    .await;

    // The chunks reach a reader one by one, the first ending inside 茶.
    let mut raw = reqwest::get(format!("{url}/v1/events")).await.unwrap();
    assert_eq!(raw.chunk().await.unwrap().as_deref(), Some(&first[..]));

    let mut events = Client::new(&url).events(None).await.expect("subscribed");
    let read = events.next().await.expect("an event").expect("it decodes");
    assert_eq!(shop_name(&read), "茶屋");
    assert_eq!(read, sent);
}

#[tokio::test]
async fn a_lost_stream_moves_to_the_next_node_and_says_events_may_be_missed() {
    let (a, b) = (registration("八百屋", 1), registration("魚屋", 2));
    // The first node says it dropped events for a slow reader, sends one, and stops.
    let first_frames = vec![b"event: lagged\ndata: events were missed\n\n".to_vec(), frame("tx", &a)];
    let first = serve(axum::Router::new().route(
        "/v1/events",
        get(move || {
            let frames = first_frames.clone();
            async move { event_stream(frames, false) }
        }),
    ))
    .await;
    let second_frames = vec![frame("tx", &b)];
    let second = serve(axum::Router::new().route(
        "/v1/events",
        get(move || {
            let frames = second_frames.clone();
            async move { event_stream(frames, true) }
        }),
    ))
    .await;

    let client = Client::new(&format!("{first},{second}"));
    let mut events = client.events(None).await.expect("subscribed");
    assert!(matches!(events.next().await, Some(Err(ClientError::EventsMissed(_)))));
    assert_eq!(events.next().await.unwrap().unwrap(), a);
    // The node's events carry no position to resume from: the reader is told.
    let missed = events.next().await.unwrap().unwrap_err();
    assert_eq!(missed.code(), "events_missed", "{missed}");
    assert!(missed.to_string().contains(&second), "{missed}");
    assert_eq!(events.next().await.unwrap().unwrap(), b);
    assert_eq!(client.base(), second, "the node that answered last");
}

type Asked = (Option<String>, Option<String>);

#[tokio::test]
async fn shop_events_resume_from_the_last_event_id() {
    // Each connection's (Authorization, Last-Event-ID).
    let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
    let heard = asked.clone();
    let events = move |headers: HeaderMap| {
        let heard = heard.clone();
        async move {
            let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_string());
            let last = header("last-event-id");
            heard.lock().unwrap().push((header("authorization"), last.clone()));
            match last.as_deref() {
                // The first connection gives events 4 and 5 and ends; the next goes on.
                Some("3") => event_stream(
                    vec![
                        b"id: 4\nevent: invoice.paid\ndata: {\"seq\":4}\n\n".to_vec(),
                        b"id: 5\nevent: refund.done\ndata: {\"seq\":5}\n\n".to_vec(),
                    ],
                    false,
                ),
                _ => event_stream(vec![b"id: 6\nevent: invoice.paid\ndata: {\"seq\":6}\n\n".to_vec()], true),
            }
        }
    };
    let url = serve(axum::Router::new().route("/v1/events", get(events))).await;
    let mut stream = Client::new(&url).shop_events("tok", Some(3)).await.expect("subscribed");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = stream.next().await.unwrap().expect("no gap: the stream resumes");
        let data: serde_json::Value = event.json().unwrap();
        seen.push((event.name, event.id, data["seq"].as_u64().unwrap()));
    }
    assert_eq!(
        seen,
        [
            ("invoice.paid".to_string(), "4".to_string(), 4),
            ("refund.done".to_string(), "5".to_string(), 5),
            ("invoice.paid".to_string(), "6".to_string(), 6)
        ]
    );
    let bearer = Some("Bearer tok".to_string());
    assert_eq!(
        *asked.lock().unwrap(),
        [(bearer.clone(), Some("3".to_string())), (bearer, Some("5".to_string()))]
    );
}
