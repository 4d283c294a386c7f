//! Wiping content that was kept for an organisation's retention once its time is up.
//!
//! With retention at 0 (the default) the queue wipes content as soon as a delivery
//! ends, and this task finds nothing to do.

use std::time::Duration;

use maskrelay_schema::Store;
use tokio_util::sync::CancellationToken;

/// Sweeps every `interval` until `shutdown` is cancelled.
pub async fn run(store: Store, interval: Duration, shutdown: CancellationToken) {
    loop {
        match store.purge_expired_content().await {
            Ok(0) => {}
            Ok(wiped) => tracing::info!(wiped, "content past retention wiped"),
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; will try again"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
