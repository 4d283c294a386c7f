//! `PUT`, `GET` and `DELETE /v1/members/{id}`: the directory's members.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use maskrelay_schema::members::{Member, MemberInput, MemberStatus};
use maskrelay_schema::{ExternalId, OrgId};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::body::{self, check_email, check_id, check_line};
use super::error::ApiError;
use super::state::AppState;

/// How many other addresses a member may list.
const MAX_OTHER_EMAILS: usize = 10;

/// Checks a member's address: well-formed and not one of ours.
fn member_address<'a>(
    field: &str,
    address: &'a str,
    relay_domain: &str,
) -> Result<&'a str, ApiError> {
    let address = check_email(field, address)?;
    match address.rsplit_once('@') {
        Some((_, domain)) if domain.eq_ignore_ascii_case(relay_domain) => Err(ApiError::invalid(
            field,
            format!("{field} cannot be a relay address of this gateway"),
        )),
        _ => Ok(address),
    }
}

/// Creates or replaces a member: 201 when new, 200 when updated.
pub async fn put(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_id("id", &id)?;
    let id = ExternalId::from(id);
    let obj = body::parse(body, state.max_body_bytes)?;
    let relay_domain = state.submitter.relay_domain();
    let email = member_address("email", obj.required_str("email")?, relay_domain)?;
    let mut other_emails: Vec<String> = Vec::new();
    for other in obj.optional_str_list("other_emails", MAX_OTHER_EMAILS)? {
        let other = member_address("other_emails", other, relay_domain)?;
        let same = |a: &str| a.eq_ignore_ascii_case(other);
        if !same(email) && !other_emails.iter().any(|o| same(o)) {
            other_emails.push(other.to_owned());
        }
    }
    let name = obj.required_str("name")?.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "name must not be empty"));
    }
    check_line("name", name, 200)?;
    let status = match obj.optional_str("status")? {
        None | Some("active") => MemberStatus::Active,
        Some("inactive") => MemberStatus::Inactive,
        Some(_) => {
            return Err(ApiError::invalid(
                "status",
                "status must be \"active\" or \"inactive\"",
            ));
        }
    };
    let attributes = Value::Object(
        obj.optional_object("attributes")?
            .cloned()
            .unwrap_or_default(),
    );
    let existing = state.store.member_by_external_id(&org.id, &id).await?;
    // A member's own choice (made through a footer link) survives the directory's
    // next update unless the directory says otherwise.
    let accepts_messages = obj
        .optional_bool("accepts_messages")?
        .unwrap_or_else(|| existing.as_ref().is_none_or(|m| m.accepts_messages));
    let input = MemberInput {
        accepts_messages,
        email: email.to_owned(),
        other_emails,
        name: name.to_owned(),
        status,
        attributes,
    };
    let (member, created) = state.store.upsert_member(&org.id, &id, &input).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let suppressed = state.store.suppression(&member.id).await?;
    Ok((code, Json(render(&member, suppressed.as_deref()))))
}

/// Shows a member.
pub async fn get(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state
        .store
        .member_by_external_id(&org.id, &ExternalId::from(id.as_str()))
        .await?
    {
        Some(member) => {
            let suppressed = state.store.suppression(&member.id).await?;
            Ok(Json(render(&member, suppressed.as_deref())))
        }
        None => Err(ApiError::unknown_member(&id, "id")),
    }
}

/// Erases a member's personal data: 204, or 404 if there is no such member.
pub async fn delete(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state
        .store
        .erase_member(&org.id, &ExternalId::from(id.as_str()))
        .await?
    {
        tracing::info!(org_id = %org.id, "member erased");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::unknown_member(&id, "id"))
    }
}

/// The member as the API shows it; `suppressed` is why mail to their address stopped
/// (a hard bounce), if it did.
fn render(member: &Member, suppressed: Option<&str>) -> Value {
    json!({
        "deliverable": suppressed.is_none(),
        "undeliverable_reason": suppressed,
        "id": member.external_id,
        "email": member.email,
        "other_emails": member.other_emails,
        "accepts_messages": member.accepts_messages,
        "name": member.name,
        "status": member.status.as_str(),
        "attributes": member.attributes,
        "created_at": member.created_at,
        "updated_at": member.updated_at,
    })
}

/// The member with directory id `id`, unless there is none or it was erased.
///
/// # Errors
/// 404 naming `field`.
pub(super) async fn live_member(
    state: &AppState,
    org_id: &OrgId,
    id: &ExternalId,
    field: &str,
) -> Result<Member, ApiError> {
    match state.store.member_by_external_id(org_id, id).await? {
        Some(m) if m.status != MemberStatus::Erased && m.email.is_some() => Ok(m),
        _ => Err(ApiError::unknown_member(id.as_str(), field)),
    }
}
