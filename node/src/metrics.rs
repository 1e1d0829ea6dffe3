//! Counters for `GET /metrics` (Prometheus text format).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use machi_api::{TxResultView, TxStatus};

#[derive(Default)]
pub struct Metrics {
    pub blocks: AtomicU64,
    pub txs_applied: AtomicU64,
    pub txs_rejected: AtomicU64,
    pub txs_refused: AtomicU64,
    pub block_commit_micros_total: AtomicU64,
    pub storage_errors: AtomicU64,
    pub http_requests: AtomicU64,
    pub http_client_errors: AtomicU64,
    pub submissions_busy: AtomicU64,
    /// Transactions refused before their signature was checked: the signer is unknown.
    pub unknown_signers: AtomicU64,
    /// Blocks whose time was held back because the system clock ran ahead.
    pub blocks_clock_bounded: AtomicU64,
    /// How far the system clock is ahead of block times now (0: in step).
    pub clock_ahead_ms: AtomicU64,
    /// How far the chain's head was ahead of the clock when the node started, until the
    /// clock passes it (0: not ahead).
    pub head_ahead_of_clock_ms: AtomicU64,
    /// 1 once this replica refused a committed block that does not verify (it halted).
    pub halted: AtomicU64,
    /// 1 while this replica leads (its producer makes blocks), else 0.
    pub leader: AtomicU64,
    /// Blocks whose proposal was not confirmed (leadership lost, or no majority in time).
    pub proposals_unconfirmed: AtomicU64,
    /// Signature checks done by the verifier threads.
    pub verify: std::sync::Arc<crate::verify::VerifyCounts>,
}

impl Metrics {
    pub fn record_block(&self, views: &[TxResultView], took: Duration) {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.block_commit_micros_total.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        for view in views {
            let counter = match view.status {
                TxStatus::Applied => &self.txs_applied,
                TxStatus::Rejected => &self.txs_rejected,
                TxStatus::Refused => &self.txs_refused,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn render(&self, height: u64, txs_total: u64) -> String {
        let mut out = String::new();
        let counters = [
            ("machi_blocks_produced_total", "Blocks produced since start.", &self.blocks),
            ("machi_txs_applied_total", "Transactions applied since start.", &self.txs_applied),
            (
                "machi_txs_rejected_total",
                "Transactions recorded as rejected since start.",
                &self.txs_rejected,
            ),
            (
                "machi_txs_refused_total",
                "Transactions refused by the producer since start.",
                &self.txs_refused,
            ),
            (
                "machi_block_commit_micros_total",
                "Time spent producing and syncing blocks.",
                &self.block_commit_micros_total,
            ),
            ("machi_storage_errors_total", "Block writes that failed.", &self.storage_errors),
            ("machi_http_requests_total", "HTTP requests served.", &self.http_requests),
            (
                "machi_http_client_errors_total",
                "HTTP requests answered with a 4xx error.",
                &self.http_client_errors,
            ),
            (
                "machi_submissions_busy_total",
                "Submissions refused because the queue was full.",
                &self.submissions_busy,
            ),
            (
                "machi_blocks_clock_bounded_total",
                "Blocks whose time was held back because the system clock ran ahead of the monotonic clock.",
                &self.blocks_clock_bounded,
            ),
            (
                "machi_unknown_signers_total",
                "Transactions refused before any signature check: the signer is not a registered account.",
                &self.unknown_signers,
            ),
            (
                "machi_proposals_unconfirmed_total",
                "Blocks proposed but not confirmed by a majority (leadership lost, or not in time).",
                &self.proposals_unconfirmed,
            ),
            (
                "machi_signatures_batched_total",
                "Signatures checked in a batch that passed.",
                &self.verify.batched,
            ),
            (
                "machi_signatures_single_total",
                "Signatures checked one at a time (alone, or after their batch failed).",
                &self.verify.single,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        let gauges = [
            ("machi_chain_height", "Height of the chain head.", height),
            ("machi_chain_txs", "Transactions on the chain.", txs_total),
            (
                "machi_clock_ahead_ms",
                "How far the system clock is ahead of block times (0: in step; alarm above 0).",
                self.clock_ahead_ms.load(Ordering::Relaxed),
            ),
            (
                "machi_replica_halted",
                "1 when this replica refused a committed block that does not verify and applies nothing more.",
                self.halted.load(Ordering::Relaxed),
            ),
            ("machi_replica_leader", "1 while this replica leads and produces blocks.", self.leader.load(Ordering::Relaxed)),
            (
                "machi_head_ahead_of_clock_ms",
                "How far the chain's head was ahead of the clock at start, until the clock passes it.",
                self.head_ahead_of_clock_ms.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        }
        out
    }
}
