//! `Idempotency-Key` on the calls that send (`POST /v1/messages`,
//! `POST /v1/broadcasts`): a retried call gets the first call's answer instead of
//! sending twice. The answer is recorded in the same transaction as what it
//! acknowledges.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use maskrelay_schema::OrgId;
use maskrelay_schema::crypto::sha256;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// A call that may carry an `Idempotency-Key`: the key, and the fingerprint of the
/// request it is bound to.
pub(super) struct Idempotent<'a> {
    /// The key, if the call sent one.
    pub(super) key: Option<&'a str>,
    /// SHA-256 of the request body.
    pub(super) request_hash: Vec<u8>,
}

/// An answer to send as it is.
pub(super) type Answer = (StatusCode, Json<Value>);

impl<'a> Idempotent<'a> {
    /// Reads the call's key; the answer recorded for it if the call was made before.
    ///
    /// # Errors
    /// 422 if the key is malformed or was used for a different request.
    pub(super) async fn check(
        state: &AppState,
        org_id: &OrgId,
        headers: &'a HeaderMap,
        body: &Result<Bytes, BytesRejection>,
    ) -> Result<(Self, Option<Answer>), ApiError> {
        let key = idempotency_key(headers)?;
        let request_hash = sha256(body.as_ref().map(|b| b.as_ref()).unwrap_or_default());
        let replayed = match key {
            Some(key) => replay(state, org_id, key, &request_hash).await?,
            None => None,
        };
        Ok((Self { key, request_hash }, replayed))
    }

    /// The answer a concurrent call with the same key recorded, once this call lost
    /// the race to record its own.
    ///
    /// # Errors
    /// 500 if there is none after all.
    pub(super) async fn lost_race(
        &self,
        state: &AppState,
        org_id: &OrgId,
    ) -> Result<Answer, ApiError> {
        let key = self.key.unwrap_or_default();
        replay(state, org_id, key, &self.request_hash)
            .await?
            .ok_or_else(|| ApiError::internal("idempotency record vanished"))
    }
}

/// The request's idempotency key, if it sent one.
///
/// # Errors
/// 422 if the header is not 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= 255 => Ok(Some(key)),
        _ => Err(ApiError::invalid(
            IDEMPOTENCY_HEADER,
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        )),
    }
}

/// The answer recorded for `key`, to send again (`202`), if the key was used.
///
/// # Errors
/// 422 if the key was used for a different request.
async fn replay(
    state: &AppState,
    org_id: &OrgId,
    key: &str,
    request_hash: &[u8],
) -> Result<Option<Answer>, ApiError> {
    let Some(recorded) = state.store.idempotent_response(org_id, key).await? else {
        return Ok(None);
    };
    if recorded.request_hash != request_hash {
        return Err(ApiError::invalid(
            IDEMPOTENCY_HEADER,
            "this Idempotency-Key was already used with a different request",
        ));
    }
    let body: Value = serde_json::from_str(&recorded.response).map_err(ApiError::internal)?;
    Ok(Some((StatusCode::ACCEPTED, Json(body))))
}
