//! `PUT /v1/categories/{id}` and `GET /v1/categories`: the organisation's categories
//! of broadcasts; `GET` and `PUT /v1/members/{id}/categories`: which of them a
//! member receives.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use maskrelay_schema::categories::Category;
use maskrelay_schema::{CategoryId, ExternalId, OrgId};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::body::{self, check_line};
use super::error::ApiError;
use super::members::live_member;
use super::state::AppState;

/// Checks a category id: 1 to 64 lower-case letters, digits, `-` or `_`, starting
/// with a letter or digit (it is part of `List-Id` and of signed links).
pub(super) fn check_category_id(field: &str, id: &str) -> Result<CategoryId, ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && id.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(CategoryId::from(id))
    } else {
        Err(ApiError::invalid(
            field,
            format!(
                "{field} must be 1 to 64 lower-case letters, digits, '-' or '_', starting \
                 with a letter or digit"
            ),
        ))
    }
}

/// The category named `id` if the organisation defined it.
///
/// # Errors
/// 422 naming `field` if it is not defined.
pub(super) async fn defined(
    state: &AppState,
    org: &OrgId,
    id: &CategoryId,
    field: &str,
) -> Result<Category, ApiError> {
    state.store.category(org, id).await?.ok_or_else(|| {
        ApiError::invalid(
            field,
            format!("no category {id:?}; define it with PUT /v1/categories/{id}"),
        )
    })
}

/// Defines a category (201) or renames it (200).
pub async fn put(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = check_category_id("id", &id)?;
    if id.is_mandatory() {
        return Err(ApiError::invalid(
            "id",
            "\"mandatory\" is reserved for notices nobody can leave; it needs no definition",
        ));
    }
    let obj = body::parse(body, state.max_body_bytes)?;
    if let Some(field) = obj.unknown_fields(&["name"]) {
        return Err(ApiError::invalid(
            &field,
            format!("{field} is not a field of a category"),
        ));
    }
    let name = obj.required_str("name")?.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "name must not be empty"));
    }
    check_line("name", name, 100)?;
    let created = state.store.put_category(&org.id, &id, name).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(json!({"id": id.as_str(), "name": name}))))
}

/// Lists the organisation's categories.
pub async fn list(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
) -> Result<Json<Value>, ApiError> {
    let categories = state.store.categories(&org.id).await?;
    Ok(Json(json!({
        "categories": categories
            .iter()
            .map(|c| json!({"id": c.id.as_str(), "name": c.name}))
            .collect::<Vec<_>>(),
    })))
}

/// Shows which categories a member receives.
pub async fn of_member(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let member = live_member(&state, &org.id, &ExternalId::from(id), "id").await?;
    Ok(Json(choices(&state, &org.id, &member.id).await?))
}

/// Sets a member's choices: `{"categories": {"news": false, "events": true}}`.
/// Categories not named keep the member's current choice.
pub async fn set_for_member(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let member = live_member(&state, &org.id, &ExternalId::from(id), "id").await?;
    let obj = body::parse(body, state.max_body_bytes)?;
    if let Some(field) = obj.unknown_fields(&["categories"]) {
        return Err(ApiError::invalid(
            &field,
            format!(
                "{field} is not a field here; send {{\"categories\": {{\"<id>\": true|false}}}}"
            ),
        ));
    }
    let wanted = obj
        .optional_object("categories")?
        .ok_or_else(|| ApiError::invalid("categories", "categories is required"))?;
    let mut changes = Vec::with_capacity(wanted.len());
    for (key, value) in wanted {
        let field = format!("categories.{key}");
        let category = check_category_id(&field, key)?;
        if category.is_mandatory() {
            return Err(ApiError::invalid(
                &field,
                "nobody can leave mandatory notices",
            ));
        }
        defined(&state, &org.id, &category, &field).await?;
        let Some(subscribed) = value.as_bool() else {
            return Err(ApiError::invalid(
                &field,
                format!("{field} must be true or false"),
            ));
        };
        changes.push((category, subscribed));
    }
    for (category, subscribed) in &changes {
        state
            .store
            .set_subscribed(&org.id, &member.id, category, *subscribed)
            .await?;
    }
    tracing::info!(org_id = %org.id, changes = changes.len(), "member's categories changed");
    Ok(Json(choices(&state, &org.id, &member.id).await?))
}

/// Every category of the organisation, with whether the member receives it.
async fn choices(
    state: &AppState,
    org: &OrgId,
    member: &maskrelay_schema::MemberId,
) -> Result<Value, ApiError> {
    let categories = state.store.categories(org).await?;
    let left = state.store.unsubscribed(member).await?;
    Ok(json!({
        "categories": categories
            .iter()
            .map(|c| json!({
                "id": c.id.as_str(),
                "name": c.name,
                "subscribed": !left.contains(&c.id),
            }))
            .collect::<Vec<_>>(),
    }))
}
