//! Organisations and their API keys.

use sqlx::Row;

use crate::crypto::sha256;
use crate::db::Store;
use crate::error::Result;
use crate::ids::{api_key, new_id, now_ms};

/// An organisation: the owner of a member directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// Our id.
    pub id: String,
    /// Display name, shown to recipients as "Alice via <name>".
    pub name: String,
}

impl Store {
    /// Creates an organisation and returns it with its new API key.
    ///
    /// Only a SHA-256 hash of the key is stored: the key is shown once, here.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the insert fails.
    pub async fn create_org(&self, name: &str) -> Result<(Org, String)> {
        let org = Org {
            id: new_id(),
            name: name.to_owned(),
        };
        let key = api_key()?;
        sqlx::query(
            "INSERT INTO organisations (id, name, api_key_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(sha256(key.as_bytes()))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok((org, key))
    }

    /// The organisation an API key belongs to, if any.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn org_by_api_key(&self, key: &str) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT id, name FROM organisations WHERE api_key_hash = $1")
            .bind(sha256(key.as_bytes()))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| org_from_row(&r)).transpose()
    }

    /// The organisation with this id, if any.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn org(&self, id: &str) -> Result<Option<Org>> {
        let row = sqlx::query("SELECT id, name FROM organisations WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| org_from_row(&r)).transpose()
    }
}

fn org_from_row(row: &sqlx::any::AnyRow) -> Result<Org> {
    Ok(Org {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
    })
}
