//! A member leaving a category of broadcasts by mail: the `mailto:` of a broadcast's
//! `List-Unsubscribe` (RFC 2369) is `unsubscribe@<relay domain>` with the signed
//! link's token as subject. The token says which member and category; the mail
//! must come from that member, proven as a reply to a relay address is.

use maskrelay_compose::LinkAction;
use maskrelay_schema::members::MemberStatus;

use super::member::proven;
use super::{Router, Transaction};
use crate::read::message::InboundMessage;
use crate::reply::{self, Reply};

impl Router {
    /// Unsubscribes the member the request's token names from its category, if the
    /// request comes from them.
    pub(super) async fn unsubscribe(
        &self,
        tx: &Transaction<'_>,
        message: &InboundMessage,
        raw: &[u8],
    ) -> Result<Reply, Reply> {
        let subject = message
            .body
            .as_ref()
            .map(|b| b.subject.clone())
            .unwrap_or_default();
        // Mail clients send the subject they were given, perhaps with a prefix.
        let action = subject
            .split_whitespace()
            .find_map(|word| LinkAction::from_token(self.store.crypto(), word));
        let Some(LinkAction::Unsubscribe {
            org,
            reader,
            category,
        }) = action
        else {
            tracing::info!("unsubscribe request refused: no token of ours");
            return Err(reply::UNSUBSCRIBE_UNKNOWN);
        };
        let member = match self.store.member(&reader).await {
            Ok(Some(m)) if m.status != MemberStatus::Erased && m.org_id == org => m,
            Ok(_) => return Err(reply::UNSUBSCRIBE_UNKNOWN),
            Err(e) => {
                tracing::error!(error = %e, "member look-up failed");
                return Err(reply::TRY_LATER);
            }
        };
        let from = message.from.as_deref().unwrap_or_default();
        let from_member =
            member.has_address(from) || (!self.auth.is_on() && member.has_address(tx.mail_from));
        if !from_member {
            tracing::info!(org_id = %org, "unsubscribe request refused: not from the member");
            return Err(reply::UNSUBSCRIBE_WRONG_SENDER);
        }
        let accepts_unproven = match self.store.org(&org).await {
            Ok(found) => found.is_some_and(|o| o.settings.accept_unauthenticated),
            Err(e) => {
                tracing::error!(error = %e, "organisation look-up failed");
                return Err(reply::TRY_LATER);
            }
        };
        proven(
            self.auth.verify(tx.client, tx.mail_from, from, raw).await,
            accepts_unproven,
        )?;
        if category.is_mandatory() {
            return Err(reply::UNSUBSCRIBE_UNKNOWN);
        }
        if let Err(e) = self
            .store
            .set_subscribed(&org, &member.id, &category, false)
            .await
        {
            tracing::error!(error = %e, "could not record an unsubscription");
            return Err(reply::TRY_LATER);
        }
        tracing::info!(org_id = %org, category = %category, "member unsubscribed by mail");
        Ok(reply::UNSUBSCRIBED)
    }
}
