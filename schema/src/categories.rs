//! Categories of broadcasts (`news`, `events`) that an organisation names, and the
//! members who unsubscribed from each. The reserved category `mandatory` is never
//! stored: nobody can leave it.

use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::{CategoryId, MemberId, OrgId};

impl CategoryId {
    /// The category of notices every member gets (a privacy-policy change, a data
    /// breach): it ignores unsubscriptions and offers none.
    pub const MANDATORY: &'static str = "mandatory";

    /// Whether this is [`CategoryId::MANDATORY`].
    pub fn is_mandatory(&self) -> bool {
        self.as_str() == Self::MANDATORY
    }
}

/// A category an organisation defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The organisation's own id for it.
    pub id: CategoryId,
    /// What members see (`List-Id`, the unsubscribe page).
    pub name: String,
    /// When it was defined, Unix ms.
    pub created_at: i64,
}

impl Store {
    /// Defines a category or renames it; `true` if it is new.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the write fails.
    pub async fn put_category(&self, org: &OrgId, id: &CategoryId, name: &str) -> Result<bool> {
        let now = now_ms();
        let row = sqlx::query(
            "INSERT INTO categories (org_id, id, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (org_id, id) DO UPDATE SET name = excluded.name, \
                 updated_at = excluded.updated_at \
             RETURNING created_at",
        )
        .bind(org)
        .bind(id)
        .bind(name)
        .bind(now)
        .grouped_rows(self)
        .await?;
        let created_at: i64 = match row.first() {
            Some(r) => r.try_get("created_at")?,
            None => now,
        };
        Ok(created_at == now)
    }

    /// The organisation's categories, by id.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn categories(&self, org: &OrgId) -> Result<Vec<Category>> {
        let rows = sqlx::query(
            "SELECT id, name, created_at FROM categories WHERE org_id = $1 ORDER BY id",
        )
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(category_at).collect()
    }

    /// One of the organisation's categories.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn category(&self, org: &OrgId, id: &CategoryId) -> Result<Option<Category>> {
        let row = sqlx::query(
            "SELECT id, name, created_at FROM categories WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(category_at).transpose()
    }

    /// The categories a member unsubscribed from.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn unsubscribed(&self, member: &MemberId) -> Result<Vec<CategoryId>> {
        let rows = sqlx::query(
            "SELECT category_id FROM category_optouts WHERE member_id = $1 ORDER BY category_id",
        )
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get("category_id"))
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Subscribes a member to a category of their organisation, or unsubscribes
    /// them, at once. The caller checks that the category exists and is not
    /// mandatory.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the write fails.
    pub async fn set_subscribed(
        &self,
        org: &OrgId,
        member: &MemberId,
        category: &CategoryId,
        subscribed: bool,
    ) -> Result<()> {
        if subscribed {
            sqlx::query(
                "DELETE FROM category_optouts \
                 WHERE member_id = $1 AND category_id = $2 AND org_id = $3",
            )
            .bind(member)
            .bind(category)
            .bind(org)
            .grouped(self)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO category_optouts (member_id, category_id, org_id, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (member_id, category_id) DO NOTHING",
            )
            .bind(member)
            .bind(category)
            .bind(org)
            .bind(now_ms())
            .grouped(self)
            .await?;
        }
        Ok(())
    }
}

fn category_at(row: &sqlx::any::AnyRow) -> Result<Category> {
    Ok(Category {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}
