//! Rate limits on *new* archive records: a quota per namespace and a global cap, so that an
//! event storm cannot fill the disk and one noisy namespace cannot starve the others. Updates
//! of records already archived are never limited.

use std::num::NonZeroU32;

use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock},
    middleware::NoOpMiddleware,
    state::{InMemoryState, NotKeyed, keyed::HashMapStateStore},
};

/// The quotas, per second with a burst on top.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    pub namespace_rate: NonZeroU32,
    pub namespace_burst: NonZeroU32,
    pub global_rate: NonZeroU32,
    pub global_burst: NonZeroU32,
}

/// Why a new record was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Namespace,
    Global,
}

type Keyed<C> =
    RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Admits new records; generic over the clock so tests run on a fake one.
pub struct ArchiveLimiter<C: Clock = DefaultClock> {
    per_namespace: Keyed<C>,
    global: Direct<C>,
}

impl ArchiveLimiter {
    pub fn new(limits: ArchiveLimits) -> Self {
        Self::with_clock(limits, &DefaultClock::default())
    }
}

impl<C: Clock + Clone> ArchiveLimiter<C> {
    pub fn with_clock(limits: ArchiveLimits, clock: &C) -> Self {
        let ns = Quota::per_second(limits.namespace_rate).allow_burst(limits.namespace_burst);
        let global = Quota::per_second(limits.global_rate).allow_burst(limits.global_burst);
        Self {
            per_namespace: RateLimiter::hashmap_with_clock(ns, clock.clone()),
            global: RateLimiter::direct_with_clock(global, clock.clone()),
        }
    }

    /// Whether a new record in `namespace` may be archived now. The namespace quota is asked
    /// first, so a namespace over its quota never spends the global budget.
    pub fn admit(&self, namespace: &str) -> Result<(), Denied> {
        // Keys are namespaces the watch reports: bounded by the cluster, swept by `housekeep`.
        let key = namespace.to_owned();
        self.per_namespace
            .check_key(&key)
            .map_err(|_| Denied::Namespace)?;
        self.global.check().map_err(|_| Denied::Global)
    }

    /// Forgets namespaces whose quota has fully refilled (keeps the key map bounded).
    pub fn housekeep(&self) {
        self.per_namespace.retain_recent();
        self.per_namespace.shrink_to_fit();
    }

    pub fn tracked_namespaces(&self) -> usize {
        self.per_namespace.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    fn n(v: u32) -> NonZeroU32 {
        NonZeroU32::new(v).unwrap()
    }

    fn limiter(clock: &FakeRelativeClock) -> ArchiveLimiter<FakeRelativeClock> {
        ArchiveLimiter::with_clock(
            ArchiveLimits {
                namespace_rate: n(10),
                namespace_burst: n(50),
                global_rate: n(100),
                global_burst: n(200),
            },
            clock,
        )
    }

    #[test]
    fn a_flooding_namespace_is_cut_at_its_quota_and_others_still_land() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock);
        // 10× the burst from one namespace, interleaved with a quiet one.
        let mut noisy_admitted = 0;
        let mut quiet_admitted = 0;
        for i in 0..500 {
            noisy_admitted += u32::from(l.admit("noisy").is_ok());
            if i % 10 == 0 {
                quiet_admitted += u32::from(l.admit("quiet").is_ok());
            }
        }
        assert_eq!(noisy_admitted, 50);
        assert_eq!(quiet_admitted, 50);
        assert_eq!(l.admit("noisy"), Err(Denied::Namespace));
        // The quota refills at its rate.
        clock.advance(Duration::from_secs(1));
        let refilled = (0..100).filter(|_| l.admit("noisy").is_ok()).count();
        assert_eq!(refilled, 10);
    }

    #[test]
    fn the_global_cap_holds_across_namespaces() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock);
        let admitted = (0..20)
            .flat_map(|ns| (0..50).map(move |_| format!("ns-{ns}")))
            .filter(|ns| l.admit(ns).is_ok())
            .count();
        assert_eq!(admitted, 200);
        assert_eq!(l.admit("fresh"), Err(Denied::Global));
    }

    #[test]
    fn housekeeping_forgets_refilled_namespaces() {
        let clock = FakeRelativeClock::default();
        let l = limiter(&clock);
        for ns in ["a", "b", "c"] {
            l.admit(ns).unwrap();
        }
        assert_eq!(l.tracked_namespaces(), 3);
        clock.advance(Duration::from_secs(60));
        l.housekeep();
        assert_eq!(l.tracked_namespaces(), 0);
    }
}
