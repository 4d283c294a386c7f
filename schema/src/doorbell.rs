//! The queue's doorbell: rung once deliveries are committed, so that this
//! instance's worker starts at once and the other instances are told (see
//! [`crate::wakeup`]), instead of waiting for their next poll.
//!
//! A ring is a hint, not a record: the queue is in the tables, and a worker that
//! misses one finds the work at its next poll.

use tokio::sync::Notify;

/// Two bells: this instance's worker, and the announcer that tells the others.
#[derive(Debug, Default)]
pub(crate) struct Doorbell {
    /// This instance's delivery worker.
    pub(crate) worker: Notify,
    /// The task announcing queued work to other instances.
    pub(crate) others: Notify,
}
