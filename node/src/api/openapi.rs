//! `GET /openapi.json`: the API's OpenAPI document, made from the handlers' annotations
//! and machi-api's types (`machi-node openapi` prints it).

use axum::routing::{get, MethodRouter};
use axum::Json;
use utoipa::OpenApi;

use super::{Access, AppState};

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/openapi.json", Access::Public, get(openapi))]
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "chain", responses((status = 200, description = "this document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "machi-node",
        description = "The node of machi's town voucher ledger: submit signed transactions, \
        read accounts, issues, blocks, the supply report and events. Amounts are integer yen; ids and keys are \
        64 lowercase hex digits. Errors are {\"error\": {\"code\", \"message\"}}; a transaction that was not \
        applied also carries its result, whose `reason` is a TxCode. Every replica answers: writes \
        on a follower go on to the leader; any read takes `?min_height=H` to wait (up to 10 s) until the \
        replica has applied block H, else 503 `behind`. Who reads what is docs/RULES.md §5: an account, its \
        transactions and events to its own key and to the town, auditors and the town's services \
        (the everything scope, every read logged); blocks, every event and the access log to that scope; the \
        counters' cash also to operators. A reader opens a read session (POST /v1/auth/challenge, sign, \
        POST /v1/auth/session) and sends `Authorization: Bearer <token>` (security scheme `read_session`); \
        a hidden object is answered as a missing one."
    ),
    paths(
        super::access::challenge,
        super::access::session,
        super::access::access_log,
        super::accounts::shop,
        super::transactions::submit,
        super::transactions::status,
        super::proof::proof,
        super::accounts::account,
        super::issues::list,
        super::issues::one,
        super::issues::lottery,
        super::issues::lottery_entry,
        super::chain::block,
        super::chain::head,
        super::chain::supply,
        super::verifiable::headers,
        super::verifiable::attestation,
        super::cash::days,
        super::cash::day,
        super::chain::health,
        super::cluster::cluster,
        super::chain::metrics,
        super::events::events,
        super::dashboard::page,
        super::dashboard::live,
        openapi
    ),
    components(schemas(machi_api::TxCode, machi_api::ErrorDetail, machi_api::AccessLogEntry)),
    modifiers(&ReadSessionScheme)
)]
pub(crate) struct ApiDoc;

/// The bearer token of a read session (`POST /v1/auth/session`), named `read_session` in
/// the routes that take one.
struct ReadSessionScheme;

impl utoipa::Modify for ReadSessionScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.description = Some(
            "a read session's token: POST /v1/auth/challenge, sign it (docs/FORMAT.md, \"Read \
             authentication\"), POST /v1/auth/session; valid 10 minutes on the replica that gave it"
                .into(),
        );
        components.add_security_scheme("read_session", SecurityScheme::Http(scheme));
    }
}
