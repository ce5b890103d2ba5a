//! Liveness and readiness: the watch streams and the archive writer report failures, the
//! pipeline reports sync, the HTTP probes read them.

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
    /// Parts (a watch stream per watched namespace, the archive's writes) that are failing, and
    /// since when.
    failing: Mutex<HashMap<String, Instant>>,
    /// How long a part may fail before the process counts as unhealthy: long enough to ride
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

    /// `part` failed (a request error, a stall, a failed commit); the first failure starts the
    /// clock. `part` names it in `/healthz`: `watch of all namespaces`, `archive writes`.
    pub fn failing(&self, part: &str) {
        let mut failing = self.failing.lock();
        if !failing.contains_key(part) {
            failing.insert(part.to_owned(), Instant::now());
        }
    }

    /// `part` works again.
    pub fn recovered(&self, part: &str) {
        self.failing.lock().remove(part);
    }

    /// Healthy unless some part has been failing for longer than the threshold; the answer
    /// names the longest failing part and for how long.
    pub fn check(&self) -> Result<(), String> {
        let failing = self.failing.lock();
        match failing.iter().min_by_key(|(_, since)| **since) {
            Some((part, since)) if since.elapsed() >= self.threshold => {
                Err(format!("{part} failing for {}s", since.elapsed().as_secs()))
            }
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
        h.failing("watch of all namespaces");
        assert_eq!(
            h.check().unwrap_err(),
            "watch of all namespaces failing for 0s"
        );
        h.recovered("watch of all namespaces");
        assert!(h.check().is_ok());
    }

    #[test]
    fn short_failures_are_tolerated() {
        let h = Health::new(Duration::from_secs(3600));
        h.failing("archive writes");
        assert!(h.check().is_ok());
    }
}
