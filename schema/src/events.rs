//! Mail that reached a relay address and was recorded instead of relayed:
//! auto-replies, delivery and feedback reports, and replies refused by the rules on
//! who may write to whom. Only the fact (and a refusal's reason) is kept, never content.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::{ConversationId, MemberId, OrgId};
use crate::sql::text_enum;

/// Why the rules on who may write to whom refused a message, as recorded and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefusalReason {
    /// The writer is not an active member.
    WriterInactive,
    /// The reader is not an active member.
    ReaderInactive,
    /// The organisation has turned member messages off.
    MessagingDisabled,
    /// The reader has turned member messages off.
    ReaderOptedOut,
    /// The reader has blocked the writer.
    Blocked,
    /// The reader's address bounced for good.
    ReaderUnreachable,
    /// The writer started too many new conversations.
    RateLimited,
}

impl RefusalReason {
    const ALL: [RefusalReason; 7] = [
        RefusalReason::WriterInactive,
        RefusalReason::ReaderInactive,
        RefusalReason::MessagingDisabled,
        RefusalReason::ReaderOptedOut,
        RefusalReason::Blocked,
        RefusalReason::ReaderUnreachable,
        RefusalReason::RateLimited,
    ];

    /// A stable name for the record and the API's error code.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::WriterInactive => "writer_inactive",
            RefusalReason::ReaderInactive => "reader_inactive",
            RefusalReason::MessagingDisabled => "messaging_disabled",
            RefusalReason::ReaderOptedOut => "recipient_opted_out",
            RefusalReason::Blocked => "blocked",
            RefusalReason::ReaderUnreachable => "recipient_unreachable",
            RefusalReason::RateLimited => "rate_limited",
        }
    }

    /// Parses [`RefusalReason::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

text_enum!(RefusalReason);

/// What kind of mail arrived and was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundKind {
    /// A vacation notice or other automatic answer.
    AutoReply,
    /// A delivery status notification or read receipt.
    DeliveryReport,
    /// A spam complaint or other feedback report (RFC 5965 or a provider's own format).
    Complaint,
    /// A member's reply refused by the rules on who may write to whom.
    Refused(RefusalReason),
}

impl InboundKind {
    /// The value stored and shown by the API.
    pub fn as_str(self) -> &'static str {
        self.stored().as_str()
    }

    /// The kind as its column holds it; a refusal's reason has a column of its own.
    fn stored(self) -> StoredKind {
        match self {
            InboundKind::AutoReply => StoredKind::AutoReply,
            InboundKind::DeliveryReport => StoredKind::DeliveryReport,
            InboundKind::Complaint => StoredKind::Complaint,
            InboundKind::Refused(_) => StoredKind::Refused,
        }
    }

    fn reason(self) -> Option<RefusalReason> {
        match self {
            InboundKind::Refused(reason) => Some(reason),
            _ => None,
        }
    }
}

/// The `kind` column of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredKind {
    AutoReply,
    DeliveryReport,
    Complaint,
    Refused,
}

impl StoredKind {
    const ALL: [StoredKind; 4] = [
        StoredKind::AutoReply,
        StoredKind::DeliveryReport,
        StoredKind::Complaint,
        StoredKind::Refused,
    ];

    fn as_str(self) -> &'static str {
        match self {
            StoredKind::AutoReply => "auto_reply",
            StoredKind::DeliveryReport => "delivery_report",
            StoredKind::Complaint => "complaint",
            StoredKind::Refused => "refused",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

text_enum!(StoredKind);

/// The statement recording that mail of `kind` from `member_id` arrived in a
/// conversation.
pub(crate) fn insert_event<'q>(
    org_id: &OrgId,
    conversation_id: &ConversationId,
    member_id: &MemberId,
    kind: InboundKind,
) -> Query<'q, Any, AnyArguments> {
    sqlx::query(
        "INSERT INTO inbound_events \
         (id, org_id, conversation_id, member_id, kind, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(org_id.clone())
    .bind(conversation_id.clone())
    .bind(member_id.clone())
    .bind(kind.stored())
    .bind(kind.reason())
    .bind(now_ms())
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
    pub refused: Vec<(RefusalReason, i64)>,
}

impl Store {
    /// Records that mail of `kind` from `member_id` arrived in a conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the insert fails.
    pub async fn record_inbound(
        &self,
        org_id: &OrgId,
        conversation_id: &ConversationId,
        member_id: &MemberId,
        kind: InboundKind,
    ) -> Result<()> {
        insert_event(org_id, conversation_id, member_id, kind)
            .grouped(self)
            .await?;
        Ok(())
    }

    /// The recorded counts of a conversation.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn inbound_counts(&self, conversation_id: &ConversationId) -> Result<InboundCounts> {
        let rows = sqlx::query(
            "SELECT kind, reason, COUNT(*) AS n FROM inbound_events WHERE conversation_id = $1 \
             GROUP BY kind, reason ORDER BY kind, reason",
        )
        .bind(conversation_id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = InboundCounts::default();
        for row in rows {
            let kind: StoredKind = row.try_get("kind")?;
            let n: i64 = row.try_get("n")?;
            match kind {
                StoredKind::AutoReply => counts.auto_replies += n,
                StoredKind::DeliveryReport => counts.delivery_reports += n,
                StoredKind::Complaint => counts.complaints += n,
                StoredKind::Refused => {
                    if let Some(reason) = row.try_get::<Option<RefusalReason>, _>("reason")? {
                        counts.refused.push((reason, n));
                    }
                }
            }
        }
        Ok(counts)
    }
}
