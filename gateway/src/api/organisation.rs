//! `GET` and `PATCH /v1/organisation`: the calling organisation and its settings.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use maskrelay_schema::orgs::{Org, OrgSettings};
use serde_json::{Value, json};

use super::auth::AuthOrg;
use super::body;
use super::error::ApiError;
use super::state::AppState;

const REMOVE_FOREIGN: &str = "remove_foreign_addresses";
const RELAY_AUTO_REPLIES: &str = "relay_auto_replies";
const RETENTION_DAYS: &str = "retention_days";
const UNAUTHENTICATED: &str = "unauthenticated_senders";
const MEMBER_MESSAGING: &str = "member_messaging";
const PER_HOUR: &str = "new_conversations_per_hour";
const PER_DAY: &str = "new_conversations_per_day";
const BROADCAST_RATE: &str = "broadcast_per_minute";
const CONTACT_URL: &str = "contact_url";

/// Highest broadcast rate an organisation may set. There is always a rate: copies
/// of different organisations' broadcasts interleave by when each is due, which
/// is what gives each organisation its share.
const MAX_BROADCAST_RATE: i64 = 10_000_000;

/// Highest limit on new conversations an organisation may set (0 means none).
const MAX_LIMIT: i64 = 100_000;

/// Longest retention an organisation may ask for: ten years.
const MAX_RETENTION_DAYS: i64 = 3650;

/// Shows the organisation and its settings.
pub async fn get(AuthOrg(org): AuthOrg) -> Json<Value> {
    Json(render(&org))
}

/// Changes the settings named in the body; the others stay as they are.
pub async fn patch(
    State(state): State<AppState>,
    AuthOrg(org): AuthOrg,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let obj = body::parse(body, state.max_body_bytes)?;
    let known = [
        REMOVE_FOREIGN,
        RELAY_AUTO_REPLIES,
        RETENTION_DAYS,
        UNAUTHENTICATED,
        MEMBER_MESSAGING,
        PER_HOUR,
        PER_DAY,
        BROADCAST_RATE,
        CONTACT_URL,
    ];
    if let Some(field) = obj.unknown_fields(&known) {
        return Err(ApiError::invalid(
            &field,
            format!(
                "{field} is not a setting; settings are {}",
                known.join(", ")
            ),
        ));
    }
    let current = org.settings.clone();
    let settings = OrgSettings {
        remove_foreign_addresses: obj
            .optional_bool(REMOVE_FOREIGN)?
            .unwrap_or(current.remove_foreign_addresses),
        relay_auto_replies: obj
            .optional_bool(RELAY_AUTO_REPLIES)?
            .unwrap_or(current.relay_auto_replies),
        retention_days: obj
            .optional_int(RETENTION_DAYS, 0..=MAX_RETENTION_DAYS)?
            .unwrap_or(current.retention_days),
        accept_unauthenticated: match obj.optional_str(UNAUTHENTICATED)? {
            None => current.accept_unauthenticated,
            Some("reject") => false,
            Some("accept") => true,
            Some(_) => {
                return Err(ApiError::invalid(
                    UNAUTHENTICATED,
                    format!("{UNAUTHENTICATED} must be \"reject\" or \"accept\""),
                ));
            }
        },
        member_messaging: obj
            .optional_bool(MEMBER_MESSAGING)?
            .unwrap_or(current.member_messaging),
        new_conversations_per_hour: obj
            .optional_int(PER_HOUR, 0..=MAX_LIMIT)?
            .unwrap_or(current.new_conversations_per_hour),
        new_conversations_per_day: obj
            .optional_int(PER_DAY, 0..=MAX_LIMIT)?
            .unwrap_or(current.new_conversations_per_day),
        broadcast_per_minute: obj
            .optional_int(BROADCAST_RATE, 1..=MAX_BROADCAST_RATE)?
            .unwrap_or(current.broadcast_per_minute),
        contact_url: match obj.optional_str(CONTACT_URL)? {
            None if obj.has_null(CONTACT_URL) => None,
            None => current.contact_url,
            Some(url) => Some(check_url(CONTACT_URL, url)?.to_owned()),
        },
    };
    state.store.update_org_settings(&org.id, &settings).await?;
    tracing::info!(org_id = %org.id, "organisation settings changed");
    Ok(Json(render(&Org { settings, ..org })))
}

fn render(org: &Org) -> Value {
    json!({
        "id": org.id,
        "name": org.name,
        "settings": {
            REMOVE_FOREIGN: org.settings.remove_foreign_addresses,
            RELAY_AUTO_REPLIES: org.settings.relay_auto_replies,
            RETENTION_DAYS: org.settings.retention_days,
            UNAUTHENTICATED: if org.settings.accept_unauthenticated { "accept" } else { "reject" },
            MEMBER_MESSAGING: org.settings.member_messaging,
            PER_HOUR: org.settings.new_conversations_per_hour,
            PER_DAY: org.settings.new_conversations_per_day,
            BROADCAST_RATE: org.settings.broadcast_per_minute,
            CONTACT_URL: org.settings.contact_url,
        },
    })
}

/// Checks a web address members are sent to: `https://` (or `http://`), printable,
/// at most 500 characters.
fn check_url<'a>(field: &str, url: &'a str) -> Result<&'a str, ApiError> {
    let url = url.trim();
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && url.len() <= 500
        && url.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(url)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be an https:// address of at most 500 characters"),
        ))
    }
}
