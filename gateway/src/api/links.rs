//! `GET` and `POST /v1/links/{token}`: the one-click links in the footer of every
//! relayed message, followed by members themselves, without an API key.
//!
//! What a token does is read by `maskrelay_compose::link`, which wrote it: it only
//! ever does what the footer it was printed in offered, for the member it was sent
//! to. `GET` only asks for confirmation, because mail scanners follow links on
//! their own; the `POST` of that page (or an RFC 8058 one-click `POST`) carries it
//! out.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use maskrelay_compose::LinkAction;
use maskrelay_compose::footer::escape_html;
use maskrelay_schema::{CategoryId, Direction, MemberId, OrgId};

use super::error::ApiError;
use super::state::AppState;

/// Shows what the link will do, with a button to do it.
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    let Some(action) = LinkAction::from_token(state.store.crypto(), &token) else {
        return Ok(invalid());
    };
    let question = match &action {
        // Read at `/v1/read/{token}`, not here.
        LinkAction::Read { .. } => return Ok(invalid()),
        LinkAction::Block { writer, .. } => {
            let name = member_name(&state, writer).await?;
            format!("Stop receiving messages from {}?", escape_html(&name))
        }
        LinkAction::Stop { .. } => "Stop receiving messages from all other members?".to_owned(),
        LinkAction::Unsubscribe { org, category, .. } => {
            let name = category_name(&state, org, category).await?;
            format!("Unsubscribe from \u{201c}{}\u{201d}?", escape_html(&name))
        }
    };
    Ok((
        StatusCode::OK,
        page(&format!(
            "<p>{question}</p><form method=\"post\"><button type=\"submit\">Yes</button></form>"
        )),
    ))
}

/// Carries the link out.
pub async fn apply(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    let Some(action) = LinkAction::from_token(state.store.crypto(), &token) else {
        return Ok(invalid());
    };
    let done = match action {
        LinkAction::Read { .. } => return Ok(invalid()),
        LinkAction::Block { reader, writer, .. } => {
            if !(live(&state, &reader).await? && live(&state, &writer).await?) {
                return Ok(invalid());
            }
            state
                .store
                .block(Direction {
                    writer: &writer,
                    reader: &reader,
                })
                .await?;
            "Done: you will receive no more messages from this member."
        }
        LinkAction::Stop { reader, .. } => {
            if !live(&state, &reader).await? {
                return Ok(invalid());
            }
            state.store.set_accepts_messages(&reader, false).await?;
            "Done: you will receive no more messages from other members."
        }
        LinkAction::Unsubscribe {
            org,
            reader,
            category,
        } => {
            if !live(&state, &reader).await? || category.is_mandatory() {
                return Ok(invalid());
            }
            state
                .store
                .set_subscribed(&org, &reader, &category, false)
                .await?;
            "Done: you are unsubscribed."
        }
    };
    tracing::info!("footer link followed");
    Ok((StatusCode::OK, page(&format!("<p>{done}</p>"))))
}

/// Whether a member still exists and was not erased.
pub(super) async fn live(state: &AppState, id: &MemberId) -> Result<bool, ApiError> {
    Ok(state
        .store
        .member(id)
        .await?
        .is_some_and(|m| m.status != maskrelay_schema::members::MemberStatus::Erased))
}

async fn member_name(state: &AppState, id: &MemberId) -> Result<String, ApiError> {
    Ok(state
        .store
        .member(id)
        .await?
        .and_then(|m| m.name)
        .unwrap_or_else(|| "this member".to_owned()))
}

async fn category_name(
    state: &AppState,
    org: &OrgId,
    category: &CategoryId,
) -> Result<String, ApiError> {
    Ok(state
        .store
        .category(org, category)
        .await?
        .map_or_else(|| category.to_string(), |c| c.name))
}

pub(super) fn invalid() -> (StatusCode, Html<String>) {
    (
        StatusCode::NOT_FOUND,
        page("<p>This link is not valid, or no longer works.</p>"),
    )
}

pub(super) fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>maskrelay</title></head>\
         <body>{body}</body></html>"
    ))
}
