//! `DELETE /v1/members/{id}/suppression`: the directory says a member's address
//! works again (they fixed their mailbox), so mail to it resumes.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use maskrelay_schema::ExternalId;

use super::auth::AuthOrg;
use super::error::ApiError;
use super::members::live_member;
use super::state::AppState;

/// Lifts the suppression of the member's current address: 204, or 404 if there was
/// none.
pub async fn delete(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let member = live_member(&state, &org.id, &ExternalId::from(id), "id").await?;
    if state.store.clear_suppression(&member.id).await? {
        tracing::info!(org_id = %org.id, "suppression lifted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("suppression"))
    }
}
