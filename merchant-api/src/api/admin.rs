//! The town's side: shops, their tokens, and settlements.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use machi_host::ApiError;

use super::{parse_account, AppState, Auth, RawJson};
use crate::model::{
    BankAccountInput, CreateTokenRequest, RegisterShopRequest, Settlement, SettlementRequest, ShopView,
    SuspendRequest, TokenCreated, TokenRecord,
};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/shops", post(register_shop).get(list_shops))
        .route("/v1/admin/shops/{shop}/bank", put(change_bank))
        .route("/v1/admin/shops/{shop}/suspension", put(suspend))
        .route("/v1/admin/shops/{shop}/tokens", post(create_token).get(list_tokens))
        .route("/v1/admin/tokens/{id}", delete(revoke_token))
        .route("/v1/admin/settlements", post(settle).get(list_settlements))
        .route("/v1/admin/settlements/{id}", get(settlement))
        .route("/v1/admin/settlements/{id}/zengin", get(zengin))
}

/// Register a shop: checks its bank account against the bank code list, creates its key
/// (kept sealed) and registers it on chain.
#[utoipa::path(post, path = "/v1/admin/shops", tag = "admin", security(("admin" = [])),
    request_body = RegisterShopRequest,
    responses((status = 201, body = ShopView), (status = 400, description = "bad_bank_account, bad_name, bad_kana_name"),
        (status = 401), (status = 403), (status = 503, description = "node_unavailable")))]
pub(super) async fn register_shop(
    State(m): State<AppState>,
    auth: Auth,
    body: RawJson<RegisterShopRequest>,
) -> Result<(StatusCode, Json<ShopView>), ApiError> {
    auth.admin()?;
    Ok((StatusCode::CREATED, Json(m.register_shop(body.value).await?)))
}

#[utoipa::path(get, path = "/v1/admin/shops", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = Vec<ShopView>), (status = 401), (status = 403)))]
pub(super) async fn list_shops(
    State(m): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<ShopView>>, ApiError> {
    auth.admin()?;
    Ok(Json(m.shop_views()))
}

/// Change a shop's bank account (checked against the bank code list, as at registration).
#[utoipa::path(put, path = "/v1/admin/shops/{shop}/bank", tag = "admin", security(("admin" = [])),
    params(("shop" = String, Path, description = "the shop's account id")),
    request_body = BankAccountInput,
    responses((status = 200, body = ShopView), (status = 400, description = "bad_bank_account"), (status = 404)))]
pub(super) async fn change_bank(
    State(m): State<AppState>,
    auth: Auth,
    Path(shop): Path<String>,
    body: RawJson<BankAccountInput>,
) -> Result<Json<ShopView>, ApiError> {
    auth.admin()?;
    Ok(Json(m.change_bank(&parse_account(&shop)?, &body.value).await?))
}

/// Suspend a shop here, or lift it: while suspended its tokens and pay codes are refused
/// (403 `shop_suspended`) and no invoice is made. Freezing its account on chain is the
/// town's own act (`machi-wallet town freeze`).
#[utoipa::path(put, path = "/v1/admin/shops/{shop}/suspension", tag = "admin", security(("admin" = [])),
    params(("shop" = String, Path, description = "the shop's account id")),
    request_body = SuspendRequest,
    responses((status = 200, body = ShopView), (status = 404)))]
pub(super) async fn suspend(
    State(m): State<AppState>,
    auth: Auth,
    Path(shop): Path<String>,
    body: RawJson<SuspendRequest>,
) -> Result<Json<ShopView>, ApiError> {
    auth.admin()?;
    Ok(Json(m.set_suspended(&parse_account(&shop)?, body.value.suspended).await?))
}

/// Issue an API token for a shop. The token is in this answer only.
#[utoipa::path(post, path = "/v1/admin/shops/{shop}/tokens", tag = "admin", security(("admin" = [])),
    params(("shop" = String, Path, description = "the shop's account id")),
    request_body = CreateTokenRequest,
    responses((status = 201, body = TokenCreated), (status = 404), (status = 401), (status = 403)))]
pub(super) async fn create_token(
    State(m): State<AppState>,
    auth: Auth,
    Path(shop): Path<String>,
    body: RawJson<CreateTokenRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    auth.admin()?;
    let shop = parse_account(&shop)?;
    Ok((StatusCode::CREATED, Json(m.create_token(shop, body.value.scope, body.value.label).await?)))
}

#[utoipa::path(get, path = "/v1/admin/shops/{shop}/tokens", tag = "admin", security(("admin" = [])),
    params(("shop" = String, Path, description = "the shop's account id")),
    responses((status = 200, body = Vec<TokenRecord>), (status = 401), (status = 403)))]
pub(super) async fn list_tokens(
    State(m): State<AppState>,
    auth: Auth,
    Path(shop): Path<String>,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    auth.admin()?;
    Ok(Json(m.shop_tokens(&parse_account(&shop)?)))
}

/// Revoke a token: it is refused from now on.
#[utoipa::path(delete, path = "/v1/admin/tokens/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path, description = "the token's id (tok_…)")),
    responses((status = 200, body = TokenRecord), (status = 404), (status = 401), (status = 403)))]
pub(super) async fn revoke_token(
    State(m): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    auth.admin()?;
    Ok(Json(m.revoke_token(&id).await?))
}

/// Settle all pending cash-outs: one Zengin 総合振込 file, recorded on chain with its
/// SHA-256. A settlement not yet on chain (the node was down) is sent again first, with
/// the same file.
#[utoipa::path(post, path = "/v1/admin/settlements", tag = "admin", security(("admin" = [])),
    request_body = SettlementRequest,
    responses((status = 201, body = Settlement), (status = 400, description = "bad_transfer_date"),
        (status = 409, description = "nothing_to_settle"), (status = 503, description = "town_bank_not_configured, node_unavailable")))]
pub(super) async fn settle(
    State(m): State<AppState>,
    auth: Auth,
    body: RawJson<SettlementRequest>,
) -> Result<(StatusCode, Json<Settlement>), ApiError> {
    auth.admin()?;
    Ok((StatusCode::CREATED, Json(m.settle(&body.value.transfer_date).await?)))
}

#[utoipa::path(get, path = "/v1/admin/settlements", tag = "admin", security(("admin" = [])),
    responses((status = 200, body = Vec<Settlement>), (status = 401), (status = 403)))]
pub(super) async fn list_settlements(
    State(m): State<AppState>,
    auth: Auth,
) -> Result<Json<Vec<Settlement>>, ApiError> {
    auth.admin()?;
    Ok(Json(m.settlements().await))
}

#[utoipa::path(get, path = "/v1/admin/settlements/{id}", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Settlement), (status = 404)))]
pub(super) async fn settlement(
    State(m): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Settlement>, ApiError> {
    auth.admin()?;
    Ok(Json(m.settlement(&id).await?))
}

/// The settlement's Zengin file, byte for byte as recorded (Shift_JIS, CRLF); only once
/// the settlement is on chain.
#[utoipa::path(get, path = "/v1/admin/settlements/{id}/zengin", tag = "admin", security(("admin" = [])),
    params(("id" = String, Path)),
    responses((status = 200, description = "the file", content_type = "text/plain; charset=Shift_JIS"), (status = 404),
        (status = 409, description = "settlement_not_recorded, settlement_rejected")))]
pub(super) async fn zengin(
    State(m): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    auth.admin()?;
    let bytes = m.zengin_file(&id).await?;
    let disposition = format!("attachment; filename=\"{id}.txt\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=Shift_JIS".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    ))
}
