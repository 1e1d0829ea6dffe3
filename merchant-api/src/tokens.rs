//! Shops' API tokens (only their SHA-256 hashes are kept, one durable file each) and the
//! town's admin tokens.

use std::path::Path;

use anyhow::Context;
use machi_host::ApiError;
use machi_ledger::AccountId;

use crate::merchant::{Merchant, NAME_CHARS_MAX};
use crate::model::{Scope, TokenCreated, TokenRecord};
use crate::secrets::{new_token, random_id, token_hash};
use crate::store::write_durable_async;

impl Merchant {
    pub(crate) async fn create_token(
        &self,
        shop: AccountId,
        scope: Scope,
        label: String,
    ) -> Result<TokenCreated, ApiError> {
        if self.shop(&shop).is_none() {
            return Err(ApiError::not_found("shop"));
        }
        if label.chars().count() > NAME_CHARS_MAX {
            return Err(ApiError::bad_request(
                "bad_label",
                format!("a label is at most {NAME_CHARS_MAX} characters"),
            ));
        }
        let token = new_token("mst");
        let record = TokenRecord {
            id: random_id("tok"),
            hash: token_hash(&token),
            shop,
            scope,
            label: label.clone(),
            created_ms: self.now_ms(),
            revoked_ms: None,
        };
        self.write_token(&record).await?;
        Ok(TokenCreated { id: record.id, token, shop, scope, label })
    }

    pub(crate) async fn write_token(&self, record: &TokenRecord) -> Result<(), ApiError> {
        let path = self.store.tokens_dir().join(format!("{}.json", record.id));
        write_durable_async(path, serde_json::to_vec_pretty(record).expect("records encode"))
            .await
            .map_err(|e| ApiError::internal("writing a token file", e))?;
        self.tokens.write().expect("tokens lock").insert(record.hash, record.clone());
        Ok(())
    }

    pub(crate) async fn revoke_token(&self, id: &str) -> Result<TokenRecord, ApiError> {
        let mut record = self
            .tokens
            .read()
            .expect("tokens lock")
            .values()
            .find(|t| t.id == id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("token"))?;
        if record.revoked_ms.is_none() {
            record.revoked_ms = Some(self.now_ms());
            self.write_token(&record).await?;
        }
        Ok(record)
    }

    pub(crate) fn shop_tokens(&self, shop: &AccountId) -> Vec<TokenRecord> {
        let mut list: Vec<TokenRecord> =
            self.tokens.read().expect("tokens lock").values().filter(|t| t.shop == *shop).cloned().collect();
        list.sort_by_key(|t| t.created_ms);
        list
    }
}

/// Creates a new admin token in `data_dir` and returns it (only its hash is kept).
pub fn new_admin_token(data_dir: &Path) -> anyhow::Result<String> {
    let token = new_token("mta");
    crate::store::add_admin_token_hash(data_dir, &token_hash(&token).to_hex())
        .with_context(|| format!("writing {}", crate::store::admin_tokens_path(data_dir).display()))?;
    Ok(token)
}
