//! Bounces recorded against their delivery, and the addresses they make an
//! organisation stop sending to.

use sqlx::Row;

use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::now_ms;

/// Soft bounces (a full mailbox, a suspended account…) that suppress an address when
/// this many come back within [`SOFT_BOUNCE_WINDOW_MS`]: one is weather, five in a
/// week is a mailbox nobody reads.
pub const SOFT_BOUNCES_TO_SUPPRESS: i64 = 5;
/// The window soft bounces are counted in: seven days.
pub const SOFT_BOUNCE_WINDOW_MS: i64 = 7 * 86_400_000;

/// What a bounce report said about a delivery.
#[derive(Debug, Clone, Copy)]
pub struct BounceRecord<'a> {
    /// The enhanced status code, if any (`5.1.1`).
    pub status: Option<&'a str>,
    /// Why (sisimai's names: `userunknown`, `mailboxfull`…).
    pub reason: &'a str,
    /// Whether the address is unusable for good.
    pub hard: bool,
}

/// The delivery a bounce was recorded for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounced {
    /// The organisation.
    pub org_id: String,
    /// The conversation of the bounced message.
    pub conversation_id: String,
    /// The message.
    pub message_id: String,
}

/// A delivery's message and members, as a report about it needs them.
struct DeliveryMessage {
    bounced: Bounced,
    writer: String,
    reader: String,
    origin: String,
}

impl Store {
    /// Marks a delivery `bounced` with what the report said and suppresses the
    /// recipient's current address in the organisation after a hard bounce, or after
    /// [`SOFT_BOUNCES_TO_SUPPRESS`] soft ones within [`SOFT_BOUNCE_WINDOW_MS`]. `None`
    /// if no such delivery exists.
    ///
    /// # Errors
    /// [`crate::StoreError`] if a query fails.
    pub async fn record_bounce(
        &self,
        delivery_id: &str,
        bounce: &BounceRecord<'_>,
    ) -> Result<Option<Bounced>> {
        let Some(found) = self.delivery_message(delivery_id).await? else {
            return Ok(None);
        };
        let bounced = found.bounced;
        let severity = if bounce.hard { "hard" } else { "soft" };
        let summary = format!(
            "bounced ({severity}): {} {}",
            bounce.status.unwrap_or("-"),
            bounce.reason
        );
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET status = 'bounced', last_error = $2, updated_at = $3 \
             WHERE id = $1",
        )
        .bind(delivery_id)
        .bind(&summary)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        let suppress = if bounce.hard {
            Some(bounce.reason.to_owned())
        } else {
            let row = sqlx::query(
                "SELECT COUNT(*) AS n FROM deliveries d JOIN messages m ON m.id = d.message_id \
                 WHERE d.status = 'bounced' AND d.last_error LIKE 'bounced (soft)%' \
                   AND d.updated_at > $2 AND m.recipient_id = \
                     (SELECT recipient_id FROM messages WHERE id = $1)",
            )
            .bind(&bounced.message_id)
            .bind(now_ms() - SOFT_BOUNCE_WINDOW_MS)
            .fetch_one(tx.conn())
            .await?;
            let soft: i64 = row.try_get("n")?;
            (soft >= SOFT_BOUNCES_TO_SUPPRESS).then(|| format!("{} (repeated)", bounce.reason))
        };
        if let Some(reason) = suppress {
            sqlx::query(
                "INSERT INTO suppressions (org_id, email_index, reason, created_at) \
                 SELECT mem.org_id, mem.email_index, $2, $3 FROM deliveries d \
                 JOIN messages m ON m.id = d.message_id \
                 JOIN members mem ON mem.id = m.recipient_id \
                 WHERE d.id = $1 AND mem.email_index IS NOT NULL \
                 ON CONFLICT (org_id, email_index) DO NOTHING",
            )
            .bind(delivery_id)
            .bind(reason)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        Ok(Some(bounced))
    }

    /// A spam complaint (ARF) about a delivery: its reader blocks its writer, so that
    /// nothing more from that writer reaches them, and the complaint is recorded
    /// in the conversation for the organisation's admins. `None` if no such delivery.
    ///
    /// # Errors
    /// [`crate::StoreError`] if a query fails.
    pub async fn record_complaint(&self, delivery_id: &str) -> Result<Option<Bounced>> {
        let Some(found) = self.delivery_message(delivery_id).await? else {
            return Ok(None);
        };
        let (complained, writer, reader) = (found.bounced, found.writer, found.reader);
        let origin = found.origin;
        let mut tx = self.begin_write().await?;
        // A complaint about our own notice blocks nobody: no member wrote it.
        if origin != crate::messages::Origin::Notice.as_str() {
            sqlx::query(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
            )
            .bind(&reader)
            .bind(&writer)
            .bind(now_ms())
            .execute(tx.conn())
            .await?;
        }
        sqlx::query(
            "INSERT INTO inbound_events (id, org_id, conversation_id, member_id, kind, created_at) \
             VALUES ($1, $2, $3, $4, 'complaint', $5)",
        )
        .bind(crate::ids::new_id())
        .bind(&complained.org_id)
        .bind(&complained.conversation_id)
        .bind(&reader)
        .bind(now_ms())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(Some(complained))
    }

    /// The message a delivery carried, and its members.
    async fn delivery_message(&self, delivery_id: &str) -> Result<Option<DeliveryMessage>> {
        let row = sqlx::query(
            "SELECT m.org_id, m.conversation_id, m.id AS message_id, m.sender_id, \
                    m.recipient_id, m.origin FROM deliveries d \
             JOIN messages m ON m.id = d.message_id WHERE d.id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<DeliveryMessage> {
            Ok(DeliveryMessage {
                bounced: Bounced {
                    org_id: row.try_get("org_id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    message_id: row.try_get("message_id")?,
                },
                writer: row.try_get("sender_id")?,
                reader: row.try_get("recipient_id")?,
                origin: row.try_get("origin")?,
            })
        })
        .transpose()
    }

    /// Why mail to a member's current address is suppressed, if it is.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn suppression(&self, member_id: &str) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT s.reason FROM suppressions s JOIN members mem \
             ON mem.org_id = s.org_id AND mem.email_index = s.email_index WHERE mem.id = $1",
        )
        .bind(member_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("reason")).transpose()?)
    }

    /// Lifts the suppression of a member's current address; `false` if there was none.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the delete fails.
    pub async fn clear_suppression(&self, member_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM suppressions WHERE (org_id, email_index) IN \
             (SELECT org_id, email_index FROM members WHERE id = $1)",
        )
        .bind(member_id)
        .grouped(self)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
