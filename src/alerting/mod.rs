//! Alerting: occurrences that the rules say should alert come in from the pipeline; Alertmanager
//! alerts go out, one per (involved object, reason), to every configured Alertmanager through
//! its own bounded queue and delivery task ([`delivery`]). Active alerts are re-posted about
//! once a resend interval until they end, so a restarted Alertmanager gets them all back.

pub mod delivery;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use jiff::Timestamp;
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    event::Event,
    metrics::Metrics,
    rules::{Decision, Rules},
    util::{hash::stable_hash, joined::JoinedKeyMap},
};
use delivery::{Deliverer, DeliveryQueue};

/// Longest label value sent; longer values (pathological object names) are cut.
const MAX_LABEL_VALUE: usize = 1024;

/// One Alertmanager to post to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alertmanager {
    /// How it is named in metrics and logs: its URL without credentials.
    pub name: String,
    /// Its `POST /api/v2/alerts` endpoint.
    pub endpoint: reqwest::Url,
}

/// Where alerts go, how they are built and kept alive.
#[derive(Clone, Debug)]
pub struct AlertSettings {
    /// Every one gets every alert.
    pub alertmanagers: Vec<Alertmanager>,
    /// Alert updates that may wait per Alertmanager.
    pub queue_size: usize,
    /// An alert stays firing this long after its last occurrence.
    pub resolve_after: Duration,
    /// Active alerts are re-posted this often.
    pub resend_interval: Duration,
    /// `--alert-label`s, on every alert.
    pub static_labels: BTreeMap<String, String>,
    /// How users reach the exporter: `generatorURL` is its history page at `/`, filtered to
    /// the alert's object.
    pub external_url: String,
}

/// An alert as Alertmanager's `POST /api/v2/alerts` takes it. What stays the same from one
/// occurrence to the next (labels, `generatorURL`) is shared, not rebuilt.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PostableAlert {
    pub labels: Arc<BTreeMap<String, String>>,
    pub annotations: BTreeMap<&'static str, String>,
    #[serde(rename = "startsAt")]
    pub starts_at: Timestamp,
    #[serde(rename = "endsAt")]
    pub ends_at: Timestamp,
    #[serde(rename = "generatorURL")]
    pub generator_url: Arc<str>,
    /// Identity within the exporter: a hash of the labels, for coalescing queued updates.
    #[serde(skip)]
    pub key: u64,
}

#[derive(Debug)]
struct Active {
    alert: Arc<PostableAlert>,
    /// The time of the occurrence the annotations describe.
    last_seen: Timestamp,
    /// What the rules decided for it: the same decision keeps the labels.
    decision: Decision,
}

/// The active alerts and the queues of every Alertmanager.
pub struct Alerting {
    /// One per involved object and reason: keyed by namespace, kind, name and reason.
    active: Mutex<JoinedKeyMap<Active>>,
    queues: Vec<Arc<DeliveryQueue>>,
    settings: AlertSettings,
    metrics: Arc<Metrics>,
}

/// Label values as Alertmanager takes them: no control characters, bounded length.
fn label_value(s: &str) -> String {
    let mut v: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if v.len() > MAX_LABEL_VALUE {
        let mut end = MAX_LABEL_VALUE;
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.truncate(end);
    }
    v
}

fn labels_key(labels: &BTreeMap<String, String>) -> u64 {
    stable_hash(labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
}

/// Percent-encodes a query parameter value.
fn encode_param(s: &str) -> String {
    serde_urlencoded::to_string([("v", s)])
        .map(|q| q.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

impl Alerting {
    pub fn new(
        settings: AlertSettings,
        queues: Vec<Arc<DeliveryQueue>>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            active: Mutex::new(JoinedKeyMap::default()),
            queues,
            settings,
            metrics,
        }
    }

    /// Alerting with a queue per configured Alertmanager, and the delivery tasks that drain
    /// them (one each, so a dead Alertmanager slows no other).
    pub fn with_deliverers(
        settings: AlertSettings,
        metrics: Arc<Metrics>,
    ) -> Result<(Arc<Self>, Vec<Deliverer>), reqwest::Error> {
        crate::util::tls::ensure_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("kube-event-exporter/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut queues = Vec::new();
        let mut deliverers = Vec::new();
        for am in &settings.alertmanagers {
            let queue = Arc::new(DeliveryQueue::new(&am.name, settings.queue_size, &metrics));
            deliverers.push(Deliverer::new(
                queue.clone(),
                am.endpoint.clone(),
                client.clone(),
            ));
            queues.push(queue);
        }
        info!(
            alertmanagers = settings.alertmanagers.len(),
            "Forwarding alerts."
        );
        Ok((Arc::new(Self::new(settings, queues, metrics)), deliverers))
    }

    /// Re-posts the alerts of `events` (archived events that may still be active after a
    /// restart) as the rules decide, unchanged: no new occurrence is invented.
    pub fn restore(&self, events: impl IntoIterator<Item = Event>, rules: &Rules) {
        for event in events {
            let decision = rules.decide(&event);
            if decision.alert && !decision.drop {
                self.occurrence(&event, &decision);
            }
        }
    }

    /// The queues of every Alertmanager, in configuration order.
    pub fn queues(&self) -> &[Arc<DeliveryQueue>] {
        &self.queues
    }

    /// How long an alert stays firing after its last occurrence.
    pub fn resolve_after(&self) -> Duration {
        self.settings.resolve_after
    }

    /// The labels and `generatorURL` of the alert for `e`, as decided by `d`.
    fn identity(&self, e: &Event, d: &Decision) -> (Arc<BTreeMap<String, String>>, Arc<str>) {
        let mut labels = self.settings.static_labels.clone();
        labels.extend(d.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        let identity = [
            ("alertname", d.alertname.as_deref().unwrap_or(&e.reason)),
            ("alerttype", "event"),
            ("namespace", &e.namespace),
            ("kind", &e.regarding.kind),
            ("name", &e.regarding.name),
            ("reason", &e.reason),
            ("severity", d.severity.as_deref().unwrap_or("warning")),
        ];
        for (k, v) in identity {
            labels.insert(k.to_owned(), label_value(v));
        }
        // An object's workload never changes, so these keep the alert's identity.
        if e.workload.is_known() {
            labels.insert("workload_kind".to_owned(), label_value(&e.workload.kind));
            labels.insert("workload".to_owned(), label_value(&e.workload.name));
        }
        let generator_url = format!(
            "{}/?namespace={}&kind={}&name={}",
            self.settings.external_url.trim_end_matches('/'),
            encode_param(&e.namespace),
            encode_param(&e.regarding.kind),
            encode_param(&e.regarding.name)
        );
        (Arc::new(labels), generator_url.into())
    }

    /// What the annotations say of `e`, the latest occurrence of its (object, reason).
    fn annotations(e: &Event) -> BTreeMap<&'static str, String> {
        let object = if e.regarding.name.is_empty() {
            e.regarding.kind.clone()
        } else {
            format!("{} {}/{}", e.regarding.kind, e.namespace, e.regarding.name)
        };
        BTreeMap::from([
            ("summary", format!("{object}: {}", e.reason)),
            ("message", e.message.clone()),
            ("count", e.count.to_string()),
            ("first_seen", e.first_seen.to_string()),
            ("last_seen", e.last_seen.to_string()),
            ("source", e.source.clone()),
            ("event_uid", e.uid.clone()),
        ])
    }

    /// A new occurrence of `e` that the rules say alerts: create or update its alert and post it
    /// to every Alertmanager. An occurrence already older than the resolve time is skipped.
    pub fn occurrence(&self, e: &Event, d: &Decision) {
        let Ok(resolve_after) = jiff::SignedDuration::try_from(self.settings.resolve_after) else {
            return;
        };
        let ends_at = e
            .last_seen
            .saturating_add(resolve_after)
            .unwrap_or(Timestamp::MAX);
        if ends_at <= Timestamp::now() {
            self.metrics.alert_skipped_stale();
            return;
        }
        let mut alerts = self.active.lock();
        let key = [
            e.namespace.as_str(),
            &e.regarding.kind,
            &e.regarding.name,
            &e.reason,
        ];
        let alert = if let Some(old) = alerts.get_mut(key) {
            let mut alert = (*old.alert).clone();
            // Several Event objects can map to one alert: the newest describes it, the
            // earliest starts it.
            alert.starts_at = alert.starts_at.min(e.first_seen);
            alert.ends_at = alert.ends_at.max(ends_at);
            if e.last_seen >= old.last_seen {
                if *d != old.decision {
                    (alert.labels, alert.generator_url) = self.identity(e, d);
                    alert.key = labels_key(&alert.labels);
                    old.decision = d.clone();
                }
                alert.annotations = Self::annotations(e);
                old.last_seen = e.last_seen;
            }
            let alert = Arc::new(alert);
            old.alert = alert.clone();
            alert
        } else {
            let (labels, generator_url) = self.identity(e, d);
            let alert = Arc::new(PostableAlert {
                key: labels_key(&labels),
                labels,
                annotations: Self::annotations(e),
                starts_at: e.first_seen,
                ends_at,
                generator_url,
            });
            let active = Active {
                alert: alert.clone(),
                last_seen: e.last_seen,
                decision: d.clone(),
            };
            alerts.get_or_insert_with(key, || active);
            alert
        };
        self.metrics.alerts_active(alerts.len());
        drop(alerts);
        self.enqueue(&alert);
    }

    fn enqueue(&self, alert: &Arc<PostableAlert>) {
        for q in &self.queues {
            q.push(alert.clone());
        }
    }

    /// Drops alerts that have ended and re-posts the others.
    pub fn resend(&self) {
        let now = Timestamp::now();
        let mut active = self.active.lock();
        active.retain(|_, a| a.alert.ends_at > now);
        self.metrics.alerts_active(active.len());
        let alerts: Vec<Arc<PostableAlert>> = active.values().map(|a| a.alert.clone()).collect();
        drop(active);
        for alert in &alerts {
            self.enqueue(alert);
        }
    }

    /// Re-posts active alerts every resend interval until shutdown.
    pub async fn run_resender(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tick = tokio::time::interval(self.settings.resend_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => self.resend(),
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ObjectRef;

    fn settings() -> AlertSettings {
        AlertSettings {
            alertmanagers: Vec::new(),
            queue_size: 10,
            resolve_after: Duration::from_secs(900),
            resend_interval: Duration::from_secs(60),
            static_labels: BTreeMap::from([("cluster".to_owned(), "prod".to_owned())]),
            external_url: "http://kee.example:9102/".into(),
        }
    }

    fn ev(uid: &str, count: u64, first: Timestamp, last: Timestamp) -> Event {
        Event {
            uid: uid.into(),
            namespace: "shop".into(),
            name: format!("api-1.{uid}"),
            resource_version: String::new(),
            regarding: ObjectRef {
                kind: "Pod".into(),
                name: "api-1".into(),
                namespace: "shop".into(),
                ..ObjectRef::default()
            },
            reason: "BackOff".into(),
            type_: crate::event::EventType::Warning,
            message: format!("back-off {uid}"),
            count,
            first_seen: first,
            last_seen: last,
            source: "kubelet".into(),
            host: "node-1".into(),
            reporting_instance: String::new(),
            action: String::new(),
            workload: crate::event::Workload::default(),
        }
    }

    fn decision() -> Decision {
        Decision {
            drop: false,
            alert: true,
            alertname: None,
            severity: None,
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn the_alert_carries_the_spec_labels_and_annotations() {
        let queue = Arc::new(DeliveryQueue::new("am", 10, &Metrics::new()));
        let a = Alerting::new(settings(), vec![queue.clone()], Arc::new(Metrics::new()));
        let now = Timestamp::now();
        let first = now - Duration::from_secs(600);
        a.occurrence(&ev("u1", 7, first, now), &decision());
        let alert = queue.take_batch(10).pop().unwrap();
        let l = |k: &str| alert.labels[k].as_str();
        assert_eq!(
            [
                l("alertname"),
                l("alerttype"),
                l("namespace"),
                l("kind"),
                l("name"),
                l("reason"),
                l("severity"),
                l("cluster")
            ],
            [
                "BackOff", "event", "shop", "Pod", "api-1", "BackOff", "warning", "prod"
            ]
        );
        assert_eq!(
            alert.labels.len(),
            8,
            "nothing that changes between occurrences"
        );
        assert_eq!(alert.annotations["summary"], "Pod shop/api-1: BackOff");
        assert_eq!(alert.annotations["count"], "7");
        assert_eq!(alert.annotations["event_uid"], "u1");
        assert_eq!(alert.starts_at, first);
        assert_eq!(alert.ends_at, now + Duration::from_secs(900));
        assert_eq!(
            &*alert.generator_url,
            "http://kee.example:9102/?namespace=shop&kind=Pod&name=api-1"
        );
    }

    #[test]
    fn several_events_make_one_alert_described_by_the_newest() {
        let queue = Arc::new(DeliveryQueue::new("am", 10, &Metrics::new()));
        let a = Alerting::new(settings(), vec![queue.clone()], Arc::new(Metrics::new()));
        let now = Timestamp::now();
        let early = now - Duration::from_secs(800);
        a.occurrence(
            &ev("new", 3, now - Duration::from_secs(100), now),
            &decision(),
        );
        // An older Event object for the same pod and reason: starts the alert earlier, but
        // does not replace the newest description.
        a.occurrence(
            &ev("old", 9, early, now - Duration::from_secs(700)),
            &decision(),
        );
        let batch = queue.take_batch(10);
        assert_eq!(batch.len(), 1, "coalesced in the queue");
        let alert = &batch[0];
        assert_eq!(alert.starts_at, early);
        assert_eq!(alert.annotations["event_uid"], "new");
        assert_eq!(alert.annotations["count"], "3");
    }

    #[test]
    fn updates_share_the_labels_until_the_rules_decide_otherwise() {
        let queue = Arc::new(DeliveryQueue::new("am", 10, &Metrics::new()));
        let a = Alerting::new(settings(), vec![queue.clone()], Arc::new(Metrics::new()));
        let now = Timestamp::now();
        let first = now - Duration::from_secs(100);
        let mut critical = decision();
        critical.severity = Some("critical".into());
        let mut posted = Vec::new();
        for (count, last, d) in [
            (1, first, decision()),
            (2, now, decision()),
            (3, now + Duration::from_secs(1), critical),
        ] {
            a.occurrence(&ev("u", count, first, last), &d);
            posted.extend(queue.take_batch(10));
        }
        assert_eq!(posted.len(), 3);
        assert!(Arc::ptr_eq(&posted[0].labels, &posted[1].labels));
        assert_eq!(posted[1].annotations["count"], "2");
        assert_eq!(posted[2].labels["severity"], "critical");
        assert_ne!(posted[2].key, posted[1].key, "a new label set");
        assert_eq!(posted[2].starts_at, first);
    }

    #[test]
    fn stale_occurrences_are_skipped_and_ended_alerts_dropped() {
        let metrics = Arc::new(Metrics::new());
        let queue = Arc::new(DeliveryQueue::new("am", 10, &metrics));
        let mut s = settings();
        s.resolve_after = Duration::from_secs(60);
        let a = Alerting::new(s, vec![queue.clone()], metrics.clone());
        let now = Timestamp::now();
        a.occurrence(
            &ev(
                "u",
                1,
                now - Duration::from_secs(120),
                now - Duration::from_secs(61),
            ),
            &decision(),
        );
        assert!(queue.take_batch(10).is_empty());
        assert_eq!(
            metrics.sample(
                "kube_event_exporter_alerts_skipped_total",
                &[("reason", "stale")]
            ),
            1.0
        );
        a.occurrence(&ev("v", 1, now, now), &decision());
        a.resend();
        assert_eq!(queue.take_batch(10).len(), 1, "active alerts are re-posted");
    }

    #[test]
    fn odd_label_values_are_made_safe() {
        assert_eq!(label_value("a\nb\u{7}c"), "a b c");
        assert_eq!(label_value(&"é".repeat(600)).len(), 1024);
    }
}
