//! Mail that reached a relay address and was recorded instead of relayed:
//! auto-replies, delivery and feedback reports, and replies refused by the rules on
//! who may write to whom. Only the fact (and a refusal's reason) is kept, never content.

use sqlx::Row;

use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::{new_id, now_ms};

/// What kind of mail arrived and was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    /// A vacation notice or other automatic answer.
    AutoReply,
    /// A delivery status notification or read receipt.
    DeliveryReport,
    /// A spam complaint or other feedback report (RFC 5965 or a provider's own format).
    Complaint,
    /// A member's reply refused by the rules on who may write to whom; the reason is
    /// a stable name such as `writer_inactive`.
    Refused(&'static str),
}

impl InboundKind {
    /// The value stored and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            InboundKind::AutoReply => "auto_reply",
            InboundKind::DeliveryReport => "delivery_report",
            InboundKind::Complaint => "complaint",
            InboundKind::Refused(_) => "refused",
        }
    }

    fn reason(self) -> Option<&'static str> {
        match self {
            InboundKind::Refused(reason) => Some(reason),
            _ => None,
        }
    }
}

/// How many of each kind a conversation has recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundCounts {
    /// Auto-replies.
    pub auto_replies: i64,
    /// Delivery reports.
    pub delivery_reports: i64,
    /// Complaints and feedback reports.
    pub complaints: i64,
    /// Refused replies, by reason, in order of reason.
    pub refused: Vec<(String, i64)>,
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
            "INSERT INTO inbound_events \
             (id, org_id, conversation_id, member_id, kind, reason, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(new_id())
        .bind(org_id)
        .bind(conversation_id)
        .bind(member_id)
        .bind(kind.as_str())
        .bind(kind.reason())
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok(())
    }

    /// The recorded counts of a conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn inbound_counts(&self, conversation_id: &str) -> Result<InboundCounts> {
        let rows = sqlx::query(
            "SELECT kind, reason, COUNT(*) AS n FROM inbound_events WHERE conversation_id = $1 \
             GROUP BY kind, reason ORDER BY kind, reason",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = InboundCounts::default();
        for row in rows {
            let kind: String = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            match kind.as_str() {
                "auto_reply" => counts.auto_replies += n,
                "delivery_report" => counts.delivery_reports += n,
                "complaint" => counts.complaints += n,
                "refused" => {
                    let reason: Option<String> = row.try_get("reason")?;
                    counts.refused.push((reason.unwrap_or_default(), n));
                }
                _ => {}
            }
        }
        Ok(counts)
    }
}
