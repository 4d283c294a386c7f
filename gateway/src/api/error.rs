//! The API's one error type: a status, a stable code, a sentence, and the field at
//! fault. Internal details are logged, never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to an API client as `{"error": {"code", "message", "field"?}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// Names the request field at fault.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 401: missing or wrong API key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid API key: send Authorization: Bearer <api key>",
        )
    }

    /// 404 for a member the organisation does not have.
    pub fn unknown_member(id: &str, field: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_member",
            format!("no member with id {id:?}"),
        )
        .field(field)
    }

    /// 404 for anything else that does not exist.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    /// 403: the request is understood but not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 422: a field is missing or invalid.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message).field(field)
    }

    /// 429: a limit was reached; the client may try again after `seconds`.
    pub fn rate_limited(message: impl Into<String>, seconds: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        e.retry_after = Some(seconds.max(1));
        e
    }

    /// 400: the body is not JSON.
    pub fn bad_json(detail: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the request body is not valid JSON: {detail}"),
        )
    }

    /// 413: the body is over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 500: logged with its cause; the client only learns that it may retry.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error in API");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the request was not carried out and can be retried",
        )
    }

    /// 503: the database cannot take the request for now (full disk, unreachable);
    /// nothing was stored, and the same request may be sent again after `Retry-After`.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "database unavailable in API");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the message store is unavailable; nothing was stored: try again shortly",
        );
        e.retry_after = Some(5);
        e
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<maskrelay_schema::StoreError> for ApiError {
    fn from(e: maskrelay_schema::StoreError) -> Self {
        if e.is_unavailable() {
            Self::unavailable(e)
        } else {
            Self::internal(e)
        }
    }
}

impl From<maskrelay_compose::SubmitError> for ApiError {
    fn from(e: maskrelay_compose::SubmitError) -> Self {
        match e {
            maskrelay_compose::SubmitError::Store(e) => e.into(),
            e if e.is_unavailable() => Self::unavailable(e),
            e => Self::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(field), Some(obj)) = (self.field, error.as_object_mut()) {
            obj.insert("field".into(), field.into());
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
