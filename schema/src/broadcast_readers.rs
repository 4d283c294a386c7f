//! What members do with a broadcast once their copy arrived, and what admins see of
//! it: answering it (the member who answered, and the organisation's automatic
//! answer, at most one a day), reading it by its link, and how far its copies went.

use sqlx::Row;

use crate::broadcasts::{Broadcast, Copy};
use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::Grouped;
use crate::ids::{BroadcastId, MemberId, MessageId, OrgId};
use crate::members::{Member, member_columns_as};
use crate::new_message::{NewMessage, Origin, Sealed, insert_all};
use crate::status::DeliveryStatus;

/// How far a broadcast's copies went, by delivery status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Copies with each status.
    pub by_status: Vec<(DeliveryStatus, i64)>,
    /// Members who unsubscribed from the category since they got their copy.
    pub unsubscribed: i64,
    /// Members who opened their link to it, each once.
    pub read: i64,
}

impl Progress {
    /// Copies with `status`.
    pub fn count(&self, status: DeliveryStatus) -> i64 {
        self.by_status
            .iter()
            .filter(|(s, _)| *s == status)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Store {
    /// The member who got a copy of the broadcast and is known by `address` (their
    /// main address or another of theirs), if any.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn broadcast_reader(
        &self,
        broadcast: &BroadcastId,
        address: &str,
    ) -> Result<Option<Member>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            member_columns_as!("members"),
            " FROM messages m JOIN members ON members.id = m.reader_id \
             WHERE m.broadcast_id = $1 AND (members.email_index = $2 OR EXISTS \
                 (SELECT 1 FROM member_addresses a \
                  WHERE a.member_id = members.id AND a.email_index = $2)) \
             LIMIT 1"
        ))
        .bind(broadcast)
        .bind(self.crypto.email_index(address))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.member_at(&row, "members_").await?)),
            None => Ok(None),
        }
    }

    /// Queues the organisation's automatic answer to a member who answered a
    /// broadcast, unless they were sent one since `not_since` (Unix ms): the answer
    /// and the time of it are stored in one transaction. Returns whether it was
    /// queued.
    ///
    /// # Errors
    /// [`StoreError`] if encryption or a write fails; then nothing was stored.
    pub async fn queue_broadcast_answer(
        &self,
        org: &OrgId,
        reader: &MemberId,
        answer: &Copy<'_>,
        not_since: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let due = sqlx::query(
            "INSERT INTO broadcast_answers (member_id, answered_at) VALUES ($1, $2) \
             ON CONFLICT (member_id) DO UPDATE SET answered_at = excluded.answered_at \
             WHERE broadcast_answers.answered_at <= $3 RETURNING member_id",
        )
        .bind(reader)
        .bind(now)
        .bind(not_since)
        .fetch_optional(tx.conn())
        .await?;
        if due.is_none() {
            tx.rollback().await;
            return Ok(false);
        }
        let sealed = Sealed::new(&self.crypto, answer.reader_address, answer.content)?;
        let id = MessageId::generate();
        let msg = NewMessage {
            id: &id,
            org_id: org,
            conversation_id: None,
            broadcast_id: None,
            writer_id: None,
            reader_id: reader,
            origin: Origin::Notice,
            rfc_message_id: answer.rfc_message_id,
            sender_auth: None,
        };
        insert_all(&mut tx, &[(msg, &sealed, now)]).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How far a broadcast's copies went.
    ///
    /// # Errors
    /// [`StoreError`] if a query fails.
    pub async fn broadcast_progress(&self, b: &Broadcast) -> Result<Progress> {
        let rows = sqlx::query(
            "SELECT d.status, COUNT(*) AS n FROM messages m \
             JOIN deliveries d ON d.message_id = m.id \
             WHERE m.broadcast_id = $1 GROUP BY d.status",
        )
        .bind(&b.id)
        .fetch_all(&self.pool)
        .await?;
        let by_status = rows
            .iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<Result<Vec<_>>>()?;
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM messages m JOIN category_optouts o \
                 ON o.member_id = m.reader_id AND o.category_id = $2 \
             WHERE m.broadcast_id = $1 AND o.created_at >= m.created_at",
        )
        .bind(&b.id)
        .bind(&b.category_id)
        .fetch_one(&self.pool)
        .await?;
        let read = sqlx::query("SELECT COUNT(*) AS n FROM broadcast_reads WHERE broadcast_id = $1")
            .bind(&b.id)
            .fetch_one(&self.pool)
            .await?;
        Ok(Progress {
            by_status,
            unsubscribed: row.try_get("n")?,
            read: read.try_get("n")?,
        })
    }

    /// Records that `member` opened their link to a broadcast (once, however often).
    ///
    /// # Errors
    /// [`StoreError`] if the write fails.
    pub async fn record_read(&self, broadcast: &BroadcastId, member: &MemberId) -> Result<()> {
        sqlx::query(
            "INSERT INTO broadcast_reads (broadcast_id, member_id, read_at) VALUES ($1, $2, $3) \
             ON CONFLICT (broadcast_id, member_id) DO NOTHING",
        )
        .bind(broadcast)
        .bind(member)
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok(())
    }
}
