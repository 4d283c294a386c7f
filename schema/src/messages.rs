//! Messages relayed in a conversation, and the delivery queued for each.
//!
//! A message row records who wrote to whom and the relay's own `Message-ID`, which
//! is what recipients' mail clients thread on. Its content lives, encrypted, only in
//! the delivery row, and only until delivery ends.

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row};

use crate::db::{Backend, Store};
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::{new_id, now_ms};
use crate::rounds::{RoundWrite, Rounds, write_in_round};

pub(crate) const CONTENT: &str = "deliveries.content";
pub(crate) const RECIPIENT: &str = "deliveries.recipient";

/// Where a message entered the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `POST /v1/messages`.
    Api,
    /// A reply received by the SMTP listener.
    Smtp,
    /// maskrelay's own notice to a writer that their message could not be delivered.
    Notice,
}

impl Origin {
    /// The value stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Smtp => "smtp",
            Origin::Notice => "notice",
        }
    }
}

/// What a notice about an undeliverable message needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undeliverable {
    /// Organisation.
    pub org_id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Who wrote it (and gets the notice).
    pub writer_id: String,
    /// Who could not be reached.
    pub reader_id: String,
    /// Our `Message-ID` of it, for threading the notice under it.
    pub rfc_message_id: String,
    /// Whether it was itself a notice (then nobody is told: no loop).
    pub is_notice: bool,
    /// Whether a notice already went out in this conversation since the given time.
    pub notified_recently: bool,
}

/// A message about to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Pre-allocated id (the composer needs it before the insert).
    pub id: &'a str,
    /// Organisation.
    pub org_id: &'a str,
    /// Conversation.
    pub conversation_id: &'a str,
    /// Writer.
    pub sender_id: &'a str,
    /// Reader.
    pub recipient_id: &'a str,
    /// Entry point.
    pub origin: Origin,
    /// Our `Message-ID`, without angle brackets.
    pub rfc_message_id: &'a str,
    /// How the writer's domain was authenticated, for replies received by SMTP.
    pub sender_auth: Option<&'a str>,
}

/// A stored message's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Our id.
    pub id: String,
    /// Conversation.
    pub conversation_id: String,
    /// Writer.
    pub sender_id: String,
    /// Reader.
    pub recipient_id: String,
    /// Our `Message-ID`, without angle brackets.
    pub rfc_message_id: String,
}

/// Stores a message and queues its delivery of the composed `content` to
/// `recipient_address`, both encrypted. Returns the delivery id.
///
/// Runs in the caller's transaction: the caller commits before acknowledging.
///
/// # Errors
/// [`crate::StoreError`] if encryption or the insert fails.
pub async fn insert_message_with_delivery(
    tx: &mut GroupTx,
    store: &Store,
    msg: &NewMessage<'_>,
    recipient_address: &str,
    content: &[u8],
) -> Result<String> {
    let sealed = Sealed::new(store, recipient_address, content)?;
    sealed.insert(store, msg).execute(tx.conn()).await?;
    Ok(sealed.delivery_id)
}

/// A delivery's id and its encrypted recipient and content, ready to insert.
struct Sealed {
    delivery_id: String,
    recipient_enc: Vec<u8>,
    content_enc: Vec<u8>,
}

impl Sealed {
    fn new(store: &Store, recipient_address: &str, content: &[u8]) -> Result<Self> {
        Ok(Self {
            delivery_id: new_id(),
            recipient_enc: store
                .crypto
                .encrypt(RECIPIENT, recipient_address.as_bytes())?,
            content_enc: store.crypto.encrypt(CONTENT, content)?,
        })
    }

    /// The message's row and its delivery's, in one statement: one round trip to
    /// the database's thread (or server), where two were two.
    fn insert<'q>(
        &'q self,
        store: &Store,
        msg: &'q NewMessage<'q>,
    ) -> Query<'q, Any, AnyArguments> {
        bind_row(
            sqlx::query(AssertSqlSafe(insert_sql(store.backend(), 1))),
            msg,
            self,
            now_ms(),
        )
    }
}

/// Binds one message and its delivery: the twelve parameters per row of
/// [`insert_sql`].
fn bind_row<'q>(
    query: Query<'q, Any, AnyArguments>,
    msg: &NewMessage<'q>,
    sealed: &'q Sealed,
    created_at: i64,
) -> Query<'q, Any, AnyArguments> {
    query
        .bind(msg.id)
        .bind(msg.org_id)
        .bind(msg.conversation_id)
        .bind(msg.sender_id)
        .bind(msg.recipient_id)
        .bind(msg.origin.as_str())
        .bind(msg.rfc_message_id)
        .bind(msg.sender_auth)
        .bind(created_at)
        .bind(&sealed.delivery_id)
        .bind(&sealed.recipient_enc)
        .bind(&sealed.content_enc)
}

/// Parameters per row of [`insert_sql`].
const PER_ROW: usize = 12;

/// At most this many messages per statement (SQLite allows 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 256;

/// One statement storing `rows` messages and their deliveries, due at once: row `r`
/// takes parameters `12r+1`..`12r+12` (message id, organisation, conversation,
/// writer, reader, origin, `Message-ID`, sender authentication, time; delivery id,
/// recipient, content). On SQLite two statements in one call, on PostgreSQL a
/// data-modifying CTE.
fn insert_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write;
    let mut messages = String::from(
        "INSERT INTO messages (id, org_id, conversation_id, sender_id, recipient_id, origin, \
                               rfc_message_id, sender_auth, created_at) VALUES ",
    );
    let mut deliveries = String::from(
        "INSERT INTO deliveries (id, message_id, status, recipient_enc, content_enc, attempts, \
                                 next_attempt_at, created_at, updated_at) VALUES ",
    );
    for r in 0..rows {
        let p = r * PER_ROW;
        let sep = if r == 0 { "" } else { ", " };
        // Writing to a String cannot fail.
        let _ = write!(
            messages,
            "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 9
        );
        let _ = write!(
            deliveries,
            "{sep}(${}, ${}, 'queued', ${}, ${}, 0, ${at}, ${at}, ${at})",
            p + 10,
            p + 1,
            p + 11,
            p + 12,
            at = p + 9
        );
    }
    match backend {
        Backend::Sqlite => format!("{messages}; {deliveries}"),
        Backend::Postgres => format!("WITH m AS ({messages}) {deliveries}"),
    }
}

/// A message waiting for the round that stores it (see [`crate::rounds`]).
pub(crate) struct QueuedMessage {
    id: String,
    org_id: String,
    conversation_id: String,
    sender_id: String,
    recipient_id: String,
    origin: Origin,
    rfc_message_id: String,
    sender_auth: Option<String>,
    created_at: i64,
    sealed: Sealed,
}

impl QueuedMessage {
    fn new(msg: &NewMessage<'_>, sealed: Sealed) -> Self {
        Self {
            id: msg.id.to_owned(),
            org_id: msg.org_id.to_owned(),
            conversation_id: msg.conversation_id.to_owned(),
            sender_id: msg.sender_id.to_owned(),
            recipient_id: msg.recipient_id.to_owned(),
            origin: msg.origin,
            rfc_message_id: msg.rfc_message_id.to_owned(),
            sender_auth: msg.sender_auth.map(str::to_owned),
            created_at: now_ms(),
            sealed,
        }
    }

    fn borrowed(&self) -> NewMessage<'_> {
        NewMessage {
            id: &self.id,
            org_id: &self.org_id,
            conversation_id: &self.conversation_id,
            sender_id: &self.sender_id,
            recipient_id: &self.recipient_id,
            origin: self.origin,
            rfc_message_id: &self.rfc_message_id,
            sender_auth: self.sender_auth.as_deref(),
        }
    }
}

/// Messages stored in rounds: everything arriving while the previous batch commits
/// is inserted by one statement.
struct Arrivals;

impl RoundWrite for Arrivals {
    type Row = QueuedMessage;
    const WHAT: &'static str = "store messages";

    fn rounds(store: &Store) -> &Rounds<QueuedMessage> {
        &store.arrivals
    }

    async fn write(store: &Store, tx: &mut GroupTx, rows: &[QueuedMessage]) -> Result<()> {
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut query = sqlx::query(AssertSqlSafe(insert_sql(store.backend(), chunk.len())));
            for row in chunk {
                query = bind_row(query, &row.borrowed(), &row.sealed, row.created_at);
            }
            query.execute(tx.conn()).await?;
        }
        Ok(())
    }
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
        recipient_address: &str,
        content: &[u8],
    ) -> Result<String> {
        let sealed = Sealed::new(self, recipient_address, content)?;
        let delivery_id = sealed.delivery_id.clone();
        write_in_round::<Arrivals>(self, QueuedMessage::new(msg, sealed)).await?;
        Ok(delivery_id)
    }
}

impl Store {
    /// A message that could not be delivered, for the notice to its writer;
    /// `notified_since` (Unix ms) bounds "already told".
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn undeliverable(
        &self,
        message_id: &str,
        notified_since: i64,
    ) -> Result<Option<Undeliverable>> {
        let row = sqlx::query(
            "SELECT m.org_id, m.conversation_id, m.sender_id, m.recipient_id, m.rfc_message_id, \
                    m.origin, \
                    (SELECT COUNT(*) FROM messages n WHERE n.conversation_id = m.conversation_id \
                       AND n.origin = 'notice' AND n.created_at > $2) AS recent \
             FROM messages m WHERE m.id = $1",
        )
        .bind(message_id)
        .bind(notified_since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<Undeliverable> {
            let origin: String = r.try_get("origin")?;
            let recent: i64 = r.try_get("recent")?;
            Ok(Undeliverable {
                org_id: r.try_get("org_id")?,
                conversation_id: r.try_get("conversation_id")?,
                writer_id: r.try_get("sender_id")?,
                reader_id: r.try_get("recipient_id")?,
                rfc_message_id: r.try_get("rfc_message_id")?,
                is_notice: origin == Origin::Notice.as_str(),
                notified_recently: recent > 0,
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

/// Our `Message-ID`s of the latest `limit` messages of a conversation, oldest first.
///
/// # Errors
/// [`crate::StoreError`] if the query fails.
pub async fn thread_references(
    tx: &mut GroupTx,
    conversation_id: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT rfc_message_id FROM messages WHERE conversation_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2",
    )
    .bind(conversation_id)
    .bind(limit)
    .fetch_all(tx.conn())
    .await?;
    let mut ids = rows
        .iter()
        .map(|r| r.try_get::<String, _>("rfc_message_id"))
        .collect::<Result<Vec<_>, _>>()?;
    ids.reverse();
    Ok(ids)
}

impl Store {
    /// A message of an organisation, by our id.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn message_for_org(&self, org_id: &str, id: &str) -> Result<Option<MessageMeta>> {
        let row = sqlx::query(
            "SELECT id, conversation_id, sender_id, recipient_id, rfc_message_id FROM messages \
             WHERE org_id = $1 AND id = $2",
        )
        .bind(org_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| meta_from_row(&r)).transpose()
    }
}

fn meta_from_row(row: &sqlx::any::AnyRow) -> Result<MessageMeta> {
    Ok(MessageMeta {
        id: row.try_get("id")?,
        conversation_id: row.try_get("conversation_id")?,
        sender_id: row.try_get("sender_id")?,
        recipient_id: row.try_get("recipient_id")?,
        rfc_message_id: row.try_get("rfc_message_id")?,
    })
}
