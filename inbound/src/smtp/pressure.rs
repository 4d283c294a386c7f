//! How busy the listener is, and what it does about it: Postfix's stress mode.
//!
//! Every session holds a [`Ticket`]. When the sessions open reach the stress
//! threshold (80% of the limit by default) the listener is *stressed*: sessions give
//! each command `stress_timeout` instead of `idle_timeout`, and one error ends them.
//! At the limit a newcomer is not simply refused: the session that has gone longest
//! without progress (at least [`MIN_IDLE_TO_RECLAIM`]) is told `421` and closed to
//! make room. Only when every session is making progress is the newcomer refused.
//! Progress is a completed command or message data arriving at the minimum rate,
//! never single bytes, so a client trickling a byte at a time looks idle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::smtp::stats::ListenerStats;

/// A session that made progress more recently than this is never reclaimed.
pub const MIN_IDLE_TO_RECLAIM: Duration = Duration::from_secs(1);

struct Tracked {
    /// Last progress, ms since `Pressure::epoch`.
    progress: Arc<AtomicU64>,
    reclaim: CancellationToken,
}

#[derive(Default)]
struct Sessions {
    by_id: HashMap<u64, Tracked>,
    /// How many of them were told to go and have not gone yet.
    reclaiming: usize,
    next_id: u64,
}

/// The sessions open on one listener.
pub struct Pressure {
    max: usize,
    stress_at: usize,
    epoch: Instant,
    sessions: Mutex<Sessions>,
    stressed: watch::Sender<bool>,
    stats: Arc<ListenerStats>,
}

/// Why a newcomer could not be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every session is making progress.
    Busy,
}

impl Pressure {
    /// Room for `max` sessions, stressed from `stress_percent` % of them.
    pub fn new(max: usize, stress_percent: usize, stats: Arc<ListenerStats>) -> Arc<Self> {
        let max = max.max(1);
        let stress_at = (max * stress_percent.clamp(1, 100)).div_ceil(100).max(1);
        Arc::new(Self {
            max,
            stress_at,
            epoch: Instant::now(),
            sessions: Mutex::default(),
            stressed: watch::Sender::new(false),
            stats,
        })
    }

    /// Admits a new session, reclaiming the idlest one if the limit is reached.
    ///
    /// # Errors
    /// [`Full::Busy`] when no session can be reclaimed.
    pub fn admit(self: &Arc<Self>) -> Result<Ticket, Full> {
        let mut sessions = self.lock();
        let active = sessions.by_id.len() - sessions.reclaiming;
        if active >= self.max {
            // Reclaimed sessions take a moment to go; do not let a flood of
            // newcomers push the real number of open connections far past the limit.
            if sessions.reclaiming > self.max / 8 {
                return Err(Full::Busy);
            }
            let now = self.now_ms();
            let min_idle = u64::try_from(MIN_IDLE_TO_RECLAIM.as_millis()).unwrap_or(u64::MAX);
            let victim = sessions
                .by_id
                .values()
                .filter(|t| !t.reclaim.is_cancelled())
                .map(|t| (t.progress.load(Ordering::Relaxed), &t.reclaim))
                .filter(|(progress, _)| now.saturating_sub(*progress) >= min_idle)
                .min_by_key(|(progress, _)| *progress)
                .map(|(_, reclaim)| reclaim.clone());
            let Some(victim) = victim else {
                return Err(Full::Busy);
            };
            victim.cancel();
            sessions.reclaiming += 1;
            self.stats.reclaimed.fetch_add(1, Ordering::Relaxed);
        }
        sessions.next_id += 1;
        let id = sessions.next_id;
        let progress = Arc::new(AtomicU64::new(self.now_ms()));
        let reclaim = CancellationToken::new();
        sessions.by_id.insert(
            id,
            Tracked {
                progress: Arc::clone(&progress),
                reclaim: reclaim.clone(),
            },
        );
        self.update(&sessions);
        Ok(Ticket {
            id,
            pressure: Arc::clone(self),
            progress,
            reclaim,
            stressed: self.stressed.subscribe(),
        })
    }

    /// Whether the listener is in stress mode now.
    pub fn is_stressed(&self) -> bool {
        *self.stressed.borrow()
    }

    fn leave(&self, id: u64) {
        let mut sessions = self.lock();
        if let Some(gone) = sessions.by_id.remove(&id)
            && gone.reclaim.is_cancelled()
        {
            sessions.reclaiming = sessions.reclaiming.saturating_sub(1);
        }
        self.update(&sessions);
    }

    /// Publishes the session count and enters or leaves stress mode.
    fn update(&self, sessions: &Sessions) {
        let open = sessions.by_id.len();
        let active = open - sessions.reclaiming;
        self.stats
            .sessions_open
            .store(u64::try_from(open).unwrap_or(u64::MAX), Ordering::Relaxed);
        let stressed = active >= self.stress_at;
        let changed = self.stressed.send_if_modified(|now| {
            let changed = *now != stressed;
            *now = stressed;
            changed
        });
        if changed {
            self.stats
                .stressed
                .store(u64::from(stressed), Ordering::Relaxed);
            if stressed {
                self.stats.stress_episodes.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    open,
                    limit = self.max,
                    "SMTP stress mode on: short timeouts, idle sessions reclaimed"
                );
            } else {
                tracing::info!(open, limit = self.max, "SMTP stress mode off");
            }
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One admitted session; dropping it frees its place.
pub struct Ticket {
    id: u64,
    pressure: Arc<Pressure>,
    progress: Arc<AtomicU64>,
    reclaim: CancellationToken,
    stressed: watch::Receiver<bool>,
}

impl Ticket {
    /// Records that the client completed something (a command, or message data).
    pub fn progressed(&self) {
        self.progress
            .store(self.pressure.now_ms(), Ordering::Relaxed);
    }

    /// Whether the listener is in stress mode now.
    pub fn is_stressed(&self) -> bool {
        *self.stressed.borrow()
    }

    /// Counts a session closed because its input was not in time.
    pub fn timed_out(&self) {
        self.pressure
            .stats
            .timed_out
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Cancelled when this session is reclaimed to make room.
    pub fn reclaim_token(&self) -> CancellationToken {
        self.reclaim.clone()
    }

    /// Changes whenever stress mode starts or ends.
    pub fn stress_watch(&self) -> watch::Receiver<bool> {
        self.stressed.clone()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.pressure.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pressure(max: usize) -> Arc<Pressure> {
        Pressure::new(max, 80, Arc::new(ListenerStats::default()))
    }

    #[tokio::test(start_paused = true)]
    async fn stress_starts_at_the_threshold_and_ends_below_it() {
        let p = pressure(10);
        let mut tickets: Vec<Ticket> = (0..7).filter_map(|_| p.admit().ok()).collect();
        assert!(!p.is_stressed());
        tickets.extend(p.admit().ok());
        assert!(p.is_stressed(), "8 of 10 is 80%");
        tickets.pop();
        assert!(!p.is_stressed());
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limit_the_idlest_session_is_reclaimed() {
        let p = pressure(3);
        let idle = p.admit().ok();
        tokio::time::advance(Duration::from_secs(5)).await;
        let busy: Vec<Ticket> = (0..2).filter_map(|_| p.admit().ok()).collect();
        tokio::time::advance(Duration::from_secs(2)).await;
        for t in &busy {
            t.progressed();
        }
        let newcomer = p.admit();
        assert!(newcomer.is_ok());
        assert!(
            idle.as_ref()
                .is_some_and(|t| t.reclaim_token().is_cancelled())
        );
        assert!(busy.iter().all(|t| !t.reclaim_token().is_cancelled()));
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_making_progress_are_never_reclaimed() {
        let p = pressure(2);
        let open: Vec<Ticket> = (0..2).filter_map(|_| p.admit().ok()).collect();
        assert_eq!(open.len(), 2);
        // Both made progress less than a second ago.
        assert_eq!(p.admit().err(), Some(Full::Busy));
    }
}
