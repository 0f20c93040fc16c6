//! Waiting on a condition with a deadline: tests never sleep as a way to synchronise.

use std::time::{Duration, Instant};

/// How often a condition is re-checked: short against the deadlines tests use.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `cond` until it returns `true` or `deadline` passes; returns whether it held.
///
/// The condition is always checked at least once, and once more at the deadline.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// assert!(strom_testkit::wait_until(Instant::now() + Duration::from_secs(5), || {
///     start.elapsed() > Duration::from_millis(30)
/// }));
/// ```
pub fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// The async form of [`wait_until`], for conditions checked inside a tokio runtime: it
/// yields to the runtime between checks instead of blocking the thread.
pub async fn wait_until_async(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn false_condition_gives_up_at_the_deadline() {
        let start = Instant::now();
        assert!(!wait_until(start + Duration::from_millis(50), || false));
        assert!(start.elapsed() >= Duration::from_millis(50));
    }

    #[test]
    fn counts_checks_until_true() {
        let mut checks = 0;
        assert!(wait_until(Instant::now() + Duration::from_secs(5), || {
            checks += 1;
            checks == 3
        }));
        assert_eq!(checks, 3);
    }
}
