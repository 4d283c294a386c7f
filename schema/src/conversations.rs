//! Conversations between two members, and the relay addresses that stand for them.
//!
//! A relay address (`TOKEN@relay_domain`) stands for one member of one conversation
//! and is handed to exactly one other member: mail to it reaches `member_id`, and
//! only `issued_to` may write to it.
//!
//! A message is composed before it is stored, so its thread must be known first:
//! [`Store::thread_parts`] reads what exists, [`ThreadParts::completed`] makes up
//! what is missing, and [`make_thread`] stores that inside the message's own
//! transaction, saying which thread really stands (another writer may have made it
//! meanwhile).

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::{ConversationId, Direction, MemberId, OrgId};
use crate::messages::{latest_references, references_from};
use crate::tokens::relay_token;

/// What a relay token maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayAddress {
    /// The token (local part).
    pub token: String,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// The organisation of that conversation.
    pub org_id: OrgId,
    /// The member mail to this address reaches.
    pub member_id: MemberId,
    /// The only member allowed to write to it.
    pub issued_to: MemberId,
}

/// A conversation and the two relay addresses of one direction in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thread {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The token standing for the writer, handed to the reader.
    pub writer_token: String,
    /// The token standing for the reader, handed to the writer.
    pub reader_token: String,
}

/// What exists of the thread between a writer and a reader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThreadParts {
    /// Their conversation, if they have one.
    pub conversation_id: Option<ConversationId>,
    /// The token standing for the writer, handed to the reader, if made.
    pub writer_token: Option<String>,
    /// The token standing for the reader, handed to the writer, if made.
    pub reader_token: Option<String>,
    /// Our `Message-ID`s of the conversation's latest messages, oldest first.
    pub references: Vec<String>,
}

impl ThreadParts {
    /// The thread, if all of it exists.
    pub fn complete(&self) -> Option<Thread> {
        Some(Thread {
            conversation_id: self.conversation_id.clone()?,
            writer_token: self.writer_token.clone()?,
            reader_token: self.reader_token.clone()?,
        })
    }

    /// The thread with whatever is missing made up: a new conversation id, new
    /// relay tokens. [`make_thread`] stores it.
    ///
    /// # Errors
    /// [`crate::StoreError::Random`] if no token could be drawn.
    pub fn completed(&self) -> Result<Thread> {
        Ok(Thread {
            conversation_id: self
                .conversation_id
                .clone()
                .unwrap_or_else(ConversationId::generate),
            writer_token: match &self.writer_token {
                Some(token) => token.clone(),
                None => relay_token()?,
            },
            reader_token: match &self.reader_token {
                Some(token) => token.clone(),
                None => relay_token()?,
            },
        })
    }
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

/// What of a thread a row of [`thread_select`] holds.
fn parts_from_row(row: &AnyRow) -> Result<ThreadParts> {
    Ok(ThreadParts {
        conversation_id: Some(row.try_get("id")?),
        writer_token: row.try_get("writer_token")?,
        reader_token: row.try_get("reader_token")?,
        references: Vec::new(),
    })
}

/// Stores what is missing of `proposed`, the thread of `direction` in `org`
/// (a conversation started by the writer, and the relay address standing for each
/// member, handed to the other), and returns the thread as it now stands: not
/// `proposed` if another writer made part of it meanwhile.
///
/// Must run inside a transaction: the inserts come first so that SQLite takes its
/// write lock before reading, and concurrent callers converge on one row.
///
/// # Errors
/// [`crate::StoreError`] if a query fails.
pub async fn make_thread(
    tx: &mut GroupTx,
    org: &OrgId,
    direction: Direction<'_>,
    proposed: &Thread,
) -> Result<Option<Thread>> {
    let (a, b) = direction.ordered();
    let now = now_ms();
    sqlx::query(
        "INSERT INTO conversations (id, org_id, member_a, member_b, started_by, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, member_a, member_b) DO NOTHING",
    )
    .bind(&proposed.conversation_id)
    .bind(org)
    .bind(a)
    .bind(b)
    .bind(direction.writer)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let conversation: ConversationId = sqlx::query(
        "SELECT id FROM conversations WHERE org_id = $1 AND member_a = $2 AND member_b = $3",
    )
    .bind(org)
    .bind(a)
    .bind(b)
    .fetch_one(tx.conn())
    .await?
    .try_get("id")?;
    sqlx::query(
        "INSERT INTO relay_addresses (token, conversation_id, member_id, issued_to, created_at) \
         VALUES ($1, $3, $4, $5, $6), ($2, $3, $5, $4, $6) \
         ON CONFLICT (conversation_id, member_id, issued_to) DO NOTHING",
    )
    .bind(&proposed.writer_token)
    .bind(&proposed.reader_token)
    .bind(&conversation)
    .bind(direction.writer)
    .bind(direction.reader)
    .bind(now)
    .execute(tx.conn())
    .await?;
    let row = sqlx::query(thread_select!())
        .bind(org)
        .bind(a)
        .bind(b)
        .bind(direction.writer)
        .bind(direction.reader)
        .fetch_optional(tx.conn())
        .await?;
    Ok(match row {
        Some(row) => parts_from_row(&row)?.complete(),
        None => None,
    })
}

impl Store {
    /// What exists of the thread of `direction` in `org`, with the `Message-ID`s of
    /// the conversation's latest `references` messages (oldest first), read outside
    /// any write so that a message can be composed before its writer joins a batch.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn thread_parts(
        &self,
        org: &OrgId,
        direction: Direction<'_>,
        references: i64,
    ) -> Result<ThreadParts> {
        let (a, b) = direction.ordered();
        let row = sqlx::query(concat!(
            "SELECT t.id, t.writer_token, t.reader_token, ",
            latest_references!("t.id", "$6"),
            " AS refs FROM (",
            thread_select!(),
            ") AS t"
        ))
        .bind(org)
        .bind(a)
        .bind(b)
        .bind(direction.writer)
        .bind(direction.reader)
        .bind(references)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(ThreadParts::default());
        };
        Ok(ThreadParts {
            references: references_from(row.try_get("refs")?),
            ..parts_from_row(&row)?
        })
    }
}
