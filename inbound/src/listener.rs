//! The accept loop: bounds concurrent sessions, backs off on accept errors, and on
//! shutdown stops accepting and waits for every session to finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::params::SmtpParams;
use crate::reply;
use crate::route::Router;
use crate::session::Session;

/// Serves SMTP on `listener` until `shutdown` is cancelled, then waits for sessions
/// (which answer `421` and close).
pub async fn serve(
    listener: TcpListener,
    params: SmtpParams,
    router: Router,
    shutdown: CancellationToken,
) {
    let params = Arc::new(params);
    let slots = Arc::new(Semaphore::new(params.max_connections.max(1)));
    let sessions = TaskTracker::new();
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Usually out of file descriptors: wait rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Replies are small and the client waits for each: without this, Nagle's
        // algorithm and delayed ACKs add ~40 ms to every exchange.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let session_id = next_id.fetch_add(1, Ordering::Relaxed);
        let span = tracing::info_span!("smtp", session_id);
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            sessions.spawn(
                async move {
                    tracing::warn!("connection refused: too many sessions");
                    let mut out = Vec::new();
                    reply::BUSY.write_to(&mut out);
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await;
                }
                .instrument(span),
            );
            continue;
        };
        let session = Session::new(
            stream,
            peer,
            Arc::clone(&params),
            router.clone(),
            shutdown.clone(),
        );
        sessions.spawn(
            async move {
                tracing::debug!("session started");
                session.run().await;
                tracing::debug!("session ended");
                drop(permit);
            }
            .instrument(span),
        );
    }
    sessions.close();
    sessions.wait().await;
    tracing::info!("SMTP listener stopped");
}
