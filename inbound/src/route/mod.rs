//! Deciding what happens to mail for the relay domain: whether a recipient exists,
//! and then, for a whole message, whether it is a member's reply to relay
//! (`member`), machine-written mail to record (`record`), a complaint
//! (`complaint`), a report on one of our deliveries (`bounce`), a member
//! leaving a category of broadcasts by mail (`unsubscribe`), or a member answering
//! a broadcast (`broadcast_reply`).
//!
//! The SMTP session asks; the answers are the listener's replies ([`crate::reply`]).
//! A reply is handed to the composer's one submit path and answered `250` only once
//! it is stored.

mod bounce;
mod broadcast_reply;
mod complaint;
mod member;
mod record;
mod unsubscribe;

use maskrelay_compose::broadcast::{REPLY_LOCAL_PREFIX, UNSUBSCRIBE_LOCAL};
use maskrelay_compose::{Broadcaster, Submitter};
use maskrelay_schema::clock::now_ms;
use maskrelay_schema::routing::Route;
use maskrelay_schema::tokens::is_relay_token;
use maskrelay_schema::{BroadcastId, DeliveryId, Store};

use crate::read::authenticate::{Client, SenderAuth};
use crate::read::message::parse;
use crate::reply::{self, Reply};

/// More `Received` headers than this is a loop (RFC 5321 §6.3 suggests 100 as
/// the least a server should allow before deciding; real mail has under 20).
const MAX_HOPS: usize = 100;

/// Routes mail received by the listener.
#[derive(Clone)]
pub struct Router {
    store: Store,
    submitter: Submitter,
    broadcaster: Broadcaster,
    auth: SenderAuth,
}

/// An accepted `RCPT TO`.
#[derive(Debug, Clone)]
pub enum Recipient {
    /// A relay address: a reply for a member, with everything needed to route it.
    Relay(Box<Route>),
    /// A VERP address with a valid MAC: a report on the named delivery.
    Bounce(DeliveryId),
    /// The address of a broadcast's `List-Unsubscribe` `mailto:`.
    Unsubscribe,
    /// A broadcast's own address: a member answering it.
    Broadcast(BroadcastId),
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
    pub bounces: &'a [DeliveryId],
    /// The unsubscribe address was among the recipients.
    pub unsubscribe: bool,
    /// The broadcast whose address was among the recipients, if one was.
    pub broadcast: Option<&'a BroadcastId>,
}

impl Router {
    /// A router over `store`, queueing through `submitter` (and `broadcaster` for
    /// answers to broadcasts), proving senders with `auth`.
    pub fn new(
        store: Store,
        submitter: Submitter,
        broadcaster: Broadcaster,
        auth: SenderAuth,
    ) -> Self {
        Self {
            store,
            submitter,
            broadcaster,
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
        if local.eq_ignore_ascii_case(UNSUBSCRIBE_LOCAL) {
            return Ok(Recipient::Unsubscribe);
        }
        if let Some(id) = local
            .get(..REPLY_LOCAL_PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(REPLY_LOCAL_PREFIX))
            .and_then(|_| local.get(REPLY_LOCAL_PREFIX.len()..))
        {
            let id = BroadcastId::from(id.to_ascii_lowercase());
            return match self.store.broadcast_by_id(&id).await {
                Ok(Some(_)) => Ok(Recipient::Broadcast(id)),
                Ok(None) => Err(reply::NO_SUCH_ADDRESS),
                Err(e) => {
                    tracing::error!(error = %e, "broadcast look-up failed");
                    Err(reply::TRY_LATER)
                }
            };
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
        if !tx.bounces.is_empty() {
            return self.reports(tx.bounces, raw).await;
        }
        let message = parse(
            raw,
            self.relay_domain(),
            tx.mail_from.is_empty(),
            now_ms() / 1000,
        )
        .ok_or(reply::UNPARSEABLE)?;
        if message.looped || message.hops > MAX_HOPS {
            tracing::info!(
                hops = message.hops,
                looped = message.looped,
                "message refused: mail loop"
            );
            return Err(reply::LOOP);
        }
        if tx.unsubscribe || tx.broadcast.is_some() {
            if !tx.recipients.is_empty() || (tx.unsubscribe && tx.broadcast.is_some()) {
                return Err(reply::ALONE);
            }
            return match tx.broadcast {
                Some(id) => self.broadcast_reply(tx, &message, raw, id).await,
                None => self.unsubscribe(tx, &message, raw).await,
            };
        }
        let legs = legs(tx.recipients)?;
        if let Some(recorded) = self.machine_written(tx, &message, raw, &legs).await {
            return Ok(recorded);
        }
        self.relay(tx, &message, raw, legs).await
    }
}

/// The accepted recipients (their routes were read at `RCPT`); refused if a member
/// can no longer be reached.
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
