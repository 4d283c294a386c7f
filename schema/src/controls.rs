//! What members and organisations control: blocks between members, whether a member
//! accepts messages at all, and how many conversations a member may start.

use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::{Direction, ExternalId, MemberId};

/// Conversations a member started within a window, and when the oldest of them did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// How many.
    pub count: i64,
    /// Creation time of the oldest, Unix ms.
    pub oldest: Option<i64>,
}

/// What the store holds against one member writing to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barriers {
    /// The reader has blocked the writer.
    pub blocked: bool,
    /// Mail to the reader's address is suppressed after bounces.
    pub suppressed: bool,
}

impl Store {
    /// Makes the reader of `direction` receive nothing more from its writer.
    /// Idempotent.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the write fails.
    pub async fn block(&self, direction: Direction<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
        )
        .bind(direction.reader)
        .bind(direction.writer)
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok(())
    }

    /// Lets the reader of `direction` receive from its writer again; false if there
    /// was no block.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the write fails.
    pub async fn unblock(&self, direction: Direction<'_>) -> Result<bool> {
        let done = sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(direction.reader)
            .bind(direction.writer)
            .grouped(self)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether the reader of `direction` has blocked its writer, and whether mail to
    /// the reader's address is suppressed: what the store says against one member
    /// writing to another, in one round trip (it is asked for every message).
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn barriers(&self, direction: Direction<'_>) -> Result<Barriers> {
        let row = sqlx::query(
            "SELECT CAST(CASE WHEN EXISTS (SELECT 1 FROM blocks \
                        WHERE blocker_id = $1 AND blocked_id = $2) THEN 1 ELSE 0 END AS BIGINT) \
                      AS blocked, \
                    CAST(CASE WHEN EXISTS (SELECT 1 FROM suppressions s JOIN members mem \
                        ON mem.org_id = s.org_id AND mem.email_index = s.email_index \
                        WHERE mem.id = $1) THEN 1 ELSE 0 END AS BIGINT) AS suppressed",
        )
        .bind(direction.reader)
        .bind(direction.writer)
        .fetch_one(&self.pool)
        .await?;
        Ok(Barriers {
            blocked: row.try_get::<i64, _>("blocked")? != 0,
            suppressed: row.try_get::<i64, _>("suppressed")? != 0,
        })
    }

    /// Directory ids of the members `member_id` has blocked.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn blocked_by(&self, member_id: &MemberId) -> Result<Vec<ExternalId>> {
        let rows = sqlx::query(
            "SELECT m.external_id FROM blocks b JOIN members m ON m.id = b.blocked_id \
             WHERE b.blocker_id = $1 ORDER BY m.external_id",
        )
        .bind(member_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get("external_id")?)).collect()
    }

    /// Turns member-to-member messages on or off for a member.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the write fails.
    pub async fn set_accepts_messages(&self, member_id: &MemberId, accepts: bool) -> Result<()> {
        sqlx::query("UPDATE members SET accepts_messages = $2, updated_at = $3 WHERE id = $1")
            .bind(member_id)
            .bind(i64::from(accepts))
            .bind(now_ms())
            .grouped(self)
            .await?;
        Ok(())
    }

    /// Conversations `member_id` started since `since` (Unix ms).
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn conversations_started(&self, member_id: &MemberId, since: i64) -> Result<Started> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM conversations \
             WHERE started_by = $1 AND created_at > $2",
        )
        .bind(member_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(Started {
            count: row.try_get("n")?,
            oldest: row.try_get("oldest")?,
        })
    }
}
