//! `GET /v1/conversations/{id}` and `GET /v1/members/{id}/conversations`: what an
//! organisation may know about its members' conversations. Metadata only: who, when,
//! how many, how delivery went. Bodies and addresses are never returned.

use axum::Json;
use axum::extract::{Path, State};
use maskrelay_schema::metadata::ConversationSummary;
use maskrelay_schema::{ConversationId, ExternalId};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::error::ApiError;
use super::state::AppState;

/// How many of the latest messages a conversation shows.
const MESSAGES_SHOWN: i64 = 100;

/// One conversation with its latest messages.
pub async fn get(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = ConversationId::from(id);
    let summary = state
        .store
        .conversation_summary(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    let counts = state.store.inbound_counts(&id).await?;
    let messages = state
        .store
        .conversation_messages(&id, MESSAGES_SHOWN)
        .await?;
    let mut out = render(&summary);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("auto_replies_recorded".into(), counts.auto_replies.into());
        obj.insert(
            "delivery_reports_recorded".into(),
            counts.delivery_reports.into(),
        );
        obj.insert("complaints_recorded".into(), counts.complaints.into());
        obj.insert(
            "replies_refused".into(),
            counts
                .refused
                .iter()
                .map(|(reason, n)| (reason.as_str().to_owned(), Value::from(*n)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
        obj.insert(
            "messages".into(),
            messages
                .iter()
                .map(|m| {
                    json!({
                        "id": m.id,
                        "from": m.writer,
                        "to": m.reader,
                        "origin": m.origin.as_str(),
                        "created_at": m.created_at,
                        "status": m.status.map(|s| s.as_str()),
                        "sender_authentication": m.sender_auth,
                    })
                })
                .collect(),
        );
    }
    Ok(Json(out))
}

/// The conversations a member takes part in.
pub async fn of_member(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = ExternalId::from(id);
    if state
        .store
        .member_by_external_id(&org.id, &id)
        .await?
        .is_none()
    {
        return Err(ApiError::unknown_member(id.as_str(), "id"));
    }
    let all = state.store.member_conversations(&org.id, &id).await?;
    Ok(Json(json!({
        "conversations": all.iter().map(render).collect::<Vec<_>>(),
    })))
}

fn render(c: &ConversationSummary) -> Value {
    json!({
        "id": c.id,
        "participants": c.participants,
        "created_at": c.created_at,
        "message_count": c.message_count,
        "last_message_at": c.last_message_at,
    })
}
