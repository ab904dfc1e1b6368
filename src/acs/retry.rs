//! How long to keep trying an ACS call: a timeout per attempt, a budget per call, and
//! jittered exponential backoff that gives way to `Retry-After`.

use std::time::Duration;

use rand::Rng;

/// Limits for one logical ACS call and its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts, the first included.
    pub max_attempts: u32,
    /// Time allowed for one attempt.
    pub attempt_timeout: Duration,
    /// Time allowed for all attempts and waits together; a wait that does not fit ends the call.
    pub budget: Duration,
    /// First backoff; it doubles each attempt, with full jitter.
    pub base_delay: Duration,
    /// Longest backoff.
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// For HTTP routes, where a caller is waiting: a few quick tries.
    pub const INTERACTIVE: Self = Self {
        max_attempts: 4,
        attempt_timeout: Duration::from_secs(10),
        budget: Duration::from_secs(20),
        base_delay: Duration::from_millis(400),
        max_delay: Duration::from_secs(8),
    };

    /// For the queue function, well inside `functionTimeout` (5 minutes in `host.json`).
    pub const BACKGROUND: Self = Self {
        max_attempts: 6,
        attempt_timeout: Duration::from_secs(20),
        budget: Duration::from_secs(90),
        base_delay: Duration::from_millis(800),
        max_delay: Duration::from_secs(30),
    };

    /// The wait before attempt `attempt + 1` when ACS named none.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(16);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        // Full jitter, but never less than half the ceiling so waits still grow.
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let policy = RetryPolicy::INTERACTIVE;

        for attempt in 1..10 {
            let wait = policy.backoff(attempt);
            let ceiling = (policy.base_delay * 2u32.pow(attempt - 1)).min(policy.max_delay);
            assert!(
                wait <= ceiling && wait >= ceiling / 2,
                "attempt {attempt}: {wait:?}"
            );
        }
    }
}
