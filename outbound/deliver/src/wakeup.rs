//! Telling the other instances sharing PostgreSQL that deliveries were queued here,
//! and waking this worker on theirs, so that an idle instance does not wait for its
//! next poll. This instance's own worker is woken by the store's doorbell
//! ([`Store::deliveries_queued`]), rung by whoever commits deliveries.

use std::time::Duration;

use maskrelay_schema::Store;
use tokio_util::sync::CancellationToken;

/// How long to wait before listening again after the database could not be reached.
const RELISTEN: Duration = Duration::from_secs(2);

/// Runs until `shutdown`: announces this instance's queued work to the others and
/// wakes this worker on theirs. Returns at once on SQLite, which has one instance.
pub async fn run(store: Store, shutdown: CancellationToken) {
    // Signed with an id of this process, not the configured instance id: two
    // processes given one id by mistake must still hear each other.
    let me = maskrelay_schema::tokens::random_token(24)
        .unwrap_or_else(|_| std::process::id().to_string());
    let announce = async {
        loop {
            store.announcement_due().await;
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
                    Ok(_) => store.wake_worker(),
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
