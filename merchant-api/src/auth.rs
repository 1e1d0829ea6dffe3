//! Who is calling: a bearer token is the town's (admin) or a shop's, with its scope.

use axum::http::StatusCode;
use machi_host::ApiError;
use machi_ledger::AccountId;

use crate::merchant::Merchant;
use crate::model::Scope;
use crate::secrets::token_hash;

/// Who is calling.
#[derive(Clone, Debug)]
pub(crate) enum Caller {
    Admin,
    Shop { shop: AccountId, scope: Scope },
}

impl Merchant {
    /// The caller behind a bearer token.
    pub(crate) fn authenticate(&self, token: &str) -> Result<Caller, ApiError> {
        let hash = token_hash(token);
        if token.starts_with("mta_") {
            if self.admin_tokens.contains(&hash) {
                return Ok(Caller::Admin);
            }
        } else if let Some(record) = self.tokens.read().expect("tokens lock").get(&hash) {
            if record.revoked_ms.is_some() {
                return Err(unauthorized("token_revoked", "this token was revoked"));
            }
            self.check_not_suspended(&record.shop)?;
            return Ok(Caller::Shop { shop: record.shop, scope: record.scope });
        }
        Err(unauthorized("bad_token", "the bearer token is not known"))
    }
}

pub(crate) fn unauthorized(code: &str, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}
