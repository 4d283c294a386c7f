//! Everything a reply to a relay address needs, read with one statement: the
//! address, its conversation and organisation, both members, and whether a block or
//! a suppression stands between them.
//!
//! A reply used to cost five reads (address, organisation, two members, each
//! member's other addresses); each is a round trip to the database's thread.

use sqlx::Row;

use crate::controls::Barriers;
use crate::conversations::RelayAddress;
use crate::db::Store;
use crate::error::Result;
use crate::members::{Member, member_columns_as};
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
}

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
                 THEN 1 ELSE 0 END AS BIGINT) AS suppressed \
             FROM relay_addresses r JOIN conversations c ON c.id = r.conversation_id \
              JOIN organisations o ON o.id = c.org_id \
              JOIN members w ON w.id = r.issued_to \
              JOIN members m ON m.id = r.member_id \
             WHERE r.token = $1"
        ))
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Route {
            relay: RelayAddress {
                token: row.try_get("token")?,
                conversation_id: row.try_get("conversation_id")?,
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
        }))
    }
}
