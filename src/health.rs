//! Liveness and readiness: sources report watch failures and sync, the HTTP probes read them.

use std::{
    collections::HashMap,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use parking_lot::Mutex;

/// Shared health state. Sources call it on transitions only, never per event.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    /// Streams (one per watched namespace) that are failing, and since when.
    failing: Mutex<HashMap<String, Instant>>,
    /// How long a stream may fail before the process counts as unhealthy: long enough to ride
    /// out an API server rollout, short enough that a wedged exporter gets restarted.
    threshold: Duration,
}

impl Health {
    pub fn new(threshold: Duration) -> Self {
        Self {
            ready: AtomicBool::new(false),
            failing: Mutex::new(HashMap::new()),
            threshold,
        }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The stream failed (request error, stall); the first failure starts the clock.
    pub fn stream_failed(&self, stream: &str) {
        self.failing
            .lock()
            .entry(stream.to_owned())
            .or_insert_with(Instant::now);
    }

    /// The stream works again.
    pub fn stream_ok(&self, stream: &str) {
        self.failing.lock().remove(stream);
    }

    /// Healthy unless some stream has been failing for longer than the threshold; the answer
    /// names the worst stream and for how long.
    pub fn check(&self) -> Result<(), String> {
        let failing = self.failing.lock();
        match failing.iter().min_by_key(|(_, since)| **since) {
            Some((stream, since)) if since.elapsed() >= self.threshold => Err(format!(
                "watch of {stream} failing for {}s",
                since.elapsed().as_secs()
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_longer_than_threshold_is_unhealthy() {
        let h = Health::new(Duration::ZERO);
        assert!(h.check().is_ok());
        h.stream_failed("all namespaces");
        assert!(h.check().unwrap_err().contains("all namespaces"));
        h.stream_ok("all namespaces");
        assert!(h.check().is_ok());
    }

    #[test]
    fn short_failures_are_tolerated() {
        let h = Health::new(Duration::from_secs(3600));
        h.stream_failed("ns");
        assert!(h.check().is_ok());
    }
}
