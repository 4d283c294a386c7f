//! What every handler of the API can reach.

use std::sync::Arc;

use maskrelay_compose::{Broadcaster, Submitter};
use maskrelay_inbound::ListenerStats;
use maskrelay_schema::Store;

/// The shared state of the API's handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Queues messages.
    pub submitter: Submitter,
    /// Counts and records broadcasts.
    pub broadcaster: Broadcaster,
    /// The request body limit, for error messages.
    pub max_body_bytes: usize,
    /// The SMTP listener's counters.
    pub listener_stats: Arc<ListenerStats>,
}
