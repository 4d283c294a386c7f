//! Connections kept open between messages, per server address, for the MX hosts
//! and the smarthost alike.
//!
//! A connection is kept [`IDLE_KEEP`] after its last transaction and handed to the
//! next message for the same address; one that has carried [`MAX_TRANSACTIONS`] is
//! closed, as Postfix's `smtp_connection_reuse_count_limit` guards against servers
//! that leak per session. A kept connection may have been closed by the server
//! meanwhile: callers retry once on a new connection when a kept one fails to carry
//! a transaction.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::transport::mx_session::{Failure, Session};

/// How long an unused connection stays open for the next message (Postfix keeps
/// them 2 s; a little longer suits a worker that polls).
pub const IDLE_KEEP: Duration = Duration::from_secs(5);
/// Transactions per connection before it is closed.
pub const MAX_TRANSACTIONS: u32 = 100;

/// Idle connections by server (an address, or a smarthost's `host:port`).
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Session>>>,
    per_address: usize,
}

impl Pool {
    /// A pool keeping at most `per_address` idle connections to one address.
    pub fn new(per_address: usize) -> Self {
        Self {
            idle: Mutex::default(),
            per_address: per_address.max(1),
        }
    }

    /// Sends one message over a kept connection to `server`, or, when there is none
    /// or it turns out to be closed, over a new one from `open`; keeps the
    /// connection afterwards if it can carry more.
    ///
    /// # Errors
    /// The [`Failure`] of the attempt on the new connection (or of the kept one,
    /// when the server answered it).
    pub async fn send<Open>(
        &self,
        server: &str,
        open: impl FnOnce() -> Open,
        mail_from: &str,
        rcpt_to: &str,
        content: &[u8],
    ) -> Result<(), Failure>
    where
        Open: Future<Output = Result<Session, Failure>>,
    {
        if let Some(mut kept) = self.take(server) {
            match kept.send(mail_from, rcpt_to, content).await {
                // Closed by the server meanwhile: say nothing and open a new one.
                Err(Failure::Connection(_)) => {}
                outcome => {
                    self.keep_if_usable(server, kept, &outcome);
                    return outcome;
                }
            }
        }
        let mut session = open().await?;
        let outcome = session.send(mail_from, rcpt_to, content).await;
        self.keep_if_usable(server, session, &outcome);
        outcome
    }

    fn keep_if_usable(&self, server: &str, session: Session, outcome: &Result<(), Failure>) {
        match outcome {
            Ok(()) => self.keep(server, session),
            Err(failure) if Session::usable_after(failure) => self.keep(server, session),
            Err(_) => {}
        }
    }

    /// A kept connection to `server`, if one is still fresh.
    fn take(&self, server: &str) -> Option<Session> {
        let mut idle = self.lock();
        let sessions = idle.get_mut(server)?;
        let mut found = None;
        while let Some(session) = sessions.pop() {
            if session.idle_since.elapsed() < IDLE_KEEP {
                found = Some(session);
                break;
            }
            close(session);
        }
        if sessions.is_empty() {
            idle.remove(server);
        }
        found
    }

    /// Keeps `session` for the next message, or closes it when it has served
    /// enough or the address has enough idle connections already.
    fn keep(&self, server: &str, session: Session) {
        if session.transactions >= MAX_TRANSACTIONS {
            close(session);
            return;
        }
        let mut idle = self.lock();
        let sessions = idle.entry(server.to_owned()).or_default();
        if sessions.len() < self.per_address {
            sessions.push(session);
        } else {
            close(session);
        }
    }

    /// Closes connections unused for longer than they are kept.
    pub fn tidy(&self) {
        let mut idle = self.lock();
        for sessions in idle.values_mut() {
            let (stale, fresh): (Vec<_>, Vec<_>) = std::mem::take(sessions)
                .into_iter()
                .partition(|s| s.idle_since.elapsed() >= IDLE_KEEP);
            *sessions = fresh;
            stale.into_iter().for_each(close);
        }
        idle.retain(|_, sessions| !sessions.is_empty());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Session>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Says QUIT in the background: nobody waits for a goodbye.
fn close(session: Session) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), session.quit()).await;
        });
    }
}
