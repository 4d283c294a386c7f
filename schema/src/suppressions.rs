//! Bounces recorded against their delivery, and the addresses they make an
//! organisation stop sending to.

use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::events::{InboundKind, insert_event};
use crate::group::Grouped;
use crate::ids::{CategoryId, ConversationId, DeliveryId, MemberId, MessageId, OrgId};
use crate::new_message::Origin;
use crate::status::{BounceSeverity, DeliveryStatus};

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
    /// Whether the address is unusable for good or for now.
    pub severity: BounceSeverity,
}

/// The delivery a bounce was recorded for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounced {
    /// The organisation.
    pub org_id: OrgId,
    /// The conversation of the bounced message; none for a broadcast's copy.
    pub conversation_id: Option<ConversationId>,
    /// The message.
    pub message_id: MessageId,
}

/// A delivery's message and members, as a report about it needs them.
struct DeliveryMessage {
    bounced: Bounced,
    writer: Option<MemberId>,
    reader: MemberId,
    origin: Origin,
    /// The category, if the message is a broadcast's copy.
    category: Option<CategoryId>,
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
        delivery: &DeliveryId,
        bounce: &BounceRecord<'_>,
    ) -> Result<Option<Bounced>> {
        let Some(found) = self.delivery_message(delivery).await? else {
            return Ok(None);
        };
        let bounced = found.bounced;
        let summary = format!(
            "bounced ({}): {} {}",
            bounce.severity.as_str(),
            bounce.status.unwrap_or("-"),
            bounce.reason
        );
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE deliveries SET status = $4, bounce = $5, last_error = $2, updated_at = $3, \
                 due_at = NULL, lease_until = NULL, claimed_by = NULL \
             WHERE id = $1",
        )
        .bind(delivery)
        .bind(&summary)
        .bind(now_ms())
        .bind(DeliveryStatus::Bounced)
        .bind(bounce.severity)
        .execute(tx.conn())
        .await?;
        let suppress = match bounce.severity {
            BounceSeverity::Hard => Some(bounce.reason.to_owned()),
            BounceSeverity::Soft => {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM deliveries d JOIN messages m ON m.id = d.message_id \
                     WHERE d.status = $3 AND d.bounce = $4 AND d.updated_at > $2 \
                       AND m.reader_id = (SELECT reader_id FROM messages WHERE id = $1)",
                )
                .bind(&bounced.message_id)
                .bind(now_ms() - SOFT_BOUNCE_WINDOW_MS)
                .bind(DeliveryStatus::Bounced)
                .bind(BounceSeverity::Soft)
                .fetch_one(tx.conn())
                .await?;
                let soft: i64 = row.try_get("n")?;
                (soft >= SOFT_BOUNCES_TO_SUPPRESS).then(|| format!("{} (repeated)", bounce.reason))
            }
        };
        if let Some(reason) = suppress {
            sqlx::query(
                "INSERT INTO suppressions (org_id, email_index, reason, created_at) \
                 SELECT mem.org_id, mem.email_index, $2, $3 FROM deliveries d \
                 JOIN messages m ON m.id = d.message_id \
                 JOIN members mem ON mem.id = m.reader_id \
                 WHERE d.id = $1 AND mem.email_index IS NOT NULL \
                 ON CONFLICT (org_id, email_index) DO NOTHING",
            )
            .bind(delivery)
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
    pub async fn record_complaint(&self, delivery: &DeliveryId) -> Result<Option<Bounced>> {
        let Some(found) = self.delivery_message(delivery).await? else {
            return Ok(None);
        };
        let complained = found.bounced;
        let reader = found.reader;
        let mut tx = self.begin_write().await?;
        match (
            found.writer,
            complained.conversation_id.as_ref(),
            found.category,
        ) {
            // A member's message: its reader blocks its writer, and admins see it in
            // the conversation.
            (Some(writer), Some(conversation), _) => {
                if found.origin != Origin::Notice {
                    sqlx::query(
                        "INSERT INTO blocks (blocker_id, blocked_id, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (blocker_id, blocked_id) DO NOTHING",
                    )
                    .bind(&reader)
                    .bind(&writer)
                    .bind(now_ms())
                    .execute(tx.conn())
                    .await?;
                }
                insert_event(
                    &complained.org_id,
                    conversation,
                    &reader,
                    InboundKind::Complaint,
                )
                .execute(tx.conn())
                .await?;
            }
            // A broadcast's copy: its reader leaves the category, unless nobody can.
            (_, _, Some(category)) if !category.is_mandatory() => {
                sqlx::query(
                    "INSERT INTO category_optouts (member_id, category_id, org_id, created_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (member_id, category_id) DO NOTHING",
                )
                .bind(&reader)
                .bind(&category)
                .bind(&complained.org_id)
                .bind(now_ms())
                .execute(tx.conn())
                .await?;
            }
            _ => {}
        }
        tx.commit().await?;
        Ok(Some(complained))
    }

    /// The message a delivery carried, and its members.
    async fn delivery_message(&self, delivery: &DeliveryId) -> Result<Option<DeliveryMessage>> {
        let row = sqlx::query(
            "SELECT m.org_id, m.conversation_id, m.id AS message_id, m.writer_id, \
                    m.reader_id, m.origin, b.category_id FROM deliveries d \
             JOIN messages m ON m.id = d.message_id \
             LEFT JOIN broadcasts b ON b.id = m.broadcast_id WHERE d.id = $1",
        )
        .bind(delivery)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| -> Result<DeliveryMessage> {
            Ok(DeliveryMessage {
                bounced: Bounced {
                    org_id: row.try_get("org_id")?,
                    conversation_id: row.try_get("conversation_id")?,
                    message_id: row.try_get("message_id")?,
                },
                writer: row.try_get("writer_id")?,
                reader: row.try_get("reader_id")?,
                origin: row.try_get("origin")?,
                category: row.try_get("category_id")?,
            })
        })
        .transpose()
    }

    /// Why mail to a member's current address is suppressed, if it is.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn suppression(&self, member_id: &MemberId) -> Result<Option<String>> {
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
    pub async fn clear_suppression(&self, member_id: &MemberId) -> Result<bool> {
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
