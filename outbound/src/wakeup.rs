//! Waking delivery workers when deliveries are queued: this instance's at once, and,
//! on PostgreSQL, the other instances' through the store's announcements, so that
//! an idle instance does not wait for its next poll.

use std::sync::Arc;
use std::time::Duration;

use maskrelay_schema::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long to wait before listening again after the database could not be reached.
const RELISTEN: Duration = Duration::from_secs(2);

/// Wakes this instance's worker and has the others told.
#[derive(Debug, Clone, Default)]
pub struct Wakeup {
    local: Arc<Notify>,
    others: Arc<Notify>,
}

impl Wakeup {
    /// Nobody woken yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Deliveries were queued: wake this worker, and tell the other instances.
    /// Never waits: announcements of a burst are folded into one.
    pub fn queued(&self) {
        self.local.notify_one();
        self.others.notify_one();
    }

    /// Wakes this instance's worker only (work only it can see, or another
    /// instance's announcement).
    pub fn this_worker(&self) {
        self.local.notify_one();
    }

    /// Until the worker is woken (a wake-up given while nobody waited counts).
    pub async fn worker_woken(&self) {
        self.local.notified().await;
    }
}

/// Runs until `shutdown`: announces this instance's queued work to the others and
/// wakes this worker on theirs. Returns at once on SQLite, which has one instance.
pub async fn run(store: Store, wakeup: Wakeup, shutdown: CancellationToken) {
    // Signed with an id of this process, not the configured instance id: two
    // processes given one id by mistake must still hear each other.
    let me = maskrelay_schema::ids::new_id();
    let announce = async {
        loop {
            wakeup.others.notified().await;
            if let Err(e) = store.announce_queued(&me).await {
                tracing::warn!(error = %e, "could not tell other instances of queued work; they find it when they next poll");
            }
        }
    };
    let listen = async {
        loop {
            let mut listener = match store.queue_listener().await {
                Ok(Some(listener)) => listener,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other instances' work; polling meanwhile");
                    tokio::time::sleep(RELISTEN).await;
                    continue;
                }
            };
            tracing::info!("listening for other instances' queued work");
            loop {
                match listener.next().await {
                    Ok(from) if from == me => {}
                    Ok(_) => wakeup.this_worker(),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the database listener; polling meanwhile");
                        tokio::time::sleep(RELISTEN).await;
                        break;
                    }
                }
            }
        }
    };
    // On SQLite the listener returns at once and so does this: nothing to announce.
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = listen => {}
        _ = announce => {}
    }
}
