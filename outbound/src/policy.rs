//! Whether one member may write to another: the organisation's and the members' own
//! choices, checked the same way for the API and for replies by mail.

use maskrelay_schema::members::Member;
use maskrelay_schema::orgs::Org;
use maskrelay_schema::{Store, StoreError};

/// Why a message may not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The organisation has turned member-to-member messages off.
    MessagingDisabled,
    /// The recipient has turned member messages off.
    RecipientOptedOut,
    /// The recipient has blocked the writer. The writer is told only that the message
    /// could not be delivered.
    Blocked,
}

/// Checks the choices that stand between `writer` and `reader`.
///
/// # Errors
/// [`StoreError`] if the block look-up fails.
pub async fn may_write(
    store: &Store,
    org: &Org,
    writer: &Member,
    reader: &Member,
) -> Result<Result<(), Refusal>, StoreError> {
    if !org.settings.member_messaging {
        return Ok(Err(Refusal::MessagingDisabled));
    }
    if !reader.accepts_messages {
        return Ok(Err(Refusal::RecipientOptedOut));
    }
    if store.is_blocked(&reader.id, &writer.id).await? {
        return Ok(Err(Refusal::Blocked));
    }
    Ok(Ok(()))
}
