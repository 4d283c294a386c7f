//! Counters of the listener, for the metrics endpoint: what happens under load is
//! counted here rather than logged line by line, so that a flood of connections
//! cannot decide how much is written to the log.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most one log line about refused connections per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The listener's counters; shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Sessions open now (including those being reclaimed).
    pub sessions_open: AtomicU64,
    /// 1 while the listener is in stress mode.
    pub stressed: AtomicU64,
    /// Times stress mode was entered.
    pub stress_episodes: AtomicU64,
    /// Connections refused because every session was busy.
    pub refused_busy: AtomicU64,
    /// Connections refused because their address had too many sessions.
    pub refused_per_ip: AtomicU64,
    /// Idle sessions closed to make room for new clients.
    pub reclaimed: AtomicU64,
    /// Sessions closed because a command or message data did not arrive in time.
    pub timed_out: AtomicU64,
    /// Refusals not yet mentioned in the log.
    unlogged_refusals: AtomicU64,
    /// When refusals were last logged, ms since the Unix epoch.
    last_refusal_log_ms: AtomicU64,
}

impl ListenerStats {
    /// Counts a refused connection; logs a summary at most every ten seconds.
    pub fn refused(&self, busy: bool) {
        let counter = if busy {
            &self.refused_busy
        } else {
            &self.refused_per_ip
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.unlogged_refusals.fetch_add(1, Ordering::Relaxed);
        let now = now_ms();
        let last = self.last_refusal_log_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(REFUSAL_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= interval
            && self
                .last_refusal_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.unlogged_refusals.swap(0, Ordering::Relaxed);
            tracing::warn!(
                refused,
                open = self.sessions_open.load(Ordering::Relaxed),
                "SMTP connections refused: too many sessions (counted in the metrics)"
            );
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_counted_but_logged_once_per_interval() {
        let stats = ListenerStats::default();
        for _ in 0..1000 {
            stats.refused(true);
        }
        stats.refused(false);
        assert_eq!(stats.refused_busy.load(Ordering::Relaxed), 1000);
        assert_eq!(stats.refused_per_ip.load(Ordering::Relaxed), 1);
        // The first refusal was logged; the other 1000 wait for the next interval.
        assert_eq!(stats.unlogged_refusals.load(Ordering::Relaxed), 1000);
    }
}
