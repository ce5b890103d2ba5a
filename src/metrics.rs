//! The Prometheus registry: `kube_events_total` and the exporter's self-metrics, rendered as
//! OpenMetrics or, for clients that ask for it, the classic text format.

use std::{fmt::Write as _, sync::atomic::AtomicU64};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info},
    registry::{Registry, Unit},
};

use crate::event::Event;

/// Labels of `kube_events_total`. Never the object name, uid or message: the archive has those.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub namespace: String,
    pub kind: String,
    pub reason: String,
    pub r#type: String,
}

impl EventLabels {
    pub fn of(event: &Event) -> Self {
        Self {
            namespace: event.namespace.clone(),
            kind: event.regarding.kind.clone(),
            reason: event.reason.clone(),
            r#type: event.type_.clone(),
        }
    }
}

/// The `kube_events_total` counters by label values, resolved once: the family's lookup
/// builds and hashes four owned strings per event, this one a reused buffer.
#[derive(Debug, Default)]
pub struct EventCounters {
    /// Namespace, kind, reason and type joined with NULs → the family's counter.
    counters: std::collections::HashMap<String, Counter>,
    key: String,
}

impl EventCounters {
    /// The counter of `event`'s labels in `family`.
    pub fn get(&mut self, family: &Family<EventLabels, Counter>, event: &Event) -> &Counter {
        self.key.clear();
        for part in [
            &event.namespace,
            &event.regarding.kind,
            &event.reason,
            &event.type_,
        ] {
            self.key.push_str(part);
            self.key.push('\0');
        }
        // Two lookups instead of `entry`, which would need an owned key on every hit.
        if !self.counters.contains_key(self.key.as_str()) {
            let counter = family.get_or_create(&EventLabels::of(event)).clone();
            self.counters.insert(self.key.clone(), counter);
        }
        &self.counters[self.key.as_str()]
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// Watch event types as the API server sends them; the handles are resolved once.
#[derive(Debug, Default)]
pub struct WatchEventCounters {
    pub added: Counter,
    pub modified: Counter,
    pub deleted: Counter,
    pub bookmark: Counter,
    pub error: Counter,
}

/// The archive's metrics.
#[derive(Debug)]
pub struct ArchiveMetrics {
    pub writes: Counter,
    pub dropped_rate_limited: Counter,
    pub dropped_queue_full: Counter,
    pub dropped_error: Counter,
    pub errors: Counter,
    pub deleted_retention: Counter,
    pub deleted_size: Counter,
    pub size_bytes: Gauge,
    pub max_bytes: Gauge,
    pub records: Gauge,
    pub pending: Gauge,
    pub commit_duration: Histogram,
}

impl ArchiveMetrics {
    fn register(own: &mut Registry) -> Self {
        let writes = Counter::default();
        own.register(
            "archive_writes",
            "Records written (inserted or updated) to the archive",
            writes.clone(),
        );
        let dropped = Family::<ReasonLabel, Counter>::default();
        own.register(
            "archive_dropped",
            "Records not archived: rate_limited (new-record quota), queue_full (commit backlog), error (commit failed)",
            dropped.clone(),
        );
        let reason = |reason| dropped.get_or_create(&ReasonLabel { reason }).clone();
        let errors = Counter::default();
        own.register(
            "archive_errors",
            "Archive commits and sweeps that failed",
            errors.clone(),
        );
        let deleted = Family::<ReasonLabel, Counter>::default();
        own.register(
            "archive_deleted",
            "Records deleted: retention (older than --archive-retention) or size (over --archive-max-bytes)",
            deleted.clone(),
        );
        let deleted_reason = |reason| deleted.get_or_create(&ReasonLabel { reason }).clone();
        let size_bytes = Gauge::default();
        own.register(
            "archive_size_bytes",
            "Size of the archive file on disk",
            size_bytes.clone(),
        );
        let max_bytes = Gauge::default();
        own.register(
            "archive_max_bytes",
            "The archive's size cap (--archive-max-bytes); 0 when there is none",
            max_bytes.clone(),
        );
        let records = Gauge::default();
        own.register("archive_records", "Records in the archive", records.clone());
        let pending = Gauge::default();
        own.register(
            "archive_pending",
            "Records waiting for the next archive commit",
            pending.clone(),
        );
        // 0.5 ms to ~4 s: a batched fsync commit is a few ms, a stalled disk seconds.
        let commit_duration = Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 14),
        );
        own.register_with_unit(
            "archive_commit_duration",
            "Time to commit one batch to the archive",
            Unit::Seconds,
            commit_duration.clone(),
        );
        Self {
            writes,
            dropped_rate_limited: reason("rate_limited"),
            dropped_queue_full: reason("queue_full"),
            dropped_error: reason("error"),
            errors,
            deleted_retention: deleted_reason("retention"),
            deleted_size: deleted_reason("size"),
            size_bytes,
            max_bytes,
            records,
            pending,
            commit_duration,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertmanagerLabel {
    alertmanager: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertmanagerReasonLabels {
    alertmanager: String,
    reason: &'static str,
}

/// Alert delivery metrics; per-Alertmanager handles are resolved when its queue is built.
#[derive(Debug)]
pub struct AlertingMetrics {
    posted: Family<AlertmanagerLabel, Counter>,
    failures: Family<AlertmanagerReasonLabels, Counter>,
    dropped: Family<AlertmanagerLabel, Counter>,
    queue_length: Family<AlertmanagerLabel, Gauge>,
    post_duration: Family<AlertmanagerLabel, Histogram>,
    pub skipped_stale: Counter,
    pub skipped_rule: Counter,
    pub active: Gauge,
}

impl AlertingMetrics {
    fn register(own: &mut Registry) -> Self {
        let posted = Family::<AlertmanagerLabel, Counter>::default();
        own.register(
            "alerts_posted",
            "Alerts accepted by an Alertmanager",
            posted.clone(),
        );
        let failures = Family::<AlertmanagerReasonLabels, Counter>::default();
        own.register(
            "alert_post_failures",
            "Failed posts to an Alertmanager: connect, timeout, http_408, http_429, http_4xx (not retried), http_5xx, other",
            failures.clone(),
        );
        let skipped = Family::<ReasonLabel, Counter>::default();
        own.register(
            "alerts_skipped",
            "Occurrences not alerted: stale (older than --alert-resolve-after), rule (a rule set alert: false on a Warning)",
            skipped.clone(),
        );
        let dropped = Family::<AlertmanagerLabel, Counter>::default();
        own.register(
            "alerts_dropped",
            "Alert updates dropped because an Alertmanager's queue was full (oldest first)",
            dropped.clone(),
        );
        let queue_length = Family::<AlertmanagerLabel, Gauge>::default();
        own.register(
            "alert_queue_length",
            "Alert updates waiting for an Alertmanager",
            queue_length.clone(),
        );
        let post_duration = Family::<AlertmanagerLabel, Histogram>::new_with_constructor(
            (|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.001, 2.0, 14,
                ))
            }) as fn() -> Histogram,
        );
        own.register_with_unit(
            "alert_post_duration",
            "Time of a successful post to an Alertmanager",
            Unit::Seconds,
            post_duration.clone(),
        );
        // Each handle in its own statement: a Family's read guard lives to the statement's end.
        let skipped_stale = skipped
            .get_or_create(&ReasonLabel { reason: "stale" })
            .clone();
        let skipped_rule = skipped
            .get_or_create(&ReasonLabel { reason: "rule" })
            .clone();
        let active = Gauge::default();
        own.register(
            "alerts_active",
            "Alerts firing (endsAt ahead), re-posted every resend interval",
            active.clone(),
        );
        Self {
            posted,
            failures,
            dropped,
            queue_length,
            post_duration,
            skipped_stale,
            skipped_rule,
            active,
        }
    }

    fn am(alertmanager: &str) -> AlertmanagerLabel {
        AlertmanagerLabel {
            alertmanager: alertmanager.to_owned(),
        }
    }

    pub fn posted(&self, alertmanager: &str) -> Counter {
        self.posted.get_or_create(&Self::am(alertmanager)).clone()
    }

    pub fn dropped(&self, alertmanager: &str) -> Counter {
        self.dropped.get_or_create(&Self::am(alertmanager)).clone()
    }

    pub fn queue_length(&self, alertmanager: &str) -> Gauge {
        self.queue_length
            .get_or_create(&Self::am(alertmanager))
            .clone()
    }

    pub fn post_duration(&self, alertmanager: &str) -> Histogram {
        self.post_duration
            .get_or_create(&Self::am(alertmanager))
            .clone()
    }

    pub fn post_failed(&self, alertmanager: &str, reason: &'static str) -> Counter {
        self.failures
            .get_or_create(&AlertmanagerReasonLabels {
                alertmanager: alertmanager.to_owned(),
                reason,
            })
            .clone()
    }
}

/// Every metric the exporter exposes, with hot-path handles resolved at start.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub events: Family<EventLabels, Counter>,
    pub watch_events: WatchEventCounters,
    pub skipped_duplicate: Counter,
    pub skipped_filtered: Counter,
    pub watch_restarts: Counter,
    pub watch_gaps: Counter,
    pub decode_errors: Counter,
    pub last_event_timestamp: Gauge<f64, AtomicU64>,
    pub ledger_entries: Gauge,
    pub archive: ArchiveMetrics,
    pub alerting: AlertingMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "kube_events",
            "Occurrences of Kubernetes events (count increases), by event namespace, involved object kind, reason and type",
            events.clone(),
        );

        let own = registry.sub_registry_with_prefix("kube_event_exporter");
        own.register(
            "build",
            "Build information of the exporter",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        let watch_family = Family::<TypeLabel, Counter>::default();
        own.register(
            "watch_events",
            "Watch events received from the API server (or replayed), by type",
            watch_family.clone(),
        );
        let watch_type = |t| watch_family.get_or_create(&TypeLabel { r#type: t }).clone();
        let watch_events = WatchEventCounters {
            added: watch_type("ADDED"),
            modified: watch_type("MODIFIED"),
            deleted: watch_type("DELETED"),
            bookmark: watch_type("BOOKMARK"),
            error: watch_type("ERROR"),
        };

        let skipped = Family::<ReasonLabel, Counter>::default();
        own.register(
            "occurrences_skipped",
            "Event updates that added no occurrence: duplicate (count unchanged) or filtered",
            skipped.clone(),
        );
        let skipped_duplicate = skipped
            .get_or_create(&ReasonLabel {
                reason: "duplicate",
            })
            .clone();
        let skipped_filtered = skipped
            .get_or_create(&ReasonLabel { reason: "filtered" })
            .clone();

        let watch_restarts = Counter::default();
        own.register(
            "watch_restarts",
            "Watch requests re-established after a stream ended or failed",
            watch_restarts.clone(),
        );
        let watch_gaps = Counter::default();
        own.register(
            "watch_gaps",
            "Relists forced by 410 Gone: events may have been missed",
            watch_gaps.clone(),
        );
        let decode_errors = Counter::default();
        own.register(
            "decode_errors",
            "Event records that could not be decoded and were skipped",
            decode_errors.clone(),
        );
        let last_event_timestamp = Gauge::<f64, AtomicU64>::default();
        own.register(
            "last_event_timestamp_seconds",
            "Unix time of the last occurrence counted",
            last_event_timestamp.clone(),
        );
        let ledger_entries = Gauge::default();
        own.register(
            "ledger_entries",
            "Event uids whose last count is remembered for occurrence accounting",
            ledger_entries.clone(),
        );

        let archive = ArchiveMetrics::register(own);
        let alerting = AlertingMetrics::register(own);

        Self {
            registry,
            events,
            watch_events,
            skipped_duplicate,
            skipped_filtered,
            watch_restarts,
            watch_gaps,
            decode_errors,
            last_event_timestamp,
            ledger_entries,
            archive,
            alerting,
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format (0.0.4), for clients that do not take OpenMetrics.
    pub fn encode_classic(&self) -> String {
        openmetrics_to_classic(&self.encode_openmetrics())
    }
}

/// Rewrites OpenMetrics text as the classic format: counter and info families are named by
/// their samples (`_total`, `_info`), info becomes a gauge, `# UNIT` and `# EOF` go.
pub fn openmetrics_to_classic(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // prometheus-client writes HELP before TYPE; the HELP name depends on the type.
    let mut pending_help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest.split_once(' ').unwrap_or((rest, "")));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "unknown" => (name.to_owned(), "untyped"),
                other => (name.to_owned(), other),
            };
            if let Some((_, help)) = pending_help.take() {
                let _ = writeln!(out, "# HELP {name} {help}");
            }
            let _ = writeln!(out, "# TYPE {name} {kind}");
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_rendering_names_families_by_their_samples() {
        let m = Metrics::new();
        m.events
            .get_or_create(&EventLabels {
                namespace: "shop".into(),
                kind: "Pod".into(),
                reason: "BackOff".into(),
                r#type: "Warning".into(),
            })
            .inc_by(4);
        let om = m.encode_openmetrics();
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE kube_events counter"));
        let classic = m.encode_classic();
        assert!(classic.contains("# HELP kube_events_total Occurrences"));
        assert!(classic.contains("# TYPE kube_events_total counter"));
        assert!(classic.contains(
            r#"kube_events_total{namespace="shop",kind="Pod",reason="BackOff",type="Warning"} 4"#
        ));
        assert!(classic.contains("# TYPE kube_event_exporter_build_info gauge"));
        assert!(classic.contains(r#"kube_event_exporter_build_info{version=""#));
        assert!(!classic.contains("# EOF"));
        assert!(classic.contains(r#"kube_event_exporter_watch_events_total{type="BOOKMARK"} 0"#));
    }
}
