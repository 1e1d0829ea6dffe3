//! Shops, on the town's side: registration (bank account checked against the bank list,
//! a key made and sealed, the file written durably, then the registration on chain with
//! the registrar key), re-registration of shops that never reached the chain, listing.

use std::sync::Arc;

use axum::http::StatusCode;
use machi_host::ApiError;
use machi_ledger::{AccountId, Action};

use crate::bank::half_width_kana;
use crate::merchant::{Merchant, NAME_CHARS_MAX};
use crate::model::{BankAccount, BankAccountInput, RegisterShopRequest, Shop, ShopRecord, ShopView};
use crate::store::write_durable_async;

/// 口座名義 in a Zengin data record is 30 half-width characters.
const HOLDER_CHARS_MAX: usize = 30;

impl Merchant {
    pub(crate) fn check_bank(&self, input: &BankAccountInput) -> Result<BankAccount, ApiError> {
        let bad = |message: String| ApiError::bad_request("bad_bank_account", message);
        let bank = self.banks.bank(&input.bank_code).map_err(|e| bad(e.to_string()))?;
        let branch =
            self.banks.branch(&input.bank_code, &input.branch_code).map_err(|e| bad(e.to_string()))?;
        if input.account_number.len() != 7 || !input.account_number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!("account number {:?} must be 7 digits", input.account_number)));
        }
        let holder = half_width_kana(input.holder_kana.trim()).map_err(|e| bad(e.to_string()))?;
        if holder.is_empty() || holder.chars().count() > HOLDER_CHARS_MAX {
            return Err(bad(format!(
                "the holder's name must be 1 to {HOLDER_CHARS_MAX} half-width characters"
            )));
        }
        Ok(BankAccount {
            bank_code: bank.code.clone(),
            bank_name: bank.name.clone(),
            bank_kana: bank.kana.clone(),
            branch_code: branch.code.clone(),
            branch_name: branch.name.clone(),
            branch_kana: branch.kana.clone(),
            account_type: input.account_type,
            account_number: input.account_number.clone(),
            holder_kana: holder,
        })
    }

    /// Registers a shop: checks its bank account, makes and seals its key, writes it to
    /// disk with fsync, and registers it on chain.
    pub(crate) async fn register_shop(&self, request: RegisterShopRequest) -> Result<ShopView, ApiError> {
        let name = request.name.trim().to_string();
        if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
            return Err(ApiError::bad_request(
                "bad_name",
                format!("a name is 1 to {NAME_CHARS_MAX} characters"),
            ));
        }
        let kana_name = half_width_kana(request.kana_name.trim())
            .map_err(|e| ApiError::bad_request("bad_kana_name", e.to_string()))?;
        let bank = self.check_bank(&request.bank)?;
        let key = machi_host::generate_key();
        let account = AccountId::of(&key);
        let (key_nonce, key_sealed) = self.sealer.seal(&account, &key);
        let register_tx = self.sign_as_registrar(Action::RegisterShop {
            shop: account,
            name: name.clone(),
            class: request.class,
        });
        let record = ShopRecord {
            account,
            name,
            kana_name,
            class: request.class,
            bank,
            created_ms: self.now_ms(),
            key_nonce,
            key_sealed,
            register_tx: register_tx.clone(),
            suspended_ms: None,
        };
        let path = self.store.shops_dir().join(format!("{account}.json"));
        let bytes = serde_json::to_vec_pretty(&record).expect("records encode");
        write_durable_async(path.clone(), bytes)
            .await
            .map_err(|e| ApiError::internal("writing a shop file", e))?;
        if let Err(error) = self.submit_applied(&register_tx).await {
            // Not on chain: forget the shop unless the node was only unreachable, in
            // which case the start-up check registers it later.
            if error.status != StatusCode::SERVICE_UNAVAILABLE {
                let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
            }
            return Err(error);
        }
        let view = ShopView::new(&record);
        self.shops.write().expect("shops lock").insert(account, Arc::new(Shop { record, key }));
        Ok(view)
    }

    /// Shops written to disk whose registration never reached the chain (the node was
    /// down) are registered now.
    pub(crate) async fn reconcile_shops(&self) {
        let shops: Vec<Arc<Shop>> = self.shops.read().expect("shops lock").values().cloned().collect();
        for shop in shops {
            if self.node.account(&shop.record.account).await.is_ok() {
                continue;
            }
            let r = &shop.record;
            let tx = self.sign_as_registrar(Action::RegisterShop {
                shop: r.account,
                name: r.name.clone(),
                class: r.class,
            });
            match self.submit_applied(&tx).await {
                Ok(_) => tracing::info!("registered shop {} on chain", r.name),
                Err(e) => tracing::warn!("shop {} is not on chain yet: {}", r.name, e.message),
            }
        }
    }

    /// Writes a changed shop record durably, then serves it.
    async fn save_shop(&self, record: ShopRecord) -> Result<ShopView, ApiError> {
        let shop = self.shop(&record.account).ok_or_else(|| ApiError::not_found("shop"))?;
        let path = self.store.shops_dir().join(format!("{}.json", record.account));
        let bytes = serde_json::to_vec_pretty(&record).expect("records encode");
        write_durable_async(path, bytes).await.map_err(|e| ApiError::internal("writing a shop file", e))?;
        let view = ShopView::new(&record);
        let key = shop.key.clone();
        self.shops.write().expect("shops lock").insert(record.account, Arc::new(Shop { record, key }));
        Ok(view)
    }

    /// Changes a shop's bank account (checked as at registration); later settlements pay
    /// into the new one.
    pub(crate) async fn change_bank(
        &self,
        shop: &AccountId,
        input: &BankAccountInput,
    ) -> Result<ShopView, ApiError> {
        let mut record = self.shop(shop).ok_or_else(|| ApiError::not_found("shop"))?.record.clone();
        record.bank = self.check_bank(input)?;
        self.save_shop(record).await
    }

    /// Suspends a shop here (or lifts it): from this moment its tokens, sessions and pay
    /// codes are refused and no invoice is made for it.
    pub(crate) async fn set_suspended(
        &self,
        shop: &AccountId,
        suspended: bool,
    ) -> Result<ShopView, ApiError> {
        let mut record = self.shop(shop).ok_or_else(|| ApiError::not_found("shop"))?.record.clone();
        if record.suspended_ms.is_some() == suspended {
            return Ok(ShopView::new(&record));
        }
        record.suspended_ms = suspended.then(|| self.now_ms());
        self.save_shop(record).await
    }

    /// Refuses a suspended shop.
    pub(crate) fn check_not_suspended(&self, shop: &AccountId) -> Result<(), ApiError> {
        match self.shop(shop) {
            Some(s) if s.record.suspended_ms.is_some() => Err(suspended()),
            _ => Ok(()),
        }
    }

    pub(crate) fn shop_views(&self) -> Vec<ShopView> {
        let mut views: Vec<ShopView> =
            self.shops.read().expect("shops lock").values().map(|s| ShopView::new(&s.record)).collect();
        views.sort_by_key(|v| v.created_ms);
        views
    }
}

pub(crate) fn suspended() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "shop_suspended", "the town office has suspended this shop")
}
