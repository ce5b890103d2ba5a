//! The Prometheus registry: `kube_events_total` and the exporter's self-metrics, rendered as
//! OpenMetrics or, for clients that ask for it, the classic text format ([`classic`]).
//!
//! Stages report through methods named for what happened (`watch_gap`, `archive_dropped`),
//! never by reaching into the registry: a reader of a stage sees what it reports, and every
//! label value is chosen here. Hot-path handles are resolved once, at start.

pub mod classic;

use std::{collections::VecDeque, sync::atomic::AtomicU64};

use jiff::Timestamp;
use prometheus_client::{
    encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
        info::Info,
    },
    registry::{Registry, Unit},
};

use tracing::warn;

use crate::{
    event::Event,
    util::{hash::FastMap, joined::JoinedKeyMap},
};

/// Labels of `kube_events_total`. Never the object name, uid or message: the archive has those.
/// With `--metrics-workload-labels`, also `workload_kind` and `workload`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct EventLabels {
    pub namespace: String,
    pub kind: String,
    pub reason: String,
    pub r#type: &'static str,
    /// `(workload_kind, workload)`, only with the workload labels on.
    pub workload: Option<(String, String)>,
}

impl EncodeLabelSet for EventLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        let base = [
            ("namespace", self.namespace.as_str()),
            ("kind", &self.kind),
            ("reason", &self.reason),
            ("type", self.r#type),
        ];
        for label in base {
            label.encode(encoder.encode_label())?;
        }
        if let Some((kind, name)) = &self.workload {
            ("workload_kind", kind.as_str()).encode(encoder.encode_label())?;
            ("workload", name.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

impl EventLabels {
    fn overflow() -> Self {
        Self {
            namespace: OVERFLOW.into(),
            kind: OVERFLOW.into(),
            reason: OVERFLOW.into(),
            r#type: OVERFLOW,
            workload: None,
        }
    }

    /// `event`'s labels; with `workload`, its workload's too (empty while not known).
    pub fn of(event: &Event, workload: bool) -> Self {
        Self {
            namespace: event.namespace.clone(),
            kind: event.regarding.kind.clone(),
            reason: event.reason.clone(),
            r#type: event.type_.as_str(),
            workload: workload.then(|| (event.workload.kind.clone(), event.workload.name.clone())),
        }
    }
}

/// The label value of every label of the one overflow series of `kube_events_total`. It
/// cannot be a namespace, kind or reason: those never start with `_`.
pub const OVERFLOW: &str = "_overflow";

/// The default of `--metrics-max-series`.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// The `kube_events_total` counters by label values, resolved once per label set: the family's
/// own lookup would build and hash four owned strings per event. At most `max_series` label
/// sets get a series of their own; occurrences of any other go to the overflow series.
///
/// Occurrences are exposed only once they are durable: [`EventCounters::add`] notes them with
/// the generation of the archive batch that carries their ledger entries, and
/// [`EventCounters::expose`] adds them to the series once that batch has committed. A process
/// killed in between never showed them, so the next one, which counts them again, counts
/// nothing twice.
#[derive(Debug)]
pub struct EventCounters {
    family: Family<EventLabels, Counter>,
    /// Label set → index in `series`.
    index: JoinedKeyMap<u32>,
    series: Vec<Counter>,
    max_series: usize,
    workload_labels: bool,
    /// The index of the `_overflow` series, made on the first overflow.
    overflow: Option<u32>,
    overflowed: Counter,
    series_gauge: Gauge,
    /// Occurrences not yet exposed, oldest generation first: series index → occurrences.
    waiting: VecDeque<(u64, FastMap<u32, u64>)>,
}

impl EventCounters {
    pub fn new(metrics: &Metrics) -> Self {
        let max_series = metrics.event_series.max_series;
        metrics.event_series.limit.set(max_series as i64);
        Self {
            family: metrics.events.clone(),
            index: JoinedKeyMap::default(),
            series: Vec::new(),
            max_series,
            workload_labels: metrics.event_series.workload_labels,
            overflow: None,
            overflowed: metrics.event_series.overflowed.clone(),
            series_gauge: metrics.event_series.series.clone(),
            waiting: VecDeque::new(),
        }
    }

    /// Notes `n` new occurrences of `event`, to be exposed once batch `generation` is durable.
    pub fn add(&mut self, event: &Event, n: u64, generation: u64) {
        let series = self.resolve(event);
        match self.waiting.back_mut() {
            Some((g, counts)) if *g == generation => *counts.entry(series).or_default() += n,
            _ => {
                let mut counts = FastMap::default();
                counts.insert(series, n);
                self.waiting.push_back((generation, counts));
            }
        }
    }

    /// Exposes the occurrences of every generation `durable` accepts, oldest first.
    pub fn expose(&mut self, durable: impl Fn(u64) -> bool) {
        while self.waiting.front().is_some_and(|(g, _)| durable(*g)) {
            let Some((_, counts)) = self.waiting.pop_front() else {
                break;
            };
            for (series, n) in counts {
                self.series[series as usize].inc_by(n);
                if Some(series) == self.overflow {
                    self.overflowed.inc_by(n);
                }
            }
        }
    }

    /// Whether some occurrences wait to be exposed.
    pub fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The series of `event`'s label set, made if new and the cap allows.
    fn resolve(&mut self, event: &Event) -> u32 {
        let workload = &event.workload;
        let parts = [
            event.namespace.as_str(),
            &event.regarding.kind,
            &event.reason,
            event.type_.as_str(),
            if self.workload_labels {
                &workload.kind
            } else {
                ""
            },
            if self.workload_labels {
                &workload.name
            } else {
                ""
            },
        ];
        if let Some(series) = self.index.get_mut(parts) {
            return *series;
        }
        if self.index.len() >= self.max_series {
            if let Some(series) = self.overflow {
                return series;
            }
            warn!(
                limit = self.max_series,
                namespace = %event.namespace,
                kind = %event.regarding.kind,
                reason = %event.reason,
                "kube_events_total reached --metrics-max-series; occurrences of new label \
                 sets are counted in its _overflow series (logged once)."
            );
            let series = self.push(&EventLabels::overflow());
            self.overflow = Some(series);
            return series;
        }
        let series = self.push(&EventLabels::of(event, self.workload_labels));
        self.index.get_or_insert_with(parts, || series);
        self.series_gauge.set(self.index.len() as i64);
        series
    }

    fn push(&mut self, labels: &EventLabels) -> u32 {
        self.series.push(self.family.get_or_create(labels).clone());
        (self.series.len() - 1) as u32
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
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabel {
    review: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
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

/// A watch event's type as the API server sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl WatchEventType {
    pub const ALL: [Self; 5] = [
        Self::Added,
        Self::Modified,
        Self::Deleted,
        Self::Bookmark,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
            Self::Error => "ERROR",
        }
    }
}

/// What access control (`--auth kubernetes`) answered one request to the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthDecision {
    Allowed,
    /// 403: a namespace asked for is not permitted.
    Denied,
    /// 401: no credentials, or a token the API server did not accept.
    Unauthenticated,
    /// 503: a review failed; nothing was answered.
    Error,
}

impl AuthDecision {
    pub const ALL: [Self; 4] = [
        Self::Allowed,
        Self::Denied,
        Self::Unauthenticated,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Unauthenticated => "unauthenticated",
            Self::Error => "error",
        }
    }
}

/// A review the exporter asks the Kubernetes API for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Review {
    /// `TokenReview`: who a bearer token is.
    Token,
    /// `SubjectAccessReview`: whether a user may list events in a namespace.
    Access,
}

impl Review {
    pub const ALL: [Self; 2] = [Self::Token, Self::Access];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "tokenreview",
            Self::Access => "subjectaccessreview",
        }
    }
}

/// Why a record was not archived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveDrop {
    /// The new-record quota of its namespace or of the archive was spent.
    RateLimited,
    /// Too many records waited for a commit.
    QueueFull,
    /// Its commit failed.
    Error,
}

/// Handles of one Alertmanager's delivery metrics.
#[derive(Clone, Debug)]
pub struct AlertQueueMetrics {
    posted: Counter,
    dropped: Counter,
    length: Gauge,
    duration: Histogram,
    failures: Family<AlertmanagerReasonLabels, Counter>,
    label: String,
}

impl AlertQueueMetrics {
    /// A batch of `n` alerts was accepted after `seconds`.
    pub fn posted(&self, n: usize, seconds: f64) {
        self.posted.inc_by(n as u64);
        self.duration.observe(seconds);
    }

    /// The queue was full: its oldest update went.
    pub fn dropped(&self) {
        self.dropped.inc();
    }

    pub fn queue_length(&self, n: usize) {
        self.length.set(n as i64);
    }

    /// A post failed; `reason` is a bounded error kind.
    pub fn post_failed(&self, reason: &'static str) {
        self.failures
            .get_or_create(&AlertmanagerReasonLabels {
                alertmanager: self.label.clone(),
                reason,
            })
            .inc();
    }
}

/// Every metric the exporter exposes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    watch_events: [Counter; 5],
    skipped_duplicate: Counter,
    skipped_filtered: Counter,
    watch_restarts: Counter,
    watch_gaps: Counter,
    watch_forbidden: Family<ResourceLabel, Gauge>,
    decode_errors: Counter,
    last_event_timestamp: Gauge<f64, AtomicU64>,
    ledger_entries: Gauge,
    event_series: EventSeriesMetrics,
    archive: ArchiveMetrics,
    alerting: AlertingMetrics,
    auth: AuthMetrics,
    /// Registered only when shipping is on ([`Metrics::with_clickhouse`]).
    clickhouse: Option<ClickHouseMetrics>,
}

/// Shipping to ClickHouse: rows shipped, batches failed, the outbox's length and age.
#[derive(Clone, Debug)]
pub struct ClickHouseMetrics {
    shipped: Counter,
    failed: Family<ReasonLabel, Counter>,
    unshipped_deleted: Counter,
    outbox_rows: Gauge,
    outbox_age: Gauge<f64, AtomicU64>,
}

impl ClickHouseMetrics {
    /// The reasons a batch (or a table or retention statement) fails, all registered at start.
    pub const REASONS: [&'static str; 6] = [
        "connect",
        "timeout",
        "status_4xx",
        "status_5xx",
        "archive",
        "other",
    ];

    fn register(own: &mut Registry) -> Self {
        let failed: Family<ReasonLabel, Counter> = register(
            own,
            "clickhouse_batches_failed",
            "Requests to ClickHouse that failed, by reason: connect, timeout, status_4xx (refused: credentials, schema), status_5xx, archive (reading or acknowledging the outbox), other",
        );
        for reason in Self::REASONS {
            let _ = child(&failed, &ReasonLabel { reason });
        }
        Self {
            shipped: register(
                own,
                "clickhouse_rows_shipped",
                "Archive records (inserts and updates) ClickHouse acknowledged",
            ),
            failed,
            unshipped_deleted: register(
                own,
                "clickhouse_rows_unshipped_deleted",
                "Records deleted locally (retention, size cap) before they were shipped: ClickHouse never got their last version",
            ),
            outbox_rows: register(
                own,
                "clickhouse_outbox_rows",
                "Records written locally and not yet acknowledged by ClickHouse",
            ),
            outbox_age: register(
                own,
                "clickhouse_outbox_oldest_age_seconds",
                "Age of the oldest change not yet acknowledged by ClickHouse; 0 when the outbox is empty",
            ),
        }
    }

    pub fn shipped(&self, rows: usize) {
        self.shipped.inc_by(rows as u64);
    }

    /// `reason` is one of [`Self::REASONS`].
    pub fn failed(&self, reason: &'static str) {
        self.failed.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub fn outbox(&self, rows: u64, oldest_age_seconds: f64) {
        self.outbox_rows
            .set(i64::try_from(rows).unwrap_or(i64::MAX));
        self.outbox_age.set(oldest_age_seconds);
    }
}

/// Access control's decisions and the reviews behind them.
#[derive(Debug)]
struct AuthMetrics {
    decisions: [Counter; 4],
    review_errors: [Counter; 2],
    review_duration: [Histogram; 2],
}

impl AuthMetrics {
    fn register(own: &mut Registry) -> Self {
        let decisions: Family<ResultLabel, Counter> = register(
            own,
            "auth_decisions",
            "Requests to the history under --auth kubernetes: allowed, denied (403), unauthenticated (401), error (503, a review failed)",
        );
        let errors: Family<ReviewLabel, Counter> = register(
            own,
            "auth_review_errors",
            "TokenReviews and SubjectAccessReviews that failed (API server error, timeout, unreachable)",
        );
        // A review is a few ms; the exporter gives up after 5 s.
        let duration: Family<ReviewLabel, Histogram> = register_latency(
            own,
            "auth_review_duration",
            "Time of a TokenReview or SubjectAccessReview, failed ones included; decisions served from the cache make none",
        );
        let review = |r: Review| ReviewLabel { review: r.as_str() };
        Self {
            decisions: AuthDecision::ALL
                .map(|d| child(&decisions, &ResultLabel { result: d.as_str() })),
            review_errors: Review::ALL.map(|r| child(&errors, &review(r))),
            review_duration: Review::ALL.map(|r| child(&duration, &review(r))),
        }
    }
}

/// The bound on `kube_events_total`'s series.
#[derive(Debug)]
struct EventSeriesMetrics {
    max_series: usize,
    workload_labels: bool,
    series: Gauge,
    limit: Gauge,
    overflowed: Counter,
}

impl EventSeriesMetrics {
    fn register(own: &mut Registry, max_series: usize, workload_labels: bool) -> Self {
        Self {
            max_series,
            workload_labels,
            series: register(
                own,
                "event_series",
                "Label sets of kube_events_total with a series of their own",
            ),
            limit: register(
                own,
                "event_series_limit",
                "The cap on kube_events_total's label sets (--metrics-max-series)",
            ),
            overflowed: register(
                own,
                "event_series_overflow",
                "Occurrences counted in kube_events_total's _overflow series because the cap was reached",
            ),
        }
    }
}

#[derive(Debug)]
struct ArchiveMetrics {
    writes: Counter,
    dropped: [Counter; 3],
    errors: Family<KindLabel, Counter>,
    deleted_retention: Counter,
    deleted_size: Counter,
    size_bytes: Gauge,
    max_bytes: Gauge,
    records: Gauge,
    pending: Gauge,
    commit_duration: Histogram,
}

#[derive(Debug)]
struct AlertingMetrics {
    posted: Family<AlertmanagerLabel, Counter>,
    failures: Family<AlertmanagerReasonLabels, Counter>,
    dropped: Family<AlertmanagerLabel, Counter>,
    queue_length: Family<AlertmanagerLabel, Gauge>,
    post_duration: Family<AlertmanagerLabel, Histogram>,
    skipped_stale: Counter,
    skipped_rule: Counter,
    active: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers a new metric of type `M` (made by `Default`) and returns its handle.
fn register<M>(registry: &mut Registry, name: &str, help: &str) -> M
where
    M: Default + Clone + prometheus_client::registry::Metric,
{
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// A family of latency histograms in seconds, by label set: buckets from 1 ms doubling to about
/// 8 s (a request to another service, with a timeout of a few seconds).
fn register_latency<L>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> Family<L, Histogram, fn() -> Histogram>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Histogram, fn() -> Histogram>::new_with_constructor(|| {
        Histogram::new(exponential_buckets(0.001, 2.0, 14))
    });
    registry.register_with_unit(name, help, Unit::Seconds, family.clone());
    family
}

/// The handle of `labels` in `family`; a Family's read guard lives to the statement's end, so
/// each handle is taken in its own call.
fn child<L, M>(family: &Family<L, M>, labels: &L) -> M
where
    L: Clone + std::hash::Hash + Eq,
    M: Clone,
    Family<L, M>: Clone,
{
    family.get_or_create(labels).clone()
}

impl ArchiveMetrics {
    fn register(own: &mut Registry) -> Self {
        let writes = register(
            own,
            "archive_writes",
            "Records written (inserted or updated) to the archive",
        );
        let dropped: Family<ReasonLabel, Counter> = register(
            own,
            "archive_dropped",
            "Records not archived: rate_limited (new-record quota), queue_full (commit backlog), error (commit failed)",
        );
        let errors = register(
            own,
            "archive_errors",
            "Archive commits and sweeps that failed, by kind of failure (storage, commit, corrupt, task)",
        );
        let deleted: Family<ReasonLabel, Counter> = register(
            own,
            "archive_deleted",
            "Records deleted: retention (older than --archive-retention) or size (over --archive-max-bytes)",
        );
        let size_bytes = register(
            own,
            "archive_size_bytes",
            "Size of the archive file on disk",
        );
        let max_bytes = register(
            own,
            "archive_max_bytes",
            "The archive's size cap (--archive-max-bytes); 0 when there is none",
        );
        let records = register(own, "archive_records", "Records in the archive");
        let pending = register(
            own,
            "archive_pending",
            "Records waiting for the next archive commit",
        );
        // 0.5 ms to ~4 s: a batched fsync commit is a few ms, a stalled disk seconds.
        let commit_duration = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        own.register_with_unit(
            "archive_commit_duration",
            "Time to commit one batch to the archive",
            Unit::Seconds,
            commit_duration.clone(),
        );
        let reason = |reason| child(&dropped, &ReasonLabel { reason });
        Self {
            writes,
            dropped: [
                reason("rate_limited"),
                reason("queue_full"),
                reason("error"),
            ],
            errors,
            deleted_retention: child(
                &deleted,
                &ReasonLabel {
                    reason: "retention",
                },
            ),
            deleted_size: child(&deleted, &ReasonLabel { reason: "size" }),
            size_bytes,
            max_bytes,
            records,
            pending,
            commit_duration,
        }
    }
}

impl AlertingMetrics {
    fn register(own: &mut Registry) -> Self {
        let posted = register(own, "alerts_posted", "Alerts accepted by an Alertmanager");
        let failures = register(
            own,
            "alert_post_failures",
            "Failed posts to an Alertmanager: connect, timeout, http_408, http_429, http_4xx (not retried), http_5xx, other",
        );
        let skipped: Family<ReasonLabel, Counter> = register(
            own,
            "alerts_skipped",
            "Occurrences not alerted: stale (older than --alert-resolve-after), rule (a rule set alert: false on a Warning)",
        );
        let dropped = register(
            own,
            "alerts_dropped",
            "Alert updates dropped because an Alertmanager's queue was full (oldest first)",
        );
        let queue_length = register(
            own,
            "alert_queue_length",
            "Alert updates waiting for an Alertmanager",
        );
        let post_duration: Family<AlertmanagerLabel, Histogram> = register_latency(
            own,
            "alert_post_duration",
            "Time of a successful post to an Alertmanager",
        );
        let active = register(
            own,
            "alerts_active",
            "Alerts firing (endsAt ahead), re-posted every resend interval",
        );
        Self {
            posted,
            failures,
            dropped,
            queue_length,
            post_duration,
            skipped_stale: child(&skipped, &ReasonLabel { reason: "stale" }),
            skipped_rule: child(&skipped, &ReasonLabel { reason: "rule" }),
            active,
        }
    }
}

impl Metrics {
    /// The metrics with the default cap on `kube_events_total`'s series.
    pub fn new() -> Self {
        Self::with_max_series(DEFAULT_MAX_SERIES)
    }

    /// The metrics with at most `max_series` label sets of `kube_events_total` (and one
    /// overflow series).
    pub fn with_max_series(max_series: usize) -> Self {
        Self::with_event_series(max_series, false)
    }

    /// The metrics with at most `max_series` label sets of `kube_events_total`, labelled with
    /// the events' workloads when `workload_labels`.
    pub fn with_event_series(max_series: usize, workload_labels: bool) -> Self {
        let mut registry = Registry::default();
        let events = register(
            &mut registry,
            "kube_events",
            "Occurrences of Kubernetes events (count increases), by event namespace, involved object kind, reason and type",
        );

        let own = registry.sub_registry_with_prefix("kube_event_exporter");
        own.register(
            "build",
            "Build information of the exporter",
            Info::new(VersionLabel {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        let watch_family: Family<TypeLabel, Counter> = register(
            own,
            "watch_events",
            "Watch events received from the API server (or replayed), by type",
        );
        let skipped: Family<ReasonLabel, Counter> = register(
            own,
            "occurrences_skipped",
            "Event updates that added no occurrence: duplicate (count unchanged) or filtered",
        );
        let watch_restarts = register(
            own,
            "watch_restarts",
            "Watch requests re-established after a stream ended or failed",
        );
        let watch_gaps = register(
            own,
            "watch_gaps",
            "Relists forced by 410 Gone: events may have been missed",
        );
        let decode_errors = register(
            own,
            "decode_errors",
            "Event records that could not be decoded and were skipped",
        );
        let watch_forbidden = register(
            own,
            "watch_forbidden",
            "1 while the API server refuses the watch of a resource (403): no workloads or derived occurrences from it",
        );
        let last_event_timestamp = register(
            own,
            "last_event_timestamp_seconds",
            "Unix time of the last occurrence counted",
        );
        let ledger_entries = register(
            own,
            "ledger_entries",
            "Event uids whose last count is remembered for occurrence accounting",
        );
        let event_series = EventSeriesMetrics::register(own, max_series, workload_labels);
        let archive = ArchiveMetrics::register(own);
        let alerting = AlertingMetrics::register(own);
        let auth = AuthMetrics::register(own);

        Self {
            registry,
            events,
            watch_events: WatchEventType::ALL
                .map(|t| child(&watch_family, &TypeLabel { r#type: t.as_str() })),
            skipped_duplicate: child(
                &skipped,
                &ReasonLabel {
                    reason: "duplicate",
                },
            ),
            skipped_filtered: child(&skipped, &ReasonLabel { reason: "filtered" }),
            watch_restarts,
            watch_gaps,
            watch_forbidden,
            decode_errors,
            last_event_timestamp,
            ledger_entries,
            event_series,
            archive,
            alerting,
            auth,
            clickhouse: None,
        }
    }

    /// Registers the ClickHouse shipping families (only with `--clickhouse-url`, so the
    /// exposition of an exporter without it stays as it was).
    #[must_use]
    pub fn with_clickhouse(mut self) -> Self {
        let own = self
            .registry
            .sub_registry_with_prefix("kube_event_exporter");
        self.clickhouse = Some(ClickHouseMetrics::register(own));
        self
    }

    /// The shipping metrics' handles; `None` without shipping.
    pub fn clickhouse(&self) -> Option<ClickHouseMetrics> {
        self.clickhouse.clone()
    }

    /// Records deleted before they were shipped (nothing without shipping).
    pub fn clickhouse_unshipped_deleted(&self, records: usize) {
        if let Some(c) = &self.clickhouse {
            c.unshipped_deleted.inc_by(records as u64);
        }
    }

    // ----- the sources -----

    /// A watch event of type `t` arrived (or was replayed).
    pub fn watch_event(&self, t: WatchEventType) {
        self.watch_events[t as usize].inc();
    }

    /// A watch request was made again after its stream ended or failed.
    pub fn watch_restarted(&self) {
        self.watch_restarts.inc();
    }

    /// A 410 Gone forced a relist: events may have been missed.
    pub fn watch_gap(&self) {
        self.watch_gaps.inc();
    }

    /// Whether the API server refuses the watch of `resource` (403).
    pub fn watch_forbidden(&self, resource: &'static str, forbidden: bool) {
        self.watch_forbidden
            .get_or_create(&ResourceLabel { resource })
            .set(i64::from(forbidden));
    }

    /// A record could not be decoded and was skipped.
    pub fn record_undecodable(&self) {
        self.decode_errors.inc();
    }

    // ----- the pipeline -----

    /// An update that added no occurrence: its count was not above the last one seen.
    pub fn occurrence_duplicate(&self) {
        self.skipped_duplicate.inc();
    }

    /// An event dropped by the namespace filter or a rule.
    pub fn occurrence_filtered(&self) {
        self.skipped_filtered.inc();
    }

    /// The ledger now remembers `n` events.
    pub fn ledger_size(&self, n: usize) {
        self.ledger_entries.set(n as i64);
    }

    /// An occurrence at `last_seen` was counted: the gauge keeps the latest.
    pub fn occurrence_at(&self, last_seen: Timestamp) {
        let t = last_seen.as_millisecond() as f64 / 1000.0;
        if t > self.last_event_timestamp.get() {
            self.last_event_timestamp.set(t);
        }
    }

    // ----- the archive -----

    pub fn archive_written(&self, records: usize) {
        self.archive.writes.inc_by(records as u64);
    }

    pub fn archive_dropped(&self, why: ArchiveDrop, records: u64) {
        self.archive.dropped[why as usize].inc_by(records);
    }

    /// A commit or sweep failed; `kind` is a bounded error kind.
    pub fn archive_failed(&self, kind: &'static str) {
        self.archive.errors.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn archive_deleted(&self, by_retention: usize, by_size: usize) {
        self.archive.deleted_retention.inc_by(by_retention as u64);
        self.archive.deleted_size.inc_by(by_size as u64);
    }

    /// The archive file is `file_bytes` long and holds `records` records.
    pub fn archive_size(&self, file_bytes: u64, records: Option<u64>) {
        self.archive
            .size_bytes
            .set(i64::try_from(file_bytes).unwrap_or(i64::MAX));
        if let Some(n) = records {
            self.archive
                .records
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub fn archive_size_cap(&self, max_bytes: Option<u64>) {
        let cap = max_bytes.map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX));
        self.archive.max_bytes.set(cap);
    }

    pub fn archive_pending(&self, records: usize) {
        self.archive.pending.set(records as i64);
    }

    pub fn archive_committed(&self, seconds: f64) {
        self.archive.commit_duration.observe(seconds);
    }

    // ----- alerting -----

    /// The handles of one Alertmanager's delivery metrics, named `label`.
    pub fn alert_queue(&self, label: &str) -> AlertQueueMetrics {
        let am = AlertmanagerLabel {
            alertmanager: label.to_owned(),
        };
        let a = &self.alerting;
        AlertQueueMetrics {
            posted: child(&a.posted, &am),
            dropped: child(&a.dropped, &am),
            length: child(&a.queue_length, &am),
            duration: child(&a.post_duration, &am),
            failures: a.failures.clone(),
            label: label.to_owned(),
        }
    }

    /// An occurrence older than the resolve time: its alert would have ended already.
    pub fn alert_skipped_stale(&self) {
        self.alerting.skipped_stale.inc();
    }

    /// A Warning that a rule kept from alerting.
    pub fn alert_skipped_by_rule(&self) {
        self.alerting.skipped_rule.inc();
    }

    pub fn alerts_active(&self, n: usize) {
        self.alerting.active.set(n as i64);
    }

    // ----- access control -----

    pub fn auth_decided(&self, decision: AuthDecision) {
        self.auth.decisions[decision as usize].inc();
    }

    /// A review took `seconds`; `failed`: it brought no answer.
    pub fn auth_reviewed(&self, review: Review, seconds: f64, failed: bool) {
        self.auth.review_duration[review as usize].observe(seconds);
        if failed {
            self.auth.review_errors[review as usize].inc();
        }
    }

    // ----- exposition -----

    /// The OpenMetrics text exposition.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format (0.0.4), for clients that do not take OpenMetrics.
    pub fn encode_classic(&self) -> String {
        classic::openmetrics_to_classic(&self.encode_openmetrics())
    }

    /// The value of the sample `name` (as the classic format names it) whose labels include
    /// `labels`, summed over the samples that match: what a scrape would read. For tests and
    /// benchmarks; the exposition is the interface.
    pub fn sample(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        classic::samples(&self.encode_classic())
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }
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
                r#type: "Warning",
                workload: None,
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

    /// With the workload labels on, each workload has its own series (an unknown one is empty);
    /// off, the four labels only.
    #[test]
    fn workload_labels_only_when_asked_for() {
        use crate::event::{EventType, ObjectRef, Workload};
        let event = |workload: &str| Event {
            uid: "u".into(),
            namespace: "shop".into(),
            name: "n".into(),
            resource_version: "1".into(),
            regarding: ObjectRef {
                kind: "Pod".into(),
                ..ObjectRef::default()
            },
            reason: "BackOff".into(),
            type_: EventType::Warning,
            message: String::new(),
            count: 1,
            first_seen: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
            source: String::new(),
            host: String::new(),
            reporting_instance: String::new(),
            action: String::new(),
            workload: Workload {
                kind: if workload.is_empty() {
                    ""
                } else {
                    "Deployment"
                }
                .into(),
                name: workload.into(),
            },
        };
        for (on, want) in [
            (
                true,
                [
                    r#"kube_events_total{namespace="shop",kind="Pod",reason="BackOff",type="Warning",workload_kind="Deployment",workload="api"} 3"#,
                    r#"kube_events_total{namespace="shop",kind="Pod",reason="BackOff",type="Warning",workload_kind="",workload=""} 4"#,
                ],
            ),
            (
                false,
                [
                    r#"kube_events_total{namespace="shop",kind="Pod",reason="BackOff",type="Warning"} 7"#,
                    "# EOF",
                ],
            ),
        ] {
            let m = Metrics::with_event_series(10, on);
            let mut counters = EventCounters::new(&m);
            counters.add(&event("api"), 1, 1);
            counters.add(&event(""), 4, 1);
            counters.add(&event("api"), 2, 1);
            counters.expose(|_| true);
            let text = m.encode_classic();
            for line in want.iter().filter(|l| l.starts_with("kube")) {
                assert!(text.contains(line), "{on}: {line} in\n{text}");
            }
            assert_eq!(text.contains("workload"), on);
        }
    }

    /// Beyond the cap, new label sets share one `_overflow` series; label sets that have a
    /// series keep counting in it.
    #[test]
    fn label_sets_beyond_the_cap_share_the_overflow_series() {
        use crate::event::{EventType, ObjectRef};
        let m = Metrics::with_max_series(2);
        let mut counters = EventCounters::new(&m);
        let event = |reason: &str| Event {
            uid: "u".into(),
            namespace: "shop".into(),
            name: "n".into(),
            resource_version: "1".into(),
            regarding: ObjectRef {
                kind: "Pod".into(),
                ..ObjectRef::default()
            },
            reason: reason.into(),
            type_: EventType::Warning,
            message: String::new(),
            count: 1,
            first_seen: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
            source: String::new(),
            host: String::new(),
            reporting_instance: String::new(),
            action: String::new(),
            workload: crate::event::Workload::default(),
        };
        for (reason, n) in [("A", 1), ("B", 2), ("C", 3), ("D", 4), ("A", 5), ("C", 6)] {
            counters.add(&event(reason), n, 1);
        }
        assert_eq!(m.sample("kube_events_total", &[]), 0.0, "not durable yet");
        counters.expose(|generation| generation <= 1);
        let total = |reason| m.sample("kube_events_total", &[("reason", reason)]);
        assert_eq!((total("A"), total("B")), (6.0, 2.0));
        assert_eq!((total("C"), total("D")), (0.0, 0.0));
        assert_eq!(total(OVERFLOW), 13.0);
        assert_eq!(m.sample("kube_event_exporter_event_series", &[]), 2.0);
        assert_eq!(m.sample("kube_event_exporter_event_series_limit", &[]), 2.0);
        assert_eq!(
            m.sample("kube_event_exporter_event_series_overflow_total", &[]),
            13.0
        );
        // Three series in all: the exposition is bounded by the cap.
        let series = m
            .encode_classic()
            .lines()
            .filter(|l| l.starts_with("kube_events_total{"))
            .count();
        assert_eq!(series, 3);
    }

    #[test]
    fn samples_are_read_as_a_scrape_would() {
        let m = Metrics::new();
        m.watch_event(WatchEventType::Added);
        m.watch_event(WatchEventType::Added);
        m.archive_dropped(ArchiveDrop::QueueFull, 3);
        let q = m.alert_queue("am-0");
        q.post_failed("connect");
        assert_eq!(
            m.sample(
                "kube_event_exporter_watch_events_total",
                &[("type", "ADDED")]
            ),
            2.0
        );
        assert_eq!(
            m.sample(
                "kube_event_exporter_archive_dropped_total",
                &[("reason", "queue_full")]
            ),
            3.0
        );
        assert_eq!(
            m.sample(
                "kube_event_exporter_alert_post_failures_total",
                &[("alertmanager", "am-0"), ("reason", "connect")]
            ),
            1.0
        );
    }
}
