//! Who may write to whom: the one rule every submission goes through, whatever its
//! entry point (see [`crate::submit`], its only caller).
//!
//! Directories promise their members that only active members can send and be
//! written to, so an inactive member is refused on every path; then come the
//! organisation's switch, the reader's opt-out and blocks, an address that bounced
//! for good, and the limits on new conversations (a reply always answers an
//! existing conversation). A notice is the organisation's own word to a member
//! about their own message: none of the members' rules apply to it. Who gets a
//! broadcast's copy is decided here too ([`may_receive`]).

use maskrelay_schema::broadcasts::Candidate;
use maskrelay_schema::clock::now_ms;
use maskrelay_schema::controls::Barriers;
use maskrelay_schema::events::RefusalReason;
use maskrelay_schema::members::{Member, MemberStatus};
use maskrelay_schema::new_message::Origin;
use maskrelay_schema::orgs::Org;
use maskrelay_schema::{CategoryId, Direction, Store, StoreError};

/// Why a message may not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The writer is not an active member.
    WriterInactive,
    /// The reader is not an active member.
    ReaderInactive,
    /// The organisation has turned member-to-member messages off.
    MessagingDisabled,
    /// The reader has turned member messages off.
    ReaderOptedOut,
    /// The reader has blocked the writer. The writer is told only that the message
    /// could not be delivered.
    Blocked,
    /// Mail to the reader's address bounced for good; the directory has to give a
    /// new address (or lift the suppression).
    ReaderUnreachable,
    /// The writer has started as many new conversations as the organisation allows
    /// in the window.
    TooManyNewConversations {
        /// The limit reached.
        limit: i64,
        /// `"hour"` or `"day"`.
        window: &'static str,
        /// Seconds until the oldest counted conversation leaves the window.
        retry_after_secs: u64,
    },
}

impl Refusal {
    /// The reason as it is recorded and named to API clients.
    pub fn reason(self) -> RefusalReason {
        match self {
            Refusal::WriterInactive => RefusalReason::WriterInactive,
            Refusal::ReaderInactive => RefusalReason::ReaderInactive,
            Refusal::MessagingDisabled => RefusalReason::MessagingDisabled,
            Refusal::ReaderOptedOut => RefusalReason::ReaderOptedOut,
            Refusal::Blocked => RefusalReason::Blocked,
            Refusal::ReaderUnreachable => RefusalReason::ReaderUnreachable,
            Refusal::TooManyNewConversations { .. } => RefusalReason::RateLimited,
        }
    }
}

/// One member wanting to write to another.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt<'a> {
    /// The organisation both belong to.
    pub(crate) org: &'a Org,
    /// Who writes.
    pub(crate) writer: &'a Member,
    /// Who would read it.
    pub(crate) reader: &'a Member,
    /// What kind of message it is.
    pub(crate) origin: Origin,
    /// The two already share a conversation, so the limits on new conversations do
    /// not apply.
    pub(crate) in_conversation: bool,
    /// Blocks and suppressions, if already read (with a reply's route); else they
    /// are looked up.
    pub(crate) barriers: Option<Barriers>,
}

/// Checks everything that stands between the writer and the reader, cheapest first.
///
/// # Errors
/// [`StoreError`] if a look-up fails.
pub(crate) async fn may_write(
    store: &Store,
    attempt: &Attempt<'_>,
) -> Result<Result<(), Refusal>, StoreError> {
    let Attempt {
        org,
        writer,
        reader,
        origin,
        in_conversation,
        barriers,
    } = *attempt;
    if origin == Origin::Notice {
        return Ok(Ok(()));
    }
    if writer.status != MemberStatus::Active {
        return Ok(Err(Refusal::WriterInactive));
    }
    if reader.status != MemberStatus::Active {
        return Ok(Err(Refusal::ReaderInactive));
    }
    if !org.settings.member_messaging {
        return Ok(Err(Refusal::MessagingDisabled));
    }
    if !reader.accepts_messages {
        return Ok(Err(Refusal::ReaderOptedOut));
    }
    let direction = Direction {
        writer: &writer.id,
        reader: &reader.id,
    };
    let barriers = match barriers {
        Some(known) => known,
        None => store.barriers(direction).await?,
    };
    if barriers.blocked {
        return Ok(Err(Refusal::Blocked));
    }
    if barriers.suppressed {
        return Ok(Err(Refusal::ReaderUnreachable));
    }
    if in_conversation {
        return Ok(Ok(()));
    }
    new_conversation_limits(store, org, writer).await
}

/// Refuses a new conversation beyond the organisation's hourly and daily limits.
/// Concurrent requests may overshoot a limit by the number in flight; it is a brake
/// on abuse, not an exact quota.
async fn new_conversation_limits(
    store: &Store,
    org: &Org,
    writer: &Member,
) -> Result<Result<(), Refusal>, StoreError> {
    let now = now_ms();
    let windows = [
        (org.settings.new_conversations_per_hour, 3_600_000, "hour"),
        (org.settings.new_conversations_per_day, 86_400_000, "day"),
    ];
    for (limit, window_ms, window) in windows {
        if limit == 0 {
            continue;
        }
        let started = store
            .conversations_started(&writer.id, now - window_ms)
            .await?;
        if started.count >= limit {
            let free_at = started.oldest.unwrap_or(now) + window_ms;
            return Ok(Err(Refusal::TooManyNewConversations {
                limit,
                window,
                retry_after_secs: u64::try_from(free_at - now).unwrap_or(0).div_ceil(1000),
            }));
        }
    }
    Ok(Ok(()))
}

/// Why a member of a broadcast's audience gets no copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// Not an active member (inactive, or erased).
    Inactive,
    /// Mail to their address bounced for good.
    Unreachable,
    /// They unsubscribed from the broadcast's category.
    Unsubscribed,
}

/// Whether a member of a broadcast's audience gets a copy: the organisation's word
/// reaches active members with an address that works, in a category they did not
/// leave. A mandatory notice ignores unsubscriptions, and nothing else. The count a
/// broadcast shows before it is sent and the copies it makes both come from here.
pub fn may_receive(category: &CategoryId, candidate: &Candidate) -> Result<(), Excluded> {
    let member = &candidate.member;
    if member.status != MemberStatus::Active || member.email.is_none() {
        return Err(Excluded::Inactive);
    }
    if candidate.suppressed {
        return Err(Excluded::Unreachable);
    }
    if candidate.unsubscribed && !category.is_mandatory() {
        return Err(Excluded::Unsubscribed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use maskrelay_schema::{ExternalId, MemberId, OrgId};

    fn candidate(status: MemberStatus, unsubscribed: bool, suppressed: bool) -> Candidate {
        Candidate {
            member: Member {
                id: MemberId::from("m"),
                org_id: OrgId::from("o"),
                external_id: ExternalId::from("ana"),
                status,
                email: (status != MemberStatus::Erased).then(|| "ana@example.net".to_owned()),
                other_emails: Vec::new(),
                accepts_messages: true,
                name: Some("Ana".into()),
                attributes: serde_json::Value::Null,
                created_at: 0,
                updated_at: 0,
            },
            unsubscribed,
            suppressed,
        }
    }

    #[test]
    fn a_mandatory_notice_ignores_unsubscribing_and_nothing_else() {
        let news = CategoryId::from("news");
        let mandatory = CategoryId::from(CategoryId::MANDATORY);
        let left = candidate(MemberStatus::Active, true, false);
        assert_eq!(may_receive(&news, &left), Err(Excluded::Unsubscribed));
        assert_eq!(may_receive(&mandatory, &left), Ok(()));
        for category in [&news, &mandatory] {
            let gone = candidate(MemberStatus::Active, false, true);
            assert_eq!(may_receive(category, &gone), Err(Excluded::Unreachable));
            for status in [MemberStatus::Inactive, MemberStatus::Erased] {
                let away = candidate(status, false, false);
                assert_eq!(may_receive(category, &away), Err(Excluded::Inactive));
            }
        }
    }
}
