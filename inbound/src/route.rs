//! Deciding what happens to mail for a relay address: whether a recipient exists,
//! whether the writer is the member the address was given to, and handing accepted
//! replies to the outbound queue.

use maskrelay_outbound::policy::{Attempt, Refusal, may_write};
use maskrelay_outbound::{Submission, Submitter};
use maskrelay_schema::Store;
use maskrelay_schema::ids::is_relay_token;
use maskrelay_schema::messages::Origin;
use maskrelay_schema::routing::Route;

use maskrelay_schema::events::InboundKind;
use maskrelay_schema::ids::now_ms;
use maskrelay_schema::suppressions::BounceRecord;

use crate::authenticate::{Client, SenderAuth, Verdict};
use crate::classify::Kind;
use crate::message::{InboundMessage, parse};
use crate::reply::{self, Reply};
use crate::signed::Unrelayable;

/// More `Received` headers than this is a loop (RFC 5321 §6.3 suggests 100 as
/// the least a server should allow before deciding; real mail has under 20).
const MAX_HOPS: usize = 100;

/// Routes replies received by the listener.
#[derive(Clone)]
pub struct Router {
    store: Store,
    submitter: Submitter,
    auth: SenderAuth,
}

/// An accepted `RCPT TO`.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// A relay address: a reply for a member, with everything needed to route it.
    Relay(Box<Route>),
    /// A VERP address with a valid MAC: a bounce of the named delivery.
    Bounce(String),
}

/// A finished mail transaction, as the session hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Transaction<'a> {
    /// The client that sent it.
    pub client: Client<'a>,
    /// The envelope sender; empty for the null sender.
    pub mail_from: &'a str,
    /// The accepted relay addresses, with their routes.
    pub recipients: &'a [Route],
    /// The deliveries named by the accepted VERP addresses.
    pub bounces: &'a [String],
}

/// Who wrote to a relay address, as far as the sender check can tell.
enum Writer {
    /// The member the address was given to.
    Member,
    /// The member the address stands for: writing to their own relay address.
    Reader,
    /// Anyone else.
    Stranger,
}

impl Router {
    /// A router over `store`, queueing through `submitter`, proving senders with `auth`.
    pub fn new(store: Store, submitter: Submitter, auth: SenderAuth) -> Self {
        Self {
            store,
            submitter,
            auth,
        }
    }

    fn relay_domain(&self) -> &str {
        self.submitter.relay_domain()
    }

    /// Checks one `RCPT TO` address.
    ///
    /// # Errors
    /// The reply to send instead of accepting the recipient.
    pub async fn check_recipient(&self, address: &str) -> Result<Recipient, Reply> {
        let (local, domain) = address
            .rsplit_once('@')
            .ok_or(reply::BAD_RECIPIENT_SYNTAX)?;
        if !domain.eq_ignore_ascii_case(self.relay_domain()) {
            return Err(reply::RELAY_DENIED);
        }
        // `get` rather than slicing: a local part may start with a multi-byte
        // character (SMTPUTF8), and a slice through it would panic.
        if local.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("b-")) {
            // A bounce address: only the MAC says whether we made it.
            return self
                .store
                .verify_verp(local)
                .map(Recipient::Bounce)
                .ok_or(reply::NO_SUCH_ADDRESS);
        }
        let token = local.to_ascii_lowercase();
        if !is_relay_token(&token) {
            return Err(reply::NO_SUCH_ADDRESS);
        }
        match self.store.route(&token).await {
            Ok(Some(route)) => Ok(Recipient::Relay(Box::new(route))),
            Ok(None) => Err(reply::NO_SUCH_ADDRESS),
            Err(e) => {
                tracing::error!(error = %e, "relay address look-up failed");
                Err(reply::TRY_LATER)
            }
        }
    }

    /// Decides on a whole message and, if it is acceptable, stores it durably for
    /// each recipient before returning `250`.
    pub async fn accept(&self, tx: &Transaction<'_>, raw: &[u8]) -> Reply {
        match self.decide(tx, raw).await {
            Ok(reply) | Err(reply) => reply,
        }
    }

    /// The steps of [`Router::accept`]; `Err` carries the refusal.
    async fn decide(&self, tx: &Transaction<'_>, raw: &[u8]) -> Result<Reply, Reply> {
        let now = now_ms() / 1000;
        if !tx.bounces.is_empty() {
            return self.bounce(tx.bounces, raw).await;
        }
        let message = parse(raw, self.relay_domain(), tx.mail_from.is_empty(), now)
            .ok_or(reply::UNPARSEABLE)?;
        if message.looped || message.hops > MAX_HOPS {
            tracing::info!(
                hops = message.hops,
                looped = message.looped,
                "message refused: mail loop"
            );
            return Err(reply::LOOP);
        }
        let legs = Self::legs(tx.recipients)?;
        match self.not_to_relay(&message, &legs) {
            Some(InboundKind::Complaint) => {
                return Ok(self.member_complaint(tx, &message, raw, legs).await);
            }
            Some(kind) => return Ok(self.record(&legs, kind).await),
            None => {}
        }
        // With checking on, only the From: address names the writer; the envelope
        // sender can be anyone's and is only evidence for SPF.
        let from = message.from.as_deref().unwrap_or_default();
        let claimed: Vec<&str> = if self.auth.is_on() {
            vec![from]
        } else {
            vec![tx.mail_from, from]
        };
        let writing = Self::writing(legs, &claimed, message.from.is_some())?;
        let verdict = self.prove(tx, from, raw, &writing).await?;
        self.check_choices(&writing).await?;
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
                sender: &leg.writer,
                recipient: &leg.reader,
                origin: Origin::Smtp,
                body,
                in_reply_to: message.in_reply_to.as_deref(),
                sender_auth: Some(verdict.as_str()),
                idempotency: None,
                thread: leg
                    .thread
                    .as_ref()
                    .map(|thread| (thread, leg.references.as_slice())),
            })
            .collect();
        match self.submitter.submit_all(&submissions).await {
            Ok(_) => Ok(reply::ACCEPTED),
            Err(e) => {
                tracing::error!(error = %e, "could not queue a reply");
                Err(reply::TRY_LATER)
            }
        }
    }

    /// A report sent to VERP addresses: each named delivery is marked `bounced` (and a
    /// hard bounce suppresses the address). An automatic answer that came back to the
    /// envelope sender instead (a vacation notice) is not a bounce and changes nothing.
    async fn bounce(&self, deliveries: &[String], raw: &[u8]) -> Result<Reply, Reply> {
        let message = mail_parser::MessageParser::default()
            .parse(raw)
            .ok_or(reply::UNPARSEABLE)?;
        match crate::classify::classify(&message, true) {
            Kind::AutoReply => {
                tracing::info!("automatic answer to a bounce address ignored");
                return Ok(reply::BOUNCE_RECORDED);
            }
            Kind::Complaint => return self.complaint(deliveries).await,
            Kind::Personal | Kind::DeliveryReport => {}
        }
        let Some(bounce) = crate::bounce::parse(&message) else {
            tracing::info!("mail to a bounce address is no report; ignored");
            return Ok(reply::BOUNCE_RECORDED);
        };
        let record = BounceRecord {
            status: bounce.status.as_deref(),
            reason: bounce.reason.as_str(),
            hard: bounce.severity == crate::bounce::Severity::Hard,
        };
        for delivery_id in deliveries {
            match self.store.record_bounce(delivery_id, &record).await {
                Ok(Some(bounced)) => {
                    tracing::info!(
                        %delivery_id,
                        conversation_id = %bounced.conversation_id,
                        message_id = %bounced.message_id,
                        reason = record.reason,
                        hard = record.hard,
                        "bounce recorded"
                    );
                    // The bounce is recorded either way; a notice that cannot be
                    // queued now is not worth a retry of the whole report.
                    if let Err(e) = self
                        .submitter
                        .notify_undeliverable(&bounced.message_id)
                        .await
                    {
                        tracing::error!(conversation_id = %bounced.conversation_id, error = %e, "could not queue the writer's notice");
                    }
                }
                Ok(None) => tracing::info!(%delivery_id, "bounce for a delivery no longer stored"),
                Err(e) => {
                    tracing::error!(%delivery_id, error = %e, "could not record a bounce");
                    return Err(reply::TRY_LATER);
                }
            }
        }
        Ok(reply::BOUNCE_RECORDED)
    }

    /// A feedback report (ARF) about deliveries: each reader stops getting mail from
    /// the writer they complained about.
    async fn complaint(&self, deliveries: &[String]) -> Result<Reply, Reply> {
        for delivery_id in deliveries {
            match self.store.record_complaint(delivery_id).await {
                Ok(Some(c)) => {
                    tracing::info!(%delivery_id, conversation_id = %c.conversation_id, "complaint recorded; the reader no longer gets mail from the writer")
                }
                Ok(None) => {
                    tracing::info!(%delivery_id, "complaint about a delivery no longer stored")
                }
                Err(e) => {
                    tracing::error!(%delivery_id, error = %e, "could not record a complaint");
                    return Err(reply::TRY_LATER);
                }
            }
        }
        Ok(reply::BOUNCE_RECORDED)
    }

    /// A feedback report (ARF) sent to relay addresses. When the member holding an
    /// address sent it, proven as a reply would be, they no longer get mail from the
    /// member behind that address; anyone else's report is only recorded (a report
    /// is easy to forge, and a relay address is all it takes).
    async fn member_complaint(
        &self,
        tx: &Transaction<'_>,
        message: &InboundMessage,
        raw: &[u8],
        legs: Vec<&Route>,
    ) -> Reply {
        let from = message.from.as_deref().unwrap_or_default();
        let (own, others): (Vec<&Route>, Vec<&Route>) = legs
            .into_iter()
            .partition(|leg| matches!(Self::sender_is(leg, &[from]), Writer::Member));
        if !own.is_empty() && self.prove(tx, from, raw, &own).await.is_ok() {
            for leg in &own {
                if let Err(e) = self.store.block(&leg.writer.id, &leg.reader.id).await {
                    tracing::error!(conversation_id = %leg.relay.conversation_id, error = %e, "could not record a complaint");
                    return reply::TRY_LATER;
                }
                tracing::info!(conversation_id = %leg.relay.conversation_id, "complaint from the reader; they no longer get mail from the writer");
            }
        }
        let recorded = self.record(&own, InboundKind::Complaint).await;
        if recorded != reply::RECORDED_NOT_RELAYED {
            return recorded;
        }
        self.record(&others, InboundKind::Complaint).await
    }

    /// The accepted recipients (their routes were read at `RCPT`); refused if a
    /// member can no longer be reached.
    fn legs(recipients: &[Route]) -> Result<Vec<&Route>, Reply> {
        recipients
            .iter()
            .map(|route| {
                if route.writer.email.is_none() || route.reader.email.is_none() {
                    tracing::info!(conversation_id = %route.relay.conversation_id, "reply refused: a member was erased");
                    return Err(reply::RECIPIENT_GONE);
                }
                Ok(route)
            })
            .collect()
    }

    /// The legs the writer may use: every recipient must be a relay address given to
    /// them, except their own (reply-all puts it among the recipients: the To: of what
    /// they received), which is simply not needed.
    /// `from_readable` is false when `From:` holds no address: the refusal says so.
    fn writing<'a>(
        legs: Vec<&'a Route>,
        claimed: &[&str],
        from_readable: bool,
    ) -> Result<Vec<&'a Route>, Reply> {
        let mut writing = Vec::with_capacity(legs.len());
        for leg in legs {
            match Self::sender_is(leg, claimed) {
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

    /// Proves the `From:` domain, or says why it is not proven.
    async fn prove(
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
        match verdict {
            Verdict::TempError => Err(reply::AUTH_TEMPORARY),
            Verdict::Failed => Err(reply::SENDER_NOT_PROVEN),
            Verdict::Unauthenticated if !accepts_unproven => Err(reply::SENDER_UNAUTHENTICATED),
            _ => Ok(verdict),
        }
    }

    /// The rules on who may write to whom, the same as the API's: both members
    /// active, messaging on, no opt-out, no block. A refusal is recorded with its
    /// reason, so that the organisation can see why a reply did not arrive.
    async fn check_choices(&self, writing: &[&Route]) -> Result<(), Reply> {
        for leg in writing {
            let attempt = Attempt {
                org: &leg.org,
                writer: &leg.writer,
                reader: &leg.reader,
                in_conversation: true,
                barriers: Some(leg.barriers),
            };
            let refusal = match may_write(&self.store, &attempt).await {
                Ok(Ok(())) => continue,
                Ok(Err(refusal)) => refusal,
                Err(e) => {
                    tracing::error!(error = %e, "policy check failed");
                    return Err(reply::TRY_LATER);
                }
            };
            tracing::info!(conversation_id = %leg.relay.conversation_id, reason = refusal.as_str(), "reply refused by the rules on who may write to whom");
            let kind = InboundKind::Refused(refusal.as_str());
            if let Err(e) = self
                .store
                .record_inbound(
                    &leg.org.id,
                    &leg.relay.conversation_id,
                    &leg.writer.id,
                    kind,
                )
                .await
            {
                tracing::error!(conversation_id = %leg.relay.conversation_id, error = %e, "could not record a refusal");
                return Err(reply::TRY_LATER);
            }
            return Err(match refusal {
                Refusal::WriterInactive => reply::WRITER_INACTIVE,
                Refusal::ReaderInactive => reply::READER_INACTIVE,
                Refusal::MessagingDisabled => reply::MESSAGING_DISABLED,
                Refusal::RecipientOptedOut => reply::RECIPIENT_OPTED_OUT,
                Refusal::RecipientUnreachable => reply::READER_UNREACHABLE,
                Refusal::Blocked | Refusal::TooManyNewConversations { .. } => {
                    reply::NOT_DELIVERABLE
                }
            });
        }
        Ok(())
    }

    /// The kind of machine-written mail that is recorded instead of relayed.
    fn not_to_relay(&self, message: &InboundMessage, legs: &[&Route]) -> Option<InboundKind> {
        match message.kind {
            Kind::Personal => None,
            Kind::DeliveryReport => Some(InboundKind::DeliveryReport),
            Kind::Complaint => Some(InboundKind::Complaint),
            Kind::AutoReply if legs.iter().all(|l| l.org.settings.relay_auto_replies) => None,
            Kind::AutoReply => Some(InboundKind::AutoReply),
        }
    }

    async fn record(&self, legs: &[&Route], kind: InboundKind) -> Reply {
        for leg in legs {
            let recorded = self
                .store
                .record_inbound(
                    &leg.org.id,
                    &leg.relay.conversation_id,
                    &leg.writer.id,
                    kind,
                )
                .await;
            if let Err(e) = recorded {
                tracing::error!(conversation_id = %leg.relay.conversation_id, error = %e, "could not record an automatic message");
                return reply::TRY_LATER;
            }
            tracing::info!(conversation_id = %leg.relay.conversation_id, kind = kind.as_str(), "automatic message recorded, not relayed");
        }
        reply::RECORDED_NOT_RELAYED
    }

    /// Who wrote, judged by the `claimed` addresses (the leg's members were loaded
    /// with all their addresses, so no look-up is needed).
    fn sender_is(leg: &Route, claimed: &[&str]) -> Writer {
        let claimed = || claimed.iter().filter(|a| !a.is_empty());
        if claimed().any(|a| leg.writer.has_address(a)) {
            Writer::Member
        } else if claimed().any(|a| leg.reader.has_address(a)) {
            Writer::Reader
        } else {
            Writer::Stranger
        }
    }
}
