//! Machine-written mail to relay addresses (auto-replies, delivery reports,
//! complaints) is recorded in its conversation instead of relayed.

use maskrelay_schema::events::InboundKind;
use maskrelay_schema::routing::Route;

use super::{Router, Transaction};
use crate::read::classify::Kind;
use crate::read::message::InboundMessage;
use crate::reply::{self, Reply};

impl Router {
    /// Records `message` instead of relaying it, if a machine wrote it, and says
    /// so; `None` for a member's own message (and for an auto-reply when every
    /// organisation involved relays them). A complaint may also stop mail between
    /// the members (see [`super::complaint`]).
    pub(super) async fn machine_written(
        &self,
        tx: &Transaction<'_>,
        message: &InboundMessage,
        raw: &[u8],
        legs: &[&Route],
    ) -> Option<Reply> {
        let kind = match message.kind {
            Kind::Personal => return None,
            Kind::AutoReply if legs.iter().all(|l| l.org.settings.relay_auto_replies) => {
                return None;
            }
            Kind::Complaint => return Some(self.member_complaint(tx, message, raw, legs).await),
            Kind::AutoReply => InboundKind::AutoReply,
            Kind::DeliveryReport => InboundKind::DeliveryReport,
        };
        Some(self.record(legs, kind).await)
    }

    /// Records mail of `kind` from each leg's writer in its conversation.
    pub(super) async fn record(&self, legs: &[&Route], kind: InboundKind) -> Reply {
        for leg in legs {
            if let Err(reply) = self.record_one(leg, kind).await {
                return reply;
            }
            tracing::info!(conversation_id = %leg.relay.conversation_id, kind = kind.as_str(), "automatic message recorded, not relayed");
        }
        reply::RECORDED_NOT_RELAYED
    }

    /// Records mail of `kind` from the leg's writer in its conversation; the reply
    /// to give if that fails.
    pub(super) async fn record_one(&self, leg: &Route, kind: InboundKind) -> Result<(), Reply> {
        self.store
            .record_inbound(
                &leg.org.id,
                &leg.relay.conversation_id,
                &leg.writer.id,
                kind,
            )
            .await
            .map_err(|e| {
                tracing::error!(conversation_id = %leg.relay.conversation_id, kind = kind.as_str(), error = %e, "could not record mail that was not relayed");
                reply::TRY_LATER
            })
    }
}
