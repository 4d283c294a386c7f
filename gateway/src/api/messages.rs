//! `POST /v1/messages`: one member writes to another; `GET /v1/messages/{id}`: where
//! its delivery stands (metadata only, never the body).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use maskrelay_compose::{Body, IdempotencyRecord, Refusal, Submission, SubmitError, Submitted};
use maskrelay_schema::crypto::sha256;
use maskrelay_schema::new_message::Origin;
use maskrelay_schema::{ExternalId, MessageId, OrgId};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::body::{self, check_line};
use super::error::ApiError;
use super::members::live_member;
use super::state::AppState;

const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Queues a message and answers 202 once it is stored.
pub async fn post(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let raw = body.as_ref().map(|b| b.to_vec()).unwrap_or_default();
    let idempotency_key = idempotency_key(&headers)?;
    let request_hash = sha256(&raw);
    if let Some(key) = idempotency_key
        && let Some(replay) = replay(&state, &org.id, key, &request_hash).await?
    {
        return Ok(replay);
    }
    let obj = body::parse(body, state.max_body_bytes)?;
    let from_id = obj.required_str("from")?;
    let to_id = obj.required_str("to")?;
    let subject = obj.required_str("subject")?;
    check_line("subject", subject, 998)?;
    let text = obj.required_str("text")?;
    let html = obj.optional_str("html")?;
    if from_id == to_id {
        return Err(ApiError::invalid(
            "to",
            "a member cannot write to themselves",
        ));
    }
    let writer = live_member(&state, &org.id, &ExternalId::from(from_id), "from").await?;
    let reader = live_member(&state, &org.id, &ExternalId::from(to_id), "to").await?;
    let content = Body::from_text(subject, text, html);
    let render = |s: &Submitted| response_body(s).to_string();
    let submission = Submission {
        org: &org,
        writer: &writer,
        reader: &reader,
        origin: Origin::Api,
        body: &content,
        in_reply_to: None,
        sender_auth: None,
        known: None,
        idempotency: idempotency_key.map(|key| IdempotencyRecord {
            key,
            request_hash: &request_hash,
            render: &render,
        }),
    };
    match state.submitter.submit(&submission).await {
        Ok(submitted) => Ok((StatusCode::ACCEPTED, Json(response_body(&submitted)))),
        Err(SubmitError::Refused { refusal, .. }) => {
            tracing::info!(org_id = %org.id, reason = refusal.reason().as_str(), "message refused");
            Err(refused(refusal, from_id, to_id))
        }
        Err(SubmitError::IdempotencyConflict) => {
            // A concurrent request with the same key won; answer as it did.
            let key = idempotency_key.unwrap_or_default();
            replay(&state, &org.id, key, &request_hash)
                .await?
                .ok_or_else(|| ApiError::internal("idempotency record vanished"))
        }
        Err(e) => Err(e.into()),
    }
}

/// Shows where a message's delivery stands.
pub async fn get(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let meta = state
        .store
        .message_for_org(&org.id, &MessageId::from(id))
        .await?
        .ok_or_else(|| ApiError::not_found("message"))?;
    let delivery = state.store.delivery_state(&meta.id).await?;
    Ok(Json(json!({
        "message_id": meta.id,
        "conversation_id": meta.conversation_id,
        "status": delivery.as_ref().map(|d| d.status.as_str()),
        "attempts": delivery.as_ref().map(|d| d.attempts),
        "last_error": delivery.as_ref().and_then(|d| d.last_error.as_deref()),
    })))
}

/// The answer to a refused message, naming the field at fault.
fn refused(refusal: Refusal, from_id: &str, to_id: &str) -> ApiError {
    match refusal {
        Refusal::WriterInactive => ApiError::forbidden(
            "inactive_member",
            format!("member {from_id:?} is inactive and cannot send messages"),
        )
        .field("from"),
        Refusal::ReaderInactive => ApiError::forbidden(
            "inactive_member",
            format!("member {to_id:?} is inactive and cannot receive messages"),
        )
        .field("to"),
        Refusal::MessagingDisabled => ApiError::forbidden(
            "messaging_disabled",
            "this organisation has turned off messages between members",
        ),
        Refusal::ReaderOptedOut => ApiError::forbidden(
            "recipient_opted_out",
            format!("member {to_id:?} has turned off messages from other members"),
        )
        .field("to"),
        // Said no more plainly than this, so that a blocked member does not learn it.
        Refusal::Blocked => ApiError::forbidden(
            "not_deliverable",
            format!("the message could not be delivered to member {to_id:?}"),
        )
        .field("to"),
        Refusal::ReaderUnreachable => ApiError::forbidden(
            "recipient_unreachable",
            format!(
                "mail to member {to_id:?} bounced for good; update their email (or lift the \
                 suppression with DELETE /v1/members/{to_id}/suppression)"
            ),
        )
        .field("to"),
        Refusal::TooManyNewConversations {
            limit,
            window,
            retry_after_secs,
        } => ApiError::rate_limited(
            format!(
                "member {from_id:?} has started {limit} new conversations in the last {window}, \
                 the most this organisation allows; try again later"
            ),
            retry_after_secs,
        ),
    }
}

fn response_body(s: &Submitted) -> Value {
    json!({"conversation_id": s.conversation_id, "message_id": s.message_id})
}

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

async fn replay(
    state: &AppState,
    org_id: &OrgId,
    key: &str,
    request_hash: &[u8],
) -> Result<Option<(StatusCode, Json<Value>)>, ApiError> {
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
