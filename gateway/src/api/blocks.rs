//! `PUT`, `DELETE /v1/members/{id}/blocks/{other}` and `GET /v1/members/{id}/blocks`:
//! a member blocks another, as the directory asks on the member's behalf.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use maskrelay_schema::members::Member;
use maskrelay_schema::{Direction, ExternalId, OrgId};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::error::ApiError;
use super::members::live_member;
use super::state::AppState;

/// Blocks `other` for `id`: 204, also when already blocked.
pub async fn put(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path((id, other)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (member, blocked) = pair(&state, &org.id, &id, &other).await?;
    state.store.block(from(&blocked, &member)).await?;
    tracing::info!(org_id = %org.id, "member blocked another");
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a block: 204, or 404 if there was none.
pub async fn delete(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path((id, other)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (member, blocked) = pair(&state, &org.id, &id, &other).await?;
    if state.store.unblock(from(&blocked, &member)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("block"))
    }
}

/// The members `id` has blocked.
pub async fn list(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let member = live_member(&state, &org.id, &ExternalId::from(id), "id").await?;
    let blocked = state.store.blocked_by(&member.id).await?;
    Ok(Json(json!({ "blocked": blocked })))
}

/// The member `id` and the member `other` they block (or unblock).
async fn pair(
    state: &AppState,
    org_id: &OrgId,
    id: &str,
    other: &str,
) -> Result<(Member, Member), ApiError> {
    if id == other {
        return Err(ApiError::invalid(
            "other",
            "a member cannot block themselves",
        ));
    }
    Ok((
        live_member(state, org_id, &ExternalId::from(id), "id").await?,
        live_member(state, org_id, &ExternalId::from(other), "other").await?,
    ))
}

/// Mail from `writer` to `reader`: what a block stops.
fn from<'a>(writer: &'a Member, reader: &'a Member) -> Direction<'a> {
    Direction {
        writer: &writer.id,
        reader: &reader.id,
    }
}
