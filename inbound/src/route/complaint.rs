//! A feedback report (ARF) sent to relay addresses. When the member holding an
//! address sent it, proven as a reply would be, they no longer get mail from the
//! member behind that address; anyone else's report is only recorded (a report is
//! easy to forge, and a relay address is all it takes).

use maskrelay_schema::Direction;
use maskrelay_schema::events::InboundKind;
use maskrelay_schema::routing::Route;

use super::member::{Writer, sender_is};
use super::{Router, Transaction};
use crate::read::message::InboundMessage;
use crate::reply::{self, Reply};

impl Router {
    /// Blocks, for each proven complainer, the member they complained about, and
    /// records the complaint in every conversation it reached.
    pub(super) async fn member_complaint(
        &self,
        tx: &Transaction<'_>,
        message: &InboundMessage,
        raw: &[u8],
        legs: &[&Route],
    ) -> Reply {
        let from = message.from.as_deref().unwrap_or_default();
        let (own, others): (Vec<&Route>, Vec<&Route>) = legs
            .iter()
            .partition(|leg| matches!(sender_is(leg, &[from]), Writer::Member));
        if !own.is_empty() && self.prove(tx, from, raw, &own).await.is_ok() {
            for leg in &own {
                // The complainer (the address's holder) stops reading the member
                // the address stands for.
                let complained_of = Direction {
                    writer: &leg.reader.id,
                    reader: &leg.writer.id,
                };
                if let Err(e) = self.store.block(complained_of).await {
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
}
