//! Messages relayed in a conversation, and the delivery queued for each.
//!
//! A message row records who wrote to whom and the relay's own `Message-ID`, which
//! is what readers' mail clients thread on. Its content lives, encrypted, only in
//! the delivery row, and only until delivery ends.

use sqlx::Row;

use crate::db::Store;
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::{ConversationId, DeliveryId, MemberId, MessageId, OrgId};
use crate::new_message::{Arrivals, NewMessage, Origin, QueuedMessage, Sealed};
use crate::rounds::write_in_round;

/// What a notice about an undeliverable message needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeliverable {
    /// Organisation.
    pub org_id: OrgId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// Who wrote it (and gets the notice).
    pub writer_id: MemberId,
    /// Who could not be reached.
    pub reader_id: MemberId,
    /// Our `Message-ID` of it, for threading the notice under it.
    pub rfc_message_id: String,
    /// Whether it was itself a notice (then nobody is told: no loop).
    pub is_notice: bool,
    /// Whether a notice already went out in this conversation since the given time.
    pub notified_recently: bool,
}

/// A stored message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Our id.
    pub id: MessageId,
    /// Conversation.
    pub conversation_id: ConversationId,
    /// The member who wrote it.
    pub writer_id: MemberId,
    /// The member it was for.
    pub reader_id: MemberId,
    /// Our `Message-ID`, without angle brackets.
    pub rfc_message_id: String,
}

/// Stores a message and queues its delivery of the composed `content` to
/// `reader_address`, both encrypted. Returns the delivery id.
///
/// Runs in the caller's transaction: the caller commits before acknowledging.
///
/// # Errors
/// [`crate::StoreError`] if encryption or the insert fails.
pub async fn insert_message_with_delivery(
    tx: &mut GroupTx,
    store: &Store,
    msg: &NewMessage<'_>,
    reader_address: &str,
    content: &[u8],
) -> Result<DeliveryId> {
    let sealed = Sealed::new(&store.crypto, reader_address, content)?;
    sealed.insert(tx.backend(), msg).execute(tx.conn()).await?;
    Ok(sealed.delivery_id)
}

impl Store {
    /// How many messages wait to be stored in the round now gathering.
    pub fn arrivals_gathering(&self) -> usize {
        self.arrivals.gathering()
    }

    /// Stores a message and queues its delivery, as
    /// [`insert_message_with_delivery`], as a write of its own: for a message whose
    /// conversation exists and that writes nothing else. Returns the delivery id
    /// once it is durable.
    ///
    /// It is stored in a round with the other messages arriving meanwhile, by one
    /// statement without a savepoint: if that fails, the batch fails with it and
    /// every writer in it is told to try again, which costs a retry, never a
    /// message.
    ///
    /// # Errors
    /// [`crate::StoreError`] if encryption, the insert or the commit fails.
    pub async fn queue_message(
        &self,
        msg: &NewMessage<'_>,
        reader_address: &str,
        content: &[u8],
    ) -> Result<DeliveryId> {
        let sealed = Sealed::new(&self.crypto, reader_address, content)?;
        let delivery_id = sealed.delivery_id.clone();
        write_in_round::<Arrivals>(&self.group, &self.arrivals, QueuedMessage::new(msg, sealed))
            .await?;
        Ok(delivery_id)
    }

    /// A message that could not be delivered, for the notice to its writer;
    /// `notified_since` (Unix ms) bounds "already told". `None` if there is no such
    /// message or no member wrote it (a broadcast's copy): nobody is to be told.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn undeliverable(
        &self,
        message: &MessageId,
        notified_since: i64,
    ) -> Result<Option<Undeliverable>> {
        let row = sqlx::query(
            "SELECT m.org_id, m.conversation_id, m.writer_id, m.reader_id, m.rfc_message_id, \
                    m.origin, \
                    (SELECT COUNT(*) FROM messages n WHERE n.conversation_id = m.conversation_id \
                       AND n.origin = $3 AND n.created_at > $2) AS recent \
             FROM messages m \
             WHERE m.id = $1 AND m.writer_id IS NOT NULL AND m.conversation_id IS NOT NULL",
        )
        .bind(message)
        .bind(notified_since)
        .bind(Origin::Notice)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Undeliverable> {
            let origin: Origin = r.try_get("origin")?;
            let recent: i64 = r.try_get("recent")?;
            Ok(Undeliverable {
                org_id: r.try_get("org_id")?,
                conversation_id: r.try_get("conversation_id")?,
                writer_id: r.try_get("writer_id")?,
                reader_id: r.try_get("reader_id")?,
                rfc_message_id: r.try_get("rfc_message_id")?,
                is_notice: origin == Origin::Notice,
                notified_recently: recent > 0,
            })
        })
        .transpose()
    }

    /// A message of an organisation between members, by our id.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn message_for_org(
        &self,
        org: &OrgId,
        id: &MessageId,
    ) -> Result<Option<MessageMeta>> {
        let row = sqlx::query(
            "SELECT id, conversation_id, writer_id, reader_id, rfc_message_id FROM messages \
             WHERE org_id = $1 AND id = $2 AND conversation_id IS NOT NULL \
               AND writer_id IS NOT NULL",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<MessageMeta> {
            Ok(MessageMeta {
                id: r.try_get("id")?,
                conversation_id: r.try_get("conversation_id")?,
                writer_id: r.try_get("writer_id")?,
                reader_id: r.try_get("reader_id")?,
                rfc_message_id: r.try_get("rfc_message_id")?,
            })
        })
        .transpose()
    }
}

/// An SQL expression: our `Message-ID`s of the latest `$limit` messages of the
/// conversation `$conversation`, oldest first, space-separated (NULL if none), so
/// that a read of other things can bring them along; [`references_from`] splits it.
macro_rules! latest_references {
    ($conversation:literal, $limit:literal) => {
        concat!(
            "(SELECT string_agg(l.rfc_message_id, ' ' ORDER BY l.created_at, l.id) \
               FROM (SELECT rfc_message_id, created_at, id FROM messages WHERE conversation_id = ",
            $conversation,
            " ORDER BY created_at DESC, id DESC LIMIT ",
            $limit,
            ") AS l)"
        )
    };
}
pub(crate) use latest_references;

/// The `Message-ID`s of a [`latest_references`] column.
pub(crate) fn references_from(column: Option<String>) -> Vec<String> {
    column
        .map(|ids| ids.split(' ').map(str::to_owned).collect())
        .unwrap_or_default()
}
