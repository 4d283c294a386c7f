//! Who may write to whom: the one rule the API and replies by mail both go through.
//!
//! Directories promise their members that only active members can send and be
//! written to, so an inactive member is refused on both paths; then come the
//! organisation's switch, the reader's opt-out and blocks, an address that bounced
//! for good, and the limits on new
//! conversations (a reply by mail always answers an existing conversation).

use maskrelay_schema::controls::Barriers;
use maskrelay_schema::ids::now_ms;
use maskrelay_schema::members::{Member, MemberStatus};
use maskrelay_schema::orgs::Org;
use maskrelay_schema::{Store, StoreError};

/// Why a message may not go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The writer is not an active member.
    WriterInactive,
    /// The reader is not an active member.
    ReaderInactive,
    /// The organisation has turned member-to-member messages off.
    MessagingDisabled,
    /// The recipient has turned member messages off.
    RecipientOptedOut,
    /// The recipient has blocked the writer. The writer is told only that the message
    /// could not be delivered.
    Blocked,
    /// Mail to the recipient's address bounced for good; the directory has to give
    /// a new address (or lift the suppression).
    RecipientUnreachable,
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
    /// A stable name for the record and the API's error code.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::WriterInactive => "writer_inactive",
            Refusal::ReaderInactive => "reader_inactive",
            Refusal::MessagingDisabled => "messaging_disabled",
            Refusal::RecipientOptedOut => "recipient_opted_out",
            Refusal::Blocked => "blocked",
            Refusal::RecipientUnreachable => "recipient_unreachable",
            Refusal::TooManyNewConversations { .. } => "rate_limited",
        }
    }
}

/// One member wanting to write to another.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The organisation both belong to.
    pub org: &'a Org,
    /// Who writes.
    pub writer: &'a Member,
    /// Who would read it.
    pub reader: &'a Member,
    /// It answers a conversation known to exist (a reply by mail to a relay address),
    /// so the limits on new conversations do not apply.
    pub in_conversation: bool,
    /// Blocks and suppressions, if already read (with a reply's route); else they
    /// are looked up.
    pub barriers: Option<Barriers>,
}

/// Checks everything that stands between the writer and the reader, cheapest first.
///
/// # Errors
/// [`StoreError`] if a look-up fails.
pub async fn may_write(
    store: &Store,
    attempt: &Attempt<'_>,
) -> Result<Result<(), Refusal>, StoreError> {
    let Attempt {
        org,
        writer,
        reader,
        in_conversation,
        barriers,
    } = *attempt;
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
        return Ok(Err(Refusal::RecipientOptedOut));
    }
    let barriers = match barriers {
        Some(known) => known,
        None => store.barriers(&reader.id, &writer.id).await?,
    };
    if barriers.blocked {
        return Ok(Err(Refusal::Blocked));
    }
    if barriers.suppressed {
        return Ok(Err(Refusal::RecipientUnreachable));
    }
    if in_conversation
        || store
            .conversation_between(&org.id, &writer.id, &reader.id)
            .await?
    {
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
