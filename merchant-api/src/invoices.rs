//! Invoices (payment requests): created idempotently with a pay code and QR payload,
//! expired when unpaid, looked up publicly by pay code, refunded in part or full.
//! An invoice becomes paid only in `follower.rs`, from a committed payment.

use axum::http::StatusCode;
use machi_api::PayCodeView;
use machi_host::ApiError;
use machi_ledger::{sha256, AccountId, Action, Hash32, Yen};
use serde::{Deserialize, Serialize};

use crate::merchant::Merchant;
use crate::model::{CreateInvoiceRequest, Invoice, InvoiceStatus, PaymentInfo};
use crate::secrets::{new_pay_code, random_id};
use crate::store::{get_json, put_json, update_json};

pub(crate) const INVOICE_YEN_MAX: Yen = Yen(10_000_000);
pub(crate) const MEMO_CHARS_MAX: usize = 200;
pub(crate) const EXPIRES_IN_S_DEFAULT: u32 = 15 * 60;
pub(crate) const EXPIRES_IN_S_MIN: u32 = 60;
pub(crate) const EXPIRES_IN_S_MAX: u32 = 24 * 60 * 60;
pub(crate) const IDEMPOTENCY_KEY_CHARS_MAX: usize = 255;
pub(crate) const INVOICES_LIST_MAX: usize = 500;

/// An open invoice past its time, expired; `None` if it is not open or not past it.
pub(crate) fn expire(mut invoice: Invoice, now_ms: u64) -> Option<Invoice> {
    if invoice.status != InvoiceStatus::Open || now_ms <= invoice.expires_ms {
        return None;
    }
    invoice.status = InvoiceStatus::Expired;
    invoice.pay_code = None;
    invoice.qr_payload = None;
    Some(invoice)
}

/// An invoice paid by `payment`; `None` if it is already paid. An invoice that expired
/// while its payment was on the way is paid all the same: the money has reached the shop.
pub(crate) fn pay(mut invoice: Invoice, payment: &PaymentInfo) -> Option<Invoice> {
    if invoice.payment.is_some() {
        return None;
    }
    invoice.status = InvoiceStatus::Paid;
    invoice.payment = Some(payment.clone());
    invoice.pay_code = None;
    invoice.qr_payload = None;
    Some(invoice)
}

/// What an idempotency key was first used for.
#[derive(Serialize, Deserialize)]
struct Prior {
    request_sha256: Hash32,
    result: String,
}

pub(crate) fn idempotency_key(shop: &AccountId, op: &str, key: &str) -> Vec<u8> {
    [&shop.0[..], op.as_bytes(), b"\0", key.as_bytes()].concat()
}

pub(crate) fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_CHARS_MAX || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "bad_idempotency_key",
            format!("Idempotency-Key is 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters"),
        ));
    }
    Ok(())
}

impl Merchant {
    /// The result a request with this key had before, if any; 409 if the key was used
    /// with another request.
    pub(crate) fn idempotent_prior(
        &self,
        shop: &AccountId,
        op: &str,
        key: Option<&str>,
        request: &[u8],
    ) -> Result<Option<String>, ApiError> {
        let Some(key) = key else { return Ok(None) };
        let Some(prior) = get_json::<Prior>(&self.store.idempotency, idempotency_key(shop, op, key)) else {
            return Ok(None);
        };
        if prior.request_sha256 != sha256(request) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                "this Idempotency-Key was already used with a different request",
            ));
        }
        Ok(Some(prior.result))
    }

    pub(crate) fn idempotent_record(
        &self,
        shop: &AccountId,
        op: &str,
        key: Option<&str>,
        request: &[u8],
        result: &str,
    ) -> Result<(), ApiError> {
        let Some(key) = key else { return Ok(()) };
        let prior = Prior { request_sha256: sha256(request), result: result.to_string() };
        put_json(&self.store.idempotency, idempotency_key(shop, op, key), &prior)
            .map_err(|e| ApiError::internal("recording an idempotency key", e))
    }

    /// Creates an invoice, or returns the one this Idempotency-Key created. The bool
    /// says whether it is new.
    pub(crate) async fn create_invoice(
        &self,
        shop: AccountId,
        request: &CreateInvoiceRequest,
        raw: &[u8],
        idempotency: Option<&str>,
    ) -> Result<(Invoice, bool), ApiError> {
        let created = self.create_invoice_locked(shop, request, raw, idempotency)?;
        self.store.flush().await.map_err(|e| ApiError::internal("flushing invoices", e))?;
        Ok(created)
    }

    fn create_invoice_locked(
        &self,
        shop: AccountId,
        request: &CreateInvoiceRequest,
        raw: &[u8],
        idempotency: Option<&str>,
    ) -> Result<(Invoice, bool), ApiError> {
        self.check_not_suspended(&shop)?;
        if request.amount.is_zero() || request.amount > INVOICE_YEN_MAX {
            return Err(ApiError::bad_request(
                "bad_amount",
                format!("an invoice is ¥1 to ¥{}", INVOICE_YEN_MAX.0),
            ));
        }
        if request.memo.chars().count() > MEMO_CHARS_MAX {
            return Err(ApiError::bad_request(
                "bad_memo",
                format!("a memo is at most {MEMO_CHARS_MAX} characters"),
            ));
        }
        let expires_in_s = request.expires_in_s.unwrap_or(EXPIRES_IN_S_DEFAULT);
        if !(EXPIRES_IN_S_MIN..=EXPIRES_IN_S_MAX).contains(&expires_in_s) {
            return Err(ApiError::bad_request(
                "bad_expiry",
                format!("expires_in_s is {EXPIRES_IN_S_MIN} to {EXPIRES_IN_S_MAX}"),
            ));
        }
        let _guard = self.create_lock.lock().expect("create lock");
        if let Some(id) = self.idempotent_prior(&shop, "invoice", idempotency, raw)? {
            return Ok((self.invoice(&shop, &id)?, false));
        }
        let now = self.now_ms();
        let mut pay_code = new_pay_code();
        while self.store.pay_codes.contains_key(&pay_code).unwrap_or(true) {
            pay_code = new_pay_code();
        }
        let id = random_id("inv");
        let invoice = Invoice {
            qr_payload: Some(format!(
                "machi:pay?code={pay_code}&invoice={id}&amount={}&shop={shop}",
                request.amount.0
            )),
            id: id.clone(),
            shop,
            amount: request.amount,
            memo: request.memo.clone(),
            status: InvoiceStatus::Open,
            pay_code: Some(pay_code.clone()),
            created_ms: now,
            expires_ms: now + u64::from(expires_in_s) * 1000,
            payment: None,
            refunded: Yen(0),
            refunds: Vec::new(),
        };
        let store = |e| ApiError::internal("storing an invoice", e);
        self.save_invoice(&invoice).map_err(store)?;
        let list_key = [&shop.0[..], &now.to_be_bytes(), id.as_bytes()].concat();
        self.store.shop_invoices.insert(list_key, id.as_bytes()).map_err(store)?;
        self.store.pay_codes.insert(pay_code.as_bytes(), id.as_bytes()).map_err(store)?;
        self.idempotent_record(&shop, "invoice", idempotency, raw, &id)?;
        Ok((invoice, true))
    }

    /// Stores a new invoice. Invoices already stored change only through
    /// `update_invoice`.
    pub(crate) fn save_invoice(&self, invoice: &Invoice) -> sled::Result<()> {
        put_json(&self.store.invoices, invoice.id.as_bytes(), invoice)
    }

    pub(crate) fn load_invoice(&self, id: &str) -> Option<Invoice> {
        get_json(&self.store.invoices, id.as_bytes())
    }

    /// Changes a stored invoice by compare-and-swap: the follower (paid, refunded) and
    /// the expiry of unpaid invoices (by the follower's sweep and by any read) both
    /// write invoices, and neither may undo the other's change.
    pub(crate) fn update_invoice(
        &self,
        id: &str,
        change: impl FnMut(Invoice) -> Option<Invoice>,
    ) -> sled::Result<Option<Invoice>> {
        update_json(&self.store.invoices, id.as_bytes(), change)
    }

    /// Frees a pay code if it still names this invoice.
    pub(crate) fn free_pay_code(&self, code: &str, invoice_id: &str) -> sled::Result<()> {
        let _ = self.store.pay_codes.compare_and_swap(
            code.as_bytes(),
            Some(invoice_id.as_bytes()),
            None::<&[u8]>,
        )?;
        Ok(())
    }

    /// Marks an open invoice past its time expired and frees its pay code; returns the
    /// invoice as it is now (paid, if the follower got there first).
    pub(crate) fn refresh_expiry(&self, invoice: Invoice) -> Invoice {
        let now = self.now_ms();
        if expire(invoice.clone(), now).is_none() {
            return invoice;
        }
        match self.update_invoice(&invoice.id, |current| expire(current, now)) {
            Ok(Some(expired)) => {
                if let Some(code) = &invoice.pay_code {
                    if let Err(e) = self.free_pay_code(code, &invoice.id) {
                        tracing::error!("freeing the pay code of an expired invoice: {e}");
                    }
                }
                expired
            }
            Ok(None) => self.load_invoice(&invoice.id).unwrap_or(invoice),
            Err(e) => {
                tracing::error!("saving an expired invoice: {e}");
                invoice
            }
        }
    }

    /// A shop's invoice; another shop's is "not found", exactly like one that does not exist.
    pub(crate) fn invoice(&self, shop: &AccountId, id: &str) -> Result<Invoice, ApiError> {
        match self.load_invoice(id) {
            Some(invoice) if invoice.shop == *shop => Ok(self.refresh_expiry(invoice)),
            _ => Err(ApiError::not_found("invoice")),
        }
    }

    /// A shop's invoices created in `[from_ms, to_ms]`, newest first.
    pub(crate) fn invoices(
        &self,
        shop: &AccountId,
        status: Option<InvoiceStatus>,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Vec<Invoice> {
        let start = [&shop.0[..], &from_ms.to_be_bytes()].concat();
        let end = [&shop.0[..], &to_ms.saturating_add(1).to_be_bytes()].concat();
        self.store
            .shop_invoices
            .range(start..end)
            .rev()
            .filter_map(|item| item.ok())
            .filter_map(|(_, id)| self.load_invoice(std::str::from_utf8(&id).ok()?))
            .map(|invoice| self.refresh_expiry(invoice))
            .filter(|invoice| status.is_none_or(|s| invoice.status == s))
            .take(limit.min(INVOICES_LIST_MAX))
            .collect()
    }

    /// Expires every open invoice past its time (the follower calls this).
    pub(crate) fn expire_invoices(&self) {
        for (_, id) in self.store.pay_codes.iter().filter_map(|item| item.ok()) {
            if let Some(invoice) = std::str::from_utf8(&id).ok().and_then(|id| self.load_invoice(id)) {
                self.refresh_expiry(invoice);
            }
        }
    }

    /// The public look-up: an open invoice by its pay code.
    pub(crate) fn pay_code(&self, code: &str) -> Result<PayCodeView, ApiError> {
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_pay_code",
                "no open payment request has this pay code",
            )
        };
        if code.len() != crate::secrets::PAY_CODE_DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(unknown());
        }
        let id = self.store.pay_codes.get(code.as_bytes()).ok().flatten().ok_or_else(unknown)?;
        let invoice = self.load_invoice(std::str::from_utf8(&id).unwrap_or_default()).ok_or_else(unknown)?;
        let invoice = self.refresh_expiry(invoice);
        let shop = self.shop(&invoice.shop).ok_or_else(unknown)?;
        if invoice.status != InvoiceStatus::Open || shop.record.suspended_ms.is_some() {
            return Err(unknown());
        }
        Ok(PayCodeView {
            pay_code: code.to_string(),
            invoice_id: invoice.id,
            shop: invoice.shop,
            shop_name: shop.record.name.clone(),
            shop_class: shop.record.class,
            amount: invoice.amount,
            expires_ms: invoice.expires_ms,
            expires_jst: machi_ledger::time::format_jst(invoice.expires_ms),
        })
    }

    /// Refunds part or all of what paid an invoice, back to the resident who paid. With
    /// an Idempotency-Key the refund is made once, however often it is asked for
    /// (`reservations.rs`).
    pub(crate) async fn refund(
        &self,
        shop: &AccountId,
        invoice_id: &str,
        amount: Yen,
        raw: &[u8],
        idempotency: Option<&str>,
    ) -> Result<Invoice, ApiError> {
        self.invoice(shop, invoice_id)?;
        let key = self.shop(shop).ok_or_else(|| ApiError::not_found("shop"))?.key.clone();
        let sign = || async {
            let invoice = self.invoice(shop, invoice_id)?;
            let Some(payment) = &invoice.payment else {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "invoice_not_paid",
                    "only a paid invoice can be refunded",
                ));
            };
            let left = invoice.amount.minus(invoice.refunded);
            if amount.is_zero() || amount > left {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "refund_exceeds_payment",
                    format!("a refund is ¥1 to ¥{} (what the payment took less earlier refunds)", left.0),
                ));
            }
            Ok(self.sign(&key, Action::Refund { payment: payment.tx_id, amount }))
        };
        let op = format!("refund/{invoice_id}");
        let result = self.submit_once(shop, &op, idempotency, raw, sign).await?;
        self.wait_synced(result.height.expect("applied transactions have a height")).await?;
        self.invoice(shop, invoice_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_invoice() -> Invoice {
        Invoice {
            id: "inv_1".into(),
            shop: AccountId([1; 32]),
            amount: Yen(700),
            memo: String::new(),
            status: InvoiceStatus::Open,
            pay_code: Some("12345678".into()),
            qr_payload: Some("machi:pay?code=12345678".into()),
            created_ms: 1_000,
            expires_ms: 61_000,
            payment: None,
            refunded: Yen(0),
            refunds: Vec::new(),
        }
    }

    /// A read expires an invoice while the follower pays it: the read has loaded the
    /// open invoice, and the follower's payment lands before the read writes. The
    /// invoice ends paid.
    #[test]
    fn a_payment_landing_while_a_read_expires_the_invoice_is_kept() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let invoices = db.open_tree("invoices").unwrap();
        put_json(&invoices, "inv_1", &open_invoice()).unwrap();
        let payment = PaymentInfo {
            tx_id: machi_ledger::TxId([2; 32]),
            resident: AccountId([3; 32]),
            height: 9,
            timestamp_ms: 62_000,
        };
        let mut first_look = true;
        let written = update_json(&invoices, "inv_1", |current: Invoice| {
            if std::mem::take(&mut first_look) {
                assert_eq!(current.status, InvoiceStatus::Open);
                update_json(&invoices, "inv_1", |current| pay(current, &payment)).unwrap();
            }
            expire(current, 62_000)
        })
        .unwrap();
        assert_eq!(written, None, "nothing to expire once it is paid");
        let stored: Invoice = get_json(&invoices, "inv_1").unwrap();
        assert_eq!((stored.status, stored.payment), (InvoiceStatus::Paid, Some(payment)));
    }

    #[test]
    fn only_an_open_invoice_past_its_time_expires_and_a_paid_one_is_paid_once() {
        assert_eq!(expire(open_invoice(), 61_000), None, "not yet past its time");
        let expired = expire(open_invoice(), 61_001).unwrap();
        assert_eq!(
            (expired.status, &expired.pay_code, &expired.qr_payload),
            (InvoiceStatus::Expired, &None, &None)
        );
        let payment = PaymentInfo {
            tx_id: machi_ledger::TxId([2; 32]),
            resident: AccountId([3; 32]),
            height: 9,
            timestamp_ms: 62_000,
        };
        let late = pay(expired, &payment).expect("a late payment pays an expired invoice");
        assert_eq!(late.status, InvoiceStatus::Paid);
        assert_eq!(expire(late.clone(), 99_000), None);
        assert_eq!(pay(late, &payment), None);
    }
}
