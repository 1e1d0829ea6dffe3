//! A shop's money: balance by issue, cash-out requests, monthly statements; and the
//! town's settlement of all pending cash-outs as one Zengin transfer file on chain.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::http::StatusCode;
use machi_api::{TxCode, TxStatus};
use machi_host::ApiError;
use machi_ledger::time::{format_jst, format_jst_date, parse_date, start_of_day_jst_ms};
use machi_ledger::{sha256, AccountId, Action, Kind, Yen, SETTLE_REQUESTS_MAX};

use crate::merchant::{node_error, Merchant};
use crate::model::{
    Balance, BalanceLine, CashOut, CashOutRequest, CashOutStatus, Entry, Settlement, SettlementStatus,
};
use crate::settlements::Settlements;
use crate::store::{get_json, write_durable, write_durable_async};
use crate::zengin::{Transfer, ZenginFile};

/// A cash-out as it would be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CashOutPreview {
    pub(crate) issue: u32,
    pub(crate) amount: Yen,
    pub(crate) fee: Yen,
    pub(crate) net: Yen,
}

/// The first millisecond of a `YYYY-MM` month in JST and of the month after it.
pub(crate) fn month_bounds(month: &str) -> Option<(u64, u64)> {
    let start = start_of_day_jst_ms(&format!("{month}-01"))?;
    let (year, m, _) = parse_date(&format!("{month}-01"))?;
    let next = if m == 12 { format!("{}-01-01", year + 1) } else { format!("{year}-{:02}-01", m + 1) };
    Some((start, start_of_day_jst_ms(&next)?))
}

impl Merchant {
    pub(crate) async fn balance(&self, shop: &AccountId) -> Result<Balance, ApiError> {
        let account = self.node.account(shop).await.map_err(node_error)?;
        let pending = self.cash_outs(shop);
        let mut lines: BTreeMap<u32, (Yen, Yen)> = BTreeMap::new();
        for b in &account.balances {
            let line = lines.entry(b.issue).or_default();
            match b.kind {
                Kind::Common => line.0 = line.0.plus(b.amount),
                Kind::Local => line.1 = line.1.plus(b.amount),
            }
        }
        for c in pending.iter().filter(|c| c.status == CashOutStatus::Pending) {
            lines.entry(c.issue).or_default();
        }
        let mut issues = Vec::new();
        for (issue, (common, local)) in lines {
            let params = self.issue_params(issue).await?;
            let pending_cash_out = pending
                .iter()
                .filter(|c| c.issue == issue && c.status == CashOutStatus::Pending)
                .fold(Yen(0), |sum, c| sum.plus(c.net));
            issues.push(BalanceLine {
                issue,
                issue_name: params.name.clone(),
                common,
                local,
                total: common.plus(local),
                pending_cash_out,
                cash_out_deadline_ms: params.cash_out_deadline_ms,
                cash_out_deadline_jst: format_jst(params.cash_out_deadline_ms),
            });
        }
        let total = issues.iter().fold(Yen(0), |sum, line| sum.plus(line.total));
        Ok(Balance { shop: *shop, total, issues })
    }

    /// Every cash-out request of our shops (a town has hundreds of shops, so a scan is fine).
    pub(crate) fn all_cash_outs(&self) -> impl Iterator<Item = CashOut> + '_ {
        self.store
            .cash_outs
            .iter()
            .values()
            .filter_map(|v| v.ok())
            .map(|v| serde_json::from_slice::<CashOut>(&v).expect("values this program wrote decode"))
    }

    pub(crate) fn cash_outs(&self, shop: &AccountId) -> Vec<CashOut> {
        let mut list: Vec<CashOut> = self.all_cash_outs().filter(|c| c.shop == *shop).collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.requested_ms));
        list
    }

    /// Requests a cash-out of an issue's value (all of it unless an amount is given).
    /// With an Idempotency-Key the cash-out is made once, however often it is asked for
    /// (`reservations.rs`).
    pub(crate) async fn request_cash_out(
        &self,
        shop: &AccountId,
        request: &CashOutRequest,
        raw: &[u8],
        idempotency: Option<&str>,
    ) -> Result<CashOut, ApiError> {
        let key = self.shop(shop).ok_or_else(|| ApiError::not_found("shop"))?.key.clone();
        let sign = || async {
            // Checked here first so a request the ledger would reject is not recorded on
            // chain as a rejection; the ledger stays the judge if the balance moves in between.
            let amount = self.cash_out_amount(shop, request.issue, request.amount).await?;
            Ok(self.sign(&key, Action::RequestCashOut { issue: request.issue, amount }))
        };
        let result = self.submit_once(shop, "cash_out", idempotency, raw, sign).await?;
        self.wait_synced(result.height.expect("applied transactions have a height")).await?;
        get_json(&self.store.cash_outs, result.tx_id.0).ok_or_else(|| ApiError::not_found("cash-out"))
    }

    /// What a cash-out of an issue asks for: `amount`, or all the shop holds of it;
    /// refused when the shop holds less, or nothing.
    async fn cash_out_amount(
        &self,
        shop: &AccountId,
        issue: u32,
        amount: Option<Yen>,
    ) -> Result<Yen, ApiError> {
        let balance = self.balance(shop).await?;
        let held = balance.issues.iter().find(|l| l.issue == issue).map_or(Yen(0), |l| l.total);
        let amount = amount.unwrap_or(held);
        if amount > held {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                TxCode::InsufficientBalance.name(),
                format!("the shop holds {held} of issue {issue}"),
            ));
        }
        if amount.is_zero() {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "nothing_to_cash_out",
                format!("the shop holds no value of issue {issue} to cash out"),
            ));
        }
        Ok(amount)
    }

    /// What a cash-out would be, before it is asked for: the amount (checked as
    /// `request_cash_out` checks it) and the fee the ledger will charge, as the follower
    /// reckons it from the shop's earlier cash-outs of the issue.
    pub(crate) async fn cash_out_preview(
        &self,
        shop: &AccountId,
        issue: u32,
        amount: Option<Yen>,
    ) -> Result<CashOutPreview, ApiError> {
        let amount = self.cash_out_amount(shop, issue, amount).await?;
        let rate = self.issue_params(issue).await?.cash_out_fee;
        let fee = self.cash_out_fee_before(shop, issue, amount, rate);
        Ok(CashOutPreview { issue, amount, fee, net: amount.minus(fee) })
    }

    /// A month's statement as CSV, and whether the month is closed (then it never changes).
    pub(crate) fn statement(&self, shop: &AccountId, month: &str) -> Result<(Vec<u8>, bool), ApiError> {
        let bad = || ApiError::bad_request("bad_month", "a statement month is YYYY-MM");
        if month.len() != 7 {
            return Err(bad());
        }
        let (start, end) = month_bounds(month).ok_or_else(bad)?;
        let key = [&shop.0[..], month.as_bytes()].concat();
        if let Some(csv) = self.store.statements.get(&key).ok().flatten() {
            return Ok((csv.to_vec(), true));
        }
        let csv = self.statement_csv(shop, start, end);
        // Closed once the chain has a block at or after the month's end: blocks only move
        // forward in time, so nothing more can land in it.
        let closed = self.store.meta_u64("synced_ms") >= end;
        if closed {
            self.store
                .statements
                .insert(key, csv.as_slice())
                .map_err(|e| ApiError::internal("storing a statement", e))?;
        }
        Ok((csv, closed))
    }

    fn statement_csv(&self, shop: &AccountId, start: u64, end: u64) -> Vec<u8> {
        let mut csv = String::from("time_jst,type,tx_id,invoice_id,issue,amount,fee,net,height\r\n");
        let from = [&shop.0[..], &start.to_be_bytes()].concat();
        let to = [&shop.0[..], &end.to_be_bytes()].concat();
        for (_, value) in self.store.entries.range(from..to).filter_map(|item| item.ok()) {
            let e: Entry = serde_json::from_slice(&value).expect("values this program wrote decode");
            let _ = write!(
                csv,
                "{},{},{},{},{},{},{},{},{}\r\n",
                format_jst(e.timestamp_ms),
                e.kind.name(),
                e.tx_id,
                e.invoice.as_deref().unwrap_or(""),
                e.issue.map(|i| i.to_string()).unwrap_or_default(),
                e.amount,
                e.fee.0,
                e.net.0,
                e.height
            );
        }
        csv.into_bytes()
    }

    pub(crate) async fn settlements(&self) -> Vec<Settlement> {
        let mut list: Vec<Settlement> = self.settlements.lock().await.by_id.values().cloned().collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
        list
    }

    pub(crate) async fn settlement(&self, id: &str) -> Result<Settlement, ApiError> {
        self.settlements.lock().await.by_id.get(id).cloned().ok_or_else(|| ApiError::not_found("settlement"))
    }

    /// A settlement's Zengin file, given out only once the settlement is on chain: a file
    /// that has left the building must be the one the chain records.
    pub(crate) async fn zengin_file(&self, id: &str) -> Result<Vec<u8>, ApiError> {
        let settlement = self.settlement(id).await?;
        match settlement.status {
            SettlementStatus::Recorded => {}
            SettlementStatus::Submitting => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "settlement_not_recorded",
                    "the settlement is not on chain yet; its file is given out once it is \
                     (POST /v1/admin/settlements sends it again)",
                ))
            }
            SettlementStatus::Rejected => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "settlement_rejected",
                    "the chain rejected this settlement; its file is kept but never given out",
                ))
            }
        }
        let path = self.store.settlements_dir().join(format!("{}.zengin", settlement.id));
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| ApiError::internal("reading a Zengin file", e))?
            .map_err(|e| ApiError::internal("reading a Zengin file", e))?;
        assert_eq!(sha256(&bytes), settlement.file_sha256, "a stored Zengin file changed on disk");
        Ok(bytes)
    }

    /// Writes a settlement (and, for a new one, its file) to disk with fsync, then keeps
    /// it in memory. The caller holds the settlements' lock, so one writer at a time.
    async fn save_settlement(
        &self,
        settlements: &mut Settlements,
        settlement: &Settlement,
        file: Option<Vec<u8>>,
    ) -> Result<(), ApiError> {
        let dir = self.store.settlements_dir();
        let io = |e| ApiError::internal("writing a settlement", e);
        if let Some(file) = file {
            let path = dir.join(format!("{}.zengin", settlement.id));
            let written = tokio::task::spawn_blocking(move || {
                assert!(!path.exists(), "settlement ids are never reused: {} exists", path.display());
                write_durable(&path, &file)
            });
            written.await.map_err(|e| ApiError::internal("writing a settlement", e))?.map_err(io)?;
        }
        // The signed transaction is kept (the API never shows it) so it can be re-sent.
        let mut stored = serde_json::to_value(settlement).expect("records encode");
        stored["tx"] = serde_json::to_value(&settlement.tx).expect("records encode");
        let path = dir.join(format!("{}.json", settlement.id));
        write_durable_async(path, stored.to_string().into_bytes()).await.map_err(io)?;
        settlements.by_id.insert(settlement.id.clone(), settlement.clone());
        Ok(())
    }

    /// Settles every pending cash-out: one Zengin 総合振込 file (one transfer per shop),
    /// written to disk with fsync, then recorded on chain with its SHA-256. A settlement
    /// still waiting for the chain is sent again first, with the same file.
    pub(crate) async fn settle(&self, transfer_date: &str) -> Result<Settlement, ApiError> {
        let _guard = self.settle_lock.lock().await;
        if let Some(finished) = self.finish_submitting().await? {
            return Ok(finished);
        }
        let today = format_jst_date(self.now_ms());
        if parse_date(transfer_date).is_none() || transfer_date < today.as_str() {
            return Err(ApiError::bad_request(
                "bad_transfer_date",
                format!("the transfer date is a day from {today} on, as YYYY-MM-DD"),
            ));
        }
        let Some(originator) = &self.town_bank else {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "town_bank_not_configured",
                "start machi-merchant with --town-bank FILE to build transfer files",
            ));
        };
        let pending = self.all_pending_cash_outs().await;
        if pending.is_empty() {
            return Err(ApiError::new(StatusCode::CONFLICT, "nothing_to_settle", "no cash-out is pending"));
        }
        let (transfers, cash_outs, total) = self.transfers(&pending)?;
        let file = ZenginFile::build(originator, transfer_date, &transfers).map_err(|e| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_transfer_file", e.to_string())
        })?;
        let file_sha256 = sha256(&file);
        let tx = self.sign_as_settler(Action::SettleCashOuts {
            cash_outs: cash_outs.clone(),
            transfer_date: transfer_date.to_string(),
            file_sha256,
        });
        let settlement = {
            let mut settlements = self.settlements.lock().await;
            let seq = settlements.seq + 1;
            let settlement = Settlement {
                id: format!("stl_{}_{seq:04}", transfer_date.replace('-', "")),
                transfer_date: transfer_date.to_string(),
                cash_outs,
                transfers: transfers.len() as u32,
                total,
                file_sha256,
                tx_id: tx.id(&self.chain_id),
                expired_tx_ids: Vec::new(),
                status: SettlementStatus::Submitting,
                reason: None,
                created_ms: self.now_ms(),
                height: None,
                tx: Some(tx),
            };
            // The number is taken before anything is written: a failed write leaves a
            // gap, never a reused id.
            settlements.seq = seq;
            self.save_settlement(&mut settlements, &settlement, Some(file)).await?;
            settlement
        };
        self.send_settlement(settlement).await
    }

    /// Pending cash-outs not yet in a settlement, oldest first, at most one file's worth.
    /// A cash-out in a settlement the chain has recorded but the follower has not yet
    /// read is not pending any more.
    pub(crate) async fn all_pending_cash_outs(&self) -> Vec<CashOut> {
        let settled: std::collections::HashSet<machi_ledger::TxId> = self
            .settlements
            .lock()
            .await
            .by_id
            .values()
            .filter(|s| s.status != SettlementStatus::Rejected)
            .flat_map(|s| s.cash_outs.iter().copied())
            .collect();
        let mut pending: Vec<CashOut> = self
            .all_cash_outs()
            .filter(|c| c.status == CashOutStatus::Pending && !settled.contains(&c.id))
            .collect();
        pending.sort_by_key(|c| c.requested_ms);
        pending.truncate(SETTLE_REQUESTS_MAX);
        pending
    }

    fn transfers(
        &self,
        pending: &[CashOut],
    ) -> Result<(Vec<Transfer>, Vec<machi_ledger::TxId>, Yen), ApiError> {
        let mut by_shop: BTreeMap<AccountId, Yen> = BTreeMap::new();
        for c in pending {
            let sum = by_shop.entry(c.shop).or_default();
            *sum = sum.checked_add(c.net).expect("a settlement total fits in u64");
        }
        let mut transfers = Vec::new();
        for (shop, amount) in &by_shop {
            let shop = self.shop(shop).expect("cash-outs are recorded only for our shops");
            let bank = &shop.record.bank;
            if amount.is_zero() {
                continue;
            }
            transfers.push(Transfer {
                bank_code: bank.bank_code.clone(),
                bank_kana: bank.bank_kana.clone(),
                branch_code: bank.branch_code.clone(),
                branch_kana: bank.branch_kana.clone(),
                account_type: bank.account_type.zengin_code(),
                account_number: bank.account_number.clone(),
                holder_kana: bank.holder_kana.clone(),
                amount: *amount,
                customer_code: shop.record.account.to_hex()[..10].to_string(),
            });
        }
        let total = by_shop.values().fold(Yen(0), |sum, a| sum.plus(*a));
        Ok((transfers, pending.iter().map(|c| c.id).collect(), total))
    }

    /// A settlement still waiting for the chain (the node was down, or its answer was
    /// lost) is sent again before a new one is built. `None` if there is none, or the
    /// chain rejected it.
    async fn finish_submitting(&self) -> Result<Option<Settlement>, ApiError> {
        let waiting = self
            .settlements
            .lock()
            .await
            .by_id
            .values()
            .find(|s| s.status == SettlementStatus::Submitting)
            .cloned();
        let Some(settlement) = waiting else { return Ok(None) };
        let sent = self.send_settlement(settlement).await?;
        Ok((sent.status == SettlementStatus::Recorded).then_some(sent))
    }

    /// Sends a settlement's transaction (again, if it was sent before: the chain answers
    /// a repeat with the first result) and records the outcome. The settlement and its
    /// file are never withdrawn: if the transaction's time-to-live ran out before it
    /// reached the chain (the node says `ttl_expired`, so it never will), the same
    /// cash-outs, transfer date and file hash are signed again and sent.
    async fn send_settlement(&self, settlement: Settlement) -> Result<Settlement, ApiError> {
        let tx = settlement.tx.clone().expect("unrecorded settlements keep their transaction");
        let mut result = self.node.submit(&tx).await.map_err(node_error)?;
        let mut settlement = settlement;
        if result.status == TxStatus::Refused && result.reason == Some(TxCode::TtlExpired) {
            settlement = self.sign_settlement_again(settlement).await?;
            let tx = settlement.tx.clone().expect("just signed");
            result = self.node.submit(&tx).await.map_err(node_error)?;
        }
        match result.status {
            TxStatus::Applied => {
                let height = result.height.expect("applied transactions have a height");
                let recorded = self.settlement_on_chain(&result.tx_id, height).await?;
                self.wait_synced(height).await?;
                Ok(recorded.unwrap_or(settlement))
            }
            TxStatus::Rejected => {
                let reason = result.reason.map_or("", TxCode::name);
                tracing::warn!("the chain rejected settlement {}: {reason}", settlement.id);
                let mut settlements = self.settlements.lock().await;
                settlement.status = SettlementStatus::Rejected;
                settlement.height = result.height;
                settlement.reason = result.reason;
                self.save_settlement(&mut settlements, &settlement, None).await?;
                Ok(settlement)
            }
            TxStatus::Refused => {
                let code = result.reason.map_or("refused", TxCode::name);
                let message = result.message.unwrap_or_else(|| "the ledger did not accept it".into());
                Err(ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message))
            }
        }
    }

    /// A new transaction for the same settlement: same cash-outs, transfer date and file
    /// hash. It is on disk before it is sent.
    async fn sign_settlement_again(&self, mut settlement: Settlement) -> Result<Settlement, ApiError> {
        let tx = self.sign_as_settler(Action::SettleCashOuts {
            cash_outs: settlement.cash_outs.clone(),
            transfer_date: settlement.transfer_date.clone(),
            file_sha256: settlement.file_sha256,
        });
        tracing::info!(
            "settlement {}: transaction {} expired unsent; signing it again",
            settlement.id,
            settlement.tx_id
        );
        settlement.expired_tx_ids.push(settlement.tx_id);
        settlement.tx_id = tx.id(&self.chain_id);
        settlement.tx = Some(tx);
        let mut settlements = self.settlements.lock().await;
        self.save_settlement(&mut settlements, &settlement, None).await?;
        Ok(settlement)
    }

    /// The settlement whose transaction `tx_id` is on chain at `height`, marked
    /// recorded (by the request that sent it, or by the follower that read it).
    pub(crate) async fn settlement_on_chain(
        &self,
        tx_id: &machi_ledger::TxId,
        height: u64,
    ) -> Result<Option<Settlement>, ApiError> {
        let mut settlements = self.settlements.lock().await;
        let Some(mut settlement) = settlements.by_id.values().find(|s| s.tx_id == *tx_id).cloned() else {
            return Ok(None);
        };
        if settlement.status != SettlementStatus::Recorded {
            settlement.status = SettlementStatus::Recorded;
            settlement.height = Some(height);
            self.save_settlement(&mut settlements, &settlement, None).await?;
        }
        Ok(Some(settlement))
    }
}
