//! What organisation admins may see of conversations: who, when, how many, and how
//! delivery went. Never content, never addresses.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::Store;
use crate::error::Result;
use crate::ids::{ConversationId, ExternalId, MessageId, OrgId};
use crate::new_message::Origin;
use crate::status::DeliveryStatus;

/// A conversation, as metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationSummary {
    /// Our id.
    pub id: ConversationId,
    /// Directory ids of the members taking part.
    pub participants: Vec<ExternalId>,
    /// When it started, Unix ms.
    pub created_at: i64,
    /// Messages relayed in it.
    pub message_count: i64,
    /// When the last one was accepted, Unix ms.
    pub last_message_at: Option<i64>,
}

/// One relayed message, as metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// Our id.
    pub id: MessageId,
    /// Directory id of the writer.
    pub writer: ExternalId,
    /// Directory id of the reader.
    pub reader: ExternalId,
    /// Where it entered.
    pub origin: Origin,
    /// When it was accepted, Unix ms.
    pub created_at: i64,
    /// Where its delivery stands (as [`Store::delivery_state`] says).
    pub status: Option<DeliveryStatus>,
    /// How the writer's domain was authenticated (replies by mail only).
    pub sender_auth: Option<String>,
}

/// Selects a conversation summary; a macro so that queries stay `&'static str`.
macro_rules! summary_select {
    () => {
        "SELECT c.id, c.created_at, ma.external_id AS a, mb.external_id AS b, \
             (SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) AS n, \
             (SELECT MAX(m.created_at) FROM messages m WHERE m.conversation_id = c.id) AS last \
         FROM conversations c \
         JOIN members ma ON ma.id = c.member_a JOIN members mb ON mb.id = c.member_b "
    };
}

impl Store {
    /// A conversation of `org_id`, if it exists.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn conversation_summary(
        &self,
        org_id: &OrgId,
        id: &ConversationId,
    ) -> Result<Option<ConversationSummary>> {
        let row = sqlx::query(concat!(
            summary_select!(),
            "WHERE c.org_id = $1 AND c.id = $2"
        ))
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| summary_from_row(&r)).transpose()
    }

    /// The conversations a member takes part in, most recent first.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn member_conversations(
        &self,
        org_id: &OrgId,
        external_id: &ExternalId,
    ) -> Result<Vec<ConversationSummary>> {
        let rows = sqlx::query(concat!(
            summary_select!(),
            "WHERE c.org_id = $1 AND (ma.external_id = $2 OR mb.external_id = $2) \
             ORDER BY c.created_at DESC"
        ))
        .bind(org_id)
        .bind(external_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(summary_from_row).collect()
    }

    /// The latest `limit` messages of a conversation, newest first.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn conversation_messages(
        &self,
        conversation_id: &ConversationId,
        limit: i64,
    ) -> Result<Vec<MessageSummary>> {
        let rows = sqlx::query(
            "SELECT m.id, w.external_id AS writer, r.external_id AS reader, m.origin, \
                 m.created_at, m.sender_auth, d.status \
             FROM messages m JOIN members w ON w.id = m.writer_id \
             JOIN members r ON r.id = m.reader_id \
             LEFT JOIN deliveries d ON d.message_id = m.id \
             WHERE m.conversation_id = $1 ORDER BY m.created_at DESC, m.id DESC LIMIT $2",
        )
        .bind(conversation_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageSummary {
                    id: r.try_get("id")?,
                    writer: r.try_get("writer")?,
                    reader: r.try_get("reader")?,
                    origin: r.try_get("origin")?,
                    created_at: r.try_get("created_at")?,
                    status: r.try_get("status")?,
                    sender_auth: r.try_get("sender_auth")?,
                })
            })
            .collect()
    }
}

fn summary_from_row(row: &AnyRow) -> Result<ConversationSummary> {
    let mut participants: Vec<ExternalId> = vec![row.try_get("a")?, row.try_get("b")?];
    participants.sort();
    Ok(ConversationSummary {
        id: row.try_get("id")?,
        participants,
        created_at: row.try_get("created_at")?,
        message_count: row.try_get("n")?,
        last_message_at: row.try_get("last")?,
    })
}
