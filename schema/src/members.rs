//! Members of an organisation's directory, with their personal data encrypted.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::{Result, StoreError};
use crate::ids::{ExternalId, MemberId, OrgId};
use crate::sql::text_enum;
use crate::status::DeliveryStatus;

const EMAIL: &str = "members.email";
const NAME: &str = "members.name";
const ATTRIBUTES: &str = "members.attributes";
const OTHER_EMAIL: &str = "member_addresses.email";

/// Whether a member may take part in conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberStatus {
    /// May send and receive.
    Active,
    /// Kept in the directory but may not start conversations.
    Inactive,
    /// Personal data erased; cannot be reached any more.
    Erased,
}

impl MemberStatus {
    /// The value stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Active => "active",
            MemberStatus::Inactive => "inactive",
            MemberStatus::Erased => "erased",
        }
    }

    /// Parses a stored or requested status.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(MemberStatus::Active),
            "inactive" => Some(MemberStatus::Inactive),
            "erased" => Some(MemberStatus::Erased),
            _ => None,
        }
    }
}

text_enum!(MemberStatus);

/// A member, decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// Our internal id.
    pub id: MemberId,
    /// The organisation the member belongs to.
    pub org_id: OrgId,
    /// The directory's own id for the member.
    pub external_id: ExternalId,
    /// Current status.
    pub status: MemberStatus,
    /// Real address; `None` once erased.
    pub email: Option<String>,
    /// Other addresses the member writes from (empty once erased).
    pub other_emails: Vec<String>,
    /// Whether the member accepts messages from other members at all.
    pub accepts_messages: bool,
    /// Display name; `None` once erased.
    pub name: Option<String>,
    /// Free-form attributes from the directory (JSON object).
    pub attributes: serde_json::Value,
    /// Creation time, Unix ms.
    pub created_at: i64,
    /// Last update, Unix ms.
    pub updated_at: i64,
}

impl Member {
    /// Every address the member is known by: the main one, then the others.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.email
            .as_deref()
            .into_iter()
            .chain(self.other_emails.iter().map(String::as_str))
    }

    /// Whether `address` is one of the member's, compared as the blind index does
    /// (trimmed, lower-cased).
    pub fn has_address(&self, address: &str) -> bool {
        let wanted = address.trim().to_lowercase();
        self.addresses().any(|a| a.trim().to_lowercase() == wanted)
    }
}

/// What the directory tells us about a member.
#[derive(Debug, Clone)]
pub struct MemberInput {
    /// Real address (already validated by the caller).
    pub email: String,
    /// Other addresses the member writes from (validated by the caller).
    pub other_emails: Vec<String>,
    /// Whether the member accepts messages from other members.
    pub accepts_messages: bool,
    /// Display name.
    pub name: String,
    /// `Active` or `Inactive`.
    pub status: MemberStatus,
    /// JSON object of attributes.
    pub attributes: serde_json::Value,
}

/// The columns every member query selects, of the members table aliased (or named)
/// `$t`, each named `$t_column`: one list for queries of members alone and for joins;
/// a macro so that queries stay `&'static str`.
macro_rules! member_columns_as {
    ($t:literal) => {
        concat!(
            $crate::sql::columns_as!($t; "id", "org_id", "external_id", "status", "email_enc",
                "name_enc", "attributes_enc", "accepts_messages", "created_at", "updated_at"),
            ", CAST(CASE WHEN EXISTS (SELECT 1 FROM member_addresses a WHERE a.member_id = ",
            $t,
            ".id) THEN 1 ELSE 0 END AS BIGINT) AS ",
            $t,
            "_has_other_emails"
        )
    };
}
pub(crate) use member_columns_as;

impl Store {
    /// Creates or replaces the member with the directory id `external_id`.
    /// Returns the member and whether it was newly created.
    ///
    /// # Errors
    /// [`StoreError`] if encryption or the write fails.
    pub async fn upsert_member(
        &self,
        org_id: &OrgId,
        external_id: &ExternalId,
        input: &MemberInput,
    ) -> Result<(Member, bool)> {
        let c = &self.crypto;
        let now = now_ms();
        let email_enc = c.encrypt(EMAIL, input.email.as_bytes())?;
        let name_enc = c.encrypt(NAME, input.name.as_bytes())?;
        let attrs_enc = c.encrypt(ATTRIBUTES, input.attributes.to_string().as_bytes())?;
        let index = c.email_index(&input.email);
        let new = MemberId::generate();
        let mut tx = self.begin_write().await?;
        // One statement for both cases keeps concurrent PUTs of the same id safe.
        let row = sqlx::query(
            "INSERT INTO members (id, org_id, external_id, status, email_index, email_enc, \
                                  name_enc, attributes_enc, accepts_messages, created_at, \
                                  updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9, $9) \
             ON CONFLICT (org_id, external_id) DO UPDATE SET \
                 status = excluded.status, email_index = excluded.email_index, \
                 email_enc = excluded.email_enc, name_enc = excluded.name_enc, \
                 attributes_enc = excluded.attributes_enc, \
                 accepts_messages = excluded.accepts_messages, updated_at = excluded.updated_at \
             RETURNING id",
        )
        .bind(&new)
        .bind(org_id)
        .bind(external_id)
        .bind(input.status)
        .bind(index)
        .bind(email_enc)
        .bind(name_enc)
        .bind(attrs_enc)
        .bind(now)
        .bind(i64::from(input.accepts_messages))
        .fetch_one(tx.conn())
        .await?;
        let id: MemberId = row.try_get("id")?;
        sqlx::query("DELETE FROM member_addresses WHERE member_id = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
        for other in &input.other_emails {
            sqlx::query(
                "INSERT INTO member_addresses (member_id, org_id, email_index, email_enc) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (member_id, email_index) DO NOTHING",
            )
            .bind(&id)
            .bind(org_id)
            .bind(c.email_index(other))
            .bind(c.encrypt(OTHER_EMAIL, other.as_bytes())?)
            .execute(tx.conn())
            .await?;
        }
        tx.commit().await?;
        let created = id == new;
        let member = self.member(&id).await?.ok_or_else(|| StoreError::Corrupt {
            table: "members",
            detail: "member vanished right after upsert".into(),
        })?;
        Ok((member, created))
    }

    /// The member with the directory id `external_id` in `org_id`.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn member_by_external_id(
        &self,
        org_id: &OrgId,
        external_id: &ExternalId,
    ) -> Result<Option<Member>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            member_columns_as!("members"),
            " FROM members WHERE org_id = $1 AND external_id = $2"
        ))
        .bind(org_id)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        self.member_with_addresses(row).await
    }

    /// The member with our internal id.
    ///
    /// # Errors
    /// [`StoreError`] if the query or decryption fails.
    pub async fn member(&self, id: &MemberId) -> Result<Option<Member>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            member_columns_as!("members"),
            " FROM members WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        self.member_with_addresses(row).await
    }

    async fn member_with_addresses(&self, row: Option<AnyRow>) -> Result<Option<Member>> {
        let Some(row) = row else {
            return Ok(None);
        };
        self.member_at(&row, "members_").await.map(Some)
    }

    /// The member in the columns of `row` whose names start with `prefix`, with
    /// their other addresses.
    pub(crate) async fn member_at(&self, row: &AnyRow, prefix: &str) -> Result<Member> {
        let mut member = self.member_from_row(row, prefix)?;
        // Most members have one address: their row says so, and the look-up is saved.
        if row.try_get::<i64, _>(format!("{prefix}has_other_emails").as_str())? == 0 {
            return Ok(member);
        }
        let rows = sqlx::query("SELECT email_enc FROM member_addresses WHERE member_id = $1")
            .bind(&member.id)
            .fetch_all(&self.pool)
            .await?;
        for row in rows {
            let enc: Vec<u8> = row.try_get("email_enc")?;
            member
                .other_emails
                .push(self.crypto.decrypt_text(OTHER_EMAIL, &enc)?);
        }
        member.other_emails.sort();
        Ok(member)
    }

    /// Erases a member's personal data. Their relay addresses are deleted, so mail to
    /// them is refused, and deliveries to or from them that are still queued are
    /// cancelled with their content wiped. Returns false if there is no such member.
    ///
    /// # Errors
    /// [`StoreError`] if a write fails; nothing is changed then.
    pub async fn erase_member(&self, org_id: &OrgId, external_id: &ExternalId) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE members SET status = $4, email_index = NULL, email_enc = NULL, \
                 name_enc = NULL, attributes_enc = NULL, updated_at = $3 \
             WHERE org_id = $1 AND external_id = $2 RETURNING id",
        )
        .bind(org_id)
        .bind(external_id)
        .bind(now)
        .bind(MemberStatus::Erased)
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            tx.rollback().await;
            return Ok(false);
        };
        let id: MemberId = row.try_get("id")?;
        sqlx::query("DELETE FROM member_addresses WHERE member_id = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
        sqlx::query("DELETE FROM relay_addresses WHERE member_id = $1 OR issued_to = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
        sqlx::query(
            "UPDATE deliveries SET status = $3, due_at = NULL, content_enc = NULL, \
                 recipient_enc = NULL, lease_until = NULL, claimed_by = NULL, \
                 last_error = 'member erased', updated_at = $2 \
             WHERE due_at IS NOT NULL AND message_id IN \
                 (SELECT id FROM messages WHERE writer_id = $1 OR reader_id = $1)",
        )
        .bind(&id)
        .bind(now)
        .bind(DeliveryStatus::Cancelled)
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(crate) fn member_from_row(&self, row: &AnyRow, prefix: &str) -> Result<Member> {
        let col = |name: &str| format!("{prefix}{name}");
        let c = &self.crypto;
        let status: MemberStatus = row.try_get(col("status").as_str())?;
        let email: Option<Vec<u8>> = row.try_get(col("email_enc").as_str())?;
        let name: Option<Vec<u8>> = row.try_get(col("name_enc").as_str())?;
        let attrs: Option<Vec<u8>> = row.try_get(col("attributes_enc").as_str())?;
        let attributes = match attrs {
            Some(a) => serde_json::from_slice(&c.decrypt(ATTRIBUTES, &a)?).map_err(|e| {
                StoreError::Corrupt {
                    table: "members",
                    detail: format!("attributes are not JSON: {e}"),
                }
            })?,
            None => serde_json::Value::Object(Default::default()),
        };
        Ok(Member {
            id: row.try_get(col("id").as_str())?,
            org_id: row.try_get(col("org_id").as_str())?,
            external_id: row.try_get(col("external_id").as_str())?,
            status,
            email: email.map(|e| c.decrypt_text(EMAIL, &e)).transpose()?,
            other_emails: Vec::new(),
            accepts_messages: row.try_get::<i64, _>(col("accepts_messages").as_str())? != 0,
            name: name.map(|n| c.decrypt_text(NAME, &n)).transpose()?,
            attributes,
            created_at: row.try_get(col("created_at").as_str())?,
            updated_at: row.try_get(col("updated_at").as_str())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_of_a_member_is_recognised_in_any_case() {
        let member = Member {
            id: MemberId::from("m"),
            org_id: OrgId::from("o"),
            external_id: ExternalId::from("bob"),
            status: MemberStatus::Active,
            email: Some("Bob@Example.net".into()),
            other_emails: vec!["bob@home.example".into()],
            accepts_messages: true,
            name: Some("Bob".into()),
            attributes: serde_json::Value::Null,
            created_at: 0,
            updated_at: 0,
        };
        assert!(member.has_address("bob@example.NET"));
        assert!(member.has_address(" BOB@home.example "));
        assert!(!member.has_address("bob@example.org"));
        let erased = Member {
            email: None,
            other_emails: Vec::new(),
            ..member
        };
        assert!(!erased.has_address("bob@example.net"));
    }
}
