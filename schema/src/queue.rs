//! The durable delivery queue: claiming due deliveries under a lease, and recording
//! how each attempt ended.
//!
//! A delivery still to be attempted has a `due_at` (its status is queued or
//! deferred); one that ended has none, so the claim walks one small index in due
//! order. A claim sets `lease_until` and `claimed_by` (the instance id). A worker
//! renews the lease while a delivery is in progress; one that dies mid-delivery
//! leaves the lease to expire and the delivery is claimed again, so nothing
//! acknowledged is lost. An instance restarted under the same id takes back its own
//! claims at once ([`Store::release_claims`]) rather than waiting for them to
//! expire. The lease condition is repeated in the outer `WHERE` so that on
//! PostgreSQL a second worker re-checks the row after the first commits and skips it.

use sqlx::Row;

use crate::backend::Backend;
use crate::clock::now_ms;
use crate::db::Store;
use crate::error::{Result, StoreError};
use crate::group::Grouped;
use crate::ids::{DeliveryId, MessageId};
use crate::new_message::{CONTENT, RECIPIENT};
use crate::status::DeliveryStatus;

/// The retention of the organisation a delivery belongs to, as an SQL expression.
macro_rules! retention_days {
    () => {
        "(SELECT o.retention_days FROM messages m JOIN organisations o ON o.id = m.org_id \
          WHERE m.id = deliveries.message_id)"
    };
}
pub(crate) use retention_days;

/// What ending a delivery sets besides its status and error, at time `$2`: one
/// more attempt, nothing due, no claim, no recipient, and no content unless the
/// organisation keeps it (then until its retention ends).
macro_rules! finish_set {
    () => {
        concat!(
            "attempts = attempts + 1, due_at = NULL, recipient_enc = NULL, lease_until = NULL, \
             claimed_by = NULL, updated_at = $2, content_enc = CASE WHEN ",
            $crate::queue::retention_days!(),
            " > 0 THEN content_enc ELSE NULL END, purge_after = CASE WHEN ",
            $crate::queue::retention_days!(),
            " > 0 THEN $2 + ",
            $crate::queue::retention_days!(),
            " * 86400000 ELSE NULL END"
        )
    };
}
pub(crate) use finish_set;

/// A delivery handed to a worker.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// Delivery id.
    pub id: DeliveryId,
    /// The message being delivered.
    pub message_id: MessageId,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When the delivery was queued, Unix ms.
    pub queued_at: i64,
    /// The envelope recipient: the reader's address (decrypted).
    pub rcpt_to: String,
    /// The composed message (decrypted).
    pub content: Vec<u8>,
    /// The reader's address was suppressed (a hard bounce) since this was queued:
    /// it is not to be sent.
    pub suppressed: bool,
}

/// Where a delivery stands, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    /// Its status.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// The last failure, without personal data (reply code and class only).
    pub last_error: Option<String>,
}

/// A row that could be claimed but not decrypted: reported so the caller can fail it.
#[derive(Debug, Clone)]
pub struct UnreadableDelivery {
    /// Delivery id.
    pub id: DeliveryId,
    /// Why it could not be read.
    pub error: String,
}

/// What a claim returns, with whether the reader's address was suppressed since.
macro_rules! claim_returning {
    () => {
        "RETURNING id, message_id, attempts, created_at, recipient_enc, content_enc, \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM messages m \
                 JOIN members mem ON mem.id = m.reader_id \
                 JOIN suppressions s ON s.org_id = mem.org_id \
                                    AND s.email_index = mem.email_index \
                 WHERE m.id = deliveries.message_id) THEN 1 ELSE 0 END AS BIGINT) \
               AS suppressed"
    };
}

/// The due, unleased deliveries a claim takes: a conversation's before bulk ones
/// (see `Lane`), then oldest due first.
macro_rules! due {
    () => {
        "SELECT id FROM deliveries \
         WHERE due_at <= $2 AND (lease_until IS NULL OR lease_until <= $2) \
         ORDER BY lane, due_at LIMIT $3"
    };
}

/// The lease taken on them for one instance; the conditions are checked again, as
/// a row may have changed since it was selected.
macro_rules! lease {
    () => {
        "UPDATE deliveries SET lease_until = $1, updated_at = $2, claimed_by = $4 \
         WHERE due_at IS NOT NULL AND (lease_until IS NULL OR lease_until <= $2) "
    };
}

/// SQLite has one writer: the selection can sit in the `UPDATE`.
const CLAIM_SQLITE: &str = concat!(lease!(), "AND id IN (", due!(), ") ", claim_returning!());

/// PostgreSQL selects first, once, skipping rows other instances are claiming. In
/// `id IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` the planner may run the
/// sub-select more than once within the `UPDATE`, and claimed 56 rows when asked for
/// 7 (`tests/tests/claims.rs`); a materialised CTE runs exactly once.
const CLAIM_POSTGRES: &str = concat!(
    "WITH due AS MATERIALIZED (",
    due!(),
    " FOR UPDATE SKIP LOCKED) ",
    lease!(),
    "AND id IN (SELECT id FROM due) ",
    claim_returning!()
);

impl Store {
    /// Claims up to `limit` due deliveries for `lease_ms` milliseconds on behalf of
    /// `instance`.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn claim_due(
        &self,
        instance: &str,
        lease_ms: i64,
        limit: i64,
    ) -> Result<(Vec<ClaimedDelivery>, Vec<UnreadableDelivery>)> {
        let now = now_ms();
        let sql = match self.backend() {
            Backend::Sqlite => CLAIM_SQLITE,
            Backend::Postgres => CLAIM_POSTGRES,
        };
        let rows = sqlx::query(sql)
            .bind(now.saturating_add(lease_ms))
            .bind(now)
            .bind(limit)
            .bind(instance)
            .grouped_rows(self)
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            let id: DeliveryId = row.try_get("id")?;
            match self.open_delivery(&row) {
                Ok((rcpt_to, content)) => claimed.push(ClaimedDelivery {
                    suppressed: row.try_get::<i64, _>("suppressed")? != 0,
                    message_id: row.try_get("message_id")?,
                    attempts: row.try_get("attempts")?,
                    queued_at: row.try_get("created_at")?,
                    id,
                    rcpt_to,
                    content,
                }),
                Err(e) => unreadable.push(UnreadableDelivery {
                    id,
                    error: e.to_string(),
                }),
            }
        }
        Ok((claimed, unreadable))
    }

    /// Extends the lease of a delivery still claimed by `instance`. Returns false if
    /// the claim is no longer ours (it ended, or expired and was taken).
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn renew_lease(
        &self,
        delivery: &DeliveryId,
        instance: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_until = $3 \
             WHERE id = $1 AND claimed_by = $2 AND due_at IS NOT NULL AND lease_until IS NOT NULL",
        )
        .bind(delivery)
        .bind(instance)
        .bind(now_ms().saturating_add(lease_ms))
        .grouped(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Releases every claim `instance` holds: called when an instance starts, since
    /// nothing of its former life is still delivering. Returns how many were freed.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn release_claims(&self, instance: &str) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET lease_until = NULL, claimed_by = NULL \
             WHERE claimed_by = $1 AND due_at IS NOT NULL",
        )
        .bind(instance)
        .grouped(self)
        .await?;
        Ok(done.rows_affected())
    }

    fn open_delivery(&self, row: &sqlx::any::AnyRow) -> Result<(String, Vec<u8>)> {
        let missing = |what: &str| StoreError::Corrupt {
            table: "deliveries",
            detail: format!("queued delivery without {what}"),
        };
        let recipient: Option<Vec<u8>> = row.try_get("recipient_enc")?;
        let content: Option<Vec<u8>> = row.try_get("content_enc")?;
        let recipient = recipient.ok_or_else(|| missing("recipient"))?;
        let content = content.ok_or_else(|| missing("content"))?;
        Ok((
            self.crypto.decrypt_text(RECIPIENT, &recipient)?,
            self.crypto.decrypt(CONTENT, &content)?,
        ))
    }

    /// When the next delivery that is not yet due becomes due (Unix ms), if any: an
    /// idle worker sleeps until then rather than its whole poll interval, so that
    /// paced broadcast copies go out on time.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn next_due(&self) -> Result<Option<i64>> {
        // One look-up in the index per lane, rather than a scan across both.
        let row = sqlx::query(
            "SELECT (SELECT MIN(due_at) FROM deliveries WHERE lane = 0 AND due_at > $1) AS a, \
                    (SELECT MIN(due_at) FROM deliveries WHERE lane = 1 AND due_at > $1) AS b",
        )
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        let a: Option<i64> = row.try_get("a")?;
        let b: Option<i64> = row.try_get("b")?;
        Ok(a.into_iter().chain(b).min())
    }

    /// Records that a delivery was not attempted because its reader's address is
    /// suppressed; content and recipient go as for [`Self::mark_sent`].
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn mark_suppressed(&self, delivery: &DeliveryId) -> Result<()> {
        self.finish(
            delivery,
            DeliveryStatus::Suppressed,
            Some("recipient address suppressed after a hard bounce"),
        )
        .await
    }

    /// Records a permanent failure; content and recipient go as for [`Self::mark_sent`].
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn mark_failed(&self, delivery: &DeliveryId, error: &str) -> Result<()> {
        self.finish(delivery, DeliveryStatus::Failed, Some(error))
            .await
    }

    async fn finish(
        &self,
        delivery: &DeliveryId,
        status: DeliveryStatus,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(concat!(
            "UPDATE deliveries SET status = $1, last_error = $3, ",
            finish_set!(),
            " WHERE id = $4"
        ))
        .bind(status)
        .bind(now_ms())
        .bind(error)
        .bind(delivery)
        .grouped(self)
        .await?;
        Ok(())
    }

    /// Records a temporary failure: the delivery is deferred, due again at `due_at`.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn mark_retry(&self, delivery: &DeliveryId, due_at: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE deliveries SET status = $5, attempts = attempts + 1, due_at = $2, \
                 lease_until = NULL, claimed_by = NULL, last_error = $3, updated_at = $4 \
             WHERE id = $1",
        )
        .bind(delivery)
        .bind(due_at)
        .bind(error)
        .bind(now_ms())
        .bind(DeliveryStatus::Deferred)
        .grouped(self)
        .await?;
        Ok(())
    }

    /// Wipes content kept for retention whose time is up. Returns how many were wiped.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn purge_expired_content(&self) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET content_enc = NULL, purge_after = NULL \
             WHERE purge_after IS NOT NULL AND purge_after <= $1",
        )
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok(done.rows_affected())
    }

    /// Whether a message's encrypted content is still stored.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn content_kept(&self, message: &MessageId) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM deliveries WHERE message_id = $1 AND content_enc IS NOT NULL",
        )
        .bind(message)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The state of the delivery of a message.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails.
    pub async fn delivery_state(&self, message: &MessageId) -> Result<Option<DeliveryState>> {
        let row = sqlx::query(
            "SELECT status, attempts, last_error FROM deliveries WHERE message_id = $1",
        )
        .bind(message)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<DeliveryState> {
            Ok(DeliveryState {
                status: r.try_get("status")?,
                attempts: r.try_get("attempts")?,
                last_error: r.try_get("last_error")?,
            })
        })
        .transpose()
    }
}
