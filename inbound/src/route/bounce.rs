//! Reports sent back to VERP addresses about our own deliveries: a bounce marks its
//! delivery `bounced` (a hard one suppresses the address) and tells the writer; a
//! feedback report (ARF) makes its reader stop getting mail from the writer. An
//! automatic answer that came back to the envelope sender instead (a vacation
//! notice) is not a report and changes nothing.

use maskrelay_schema::DeliveryId;
use maskrelay_schema::suppressions::BounceRecord;

use super::Router;
use crate::read::bounce;
use crate::read::classify::{Kind, classify};
use crate::reply::{self, Reply};

impl Router {
    /// Reads a report to VERP addresses and records it for each named delivery.
    pub(super) async fn reports(
        &self,
        deliveries: &[DeliveryId],
        raw: &[u8],
    ) -> Result<Reply, Reply> {
        let message = mail_parser::MessageParser::default()
            .parse(raw)
            .ok_or(reply::UNPARSEABLE)?;
        match classify(&message, true) {
            Kind::AutoReply => {
                tracing::info!("automatic answer to a bounce address ignored");
                return Ok(reply::BOUNCE_RECORDED);
            }
            Kind::Complaint => return self.complaints(deliveries).await,
            Kind::Personal | Kind::DeliveryReport => {}
        }
        let Some(bounce) = bounce::parse(&message) else {
            tracing::info!("mail to a bounce address is no report; ignored");
            return Ok(reply::BOUNCE_RECORDED);
        };
        let record = BounceRecord {
            status: bounce.status.as_deref(),
            reason: bounce.reason.as_str(),
            severity: bounce.severity,
        };
        for delivery_id in deliveries {
            match self.store.record_bounce(delivery_id, &record).await {
                Ok(Some(bounced)) => {
                    tracing::info!(
                        %delivery_id,
                        conversation_id = ?bounced.conversation_id,
                        message_id = %bounced.message_id,
                        reason = record.reason,
                        severity = record.severity.as_str(),
                        "bounce recorded"
                    );
                    // The bounce is recorded either way; a notice that cannot be
                    // queued now is not worth a retry of the whole report.
                    if let Err(e) = self
                        .submitter
                        .notify_undeliverable(&bounced.message_id)
                        .await
                    {
                        tracing::error!(conversation_id = ?bounced.conversation_id, error = %e, "could not queue the writer's notice");
                    }
                }
                Ok(None) => tracing::info!(%delivery_id, "bounce for a delivery no longer stored"),
                Err(e) => {
                    tracing::error!(%delivery_id, error = %e, "could not record a bounce");
                    return Err(reply::TRY_LATER);
                }
            }
        }
        Ok(reply::BOUNCE_RECORDED)
    }

    /// A feedback report (ARF) about deliveries: each reader stops getting mail from
    /// the writer they complained about.
    async fn complaints(&self, deliveries: &[DeliveryId]) -> Result<Reply, Reply> {
        for delivery_id in deliveries {
            match self.store.record_complaint(delivery_id).await {
                Ok(Some(c)) => {
                    tracing::info!(%delivery_id, conversation_id = ?c.conversation_id, "complaint recorded: the reader blocks the writer, or leaves the broadcast's category")
                }
                Ok(None) => {
                    tracing::info!(%delivery_id, "complaint about a delivery no longer stored")
                }
                Err(e) => {
                    tracing::error!(%delivery_id, error = %e, "could not record a complaint");
                    return Err(reply::TRY_LATER);
                }
            }
        }
        Ok(reply::BOUNCE_RECORDED)
    }
}
