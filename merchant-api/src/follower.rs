//! The chain follower: reads every block after the last one it read (its height and
//! hash are kept in sled, so a restart resumes), checks it (`trust.rs`), and from the committed transactions of our shops
//! marks invoices paid and refunded, records cash-outs and their settlement, writes
//! statement lines and emits events. It is the only writer of these records, and every
//! step is idempotent: reading a block twice changes nothing. A block that fails its
//! checks stops the follower for good (until the service restarts): it is logged as an
//! error, health says so, and no later block is read.

use std::sync::Arc;
use std::time::Duration;

use machi_ledger::{AccountId, Action, Block, Outcome, RateBp, TxBody, TxId, Yen};
use tokio::sync::watch;

use crate::invoices::pay;
use crate::merchant::Merchant;
use crate::model::{
    CashOut, CashOutStatus, Entry, EntryKind, Invoice, InvoiceStatus, PaymentInfo, RefundInfo, ShopEvent,
};
use crate::store::{get_json, put_json};

/// How long one long poll of the node's head waits for a new block; unpaid invoices are
/// also expired at least this often.
const LONG_POLL_MS: u64 = 5_000;
/// Pause after the node could not be reached.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// Least time between two sweeps of open invoices for expiry: the follower may go round
/// its loop for every block, and a read of an invoice expires it anyway.
const EXPIRY_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) async fn follow(merchant: Arc<Merchant>, mut shutdown: watch::Receiver<bool>) {
    let mut swept = std::time::Instant::now() - EXPIRY_SWEEP_INTERVAL;
    loop {
        let caught_up = merchant.catch_up().await;
        if swept.elapsed() >= EXPIRY_SWEEP_INTERVAL {
            merchant.expire_invoices();
            swept = std::time::Instant::now();
        }
        if let Err(e) = caught_up {
            if let Some(untrusted) = e.downcast_ref::<crate::trust::Untrusted>() {
                merchant.halt(untrusted);
                let _ = shutdown.changed().await;
                return;
            }
            tracing::warn!("following the chain: {e:#}");
            tokio::select! {
                _ = tokio::time::sleep(RETRY_INTERVAL) => continue,
                _ = shutdown.changed() => return,
            }
        }
        // Wait for the node to have a block we have not read (a long poll), or to be
        // woken by an operation that has just committed one.
        let synced = merchant.tip().height;
        tokio::select! {
            _ = merchant.wake.notified() => {}
            _ = merchant.node.head_after(synced, LONG_POLL_MS) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Where a block's transaction sits, for statement lines.
struct At {
    height: u64,
    timestamp_ms: u64,
    /// Position in the block: orders lines of the same block.
    index: u32,
    tx_id: TxId,
}

impl Merchant {
    async fn catch_up(&self) -> anyhow::Result<()> {
        let head = self.node.head().await?;
        let mut tip = self.tip();
        while tip.height < head.height {
            let view = self.node.block(tip.height + 1).await?;
            let block = crate::trust::check_block(&view, &self.chain_id, &tip, &self.producer)?;
            self.read_block(&block).await?;
            tip = crate::trust::Tip::of(&block);
            let mut batch = sled::Batch::default();
            batch.insert("synced_ms", &tip.timestamp_ms.to_be_bytes());
            batch.insert("synced_height", &tip.height.to_be_bytes());
            batch.insert("synced_hash", &tip.hash.0);
            self.store.meta.apply_batch(batch)?;
            *self.tip.lock().expect("tip lock") = tip;
            self.synced.send_replace(tip.height);
        }
        Ok(())
    }

    /// Reads the applied transactions of a checked block, from their signed bytes.
    async fn read_block(&self, block: &Block) -> anyhow::Result<()> {
        let applied =
            block.txs.iter().zip(&block.outcomes).enumerate().filter(|(_, (_, o))| **o == Outcome::Applied);
        for (index, (tx, _)) in applied {
            let Ok(body) = TxBody::decode(&tx.body) else { continue };
            let at = At {
                height: block.header.height,
                timestamp_ms: block.header.timestamp_ms,
                index: index as u32,
                tx_id: tx.id(&self.chain_id),
            };
            match &body.action {
                Action::Pay { shop, amount, invoice } if self.shop(shop).is_some() => {
                    self.read_payment(&at, *shop, tx.signer, *amount, invoice.as_deref())?;
                }
                Action::Refund { payment, amount } if self.shop(&tx.signer).is_some() => {
                    self.read_refund(&at, tx.signer, *payment, *amount)?;
                }
                Action::RequestCashOut { issue, amount } if self.shop(&tx.signer).is_some() => {
                    let rate =
                        self.issue_params(*issue).await.map_err(|e| anyhow::anyhow!(e.message))?.cash_out_fee;
                    let fee = self.cash_out_fee(tx.signer, *issue, *amount, rate, at.tx_id);
                    self.read_cash_out(&at, tx.signer, *issue, *amount, fee)?;
                }
                Action::SettleCashOuts { cash_outs, transfer_date, .. } => {
                    self.read_settlement(&at, cash_outs, transfer_date).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn add_entry(
        &self,
        shop: AccountId,
        at: &At,
        extra: &[u8],
        entry_for: impl FnOnce(&At) -> Entry,
    ) -> sled::Result<()> {
        // Time first (statements are by month), then chain order.
        let key = [
            &shop.0[..],
            &at.timestamp_ms.to_be_bytes(),
            &at.height.to_be_bytes(),
            &at.index.to_be_bytes(),
            extra,
        ]
        .concat();
        put_json(&self.store.entries, key, &entry_for(at))
    }

    fn read_payment(
        &self,
        at: &At,
        shop: AccountId,
        resident: AccountId,
        amount: Yen,
        invoice_id: Option<&str>,
    ) -> anyhow::Result<()> {
        let matched = invoice_id.and_then(|id| self.load_invoice(id)).filter(|invoice| {
            invoice.shop == shop
                && invoice.amount == amount
                && (invoice.payment.is_none()
                    || invoice.payment.as_ref().is_some_and(|p| p.tx_id == at.tx_id))
        });
        self.add_entry(shop, at, &[], |at| Entry {
            timestamp_ms: at.timestamp_ms,
            height: at.height,
            tx_id: at.tx_id,
            kind: EntryKind::Payment,
            invoice: invoice_id.map(str::to_string),
            issue: None,
            amount: amount.0 as i64,
            fee: Yen(0),
            net: Yen(amount.0),
        })?;
        let Some(invoice) = matched else { return Ok(()) };
        self.store.payments.insert(at.tx_id.0, invoice.id.as_bytes())?;
        let payment =
            PaymentInfo { tx_id: at.tx_id, resident, height: at.height, timestamp_ms: at.timestamp_ms };
        let Some(paid) = self.update_invoice(&invoice.id, |current| pay(current, &payment))? else {
            return Ok(());
        };
        if let Some(code) = &invoice.pay_code {
            self.free_pay_code(code, &invoice.id)?;
        }
        self.emit("invoice.paid", shop, Some(paid), None)
    }

    fn read_refund(&self, at: &At, shop: AccountId, payment: TxId, amount: Yen) -> anyhow::Result<()> {
        let invoice_id =
            self.store.payments.get(payment.0)?.map(|id| String::from_utf8_lossy(&id).into_owned());
        self.add_entry(shop, at, &[], |at| Entry {
            timestamp_ms: at.timestamp_ms,
            height: at.height,
            tx_id: at.tx_id,
            kind: EntryKind::Refund,
            invoice: invoice_id.clone(),
            issue: None,
            amount: -(amount.0 as i64),
            fee: Yen(0),
            net: Yen(0),
        })?;
        let Some(invoice_id) = invoice_id else { return Ok(()) };
        let refund = RefundInfo { tx_id: at.tx_id, amount, height: at.height, timestamp_ms: at.timestamp_ms };
        let refunded = self.update_invoice(&invoice_id, |mut invoice| {
            if invoice.refunds.iter().any(|r| r.tx_id == refund.tx_id) {
                return None;
            }
            invoice.refunds.push(refund.clone());
            invoice.refunded = invoice.refunded.plus(refund.amount);
            assert!(invoice.refunded <= invoice.amount, "the chain refunded more than an invoice's payment");
            invoice.status = if invoice.refunded == invoice.amount {
                InvoiceStatus::Refunded
            } else {
                InvoiceStatus::PartlyRefunded
            };
            Some(invoice)
        })?;
        let Some(invoice) = refunded else { return Ok(()) };
        self.emit("refund.done", shop, Some(invoice), None)
    }

    /// The fee the ledger charged: on the shop's running total for the issue
    /// (docs/RULES.md), which is every cash-out of it read before this one. A block read
    /// again finds its own record.
    fn cash_out_fee(&self, shop: AccountId, issue: u32, amount: Yen, rate: RateBp, id: TxId) -> Yen {
        match self.all_cash_outs().find(|c| c.id == id) {
            Some(read) => read.fee,
            None => self.cash_out_fee_before(&shop, issue, amount, rate),
        }
    }

    /// The fee on a cash-out of `amount` after every one of the shop's cash-outs of the
    /// issue read so far: the ledger charges the fee on the running total.
    pub(crate) fn cash_out_fee_before(&self, shop: &AccountId, issue: u32, amount: Yen, rate: RateBp) -> Yen {
        let before = self
            .all_cash_outs()
            .filter(|c| c.shop == *shop && c.issue == issue)
            .fold(Yen::ZERO, |sum, c| sum.plus(c.amount));
        rate.fee_on(before.plus(amount)).minus(rate.fee_on(before))
    }

    fn read_cash_out(
        &self,
        at: &At,
        shop: AccountId,
        issue: u32,
        amount: Yen,
        fee: Yen,
    ) -> anyhow::Result<()> {
        let net = amount.minus(fee);
        self.add_entry(shop, at, &[], |at| Entry {
            timestamp_ms: at.timestamp_ms,
            height: at.height,
            tx_id: at.tx_id,
            kind: EntryKind::CashOut,
            invoice: None,
            issue: Some(issue),
            amount: -(amount.0 as i64),
            fee,
            net,
        })?;
        if self.store.cash_outs.contains_key(at.tx_id.0)? {
            return Ok(());
        }
        let cash_out = CashOut {
            id: at.tx_id,
            shop,
            issue,
            amount,
            fee,
            net,
            status: CashOutStatus::Pending,
            requested_ms: at.timestamp_ms,
            settlement: None,
            transfer_date: None,
        };
        put_json(&self.store.cash_outs, at.tx_id.0, &cash_out)?;
        Ok(())
    }

    async fn read_settlement(&self, at: &At, cash_outs: &[TxId], transfer_date: &str) -> anyhow::Result<()> {
        let settlement = self
            .settlement_on_chain(&at.tx_id, at.height)
            .await
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?
            .map(|s| s.id);
        for id in cash_outs {
            let Some(mut cash_out) = get_json::<CashOut>(&self.store.cash_outs, id.0) else { continue };
            if cash_out.status == CashOutStatus::Paid {
                continue;
            }
            cash_out.status = CashOutStatus::Paid;
            cash_out.settlement = settlement.clone();
            cash_out.transfer_date = Some(transfer_date.to_string());
            self.add_entry(cash_out.shop, at, &id.0, |at| Entry {
                timestamp_ms: at.timestamp_ms,
                height: at.height,
                tx_id: at.tx_id,
                kind: EntryKind::CashOutPaid,
                invoice: None,
                issue: Some(cash_out.issue),
                amount: 0,
                fee: Yen(0),
                net: cash_out.net,
            })?;
            put_json(&self.store.cash_outs, id.0, &cash_out)?;
            self.emit("cash_out.paid", cash_out.shop, None, Some(cash_out))?;
        }
        Ok(())
    }

    /// Keeps the event (so a counter device can resume with `Last-Event-ID`) and sends it.
    fn emit(
        &self,
        kind: &str,
        shop: AccountId,
        invoice: Option<Invoice>,
        cash_out: Option<CashOut>,
    ) -> anyhow::Result<()> {
        let seq = self.store.meta_u64("event_seq") + 1;
        let event = ShopEvent { seq, kind: kind.to_string(), shop, invoice, cash_out };
        put_json(&self.store.events, seq.to_be_bytes(), &event)?;
        self.store.set_meta_u64("event_seq", seq)?;
        let _ = self.events.send(event);
        Ok(())
    }
}
