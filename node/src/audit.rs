//! Export, audit and verify: replay a whole chain from genesis with every check, and the
//! supply report it yields (text, JSON, CSV).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use machi_api::{BlockView, CashDayView, CashReport, IssueSupplyView};
use machi_ledger::{replay, Block, BlockHeader, ChainError, Hash32, Outcome, SignatureCheck, State};
use serde::{Deserialize, Serialize};

use crate::storage::BlockLog;

mod lottery;

pub use lottery::LotteryAudit;

/// What an audit of a whole chain found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    pub chain_id: String,
    pub height: u64,
    pub head_hash: Hash32,
    pub blocks: u64,
    pub txs: u64,
    pub txs_applied: u64,
    pub txs_rejected: u64,
    /// The per-issue supply invariant held after every block.
    pub invariant_held_every_block: bool,
    /// Where it first did not, and how: every rule replayed, yet the books did not
    /// balance (a ledger bug where the chain was made, or here).
    pub invariant_broken: Option<InvariantBroken>,
    pub issues: Vec<IssueSupplyView>,
    /// Sets sold per issue and sale day (JST), from the applied sales on the chain.
    pub sales_by_day: Vec<SalesDay>,
    /// Per lottery issue: the draw recomputed from the chain's transactions (it matched
    /// the state's record, or the audit failed) and the sets bought in each window.
    pub lotteries: Vec<LotteryAudit>,
    /// Per sale day (JST): cash received by the chain, counted at the counters' closes,
    /// deposited at the bank, and the gaps (docs/AUDIT.md).
    pub cash_days: Vec<CashDayView>,
    /// Who could sign blocks, from which height: the producer genesis named, then each
    /// replica set the town put on chain.
    pub producers: Vec<ProducersFrom>,
}

/// The keys that may sign blocks from `from_height` on (until the next entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducersFrom {
    pub from_height: u64,
    /// The voters' producer keys, or the one producer genesis named.
    pub producers: Vec<machi_ledger::AccountId>,
    /// The whole replica set in force (empty for a chain that names none).
    pub replicas: Vec<machi_ledger::Replica>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantBroken {
    pub height: u64,
    pub what: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalesDay {
    pub issue: u32,
    pub date_jst: String,
    pub sets: u64,
    pub cash_received: machi_ledger::Yen,
    /// Purchase attempts recorded as rejected that day (sold out, over cap, ...).
    pub rejected_attempts: u64,
}

/// Longest line of an export: a block of the most transactions, each of the largest body
/// (hex and decoded), fits with room to spare.
const EXPORT_LINE_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Reads one line into `bytes`; false at the end. A line longer than `max` is refused
/// before it fills memory.
fn read_line_bounded(reader: &mut impl BufRead, bytes: &mut Vec<u8>, max: u64) -> anyhow::Result<bool> {
    bytes.clear();
    let read = reader.take(max + 1).read_until(b'\n', bytes)?;
    if read as u64 > max {
        bail!("longer than {max} bytes, more than any block");
    }
    Ok(read > 0)
}

/// Replays blocks one by one, checking everything.
struct Auditor {
    state: Option<State>,
    prev: Option<BlockHeader>,
    report: AuditReport,
    pending: Vec<Block>,
    pending_txs: usize,
    /// One cache of decompressed signer keys per verifying thread.
    keys: Vec<std::sync::Mutex<machi_ledger::KeyCache>>,
    /// A chunk whose signatures are checked, waiting to be replayed.
    ready: Option<Verified>,
    /// Every lottery, counted from the transactions apart from the state.
    lotteries: lottery::LotteryRecount,
}

struct Verified {
    blocks: Vec<Block>,
    /// The first transaction whose signature failed, by height.
    bad: Option<(u64, String)>,
}

/// Blocks are checked in chunks of this many transactions or blocks, whichever comes
/// first: one chunk's signatures are verified while the one before is replayed.
const AUDIT_CHUNK_TXS: usize = 8_192;
const AUDIT_CHUNK_BLOCKS: usize = 4;

/// The first transaction (by height, then position) whose signature does not verify.
/// Transactions that do not decode are left to `replay`, which names them.
fn first_bad_signature(
    blocks: &[Block],
    caches: &[std::sync::Mutex<machi_ledger::KeyCache>],
) -> Option<(u64, String)> {
    // Where each transaction is, and the transactions themselves, decoded once.
    let mut positions: Vec<(u64, usize)> = Vec::new();
    let mut verified: Vec<machi_ledger::VerifiedTx> = Vec::new();
    for block in blocks {
        for (i, tx) in block.txs.iter().enumerate() {
            if let Ok(decoded) = machi_ledger::decode(&block.header.chain_id, tx.clone()) {
                positions.push((block.header.height, i));
                verified.push(decoded);
            }
        }
    }
    let part = verified.len().div_ceil(caches.len()).max(1);
    let results: Vec<Result<(), machi_ledger::TxError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = verified
            .chunks(part)
            .zip(caches)
            .map(|(chunk, cache)| {
                scope.spawn(move || {
                    machi_ledger::verify_batch_cached(chunk, &mut cache.lock().expect("key cache"))
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("verification thread")).collect()
    });
    positions.iter().zip(&verified).zip(results).find_map(|(((height, i), tx), result)| {
        result.err().map(|e| (*height, format!("tx {i} ({}): {e}", tx.id)))
    })
}

impl Auditor {
    fn new() -> Auditor {
        let report = AuditReport {
            chain_id: String::new(),
            height: 0,
            head_hash: Hash32::default(),
            blocks: 0,
            txs: 0,
            txs_applied: 0,
            txs_rejected: 0,
            invariant_held_every_block: true,
            invariant_broken: None,
            issues: Vec::new(),
            sales_by_day: Vec::new(),
            lotteries: Vec::new(),
            cash_days: Vec::new(),
            producers: Vec::new(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let keys = (0..cores).map(|_| std::sync::Mutex::default()).collect();
        Auditor {
            state: None,
            prev: None,
            report,
            pending: Vec::new(),
            pending_txs: 0,
            keys,
            ready: None,
            lotteries: lottery::LotteryRecount::default(),
        }
    }

    /// Takes the next block; blocks are checked in chunks so signatures can be verified
    /// on every core while the rules are replayed in order.
    fn push(&mut self, block: Block) -> anyhow::Result<()> {
        self.pending_txs += block.txs.len();
        self.pending.push(block);
        if self.pending_txs >= AUDIT_CHUNK_TXS || self.pending.len() >= AUDIT_CHUNK_BLOCKS {
            self.flush()?;
        }
        Ok(())
    }

    /// Verifies the pending chunk's signatures on other threads while this thread
    /// replays the chunk verified before it: verification and the rules overlap.
    fn flush(&mut self) -> anyhow::Result<()> {
        let blocks = std::mem::take(&mut self.pending);
        self.pending_txs = 0;
        let previous = self.ready.take();
        let keys = std::mem::take(&mut self.keys);
        let (replayed, bad) = std::thread::scope(|scope| {
            let verifying = scope.spawn(|| first_bad_signature(&blocks, &keys));
            let replayed = previous.map_or(Ok(()), |chunk| self.replay_chunk(chunk));
            (replayed, verifying.join().expect("verification thread"))
        });
        self.keys = keys;
        replayed?;
        self.ready = Some(Verified { blocks, bad });
        Ok(())
    }

    /// Replays everything taken so far.
    fn drain(&mut self) -> anyhow::Result<()> {
        self.flush()?;
        match self.ready.take() {
            Some(chunk) => self.replay_chunk(chunk),
            None => Ok(()),
        }
    }

    fn replay_chunk(&mut self, chunk: Verified) -> anyhow::Result<()> {
        for block in &chunk.blocks {
            if let Some((height, what)) = &chunk.bad {
                if *height == block.header.height {
                    bail!("block {height}: {what}");
                }
            }
            self.replay_one(block)?;
        }
        Ok(())
    }

    fn replay_one(&mut self, block: &Block) -> anyhow::Result<()> {
        let state = self.state.get_or_insert_with(|| State::new(&block.header.chain_id));
        // Signatures were checked in parallel by `flush`; everything else is checked here.
        // A broken invariant is reported (the block was replayed in full) and the audit
        // goes on, so the report shows the figures as the chain has them.
        let r = &mut self.report;
        match replay(state, self.prev.as_ref(), block, SignatureCheck::Skip) {
            Ok(()) => {}
            Err(ChainError::InvariantBroken { height, what }) => {
                r.invariant_held_every_block = false;
                r.invariant_broken.get_or_insert(InvariantBroken { height, what });
            }
            Err(e) => return Err(e.into()),
        }
        r.blocks += 1;
        r.txs += block.txs.len() as u64;
        r.txs_applied += block.outcomes.iter().filter(|o| **o == Outcome::Applied).count() as u64;
        r.txs_rejected += block.outcomes.iter().filter(|o| **o != Outcome::Applied).count() as u64;
        self.count_sales(block);
        self.lotteries.observe(block);
        self.note_producers(block.header.height);
        self.prev = Some(block.header.clone());
        Ok(())
    }

    /// After block `height`: who may sign the next one, recorded when it changed.
    fn note_producers(&mut self, height: u64) {
        let state = self.state.as_ref().expect("a block was replayed");
        let producers: Vec<machi_ledger::AccountId> = if state.replicas.is_empty() {
            state.producer.into_iter().collect()
        } else {
            state.replicas.iter().filter(|r| r.voter).map(|r| r.producer).collect()
        };
        let list = &mut self.report.producers;
        if list.last().is_none_or(|p| p.producers != producers || p.replicas != state.replicas) {
            list.push(ProducersFrom { from_height: height + 1, producers, replicas: state.replicas.clone() });
        }
    }

    fn count_sales(&mut self, block: &Block) {
        let date = machi_ledger::time::format_jst_date(block.header.timestamp_ms);
        for (tx, outcome) in block.txs.iter().zip(&block.outcomes) {
            let Ok(body) = machi_ledger::TxBody::decode(&tx.body) else {
                continue;
            };
            let machi_ledger::Action::SellSets { issue, sets, cash_received, .. } = body.action else {
                continue;
            };
            let sales = &mut self.report.sales_by_day;
            let day = match sales.iter().position(|d| d.issue == issue && d.date_jst == date) {
                Some(i) => &mut sales[i],
                None => {
                    sales.push(SalesDay {
                        issue,
                        date_jst: date.clone(),
                        sets: 0,
                        cash_received: machi_ledger::Yen::ZERO,
                        rejected_attempts: 0,
                    });
                    sales.last_mut().expect("just pushed")
                }
            };
            if *outcome == Outcome::Applied {
                day.sets += u64::from(sets);
                day.cash_received = day.cash_received.plus(cash_received);
            } else {
                day.rejected_attempts += 1;
            }
        }
    }

    fn finish(mut self) -> anyhow::Result<AuditReport> {
        self.drain()?;
        let (Some(state), Some(head)) = (self.state, self.prev) else { bail!("the chain has no blocks") };
        if let Err(e) = state.check_full() {
            // Expected once the running totals went wrong: that is already in the report.
            if self.report.invariant_broken.is_none() {
                bail!("final state is inconsistent: {e}");
            }
        }
        let r = &mut self.report;
        r.chain_id = head.chain_id.clone();
        r.height = head.height;
        r.head_hash = head.hash();
        r.issues = state.issues.values().map(|i| IssueSupplyView::new(&i.params, &i.supply)).collect();
        r.lotteries = std::mem::take(&mut self.lotteries).finish(&state)?;
        r.cash_days = CashReport::new(&state, head.height).days;
        Ok(self.report)
    }
}

/// Reads a block log without changing it (a running node may be appending to it): every
/// whole, intact record, and how many bytes follow them.
fn read_log(data_dir: &Path) -> anyhow::Result<(Vec<Vec<u8>>, u64)> {
    let path = crate::chain::log_path(data_dir);
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = crate::storage::MemFile::default();
    file.bytes.lock().expect("fresh").extend_from_slice(&bytes);
    let opened = BlockLog::open(Box::new(file))?;
    Ok((opened.records, opened.cut_bytes))
}

/// Audits the node's own block log (read-only: a torn tail is reported, not cut).
pub fn audit_data_dir(data_dir: &Path) -> anyhow::Result<AuditReport> {
    let (records, trailing) = read_log(data_dir)?;
    if trailing > 0 {
        bail!(
            "block {}: the block log ends in {trailing} bytes that are not a whole, intact block record",
            records.len()
        );
    }
    let mut auditor = Auditor::new();
    for (height, record) in records.iter().enumerate() {
        let Some(block) = Block::decode(record) else {
            auditor.drain()?;
            bail!("block {height}: record does not decode");
        };
        if block.header.height != height as u64 {
            bail!("block {height}: header says height {}", block.header.height);
        }
        auditor.push(block)?;
    }
    auditor.finish()
}

/// Writes the JSON Lines export of docs/FORMAT.md ("Export"); returns the number of blocks written.
pub fn export(data_dir: &Path, out: &Path) -> anyhow::Result<u64> {
    let (records, _) = read_log(data_dir)?;
    let file = std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut writer = BufWriter::new(file);
    for (height, record) in records.iter().enumerate() {
        let block = Block::decode(record).ok_or_else(|| anyhow!("block {height}: record does not decode"))?;
        serde_json::to_writer(&mut writer, &BlockView::new(&block))?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    writer.get_ref().sync_all()?;
    Ok(records.len() as u64)
}

/// Checks an export file alone, without the node's database. With `expect_head`, also
/// checks that the chain reaches that height with that hash (catches deleted blocks).
pub fn verify_export(path: &Path, expect_head: Option<(u64, Hash32)>) -> anyhow::Result<AuditReport> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut auditor = Auditor::new();
    let mut hashes = Vec::new();
    let mut bytes = Vec::new();
    for line_no in 0.. {
        if !read_line_bounded(&mut reader, &mut bytes, EXPORT_LINE_BYTES_MAX)
            .with_context(|| format!("line {}", line_no + 1))?
        {
            break;
        }
        let line = std::str::from_utf8(&bytes)
            .with_context(|| format!("line {}: not readable text", line_no + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let view: BlockView =
            serde_json::from_str(line).with_context(|| format!("line {}: not a block", line_no + 1))?;
        let height = view.height;
        let block = match view.to_block() {
            Ok(block) => block,
            Err(e) => {
                // Earlier blocks may hold the first error: check them before naming this one.
                auditor.drain()?;
                bail!("block {height} (line {}): {e}", line_no + 1);
            }
        };
        hashes.push(block.hash());
        auditor.push(block)?;
    }
    if let Some((height, hash)) = expect_head {
        match hashes.get(height as usize) {
            Some(h) if *h == hash => {}
            Some(h) => bail!("block {height}: hash is {h}, the expected head says {hash}"),
            None => bail!(
                "block {height}: missing — the export ends at height {}",
                hashes.len().saturating_sub(1)
            ),
        }
    }
    auditor.finish()
}

pub fn report_text(r: &AuditReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "chain {} — verified {} blocks, {} transactions ({} applied, {} rejected)",
        r.chain_id, r.blocks, r.txs, r.txs_applied, r.txs_rejected
    );
    let _ = writeln!(out, "head: height {} hash {}", r.height, r.head_hash);
    let held = match &r.invariant_broken {
        None => "held at every block".to_string(),
        Some(b) => format!("BROKEN after block {}: {}", b.height, b.what),
    };
    let _ = writeln!(out, "supply invariant: {held}");
    let _ = writeln!(out, "\nwho may sign blocks:");
    for p in &r.producers {
        let who = if p.replicas.is_empty() {
            p.producers.iter().map(|k| format!("producer {k}")).collect::<Vec<_>>().join(", ")
        } else {
            let name = |r: &machi_ledger::Replica| {
                format!("{} #{} ({})", r.name, r.id, if r.voter { "voter" } else { "learner" })
            };
            p.replicas.iter().map(name).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(out, "  from block {}: {who}", p.from_height);
    }
    if !r.sales_by_day.is_empty() {
        let _ = writeln!(out, "\nsales by day (JST):");
        for d in &r.sales_by_day {
            let _ = writeln!(
                out,
                "  issue {} {}  {} sets, {} received, {} attempts refused by the rules",
                d.issue, d.date_jst, d.sets, d.cash_received, d.rejected_attempts
            );
        }
    }
    lottery::report_text(&mut out, &r.lotteries);
    report_cash_text(&mut out, &r.cash_days);
    for i in &r.issues {
        let y = |v: machi_ledger::Yen| v.to_string();
        let _ = writeln!(out, "\nissue {} {}", i.issue, i.name);
        let rows = [
            ("sets sold / total", format!("{} / {} ({} left)", i.sets_sold, i.total_sets, i.sets_left)),
            ("cash received", y(i.cash_received)),
            (
                "face value issued",
                format!("{} (common {}, local {})", y(i.issued_total), y(i.issued_common), y(i.issued_local)),
            ),
            ("premium cost", y(i.premium_cost)),
            (
                "held by residents",
                format!("common {}, local {}", y(i.residents_common), y(i.residents_local)),
            ),
            ("held by shops", format!("common {}, local {}", y(i.shops_common), y(i.shops_local))),
            ("pending cash-out", y(i.pending_cash_out)),
            ("paid out", y(i.paid_out)),
            ("fees", y(i.fees)),
            ("expired", y(i.expired)),
            ("invariant", if i.invariant_holds { "holds".into() } else { "BROKEN".into() }),
        ];
        for (label, value) in rows {
            let _ = writeln!(out, "  {label:<20} {value}");
        }
    }
    out
}

/// A signed yen amount: `+¥500`, `-¥1,000`, `¥0`.
fn signed_yen(value: i64) -> String {
    let amount = machi_ledger::Yen(value.unsigned_abs());
    match value.signum() {
        -1 => format!("-{amount}"),
        1 => format!("+{amount}"),
        _ => amount.to_string(),
    }
}

/// The cash by day: each day's totals, its counters and deposits, and its gaps, marked
/// `GAP` so a reader's eye (or grep) finds them.
fn report_cash_text(out: &mut String, days: &[CashDayView]) {
    if days.is_empty() {
        return;
    }
    let _ = writeln!(out, "\ncash by day (JST): received by the chain, counted at counters, deposited:");
    for d in days {
        let state = if d.gaps.is_empty() { "balanced" } else { "GAP" };
        let _ = writeln!(
            out,
            "  {}  received {} ({} sets)  counted {} ({})  deposited {} ({})  {state}",
            d.day,
            d.cash_received,
            d.sets,
            d.counted,
            signed_yen(d.count_difference),
            d.deposited,
            signed_yen(d.deposit_difference),
        );
        for i in &d.issues {
            let _ = writeln!(
                out,
                "    issue {}: {} sets, {} received ({} at counters not closed)",
                i.issue, i.sets, i.cash_received, i.not_closed
            );
        }
        for c in &d.counters {
            let close = match &c.close {
                Some(close) => format!("counted {} ({})", close.counted, signed_yen(close.difference)),
                None => "not closed".to_string(),
            };
            let _ = writeln!(out, "    counter {} {}: expected {}, {close}", c.name, c.operator, c.expected);
        }
        for dep in &d.deposits {
            let _ = writeln!(
                out,
                "    deposit {} on {}, slip {}",
                dep.amount, dep.deposited_on, dep.slip_reference
            );
        }
        for gap in &d.gaps {
            let _ = writeln!(out, "    GAP: {}", gap.describe());
        }
    }
}

/// The cash by day as CSV, one row per day; the gaps in one cell, `; ` between them.
pub fn report_cash_csv(r: &AuditReport) -> String {
    let mut out = String::from("day,sets,cash_received,counters,counters_not_closed,counted,count_difference,deposited,deposit_difference,gaps\n");
    for d in &r.cash_days {
        let gaps = d.gaps.iter().map(machi_api::CashGap::describe).collect::<Vec<_>>().join("; ");
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},\"{}\"",
            d.day,
            d.sets,
            d.cash_received.0,
            d.counters.len(),
            d.counters_not_closed,
            d.counted.0,
            d.count_difference,
            d.deposited.0,
            d.deposit_difference,
            gaps.replace('"', "\"\"")
        );
    }
    out
}

pub fn report_csv(r: &AuditReport) -> String {
    let mut out = String::from("issue,name,total_sets,sets_sold,sets_left,cash_received,issued_common,issued_local,issued_total,premium_cost,residents_common,residents_local,shops_common,shops_local,pending_cash_out,paid_out,fees,expired,invariant_holds,sale_mode,lottery_seed,applicants,sets_applied,sets_won,parties_not_revealed,bought_by_winners,bought_by_waiting_list,sold_first_come\n");
    for i in &r.issues {
        let name = i.name.replace('"', "\"\"");
        let _ = writeln!(
            out,
            "{},\"{name}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            i.issue,
            i.total_sets,
            i.sets_sold,
            i.sets_left,
            i.cash_received.0,
            i.issued_common.0,
            i.issued_local.0,
            i.issued_total.0,
            i.premium_cost.0,
            i.residents_common.0,
            i.residents_local.0,
            i.shops_common.0,
            i.shops_local.0,
            i.pending_cash_out.0,
            i.paid_out.0,
            i.fees.0,
            i.expired.0,
            i.invariant_holds,
            lottery::csv_cells(&r.lotteries, i.issue)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use machi_ledger::testkit::standard_issue;
    use machi_ledger::{decode, genesis, produce, AccountId, Action, SignedTx, SigningKey, TxBody, Yen};

    use super::*;

    const CHAIN: &str = "audit-unit";
    const T0: u64 = 1_799_074_800_000;

    fn tx(key: &SigningKey, nonce: u64, action: Action) -> machi_ledger::VerifiedTx {
        let body = TxBody { chain_id: CHAIN.into(), created_ms: T0, ttl_ms: 60_000, nonce, action };
        decode(CHAIN, SignedTx::sign(CHAIN, key, &body)).unwrap()
    }

    /// Genesis, then an issue, then an operator: three blocks.
    fn chain() -> Vec<Block> {
        let (town, producer) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        let id = |k: &SigningKey| AccountId::of(k);
        let mut state = State::new(CHAIN);
        let g = genesis(
            &mut state,
            tx(&town, 0, Action::Genesis { town: id(&town), producer: id(&producer) }),
            T0,
            &producer,
        );
        let issue = standard_issue(1, 10, 2, T0);
        let (b1, _) =
            produce(&mut state, &g.header, T0, vec![tx(&town, 1, Action::CreateIssue { issue })], &producer);
        let operator = Action::RegisterOperator {
            operator: id(&SigningKey::from_bytes(&[3; 32])),
            name: "窓口".into(),
        };
        let (b2, _) = produce(&mut state, &b1.header, T0, vec![tx(&town, 2, operator)], &producer);
        vec![g, b1, b2]
    }

    #[test]
    fn export_lines_are_read_within_a_bound() {
        let mut reader = std::io::Cursor::new(b"short\nexactly10\nmuch longer than ten\n".to_vec());
        let mut bytes = Vec::new();
        assert!(read_line_bounded(&mut reader, &mut bytes, 10).unwrap());
        assert_eq!(bytes, b"short\n");
        assert!(read_line_bounded(&mut reader, &mut bytes, 10).unwrap());
        assert_eq!(bytes, b"exactly10\n");
        let err = read_line_bounded(&mut reader, &mut bytes, 10).unwrap_err();
        assert!(err.to_string().contains("longer than 10 bytes"), "{err}");
        assert!(bytes.len() <= 11, "no more than the bound was read");
    }

    /// An auditor whose replayed books stop balancing (the running totals altered between
    /// blocks, as a ledger bug would) gets a report naming the block, not a panic, and the
    /// text report says BROKEN.
    #[test]
    fn a_broken_invariant_is_reported_with_its_block() {
        let mut auditor = Auditor::new();
        let mut blocks = chain().into_iter();
        for block in blocks.by_ref().take(2) {
            auditor.push(block).unwrap();
        }
        auditor.drain().unwrap();
        auditor.state.as_mut().unwrap().issues.get_mut(&1).unwrap().supply.expired = Yen(1);
        for block in blocks {
            auditor.push(block).unwrap();
        }
        let report = auditor.finish().expect("a report, not an error");
        assert!(!report.invariant_held_every_block);
        let broken = report.invariant_broken.clone().expect("named");
        assert_eq!(broken.height, 2);
        assert!(report_text(&report).contains("BROKEN after block 2"), "{}", report_text(&report));

        let clean = chain().into_iter().try_fold(Auditor::new(), |mut a, b| a.push(b).map(|()| a)).unwrap();
        let report = clean.finish().unwrap();
        assert!(report.invariant_held_every_block && report.invariant_broken.is_none());
        // Who could sign: the producer genesis named, from block 1 (it signed block 0).
        let producer = AccountId::of(&SigningKey::from_bytes(&[2; 32]));
        assert_eq!(
            report.producers,
            vec![ProducersFrom { from_height: 1, producers: vec![producer], replicas: vec![] }]
        );
        assert!(report_text(&report).contains(&format!("from block 1: producer {producer}")));
    }
}
