//! A member's reply to a relay address: which legs its writer may use, proving the
//! writer's domain, and handing the reply to the composer's one submit path, which
//! applies the rules on who may write to whom. A refusal is recorded with its
//! reason, so that the organisation can see why a reply did not arrive.

use maskrelay_compose::{Known, Refusal, Submission, SubmitError};
use maskrelay_schema::events::InboundKind;
use maskrelay_schema::new_message::Origin;
use maskrelay_schema::routing::Route;

use super::{Router, Transaction};
use crate::read::authenticate::Verdict;
use crate::read::message::InboundMessage;
use crate::read::signed::Unrelayable;
use crate::reply::{self, Reply};

/// Who wrote to a relay address, as far as the sender check can tell.
pub(super) enum Writer {
    /// The member the address was given to.
    Member,
    /// The member the address stands for: writing to their own relay address.
    Reader,
    /// Anyone else.
    Stranger,
}

impl Router {
    /// Relays a member's reply on every leg its writer may use.
    pub(super) async fn relay(
        &self,
        tx: &Transaction<'_>,
        message: &InboundMessage,
        raw: &[u8],
        legs: Vec<&Route>,
    ) -> Result<Reply, Reply> {
        // With checking on, only the From: address names the writer; the envelope
        // sender can be anyone's and is only evidence for SPF.
        let from = message.from.as_deref().unwrap_or_default();
        let claimed: Vec<&str> = if self.auth.is_on() {
            vec![from]
        } else {
            vec![tx.mail_from, from]
        };
        let writing = writing(legs, &claimed, message.from.is_some())?;
        let verdict = self.prove(tx, from, raw, &writing).await?;
        let body = message.body.as_ref().map_err(|unrelayable| {
            for leg in &writing {
                tracing::info!(conversation_id = %leg.relay.conversation_id, reason = ?unrelayable, "reply refused: cannot be scrubbed");
            }
            match unrelayable {
                Unrelayable::Encrypted => reply::ENCRYPTED,
                Unrelayable::UnreadableSignedData => reply::SIGNED_UNREADABLE,
            }
        })?;
        let submissions: Vec<Submission<'_>> = writing
            .iter()
            .map(|leg| Submission {
                org: &leg.org,
                writer: &leg.writer,
                reader: &leg.reader,
                origin: Origin::Smtp,
                body,
                in_reply_to: message.in_reply_to.as_deref(),
                sender_auth: Some(verdict.as_str()),
                idempotency: None,
                known: Some(Known {
                    thread: leg.thread.as_ref(),
                    references: &leg.references,
                    barriers: leg.barriers,
                }),
            })
            .collect();
        match self.submitter.submit_all(&submissions).await {
            Ok(_) => Ok(reply::ACCEPTED),
            Err(SubmitError::Refused { index, refusal }) => {
                Err(self.refused(writing.get(index).copied(), refusal).await)
            }
            Err(SubmitError::NoAddress(_)) => Err(reply::RECIPIENT_GONE),
            Err(e) => {
                tracing::error!(error = %e, "could not queue a reply");
                Err(reply::TRY_LATER)
            }
        }
    }

    /// Records why a leg was refused and says it as the writer may hear it.
    async fn refused(&self, leg: Option<&Route>, refusal: Refusal) -> Reply {
        let reason = refusal.reason();
        if let Some(leg) = leg {
            tracing::info!(conversation_id = %leg.relay.conversation_id, reason = reason.as_str(), "reply refused by the rules on who may write to whom");
            if let Err(reply) = self.record_one(leg, InboundKind::Refused(reason)).await {
                return reply;
            }
        }
        match refusal {
            Refusal::WriterInactive => reply::WRITER_INACTIVE,
            Refusal::ReaderInactive => reply::READER_INACTIVE,
            Refusal::MessagingDisabled => reply::MESSAGING_DISABLED,
            Refusal::ReaderOptedOut => reply::READER_OPTED_OUT,
            Refusal::ReaderUnreachable => reply::READER_UNREACHABLE,
            // Said no more plainly than this, so that a blocked writer does not learn it.
            Refusal::Blocked | Refusal::TooManyNewConversations { .. } => reply::NOT_DELIVERABLE,
        }
    }

    /// Proves the `From:` domain, or says why it is not proven.
    pub(super) async fn prove(
        &self,
        tx: &Transaction<'_>,
        from: &str,
        raw: &[u8],
        writing: &[&Route],
    ) -> Result<Verdict, Reply> {
        let verdict = self.auth.verify(tx.client, tx.mail_from, from, raw).await;
        for leg in writing {
            tracing::info!(conversation_id = %leg.relay.conversation_id, sender_auth = verdict.as_str(), "sender checked");
        }
        let accepts_unproven = writing
            .iter()
            .all(|l| l.org.settings.accept_unauthenticated);
        proven(verdict, accepts_unproven)
    }
}

/// Whether a sender check's verdict lets mail from a member through: a failure
/// never does, an unauthenticated domain only where the organisation accepts
/// such senders, and a DNS failure is "try later". Every way members write in (a
/// reply, an unsubscribe request, an answer to a broadcast) is judged here.
pub(super) fn proven(verdict: Verdict, accepts_unproven: bool) -> Result<Verdict, Reply> {
    match verdict {
        Verdict::TempError => Err(reply::AUTH_TEMPORARY),
        Verdict::Failed => Err(reply::SENDER_NOT_PROVEN),
        Verdict::Unauthenticated if !accepts_unproven => Err(reply::SENDER_UNAUTHENTICATED),
        _ => Ok(verdict),
    }
}

/// The legs the writer may use: every recipient must be a relay address given to
/// them, except their own (reply-all puts it among the recipients: the To: of what
/// they received), which is simply not needed. `from_readable` is false when
/// `From:` holds no address: the refusal says so.
fn writing<'a>(
    legs: Vec<&'a Route>,
    claimed: &[&str],
    from_readable: bool,
) -> Result<Vec<&'a Route>, Reply> {
    let mut writing = Vec::with_capacity(legs.len());
    for leg in legs {
        match sender_is(leg, claimed) {
            Writer::Member => writing.push(leg),
            Writer::Reader => {}
            Writer::Stranger if !from_readable => {
                tracing::info!(conversation_id = %leg.relay.conversation_id, "reply refused: no address in From:");
                return Err(reply::UNREADABLE_FROM);
            }
            Writer::Stranger => {
                tracing::info!(conversation_id = %leg.relay.conversation_id, "reply refused: not from the member the address was given to");
                return Err(reply::WRONG_SENDER);
            }
        }
    }
    if writing.is_empty() {
        return Err(reply::OWN_ADDRESS);
    }
    Ok(writing)
}

/// Who wrote, judged by the `claimed` addresses (the leg's members were loaded with
/// all their addresses, so no look-up is needed).
pub(super) fn sender_is(leg: &Route, claimed: &[&str]) -> Writer {
    let claimed = || claimed.iter().filter(|a| !a.is_empty());
    if claimed().any(|a| leg.writer.has_address(a)) {
        Writer::Member
    } else if claimed().any(|a| leg.reader.has_address(a)) {
        Writer::Reader
    } else {
        Writer::Stranger
    }
}
