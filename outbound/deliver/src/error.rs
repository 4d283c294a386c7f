//! How a delivery attempt fails.

use thiserror::Error;

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
