//! Organisations and their API keys.

use sqlx::Row;

use crate::clock::now_ms;
use crate::crypto::sha256;
use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::OrgId;
use crate::tokens::api_key;

/// An organisation: the owner of a member directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// Our id.
    pub id: OrgId,
    /// Display name, shown to readers as "Alice via `name`".
    pub name: String,
    /// What the organisation has chosen.
    pub settings: OrgSettings,
}

/// Choices an organisation makes about its members' mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSettings {
    /// Blank every address in relayed mail that is not a relay address, not only the
    /// addresses of the conversation's members.
    pub remove_foreign_addresses: bool,
    /// Relay auto-replies (vacation notices) instead of only recording them.
    pub relay_auto_replies: bool,
    /// Days to keep a message's encrypted content after its delivery ends; 0 wipes
    /// it at once.
    pub retention_days: i64,
    /// Accept replies from domains that publish no SPF record and sign nothing
    /// (they cannot be proven, only trusted); refused by default.
    pub accept_unauthenticated: bool,
    /// Members may write to each other at all.
    pub member_messaging: bool,
    /// New conversations one member may start per hour; 0 for no limit.
    pub new_conversations_per_hour: i64,
    /// New conversations one member may start per day; 0 for no limit.
    pub new_conversations_per_day: i64,
    /// Broadcast copies sent per minute at most (at least 1: every broadcast is
    /// paced, which is how organisations sharing a gateway each get their share).
    pub broadcast_per_minute: i64,
    /// The organisation's contact page, where a member who answers a broadcast
    /// that takes no replies is pointed.
    pub contact_url: Option<String>,
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            remove_foreign_addresses: false,
            relay_auto_replies: false,
            retention_days: 0,
            accept_unauthenticated: false,
            member_messaging: true,
            new_conversations_per_hour: 20,
            new_conversations_per_day: 100,
            broadcast_per_minute: 60_000,
            contact_url: None,
        }
    }
}

/// The columns every organisation query selects, of the organisations table aliased
/// (or named) `$t`, each named `$t_column`: one list for queries of organisations
/// alone and for joins.
macro_rules! org_columns_as {
    ($t:literal) => {
        $crate::sql::columns_as!($t; "id", "name", "remove_foreign_addresses",
            "relay_auto_replies", "retention_days", "accept_unauthenticated",
            "member_messaging", "new_conversations_per_hour", "new_conversations_per_day",
            "broadcast_per_minute", "contact_url")
    };
}
pub(crate) use org_columns_as;

impl Store {
    /// Creates an organisation and returns it with its new API key.
    ///
    /// Only a SHA-256 hash of the key is stored: the key is shown once, here.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the insert fails.
    pub async fn create_org(&self, name: &str) -> Result<(Org, String)> {
        let org = Org {
            id: OrgId::generate(),
            name: name.to_owned(),
            settings: OrgSettings::default(),
        };
        let key = api_key()?;
        sqlx::query(
            "INSERT INTO organisations (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(sha256(key.as_bytes()))
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok((org, key))
    }

    /// The organisation an API key belongs to, if any.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn org_by_api_key(&self, key: &str) -> Result<Option<Org>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            org_columns_as!("organisations"),
            " FROM organisations WHERE api_key_hash = $1"
        ))
        .bind(sha256(key.as_bytes()))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| org_at(&r, "organisations_")).transpose()
    }

    /// The organisation with this id, if any.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn org(&self, id: &OrgId) -> Result<Option<Org>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            org_columns_as!("organisations"),
            " FROM organisations WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| org_at(&r, "organisations_")).transpose()
    }

    /// Replaces an organisation's settings.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the update fails.
    pub async fn update_org_settings(&self, id: &OrgId, settings: &OrgSettings) -> Result<()> {
        sqlx::query(
            "UPDATE organisations SET remove_foreign_addresses = $2, relay_auto_replies = $3, \
                 retention_days = $4, accept_unauthenticated = $5, member_messaging = $6, \
                 new_conversations_per_hour = $7, new_conversations_per_day = $8, \
                 broadcast_per_minute = $9, contact_url = $10 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::from(settings.remove_foreign_addresses))
        .bind(i64::from(settings.relay_auto_replies))
        .bind(settings.retention_days)
        .bind(i64::from(settings.accept_unauthenticated))
        .bind(i64::from(settings.member_messaging))
        .bind(settings.new_conversations_per_hour)
        .bind(settings.new_conversations_per_day)
        .bind(settings.broadcast_per_minute)
        .bind(settings.contact_url.as_deref())
        .grouped(self)
        .await?;
        Ok(())
    }
}

/// The organisation in the columns of `row` whose names start with `prefix`.
pub(crate) fn org_at(row: &sqlx::any::AnyRow, prefix: &str) -> Result<Org> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Org {
        id: row.try_get(col("id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        settings: OrgSettings {
            remove_foreign_addresses: row
                .try_get::<i64, _>(col("remove_foreign_addresses").as_str())?
                != 0,
            relay_auto_replies: row.try_get::<i64, _>(col("relay_auto_replies").as_str())? != 0,
            retention_days: row.try_get(col("retention_days").as_str())?,
            accept_unauthenticated: row
                .try_get::<i64, _>(col("accept_unauthenticated").as_str())?
                != 0,
            member_messaging: row.try_get::<i64, _>(col("member_messaging").as_str())? != 0,
            new_conversations_per_hour: row.try_get(col("new_conversations_per_hour").as_str())?,
            new_conversations_per_day: row.try_get(col("new_conversations_per_day").as_str())?,
            broadcast_per_minute: row.try_get(col("broadcast_per_minute").as_str())?,
            contact_url: row.try_get(col("contact_url").as_str())?,
        },
    })
}
