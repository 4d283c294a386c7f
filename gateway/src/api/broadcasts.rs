//! `POST /v1/broadcasts`: staff write to all members, a filtered group or chosen
//! members, counted first (`dry_run`); `GET /v1/broadcasts/{id}`: how far it went;
//! `POST /v1/broadcasts/{id}/cancel`: stop what has not gone out.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use maskrelay_compose::broadcast::spec::{Audience, BroadcastSpec};
use maskrelay_schema::broadcasts::{Broadcast, BroadcastStatus, NewBroadcast, ReplyPolicy};
use maskrelay_schema::members::MemberStatus;
use maskrelay_schema::{BroadcastId, DeliveryStatus};
use serde_json::{Map, Value, json};

use super::auth::{AuthKey, AuthOrg};
use super::body::{self, check_id, check_line};
use super::categories::{check_category_id, defined};
use super::error::ApiError;
use super::idempotency::Idempotent;
use super::state::AppState;

/// The fields of a broadcast request.
const FIELDS: [&str; 10] = [
    "audience",
    "category",
    "subject",
    "text",
    "html",
    "language",
    "reply_policy",
    "sent_by",
    "dry_run",
    "delivery",
];

/// Most members a broadcast may name one by one.
const MAX_CHOSEN: usize = 10_000;

/// Counts a broadcast's recipients (`dry_run`: 200) or records it for sending (202).
pub async fn post(
    State(state): State<AppState>,
    AuthKey { org, fingerprint }: AuthKey,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (idempotent, replayed) = Idempotent::check(&state, &org.id, &headers, &body).await?;
    if let Some(answer) = replayed {
        return Ok(answer);
    }
    let obj = body::parse(body, state.max_body_bytes)?;
    if let Some(field) = obj.unknown_fields(&FIELDS) {
        return Err(ApiError::invalid(
            &field,
            format!(
                "{field} is not a field of a broadcast; fields are {}",
                FIELDS.join(", ")
            ),
        ));
    }
    let audience = audience(obj.optional_object("audience")?)?;
    let category = check_category_id("category", obj.required_str("category")?)?;
    if !category.is_mandatory() {
        defined(&state, &org.id, &category, "category").await?;
    }
    let subject = obj.required_str("subject")?;
    if subject.trim().is_empty() {
        return Err(ApiError::invalid("subject", "subject must not be empty"));
    }
    check_line("subject", subject, 998)?;
    let text = obj.required_str("text")?;
    if text.trim().is_empty() {
        return Err(ApiError::invalid("text", "text must not be empty"));
    }
    let html = obj.optional_str("html")?;
    let language = obj.optional_str("language")?;
    if let Some(language) = language {
        check_language(language)?;
    }
    let reply_policy = match obj.optional_str("reply_policy")? {
        None | Some("none") => ReplyPolicy::None,
        Some("org_inbox" | "private_thread") => {
            return Err(ApiError::invalid(
                "reply_policy",
                "reply_policy \"org_inbox\" and \"private_thread\" are not available yet; \
                 only \"none\" is",
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "reply_policy",
                "reply_policy must be \"none\", \"org_inbox\" or \"private_thread\"",
            ));
        }
    };
    let by_link = match obj.optional_str("delivery")? {
        None | Some("inline") => false,
        Some("link") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "delivery",
                "delivery must be \"inline\" or \"link\"",
            ));
        }
    };
    let sent_by = obj.optional_str("sent_by")?.map(str::trim);
    if let Some(name) = sent_by {
        check_line("sent_by", name, 200)?;
    }
    let broadcaster = &state.broadcaster;
    let recipients = broadcaster.count(&org, &category, &audience).await?;
    if obj.optional_bool("dry_run")? == Some(true) {
        return Ok((StatusCode::OK, Json(json!({"recipients": recipients}))));
    }
    let spec = BroadcastSpec {
        audience,
        subject: subject.to_owned(),
        text: text.to_owned(),
        html: html.map(str::to_owned),
        language: language.map(str::to_owned),
        by_link,
    };
    let spec = spec.to_bytes().map_err(ApiError::internal)?;
    let id = BroadcastId::generate();
    let answer = json!({"id": id, "recipients": recipients});
    let response = answer.to_string();
    let recorded = state
        .store
        .create_broadcast(
            &NewBroadcast {
                id: &id,
                org_id: &org.id,
                category_id: &category,
                reply_policy,
                spec: &spec,
                sent_by: sent_by.filter(|s| !s.is_empty()),
                api_key: &fingerprint,
                recipients,
            },
            idempotent
                .key
                .map(|key| (key, idempotent.request_hash.as_slice(), response.as_str())),
        )
        .await;
    match recorded {
        Ok(()) => {}
        // A concurrent request with the same key won; answer as it did.
        Err(e) if idempotent.key.is_some() && e.is_unique_violation() => {
            return idempotent.lost_race(&state, &org.id).await;
        }
        Err(e) => return Err(e.into()),
    }
    broadcaster.wake();
    tracing::info!(org_id = %org.id, broadcast_id = %id, recipients, category = %category, "broadcast recorded");
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// Shows a broadcast and how far it went.
pub async fn get(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let broadcast = state
        .store
        .broadcast(&org.id, &BroadcastId::from(id))
        .await?
        .ok_or_else(|| ApiError::not_found("broadcast"))?;
    Ok(Json(render(&state, &broadcast).await?))
}

/// Stops a broadcast: copies not yet handed to a worker are cancelled.
pub async fn cancel(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = BroadcastId::from(id);
    if !state.store.cancel_broadcast(&org.id, &id).await? {
        return Err(ApiError::not_found("broadcast"));
    }
    tracing::info!(org_id = %org.id, broadcast_id = %id, "broadcast cancelled");
    let broadcast = state
        .store
        .broadcast(&org.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("broadcast"))?;
    Ok(Json(render(&state, &broadcast).await?))
}

async fn render(state: &AppState, b: &Broadcast) -> Result<Value, ApiError> {
    let progress = state.store.broadcast_progress(b).await?;
    let waiting = progress.count(DeliveryStatus::Queued);
    // Members whose copy is still to be made count as queued while it expands.
    let not_made = match b.status {
        BroadcastStatus::Expanding => (b.recipients - b.queued).max(0),
        BroadcastStatus::Expanded | BroadcastStatus::Cancelled => 0,
    };
    let pending = waiting + not_made + progress.count(DeliveryStatus::Deferred);
    let status = match b.status {
        BroadcastStatus::Cancelled => "cancelled",
        _ if pending > 0 => "sending",
        _ => "finished",
    };
    Ok(json!({
        "id": b.id,
        "status": status,
        "category": b.category_id.as_str(),
        "reply_policy": b.reply_policy.as_str(),
        "sent_by": b.sent_by,
        "api_key": b.api_key,
        "created_at": b.created_at,
        "recipients": b.recipients,
        "queued": waiting + not_made,
        "sent": progress.count(DeliveryStatus::Sent),
        "deferred": progress.count(DeliveryStatus::Deferred),
        "bounced": progress.count(DeliveryStatus::Bounced),
        "failed": progress.count(DeliveryStatus::Failed),
        "suppressed": progress.count(DeliveryStatus::Suppressed),
        "cancelled": progress.count(DeliveryStatus::Cancelled),
        "unsubscribed": progress.unsubscribed,
        // Members who opened their link (`"delivery": "link"`), each once.
        "read": progress.read,
    }))
}

/// The audience of a request: exactly one of `all`, `filter` and `members`.
fn audience(field: Option<&Map<String, Value>>) -> Result<Audience, ApiError> {
    let one_of = || {
        ApiError::invalid(
            "audience",
            "audience must be one of {\"all\": true}, {\"filter\": {...}} or \
             {\"members\": [ids]}",
        )
    };
    let obj = field.ok_or_else(one_of)?;
    if obj.len() != 1 {
        return Err(one_of());
    }
    match obj.iter().next() {
        Some((key, Value::Bool(true))) if key == "all" => Ok(Audience::All),
        Some((key, Value::Object(filter))) if key == "filter" => filter_audience(filter),
        Some((key, Value::Array(ids))) if key == "members" => {
            if ids.is_empty() || ids.len() > MAX_CHOSEN {
                return Err(ApiError::invalid(
                    "audience.members",
                    format!("audience.members must list 1 to {MAX_CHOSEN} member ids"),
                ));
            }
            let ids = ids
                .iter()
                .map(|id| match id.as_str() {
                    Some(id) => check_id("audience.members", id).map(|()| id.to_owned()),
                    None => Err(ApiError::invalid(
                        "audience.members",
                        "audience.members must be an array of member ids",
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Audience::Members(ids))
        }
        _ => Err(one_of()),
    }
}

fn filter_audience(filter: &Map<String, Value>) -> Result<Audience, ApiError> {
    if let Some(key) = filter.keys().find(|k| *k != "status" && *k != "attributes") {
        return Err(ApiError::invalid(
            &format!("audience.filter.{key}"),
            "a filter has \"status\" and \"attributes\" only",
        ));
    }
    let statuses = match filter.get("status") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|s| match s.as_str().and_then(MemberStatus::parse) {
                Some(status @ (MemberStatus::Active | MemberStatus::Inactive)) => {
                    Ok(status.as_str().to_owned())
                }
                _ => Err(ApiError::invalid(
                    "audience.filter.status",
                    "audience.filter.status must list \"active\" and/or \"inactive\"",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "audience.filter.status",
                "audience.filter.status must be an array",
            ));
        }
    };
    let mut attributes = BTreeMap::new();
    match filter.get("attributes") {
        None | Some(Value::Null) => {}
        Some(Value::Object(wanted)) => {
            for (name, values) in wanted {
                let field = format!("audience.filter.attributes.{name}");
                let invalid = || {
                    ApiError::invalid(
                        &field,
                        format!(
                            "{field} must be a non-empty array of strings, numbers or booleans"
                        ),
                    )
                };
                let Value::Array(values) = values else {
                    return Err(invalid());
                };
                if values.is_empty() {
                    return Err(invalid());
                }
                let values = values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        Value::Bool(b) => Ok(b.to_string()),
                        _ => Err(invalid()),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                attributes.insert(name.clone(), values);
            }
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "audience.filter.attributes",
                "audience.filter.attributes must be a JSON object",
            ));
        }
    }
    Ok(Audience::Filter {
        statuses,
        attributes,
    })
}

/// Checks a BCP 47 language tag's shape: letters, digits and hyphens, starting with
/// a letter, at most 35 characters.
fn check_language(tag: &str) -> Result<(), ApiError> {
    let ok = (2..=35).contains(&tag.len())
        && tag.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "language",
            "language must be a language tag such as \"en\", \"cy\" or \"fr-CA\"",
        ))
    }
}
