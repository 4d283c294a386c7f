//! `GET /v1/read/{token}`: a broadcast sent by link (`"delivery": "link"`), read by
//! the member it was sent to, on the relay's web address, without an API key. The
//! token (see `maskrelay_compose::link`) names the member and the broadcast; the
//! first opening is counted (`read` in `GET /v1/broadcasts/{id}`), later ones are
//! not. There is no tracking pixel: only this page, which the member asked for.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use maskrelay_compose::LinkAction;
use maskrelay_compose::broadcast::spec::BroadcastSpec;
use maskrelay_compose::footer::escape_html;

use super::error::ApiError;
use super::links::{invalid, live, page};
use super::state::AppState;

/// Shows the whole broadcast, and counts its reader once.
pub async fn get(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<(StatusCode, Html<String>), ApiError> {
    let Some(LinkAction::Read {
        org,
        reader,
        broadcast,
    }) = LinkAction::from_token(state.store.crypto(), &token)
    else {
        return Ok(invalid());
    };
    let Some(found) = state.store.broadcast(&org, &broadcast).await? else {
        return Ok(invalid());
    };
    if !live(&state, &reader).await? {
        return Ok(invalid());
    }
    let spec = BroadcastSpec::from_bytes(&found.spec).map_err(ApiError::internal)?;
    state.store.record_read(&broadcast, &reader).await?;
    tracing::info!(broadcast_id = %broadcast, "broadcast read by its link");
    // The text, escaped: staff HTML is not served from the relay's own address.
    let text = escape_html(&spec.text)
        .replace("\r\n", "\n")
        .replace('\n', "<br>");
    let lang = spec
        .language
        .as_deref()
        .map(|l| format!(" lang=\"{}\"", escape_html(l)))
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        page(&format!(
            "<article{lang}><h1>{}</h1><p>{text}</p></article>",
            escape_html(&spec.subject)
        )),
    ))
}
