//! When to try a failed delivery again: a pure schedule, so it is tested without a
//! clock.

use std::time::Duration;

/// Delays between attempts, and how long a delivery may keep failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first, second… failure; the last one repeats.
    pub delays: Vec<Duration>,
    /// Each delay is moved by up to this share of itself, up or down, so that
    /// deliveries deferred together (a destination down for an hour) do not all
    /// come back in the same second.
    pub jitter_percent: u8,
    /// After this long in the queue, a temporary failure becomes permanent.
    pub give_up_after: Duration,
}

/// The schedule in minutes: quick retries first, then every four hours, as mail
/// servers do.
pub const SCHEDULE_MINUTES: [u64; 7] = [1, 5, 15, 30, 60, 120, 240];

impl Default for RetryPolicy {
    /// [`SCHEDULE_MINUTES`] with 10% jitter, for five days (Postfix's
    /// `maximal_queue_lifetime`).
    fn default() -> Self {
        Self {
            delays: SCHEDULE_MINUTES
                .iter()
                .map(|m| Duration::from_secs(60 * m))
                .collect(),
            jitter_percent: 10,
            give_up_after: Duration::from_secs(5 * 24 * 3600),
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
    /// queued at `queued_at`, now being `now` (all Unix ms); `roll` is a random
    /// number that places the delay within its jitter (`u16::MAX / 2` for none).
    pub fn next_step(&self, failures: i64, queued_at: i64, now: i64, roll: u16) -> NextStep {
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
        let delay = millis(delay);
        // roll in 0..=65535 maps to -jitter..=+jitter.
        let span = delay / 100 * i64::from(self.jitter_percent);
        let shift = ((i64::from(roll) - i64::from(u16::MAX / 2)) * span / i64::from(u16::MAX / 2))
            .clamp(-span, span);
        NextStep::RetryAt(now.saturating_add(delay + shift))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIDDLE: u16 = u16::MAX / 2;

    #[test]
    fn delays_follow_the_schedule_then_repeat_every_four_hours() {
        let p = RetryPolicy::default();
        assert_eq!(p.next_step(1, 0, 1_000, MIDDLE), NextStep::RetryAt(61_000));
        assert_eq!(p.next_step(2, 0, 1_000, MIDDLE), NextStep::RetryAt(301_000));
        assert_eq!(
            p.next_step(6, 0, 1_000, MIDDLE),
            NextStep::RetryAt(1_000 + 7_200_000)
        );
        assert_eq!(
            p.next_step(40, 0, 1_000, MIDDLE),
            NextStep::RetryAt(1_000 + 14_400_000)
        );
    }

    #[test]
    fn jitter_moves_a_delay_by_at_most_a_tenth() {
        let p = RetryPolicy::default();
        let hour = 3_600_000;
        assert_eq!(p.next_step(5, 0, 0, 0), NextStep::RetryAt(hour - hour / 10));
        assert_eq!(
            p.next_step(5, 0, 0, u16::MAX),
            NextStep::RetryAt(hour + hour / 10)
        );
        for roll in [1, 1000, 30000, 40000, 65000] {
            let NextStep::RetryAt(at) = p.next_step(5, 0, 0, roll) else {
                panic!("gave up");
            };
            assert!(
                (hour - hour / 10..=hour + hour / 10).contains(&at),
                "{roll}: {at}"
            );
        }
    }

    #[test]
    fn gives_up_when_the_delivery_is_too_old() {
        let p = RetryPolicy::default();
        let five_days = 5 * 24 * 3600 * 1000;
        assert_eq!(p.next_step(3, 0, five_days, MIDDLE), NextStep::GiveUp);
        assert!(matches!(
            p.next_step(3, 0, five_days - 1, MIDDLE),
            NextStep::RetryAt(_)
        ));
    }

    #[test]
    fn an_empty_schedule_still_backs_off() {
        let p = RetryPolicy {
            delays: vec![],
            jitter_percent: 0,
            give_up_after: Duration::from_secs(3600),
        };
        assert_eq!(p.next_step(1, 0, 0, 0), NextStep::RetryAt(60_000));
    }
}
