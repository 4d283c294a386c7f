//! Broadcasts: the organisation's staff writing to all members, a filtered group or
//! chosen members, through the same composer and queue as every other message.
//!
//! Sending records the broadcast with its count ([`Broadcaster::count`], the same
//! walk and rule as the copies); [`Broadcaster::run`] then expands it in batches of
//! [`BATCH`] members, each batch's copies stored with the broadcast's cursor in one
//! transaction and paced at the organisation's rate in the bulk lane, behind every
//! conversation's mail. Memory holds one batch, whatever the audience's size.

mod answer;
mod copy;
pub mod spec;

use std::sync::Arc;
use std::time::Duration;

use maskrelay_schema::broadcasts::{Broadcast, BroadcastStatus, Copy};
use maskrelay_schema::clock::now_ms;
use maskrelay_schema::orgs::Org;
use maskrelay_schema::{CategoryId, MemberId};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use copy::{REPLY_LOCAL_PREFIX, UNSUBSCRIBE_LOCAL};

use crate::error::SubmitError;
use crate::policy::may_receive;
use crate::submit::Submitter;
use spec::{Audience, BroadcastSpec};

/// Members read, and copies stored, per transaction.
pub const BATCH: i64 = 256;

/// How long an instance holds a broadcast it expands without storing a batch.
const LEASE_MS: i64 = 60_000;

/// How far ahead of its schedule a paced broadcast's copies are queued (give or take
/// a batch): the queue holds a few seconds' worth, so that cancelling stops nearly
/// everything and a slow broadcast does not fill the queue.
const LOOKAHEAD_MS: i64 = 5_000;

/// The longest an expander waits for its schedule before renewing its lease.
const WAIT_AT_MOST: Duration = Duration::from_secs(10);

/// How many broadcasts one instance expands at once.
const EXPANDING_AT_ONCE: usize = 16;

/// How often an idle expander looks for broadcasts sent through other instances.
const IDLE: Duration = Duration::from_secs(2);

/// Wait after the store failed, before trying again.
const AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Counts audiences and expands broadcasts into copies.
#[derive(Clone)]
pub struct Broadcaster {
    submitter: Submitter,
    instance: String,
    wake: Arc<Notify>,
}

impl Broadcaster {
    /// An expander storing through `submitter`, holding broadcasts as `instance`
    /// (the delivery worker's instance id: one restarted under it takes its
    /// broadcasts back at once).
    pub fn new(submitter: Submitter, instance: impl Into<String>) -> Self {
        Self {
            submitter,
            instance: instance.into(),
            wake: Arc::default(),
        }
    }

    /// Tells [`Broadcaster::run`] that a broadcast was recorded.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// How many members of `audience` would get a copy of a broadcast in
    /// `category` now: after unsubscriptions, suppressed addresses and members who
    /// are not active are removed.
    ///
    /// # Errors
    /// [`SubmitError`] if the store fails.
    pub async fn count(
        &self,
        org: &Org,
        category: &CategoryId,
        audience: &Audience,
    ) -> Result<i64, SubmitError> {
        let store = self.submitter.store();
        let mut after: Option<MemberId> = None;
        let mut count = 0;
        loop {
            let batch = store
                .candidates(&org.id, category, after.as_ref(), BATCH)
                .await?;
            let Some(last) = batch.last() else {
                return Ok(count);
            };
            count += batch
                .iter()
                .filter(|c| audience.includes(&c.member) && may_receive(category, c).is_ok())
                .count() as i64;
            after = Some(last.member.id.clone());
        }
    }

    /// Expands recorded broadcasts until `shutdown`: up to [`EXPANDING_AT_ONCE`] at a
    /// time, each in a task of its own, so that one waiting for its schedule (or a
    /// large one) holds back no other organisation's.
    pub async fn run(self, shutdown: CancellationToken) {
        let store = self.submitter.store();
        // Broadcasts this instance held when it stopped (or was killed) are taken
        // back at once rather than when their leases run out.
        match store.release_broadcast_claims(&self.instance).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                broadcasts = n,
                "took back the broadcasts this instance was expanding"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "could not take back this instance's broadcasts; they resume when their leases run out")
            }
        }
        let mut expanding = JoinSet::new();
        loop {
            while expanding.try_join_next().is_some() {}
            let pause = if expanding.len() >= EXPANDING_AT_ONCE {
                Some(IDLE)
            } else {
                match store.claim_broadcast(&self.instance, LEASE_MS).await {
                    Ok(Some(broadcast)) => {
                        let this = self.clone();
                        let stop = shutdown.clone();
                        expanding.spawn(async move { this.keep_expanding(broadcast, stop).await });
                        None
                    }
                    Ok(None) => Some(IDLE),
                    Err(e) => {
                        tracing::error!(error = %e, "could not look for broadcasts to expand");
                        Some(AFTER_FAILURE)
                    }
                }
            };
            if let Some(pause) = pause {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(pause) => {}
                    _ = expanding.join_next(), if !expanding.is_empty() => {}
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        while expanding.join_next().await.is_some() {}
    }

    /// Expands one claimed broadcast, starting again from its stored cursor after a
    /// failure, until it is done, no longer this instance's, or `shutdown`.
    async fn keep_expanding(self, broadcast: Broadcast, shutdown: CancellationToken) {
        let (org, id) = (broadcast.org_id.clone(), broadcast.id.clone());
        let mut current = Some(broadcast);
        while let Some(broadcast) = current.take() {
            let Err(e) = self.expand(broadcast, &shutdown).await else {
                return;
            };
            tracing::error!(broadcast_id = %id, error = %e, "could not expand a broadcast; trying again");
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(AFTER_FAILURE) => {}
            }
            current = match self.submitter.store().broadcast(&org, &id).await {
                Ok(found) => found.filter(|b| b.status == BroadcastStatus::Expanding),
                Err(e) => {
                    tracing::error!(broadcast_id = %id, error = %e, "could not read a broadcast back; its lease will run out and it resumes then");
                    None
                }
            };
        }
    }

    /// Stores the copies of a broadcast this instance holds, batch by batch from
    /// its cursor, until every member had their turn, the broadcast is cancelled
    /// or taken by another instance, or `shutdown`.
    async fn expand(
        &self,
        broadcast: Broadcast,
        shutdown: &CancellationToken,
    ) -> Result<(), SubmitError> {
        let store = self.submitter.store();
        let spec = BroadcastSpec::from_bytes(&broadcast.spec)?;
        let Some(org) = store.org(&broadcast.org_id).await? else {
            store
                .finish_expanding(&broadcast.id, &self.instance)
                .await?;
            return Ok(());
        };
        let category_id = &broadcast.category_id;
        let category = if category_id.is_mandatory() {
            None
        } else {
            // A category removed meanwhile still names itself.
            Some(
                store
                    .category(&org.id, category_id)
                    .await?
                    .unwrap_or_else(|| maskrelay_schema::categories::Category {
                        id: category_id.clone(),
                        name: category_id.to_string(),
                        created_at: broadcast.created_at,
                    }),
            )
        };
        let common = copy::Common::new(&self.submitter, &org, &broadcast, category.as_ref(), &spec);
        tracing::info!(broadcast_id = %broadcast.id, "expanding a broadcast");
        let per_minute = org.settings.broadcast_per_minute;
        let mut after = broadcast.expanded_to.clone();
        let mut scheduled_until = 0_i64;
        while !shutdown.is_cancelled() {
            let ahead = scheduled_until.saturating_sub(now_ms().saturating_add(LOOKAHEAD_MS));
            if per_minute > 0 && ahead > 0 {
                let wait =
                    Duration::from_millis(u64::try_from(ahead).unwrap_or(0)).min(WAIT_AT_MOST);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                if !store
                    .renew_broadcast_lease(&broadcast.id, &self.instance, LEASE_MS)
                    .await?
                {
                    tracing::info!(broadcast_id = %broadcast.id, "broadcast cancelled or taken by another instance; stopping here");
                    return Ok(());
                }
                continue;
            }
            let batch = store
                .candidates(&org.id, category_id, after.as_ref(), BATCH)
                .await?;
            let Some(last) = batch.last() else {
                store
                    .finish_expanding(&broadcast.id, &self.instance)
                    .await?;
                tracing::info!(broadcast_id = %broadcast.id, "every copy of the broadcast is queued");
                return Ok(());
            };
            let mut composed = Vec::new();
            for candidate in &batch {
                if !spec.audience.includes(&candidate.member)
                    || may_receive(category_id, candidate).is_err()
                {
                    continue;
                }
                let Some(address) = candidate.member.email.as_deref() else {
                    continue;
                };
                let (message_id, content) =
                    copy::compose(&self.submitter, &common, &candidate.member)?;
                composed.push((&candidate.member.id, address, message_id, content));
            }
            let copies: Vec<Copy<'_>> = composed
                .iter()
                .map(|(reader_id, address, message_id, content)| Copy {
                    reader_id,
                    reader_address: address,
                    rfc_message_id: message_id,
                    content,
                })
                .collect();
            let held = store
                .queue_copies(
                    &broadcast,
                    &self.instance,
                    LEASE_MS,
                    &copies,
                    &last.member.id,
                    per_minute,
                )
                .await?;
            let Some(next_due) = held else {
                tracing::info!(broadcast_id = %broadcast.id, "broadcast cancelled or taken by another instance; stopping here");
                return Ok(());
            };
            scheduled_until = next_due;
            if !copies.is_empty() {
                store.deliveries_queued();
            }
            after = Some(last.member.id.clone());
        }
        Ok(())
    }
}
