//! The one normalised event type: filled from core/v1 or events.k8s.io/v1 Event objects, used
//! by every stage after the source.

use jiff::Timestamp;
use k8s_openapi::api::{core::v1 as core, events::v1 as events};

/// Messages longer than this are cut at a character boundary and get `…` appended.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// The object an event is about (`involvedObject` / `regarding`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub api_version: String,
    pub field_path: String,
}

/// One Kubernetes Event object, as seen at one resourceVersion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `metadata.uid`; falls back to `<namespace>/<name>` for objects without one.
    pub uid: String,
    /// The Event object's own namespace (`kubectl get events -n`); Node events live in `default`.
    pub namespace: String,
    /// The Event object's name.
    pub name: String,
    pub resource_version: String,
    pub regarding: ObjectRef,
    pub reason: String,
    /// `Normal` or `Warning`; an absent type is `Normal`.
    pub type_: String,
    pub message: String,
    /// How often this has happened so far; at least 1.
    pub count: u64,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// The reporting component (`kubelet`, `default-scheduler`, …).
    pub source: String,
    /// The node or instance that reported it.
    pub host: String,
    pub reporting_instance: String,
    pub action: String,
}

impl Event {
    pub fn is_warning(&self) -> bool {
        self.type_ == "Warning"
    }

    /// Fills the event from a core/v1 Event; `observed` is the fallback for absent timestamps.
    pub fn from_core(ev: core::Event, observed: Timestamp) -> Self {
        let meta = ev.metadata;
        let series_count = ev.series.as_ref().and_then(|s| s.count);
        let series_last = ev.series.and_then(|s| s.last_observed_time).map(|t| t.0);
        let (first_seen, last_seen) = seen(
            ev.first_timestamp.map(|t| t.0),
            [ev.last_timestamp.map(|t| t.0), series_last],
            ev.event_time.map(|t| t.0),
            observed,
        );
        let source = ev.source.unwrap_or_default();
        let namespace = meta.namespace.unwrap_or_default();
        let name = meta.name.unwrap_or_default();
        Self {
            uid: uid_or_name(meta.uid, &namespace, &name),
            resource_version: meta.resource_version.unwrap_or_default(),
            regarding: object_ref(ev.involved_object),
            reason: ev.reason.unwrap_or_default(),
            type_: event_type(ev.type_),
            message: truncate_message(ev.message.unwrap_or_default()),
            count: first_positive([series_count, ev.count]),
            first_seen,
            last_seen,
            source: non_empty(source.component)
                .or(non_empty(ev.reporting_component))
                .unwrap_or_default(),
            host: non_empty(source.host)
                .or(non_empty(ev.reporting_instance.clone()))
                .unwrap_or_default(),
            reporting_instance: ev.reporting_instance.unwrap_or_default(),
            action: ev.action.unwrap_or_default(),
            namespace,
            name,
        }
    }

    /// Fills the event from an events.k8s.io/v1 Event.
    pub fn from_events_v1(ev: events::Event, observed: Timestamp) -> Self {
        let meta = ev.metadata;
        let series_count = ev.series.as_ref().map(|s| s.count);
        let series_last = ev.series.map(|s| s.last_observed_time.0);
        let (first_seen, last_seen) = seen(
            ev.deprecated_first_timestamp.map(|t| t.0),
            [ev.deprecated_last_timestamp.map(|t| t.0), series_last],
            ev.event_time.map(|t| t.0),
            observed,
        );
        let deprecated_source = ev.deprecated_source.unwrap_or_default();
        let namespace = meta.namespace.unwrap_or_default();
        let name = meta.name.unwrap_or_default();
        Self {
            uid: uid_or_name(meta.uid, &namespace, &name),
            resource_version: meta.resource_version.unwrap_or_default(),
            regarding: ev.regarding.map(object_ref).unwrap_or_default(),
            reason: ev.reason.unwrap_or_default(),
            type_: event_type(ev.type_),
            message: truncate_message(ev.note.unwrap_or_default()),
            count: first_positive([series_count, ev.deprecated_count]),
            first_seen,
            last_seen,
            source: non_empty(ev.reporting_controller)
                .or(non_empty(deprecated_source.component))
                .unwrap_or_default(),
            host: non_empty(deprecated_source.host)
                .or(non_empty(ev.reporting_instance.clone()))
                .unwrap_or_default(),
            reporting_instance: ev.reporting_instance.unwrap_or_default(),
            action: ev.action.unwrap_or_default(),
            namespace,
            name,
        }
    }
}

fn uid_or_name(uid: Option<String>, namespace: &str, name: &str) -> String {
    non_empty(uid).unwrap_or_else(|| format!("{namespace}/{name}"))
}

fn object_ref(r: core::ObjectReference) -> ObjectRef {
    ObjectRef {
        kind: r.kind.unwrap_or_default(),
        namespace: r.namespace.unwrap_or_default(),
        name: r.name.unwrap_or_default(),
        uid: r.uid.unwrap_or_default(),
        api_version: r.api_version.unwrap_or_default(),
        field_path: r.field_path.unwrap_or_default(),
    }
}

fn event_type(t: Option<String>) -> String {
    non_empty(t).unwrap_or_else(|| "Normal".to_owned())
}

/// The series count where there is one, else the deprecated count; counts below 1 (absent,
/// zero, negative) mean the event happened once. Both APIs pick alike, so one object yields
/// the same count through either.
fn first_positive(counts: [Option<i32>; 2]) -> u64 {
    counts
        .into_iter()
        .flatten()
        .find(|c| *c > 0)
        .map_or(1, |c| c.unsigned_abs().into())
}

/// First and last occurrence: the latest of the last-timestamp fields, the first timestamp,
/// each falling back to `eventTime` and then to when the exporter observed the object.
fn seen(
    first: Option<Timestamp>,
    lasts: [Option<Timestamp>; 2],
    event_time: Option<Timestamp>,
    observed: Timestamp,
) -> (Timestamp, Timestamp) {
    let last = lasts
        .into_iter()
        .flatten()
        .max()
        .or(event_time)
        .or(first)
        .unwrap_or(observed);
    let first = first.or(event_time).unwrap_or(last).min(last);
    (first, last)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Cuts `message` to at most [`MAX_MESSAGE_BYTES`] plus the `…`, at a character boundary.
pub fn truncate_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn core_event_fields() {
        let ev: core::Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-1.17f", "namespace": "shop", "uid": "u1", "resourceVersion": "42"},
            "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": "shop", "uid": "p1"},
            "reason": "BackOff", "type": "Warning", "message": "Back-off restarting failed container",
            "count": 7, "firstTimestamp": "2026-11-29T10:00:00Z", "lastTimestamp": "2026-11-29T10:14:00Z",
            "source": {"component": "kubelet", "host": "node-3"}
        }))
        .unwrap();
        let e = Event::from_core(ev, ts("2026-11-29T12:00:00Z"));
        assert_eq!(e.uid, "u1");
        assert_eq!(e.namespace, "shop");
        assert_eq!(e.resource_version, "42");
        assert_eq!(e.regarding.kind, "Pod");
        assert_eq!(e.regarding.name, "api-1");
        assert_eq!(e.count, 7);
        assert!(e.is_warning());
        assert_eq!(e.first_seen, ts("2026-11-29T10:00:00Z"));
        assert_eq!(e.last_seen, ts("2026-11-29T10:14:00Z"));
        assert_eq!((e.source.as_str(), e.host.as_str()), ("kubelet", "node-3"));
    }

    #[test]
    fn events_v1_fields_and_series() {
        let ev: events::Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1.17f", "namespace": "default", "uid": "u2", "resourceVersion": "43"},
            "regarding": {"kind": "Node", "name": "node-1"},
            "reason": "NodeNotReady", "note": "Node is not ready", "type": "Warning",
            "eventTime": "2026-11-29T09:00:00.000001Z",
            "series": {"count": 4, "lastObservedTime": "2026-11-29T09:30:00.000000Z"},
            "reportingController": "node-controller", "reportingInstance": "cp-1"
        }))
        .unwrap();
        let e = Event::from_events_v1(ev, ts("2026-11-29T12:00:00Z"));
        assert_eq!(e.count, 4);
        assert_eq!(e.namespace, "default");
        assert_eq!(e.message, "Node is not ready");
        assert_eq!(e.first_seen, ts("2026-11-29T09:00:00.000001Z"));
        assert_eq!(e.last_seen, ts("2026-11-29T09:30:00Z"));
        assert_eq!(e.source, "node-controller");
        assert_eq!(e.host, "cp-1");
    }

    #[test]
    fn events_v1_deprecated_fields() {
        let ev: events::Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "x", "namespace": "ns", "uid": "u3"},
            "reason": "Pulled", "eventTime": null,
            "deprecatedCount": 3, "deprecatedFirstTimestamp": "2026-11-29T08:00:00Z",
            "deprecatedLastTimestamp": "2026-11-29T08:05:00Z",
            "deprecatedSource": {"component": "kubelet", "host": "node-9"}
        }))
        .unwrap();
        let e = Event::from_events_v1(ev, ts("2026-11-29T12:00:00Z"));
        assert_eq!(e.count, 3);
        assert_eq!(e.type_, "Normal");
        assert_eq!(e.first_seen, ts("2026-11-29T08:00:00Z"));
        assert_eq!(e.last_seen, ts("2026-11-29T08:05:00Z"));
        assert_eq!((e.source.as_str(), e.host.as_str()), ("kubelet", "node-9"));
        assert_eq!(e.regarding, ObjectRef::default());
    }

    #[test]
    fn missing_fields_fall_back() {
        let ev: core::Event = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bare", "namespace": "ns"}, "involvedObject": {}, "count": -2
        }))
        .unwrap();
        let now = ts("2026-11-29T12:00:00Z");
        let e = Event::from_core(ev, now);
        assert_eq!(e.uid, "ns/bare");
        assert_eq!(e.count, 1);
        assert_eq!((e.first_seen, e.last_seen), (now, now));
        assert_eq!(e.type_, "Normal");
    }

    #[test]
    fn long_messages_are_cut_at_a_char_boundary() {
        let short = "é".repeat(100);
        assert_eq!(truncate_message(short.clone()), short);
        let long = "é".repeat(3000); // 6000 bytes
        let cut = truncate_message(long);
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(truncate_message(exact.clone()), exact);
    }
}
