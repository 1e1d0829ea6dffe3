//! Server-sent event streams: the node's `GET /v1/events` (typed `TxEvent`s) and the
//! merchant API's shop events. The bytes are parsed by eventsource-stream, which keeps a
//! character split across two reads whole. When a connection ends or is lost, the
//! stream connects again, to the next node first: with the id of the last event read
//! (`Last-Event-ID`) where the server gave ids, so nothing is missed; where it gave none
//! (the node's events carry no position to resume from), the stream says that events
//! may have been missed and goes on.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use machi_api::TxEvent;
use machi_ledger::AccountId;
use serde::de::DeserializeOwned;

use crate::reading::session_gone;
use crate::{error_answer, transport_error, Client, ClientError};

/// Longest silence on an event stream before the connection counts as lost: the node
/// and the merchant API send a keep-alive every 15 s, so this is three missed.
pub const EVENTS_READ_TIMEOUT_S: u64 = 45;
/// Pause before an event stream connects again after its connection ended, so a node
/// that closes every stream at once (it is stopping) is not asked in a tight loop.
pub const RECONNECT_PAUSE_MS: u64 = 250;

/// One server-sent event as it came: its name (`event:`), the id of the last event
/// that had one (`id:`, empty if none did) and its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerEvent {
    pub name: String,
    pub id: String,
    pub data: String,
}

impl ServerEvent {
    /// The event's data read as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_str(&self.data)
            .map_err(|e| ClientError::Decode(format!("a {} event: {e}", self.name)))
    }
}

/// A stream of events that reconnects by itself. An `Err(EventsMissed)` item says
/// events may have been skipped and the stream goes on; any other error is its last
/// item (no node could be reached, or what came was not an event stream).
pub struct EventStream<T> {
    inner: BoxStream<'static, Result<T, ClientError>>,
}

impl<T> Stream for EventStream<T> {
    type Item = Result<T, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

impl Client {
    /// The node's events: one `TxEvent` per committed transaction that concerns
    /// `account`, or every one. Returns once the node has taken the subscription, so
    /// every transaction committed after that is in the stream.
    pub async fn events(&self, account: Option<&AccountId>) -> Result<EventStream<TxEvent>, ClientError> {
        let path = match account {
            Some(account) => format!("/v1/events?account={account}"),
            None => "/v1/events".to_string(),
        };
        let subscription = Subscription::open(self.clone(), path, None, String::new()).await?;
        let events = subscription.into_stream().filter_map(|item| {
            std::future::ready(match item {
                Ok(event) if event.name == "tx" => Some(event.json::<TxEvent>()),
                // Names added later are for newer readers.
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
        });
        Ok(EventStream { inner: events.boxed() })
    }

    /// The merchant API's events for the shop of `token` (this client made with the
    /// merchant API's base URL): `invoice.paid`, `refund.done`, `cash_out.paid`, each a
    /// `ShopEvent` in its data. With `last_event_id`, the events after it come first.
    /// Returns once the service has taken the subscription.
    pub async fn shop_events(
        &self,
        token: &str,
        last_event_id: Option<u64>,
    ) -> Result<EventStream<ServerEvent>, ClientError> {
        let last_id = last_event_id.map(|id| id.to_string()).unwrap_or_default();
        let subscription =
            Subscription::open(self.clone(), "/v1/events".into(), Some(token.to_string()), last_id).await?;
        Ok(EventStream { inner: subscription.into_stream().boxed() })
    }
}

type RawEvents = BoxStream<'static, Result<eventsource_stream::Event, EventStreamError<reqwest::Error>>>;

/// One event stream across its connections.
struct Subscription {
    client: Client,
    path: String,
    token: Option<String>,
    /// The id of the last event read, empty before any: sent as `Last-Event-ID`.
    last_id: String,
    /// The node of the connection.
    at: usize,
    /// The connection's events; `None` once the stream has ended for good.
    events: Option<RawEvents>,
}

impl Subscription {
    async fn open(
        client: Client,
        path: String,
        token: Option<String>,
        last_id: String,
    ) -> Result<Subscription, ClientError> {
        let at = client.nodes.current();
        let mut subscription = Subscription { client, path, token, last_id, at, events: None };
        subscription.connect(at).await?;
        Ok(subscription)
    }

    fn into_stream(self) -> impl Stream<Item = Result<ServerEvent, ClientError>> + Send + 'static {
        stream::unfold(self, |mut subscription| async move {
            let item = subscription.next().await?;
            Some((item, subscription))
        })
    }

    /// Connects to the first node, round robin from `first`, that answers with an
    /// event stream; each is asked at most once.
    async fn connect(&mut self, first: usize) -> Result<(), ClientError> {
        let mut last = None;
        for index in self.client.nodes.from(first) {
            match request(&self.client, index, &self.path, self.token.as_deref(), &self.last_id).await {
                Ok(events) => {
                    self.at = index;
                    self.events = Some(events);
                    self.client.nodes.answered(index);
                    return Ok(());
                }
                Err(e) if e.try_elsewhere() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("a client knows at least one node"))
    }

    /// The next event, connecting again when the connection ends; `None` once the
    /// stream has ended.
    async fn next(&mut self) -> Option<Result<ServerEvent, ClientError>> {
        loop {
            let events = self.events.as_mut()?;
            match events.next().await {
                Some(Ok(event)) => {
                    if !event.id.is_empty() {
                        self.last_id.clone_from(&event.id);
                    }
                    if event.event != "lagged" {
                        return Some(Ok(ServerEvent { name: event.event, id: event.id, data: event.data }));
                    }
                    // The server dropped events for this slow reader. With a position,
                    // the same server gives them again from there.
                    if self.last_id.is_empty() {
                        return Some(Err(ClientError::EventsMissed(event.data)));
                    }
                    if let Some(e) = self.reconnect(self.at).await {
                        return Some(Err(e));
                    }
                }
                Some(Err(EventStreamError::Transport(_))) | None => {
                    let next = (self.at + 1) % self.client.nodes.urls().len();
                    if let Some(e) = self.reconnect(next).await {
                        return Some(Err(e));
                    }
                }
                Some(Err(e)) => {
                    self.events = None;
                    return Some(Err(ClientError::Decode(e.to_string())));
                }
            }
        }
    }

    /// Connects again, from node `first` round robin. `Some` error when no node
    /// answered (the stream then ends) or when events may have been missed.
    async fn reconnect(&mut self, first: usize) -> Option<ClientError> {
        self.events = None;
        tokio::time::sleep(Duration::from_millis(RECONNECT_PAUSE_MS)).await;
        let resumes = !self.last_id.is_empty();
        match self.connect(first).await {
            Err(e) => Some(e),
            Ok(()) if resumes => None,
            Ok(()) => Some(ClientError::EventsMissed(format!(
                "the event stream was connected again, to {}, and cannot resume where it was",
                self.client.nodes.url(self.at)
            ))),
        }
    }
}

/// Opens an event stream at node `index` of `client`.
async fn request(
    client: &Client,
    index: usize,
    path: &str,
    token: Option<&str>,
    last_id: &str,
) -> Result<RawEvents, ClientError> {
    let base = client.nodes.url(index);
    let open = |bearer: Option<String>| async move {
        let mut request =
            client.streams.get(format!("{base}{path}")).header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if !last_id.is_empty() {
            request = request.header("Last-Event-ID", last_id);
        }
        let response = request.send().await.map_err(|e| transport_error(base, e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.bytes().await.map_err(|e| transport_error(base, e))?;
            return Err(error_answer(status, &body));
        }
        Ok(response.bytes_stream().eventsource().boxed())
    };
    // A service's own token (the merchant API's shop events), else this client's read
    // session at that node, opened anew once if the node no longer knows it.
    let reader = client.reader.as_ref().filter(|_| token.is_none());
    let Some(reader) = reader else { return open(token.map(str::to_string)).await };
    let session = reader.token(client, index, None).await?;
    match open(Some(session.clone())).await {
        Err(e) if session_gone(&e) => open(Some(reader.token(client, index, Some(&session)).await?)).await,
        other => other,
    }
}
