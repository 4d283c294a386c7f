//! Recording how a delivery attempt ended, for as long as the database needs to
//! come back.
//!
//! Once the remote server has said `250`, the only thing standing between us and a
//! duplicate is this record: if it is not written before the lease runs out, the
//! delivery is claimed and sent again. So a failed write is retried with backoff
//! until the database answers. After shutdown begins it is retried for one more
//! lease at most, so that a process told to stop while its database is gone still
//! exits; what it could not record is then retried (sent again), never lost.

use std::time::Duration;

use maskrelay_schema::{DeliveryId, Store, StoreError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// First pause after a failed write; doubled up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// How an attempt ended, as it is written to the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The remote server accepted the message.
    Sent,
    /// Not attempted: the recipient's address is suppressed.
    Suppressed,
    /// It will never be accepted; the reason has no personal data.
    Failed(String),
    /// Try again at `at` (Unix ms).
    Retry {
        /// When the delivery is due again.
        at: i64,
        /// Why it failed this time.
        reason: String,
    },
}

impl Outcome {
    /// Writes the outcome of `delivery_id`, retrying while the store fails.
    pub async fn record(
        &self,
        store: &Store,
        delivery_id: &DeliveryId,
        shutdown: &CancellationToken,
        patience_after_shutdown: Duration,
    ) {
        let mut pause = FIRST_PAUSE;
        let mut failures = 0u32;
        let mut shutdown_seen: Option<Instant> = None;
        loop {
            let Err(e) = self.write(store, delivery_id).await else {
                if failures > 0 {
                    tracing::info!(
                        failures,
                        "delivery outcome recorded once the database answered"
                    );
                }
                return;
            };
            failures += 1;
            if failures == 1 {
                tracing::error!(error = %e, "could not record the delivery outcome; retrying until the database answers");
            }
            if shutdown.is_cancelled() {
                let since = *shutdown_seen.get_or_insert_with(Instant::now);
                if since.elapsed() >= patience_after_shutdown {
                    tracing::error!(
                        failures,
                        "gave up recording a delivery outcome at shutdown; it will be sent again"
                    );
                    return;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    async fn write(&self, store: &Store, delivery_id: &DeliveryId) -> Result<(), StoreError> {
        match self {
            Outcome::Sent => store.mark_sent(delivery_id).await,
            Outcome::Suppressed => store.mark_suppressed(delivery_id).await,
            Outcome::Failed(reason) => store.mark_failed(delivery_id, reason).await,
            Outcome::Retry { at, reason } => store.mark_retry(delivery_id, *at, reason).await,
        }
    }
}
