//! Errors of the outbound side.

use thiserror::Error;

/// Why a message could not be queued.
#[derive(Debug, Error)]
pub enum OutboundError {
    /// The store failed; nothing was queued.
    #[error(transparent)]
    Store(#[from] maskrelay_schema::StoreError),

    /// A member has no address any more (erased meanwhile).
    #[error("member {0} has no address")]
    NoAddress(String),

    /// Building the message failed.
    #[error("could not build the message: {0}")]
    Compose(#[from] std::io::Error),

    /// The idempotency key was used concurrently; the caller should return the
    /// response recorded by the other request.
    #[error("idempotency key already recorded")]
    IdempotencyConflict,
}

/// How one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DeliveryError {
    /// Worth retrying later (4xx reply, connection refused, timeout).
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// Retrying cannot help (5xx reply).
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// Worth retrying, but not before `wait` (the destination asked us to slow down).
    #[error("deferred: {reason}")]
    Deferred {
        /// Why, without personal data.
        reason: String,
        /// The least time to wait.
        wait: std::time::Duration,
    },
}
