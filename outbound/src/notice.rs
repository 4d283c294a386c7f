//! The notice a writer gets when their message could not be delivered: one short
//! mail from the relay domain, "Your message to Bob could not be delivered".
//!
//! It says nothing of Bob's address, mail provider or the reason his server gave
//! (all of which would identify him). It goes to the writer's own address as a
//! member, never to an envelope sender, so never to a null sender; it carries
//! `Auto-Submitted: auto-replied` and our loop mark; at most one goes out per
//! conversation per day; and a notice that itself fails produces no notice, so it
//! can never loop.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::raw::Raw;
use maskrelay_schema::Store;
use maskrelay_schema::conversations::get_or_create_relay_token;
use maskrelay_schema::ids::{new_id, now_ms, random_token};
use maskrelay_schema::messages::{NewMessage, Origin, insert_message_with_delivery};

use crate::compose::{LOOP_HEADER, loop_mark};
use crate::error::OutboundError;

/// How long one notice covers a conversation.
const ONE_DAY_MS: i64 = 86_400_000;

/// Queues the notice for the writer of `message_id`, unless the message was a
/// notice, a notice went out in its conversation within a day, or the writer has no
/// address any more. Returns whether one was queued.
///
/// # Errors
/// [`OutboundError`] if the store fails; nothing is queued then.
pub async fn undeliverable(
    store: &Store,
    relay_domain: &str,
    message_id: &str,
) -> Result<bool, OutboundError> {
    let Some(failed) = store
        .undeliverable(message_id, now_ms() - ONE_DAY_MS)
        .await?
    else {
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
    let Some(writer_address) = writer.email.as_deref() else {
        return Ok(false);
    };
    let reader_name = reader.name.as_deref().unwrap_or("the member");
    let mut tx = store.begin_write().await?;
    // The writer's own relay address in this conversation stands in To:, as on
    // everything relayed to them: their real address is only in the envelope.
    let writer_token =
        get_or_create_relay_token(&mut tx, &failed.conversation_id, &writer.id, &reader.id).await?;
    let rfc_message_id = format!("{}@{relay_domain}", random_token(24)?);
    let text = format!(
        "Hello {writer},\r\n\r\nYour message to {reader_name} through {org_name} could not be \
         delivered: {reader_name}'s mailbox did not accept it.\r\n\r\nThere is nothing to \
         reply to here. If you need to reach {reader_name}, please contact {org_name}.\r\n\r\n\
         -- \r\nThis notice was sent automatically by {org_name}. You get at most one a day \
         for each conversation.\r\n",
        writer = writer.name.as_deref().unwrap_or("there"),
        org_name = org.name,
    );
    let content = MessageBuilder::new()
        .header(LOOP_HEADER, Raw::new(loop_mark(relay_domain)))
        .header("Auto-Submitted", Raw::new("auto-replied"))
        .from(Address::new_address(
            Some(org.name.clone()),
            format!("noreply@{relay_domain}"),
        ))
        .to(Address::new_address(
            writer.name.clone(),
            format!("{writer_token}@{relay_domain}"),
        ))
        .subject(format!(
            "Your message to {reader_name} could not be delivered"
        ))
        .message_id(rfc_message_id.clone())
        .in_reply_to(failed.rfc_message_id.clone())
        .date(now_ms() / 1000)
        .text_body(text)
        .write_to_vec()?;
    let id = new_id();
    let message = NewMessage {
        id: &id,
        org_id: &org.id,
        conversation_id: &failed.conversation_id,
        sender_id: &reader.id,
        recipient_id: &writer.id,
        origin: Origin::Notice,
        rfc_message_id: &rfc_message_id,
        sender_auth: None,
    };
    insert_message_with_delivery(&mut tx, store, &message, writer_address, &content).await?;
    tx.commit().await?;
    tracing::info!(conversation_id = %failed.conversation_id, message_id = %id, "undeliverable notice queued for the writer");
    Ok(true)
}
