//! Conversations between two members, and the relay addresses that stand for them.
//!
//! A relay address (`TOKEN@relay_domain`) stands for one member of one conversation
//! and is handed to exactly one other member: mail to it reaches `member_id`, and
//! only `issued_to` may write to it.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::Store;
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::{new_id, now_ms, relay_token};
use crate::messages::{latest_references, references_from};

/// A conversation between two members of one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Our id.
    pub id: String,
    /// The organisation.
    pub org_id: String,
}

/// What a relay token maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddress {
    /// The token (local part).
    pub token: String,
    /// The conversation it belongs to.
    pub conversation_id: String,
    /// The organisation of that conversation.
    pub org_id: String,
    /// The member mail to this address reaches.
    pub member_id: String,
    /// The only member allowed to write to it.
    pub issued_to: String,
}

/// Finds or creates the conversation between two members, whatever their order; a new
/// one is recorded as started by `member_x`.
///
/// Must run inside a transaction: the insert comes first so that SQLite takes its
/// write lock before reading, and concurrent callers converge on one row.
///
/// # Errors
/// [`crate::StoreError`] if a query fails.
async fn get_or_create_conversation(
    tx: &mut GroupTx,
    org_id: &str,
    member_x: &str,
    member_y: &str,
) -> Result<Conversation> {
    let (a, b) = ordered(member_x, member_y);
    sqlx::query(
        "INSERT INTO conversations (id, org_id, member_a, member_b, started_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, member_a, member_b) DO NOTHING",
    )
    .bind(new_id())
    .bind(org_id)
    .bind(a)
    .bind(b)
    .bind(member_x)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    let row = sqlx::query(
        "SELECT id FROM conversations WHERE org_id = $1 AND member_a = $2 AND member_b = $3",
    )
    .bind(org_id)
    .bind(a)
    .bind(b)
    .fetch_one(tx.conn())
    .await?;
    Ok(Conversation {
        id: row.try_get("id")?,
        org_id: org_id.to_owned(),
    })
}

/// Finds or creates the token that stands for `member_id` in a conversation, handed
/// to `issued_to`.
///
/// # Errors
/// [`crate::StoreError`] if a query fails.
pub async fn get_or_create_relay_token(
    tx: &mut GroupTx,
    conversation_id: &str,
    member_id: &str,
    issued_to: &str,
) -> Result<String> {
    sqlx::query(
        "INSERT INTO relay_addresses (token, conversation_id, member_id, issued_to, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (conversation_id, member_id, issued_to) DO NOTHING",
    )
    .bind(relay_token()?)
    .bind(conversation_id)
    .bind(member_id)
    .bind(issued_to)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    let row = sqlx::query(
        "SELECT token FROM relay_addresses \
         WHERE conversation_id = $1 AND member_id = $2 AND issued_to = $3",
    )
    .bind(conversation_id)
    .bind(member_id)
    .bind(issued_to)
    .fetch_one(tx.conn())
    .await?;
    Ok(row.try_get("token")?)
}

/// A conversation and the two relay addresses of one direction in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The conversation.
    pub conversation_id: String,
    /// The token standing for the writer, handed to the reader.
    pub writer_token: String,
    /// The token standing for the reader, handed to the writer.
    pub reader_token: String,
}

/// Finds, or creates what is missing of, the conversation between `writer` and
/// `reader` and the relay address standing for each, handed to the other.
///
/// Must run inside a transaction. A reply within a conversation finds everything
/// with one statement; only a first message creates.
///
/// # Errors
/// [`crate::StoreError`] if a query fails.
pub async fn get_or_create_thread(
    tx: &mut GroupTx,
    org_id: &str,
    writer: &str,
    reader: &str,
) -> Result<Thread> {
    if let Some(thread) = find_thread(tx, org_id, writer, reader).await? {
        return Ok(thread);
    }
    let conversation = get_or_create_conversation(tx, org_id, writer, reader).await?;
    let writer_token = get_or_create_relay_token(tx, &conversation.id, writer, reader).await?;
    let reader_token = get_or_create_relay_token(tx, &conversation.id, reader, writer).await?;
    Ok(Thread {
        conversation_id: conversation.id,
        writer_token,
        reader_token,
    })
}

/// The conversation between `writer` and `reader` with both relay addresses, if all
/// of it exists.
///
/// # Errors
/// [`crate::StoreError`] if the query fails.
async fn find_thread(
    tx: &mut GroupTx,
    org_id: &str,
    writer: &str,
    reader: &str,
) -> Result<Option<Thread>> {
    let (a, b) = ordered(writer, reader);
    let row = sqlx::query(thread_select!())
        .bind(org_id)
        .bind(a)
        .bind(b)
        .bind(writer)
        .bind(reader)
        .fetch_optional(tx.conn())
        .await?;
    Ok(row.as_ref().map(thread_from_row).transpose()?.flatten())
}

/// The conversation of members `$2` < `$3` in organisation `$1`, with the token
/// standing for `$4` handed to `$5` and the one standing for `$5` handed to `$4`.
macro_rules! thread_select {
    () => {
        "SELECT c.id, \
           (SELECT token FROM relay_addresses r WHERE r.conversation_id = c.id \
              AND r.member_id = $4 AND r.issued_to = $5) AS writer_token, \
           (SELECT token FROM relay_addresses r WHERE r.conversation_id = c.id \
              AND r.member_id = $5 AND r.issued_to = $4) AS reader_token \
         FROM conversations c WHERE c.org_id = $1 AND c.member_a = $2 AND c.member_b = $3"
    };
}
use thread_select;

/// The thread of a row of [`thread_select`], if both its tokens exist.
fn thread_from_row(row: &AnyRow) -> Result<Option<Thread>> {
    let (Some(writer_token), Some(reader_token)) = (
        row.try_get::<Option<String>, _>("writer_token")?,
        row.try_get::<Option<String>, _>("reader_token")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(Thread {
        conversation_id: row.try_get("id")?,
        writer_token,
        reader_token,
    }))
}

/// Two members in the order a conversation stores them.
fn ordered<'a>(x: &'a str, y: &'a str) -> (&'a str, &'a str) {
    if x <= y { (x, y) } else { (y, x) }
}

impl Store {
    /// An existing conversation between `writer` and `reader`, with the `Message-ID`s
    /// of its latest `references` messages (oldest first), read outside any write so
    /// that a message can be composed before its writer joins a batch.
    ///
    /// # Errors
    /// [`crate::StoreError`] if a query fails.
    pub async fn existing_thread(
        &self,
        org_id: &str,
        writer: &str,
        reader: &str,
        references: i64,
    ) -> Result<Option<(Thread, Vec<String>)>> {
        let (a, b) = ordered(writer, reader);
        let row = sqlx::query(concat!(
            "SELECT t.id, t.writer_token, t.reader_token, ",
            latest_references!("t.id", "$6"),
            " AS refs FROM (",
            thread_select!(),
            ") AS t"
        ))
        .bind(org_id)
        .bind(a)
        .bind(b)
        .bind(writer)
        .bind(reader)
        .bind(references)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let Some(thread) = thread_from_row(&row)? else {
            return Ok(None);
        };
        Ok(Some((thread, references_from(row.try_get("refs")?))))
    }
}
