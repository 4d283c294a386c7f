//! When to try a failed delivery again: a pure schedule, so it is tested without a
//! clock.

use std::time::Duration;

/// Delays between attempts, and how long a delivery may keep failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first, second… failure; the last one repeats.
    pub delays: Vec<Duration>,
    /// After this long in the queue, a temporary failure becomes permanent.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// Roughly what MTAs do: quick retries first, then hourly, for two days.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Self {
            delays: vec![
                minutes(1),
                minutes(5),
                minutes(15),
                minutes(30),
                minutes(60),
                minutes(120),
            ],
            give_up_after: Duration::from_secs(2 * 24 * 3600),
        }
    }
}

/// What to do after a temporary failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Stop: the delivery has been failing for too long.
    GiveUp,
}

impl RetryPolicy {
    /// The step after failure number `failures` (1 for the first) of a delivery
    /// queued at `queued_at`, now being `now` (all Unix ms).
    pub fn next_step(&self, failures: i64, queued_at: i64, now: i64) -> NextStep {
        let age = now.saturating_sub(queued_at);
        if age >= millis(self.give_up_after) {
            return NextStep::GiveUp;
        }
        let index = usize::try_from(failures.saturating_sub(1)).unwrap_or(0);
        let delay = self
            .delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or(Duration::from_secs(60));
        NextStep::RetryAt(now.saturating_add(millis(delay)))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_schedule_then_repeat_the_last() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_step(1, 0, 1_000), NextStep::RetryAt(61_000));
        assert_eq!(p.next_step(2, 0, 1_000), NextStep::RetryAt(301_000));
        assert_eq!(
            p.next_step(40, 0, 1_000),
            NextStep::RetryAt(1_000 + 7_200_000)
        );
    }

    #[test]
    fn gives_up_when_the_delivery_is_too_old() {
        let p = RetryPolicy::default();
        let two_days = 2 * 24 * 3600 * 1000;
        assert_eq!(p.next_step(3, 0, two_days), NextStep::GiveUp);
        assert!(matches!(
            p.next_step(3, 0, two_days - 1),
            NextStep::RetryAt(_)
        ));
    }

    #[test]
    fn an_empty_schedule_still_backs_off() {
        let p = RetryPolicy {
            delays: vec![],
            give_up_after: Duration::from_secs(3600),
        };
        assert_eq!(p.next_step(1, 0, 0), NextStep::RetryAt(60_000));
    }
}
