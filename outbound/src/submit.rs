//! Accepting a message into a conversation: the one transaction behind every
//! acknowledgement.
//!
//! The HTTP API (before its `202`) and the SMTP listener (before its `250`) both come
//! here. Conversation, relay address, message, composed content and delivery are
//! written in a single transaction, so once the caller acknowledges, the message is
//! on disk and the worker will deliver it.

use maskrelay_schema::conversations::{Thread, get_or_create_thread};
use maskrelay_schema::idempotency::record_idempotent_response;
use maskrelay_schema::ids::{new_id, now_ms, random_token};
use maskrelay_schema::members::Member;
use maskrelay_schema::messages::{
    NewMessage, Origin, insert_message_with_delivery, thread_references,
};
use maskrelay_schema::orgs::Org;
use maskrelay_schema::routing::REFERENCES;
use maskrelay_schema::{GroupTx, Store};

use crate::compose::{Draft, FooterLinks, compose};
use crate::content::Body;
use crate::error::OutboundError;
use crate::scrub::Scrubber;
use crate::wakeup::Wakeup;

/// One message from one member to another.
#[derive(Debug, Clone)]
pub struct Submission<'a> {
    /// The organisation both belong to.
    pub org: &'a Org,
    /// The writer.
    pub sender: &'a Member,
    /// The reader.
    pub recipient: &'a Member,
    /// Where it entered.
    pub origin: Origin,
    /// What was written.
    pub body: &'a Body,
    /// Our `Message-ID` the writer answered, if they answered one of ours.
    pub in_reply_to: Option<&'a str>,
    /// How the writer's domain was authenticated (replies by mail).
    pub sender_auth: Option<&'a str>,
    /// Set when the API call carried an `Idempotency-Key`.
    pub idempotency: Option<IdempotencyRecord<'a>>,
    /// The thread it continues and its latest messages' ids, if already read (with a
    /// reply's route); else they are looked up.
    pub thread: Option<(&'a Thread, &'a [String])>,
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
    pub conversation_id: String,
    /// The stored message.
    pub message_id: String,
    /// Its delivery.
    pub delivery_id: String,
}

/// A message composed for its reader, before it is stored.
struct Composed {
    thread: Thread,
    message_id: String,
    rfc_message_id: String,
    content: Vec<u8>,
}

impl Composed {
    /// The row to store for it.
    fn new_message<'a>(&'a self, s: &'a Submission<'_>) -> NewMessage<'a> {
        NewMessage {
            id: &self.message_id,
            org_id: &s.org.id,
            conversation_id: &self.thread.conversation_id,
            sender_id: &s.sender.id,
            recipient_id: &s.recipient.id,
            origin: s.origin,
            rfc_message_id: &self.rfc_message_id,
            sender_auth: s.sender_auth,
        }
    }

    /// What the caller is told once it is stored with delivery `delivery_id`.
    fn submitted(self, delivery_id: String) -> Submitted {
        Submitted {
            conversation_id: self.thread.conversation_id,
            message_id: self.message_id,
            delivery_id,
        }
    }
}

/// The reader's address, which a submission must have.
fn recipient_address<'a>(s: &'a Submission<'_>) -> Result<&'a str, OutboundError> {
    s.recipient
        .email
        .as_deref()
        .ok_or_else(|| OutboundError::NoAddress(s.recipient.external_id.clone()))
}

/// Queues messages for delivery and wakes the worker.
#[derive(Clone)]
pub struct Submitter {
    store: Store,
    relay_domain: String,
    public_url: String,
    wake: Wakeup,
}

impl Submitter {
    /// A submitter writing to `store`, handing out addresses in `relay_domain`,
    /// linking footers to the HTTP API at `public_url`, and waking the worker through
    /// `wake`.
    pub fn new(
        store: Store,
        relay_domain: impl Into<String>,
        public_url: impl Into<String>,
        wake: Wakeup,
    ) -> Self {
        Self {
            store,
            relay_domain: relay_domain.into(),
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            wake,
        }
    }

    /// The link that carries out a signed `payload` (see the HTTP API's `/v1/links`).
    pub fn link(&self, payload: &str) -> String {
        format!(
            "{}/v1/links/{}",
            self.public_url,
            self.store.sign_link(payload)
        )
    }

    /// The domain of relay addresses.
    pub fn relay_domain(&self) -> &str {
        &self.relay_domain
    }

    /// Stores the message and its delivery durably, then wakes the worker.
    ///
    /// # Errors
    /// [`OutboundError`] if anything fails; then nothing was stored.
    pub async fn submit(&self, s: &Submission<'_>) -> Result<Submitted, OutboundError> {
        let mut all = self.submit_all(std::slice::from_ref(s)).await?;
        all.pop()
            .ok_or_else(|| OutboundError::NoAddress(s.recipient.external_id.clone()))
    }

    /// Stores several messages in one transaction: all of them or none.
    ///
    /// # Errors
    /// [`OutboundError`] if anything fails; then nothing was stored.
    pub async fn submit_all(
        &self,
        all: &[Submission<'_>],
    ) -> Result<Vec<Submitted>, OutboundError> {
        // Composed before joining the batch where the conversation exists (a reply),
        // so that writers wait for each other's inserts only, not their composing.
        let mut composed = Vec::with_capacity(all.len());
        for s in all {
            let existing = match s.thread {
                Some((thread, references)) => Some((thread.clone(), references.to_vec())),
                None => {
                    self.store
                        .existing_thread(&s.org.id, &s.sender.id, &s.recipient.id, REFERENCES)
                        .await?
                }
            };
            composed.push(match existing {
                Some((thread, references)) => Some(self.compose_for(s, thread, &references)?),
                None => None,
            });
        }
        // A reply in its conversation, with nothing else to record: one statement.
        let alone = match (all, composed.as_mut_slice()) {
            ([s], [c]) if s.idempotency.is_none() => c.take().map(|c| (s, c)),
            _ => None,
        };
        let done = match alone {
            Some((s, c)) => vec![self.queue_one(s, c).await?],
            None => {
                let mut tx = self.store.begin_write().await?;
                let mut done = Vec::with_capacity(all.len());
                for (s, composed) in all.iter().zip(composed) {
                    done.push(self.submit_in(&mut tx, s, composed).await?);
                }
                tx.commit().await?;
                done
            }
        };
        for submitted in &done {
            tracing::info!(
                conversation_id = %submitted.conversation_id,
                message_id = %submitted.message_id,
                "message queued"
            );
        }
        self.wake.queued();
        Ok(done)
    }

    /// Queues the notice telling the writer of `message_id` that it could not be
    /// delivered (see [`crate::notice`]) and wakes the worker for it.
    ///
    /// # Errors
    /// [`OutboundError`] if the store fails.
    pub async fn notify_undeliverable(&self, message_id: &str) -> Result<bool, OutboundError> {
        let queued =
            crate::notice::undeliverable(&self.store, &self.relay_domain, message_id).await?;
        if queued {
            self.wake.queued();
        }
        Ok(queued)
    }

    /// Stores one composed message as a write of its own.
    async fn queue_one(
        &self,
        s: &Submission<'_>,
        composed: Composed,
    ) -> Result<Submitted, OutboundError> {
        let delivery_id = self
            .store
            .queue_message(
                &composed.new_message(s),
                recipient_address(s)?,
                &composed.content,
            )
            .await?;
        Ok(composed.submitted(delivery_id))
    }

    /// Stores one message, composing it here if it was not composed before (the
    /// first message of a conversation, which this transaction creates).
    async fn submit_in(
        &self,
        tx: &mut GroupTx,
        s: &Submission<'_>,
        composed: Option<Composed>,
    ) -> Result<Submitted, OutboundError> {
        let composed = match composed {
            Some(composed) => composed,
            None => {
                let thread =
                    get_or_create_thread(tx, &s.org.id, &s.sender.id, &s.recipient.id).await?;
                let references = thread_references(tx, &thread.conversation_id, REFERENCES).await?;
                self.compose_for(s, thread, &references)?
            }
        };
        let delivery_id = insert_message_with_delivery(
            tx,
            &self.store,
            &composed.new_message(s),
            recipient_address(s)?,
            &composed.content,
        )
        .await?;
        let submitted = composed.submitted(delivery_id);
        if let Some(idem) = &s.idempotency {
            let response = (idem.render)(&submitted);
            record_idempotent_response(tx, &s.org.id, idem.key, idem.request_hash, &response)
                .await
                .map_err(|e| {
                    if e.is_unique_violation() {
                        OutboundError::IdempotencyConflict
                    } else {
                        e.into()
                    }
                })?;
        }
        Ok(submitted)
    }

    /// The message as the reader will get it: both members' addresses replaced by
    /// the relay addresses of `thread`, threaded under `references`.
    fn compose_for(
        &self,
        s: &Submission<'_>,
        thread: Thread,
        references: &[String],
    ) -> Result<Composed, OutboundError> {
        let sender_relay = format!("{}@{}", thread.writer_token, self.relay_domain);
        let recipient_relay = format!("{}@{}", thread.reader_token, self.relay_domain);
        let mut scrubber =
            Scrubber::new(&self.relay_domain, s.org.settings.remove_foreign_addresses);
        for address in s.sender.addresses() {
            scrubber.replace(address, &sender_relay);
        }
        for address in s.recipient.addresses() {
            scrubber.replace(address, &recipient_relay);
        }
        let mut body = s.body.clone();
        body.scrub(&scrubber);
        let in_reply_to = match s.in_reply_to {
            Some(parent) if references.iter().any(|r| r == parent) => Some(parent.to_owned()),
            _ => references.last().cloned(),
        };
        let message_id = new_id();
        let rfc_message_id = format!("{}@{}", random_token(24)?, self.relay_domain);
        let block = self.link(&format!(
            "block.{}.{}.{}",
            s.org.id, s.recipient.id, s.sender.id
        ));
        let stop = self.link(&format!("stop.{}.{}", s.org.id, s.recipient.id));
        let content = compose(&Draft {
            sender_name: s.sender.name.as_deref().unwrap_or("A member"),
            sender_relay_address: &sender_relay,
            org_name: &s.org.name,
            recipient_name: s.recipient.name.as_deref().unwrap_or(""),
            recipient_relay_address: &recipient_relay,
            message_id: &rfc_message_id,
            in_reply_to: in_reply_to.as_deref(),
            references,
            date: now_ms() / 1000,
            relay_domain: &self.relay_domain,
            body: &body,
            links: Some(FooterLinks {
                block: &block,
                stop: &stop,
            }),
        })?;
        Ok(Composed {
            thread,
            message_id,
            rfc_message_id,
            content,
        })
    }
}
