//! Exponential backoff with jitter for every retry loop (watch streams, Alertmanager posts),
//! built on backon's `ExponentialBuilder`; this wrapper adds the `reset` a long-lived loop needs
//! after a success.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// Delays in `[d/2, d)` where `d` doubles from `base` up to `max`: the random part keeps many
/// clients that failed together from retrying together.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        // backon's jitter adds up to the delay itself: halves of the bounds give `[d/2, d)`.
        let builder = ExponentialBuilder::default()
            .with_min_delay(base / 2)
            .with_max_delay(max / 2)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // Without a maximum number of attempts the iterator never ends.
        self.delays
            .next()
            .unwrap_or(self.builder.build().next().unwrap_or_default())
    }

    /// The last attempt succeeded: the next failure starts from `base` again.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let base = Duration::from_millis(100);
        let mut b = Backoff::new(base, Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= base / 2 && first <= base, "{first:?}");
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(1)),
            "{delays:?}"
        );
        assert!(delays[9] >= Duration::from_millis(500), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= base);
    }
}
