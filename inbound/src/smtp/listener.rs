//! The accept loop: bounds concurrent sessions per client address and overall
//! (reclaiming idle sessions under stress, see [`crate::smtp::pressure`]), backs off on
//! accept errors, hands STARTTLS sessions to rustls, and on shutdown stops accepting
//! and waits for every session to finish. Refused connections are counted in
//! [`ListenerStats`], not logged one by one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::reply;
use crate::route::Router;
use crate::smtp::params::SmtpParams;
use crate::smtp::per_ip::PerIp;
use crate::smtp::pressure::Pressure;
use crate::smtp::session::Session;
use crate::smtp::stats::ListenerStats;

/// Serves SMTP on `listener` until `shutdown` is cancelled, then waits for sessions
/// (which answer `421` and close). STARTTLS is offered when `tls` is given. What
/// happens under load is counted in `stats`.
pub async fn serve(
    listener: TcpListener,
    params: SmtpParams,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: CancellationToken,
    stats: Arc<ListenerStats>,
) {
    let params = Arc::new(params);
    let per_ip = PerIp::default();
    let pressure = Pressure::new(
        params.max_connections,
        params.stress_percent,
        Arc::clone(&stats),
    );
    let sessions = TaskTracker::new();
    let next_id = AtomicU64::new(1);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
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
        // Per address first: a client over its own limit must not cost anyone else
        // their session.
        let Some(slot) = per_ip.acquire(peer.ip(), params.max_connections_per_ip.max(1)) else {
            stats.refused(false);
            sessions.spawn(refuse(stream, reply::BUSY_FROM_HERE).instrument(span));
            continue;
        };
        let Ok(ticket) = pressure.admit() else {
            stats.refused(true);
            sessions.spawn(refuse(stream, reply::BUSY).instrument(span));
            continue;
        };
        let mut session = Session::new(
            stream,
            peer,
            Arc::clone(&params),
            router.clone(),
            shutdown.clone(),
            ticket,
        );
        if tls.is_some() {
            session = session.offering_tls();
        }
        let (params, router, shutdown, tls) = (
            Arc::clone(&params),
            router.clone(),
            shutdown.clone(),
            tls.clone(),
        );
        sessions.spawn(
            async move {
                tracing::debug!("session started");
                if let (Some((stream, resume)), Some(tls)) = (session.run().await, tls) {
                    // The handshake is input like any other: shorter under stress, and
                    // the session can still be reclaimed to make room meanwhile.
                    let limit = if resume.is_stressed() {
                        params.stress_timeout.min(HANDSHAKE_TIMEOUT)
                    } else {
                        HANDSHAKE_TIMEOUT
                    };
                    let reclaim = resume.reclaim_token();
                    let handshake = tokio::select! {
                        _ = reclaim.cancelled() => None,
                        done = tokio::time::timeout(limit, tls.accept(stream)) => Some(done),
                    };
                    match handshake {
                        Some(Ok(Ok(stream))) => {
                            tracing::debug!("TLS started");
                            Session::resumed(stream, peer, params, router, shutdown, resume)
                                .run()
                                .await;
                        }
                        Some(Ok(Err(e))) => tracing::info!(error = %e, "TLS handshake failed"),
                        Some(Err(_)) => tracing::info!("TLS handshake timed out"),
                        None => tracing::debug!("TLS handshake reclaimed to make room"),
                    }
                }
                tracing::debug!("session ended");
                drop(slot);
            }
            .instrument(span),
        );
    }
    sessions.close();
    sessions.wait().await;
    tracing::info!("SMTP listener stopped");
}

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers a connection that cannot be served with `reply`, and closes it.
async fn refuse(mut stream: TcpStream, reply: reply::Reply) {
    let mut out = Vec::new();
    reply.write_to(&mut out);
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&out)).await;
}
