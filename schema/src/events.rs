//! Machine-generated mail that reached a relay address and was recorded instead of
//! relayed: auto-replies and delivery reports. Only the fact is kept, never content.

use sqlx::Row;

use crate::db::Store;
use crate::error::Result;
use crate::ids::{new_id, now_ms};

/// What kind of machine-generated mail arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    /// A vacation notice or other automatic answer.
    AutoReply,
    /// A delivery status notification, read receipt or abuse report.
    DeliveryReport,
}

impl InboundKind {
    /// The value stored and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundKind::AutoReply => "auto_reply",
            InboundKind::DeliveryReport => "delivery_report",
        }
    }
}

/// How many of each kind a conversation has recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboundCounts {
    /// Auto-replies.
    pub auto_replies: i64,
    /// Delivery reports.
    pub delivery_reports: i64,
}

impl Store {
    /// Records that mail of `kind` from `member_id` arrived in a conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the insert fails.
    pub async fn record_inbound(
        &self,
        org_id: &str,
        conversation_id: &str,
        member_id: &str,
        kind: InboundKind,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO inbound_events (id, org_id, conversation_id, member_id, kind, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(conversation_id)
        .bind(member_id)
        .bind(kind.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The recorded counts of a conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn inbound_counts(&self, conversation_id: &str) -> Result<InboundCounts> {
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM inbound_events WHERE conversation_id = $1 GROUP BY kind",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = InboundCounts::default();
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            if kind == InboundKind::AutoReply.as_str() {
                counts.auto_replies = n;
            } else if kind == InboundKind::DeliveryReport.as_str() {
                counts.delivery_reports = n;
            }
        }
        Ok(counts)
    }
}
