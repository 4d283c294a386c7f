//! The delivery worker: claims due deliveries, hands them to the transport, and
//! records how each attempt ended.
//!
//! It wakes when deliveries are committed in this process (the store's doorbell) or
//! announced by another instance sharing PostgreSQL (see [`crate::wakeup`]), and
//! polls otherwise, for retries coming due and announcements missed. A delivery that
//! fails for good is reported on the `failed` channel once recorded, so that its
//! writer can be told; composing that notice is not this crate's business.
//!
//! Claims carry the instance id and a short lease, renewed while a delivery is in
//! progress; at start
//! the worker takes back the claims its instance held before a crash, so they are
//! delivered at once rather than when their leases run out. On shutdown it stops
//! claiming and waits for the deliveries in flight; anything claimed but not
//! finished is claimed again once its lease expires.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maskrelay_schema::clock::now_ms;
use maskrelay_schema::queue::ClaimedDelivery;
use maskrelay_schema::{DeliveryId, MessageId, Store};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::dkim::KeyCache;
use crate::error::DeliveryError;
use crate::record::Outcome;
use crate::retry::{NextStep, RetryPolicy};
use crate::transport::pool::IDLE_KEEP;
use crate::transport::{Envelope, Transport};

/// The shortest an idle worker waits for paced copies to fall due.
const PACING_STEP: Duration = Duration::from_millis(100);

/// How often idle kept connections are looked at, whatever the poll interval.
const TIDY_EVERY: Duration = IDLE_KEEP;

/// Settings of the worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where mail goes; `None` holds everything queued (and says so at start).
    pub transport: Option<Transport>,
    /// Domain of the envelope sender (VERP) and of the DKIM signatures.
    pub relay_domain: String,
    /// Our name in EHLO: the host name the relay domain's MX and reverse DNS name.
    pub helo: String,
    /// This instance's name in the queue's claims; unique among instances sharing a
    /// database, and the same across restarts of one instance.
    pub instance_id: String,
    /// How often to look for due deliveries when nothing wakes the worker.
    pub poll_interval: Duration,
    /// How long a claimed delivery is reserved for this worker; renewed every third
    /// of it while the delivery is in progress.
    pub lease: Duration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Time limit of one SMTP command.
    pub command_timeout: Duration,
    /// When to retry.
    pub retry: RetryPolicy,
    /// How often DKIM keys are read again from the store.
    pub dkim_reload: Duration,
}

impl WorkerConfig {
    /// Defaults for `relay_domain` and `transport`.
    pub fn new(relay_domain: impl Into<String>, transport: Option<Transport>) -> Self {
        let relay_domain = relay_domain.into();
        Self {
            transport,
            helo: relay_domain.clone(),
            relay_domain,
            instance_id: "maskrelay".into(),
            poll_interval: Duration::from_secs(5),
            lease: Duration::from_secs(60),
            concurrency: 32,
            command_timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            dkim_reload: Duration::from_secs(60),
        }
    }
}

/// Runs the worker until `shutdown` is cancelled, then waits for deliveries in
/// flight. Each message whose delivery failed for good is sent on `failed` once the
/// failure is recorded; the channel closes when the worker ends.
pub async fn run(
    store: Store,
    config: WorkerConfig,
    failed: mpsc::Sender<MessageId>,
    shutdown: CancellationToken,
) {
    let Some(transport) = config.transport.clone() else {
        tracing::warn!("outbound.hold is set: messages stay queued until it is turned off");
        shutdown.cancelled().await;
        return;
    };
    match store.release_claims(&config.instance_id).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            released = n,
            "took back deliveries this instance had claimed before it stopped"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "could not take back earlier claims; they are retried when their leases expire"
        ),
    }
    let keys = KeyCache::new(config.relay_domain.clone(), config.dkim_reload);
    if keys.current(&store).await.is_empty() {
        tracing::warn!(
            "no DKIM key: messages leave unsigned and mailbox providers will junk them; \
             run `maskrelay dkim generate` and publish the record it prints"
        );
    }
    let ctx = Arc::new(Context {
        store,
        transport,
        config,
        keys,
        failed,
        in_flight: Mutex::default(),
        shutdown: shutdown.clone(),
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
                    tracing::debug!(claimed = batch.len(), free, "claimed");
                    claimed_full_batch = i64::try_from(batch.len()).unwrap_or(0) >= free;
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
                                let outcome = ctx.attempt(&delivery).await;
                                // The slot is for talking to the next server: the
                                // record waits for a grouped commit, and the lease
                                // and `in_flight` keep the delivery from being
                                // claimed again meanwhile.
                                drop(permit);
                                ctx.record(&delivery, outcome).await;
                            }
                            .instrument(span),
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "could not claim deliveries"),
            }
        }
        if claimed_full_batch {
            // More may be due: look again once half the slots are free (or all
            // deliveries ended), so that one claim, a commit, serves several
            // deliveries rather than one.
            let batch = (ctx.config.concurrency / 2).max(1);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = in_flight.join_next(), if !in_flight.is_empty() => {}
                }
                if slots.available_permits() >= batch || in_flight.is_empty() {
                    break;
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            continue;
        }
        // Idle: until woken (a submission here, or another instance's announcement)
        // or the poll is due, closing kept connections on their own clock meanwhile,
        // so that the poll interval can be long without keeping them open.
        // Paced bulk copies are queued ahead of time: wake when the next one is
        // due if that comes before the poll, but no sooner than PACING_STEP, so
        // that one claim takes the copies of a step together (a conversation's
        // mail rings the doorbell and does not wait for it).
        let wait = match ctx.store.next_due().await {
            Ok(Some(at)) => {
                let until = u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0);
                ctx.config
                    .poll_interval
                    .min(Duration::from_millis(until).max(PACING_STEP))
            }
            Ok(None) => ctx.config.poll_interval,
            Err(e) => {
                tracing::warn!(error = %e, "could not read when the next delivery is due");
                ctx.config.poll_interval
            }
        };
        let poll = tokio::time::sleep(wait);
        tokio::pin!(poll);
        let woken = loop {
            ctx.transport.tidy();
            tokio::select! {
                _ = shutdown.cancelled() => break false,
                _ = ctx.store.worker_woken() => break true,
                _ = &mut poll => break true,
                _ = tokio::time::sleep(TIDY_EVERY) => {}
            }
        };
        if !woken {
            break;
        }
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!("delivery worker stopped");
}

/// A random number for the retry jitter; the middle of the range (no jitter) if
/// the system's generator fails.
fn jitter_roll() -> u16 {
    let mut bytes = [0u8; 2];
    match maskrelay_schema::crypto::fill_random(&mut bytes) {
        Ok(()) => u16::from_le_bytes(bytes),
        Err(_) => u16::MAX / 2,
    }
}

struct Context {
    store: Store,
    transport: Transport,
    config: WorkerConfig,
    keys: KeyCache,
    /// Where messages that failed for good are reported.
    failed: mpsc::Sender<MessageId>,
    /// Deliveries this process is working on, so that a claim renewed by a later
    /// look at the queue (after a lease ran out while the database was failing) is
    /// not handed out twice here.
    in_flight: Mutex<HashSet<DeliveryId>>,
    shutdown: CancellationToken,
}

impl Context {
    async fn claim(
        &self,
        limit: i64,
    ) -> Result<Vec<ClaimedDelivery>, maskrelay_schema::StoreError> {
        let (claimed, unreadable) = self
            .store
            .claim_due(&self.config.instance_id, self.lease_ms(), limit)
            .await?;
        for bad in unreadable {
            tracing::error!(delivery_id = %bad.id, error = %bad.error, "delivery cannot be read; failing it");
            self.store
                .mark_failed(&bad.id, "stored delivery could not be decrypted")
                .await?;
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        Ok(claimed
            .into_iter()
            .filter(|d| in_flight.insert(d.id.clone()))
            .collect())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.config.lease.as_millis()).unwrap_or(i64::MAX)
    }

    async fn attempt(&self, d: &ClaimedDelivery) -> Outcome {
        if d.suppressed {
            // The address bounced for good since this was queued: do not send.
            tracing::info!("recipient address suppressed; not sent");
            Outcome::Suppressed
        } else {
            self.outcome(d).await
        }
    }

    /// Records how the attempt ended and reports a failure for good.
    async fn record(&self, d: &ClaimedDelivery, outcome: Outcome) {
        outcome
            .record(&self.store, &d.id, &self.shutdown, self.config.lease)
            .await;
        if matches!(outcome, Outcome::Failed(_))
            && self.failed.send(d.message_id.clone()).await.is_err()
        {
            tracing::error!("nobody hears of failed deliveries; the writer is not told");
        }
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&d.id);
    }

    /// Attempts the delivery and says how it went.
    async fn outcome(&self, d: &ClaimedDelivery) -> Outcome {
        match self.deliver_renewing(d).await {
            Ok(()) => {
                tracing::info!(attempt = d.attempts + 1, "delivered");
                Outcome::Sent
            }
            Err(DeliveryError::Permanent(reason)) => {
                tracing::warn!(%reason, attempt = d.attempts + 1, "delivery failed permanently");
                Outcome::Failed(reason)
            }
            Err(DeliveryError::Temporary(reason)) => self.retry_or_give_up(d, reason, 0),
            Err(DeliveryError::Deferred { reason, wait }) => {
                let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                self.retry_or_give_up(d, reason, wait_ms)
            }
        }
    }

    /// The next attempt on the retry schedule, but not within `at_least_ms`; or the
    /// end, once retries have run out.
    fn retry_or_give_up(&self, d: &ClaimedDelivery, reason: String, at_least_ms: i64) -> Outcome {
        let failures = d.attempts + 1;
        match self
            .config
            .retry
            .next_step(failures, d.queued_at, now_ms(), jitter_roll())
        {
            NextStep::RetryAt(at) => {
                let at = at.max(now_ms().saturating_add(at_least_ms));
                tracing::info!(%reason, attempt = failures, retry_in_ms = at - now_ms(), "delivery deferred");
                Outcome::Retry { at, reason }
            }
            NextStep::GiveUp => {
                tracing::warn!(%reason, attempt = failures, "delivery expired");
                Outcome::Failed(format!("expired after retries: {reason}"))
            }
        }
    }

    /// The message with its DKIM signatures, made on the blocking pool (an RSA
    /// signature is about a millisecond of CPU). Unsigned when there is no key.
    async fn sign<'a>(&self, content: &'a [u8]) -> Result<Cow<'a, [u8]>, DeliveryError> {
        let signer = self.keys.current(&self.store).await;
        if signer.is_empty() {
            return Ok(Cow::Borrowed(content));
        }
        let owned = content.to_vec();
        match tokio::task::spawn_blocking(move || signer.sign(&owned)).await {
            Ok(Ok(signed)) => Ok(Cow::Owned(signed)),
            // Unsigned mail would be junked: try again later instead.
            Ok(Err(reason)) => Err(DeliveryError::Temporary(reason)),
            Err(e) => Err(DeliveryError::Temporary(format!(
                "signing task failed: {e}"
            ))),
        }
    }

    /// Hands the delivery to the transport, renewing its lease every third of it for
    /// as long as the transport takes.
    async fn deliver_renewing(&self, d: &ClaimedDelivery) -> Result<(), DeliveryError> {
        // VERP: a bounce comes back to an address that names this delivery.
        let mail_from = format!(
            "{}@{}",
            self.store.verp_local(&d.id),
            self.config.relay_domain
        );
        let envelope = Envelope {
            delivery_id: &d.id,
            mail_from: &mail_from,
            rcpt_to: &d.rcpt_to,
        };
        let content = self.sign(&d.content).await?;
        let deliver = self.transport.deliver(
            &self.config.helo,
            &envelope,
            &content,
            self.config.command_timeout,
        );
        tokio::pin!(deliver);
        let mut renew =
            tokio::time::interval((self.config.lease / 3).max(Duration::from_millis(100)));
        renew.tick().await;
        loop {
            tokio::select! {
                outcome = &mut deliver => return outcome,
                _ = renew.tick() => {
                    match self.store.renew_lease(&d.id, &self.config.instance_id, self.lease_ms()).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("lease of a delivery in progress was lost; it may be delivered twice"),
                        Err(e) => tracing::warn!(error = %e, "could not renew the lease of a delivery in progress"),
                    }
                }
            }
        }
    }
}
