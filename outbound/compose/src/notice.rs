//! The notice a writer gets when their message could not be delivered: one short
//! mail from the organisation at the relay domain, "Your message to Bob could not
//! be delivered", submitted and composed like any other message.
//!
//! It says nothing of Bob's address, mail provider or the reason his server gave
//! (all of which would identify him). It goes to the writer's own address as a
//! member, never to an envelope sender, so never to a null sender; it is marked as
//! written automatically; at most one goes out per conversation per day; and a
//! notice that itself fails produces no notice, so it can never loop.
//!
//! Failures reach it from two sides: the delivery worker reports deliveries that
//! failed for good on a channel ([`run`]), and the SMTP listener reports bounces
//! ([`Submitter::notify_undeliverable`]).

use maskrelay_schema::MessageId;
use maskrelay_schema::clock::now_ms;
use maskrelay_schema::new_message::Origin;
use tokio::sync::mpsc;

use crate::content::Body;
use crate::error::SubmitError;
use crate::submit::{Submission, Submitter};

/// How long one notice covers a conversation.
const ONE_DAY_MS: i64 = 86_400_000;

/// Tells the writer of each message reported on `failed` until the channel closes
/// (the delivery worker has stopped).
pub async fn run(submitter: Submitter, mut failed: mpsc::Receiver<MessageId>) {
    while let Some(message) = failed.recv().await {
        if let Err(e) = submitter.notify_undeliverable(&message).await {
            tracing::error!(message_id = %message, error = %e, "could not queue the writer's notice");
        }
    }
}

impl Submitter {
    /// Queues the notice for the writer of `message`, unless the message was a
    /// notice, a notice went out in its conversation within a day, or the writer has
    /// no address any more. Returns whether one was queued.
    ///
    /// # Errors
    /// [`SubmitError`] if the store fails; nothing is queued then.
    pub async fn notify_undeliverable(&self, message: &MessageId) -> Result<bool, SubmitError> {
        let store = self.store();
        let Some(failed) = store.undeliverable(message, now_ms() - ONE_DAY_MS).await? else {
            return Ok(false);
        };
        if failed.is_notice || failed.notified_recently {
            return Ok(false);
        }
        let (Some(org), Some(writer), Some(reader)) = (
            store.org(&failed.org_id).await?,
            store.member(&failed.writer_id).await?,
            store.member(&failed.reader_id).await?,
        ) else {
            return Ok(false);
        };
        let reader_name = reader.name.as_deref().unwrap_or("the member");
        let text = format!(
            "Hello {writer},\r\n\r\nYour message to {reader_name} through {org_name} could not be \
             delivered: {reader_name}'s mailbox did not accept it.\r\n\r\nThere is nothing to \
             reply to here. If you need to reach {reader_name}, please contact {org_name}.\r\n\r\n\
             -- \r\nThis notice was sent automatically by {org_name}. You get at most one a day \
             for each conversation.\r\n",
            writer = writer.name.as_deref().unwrap_or("there"),
            org_name = org.name,
        );
        let body = Body::from_text(
            format!("Your message to {reader_name} could not be delivered"),
            &text,
            None,
        );
        // From the unreachable member's side of the conversation to the writer: the
        // notice goes to the writer's own relay address in it, as everything relayed
        // to them does, and threads under the message that failed.
        let notice = Submission {
            org: &org,
            writer: &reader,
            reader: &writer,
            origin: Origin::Notice,
            body: &body,
            in_reply_to: Some(&failed.rfc_message_id),
            sender_auth: None,
            idempotency: None,
            known: None,
        };
        match self.submit(&notice).await {
            Ok(queued) => {
                tracing::info!(conversation_id = %queued.conversation_id, message_id = %queued.message_id, "undeliverable notice queued for the writer");
                Ok(true)
            }
            Err(SubmitError::NoAddress(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}
