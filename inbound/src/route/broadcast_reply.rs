//! A member answering a broadcast, at the address its copies came from
//! (`bcast-<id>@<relay domain>`). The broadcast takes no replies (`reply_policy`
//! `none`): nothing is passed on, and the member, proven as for a reply to a relay
//! address, gets the organisation's short answer on where to reach it instead, at
//! most once a day. Mail from anyone who did not receive the broadcast is refused.

use maskrelay_schema::BroadcastId;

use super::member::proven;
use super::{Router, Transaction};
use crate::read::classify::Kind;
use crate::read::message::InboundMessage;
use crate::reply::{self, Reply};

impl Router {
    /// Answers a member's reply to broadcast `id`.
    pub(super) async fn broadcast_reply(
        &self,
        tx: &Transaction<'_>,
        message: &InboundMessage,
        raw: &[u8],
        id: &BroadcastId,
    ) -> Result<Reply, Reply> {
        // An automatic answer (a vacation notice) is not answered again (RFC 3834).
        if message.kind != Kind::Personal {
            tracing::info!(broadcast_id = %id, "automatic mail to a broadcast's address taken in, not answered");
            return Ok(reply::RECORDED_NOT_RELAYED);
        }
        let store_failed = |e: maskrelay_schema::StoreError| {
            tracing::error!(broadcast_id = %id, error = %e, "look-up for a broadcast's reply failed");
            reply::TRY_LATER
        };
        let broadcast = self
            .store
            .broadcast_by_id(id)
            .await
            .map_err(store_failed)?
            .ok_or(reply::NO_SUCH_ADDRESS)?;
        let from = message.from.as_deref().unwrap_or_default();
        let mut member = self
            .store
            .broadcast_reader(id, from)
            .await
            .map_err(store_failed)?;
        // With sender checks off (development), the envelope names the writer too.
        if member.is_none() && !self.auth.is_on() && !tx.mail_from.is_empty() {
            member = self
                .store
                .broadcast_reader(id, tx.mail_from)
                .await
                .map_err(store_failed)?;
        }
        let Some(member) = member else {
            tracing::info!(broadcast_id = %id, "answer to a broadcast refused: not from a member who received it");
            return Err(reply::BROADCAST_WRONG_SENDER);
        };
        let org = self
            .store
            .org(&broadcast.org_id)
            .await
            .map_err(store_failed)?
            .ok_or(reply::NO_SUCH_ADDRESS)?;
        proven(
            self.auth.verify(tx.client, tx.mail_from, from, raw).await,
            org.settings.accept_unauthenticated,
        )?;
        match self.broadcaster.answer_reply(&broadcast, &member).await {
            Ok(answered) => {
                tracing::info!(broadcast_id = %id, answered, "answer to a broadcast received, not relayed");
                Ok(reply::BROADCAST_ANSWERED)
            }
            Err(e) => {
                tracing::error!(broadcast_id = %id, error = %e, "could not answer a reply to a broadcast");
                Err(reply::TRY_LATER)
            }
        }
    }
}
