//! Broadcasts: one message from the organisation to many members, stored as a
//! record of what to send and to whom, then expanded into copies in batches.
//!
//! The record keeps the audience and the content encrypted, with who sent it (the
//! staff member's name, for admins) and the API key's fingerprint. Expanding walks
//! the organisation's members in id order: each batch of copies (messages in the
//! bulk lane, paced at the organisation's rate) and the record's cursor move in one
//! transaction, and a member has at most one copy of a broadcast (a unique index),
//! so a restart or `kill -9` halfway neither repeats nor skips anyone. One instance
//! at a time expands a broadcast, under a lease; every instance's worker delivers.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::backend::Backend;
use crate::clock::now_ms;
use crate::db::Store;
use crate::error::{Result, StoreError};
use crate::group::{GroupTx, Grouped};
use crate::idempotency::record_idempotent_response;
use crate::ids::{BroadcastId, CategoryId, MemberId, MessageId, OrgId};
use crate::members::{Member, member_columns_as};
use crate::new_message::{NewMessage, Origin, Sealed, insert_all};
use crate::sql::text_enum;
use crate::status::DeliveryStatus;

const SPEC: &str = "broadcasts.spec";
const SENT_BY: &str = "broadcasts.sent_by";

/// Where a broadcast stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastStatus {
    /// Copies are still being made for its audience.
    Expanding,
    /// Every member of its audience has their copy queued.
    Expanded,
    /// Stopped: what had not gone out will not.
    Cancelled,
}

impl BroadcastStatus {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            BroadcastStatus::Expanding => "expanding",
            BroadcastStatus::Expanded => "expanded",
            BroadcastStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`BroadcastStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Expanding, Self::Expanded, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

text_enum!(BroadcastStatus);

/// What happens to a member's answer to a broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyPolicy {
    /// Not relayed.
    None,
}

impl ReplyPolicy {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyPolicy::None => "none",
        }
    }

    /// Parses [`ReplyPolicy::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        (text == "none").then_some(ReplyPolicy::None)
    }
}

text_enum!(ReplyPolicy);

/// A broadcast about to be recorded.
#[derive(Debug, Clone)]
pub struct NewBroadcast<'a> {
    /// Its id.
    pub id: &'a BroadcastId,
    /// The organisation sending it.
    pub org_id: &'a OrgId,
    /// Its category (possibly [`CategoryId::MANDATORY`]).
    pub category_id: &'a CategoryId,
    /// What happens to answers.
    pub reply_policy: ReplyPolicy,
    /// The audience and the content, as the composer reads them back (JSON).
    pub spec: &'a [u8],
    /// The staff member who sent it, for the record.
    pub sent_by: Option<&'a str>,
    /// The fingerprint of the API key it was sent with.
    pub api_key: &'a str,
    /// How many members it was counted for when sent.
    pub recipients: i64,
}

/// A recorded broadcast, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broadcast {
    /// Its id.
    pub id: BroadcastId,
    /// The organisation sending it.
    pub org_id: OrgId,
    /// Its category.
    pub category_id: CategoryId,
    /// What happens to answers.
    pub reply_policy: ReplyPolicy,
    /// The audience and the content (JSON).
    pub spec: Vec<u8>,
    /// The staff member who sent it.
    pub sent_by: Option<String>,
    /// The fingerprint of the API key it was sent with.
    pub api_key: String,
    /// Where it stands.
    pub status: BroadcastStatus,
    /// How many members it was counted for when sent.
    pub recipients: i64,
    /// How many copies are queued so far.
    pub queued: i64,
    /// The last member whose turn has come (by id), if any has.
    pub expanded_to: Option<MemberId>,
    /// When it was sent, Unix ms.
    pub created_at: i64,
}

/// A member of the organisation as a broadcast sees them: whether they left the
/// category, and whether their address is suppressed.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The member (their other addresses are not read: copies go to the main one).
    pub member: Member,
    /// They unsubscribed from the broadcast's category.
    pub unsubscribed: bool,
    /// Mail to their address bounced for good.
    pub suppressed: bool,
}

/// One member's copy of a broadcast, composed.
#[derive(Debug, Clone)]
pub struct Copy<'a> {
    /// The member it is for.
    pub reader_id: &'a MemberId,
    /// Their address.
    pub reader_address: &'a str,
    /// Our `Message-ID` of it.
    pub rfc_message_id: &'a str,
    /// The message as they will receive it.
    pub content: &'a [u8],
}

const BROADCAST_COLUMNS: &str = "id, org_id, category_id, reply_policy, spec_enc, sent_by_enc, \
     api_key, status, recipients, queued, expanded_to, created_at";

impl Store {
    /// Records a broadcast to be expanded, with the answer to its idempotency key
    /// (key, request fingerprint, response) in the same transaction if it came with
    /// one.
    ///
    /// # Errors
    /// [`StoreError`] if encryption or the insert fails (a unique violation if the
    /// key was recorded meanwhile by a concurrent request); then nothing was stored.
    pub async fn create_broadcast(
        &self,
        b: &NewBroadcast<'_>,
        idempotency: Option<(&str, &[u8], &str)>,
    ) -> Result<()> {
        let now = now_ms();
        let spec = self.crypto.encrypt(SPEC, b.spec)?;
        let sent_by = b
            .sent_by
            .map(|s| self.crypto.encrypt(SENT_BY, s.as_bytes()))
            .transpose()?;
        let insert = sqlx::query(
            "INSERT INTO broadcasts (id, org_id, category_id, reply_policy, spec_enc, \
                 sent_by_enc, api_key, status, recipients, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        )
        .bind(b.id)
        .bind(b.org_id)
        .bind(b.category_id)
        .bind(b.reply_policy)
        .bind(spec)
        .bind(sent_by)
        .bind(b.api_key)
        .bind(BroadcastStatus::Expanding)
        .bind(b.recipients)
        .bind(now);
        let mut tx = self.begin_write().await?;
        insert.execute(tx.conn()).await?;
        if let Some((key, request_hash, response)) = idempotency {
            record_idempotent_response(&mut tx, b.org_id, key, request_hash, response).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// One of the organisation's broadcasts.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn broadcast(&self, org: &OrgId, id: &BroadcastId) -> Result<Option<Broadcast>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE org_id = $1 AND id = $2"
        )))
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| self.broadcast_at(&r)).transpose()
    }

    /// A broadcast by id alone, for mail to its address.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn broadcast_by_id(&self, id: &BroadcastId) -> Result<Option<Broadcast>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {BROADCAST_COLUMNS} FROM broadcasts WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| self.broadcast_at(&r)).transpose()
    }

    /// Takes the oldest broadcast still to expand whose lease is free, for
    /// `lease_ms`, on behalf of `instance`.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn claim_broadcast(
        &self,
        instance: &str,
        lease_ms: i64,
    ) -> Result<Option<Broadcast>> {
        let now = now_ms();
        // Looked for with a read first: an idle instance asks every few seconds, and
        // a write each time would take a turn of the group commit for nothing.
        let waiting = sqlx::query(
            "SELECT 1 AS found FROM broadcasts \
             WHERE status = $1 AND (lease_until IS NULL OR lease_until <= $2) LIMIT 1",
        )
        .bind(BroadcastStatus::Expanding)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if waiting.is_none() {
            return Ok(None);
        }
        let free = "status = $4 AND (lease_until IS NULL OR lease_until <= $2)";
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE broadcasts SET lease_until = $1, claimed_by = $3, updated_at = $2 \
             WHERE {free} AND id = (SELECT id FROM broadcasts WHERE {free} \
                                    ORDER BY created_at LIMIT 1) \
             RETURNING {BROADCAST_COLUMNS}"
        )))
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(instance)
        .bind(BroadcastStatus::Expanding)
        .grouped_rows(self)
        .await?;
        rows.first().map(|r| self.broadcast_at(r)).transpose()
    }

    /// Frees the broadcasts `instance` was expanding, for an instance restarted under
    /// the same id to take back at once; how many there were.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn release_broadcast_claims(&self, instance: &str) -> Result<u64> {
        let held = sqlx::query(
            "SELECT 1 AS found FROM broadcasts WHERE claimed_by = $1 AND status = $2 LIMIT 1",
        )
        .bind(instance)
        .bind(BroadcastStatus::Expanding)
        .fetch_optional(&self.pool)
        .await?;
        if held.is_none() {
            return Ok(0);
        }
        let done = sqlx::query(
            "UPDATE broadcasts SET lease_until = NULL, claimed_by = NULL \
             WHERE claimed_by = $1 AND status = $2",
        )
        .bind(instance)
        .bind(BroadcastStatus::Expanding)
        .grouped(self)
        .await?;
        Ok(done.rows_affected())
    }

    /// The organisation's next `limit` members after `after` (by id), with what a
    /// broadcast in `category` needs to know of each.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn candidates(
        &self,
        org: &OrgId,
        category: &CategoryId,
        after: Option<&MemberId>,
        limit: i64,
    ) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            member_columns_as!("members"),
            ", CAST(CASE WHEN EXISTS (SELECT 1 FROM category_optouts o \
                   WHERE o.member_id = members.id AND o.category_id = $2) \
                 THEN 1 ELSE 0 END AS BIGINT) AS unsubscribed, \
               CAST(CASE WHEN EXISTS (SELECT 1 FROM suppressions s \
                   WHERE s.org_id = members.org_id AND s.email_index = members.email_index) \
                 THEN 1 ELSE 0 END AS BIGINT) AS suppressed \
             FROM members WHERE org_id = $1 AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(org)
        .bind(category)
        .bind(after.map_or("", MemberId::as_str))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Candidate {
                    member: self.member_from_row(row, "members_")?,
                    unsubscribed: row.try_get::<i64, _>("unsubscribed")? != 0,
                    suppressed: row.try_get::<i64, _>("suppressed")? != 0,
                })
            })
            .collect()
    }

    /// Queues a batch of copies of a broadcast `instance` holds, paced at
    /// `per_minute` after the organisation's bulk copies already queued, and moves its
    /// cursor to `last` (the last member looked at, whether or not they got a copy),
    /// all in one transaction. Returns when the organisation's next bulk copy would
    /// be due (Unix ms); `None`, with nothing stored, if the broadcast is no longer
    /// this instance's to expand (its lease was taken, or it was cancelled).
    ///
    /// # Errors
    /// [`StoreError`] if encryption or a write fails; then nothing was stored.
    pub async fn queue_copies(
        &self,
        b: &Broadcast,
        instance: &str,
        lease_ms: i64,
        copies: &[Copy<'_>],
        last: &MemberId,
        per_minute: i64,
    ) -> Result<Option<i64>> {
        let now = now_ms();
        let count = i64::try_from(copies.len()).unwrap_or(i64::MAX);
        let mut tx = self.begin_write().await?;
        let held = sqlx::query(
            "UPDATE broadcasts SET expanded_to = $3, queued = queued + $4, lease_until = $5, \
                 updated_at = $6 \
             WHERE id = $1 AND claimed_by = $2 AND status = $7 RETURNING id",
        )
        .bind(&b.id)
        .bind(instance)
        .bind(last)
        .bind(count)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(BroadcastStatus::Expanding)
        .fetch_optional(tx.conn())
        .await?;
        if held.is_none() {
            tx.rollback().await;
            return Ok(None);
        }
        let start = schedule(&mut tx, &b.org_id, now, count, per_minute).await?;
        let ids: Vec<MessageId> = copies.iter().map(|_| MessageId::generate()).collect();
        let mut sealed = Vec::with_capacity(copies.len());
        for (i, c) in (0_i64..).zip(copies) {
            let due = start.saturating_add(paced(i, per_minute));
            sealed.push(Sealed::bulk(
                &self.crypto,
                c.reader_address,
                c.content,
                due,
            )?);
        }
        let rows: Vec<_> = copies
            .iter()
            .zip(&ids)
            .zip(&sealed)
            .map(|((c, id), sealed)| {
                let msg = NewMessage {
                    id,
                    org_id: &b.org_id,
                    conversation_id: None,
                    broadcast_id: Some(&b.id),
                    writer_id: None,
                    reader_id: c.reader_id,
                    origin: Origin::Broadcast,
                    rfc_message_id: c.rfc_message_id,
                    sender_auth: None,
                };
                (msg, sealed, now)
            })
            .collect();
        insert_all(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(Some(start.saturating_add(paced(count, per_minute))))
    }

    /// Extends the lease of a broadcast `instance` is expanding; `false` if it is no
    /// longer its to expand.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn renew_broadcast_lease(
        &self,
        id: &BroadcastId,
        instance: &str,
        lease_ms: i64,
    ) -> Result<bool> {
        let now = now_ms();
        let done = sqlx::query(
            "UPDATE broadcasts SET lease_until = $3, updated_at = $4 \
             WHERE id = $1 AND claimed_by = $2 AND status = $5",
        )
        .bind(id)
        .bind(instance)
        .bind(now.saturating_add(lease_ms))
        .bind(now)
        .bind(BroadcastStatus::Expanding)
        .grouped(self)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Marks a broadcast whose every member had their turn as expanded.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn finish_expanding(&self, id: &BroadcastId, instance: &str) -> Result<()> {
        sqlx::query(
            "UPDATE broadcasts SET status = $3, lease_until = NULL, claimed_by = NULL, \
                 updated_at = $4 WHERE id = $1 AND claimed_by = $2 AND status = $5",
        )
        .bind(id)
        .bind(instance)
        .bind(BroadcastStatus::Expanded)
        .bind(now_ms())
        .bind(BroadcastStatus::Expanding)
        .grouped(self)
        .await?;
        Ok(())
    }

    /// Stops a broadcast: no more copies are made, and those not yet handed to a
    /// worker are cancelled with their content wiped. `false` if there is no such
    /// broadcast.
    ///
    /// # Errors
    /// [`StoreError`] if a write fails; then nothing changed.
    pub async fn cancel_broadcast(&self, org: &OrgId, id: &BroadcastId) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let found = sqlx::query("SELECT status FROM broadcasts WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(tx.conn())
            .await?;
        if found.is_none() {
            tx.rollback().await;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE broadcasts SET status = $2, lease_until = NULL, claimed_by = NULL, \
                 updated_at = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(BroadcastStatus::Cancelled)
        .bind(now)
        .execute(tx.conn())
        .await?;
        sqlx::query(
            "UPDATE deliveries SET status = $3, due_at = NULL, content_enc = NULL, \
                 recipient_enc = NULL, last_error = 'broadcast cancelled', updated_at = $2 \
             WHERE due_at IS NOT NULL AND (lease_until IS NULL OR lease_until <= $2) \
               AND message_id IN (SELECT id FROM messages WHERE broadcast_id = $1)",
        )
        .bind(id)
        .bind(now)
        .bind(DeliveryStatus::Cancelled)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    fn broadcast_at(&self, row: &AnyRow) -> Result<Broadcast> {
        let spec: Vec<u8> = row.try_get("spec_enc")?;
        let sent_by: Option<Vec<u8>> = row.try_get("sent_by_enc")?;
        Ok(Broadcast {
            id: row.try_get("id")?,
            org_id: row.try_get("org_id")?,
            category_id: row.try_get("category_id")?,
            reply_policy: row.try_get("reply_policy")?,
            spec: self.crypto.decrypt(SPEC, &spec)?,
            sent_by: sent_by
                .map(|s| self.crypto.decrypt_text(SENT_BY, &s))
                .transpose()?,
            api_key: row.try_get("api_key")?,
            status: row.try_get("status")?,
            recipients: row.try_get("recipients")?,
            queued: row.try_get("queued")?,
            expanded_to: row.try_get("expanded_to")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// Milliseconds after the first copy that the `i`th of a batch is due, at
/// `per_minute` copies a minute (no pacing when the rate is 0 or less).
fn paced(i: i64, per_minute: i64) -> i64 {
    if per_minute <= 0 {
        return 0;
    }
    i.saturating_mul(60_000) / per_minute
}

/// Reserves `count` slots of the organisation's bulk schedule and returns when the
/// first is due: after the copies already scheduled, and not before `now`.
async fn schedule(
    tx: &mut GroupTx,
    org: &OrgId,
    now: i64,
    count: i64,
    per_minute: i64,
) -> Result<i64> {
    let greatest = match tx.backend() {
        Backend::Sqlite => "MAX",
        Backend::Postgres => "GREATEST",
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE organisations SET bulk_next_due = {greatest}(bulk_next_due, $2) + $3 \
         WHERE id = $1 RETURNING bulk_next_due"
    )))
    .bind(org)
    .bind(now)
    .bind(paced(count, per_minute))
    .fetch_optional(tx.conn())
    .await?
    .ok_or_else(|| StoreError::Corrupt {
        table: "organisations",
        detail: "a broadcast's organisation is gone".into(),
    })?;
    let next: i64 = row.try_get("bulk_next_due")?;
    Ok(next - paced(count, per_minute))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_spread_evenly_over_the_minute() {
        assert_eq!(paced(0, 600), 0);
        assert_eq!(paced(1, 600), 100);
        assert_eq!(paced(600, 600), 60_000);
        assert_eq!(paced(5, 0), 0);
    }
}
