//! The nodes a client knows (the replicas of one chain), and which of them answered last.
//! One call tries them in turn from that one, each at most once, and moves on only when
//! an answer says "not this node": it could not be reached or lost the connection, or
//! it cannot serve now and nothing happened there.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use machi_api::{TxCode, TxResultView};

use crate::ClientError;

/// The base URLs of one chain's nodes, the index of the one that last answered, and the
/// highest block this client has seen committed.
#[derive(Debug)]
pub(crate) struct Nodes {
    urls: Vec<String>,
    current: AtomicUsize,
    seen_height: AtomicU64,
}

impl Nodes {
    /// `list` is one base URL or several separated by commas, like
    /// `http://127.0.0.1:7101,http://127.0.0.1:7102`; a trailing `/` is dropped.
    pub(crate) fn parse(list: &str) -> Nodes {
        let mut urls: Vec<String> = list
            .split(',')
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
            .map(str::to_string)
            .collect();
        if urls.is_empty() {
            // Nothing to try: the request fails as reqwest fails it, naming what was given.
            urls.push(list.trim().to_string());
        }
        Nodes { urls, current: AtomicUsize::new(0), seen_height: AtomicU64::new(0) }
    }

    pub(crate) fn urls(&self) -> &[String] {
        &self.urls
    }

    pub(crate) fn url(&self, index: usize) -> &str {
        &self.urls[index]
    }

    pub(crate) fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// Remembers the node that answered, so that the next call starts there.
    pub(crate) fn answered(&self, index: usize) {
        self.current.store(index, Ordering::Relaxed);
    }

    /// Remembers that block `height` is committed (a write's block, a head read).
    pub(crate) fn saw(&self, height: u64) {
        self.seen_height.fetch_max(height, Ordering::Relaxed);
    }

    /// `path` for a read: with several nodes, once this client has seen a block, it
    /// asks the node to answer only after it has applied that block (`?min_height=`), so
    /// a read on a replica that lags behind another still shows this client's writes.
    pub(crate) fn read_path(&self, path: &str) -> String {
        let seen = self.seen_height.load(Ordering::Relaxed);
        if self.urls.len() == 1 || seen == 0 {
            return path.to_string();
        }
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("{path}{separator}min_height={seen}")
    }

    /// Every node once, round robin from `first`.
    pub(crate) fn from(&self, first: usize) -> impl Iterator<Item = usize> {
        let n = self.urls.len();
        (0..n).map(move |step| (first + step) % n)
    }
}

/// Checks a `--node` value: one `http://` or `https://` base URL, or several separated
/// by commas (the replicas of one chain). For clap's `value_parser`.
pub fn node_list(text: &str) -> Result<String, String> {
    let nodes: Vec<&str> = text.split(',').map(str::trim).collect();
    for url in &nodes {
        if url.is_empty() {
            return Err("a node address is empty (addresses are separated by single commas)".into());
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url:?} is not an http:// or https:// address"));
        }
    }
    Ok(nodes.join(","))
}

/// The error codes of a node that cannot serve a request now while another replica may:
/// it has no leader to forward a write to, it halted, it failed inside, it is stopping,
/// or it has not applied the block a read waits for (`behind`). Nothing happened there
/// (`unconfirmed`, below, is the one exception).
const ELSEWHERE_CODES: [&str; 3] = ["unavailable", "shutting_down", "behind"];

fn elsewhere_code(code: &str) -> bool {
    ELSEWHERE_CODES.contains(&code) || TxCode::from_name(code).is_some_and(elsewhere_tx_code)
}

/// `unconfirmed` says the block holding the transaction was not confirmed in time by
/// this replica's leader: the same signed transaction sent to another replica either
/// commits or is answered with the outcome it got, so it is safe to send on.
fn elsewhere_tx_code(code: TxCode) -> bool {
    matches!(code, TxCode::NoLeader | TxCode::Halted | TxCode::Unconfirmed | TxCode::ShuttingDown)
}

impl ClientError {
    /// Whether another node may answer what this one could not: it was not reached, the
    /// connection was lost, or it said it cannot serve now (503 `no_leader`, `halted`,
    /// `unavailable`, `unconfirmed`, `shutting_down`, `behind`).
    pub(crate) fn try_elsewhere(&self) -> bool {
        match self {
            ClientError::Unreachable(..) | ClientError::NoAnswer(..) => true,
            ClientError::Api { status: 503, code, .. } => elsewhere_code(code),
            ClientError::Api { .. } | ClientError::Decode(_) | ClientError::EventsMissed(_) => false,
        }
    }

    /// Whether the request may have been acted on although no outcome came back.
    pub(crate) fn may_have_arrived(&self) -> bool {
        match self {
            ClientError::NoAnswer(..) => true,
            ClientError::Api { code, .. } => code == TxCode::Unconfirmed.name(),
            _ => false,
        }
    }
}

/// Whether a transaction's result says "not this replica, not now".
pub(crate) fn result_elsewhere(result: &TxResultView) -> bool {
    result.is_transient_refusal() && result.reason.is_some_and(elsewhere_tx_code)
}

/// Whether a submission's answer should be sent to the next node: a failure that
/// another node may not have, or a result (one, or any of a batch) refused by this
/// replica alone.
pub(crate) fn submit_elsewhere(outcome: Result<&[TxResultView], &ClientError>) -> bool {
    match outcome {
        Ok(results) => results.iter().any(result_elsewhere),
        Err(e) => e.try_elsewhere(),
    }
}

/// Whether a submission's answer that sent it on leaves its outcome unknown (then it is
/// the one to report if no node takes it, not a later "nothing happened").
pub(crate) fn submit_unknown(outcome: Result<&[TxResultView], &ClientError>) -> bool {
    match outcome {
        Ok(results) => results.iter().any(|r| r.reason == Some(TxCode::Unconfirmed)),
        Err(e) => e.may_have_arrived(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(list: &str, urls: &[&str]) {
        assert_eq!(Nodes::parse(list).urls(), urls);
    }

    #[test]
    fn lists_of_nodes() {
        check("http://a:1", &["http://a:1"]);
        check("http://a:1/", &["http://a:1"]);
        check("http://a:1, http://b:2/,http://c:3", &["http://a:1", "http://b:2", "http://c:3"]);
        check("http://a:1,", &["http://a:1"]);
        let nodes = Nodes::parse("http://a:1,http://b:2,http://c:3");
        assert_eq!(nodes.from(1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(nodes.read_path("/v1/chain/head"), "/v1/chain/head");
        nodes.saw(9);
        nodes.saw(4);
        assert_eq!(nodes.read_path("/v1/chain/head"), "/v1/chain/head?min_height=9");
        assert_eq!(nodes.read_path("/v1/chain/head?after=3"), "/v1/chain/head?after=3&min_height=9");
        assert_eq!(node_list(" http://a:1 ,https://b:2"), Ok("http://a:1,https://b:2".to_string()));
        assert!(node_list("http://a:1,,http://b:2").unwrap_err().contains("empty"));
        assert!(node_list("a:1").unwrap_err().contains("not an http"));
    }

    #[test]
    fn what_goes_to_another_node() {
        let api = |status, code: &str| ClientError::Api { status, code: code.into(), message: String::new() };
        for code in ["no_leader", "halted", "unavailable", "unconfirmed", "shutting_down", "behind"] {
            assert!(api(503, code).try_elsewhere(), "{code}");
        }
        for (status, code) in
            [(503, "busy"), (503, "storage_unavailable"), (404, "not_found"), (400, "no_leader")]
        {
            assert!(!api(status, code).try_elsewhere(), "{status} {code}");
        }
        assert!(ClientError::Unreachable("u".into(), "refused".into()).try_elsewhere());
        assert!(ClientError::NoAnswer("u".into(), "reset".into()).try_elsewhere());
        assert!(!ClientError::Decode("x".into()).try_elsewhere());
    }
}
