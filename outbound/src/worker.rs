//! The delivery worker: claims due deliveries, hands them to the transport, and
//! records how each attempt ended.
//!
//! It wakes when a message is submitted in this process and polls otherwise, so that
//! several instances sharing PostgreSQL all see each other's work. On shutdown it
//! stops claiming and waits for the deliveries in flight; anything claimed but not
//! finished is claimed again once its lease expires.

use std::sync::Arc;
use std::time::Duration;

use maskrelay_schema::Store;
use maskrelay_schema::ids::now_ms;
use maskrelay_schema::queue::ClaimedDelivery;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::DeliveryError;
use crate::retry::{NextStep, RetryPolicy};
use crate::transport::{Envelope, Transport};

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where mail goes; `None` keeps everything queued (and says so at start).
    pub transport: Option<Transport>,
    /// Name used in EHLO, and domain of the envelope sender.
    pub relay_domain: String,
    /// How often to look for due deliveries when nothing wakes the worker.
    pub poll_interval: Duration,
    /// How long a claimed delivery is reserved for this worker.
    pub lease: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Time limit of one SMTP command.
    pub command_timeout: Duration,
    /// When to retry.
    pub retry: RetryPolicy,
}

impl WorkerConfig {
    /// Defaults for `relay_domain` and `transport`.
    pub fn new(relay_domain: impl Into<String>, transport: Option<Transport>) -> Self {
        Self {
            transport,
            relay_domain: relay_domain.into(),
            poll_interval: Duration::from_secs(5),
            lease: Duration::from_secs(15 * 60),
            concurrency: 8,
            command_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
        }
    }
}

/// Runs the worker until `shutdown` is cancelled, then waits for deliveries in flight.
pub async fn run(
    store: Store,
    config: WorkerConfig,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let Some(transport) = config.transport.clone() else {
        tracing::warn!(
            "no outbound transport configured (outbound.smarthost or outbound.capture_dir): \
             messages stay queued until one is set"
        );
        shutdown.cancelled().await;
        return;
    };
    let ctx = Arc::new(Context {
        store,
        transport,
        config,
    });
    let slots = Arc::new(Semaphore::new(ctx.config.concurrency.max(1)));
    let mut in_flight = JoinSet::new();
    loop {
        while in_flight.try_join_next().is_some() {}
        let free = i64::try_from(slots.available_permits()).unwrap_or(0);
        let mut claimed_full_batch = false;
        if free > 0 {
            match ctx.claim(free).await {
                Ok(batch) => {
                    claimed_full_batch = i64::try_from(batch.len()).unwrap_or(0) == free;
                    for delivery in batch {
                        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
                            break;
                        };
                        let ctx = Arc::clone(&ctx);
                        let span = tracing::info_span!(
                            "delivery",
                            delivery_id = %delivery.id,
                            message_id = %delivery.message_id
                        );
                        in_flight.spawn(
                            async move {
                                ctx.attempt(delivery).await;
                                drop(permit);
                            }
                            .instrument(span),
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not claim deliveries"),
            }
        }
        if claimed_full_batch {
            // More may be due: look again as soon as a slot frees up.
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = in_flight.join_next(), if !in_flight.is_empty() => {}
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(ctx.config.poll_interval) => {}
        }
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!("delivery worker stopped");
}

struct Context {
    store: Store,
    transport: Transport,
    config: WorkerConfig,
}

impl Context {
    async fn claim(
        &self,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, maskrelay_schema::StoreError> {
        let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX);
        let (claimed, unreadable) = self.store.claim_due(lease, limit).await?;
        for bad in unreadable {
            tracing::error!(delivery_id = %bad.id, error = %bad.error, "delivery cannot be read; failing it");
            self.store
                .mark_failed(&bad.id, "stored delivery could not be decrypted")
                .await?;
        }
        Ok(claimed)
    }

    async fn attempt(&self, d: ClaimedDelivery) {
        let mail_from = format!("bounces@{}", self.config.relay_domain);
        let envelope = Envelope {
            delivery_id: &d.id,
            mail_from: &mail_from,
            rcpt_to: &d.recipient,
        };
        let outcome = self
            .transport
            .deliver(
                &self.config.relay_domain,
                &envelope,
                &d.content,
                self.config.command_timeout,
            )
            .await;
        let recorded = match outcome {
            Ok(()) => {
                tracing::info!(attempt = d.attempts + 1, "delivered");
                self.store.mark_sent(&d.id).await
            }
            Err(DeliveryError::Permanent(reason)) => {
                tracing::warn!(%reason, attempt = d.attempts + 1, "delivery failed permanently");
                self.store.mark_failed(&d.id, &reason).await
            }
            Err(DeliveryError::Temporary(reason)) => {
                let failures = d.attempts + 1;
                match self.config.retry.next_step(failures, d.queued_at, now_ms()) {
                    NextStep::RetryAt(at) => {
                        tracing::info!(%reason, attempt = failures, retry_in_ms = at - now_ms(), "delivery deferred");
                        self.store.mark_retry(&d.id, at, &reason).await
                    }
                    NextStep::GiveUp => {
                        tracing::warn!(%reason, attempt = failures, "delivery expired");
                        self.store
                            .mark_failed(&d.id, &format!("expired after retries: {reason}"))
                            .await
                    }
                }
            }
        };
        if let Err(e) = recorded {
            // The lease will expire and the delivery will be tried again: a duplicate is
            // possible, a loss is not.
            tracing::error!(error = %e, "could not record the delivery outcome");
        }
    }
}
