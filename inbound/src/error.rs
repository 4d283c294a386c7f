//! Errors of setting up the inbound side. Once running, problems with a message are
//! answered to the client as SMTP replies ([`crate::reply`]), not returned.

use thiserror::Error;

/// What can stop the listener from starting.
#[derive(Debug, Error)]
pub enum InboundError {
    /// The DNS resolver for sender authentication could not be set up.
    #[error("cannot set up the DNS resolver for sender authentication: {0}")]
    Resolver(String),

    /// The certificate or key for STARTTLS could not be loaded or made.
    #[error("STARTTLS: {0}")]
    Tls(String),
}
