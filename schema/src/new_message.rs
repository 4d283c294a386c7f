//! A message and its delivery as they are stored: the row of each, sealed (the
//! reader's address and the content encrypted), and the one statement that inserts
//! them, for one message in a caller's transaction or for many arriving together in
//! a round (see `rounds`).

use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

use crate::backend::Backend;
use crate::clock::now_ms;
use crate::crypto::Crypto;
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::{BroadcastId, ConversationId, DeliveryId, MemberId, MessageId, OrgId};
use crate::rounds::RoundWrite;
use crate::sql::text_enum;
use crate::status::DeliveryStatus;

/// The column a delivery's content is encrypted for.
pub(crate) const CONTENT: &str = "deliveries.content";
/// The column a delivery's envelope recipient (the reader's address) is encrypted for.
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
    /// A copy of a broadcast: the organisation writing to many members.
    Broadcast,
}

impl Origin {
    /// The value stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Api => "api",
            Origin::Smtp => "smtp",
            Origin::Notice => "notice",
            Origin::Broadcast => "broadcast",
        }
    }

    /// Parses [`Origin::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Origin::Api, Origin::Smtp, Origin::Notice, Origin::Broadcast]
            .into_iter()
            .find(|o| o.as_str() == text)
    }
}

text_enum!(Origin);

/// Which deliveries a worker takes first: those of a conversation always go ahead
/// of bulk ones (broadcast copies), whenever either was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A message between people, or a notice about one.
    Conversation,
    /// A broadcast's copies.
    Bulk,
}

impl Lane {
    /// The value stored: the claim orders by it.
    fn as_i64(self) -> i64 {
        match self {
            Lane::Conversation => 0,
            Lane::Bulk => 1,
        }
    }
}

/// A message about to be stored.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// Pre-allocated id (the composer needs it before the insert).
    pub id: &'a MessageId,
    /// Organisation.
    pub org_id: &'a OrgId,
    /// The conversation it belongs to; none for a broadcast's copy.
    pub conversation_id: Option<&'a ConversationId>,
    /// The broadcast it is a copy of, if it is one.
    pub broadcast_id: Option<&'a BroadcastId>,
    /// The member who wrote it; none when the organisation did (a broadcast).
    pub writer_id: Option<&'a MemberId>,
    /// The member it is for.
    pub reader_id: &'a MemberId,
    /// Entry point.
    pub origin: Origin,
    /// Our `Message-ID`, without angle brackets.
    pub rfc_message_id: &'a str,
    /// How the writer's domain was authenticated, for replies received by SMTP.
    pub sender_auth: Option<&'a str>,
}

/// A delivery's id and its encrypted recipient and content, ready to insert, with
/// its lane and when it is due (`None`: at once).
pub(crate) struct Sealed {
    pub(crate) delivery_id: DeliveryId,
    recipient_enc: Vec<u8>,
    content_enc: Vec<u8>,
    lane: Lane,
    due_at: Option<i64>,
}

impl Sealed {
    /// The delivery of `content` to `reader_address`, both encrypted, due at once
    /// in the conversation lane.
    pub(crate) fn new(crypto: &Crypto, reader_address: &str, content: &[u8]) -> Result<Self> {
        Ok(Self {
            delivery_id: DeliveryId::generate(),
            recipient_enc: crypto.encrypt(RECIPIENT, reader_address.as_bytes())?,
            content_enc: crypto.encrypt(CONTENT, content)?,
            lane: Lane::Conversation,
            due_at: None,
        })
    }

    /// The same, as a bulk delivery due at `due_at` (Unix ms).
    pub(crate) fn bulk(
        crypto: &Crypto,
        reader_address: &str,
        content: &[u8],
        due_at: i64,
    ) -> Result<Self> {
        Ok(Self {
            lane: Lane::Bulk,
            due_at: Some(due_at),
            ..Self::new(crypto, reader_address, content)?
        })
    }

    /// The message's row and its delivery's, in one statement: one round trip to
    /// the database's thread (or server), where two were two.
    pub(crate) fn insert<'q>(
        &'q self,
        backend: Backend,
        msg: &'q NewMessage<'q>,
    ) -> Query<'q, Any, AnyArguments> {
        bind_row(
            sqlx::query(AssertSqlSafe(insert_sql(backend, 1))).bind(DeliveryStatus::Queued),
            msg,
            self,
            now_ms(),
        )
    }
}

/// Binds one message and its delivery: the parameters of one row of [`insert_sql`].
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
        .bind(msg.broadcast_id)
        .bind(msg.writer_id)
        .bind(msg.reader_id)
        .bind(msg.origin)
        .bind(msg.rfc_message_id)
        .bind(msg.sender_auth)
        .bind(created_at)
        .bind(&sealed.delivery_id)
        .bind(&sealed.recipient_enc)
        .bind(&sealed.content_enc)
        .bind(sealed.lane.as_i64())
        .bind(sealed.due_at.unwrap_or(created_at))
}

/// Parameters per row of [`insert_sql`].
const PER_ROW: usize = 15;

/// At most this many messages per statement (SQLite allows 32,766 parameters).
const ROWS_PER_STATEMENT: usize = 256;

/// One statement storing `rows` messages and their deliveries. `$1` is the status
/// of a new delivery; row `r` takes parameters `15r+2`..`15r+16` (message id,
/// organisation, conversation, broadcast, writer, reader, origin, `Message-ID`,
/// sender authentication, time; delivery id, recipient, content, lane, due time).
/// On SQLite two statements in one call, on PostgreSQL a data-modifying CTE.
fn insert_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write;
    let mut messages = String::from(
        "INSERT INTO messages (id, org_id, conversation_id, broadcast_id, writer_id, \
                               reader_id, origin, rfc_message_id, sender_auth, created_at) \
         VALUES ",
    );
    let mut deliveries = String::from(
        "INSERT INTO deliveries (id, message_id, status, recipient_enc, content_enc, lane, \
                                 attempts, due_at, created_at, updated_at) VALUES ",
    );
    for r in 0..rows {
        let p = 1 + r * PER_ROW;
        let sep = if r == 0 { "" } else { ", " };
        // Writing to a String cannot fail.
        let _ = write!(
            messages,
            "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 8,
            p + 9,
            p + 10
        );
        let _ = write!(
            deliveries,
            "{sep}(${}, ${}, $1, ${}, ${}, ${}, 0, ${}, ${at}, ${at})",
            p + 11,
            p + 1,
            p + 12,
            p + 13,
            p + 14,
            p + 15,
            at = p + 10
        );
    }
    match backend {
        Backend::Sqlite => format!("{messages}; {deliveries}"),
        Backend::Postgres => format!("WITH m AS ({messages}) {deliveries}"),
    }
}

/// A message waiting for the round that stores it.
pub(crate) struct QueuedMessage {
    id: MessageId,
    org_id: OrgId,
    conversation_id: Option<ConversationId>,
    broadcast_id: Option<BroadcastId>,
    writer_id: Option<MemberId>,
    reader_id: MemberId,
    origin: Origin,
    rfc_message_id: String,
    sender_auth: Option<String>,
    created_at: i64,
    sealed: Sealed,
}

impl QueuedMessage {
    pub(crate) fn new(msg: &NewMessage<'_>, sealed: Sealed) -> Self {
        Self {
            id: msg.id.clone(),
            org_id: msg.org_id.clone(),
            conversation_id: msg.conversation_id.cloned(),
            broadcast_id: msg.broadcast_id.cloned(),
            writer_id: msg.writer_id.cloned(),
            reader_id: msg.reader_id.clone(),
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
            conversation_id: self.conversation_id.as_ref(),
            broadcast_id: self.broadcast_id.as_ref(),
            writer_id: self.writer_id.as_ref(),
            reader_id: &self.reader_id,
            origin: self.origin,
            rfc_message_id: &self.rfc_message_id,
            sender_auth: self.sender_auth.as_deref(),
        }
    }
}

/// Messages stored in rounds: everything arriving while the previous batch commits
/// is inserted by one statement.
pub(crate) struct Arrivals;

impl RoundWrite for Arrivals {
    type Row = QueuedMessage;
    const WHAT: &'static str = "store messages";

    async fn write(tx: &mut GroupTx, rows: &[QueuedMessage]) -> Result<()> {
        let rows: Vec<_> = rows
            .iter()
            .map(|row| (row.borrowed(), &row.sealed, row.created_at))
            .collect();
        insert_all(tx, &rows).await
    }
}

/// Stores messages and their deliveries, created at the time given with each, as
/// few statements as the database's limit on parameters allows.
pub(crate) async fn insert_all(
    tx: &mut GroupTx,
    rows: &[(NewMessage<'_>, &Sealed, i64)],
) -> Result<()> {
    let backend = tx.backend();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut query = sqlx::query(AssertSqlSafe(insert_sql(backend, chunk.len())))
            .bind(DeliveryStatus::Queued);
        for (msg, sealed, created_at) in chunk {
            query = bind_row(query, msg, sealed, *created_at);
        }
        query.execute(tx.conn()).await?;
    }
    Ok(())
}
