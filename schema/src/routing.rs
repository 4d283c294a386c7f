//! Everything a reply to a relay address needs, read with one statement: the
//! address, its conversation and organisation, both members, whether a block or a
//! suppression stands between them, and the thread the reply continues (the relay
//! address standing for the writer and the latest messages' ids).
//!
//! A reply used to cost five reads (address, organisation, two members, each
//! member's other addresses); each is a round trip to the database's thread.

use sqlx::Row;

use crate::controls::Barriers;
use crate::conversations::{RelayAddress, Thread};
use crate::db::Store;
use crate::error::Result;
use crate::ids::ConversationId;
use crate::members::{Member, member_columns_as};
use crate::messages::{latest_references, references_from};
use crate::orgs::{Org, org_at, org_columns_as};

/// Where mail to a relay address goes, and who may send it.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The address.
    pub relay: RelayAddress,
    /// The organisation of its conversation.
    pub org: Org,
    /// The member it was handed to: the only one who may write to it.
    pub writer: Member,
    /// The member it stands for: who mail to it reaches.
    pub reader: Member,
    /// What the store holds against the writer writing to the reader.
    pub barriers: Barriers,
    /// The thread a reply continues, if the relay address standing for the writer
    /// exists (it is made with the conversation's first message).
    pub thread: Option<Thread>,
    /// Our `Message-ID`s of the conversation's latest messages, oldest first.
    pub references: Vec<String>,
}

/// How many earlier messages a `References` header lists.
pub const REFERENCES: i64 = 20;

impl Store {
    /// The route behind a relay token, if the token is live.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query or decryption fails.
    pub async fn route(&self, token: &str) -> Result<Option<Route>> {
        let row = sqlx::query(concat!(
            "SELECT r.token, r.conversation_id, c.org_id, r.member_id, r.issued_to, ",
            org_columns_as!("o"),
            ", ",
            member_columns_as!("w"),
            ", ",
            member_columns_as!("m"),
            ", CAST(CASE WHEN EXISTS (SELECT 1 FROM blocks \
                 WHERE blocker_id = r.member_id AND blocked_id = r.issued_to) \
                 THEN 1 ELSE 0 END AS BIGINT) AS blocked, \
               CAST(CASE WHEN EXISTS (SELECT 1 FROM suppressions s \
                 WHERE s.org_id = m.org_id AND s.email_index = m.email_index) \
                 THEN 1 ELSE 0 END AS BIGINT) AS suppressed, \
               (SELECT b.token FROM relay_addresses b WHERE b.conversation_id = r.conversation_id \
                 AND b.member_id = r.issued_to AND b.issued_to = r.member_id) AS writer_token, \
               ",
            latest_references!("r.conversation_id", "$2"),
            " AS refs \
             FROM relay_addresses r JOIN conversations c ON c.id = r.conversation_id \
              JOIN organisations o ON o.id = c.org_id \
              JOIN members w ON w.id = r.issued_to \
              JOIN members m ON m.id = r.member_id \
             WHERE r.token = $1"
        ))
        .bind(token)
        .bind(REFERENCES)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let token: String = row.try_get("token")?;
        let conversation_id: ConversationId = row.try_get("conversation_id")?;
        let thread = row
            .try_get::<Option<String>, _>("writer_token")?
            .map(|writer_token| Thread {
                conversation_id: conversation_id.clone(),
                writer_token,
                reader_token: token.clone(),
            });
        let references = references_from(row.try_get("refs")?);
        Ok(Some(Route {
            relay: RelayAddress {
                token,
                conversation_id,
                org_id: row.try_get("org_id")?,
                member_id: row.try_get("member_id")?,
                issued_to: row.try_get("issued_to")?,
            },
            org: org_at(&row, "o_")?,
            writer: self.member_at(&row, "w_").await?,
            reader: self.member_at(&row, "m_").await?,
            barriers: Barriers {
                blocked: row.try_get::<i64, _>("blocked")? != 0,
                suppressed: row.try_get::<i64, _>("suppressed")? != 0,
            },
            thread,
            references,
        }))
    }
}
