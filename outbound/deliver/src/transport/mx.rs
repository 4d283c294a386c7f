//! Delivery by MX: the recipient's domain's own mail servers, found in DNS.
//!
//! Hosts are tried in preference order ([`super::mx_route`]), moving on after a
//! connection failure or a 4xx reply; a 5xx ends the delivery. Connections are kept
//! open for a few seconds after a transaction and reused for the next message to
//! the same address ([`crate::transport::pool`]). At most `per_domain` deliveries to one domain are in progress
//! at once (the worker's concurrency caps them all). A destination that answers
//! 421/450 4.7.x (rate limiting) is left alone for `rate_limit_pause`: deliveries
//! to it are deferred without connecting, and every other destination goes on.
//!
//! Each of our messages has exactly one recipient (every reader gets their own
//! copy, with their own relay addresses), so one transaction per message is also
//! one transaction per message and domain.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::hickory_resolver::TokioResolver;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use crate::error::DeliveryError;
use crate::transport::mx_route::{Hop, route};
use crate::transport::mx_session::{Failure, Opening, Session};
use crate::transport::pool::Pool;

/// Whether STARTTLS is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPolicy {
    /// Use STARTTLS when offered; plain text otherwise (Postfix's `may`).
    #[default]
    Opportunistic,
    /// Never send a message in plain text (Postfix's `encrypt`).
    Require,
}

impl std::str::FromStr for TlsPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "opportunistic" | "may" => Ok(Self::Opportunistic),
            "require" | "encrypt" => Ok(Self::Require),
            other => Err(format!(
                "{other:?} is not a TLS policy: use \"opportunistic\" or \"require\""
            )),
        }
    }
}

/// Settings of MX delivery.
#[derive(Debug, Clone)]
pub struct MxSettings {
    /// TCP port of every MX host (25; tests use another).
    pub port: u16,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// Deliveries in progress to one domain at once.
    pub per_domain: usize,
    /// How long a destination that asked us to slow down is left alone.
    pub rate_limit_pause: Duration,
}

impl Default for MxSettings {
    fn default() -> Self {
        Self {
            port: 25,
            tls: TlsPolicy::Opportunistic,
            per_domain: 4,
            rate_limit_pause: Duration::from_secs(60),
        }
    }
}

/// The MX transport: resolver, connection cache and per-destination state.
pub struct Mx {
    resolver: TokioResolver,
    settings: MxSettings,
    connector: TlsConnector,
    pool: Pool,
    domains: Mutex<HashMap<String, Arc<Destination>>>,
}

impl std::fmt::Debug for Mx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mx")
            .field("settings", &self.settings)
            .finish()
    }
}

struct Destination {
    slots: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
}

impl Mx {
    /// MX delivery through `resolver`.
    ///
    /// # Errors
    /// If the TLS client cannot be set up.
    pub fn new(resolver: TokioResolver, settings: MxSettings) -> Result<Self, String> {
        Ok(Self {
            resolver,
            connector: mail_send::smtp::tls::build_tls_connector(true)?,
            pool: Pool::new(settings.per_domain),
            settings,
            domains: Mutex::default(),
        })
    }

    /// Delivers `content` from `mail_from` to `rcpt_to`.
    ///
    /// # Errors
    /// [`DeliveryError::Permanent`] for a 5xx or a domain without mail servers;
    /// [`DeliveryError::Deferred`] while the destination has asked us to slow down;
    /// otherwise [`DeliveryError::Temporary`] with the last host's failure.
    pub async fn send(
        &self,
        helo: &str,
        mail_from: &str,
        rcpt_to: &str,
        content: &[u8],
        timeout: Duration,
    ) -> Result<(), DeliveryError> {
        let domain = rcpt_to
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .ok_or_else(|| DeliveryError::Permanent("recipient address has no domain".into()))?;
        let destination = self.destination(&domain);
        if let Some(wait) = destination.paused_for() {
            return Err(DeliveryError::Deferred {
                reason: "the destination asked us to slow down; waiting".into(),
                wait,
            });
        }
        let _slot = Arc::clone(&destination.slots)
            .acquire_owned()
            .await
            .map_err(|_| DeliveryError::Temporary("shutting down".into()))?;
        let hops = route(&self.resolver, &domain, self.settings.port, random_below).await?;
        let mut last = Failure::Connection("no address to try".into());
        for hop in &hops {
            for addr in &hop.addrs {
                // A kept connection if there is one, else a new one.
                let open = || self.open(helo, hop, *addr, timeout);
                match self
                    .pool
                    .send(&addr.to_string(), open, mail_from, rcpt_to, content)
                    .await
                {
                    Ok(()) => return Ok(()),
                    Err(Failure::Permanent(reason)) => {
                        return Err(DeliveryError::Permanent(reason));
                    }
                    Err(Failure::RateLimited(reason)) => {
                        destination.pause(self.settings.rate_limit_pause);
                        tracing::info!(
                            pause_secs = self.settings.rate_limit_pause.as_secs(),
                            "destination rate-limited us; pausing deliveries to it"
                        );
                        return Err(DeliveryError::Deferred {
                            reason,
                            wait: self.settings.rate_limit_pause,
                        });
                    }
                    Err(failure) => {
                        tracing::debug!(reason = %failure.reason(), "MX host failed; trying the next");
                        last = failure;
                    }
                }
            }
        }
        Err(DeliveryError::Temporary(last.reason()))
    }

    async fn open(
        &self,
        helo: &str,
        hop: &Hop,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Session, Failure> {
        let how = Opening {
            helo,
            host: &hop.host,
            tls: Some(&self.connector),
            require_tls: self.settings.tls == TlsPolicy::Require,
            timeout,
        };
        match Session::open(addr, how).await {
            // A server whose TLS is broken still gets the mail, in plain text,
            // unless TLS is required (Postfix's `may` does the same).
            Err(Failure::Handshake) if !how.require_tls => {
                tracing::info!("TLS handshake failed; delivering without TLS");
                Session::open(addr, Opening { tls: None, ..how }).await
            }
            other => other,
        }
    }

    /// Closes connections unused for longer than they are kept; called by the
    /// worker between looks at the queue.
    pub fn tidy(&self) {
        self.pool.tidy();
        let mut domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        // A destination with nothing in progress and no pause is forgotten.
        domains.retain(|_, d| {
            d.slots.available_permits() < self.settings.per_domain.max(1)
                || d.paused_for().is_some()
        });
    }

    fn destination(&self, domain: &str) -> Arc<Destination> {
        let mut domains = self.domains.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(domains.entry(domain.to_owned()).or_insert_with(|| {
            Arc::new(Destination {
                slots: Arc::new(Semaphore::new(self.settings.per_domain.max(1))),
                paused_until: Mutex::new(None),
            })
        }))
    }
}

impl Destination {
    fn paused_for(&self) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(Instant::now())
    }

    fn pause(&self, how_long: Duration) {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + how_long);
    }
}

/// A number below `n` for shuffling hosts of equal preference.
fn random_below(n: usize) -> usize {
    let mut bytes = [0u8; 8];
    if n <= 1 || maskrelay_schema::crypto::fill_random(&mut bytes).is_err() {
        return 0;
    }
    usize::try_from(u64::from_le_bytes(bytes) % n as u64).unwrap_or(0)
}
