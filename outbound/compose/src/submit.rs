//! The one way into the delivery queue: every message (an API message, a reply by
//! mail, a notice) is submitted here, checked against who may write to whom,
//! threaded, scrubbed and built, then stored with its delivery in one transaction
//! before anyone acknowledges it.
//!
//! Composing happens before the write, always: a reply's thread is known, a first
//! message's is made up ([`crate::thread`]) and stored in the same transaction. If
//! another writer made that thread meanwhile, the message is composed again for
//! the thread that stands.

use maskrelay_schema::clock::now_ms;
use maskrelay_schema::conversations::make_thread;
use maskrelay_schema::idempotency::record_idempotent_response;
use maskrelay_schema::members::Member;
use maskrelay_schema::messages::insert_message_with_delivery;
use maskrelay_schema::new_message::{NewMessage, Origin};
use maskrelay_schema::orgs::Org;
use maskrelay_schema::tokens::random_token;
use maskrelay_schema::{ConversationId, DeliveryId, Direction, MessageId, Store};

use crate::build::{Draft, Sender, build};
use crate::content::Body;
use crate::error::SubmitError;
use crate::footer::FooterLinks;
use crate::link::LinkAction;
use crate::policy::{Attempt, may_write};
use crate::scrub::Scrubber;
use crate::thread::{Known, Placement, parent, place};

/// How many times a submission is composed again when other writers make its new
/// conversation at the same moment.
const THREAD_ATTEMPTS: usize = 3;

/// One message from one member to another.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The organisation both belong to.
    pub org: &'a Org,
    /// The member writing; for a notice, the member it is about.
    pub writer: &'a Member,
    /// The member it is for.
    pub reader: &'a Member,
    /// Where it entered, and so what kind of message it is.
    pub origin: Origin,
    /// What was written.
    pub body: &'a Body,
    /// Our `Message-ID` the writer answered, if they answered one of ours.
    pub in_reply_to: Option<&'a str>,
    /// How the writer's domain was authenticated (replies by mail).
    pub sender_auth: Option<&'a str>,
    /// Set when the API call carried an `Idempotency-Key`.
    pub idempotency: Option<IdempotencyRecord<'a>>,
    /// What a reply's route already read of its conversation.
    pub known: Option<Known<'a>>,
}

impl Submission<'_> {
    fn direction(&self) -> Direction<'_> {
        Direction {
            writer: &self.writer.id,
            reader: &self.reader.id,
        }
    }
}

/// An idempotency key to record with the message, and how to render the response.
#[derive(Clone, Copy)]
pub struct IdempotencyRecord<'a> {
    /// The key the client sent.
    pub key: &'a str,
    /// Fingerprint of the request.
    pub request_hash: &'a [u8],
    /// Renders the response that will be replayed for this key.
    pub render: &'a (dyn Fn(&Submitted) -> String + Sync),
}

impl std::fmt::Debug for IdempotencyRecord<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyRecord")
            .field("key", &self.key)
            .finish()
    }
}

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The conversation the message belongs to.
    pub conversation_id: ConversationId,
    /// The stored message.
    pub message_id: MessageId,
    /// Its delivery.
    pub delivery_id: DeliveryId,
}

/// A message placed in its thread and composed for its reader, before it is stored.
struct Prepared<'a> {
    placement: Placement,
    reader_address: &'a str,
    message_id: MessageId,
    rfc_message_id: String,
    content: Vec<u8>,
}

impl Prepared<'_> {
    /// The row to store for it.
    fn new_message<'a>(&'a self, s: &'a Submission<'_>) -> NewMessage<'a> {
        NewMessage {
            id: &self.message_id,
            org_id: &s.org.id,
            conversation_id: Some(&self.placement.thread.conversation_id),
            broadcast_id: None,
            writer_id: Some(&s.writer.id),
            reader_id: &s.reader.id,
            origin: s.origin,
            rfc_message_id: &self.rfc_message_id,
            sender_auth: s.sender_auth,
        }
    }

    /// What the caller is told once it is stored with `delivery_id`.
    fn submitted(&self, delivery_id: DeliveryId) -> Submitted {
        Submitted {
            conversation_id: self.placement.thread.conversation_id.clone(),
            message_id: self.message_id.clone(),
            delivery_id,
        }
    }
}

/// Submits messages into the delivery queue.
#[derive(Clone)]
pub struct Submitter {
    store: Store,
    relay_domain: String,
    public_url: String,
}

impl Submitter {
    /// A submitter writing to `store`, handing out addresses in `relay_domain`, and
    /// linking footers to the HTTP API at `public_url`.
    pub fn new(
        store: Store,
        relay_domain: impl Into<String>,
        public_url: impl Into<String>,
    ) -> Self {
        Self {
            store,
            relay_domain: relay_domain.into(),
            public_url: public_url.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The domain of relay addresses.
    pub fn relay_domain(&self) -> &str {
        &self.relay_domain
    }

    /// The store submissions are written to.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// The link that carries out `action` (see the HTTP API's `/v1/links`, and
    /// `/v1/read` for a broadcast sent by link).
    pub fn link(&self, action: &LinkAction) -> String {
        let path = match action {
            LinkAction::Read { .. } => "read",
            LinkAction::Block { .. } | LinkAction::Stop { .. } | LinkAction::Unsubscribe { .. } => {
                "links"
            }
        };
        format!(
            "{}/v1/{path}/{}",
            self.public_url,
            action.token(self.store.crypto())
        )
    }

    /// Stores the message and its delivery durably, then wakes the worker.
    ///
    /// # Errors
    /// [`SubmitError`] if it is refused or anything fails; then nothing was stored.
    pub async fn submit(&self, s: &Submission<'_>) -> Result<Submitted, SubmitError> {
        let mut all = self.submit_all(std::slice::from_ref(s)).await?;
        all.pop().ok_or(SubmitError::Contended)
    }

    /// Stores several messages in one transaction: all of them or none.
    ///
    /// # Errors
    /// [`SubmitError`] if one is refused or anything fails; then nothing was stored.
    pub async fn submit_all(&self, all: &[Submission<'_>]) -> Result<Vec<Submitted>, SubmitError> {
        for _ in 0..THREAD_ATTEMPTS {
            let mut prepared = Vec::with_capacity(all.len());
            for (index, s) in all.iter().enumerate() {
                prepared.push(self.prepare(index, s).await?);
            }
            let Some(done) = self.write(all, &prepared).await? else {
                tracing::info!(
                    "a new conversation was made by another writer meanwhile; composing again"
                );
                continue;
            };
            for submitted in &done {
                tracing::info!(
                    conversation_id = %submitted.conversation_id,
                    message_id = %submitted.message_id,
                    "message queued"
                );
            }
            self.store.deliveries_queued();
            return Ok(done);
        }
        Err(SubmitError::Contended)
    }

    /// Places a submission in its thread, checks who may write, and composes it.
    async fn prepare<'a>(
        &self,
        index: usize,
        s: &'a Submission<'_>,
    ) -> Result<Prepared<'a>, SubmitError> {
        let reader_address = s
            .reader
            .email
            .as_deref()
            .ok_or_else(|| SubmitError::NoAddress(s.reader.external_id.clone()))?;
        let placement = place(&self.store, s.org, s.direction(), s.known.as_ref()).await?;
        let attempt = Attempt {
            org: s.org,
            writer: s.writer,
            reader: s.reader,
            origin: s.origin,
            in_conversation: placement.in_conversation,
            barriers: s.known.map(|k| k.barriers),
        };
        if let Err(refusal) = may_write(&self.store, &attempt).await? {
            return Err(SubmitError::Refused { index, refusal });
        }
        let rfc_message_id = format!("{}@{}", random_token(24)?, self.relay_domain);
        let content = self.compose(s, &placement, &rfc_message_id)?;
        Ok(Prepared {
            placement,
            reader_address,
            message_id: MessageId::generate(),
            rfc_message_id,
            content,
        })
    }

    /// Stores prepared messages: a reply in its conversation, with nothing else to
    /// record, as one statement in a round; anything else in a transaction of its
    /// own. `None` if a thread made up for one of them was made otherwise meanwhile.
    async fn write(
        &self,
        all: &[Submission<'_>],
        prepared: &[Prepared<'_>],
    ) -> Result<Option<Vec<Submitted>>, SubmitError> {
        if let ([s], [p]) = (all, prepared)
            && s.idempotency.is_none()
            && !p.placement.to_make
        {
            let delivery_id = self
                .store
                .queue_message(&p.new_message(s), p.reader_address, &p.content)
                .await?;
            return Ok(Some(vec![p.submitted(delivery_id)]));
        }
        let mut tx = self.store.begin_write().await?;
        let mut done = Vec::with_capacity(all.len());
        for (s, p) in all.iter().zip(prepared) {
            if p.placement.to_make {
                let made =
                    make_thread(&mut tx, &s.org.id, s.direction(), &p.placement.thread).await?;
                if made.as_ref() != Some(&p.placement.thread) {
                    tx.rollback().await;
                    return Ok(None);
                }
            }
            let delivery_id = insert_message_with_delivery(
                &mut tx,
                &self.store,
                &p.new_message(s),
                p.reader_address,
                &p.content,
            )
            .await?;
            let submitted = p.submitted(delivery_id);
            if let Some(idem) = &s.idempotency {
                let response = (idem.render)(&submitted);
                record_idempotent_response(
                    &mut tx,
                    &s.org.id,
                    idem.key,
                    idem.request_hash,
                    &response,
                )
                .await
                .map_err(|e| {
                    if e.is_unique_violation() {
                        SubmitError::IdempotencyConflict
                    } else {
                        e.into()
                    }
                })?;
            }
            done.push(submitted);
        }
        tx.commit().await?;
        Ok(Some(done))
    }

    /// The reader's links under a member's message: block its writer, and stop all
    /// member messages.
    fn footer_links(&self, s: &Submission<'_>) -> (String, String) {
        let block = self.link(&LinkAction::Block {
            org: s.org.id.clone(),
            reader: s.reader.id.clone(),
            writer: s.writer.id.clone(),
        });
        let stop = self.link(&LinkAction::Stop {
            org: s.org.id.clone(),
            reader: s.reader.id.clone(),
        });
        (block, stop)
    }

    /// The message as its reader will get it: both members' addresses replaced by
    /// the relay addresses of its thread, threaded under the thread's latest.
    fn compose(
        &self,
        s: &Submission<'_>,
        placement: &Placement,
        rfc_message_id: &str,
    ) -> Result<Vec<u8>, SubmitError> {
        let thread = &placement.thread;
        let writer_relay = format!("{}@{}", thread.writer_token, self.relay_domain);
        let reader_relay = format!("{}@{}", thread.reader_token, self.relay_domain);
        let mut scrubber =
            Scrubber::new(&self.relay_domain, s.org.settings.remove_foreign_addresses);
        for address in s.writer.addresses() {
            scrubber.replace(address, &writer_relay);
        }
        for address in s.reader.addresses() {
            scrubber.replace(address, &reader_relay);
        }
        let mut body = s.body.clone();
        body.scrub(&scrubber);
        let noreply = format!("noreply@{}", self.relay_domain);
        let links;
        let from = match s.origin {
            // Broadcasts are composed by `crate::broadcast`; one submitted as a
            // message is the organisation's word like a notice.
            Origin::Notice | Origin::Broadcast => Sender::Organisation { address: &noreply },
            Origin::Api | Origin::Smtp => {
                // Only a member's message offers the reader links.
                links = self.footer_links(s);
                Sender::Member {
                    name: s.writer.name.as_deref().unwrap_or("A member"),
                    relay_address: &writer_relay,
                    links: Some(FooterLinks {
                        block: &links.0,
                        stop: &links.1,
                    }),
                }
            }
        };
        Ok(build(&Draft {
            from,
            org_name: &s.org.name,
            reader_name: s.reader.name.as_deref().unwrap_or(""),
            reader_relay_address: &reader_relay,
            message_id: rfc_message_id,
            in_reply_to: parent(s.in_reply_to, &placement.references),
            references: &placement.references,
            date: now_ms() / 1000,
            relay_domain: &self.relay_domain,
            body: &body,
        })?)
    }
}
