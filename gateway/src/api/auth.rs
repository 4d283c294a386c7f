//! `Authorization: Bearer <api key>` selects the organisation.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use maskrelay_schema::crypto::sha256;
use maskrelay_schema::orgs::Org;

use super::error::ApiError;
use super::state::AppState;

/// The organisation whose API key authorised the request.
pub struct AuthOrg(pub Org);

impl FromRequestParts<AppState> for AuthOrg {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match state.store.org_by_api_key(bearer(parts)?).await? {
            Some(org) => Ok(AuthOrg(org)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// The organisation whose API key authorised the request, with the key's
/// fingerprint (the first 16 hex digits of its SHA-256): what records of who
/// sent something keep, never the key.
pub struct AuthKey {
    /// The organisation.
    pub org: Org,
    /// The key's fingerprint.
    pub fingerprint: String,
}

impl FromRequestParts<AppState> for AuthKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts)?;
        let fingerprint = hex::encode(&sha256(key.as_bytes())[..8]);
        match state.store.org_by_api_key(key).await? {
            Some(org) => Ok(AuthKey { org, fingerprint }),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// The API key of `Authorization: Bearer <key>`.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(ApiError::unauthorized)
}
