//! Who may call each route (docs/RULES.md §5): every route declares its `Access` in
//! `super::routes`, and one middleware (`enforce`) resolves the reader from the
//! `Authorization: Bearer` token and the chain's state, refuses role routes to anyone
//! without the role, and writes every read under the everything scope to the access log.
//! Object routes check the reader against the object in their handlers (`Reader`).
//!
//! Also the read session's two steps, `POST /v1/auth/challenge` and
//! `POST /v1/auth/session`, and `GET /v1/access-log`.

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use machi_api::{
    AccessLogEntry, AccessLogPage, ErrorBody, ReadChallenge, ReadSession, ReadSessionRequest, ReaderRole,
    ACCESS_LOG_ENTRIES_MAX,
};
use machi_ledger::read_auth::{PURPOSE_BYTES_MAX, PURPOSE_CHARS_MIN};
use machi_ledger::AccountId;

use super::{parse_hex32, query_param, ApiError, AppState, JsonBody};
use crate::access::{ChallengeRefused, KeyReader, Reader, SessionRefused};

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Access {
    /// Anyone, without a credential; a bearer token is not looked at.
    Public,
    /// Anyone; the handler decides what the reader sees (an account's own data, the
    /// lottery's lists) from the `Reader` the middleware resolved.
    Reader,
    /// Only readers of these roles: anonymous 401 `read_auth_required`, others 403
    /// `not_allowed`.
    Roles(&'static [ReaderRole]),
}

/// The everything scope: the town, auditors, the town's services.
pub(super) const EVERYTHING: &[ReaderRole] = &[ReaderRole::Town, ReaderRole::Auditor, ReaderRole::Service];
/// The counters' cash: operators and the everything scope.
pub(super) const CASH: &[ReaderRole] =
    &[ReaderRole::Operator, ReaderRole::Town, ReaderRole::Auditor, ReaderRole::Service];
/// The access log: the town and auditors (not the services whose reads it records).
pub(super) const LOG_READERS: &[ReaderRole] = &[ReaderRole::Town, ReaderRole::Auditor];

/// Most entries `GET /v1/access-log` gives without `limit`.
const ACCESS_LOG_ENTRIES_DEFAULT: usize = 100;

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![
        ("/v1/auth/challenge", Access::Public, post(challenge)),
        ("/v1/auth/session", Access::Public, post(session)),
        ("/v1/access-log", Access::Roles(LOG_READERS), get(access_log)),
    ]
}

/// The middleware of every route that is not public: resolves the reader, refuses
/// what its `Access` does not allow, and logs reads under the everything scope (after
/// the answer is made; an answer that cannot be logged is not given).
pub(super) async fn enforce(
    State((state, access)): State<(AppState, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let reader = match resolve(&state, request.headers()).await {
        Ok(reader) => reader,
        Err(e) => return e.into_response(),
    };
    let logged = match &reader {
        Reader::Key(key) if reader.everything() => Some(key.clone()),
        _ => None,
    };
    let method = request.method().to_string();
    let path =
        request.uri().path_and_query().map_or_else(|| request.uri().path().to_string(), |p| p.to_string());
    let refusal = match access {
        Access::Roles(roles) => refuse_unless(&reader, roles).err(),
        Access::Public | Access::Reader => None,
    };
    let response = match refusal {
        Some(refusal) => refusal.into_response(),
        None => {
            request.extensions_mut().insert(reader);
            next.run(request).await
        }
    };
    match logged {
        Some(key) => match record(&state, key, method, path, response.status()).await {
            Ok(()) => response,
            Err(e) => ApiError::internal("writing the access log", e).into_response(),
        },
        None => response,
    }
}

/// Refuses a reader not of `roles`: anonymous 401 `read_auth_required`, any other 403
/// `not_allowed`.
pub(super) fn refuse_unless(reader: &Reader, roles: &[ReaderRole]) -> Result<(), ApiError> {
    match reader.role() {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "read_auth_required",
            "this is read only with a read session (POST /v1/auth/challenge, then /v1/auth/session)",
        )),
        Some(role) if !roles.contains(&role) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "not_allowed",
            format!("a reader of role {} may not read this", role.name()),
        )),
        Some(_) => Ok(()),
    }
}

async fn record(
    state: &AppState,
    key: KeyReader,
    method: String,
    path: String,
    status: StatusCode,
) -> std::io::Result<()> {
    let readers = &state.readers;
    let entry = AccessLogEntry {
        seq: 0,
        time_ms: readers.now_ms(),
        account: key.account,
        role: key.role,
        name: key.name,
        purpose: key.purpose,
        method,
        path,
        status: status.as_u16(),
    };
    readers.log.record(entry).await.map(|_| ())
}

/// The reader of a request: anonymous without `Authorization`, else the session of its
/// bearer token as the chain's state has the account now.
async fn resolve(state: &AppState, headers: &axum::http::HeaderMap) -> Result<Reader, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Reader::Anonymous);
    };
    // The scheme's name is case-insensitive (RFC 9110, section 11.1).
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let Some(token) = token else {
        return Err(session_refused(SessionRefused::Invalid));
    };
    let chain = state.shared.chain.read().await;
    state.readers.reader(token, &chain.state).map_err(session_refused)
}

fn session_refused(why: SessionRefused) -> ApiError {
    match why {
        SessionRefused::Invalid => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "read_session_invalid",
            "not a read session of this node; open one (POST /v1/auth/challenge, then /v1/auth/session)",
        ),
        SessionRefused::Expired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "read_session_expired",
            "the read session expired; open a new one",
        ),
        SessionRefused::KeyReplaced => ApiError::new(
            StatusCode::FORBIDDEN,
            "key_replaced",
            "this key was replaced by a new card's; it reads nothing more",
        ),
        SessionRefused::Frozen => {
            ApiError::new(StatusCode::FORBIDDEN, "account_frozen", "this account is frozen; it reads nothing")
        }
    }
}

/// A fresh challenge to sign (docs/FORMAT.md, "Read authentication"): 32 random bytes,
/// answered once within 60 s, on this replica only.
#[utoipa::path(post, path = "/v1/auth/challenge", tag = "auth",
    responses((status = 200, body = ReadChallenge),
        (status = 503, body = ErrorBody, description = "busy: too many challenges outstanding")))]
async fn challenge(State(state): State<AppState>) -> Result<Json<ReadChallenge>, ApiError> {
    let (value, expires_ms) = state.readers.challenge().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many read challenges outstanding; try again",
        )
    })?;
    Ok(Json(ReadChallenge { challenge: hex::encode(value), expires_ms }))
}

/// Opens a read session: the account's signature of the challenge (docs/FORMAT.md, "Read
/// authentication") gives a token for `Authorization: Bearer` on this replica for 10
/// minutes. A challenge is used up by any answer that reaches the signature check.
#[utoipa::path(post, path = "/v1/auth/session", tag = "auth", request_body = ReadSessionRequest,
    responses((status = 200, body = ReadSession),
        (status = 400, body = ErrorBody, description = "malformed_json, invalid_request, bad_id, \
            purpose_too_long (over 200 bytes), purpose_required (the everything scope states a purpose \
            of 4 characters or more)"),
        (status = 401, body = ErrorBody, description = "challenge_unknown, challenge_used, challenge_expired, \
            bad_signature"),
        (status = 403, body = ErrorBody, description = "not_registered (no account holds the key), \
            key_replaced, account_frozen"),
        (status = 503, body = ErrorBody, description = "busy: too many sessions open")))]
async fn session(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<ReadSessionRequest>,
) -> Result<Json<ReadSession>, ApiError> {
    let account: AccountId = parse_hex32(&request.account, "account")?;
    let mut challenge = [0u8; 32];
    hex::decode_to_slice(&request.challenge, &mut challenge)
        .map_err(|_| ApiError::bad_request("bad_id", "challenge must be 64 lowercase hex digits"))?;
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&request.signature, &mut signature)
        .map_err(|_| ApiError::bad_request("bad_id", "signature must be 128 lowercase hex digits"))?;
    if request.purpose.len() > PURPOSE_BYTES_MAX {
        return Err(ApiError::bad_request(
            "purpose_too_long",
            format!("a purpose is at most {PURPOSE_BYTES_MAX} bytes"),
        ));
    }
    let readers = &state.readers;
    readers.use_challenge(&challenge).map_err(challenge_refused)?;
    machi_ledger::read_auth::verify(
        &state.shared.chain_id,
        &challenge,
        &account,
        &request.purpose,
        &signature,
    )
    .map_err(|_| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            "the signature is not this account's on the read message of this challenge",
        )
    })?;
    let role = {
        let chain = state.shared.chain.read().await;
        let Some(holder) = chain.state.accounts.get(&account) else {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_registered",
                "no account on chain holds this key",
            ));
        };
        if holder.replaced_by.is_some() {
            return Err(session_refused(SessionRefused::KeyReplaced));
        }
        if holder.frozen {
            return Err(session_refused(SessionRefused::Frozen));
        }
        ReaderRole::of(holder.role)
    };
    let scope = role.scope();
    if scope == machi_api::ReadScope::Everything && request.purpose.trim().chars().count() < PURPOSE_CHARS_MIN
    {
        return Err(ApiError::bad_request(
            "purpose_required",
            format!(
                "the {} reads everything and states why: a purpose of {PURPOSE_CHARS_MIN} characters or more",
                role.name()
            ),
        ));
    }
    let (token, expires_ms) = readers.open_session(account, request.purpose).ok_or_else(|| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many read sessions open; try again")
    })?;
    Ok(Json(ReadSession { token: hex::encode(token), account, role, scope, expires_ms }))
}

fn challenge_refused(why: ChallengeRefused) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, why.code(), why.message())
}

/// The access log of this replica: every read served under the everything scope (the
/// town, auditors, the town's services), with who, the purpose they stated, what and
/// the answer's status; oldest first. Reading it is logged too, so a reader that pages
/// through it stops at a page shorter than `limit` (there is always the entry of its own
/// last read after it).
#[utoipa::path(get, path = "/v1/access-log", tag = "auth",
    params(("after" = Option<u64>, Query, description = "entries after this sequence number (default 0)"),
        ("limit" = Option<usize>, Query, description = "at most this many entries (default 100, at most 1,000)")),
    security(("read_session" = [])),
    responses((status = 200, body = AccessLogPage), (status = 400, body = ErrorBody, description = "bad_query"),
        (status = 401, body = ErrorBody, description = "read_auth_required, read_session_invalid, read_session_expired"),
        (status = 403, body = ErrorBody, description = "not_allowed: only the town and auditors")))]
async fn access_log(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<AccessLogPage>, ApiError> {
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        query_param(&query, name)
            .map(|v| {
                v.parse().map_err(|_| ApiError::bad_request("bad_query", format!("{name} is a whole number")))
            })
            .transpose()
    };
    let after = number("after")?.unwrap_or(0);
    let limit =
        number("limit")?.map_or(ACCESS_LOG_ENTRIES_DEFAULT, |n| n as usize).min(ACCESS_LOG_ENTRIES_MAX);
    let log = state.readers.clone();
    let entries = tokio::task::spawn_blocking(move || log.log.after(after, limit))
        .await
        .map_err(|e| ApiError::internal("reading the access log", e))?
        .map_err(|e| ApiError::internal("reading the access log", e))?;
    Ok(Json(AccessLogPage { entries }))
}
