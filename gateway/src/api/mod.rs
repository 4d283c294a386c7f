//! The HTTP API: routes, shared state, and the pieces every handler uses.
//!
//! - [`members`], [`blocks`], [`suppression`], [`messages`], [`conversations`],
//!   [`organisation`], [`categories`], [`broadcasts`]: the resources, each owning
//!   its handlers.
//! - [`metrics`]: the SMTP listener's counters for Prometheus (no API key).
//! - [`links`]: the one-click footer links members follow themselves (no API key);
//!   [`read`]: a broadcast sent by link, read by its member (no API key).
//! - [`auth`]: the API-key extractor.
//! - [`body`]: JSON bodies and field checks; [`idempotency`]: `Idempotency-Key`.
//! - [`state`]: what every handler can reach.
//! - [`error`]: the one error type, answered as JSON.

pub mod auth;
pub mod blocks;
pub mod body;
pub mod broadcasts;
pub mod categories;
pub mod conversations;
pub mod error;
pub mod idempotency;
pub mod links;
pub mod members;
pub mod messages;
pub mod metrics;
pub mod organisation;
pub mod read;
pub mod state;
pub mod suppression;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};

use error::ApiError;
pub use state::AppState;

/// All routes of the API.
pub fn routes(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(
            "/v1/members/{id}",
            put(members::put).get(members::get).delete(members::delete),
        )
        .route(
            "/v1/members/{id}/conversations",
            get(conversations::of_member),
        )
        .route("/v1/members/{id}/blocks", get(blocks::list))
        .route(
            "/v1/members/{id}/suppression",
            axum::routing::delete(suppression::delete),
        )
        .route(
            "/v1/members/{id}/blocks/{other}",
            put(blocks::put).delete(blocks::delete),
        )
        .route(
            "/v1/members/{id}/categories",
            get(categories::of_member).put(categories::set_for_member),
        )
        .route("/v1/categories", get(categories::list))
        .route("/v1/categories/{id}", put(categories::put))
        .route("/v1/broadcasts", post(broadcasts::post))
        .route("/v1/broadcasts/{id}", get(broadcasts::get))
        .route("/v1/broadcasts/{id}/cancel", post(broadcasts::cancel))
        .route("/v1/links/{token}", get(links::confirm).post(links::apply))
        .route("/v1/read/{token}", get(read::get))
        .route("/v1/conversations/{id}", get(conversations::get))
        .route(
            "/v1/organisation",
            get(organisation::get).patch(organisation::patch),
        )
        .route("/v1/messages", post(messages::post))
        .route("/v1/messages/{id}", get(messages::get))
        .route("/healthz", get(health))
        .route("/metrics", get(metrics::get))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// 200 when the database answers.
async fn health(State(state): State<AppState>) -> Result<StatusCode, ApiError> {
    state.store.ping().await?;
    Ok(StatusCode::OK)
}
