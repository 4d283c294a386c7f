//! The queue as an operator sees it (`maskrelay queue …`): deliveries listed and
//! shown without their recipient or content, retried now, or cancelled.

use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::{ConversationId, DeliveryId, MessageId};
use crate::status::DeliveryStatus;

/// One delivery, without personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryInfo {
    /// Delivery id.
    pub id: DeliveryId,
    /// The message.
    pub message_id: MessageId,
    /// The conversation; none for a broadcast's copy.
    pub conversation_id: Option<ConversationId>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// When the next attempt is due (Unix ms), if it is pending.
    pub due_at: Option<i64>,
    /// The last reply code and reason, without the remote text.
    pub last_error: Option<String>,
    /// When it was queued, Unix ms.
    pub created_at: i64,
    /// When it last changed, Unix ms.
    pub updated_at: i64,
}

/// The columns [`info`] reads, with the tables they come from.
macro_rules! delivery_from {
    () => {
        "SELECT d.id, d.message_id, m.conversation_id, d.status, d.attempts, \
         d.due_at, d.last_error, d.created_at, d.updated_at \
         FROM deliveries d JOIN messages m ON m.id = d.message_id "
    };
}

fn info(row: &sqlx::any::AnyRow) -> Result<DeliveryInfo> {
    Ok(DeliveryInfo {
        id: row.try_get("id")?,
        message_id: row.try_get("message_id")?,
        conversation_id: row.try_get("conversation_id")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        due_at: row.try_get("due_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// The newest `limit` deliveries, of one status or all.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn list_deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliveryInfo>> {
        let rows = match status {
            Some(status) => {
                sqlx::query(concat!(
                    delivery_from!(),
                    "WHERE d.status = $1 ORDER BY d.created_at DESC, d.id LIMIT $2"
                ))
                .bind(status)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(concat!(
                    delivery_from!(),
                    "ORDER BY d.created_at DESC, d.id LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(info).collect()
    }

    /// One delivery.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn delivery_info(&self, id: &DeliveryId) -> Result<Option<DeliveryInfo>> {
        let row = sqlx::query(concat!(delivery_from!(), "WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(info).transpose()
    }

    /// Makes a pending delivery due now; `false` if it is not pending.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the update fails.
    pub async fn retry_now(&self, id: &DeliveryId) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET due_at = $2, updated_at = $2 \
             WHERE id = $1 AND due_at IS NOT NULL",
        )
        .bind(id)
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Cancels a pending delivery and wipes its recipient and content; `false` if it
    /// is not pending. One being attempted right now may still arrive.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the update fails.
    pub async fn cancel_delivery(&self, id: &DeliveryId) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE deliveries SET status = $3, due_at = NULL, content_enc = NULL, \
                 recipient_enc = NULL, lease_until = NULL, claimed_by = NULL, \
                 last_error = 'cancelled by an operator', updated_at = $2 \
             WHERE id = $1 AND due_at IS NOT NULL",
        )
        .bind(id)
        .bind(now_ms())
        .bind(DeliveryStatus::Cancelled)
        .grouped(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
