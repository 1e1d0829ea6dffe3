//! How machi's services answer an error: `{"error": {"code": "...", "message": "..."}}`
//! with a stable code (machi-api's `ErrorBody`), and a JSON body extractor whose every
//! rejection is such an error.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use machi_api::{ErrorBody, ErrorDetail};
use serde::de::DeserializeOwned;

/// An error as clients see it: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, code: code.to_string(), message: message.into() }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no {what} with that id"))
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 413 `body_too_large`.
    pub fn body_too_large() -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than this service accepts",
        )
    }

    /// A server-side failure: logged in full, shown to the client only as a code.
    pub fn internal(context: &str, error: impl std::fmt::Display) -> ApiError {
        tracing::error!("{context}: {error}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service could not answer; try again",
        )
    }

    fn body(&self) -> ErrorBody {
        ErrorBody { error: ErrorDetail { code: self.code.clone(), message: self.message.clone() } }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

/// A JSON body whose every failure is an `ApiError`: 413 when too large, 400 when not
/// JSON or not the expected shape.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<JsonBody<T>, ApiError> {
        let bytes = Bytes::from_request(request, state).await.map_err(JsonBody::<T>::rejection)?;
        Ok(JsonBody(JsonBody::parse(&bytes)?))
    }
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// A body that could not be read: 413 `body_too_large` past the limit, else 400.
    pub fn rejection(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::body_too_large()
        } else {
            ApiError::bad_request("bad_body", rejection.body_text())
        }
    }

    /// Decodes a JSON body with the same errors as the extractor: 400 `malformed_json`
    /// when it is not JSON, 400 `invalid_request` when it lacks or mistypes fields.
    pub fn parse(bytes: &[u8]) -> Result<T, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::bad_request(
                "invalid_request",
                format!("request does not have the expected fields: {e}"),
            ),
            _ => ApiError::bad_request("malformed_json", format!("request body is not valid JSON: {e}")),
        })
    }
}
