//! The organisation's answer to a member who answers a broadcast that takes no
//! replies (`reply_policy` `none`): nothing is passed on, and the member is told,
//! at most once a day, where to reach the organisation instead.

use maskrelay_schema::CategoryId;
use maskrelay_schema::broadcasts::{Broadcast, Candidate, Copy};
use maskrelay_schema::clock::now_ms;
use maskrelay_schema::members::Member;
use maskrelay_schema::tokens::random_token;

use crate::broadcast::Broadcaster;
use crate::broadcast::spec::BroadcastSpec;
use crate::build::{Draft, Sender, build};
use crate::content::Body;
use crate::error::SubmitError;
use crate::policy::may_receive;

/// How long one answer covers a member.
const ONE_DAY_MS: i64 = 86_400_000;

impl Broadcaster {
    /// Queues the answer for `member`, who answered `broadcast`, unless they had
    /// one within a day or may not receive the organisation's mail. Returns whether
    /// one was queued.
    ///
    /// # Errors
    /// [`SubmitError`] if the store fails or the broadcast's record is unreadable.
    pub async fn answer_reply(
        &self,
        broadcast: &Broadcast,
        member: &Member,
    ) -> Result<bool, SubmitError> {
        let store = self.submitter.store();
        let Some(org) = store.org(&broadcast.org_id).await? else {
            return Ok(false);
        };
        let candidate = Candidate {
            member: member.clone(),
            unsubscribed: false,
            suppressed: store.suppression(&member.id).await?.is_some(),
        };
        // The organisation's own word, so no category applies.
        let mandatory = CategoryId::from(CategoryId::MANDATORY);
        let (Ok(()), Some(address)) = (may_receive(&mandatory, &candidate), &member.email) else {
            return Ok(false);
        };
        let spec = BroadcastSpec::from_bytes(&broadcast.spec)?;
        let reach = match &org.settings.contact_url {
            Some(url) => format!("To reach {}, please use {url}", org.name),
            None => format!(
                "To reach {}, please use its usual contact channels.",
                org.name
            ),
        };
        let text = format!(
            "Thank you for your answer. This address does not take replies, so your \
             message was not passed on to anyone.\r\n\r\n{reach}\r\n"
        );
        let body = Body::from_text(format!("Re: {}", spec.subject), &text, None);
        let relay_domain = self.submitter.relay_domain();
        let noreply = format!("noreply@{relay_domain}");
        let message_id = format!("{}@{relay_domain}", random_token(24)?);
        let content = build(&Draft {
            from: Sender::Organisation { address: &noreply },
            org_name: &org.name,
            reader_name: member.name.as_deref().unwrap_or(""),
            reader_relay_address: &noreply,
            message_id: &message_id,
            in_reply_to: None,
            references: &[],
            date: now_ms() / 1000,
            relay_domain,
            body: &body,
        })?;
        let answer = Copy {
            reader_id: &member.id,
            reader_address: address,
            rfc_message_id: &message_id,
            content: &content,
        };
        let queued = store
            .queue_broadcast_answer(&org.id, &member.id, &answer, now_ms() - ONE_DAY_MS)
            .await?;
        if queued {
            store.deliveries_queued();
            tracing::info!(broadcast_id = %broadcast.id, "answer to a broadcast's reply queued");
        }
        Ok(queued)
    }
}
