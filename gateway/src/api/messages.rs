//! `POST /v1/messages`: one member writes to another; `GET /v1/messages/{id}`: where
//! its delivery stands (metadata only, never the body).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use maskrelay_compose::{Body, IdempotencyRecord, Refusal, Submission, SubmitError, Submitted};
use maskrelay_schema::new_message::Origin;
use maskrelay_schema::{ExternalId, MessageId};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::body::{self, check_line};
use super::error::ApiError;
use super::idempotency::Idempotent;
use super::members::live_member;
use super::state::AppState;

/// Queues a message and answers 202 once it is stored.
pub async fn post(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (idempotent, replayed) = Idempotent::check(&state, &org.id, &headers, &body).await?;
    if let Some(answer) = replayed {
        return Ok(answer);
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
        idempotency: idempotent.key.map(|key| IdempotencyRecord {
            key,
            request_hash: &idempotent.request_hash,
            render: &render,
        }),
    };
    match state.submitter.submit(&submission).await {
        Ok(submitted) => Ok((StatusCode::ACCEPTED, Json(response_body(&submitted)))),
        Err(SubmitError::Refused { refusal, .. }) => {
            tracing::info!(org_id = %org.id, reason = refusal.reason().as_str(), "message refused");
            Err(refused(refusal, from_id, to_id))
        }
        // A concurrent request with the same key won; answer as it did.
        Err(SubmitError::IdempotencyConflict) => idempotent.lost_race(&state, &org.id).await,
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
