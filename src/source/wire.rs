//! The lean decoder of Event objects as the API server sends them: one pass over the JSON that
//! keeps only the fields the exporter uses (borrowing the text where it has no escapes) and
//! skips the rest, `managedFields` included, without building it. Both API shapes share one
//! struct; their field names differ where their meaning does.

use std::borrow::Cow;

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, de};
use serde_json::value::RawValue;

use crate::{
    event::{
        Event, EventType, ObjectRef, Workload, first_positive, non_empty, seen, truncate_message,
    },
    metrics::WatchEventType,
};

/// A JSON string, borrowed from the input unless it had escapes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An RFC 3339 timestamp (`Time` or `MicroTime`), parsed as it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub Timestamp);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?;
        s.0.parse()
            .map(Time)
            .map_err(|e| de::Error::custom(format_args!("invalid timestamp {:?}: {e}", s.0)))
    }
}

/// An event's `type`: `Normal` or `Warning`, as the API server validates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Type(EventType);

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?;
        match s.0.as_ref() {
            // An empty type is an absent one.
            "" => Ok(Type(EventType::Normal)),
            other => other.parse().map(Type).map_err(de::Error::custom),
        }
    }
}

pub(super) fn owned(s: Option<Str<'_>>) -> String {
    s.map(|s| s.0.into_owned()).unwrap_or_default()
}

pub(super) fn owned_non_empty(s: Option<Str<'_>>) -> Option<String> {
    non_empty(s.map(|s| s.0.into_owned()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawMeta<'a> {
    #[serde(borrow)]
    pub name: Option<Str<'a>>,
    #[serde(borrow)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow)]
    pub uid: Option<Str<'a>>,
    #[serde(borrow)]
    pub resource_version: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawRef<'a> {
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    uid: Option<Str<'a>>,
    #[serde(borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow)]
    field_path: Option<Str<'a>>,
}

impl RawRef<'_> {
    fn into_ref(self) -> ObjectRef {
        ObjectRef {
            kind: owned(self.kind),
            namespace: owned(self.namespace),
            name: owned(self.name),
            uid: owned(self.uid),
            api_version: owned(self.api_version),
            field_path: owned(self.field_path),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSource<'a> {
    #[serde(borrow)]
    component: Option<Str<'a>>,
    #[serde(borrow)]
    host: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct RawSeries {
    count: Option<i64>,
    last_observed_time: Option<Time>,
}

/// An Event object of either API (or the `Status` of a watch `ERROR`), with only the fields the
/// exporter reads.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RawEvent<'a> {
    #[serde(borrow)]
    pub kind: Option<Str<'a>>,
    #[serde(borrow)]
    pub api_version: Option<Str<'a>>,
    #[serde(borrow)]
    pub metadata: Option<RawMeta<'a>>,
    // Both APIs.
    #[serde(borrow)]
    reason: Option<Str<'a>>,
    #[serde(rename = "type")]
    type_: Option<Type>,
    event_time: Option<Time>,
    series: Option<RawSeries>,
    #[serde(borrow)]
    action: Option<Str<'a>>,
    #[serde(borrow)]
    reporting_instance: Option<Str<'a>>,
    // core/v1 (`message` is also a Status's).
    #[serde(borrow)]
    involved_object: Option<RawRef<'a>>,
    #[serde(borrow)]
    pub message: Option<Str<'a>>,
    #[serde(borrow)]
    source: Option<RawSource<'a>>,
    first_timestamp: Option<Time>,
    last_timestamp: Option<Time>,
    count: Option<i64>,
    #[serde(borrow)]
    reporting_component: Option<Str<'a>>,
    // events.k8s.io/v1.
    #[serde(borrow)]
    pub regarding: Option<RawRef<'a>>,
    #[serde(borrow)]
    pub note: Option<Str<'a>>,
    #[serde(borrow)]
    reporting_controller: Option<Str<'a>>,
    #[serde(borrow)]
    deprecated_source: Option<RawSource<'a>>,
    deprecated_first_timestamp: Option<Time>,
    deprecated_last_timestamp: Option<Time>,
    deprecated_count: Option<i64>,
    // A Status.
    pub code: Option<i64>,
}

/// Which API an Event object came from: their fallbacks differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    CoreV1,
    EventsV1,
}

impl RawEvent<'_> {
    /// Whether it has a non-empty `metadata.uid` or `metadata.name`.
    pub fn has_identity(&self) -> bool {
        self.metadata.as_ref().is_some_and(|m| {
            [&m.uid, &m.name]
                .into_iter()
                .any(|s| s.as_ref().is_some_and(|s| !s.0.is_empty()))
        })
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.metadata
            .as_ref()
            .and_then(|m| m.resource_version.as_ref())
            .map(|s| s.0.as_ref())
    }

    /// The normalised event; `observed` is the fallback for absent timestamps.
    pub fn into_event(self, shape: Shape, observed: Timestamp) -> Event {
        let meta = self.metadata.unwrap_or_default();
        let namespace = owned(meta.namespace);
        let name = owned(meta.name);
        let uid = owned_non_empty(meta.uid).unwrap_or_else(|| format!("{namespace}/{name}"));
        let series_count = self.series.as_ref().and_then(|s| s.count);
        let series_last = self.series.and_then(|s| s.last_observed_time).map(|t| t.0);
        let time = |t: Option<Time>| t.map(|t| t.0);
        let (first, last, count, message, regarding, source) = match shape {
            Shape::CoreV1 => (
                self.first_timestamp,
                self.last_timestamp,
                self.count,
                self.message,
                self.involved_object,
                self.source,
            ),
            Shape::EventsV1 => (
                self.deprecated_first_timestamp,
                self.deprecated_last_timestamp,
                self.deprecated_count,
                self.note,
                self.regarding,
                self.deprecated_source,
            ),
        };
        let (first_seen, last_seen) = seen(
            time(first),
            [time(last), series_last],
            time(self.event_time),
            observed,
        );
        let source = source.unwrap_or_default();
        let component = owned_non_empty(source.component);
        let reporter = match shape {
            Shape::CoreV1 => component.or_else(|| owned_non_empty(self.reporting_component)),
            Shape::EventsV1 => owned_non_empty(self.reporting_controller).or(component),
        };
        let reporting_instance = owned(self.reporting_instance);
        Event {
            uid,
            resource_version: owned(meta.resource_version),
            regarding: regarding.map(RawRef::into_ref).unwrap_or_default(),
            reason: owned(self.reason),
            type_: self.type_.map_or(EventType::Normal, |t| t.0),
            message: truncate_message(owned(message)),
            count: first_positive([series_count, count]),
            first_seen,
            last_seen,
            source: reporter.unwrap_or_default(),
            host: owned_non_empty(source.host).unwrap_or_else(|| reporting_instance.clone()),
            reporting_instance,
            action: owned(self.action),
            workload: Workload::default(),
            namespace,
            name,
        }
    }
}

/// One line of a watch stream, decoded: an Event, or another object (see
/// [`super::objects`]).
#[derive(Debug)]
pub enum WatchItem<T = Event> {
    Added(T),
    Modified(T),
    Deleted(T),
    Bookmark {
        resource_version: String,
    },
    /// An `ERROR` event: the Status's code and message.
    Error {
        code: i64,
        message: String,
    },
}

impl<T> WatchItem<T> {
    /// The same item with its object mapped.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> WatchItem<U> {
        match self {
            Self::Added(o) => WatchItem::Added(f(o)),
            Self::Modified(o) => WatchItem::Modified(f(o)),
            Self::Deleted(o) => WatchItem::Deleted(f(o)),
            Self::Bookmark { resource_version } => WatchItem::Bookmark { resource_version },
            Self::Error { code, message } => WatchItem::Error { code, message },
        }
    }

    /// The watch event type, for `watch_events_total{type}`.
    pub fn kind(&self) -> WatchEventType {
        match self {
            Self::Added(_) => WatchEventType::Added,
            Self::Modified(_) => WatchEventType::Modified,
            Self::Deleted(_) => WatchEventType::Deleted,
            Self::Bookmark { .. } => WatchEventType::Bookmark,
            Self::Error { .. } => WatchEventType::Error,
        }
    }
}

#[derive(Deserialize)]
struct RawWatchLine<'a> {
    #[serde(borrow, rename = "type")]
    type_: Str<'a>,
    #[serde(borrow)]
    object: RawEvent<'a>,
}

/// Decodes one watch line (`{"type": …, "object": …}`) of an Event watch of `shape`.
pub fn watch_line(line: &[u8], shape: Shape, observed: Timestamp) -> serde_json::Result<WatchItem> {
    let raw: RawWatchLine = serde_json::from_slice(line)?;
    let object = raw.object;
    let resource_version = || object.resource_version().unwrap_or_default().to_owned();
    Ok(match raw.type_.0.as_ref() {
        "ADDED" => WatchItem::Added(object.into_event(shape, observed)),
        "MODIFIED" => WatchItem::Modified(object.into_event(shape, observed)),
        "DELETED" => WatchItem::Deleted(object.into_event(shape, observed)),
        "BOOKMARK" => WatchItem::Bookmark {
            resource_version: resource_version(),
        },
        "ERROR" => WatchItem::Error {
            code: object.code.unwrap_or(0),
            message: owned(object.message),
        },
        other => {
            return Err(de::Error::custom(format_args!(
                "unknown watch event type {other:?}"
            )));
        }
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct ListMeta<'a> {
    #[serde(borrow)]
    resource_version: Option<Str<'a>>,
    #[serde(borrow, rename = "continue")]
    continue_: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct RawList<'a> {
    #[serde(borrow, default)]
    metadata: ListMeta<'a>,
    #[serde(borrow, default)]
    items: Vec<&'a RawValue>,
}

/// One page of a list: its items (each decoded alone, so one bad item costs only itself), the
/// list's resourceVersion and the continue token, if there is a next page.
pub struct ListPage<T = Event> {
    pub items: Vec<serde_json::Result<T>>,
    pub resource_version: String,
    pub continue_: Option<String>,
}

pub fn list_page(text: &[u8], shape: Shape, observed: Timestamp) -> serde_json::Result<ListPage> {
    let raw: RawList = serde_json::from_slice(text)?;
    let items = raw
        .items
        .iter()
        .map(|item| {
            serde_json::from_str::<RawEvent>(item.get()).map(|e| e.into_event(shape, observed))
        })
        .collect();
    Ok(ListPage {
        items,
        resource_version: owned(raw.metadata.resource_version),
        continue_: owned_non_empty(raw.metadata.continue_),
    })
}

/// Decodes one list page of objects other than Events, each item with `decode`.
pub fn object_list_page<T>(
    text: &[u8],
    decode: impl Fn(&str) -> serde_json::Result<T>,
) -> serde_json::Result<ListPage<T>> {
    let raw: RawList = serde_json::from_slice(text)?;
    Ok(ListPage {
        items: raw.items.iter().map(|item| decode(item.get())).collect(),
        resource_version: owned(raw.metadata.resource_version),
        continue_: owned_non_empty(raw.metadata.continue_),
    })
}

/// The keys whose array values the Event decoder never reads, at any depth.
pub const EVENT_UNREAD: &[&str] = &["managedFields"];

/// Cuts the content out of every array under one of `keys` in `json`, in place and in one pass:
/// arrays a decoder never reads, such as `managedFields`, up to half of an object's bytes (2.9
/// KB of a typical Pod's 6.1) and most of its tokens. They are skipped here with a byte loop,
/// not token by token by the decoder.
///
/// A key is recognised only where the API server's compact JSON puts one: `"key":[` right after
/// `{` or `,`. Inside a string those bytes cannot occur (its quotes would be escaped), so
/// nothing else is ever cut. An array that does not end is left as it is, with all that follows,
/// for the decoder to report; what is inside an array that ends is not checked.
pub fn strip_arrays(json: &mut Vec<u8>, keys: &[&str]) {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\":["));
    let (mut read, mut write, mut from) = (0, 0, 0);
    while let Some(found) = FINDER.find(&json[from..]) {
        // `quote` closes the key; the array's content starts at `open`.
        let quote = from + found;
        let open = quote + 3;
        from = open;
        let key = &json[..quote];
        let unread = keys.iter().any(|k| {
            let n = k.len();
            key.ends_with(k.as_bytes())
                && key.len() >= n + 2
                && key[key.len() - n - 1] == b'"'
                && matches!(key[key.len() - n - 2], b'{' | b',')
        });
        if !unread {
            continue;
        }
        let Some(close) = array_end(json, open) else {
            break;
        };
        // Kept: everything up to and including the `[`; then on from the `]`.
        if read != write {
            json.copy_within(read..open, write);
        }
        write += open - read;
        read = close;
        from = close;
    }
    if read != write {
        json.copy_within(read.., write);
        json.truncate(write + json.len() - read);
    }
}

/// Where the array whose content starts at `from` ends (the index of its `]`), if it does.
fn array_end(json: &[u8], from: usize) -> Option<usize> {
    let mut depth = 1u32;
    let mut i = from;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => {
                i += 1;
                loop {
                    match *json.get(i)? {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' => {
                depth -= 1;
                if depth == 0 {
                    return (b == b']').then_some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn event(json: &serde_json::Value, shape: Shape) -> Event {
        let text = json.to_string();
        serde_json::from_str::<RawEvent>(&text)
            .unwrap()
            .into_event(shape, ts("2026-11-29T12:00:00Z"))
    }

    #[test]
    fn core_event_fields() {
        let e = event(
            &serde_json::json!({
                "metadata": {"name": "api-1.17f", "namespace": "shop", "uid": "u1", "resourceVersion": "42",
                             "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:count": {}}}]},
                "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": "shop", "uid": "p1"},
                "reason": "BackOff", "type": "Warning", "message": "Back-off \"restarting\" failed container",
                "count": 7, "firstTimestamp": "2026-11-29T10:00:00Z", "lastTimestamp": "2026-11-29T10:14:00Z",
                "source": {"component": "kubelet", "host": "node-3"}, "eventTime": null
            }),
            Shape::CoreV1,
        );
        assert_eq!(e.uid, "u1");
        assert_eq!(e.namespace, "shop");
        assert_eq!(e.resource_version, "42");
        assert_eq!(e.regarding.kind, "Pod");
        assert_eq!(e.regarding.name, "api-1");
        assert_eq!(e.message, "Back-off \"restarting\" failed container");
        assert_eq!(e.count, 7);
        assert!(e.is_warning());
        assert_eq!(e.first_seen, ts("2026-11-29T10:00:00Z"));
        assert_eq!(e.last_seen, ts("2026-11-29T10:14:00Z"));
        assert_eq!((e.source.as_str(), e.host.as_str()), ("kubelet", "node-3"));
    }

    #[test]
    fn events_v1_fields_and_series() {
        let e = event(
            &serde_json::json!({
                "metadata": {"name": "n1.17f", "namespace": "default", "uid": "u2", "resourceVersion": "43"},
                "regarding": {"kind": "Node", "name": "node-1"},
                "reason": "NodeNotReady", "note": "Node is not ready", "type": "Warning",
                "eventTime": "2026-11-29T09:00:00.000001Z",
                "series": {"count": 4, "lastObservedTime": "2026-11-29T09:30:00.000000Z"},
                "reportingController": "node-controller", "reportingInstance": "cp-1"
            }),
            Shape::EventsV1,
        );
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
        let e = event(
            &serde_json::json!({
                "metadata": {"name": "x", "namespace": "ns", "uid": "u3"},
                "reason": "Pulled", "eventTime": null,
                "deprecatedCount": 3, "deprecatedFirstTimestamp": "2026-11-29T08:00:00Z",
                "deprecatedLastTimestamp": "2026-11-29T08:05:00Z",
                "deprecatedSource": {"component": "kubelet", "host": "node-9"}
            }),
            Shape::EventsV1,
        );
        assert_eq!(e.count, 3);
        assert_eq!(e.type_, EventType::Normal);
        assert_eq!(e.first_seen, ts("2026-11-29T08:00:00Z"));
        assert_eq!(e.last_seen, ts("2026-11-29T08:05:00Z"));
        assert_eq!((e.source.as_str(), e.host.as_str()), ("kubelet", "node-9"));
        assert_eq!(e.regarding, ObjectRef::default());
    }

    #[test]
    fn missing_fields_fall_back() {
        let e = event(
            &serde_json::json!({"metadata": {"name": "bare", "namespace": "ns"}, "involvedObject": {}, "count": -2}),
            Shape::CoreV1,
        );
        let now = ts("2026-11-29T12:00:00Z");
        assert_eq!(e.uid, "ns/bare");
        assert_eq!(e.count, 1);
        assert_eq!((e.first_seen, e.last_seen), (now, now));
        assert_eq!(e.type_, EventType::Normal);
    }

    #[test]
    fn wrong_types_and_bad_times_are_errors() {
        for bad in [
            r#"{"metadata": {"name": "x"}, "count": "many"}"#,
            r#"{"metadata": {"name": "x"}, "lastTimestamp": "yesterday"}"#,
            r#"{"metadata": {"name": 7}}"#,
            r#"{"metadata": {"name": "x"}, "type": "Info"}"#,
        ] {
            assert!(serde_json::from_str::<RawEvent>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn watch_lines() {
        let now = ts("2026-11-29T12:00:00Z");
        let line = br#"{"object":{"kind":"Event","metadata":{"name":"a","namespace":"n","uid":"u","resourceVersion":"7"},"reason":"Started"},"type":"MODIFIED"}"#;
        assert!(
            matches!(watch_line(line, Shape::CoreV1, now), Ok(WatchItem::Modified(e)) if e.uid == "u" && e.resource_version == "7")
        );
        let bookmark = br#"{"type":"BOOKMARK","object":{"kind":"Event","apiVersion":"v1","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}}"#;
        assert!(
            matches!(watch_line(bookmark, Shape::CoreV1, now), Ok(WatchItem::Bookmark { resource_version }) if resource_version == "12")
        );
        let error = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#;
        assert!(
            matches!(watch_line(error, Shape::EventsV1, now), Ok(WatchItem::Error { code: 410, message }) if message.starts_with("too old"))
        );
        assert!(watch_line(br#"{"type":"SOMETHING","object":{}}"#, Shape::CoreV1, now).is_err());
        assert!(
            watch_line(
                br#"{"type":"ADDED","object":{"count":[]}}"#,
                Shape::CoreV1,
                now
            )
            .is_err()
        );
    }

    fn stripped(json: &str) -> String {
        let mut bytes = json.as_bytes().to_vec();
        strip_arrays(&mut bytes, &["managedFields", "conditions"]);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn unread_arrays_are_cut_where_they_are_keys_only() {
        // Brackets and escaped quotes inside the arrays' strings; two objects in a list; keys
        // that only end like one of the keys, or are not among them.
        let list = r#"{"items":[{"metadata":{"managedFields":[{"f:a":{"k:{\"name\":\"]\"}":{}}},"\\"],"name":"a"}},{"metadata":{"name":"b","managedFields":[[],{}]},"conditions":[{"a":"]"}],"xconditions":[1],"x\"conditions":[2]}]}"#;
        assert_eq!(
            stripped(list),
            r#"{"items":[{"metadata":{"managedFields":[],"name":"a"}},{"metadata":{"name":"b","managedFields":[]},"conditions":[],"xconditions":[1],"x\"conditions":[2]}]}"#
        );
        for kept in [
            // In a string: its quotes are escaped.
            r#"{"message":"x,\"managedFields\":[1]"}"#,
            // Not compact, not an array, not closed, closed by the wrong bracket.
            r#"{"managedFields": [1]}"#,
            r#"{"managedFields":{"a":[1]}}"#,
            r#"{"managedFields":[1,"]"#,
            r#"{"managedFields":[1}"#,
            r#""managedFields":[1]"#,
        ] {
            assert_eq!(stripped(kept), kept);
        }
        // A damaged one ends the stripping; what follows is kept as it is.
        assert_eq!(
            stripped(r#"{"managedFields":[2],"a":{"managedFields":[1}"#),
            r#"{"managedFields":[],"a":{"managedFields":[1}"#
        );
    }

    #[test]
    fn list_pages_keep_good_items() {
        let now = ts("2026-11-29T12:00:00Z");
        let text = r#"{"kind":"EventList","apiVersion":"v1","metadata":{"resourceVersion":"99","continue":"abc"},
            "items":[{"metadata":{"name":"a","uid":"u1"}},{"metadata":{"name":"b"},"count":"x"},{"metadata":{"name":"c","uid":"u3"}}]}"#;
        let page = list_page(text.as_bytes(), Shape::CoreV1, now).unwrap();
        assert_eq!(page.resource_version, "99");
        assert_eq!(page.continue_.as_deref(), Some("abc"));
        let uids: Vec<_> = page
            .items
            .iter()
            .map(|i| i.as_ref().map(|e| e.uid.as_str()).ok())
            .collect();
        assert_eq!(uids, [Some("u1"), None, Some("u3")]);
        let last = list_page(
            br#"{"metadata":{"resourceVersion":"5","continue":""},"items":[]}"#,
            Shape::EventsV1,
            now,
        )
        .unwrap();
        assert_eq!(last.continue_, None);
    }
}
