//! Property tests of everything that reads outside input: the wire decoder (both API shapes,
//! watch lines and list pages), the replay formats, the archive's record encoding, the query
//! parser and its cursor, and the rules file. Two kinds of property: arbitrary input never
//! panics (a bad input is an `Err`), and decoding what was encoded gives it back.
//!
//! Generated Event objects come with the Event the decoder must make of them: the generator
//! spells one Event in the many ways the API server (or kubectl) may write it — a field empty or
//! absent, the count in `series.count` or the deprecated field, the times in whichever fields
//! carry them, every character escaped — following the table in docs/reference.md
//! ("Event fields"), so a spelling the decoder reads differently is a failure.

use std::{collections::BTreeMap, fmt::Write as _, num::NonZeroU32};

use jiff::{Timestamp, tz::Offset};
use kube_event_exporter::{
    archive::{
        query::{Cursor, Query},
        record,
    },
    event::{Event, EventType, MAX_MESSAGE_BYTES, ObjectRef},
    rules::{ArchiveSpec, Rules},
    source::{
        objects::{KubeObject, Resource},
        replay::{self, DecodeError, JsonSplitter, Piece, Record},
        wire::{self, Shape, WatchItem},
    },
};
use proptest::{
    collection::{btree_map, vec},
    option,
    prelude::*,
    sample::{Index, select},
    test_runner::FileFailurePersistence,
};
use serde_json::{Map, Value, json};

/// `cases` cases of a property, or `PROPTEST_CASES` of each for a longer search. A failure is
/// saved in `tests/properties.proptest-regressions` and tried first on the next runs.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            cases
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..default
    }
}

// ---------------------------------------------------------------------------------------------
// Strings and times

/// Characters that trip up encoders: quotes, escapes, controls, multi-byte and non-BMP
/// characters, YAML and matcher syntax.
const TRICKY: &[&str] = &[
    "\"", "\\", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é", "€", "😀", "\u{2028}", "/",
    "'", "{", "}", "[", "]", ":", "#", "-", " ", "=", "!", "~", ".", "*", "&", ",", "%",
];

/// Any string, biased towards the ones that break encoders.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[a-z0-9][a-z0-9.-]{0,15}",
        2 => "(?s).{0,16}",
        2 => vec(select(TRICKY), 0..8).prop_map(|v| v.concat()),
        1 => Just(String::new()),
    ]
    .boxed()
}

/// A non-empty string.
fn word() -> BoxedStrategy<String> {
    text()
        .prop_map(|s| if s.is_empty() { "x".to_owned() } else { s })
        .boxed()
}

/// A message: usually short, sometimes just around the 4 KiB cut in characters of every width,
/// so the cut falls inside a character.
fn message() -> BoxedStrategy<String> {
    prop_oneof![
        4 => text(),
        1 => (
            "[a-z]{0,3}",
            select(&['a', 'é', '€', '😀'][..]),
            MAX_MESSAGE_BYTES - 8..MAX_MESSAGE_BYTES + 12,
        )
            .prop_map(|(mut s, c, bytes)| {
                while s.len() < bytes {
                    s.push(c);
                }
                s
            }),
    ]
    .boxed()
}

/// What the decoder must make of `message`: at most 4 KiB, cut after the last whole character,
/// then `…`.
fn cut(message: &str) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message.to_owned();
    }
    let end = message
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .take_while(|end| *end <= MAX_MESSAGE_BYTES)
        .last()
        .unwrap_or(0);
    format!("{}…", &message[..end])
}

/// A time: whole seconds near today (as `Time` has them), or any microsecond (as `MicroTime`
/// has them) from 1970 to the year 9000.
fn time() -> BoxedStrategy<Timestamp> {
    prop_oneof![
        (1_700_000_000i64..1_900_000_000).prop_map(|s| Timestamp::from_second(s).unwrap()),
        (0i64..220_000_000_000_000_000).prop_map(|us| Timestamp::from_microsecond(us).unwrap()),
    ]
    .boxed()
}

/// RFC 3339 in UTC (`Z`), or at an offset of whole minutes (`+05:30`): the same instant.
fn spell_time(t: Timestamp, offset_minutes: i32) -> String {
    if offset_minutes == 0 {
        t.to_string()
    } else {
        let offset = Offset::from_seconds(offset_minutes * 60).unwrap();
        t.display_with_offset(offset).to_string()
    }
}

fn offset_minutes() -> BoxedStrategy<i32> {
    prop_oneof![3 => Just(0), 1 => -1439i32..=1439].boxed()
}

// ---------------------------------------------------------------------------------------------
// JSON text

/// How a JSON value is written out.
#[derive(Clone, Copy, Debug)]
enum Style {
    Compact,
    Pretty,
    /// Compact, with every character outside printable ASCII (and `/`) as a `\u` escape, in
    /// surrogate pairs where needed: no string can be borrowed from the input.
    Escaped,
}

fn style() -> impl Strategy<Value = Style> {
    prop_oneof![
        Just(Style::Compact),
        Just(Style::Pretty),
        Just(Style::Escaped)
    ]
}

fn to_json(v: &Value, style: Style) -> String {
    match style {
        Style::Compact => v.to_string(),
        Style::Pretty => serde_json::to_string_pretty(v).unwrap(),
        Style::Escaped => {
            let mut out = String::new();
            write_json(v, &|c| !matches!(c, ' '..='~') || c == '/', "", &mut out);
            out
        }
    }
}

/// Writes `v` as JSON with the characters that `escape` picks as `\u` escapes (in surrogate
/// pairs where needed), and `break_` after each opening bracket and comma.
fn write_json(v: &Value, escape: &dyn Fn(char) -> bool, break_: &str, out: &mut String) {
    match v {
        Value::String(s) => write_json_str(s, escape, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i > 0 { "," } else { "" });
                out.push_str(break_);
                write_json(item, escape, break_, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                out.push_str(if i > 0 { "," } else { "" });
                out.push_str(break_);
                write_json_str(k, escape, out);
                out.push(':');
                write_json(item, escape, break_, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn write_json_str(s: &str, escape: &dyn Fn(char) -> bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if escape(c) => out.push_str("\\/"),
            _ if escape(c) || c < ' ' => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    write!(out, "\\u{unit:04X}").unwrap();
                }
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Field names the decoders look for, and a few they don't.
const KEYS: &[&str] = &[
    "type",
    "object",
    "kind",
    "apiVersion",
    "metadata",
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "items",
    "continue",
    "involvedObject",
    "regarding",
    "reason",
    "message",
    "note",
    "count",
    "deprecatedCount",
    "series",
    "lastObservedTime",
    "eventTime",
    "firstTimestamp",
    "lastTimestamp",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "source",
    "deprecatedSource",
    "component",
    "host",
    "reportingComponent",
    "reportingController",
    "reportingInstance",
    "action",
    "code",
    "fieldPath",
    "managedFields",
    "other",
];

/// String values the decoders give meaning to, valid and nearly valid.
const WORDS: &[&str] = &[
    "ADDED",
    "MODIFIED",
    "DELETED",
    "BOOKMARK",
    "ERROR",
    "Event",
    "List",
    "EventList",
    "Status",
    "v1",
    "events.k8s.io/v1",
    "Normal",
    "Warning",
    "",
    "2026-11-29T10:00:00Z",
    "2026-11-29T10:00:00.000001Z",
    "2026-11-29T10:00:00.123456789+05:30",
    "-009999-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "0000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "1970-01-01T00:00:00+25:00",
    "2026-11-29",
];

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        select(WORDS).prop_map(Value::from),
        text().prop_map(Value::from),
    ]
}

/// Any JSON value, its object keys drawn mostly from the decoders' field names: so it gets past
/// the outer layers and puts wrong types and odd values where the decoders look.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec(
                (
                    prop_oneof![4 => select(KEYS).prop_map(str::to_owned), 1 => text()],
                    inner
                ),
                0..8
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// A JSON value shaped like what the decoders read: a watch line, a list or an object.
fn json_input() -> impl Strategy<Value = Value> {
    prop_oneof![
        json_value(),
        (
            select(&["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR", "OTHER"][..]),
            json_value()
        )
            .prop_map(|(t, object)| json!({"type": t, "object": object})),
        (json_value(), vec(json_value(), 0..4)).prop_map(
            |(metadata, items)| json!({"kind": "EventList", "metadata": metadata, "items": items})
        ),
    ]
}

/// An edit of some bytes: replace, insert, delete, or cut the rest off.
type Edit = (Index, u8, u8);

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    vec((any::<Index>(), any::<u8>(), 0u8..4), 1..4)
}

fn mutate(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for (at, byte, how) in edits {
        let i = at.index(bytes.len() + 1);
        match how {
            0 if i < bytes.len() => bytes[i] = *byte,
            1 => bytes.insert(i, *byte),
            2 if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => bytes.truncate(i),
        }
    }
    bytes
}

// ---------------------------------------------------------------------------------------------
// Generated Event objects

/// The random choices behind one Event object.
#[allow(
    clippy::struct_excessive_bools,
    reason = "each is an independent coin toss"
)]
#[derive(Clone, Debug)]
struct Draw {
    namespace: String,
    name: String,
    /// `None`: no uid (absent or empty), so the uid is `<namespace>/<name>`.
    uid: Option<String>,
    resource_version: String,
    regarding: ObjectRef,
    reason: String,
    warning: bool,
    /// How `Normal` is written: `"Normal"`, `""` or not at all.
    normal_spelling: u8,
    message: String,
    action: String,
    count: u64,
    count_spelling: u8,
    /// A count in the field that `series.count` overrides, or a non-positive one.
    stale_count: i64,
    times: (Timestamp, Timestamp, Timestamp),
    time_spelling: u8,
    offsets: (i32, i32),
    source: String,
    /// The reporter in the field read first, else in its fallback.
    source_primary: bool,
    decoy: String,
    host: String,
    reporting_instance: String,
    /// Empty strings left out rather than written as `""`.
    omit_empty: bool,
    /// Fields the decoder must skip: managedFields, unknown fields, the other API's fields.
    noise: bool,
}

prop_compose! {
    fn object_ref_unboxed()(
        kind in text(),
        namespace in text(),
        name in text(),
        uid in text(),
        api_version in text(),
        field_path in text(),
    ) -> ObjectRef {
        ObjectRef { kind, namespace, name, uid, api_version, field_path }
    }
}

fn count() -> BoxedStrategy<u64> {
    prop_oneof![3 => 1u64..10, 1 => 1u64..=i64::MAX.unsigned_abs()].boxed()
}

fn object_ref() -> BoxedStrategy<ObjectRef> {
    object_ref_unboxed().boxed()
}

/// Boxed, like the strategies it is made of: unboxed, the value trees of a strategy of 23 fields
/// overflowed the 2 MiB stack of a test thread in a debug build.
fn draw() -> BoxedStrategy<Draw> {
    draw_unboxed().boxed()
}

prop_compose! {
    fn draw_unboxed()(
        namespace in text(),
        name in word(),
        uid in option::of(text()),
        resource_version in "[0-9]{0,8}",
        regarding in object_ref(),
        reason in text(),
        warning in any::<bool>(),
        normal_spelling in 0u8..3,
        message in message(),
        action in text(),
        count in count(),
        count_spelling in 0u8..3,
        stale_count in any::<i64>(),
        times in (time(), time(), time()),
        time_spelling in 0u8..8,
        offsets in (offset_minutes(), offset_minutes()),
        source in text(),
        source_primary in any::<bool>(),
        decoy in word(),
        host in text(),
        reporting_instance in text(),
        omit_empty in any::<bool>(),
        noise in any::<bool>(),
    ) -> Draw {
        Draw {
            namespace, name, uid, resource_version, regarding, reason, warning, normal_spelling,
            message, action, count, count_spelling, stale_count, times, time_spelling, offsets,
            source, source_primary, decoy, host, reporting_instance, omit_empty, noise,
        }
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![Just(Shape::CoreV1), Just(Shape::EventsV1)]
}

/// The field names of one API shape.
struct Names {
    api_version: &'static str,
    regarding: &'static str,
    message: &'static str,
    count: &'static str,
    first: &'static str,
    last: &'static str,
    source: &'static str,
}

fn names(shape: Shape) -> Names {
    match shape {
        Shape::CoreV1 => Names {
            api_version: "v1",
            regarding: "involvedObject",
            message: "message",
            count: "count",
            first: "firstTimestamp",
            last: "lastTimestamp",
            source: "source",
        },
        Shape::EventsV1 => Names {
            api_version: "events.k8s.io/v1",
            regarding: "regarding",
            message: "note",
            count: "deprecatedCount",
            first: "deprecatedFirstTimestamp",
            last: "deprecatedLastTimestamp",
            source: "deprecatedSource",
        },
    }
}

/// Writes a string field: an empty one is left out or written as `""`.
fn put(o: &mut Map<String, Value>, key: &str, value: &str, omit_empty: bool) {
    if !(omit_empty && value.is_empty()) {
        o.insert(key.to_owned(), value.into());
    }
}

/// The Event object of `d` in `shape`, and the Event the decoder must make of it.
fn build(d: &Draw, shape: Shape, observed: Timestamp) -> (Value, Event) {
    let n = names(shape);
    let omit = d.omit_empty;
    let mut o = Map::new();
    o.insert("kind".into(), "Event".into());
    o.insert("apiVersion".into(), n.api_version.into());

    let mut meta = Map::new();
    put(&mut meta, "name", &d.name, omit);
    put(&mut meta, "namespace", &d.namespace, omit);
    put(&mut meta, "uid", d.uid.as_deref().unwrap_or_default(), omit);
    put(&mut meta, "resourceVersion", &d.resource_version, omit);
    let uid = match &d.uid {
        Some(uid) if !uid.is_empty() => uid.clone(),
        _ => format!("{}/{}", d.namespace, d.name),
    };

    let r = &d.regarding;
    let mut regarding = Map::new();
    put(&mut regarding, "kind", &r.kind, omit);
    put(&mut regarding, "namespace", &r.namespace, omit);
    put(&mut regarding, "name", &r.name, omit);
    put(&mut regarding, "uid", &r.uid, omit);
    put(&mut regarding, "apiVersion", &r.api_version, omit);
    put(&mut regarding, "fieldPath", &r.field_path, omit);
    if !(omit && regarding.is_empty()) {
        o.insert(n.regarding.into(), regarding.into());
    }

    put(&mut o, "reason", &d.reason, omit);
    match (d.warning, d.normal_spelling) {
        (true, _) => put(&mut o, "type", "Warning", omit),
        (false, 0) => put(&mut o, "type", "Normal", omit),
        (false, 1) => put(&mut o, "type", "", false),
        (false, _) => {}
    }
    put(&mut o, n.message, &d.message, omit);
    put(&mut o, "action", &d.action, omit);
    put(&mut o, "reportingInstance", &d.reporting_instance, omit);

    let mut series = Map::new();
    spell_count(d, &n, &mut o, &mut series);
    let (first_seen, last_seen) = spell_times(d, &n, observed, &mut o, &mut series);
    if !series.is_empty() {
        o.insert("series".into(), series.into());
    }
    let host = spell_reporter(d, shape, &mut o);
    if d.noise {
        add_noise(shape, &mut o, &mut meta, &d.decoy);
    }
    o.insert("metadata".into(), meta.into());

    let event = Event {
        uid,
        namespace: d.namespace.clone(),
        name: d.name.clone(),
        resource_version: d.resource_version.clone(),
        regarding: d.regarding.clone(),
        reason: d.reason.clone(),
        type_: if d.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        message: cut(&d.message),
        count: d.count,
        first_seen,
        last_seen,
        source: d.source.clone(),
        host,
        reporting_instance: d.reporting_instance.clone(),
        action: d.action.clone(),
        workload: kube_event_exporter::event::Workload::default(),
    };
    (o.into(), event)
}

/// The count: in the shape's count field; or in `series.count`, which wins over a stale count
/// field; or, for a count of 1, not at all (absent, zero or negative both places).
fn spell_count(d: &Draw, n: &Names, o: &mut Map<String, Value>, series: &mut Map<String, Value>) {
    let count = i64::try_from(d.count).unwrap();
    let not_positive = d.stale_count.min(0);
    match d.count_spelling {
        1 => {
            series.insert("count".into(), count.into());
            o.insert(n.count.into(), d.stale_count.into());
        }
        2 if d.count == 1 => {
            if d.stale_count % 2 == 0 {
                o.insert(n.count.into(), not_positive.into());
                series.insert("count".into(), 0.into());
            } else if d.stale_count % 3 == 0 {
                series.insert("count".into(), not_positive.into());
            }
        }
        _ => {
            o.insert(n.count.into(), count.into());
        }
    }
}

/// The times, in the fields that carry them; returns the `(first_seen, last_seen)` they mean.
fn spell_times(
    d: &Draw,
    n: &Names,
    observed: Timestamp,
    o: &mut Map<String, Value>,
    series: &mut Map<String, Value>,
) -> (Timestamp, Timestamp) {
    let (t1, t2, other) = d.times;
    let (early, late) = (t1.min(t2), t1.max(t2));
    let at = |t: Timestamp, offset: i32| Value::from(spell_time(t, offset));
    let (o1, o2) = d.offsets;
    match d.time_spelling {
        // Both deprecated-style timestamps; eventTime then does not matter.
        0 => {
            o.insert(n.first.into(), at(early, o1));
            o.insert(n.last.into(), at(late, o2));
            o.insert("eventTime".into(), at(other, 0));
            (early, late)
        }
        // As events.k8s.io writes them: eventTime and series.lastObservedTime.
        1 => {
            o.insert("eventTime".into(), at(early, o1));
            o.insert(n.first.into(), Value::Null);
            series.insert("lastObservedTime".into(), at(late, o2));
            (early, late)
        }
        // The later of the last timestamp and series.lastObservedTime.
        2 => {
            o.insert(n.first.into(), at(early, o1));
            o.insert(n.last.into(), at(early, o2));
            series.insert("lastObservedTime".into(), at(late, 0));
            (early, late)
        }
        // One time only, in any of the fields.
        3 => {
            o.insert("eventTime".into(), at(t1, o1));
            (t1, t1)
        }
        4 => {
            o.insert(n.last.into(), at(t1, o1));
            (t1, t1)
        }
        5 => {
            o.insert(n.first.into(), at(t1, o1));
            (t1, t1)
        }
        // A first timestamp after the last: first_seen is never after last_seen.
        6 => {
            o.insert(n.first.into(), at(late, o1));
            o.insert(n.last.into(), at(early, o2));
            (early, early)
        }
        // None: when the exporter saw it.
        _ => {
            o.insert("eventTime".into(), Value::Null);
            (observed, observed)
        }
    }
}

/// The reporter (`source`) and host; returns the host the decoder must report.
fn spell_reporter(d: &Draw, shape: Shape, o: &mut Map<String, Value>) -> String {
    let omit = d.omit_empty;
    let mut source = Map::new();
    put(&mut source, "host", &d.host, omit);
    // The field read first, and the fallback, read only when the first is empty (so it may
    // hold a decoy when the first is not).
    let (first, fallback) = match (d.source_primary, d.source.is_empty()) {
        (true, false) => (d.source.as_str(), d.decoy.as_str()),
        (true, true) => ("", ""),
        (false, _) => ("", d.source.as_str()),
    };
    match shape {
        Shape::CoreV1 => {
            put(&mut source, "component", first, omit);
            put(o, "reportingComponent", fallback, omit);
        }
        Shape::EventsV1 => {
            put(o, "reportingController", first, omit);
            put(&mut source, "component", fallback, omit);
        }
    }
    if !(omit && source.is_empty()) {
        o.insert(names(shape).source.into(), source.into());
    }
    if d.host.is_empty() {
        d.reporting_instance.clone()
    } else {
        d.host.clone()
    }
}

/// What the decoder must skip: managedFields, unknown fields, and the other API's fields (with
/// values of the right types, so only the field names keep them out).
fn add_noise(shape: Shape, o: &mut Map<String, Value>, meta: &mut Map<String, Value>, decoy: &str) {
    meta.insert(
        "managedFields".into(),
        json!([{"manager": "kubelet", "operation": "Update",
                "fieldsV1": {"f:count": {}, "f:note": {}}}]),
    );
    meta.insert("creationTimestamp".into(), "2026-11-29T10:00:00Z".into());
    meta.insert("labels".into(), json!({"uid": decoy, "name": decoy}));
    o.insert(
        "unknownField".into(),
        json!({"count": [1, {"x": null}], "note": decoy}),
    );
    let other = match shape {
        Shape::CoreV1 => json!({
            "regarding": {"kind": decoy, "name": decoy},
            "note": decoy,
            "deprecatedCount": 99,
            "deprecatedSource": {"component": decoy, "host": decoy},
            "deprecatedFirstTimestamp": "2001-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2001-01-01T00:00:00Z",
            "reportingController": decoy,
        }),
        Shape::EventsV1 => json!({
            "involvedObject": {"kind": decoy, "name": decoy},
            "message": decoy,
            "count": 99,
            "source": {"component": decoy, "host": decoy},
            "firstTimestamp": "2001-01-01T00:00:00Z",
            "lastTimestamp": "2001-01-01T00:00:00Z",
            "reportingComponent": decoy,
        }),
    };
    let Value::Object(other) = other else {
        unreachable!()
    };
    o.extend(other);
}

fn observed() -> BoxedStrategy<Timestamp> {
    time().boxed()
}

// ---------------------------------------------------------------------------------------------
// The wire decoder

/// `v` with every array under a `managedFields` key emptied.
fn without_managed_fields(v: Value) -> Value {
    match v {
        Value::Array(items) => items.into_iter().map(without_managed_fields).collect(),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                Value::Array(_) if k == "managedFields" => (k, json!([])),
                v => (k, without_managed_fields(v)),
            })
            .collect(),
        leaf => leaf,
    }
}

fn watch_type() -> impl Strategy<Value = &'static str> {
    select(&["ADDED", "MODIFIED", "DELETED"][..])
}

/// The Event of an `ADDED`, `MODIFIED` or `DELETED` watch item of type `kind`.
fn watched(item: WatchItem, kind: &str) -> Event {
    match (item, kind) {
        (WatchItem::Added(e), "ADDED")
        | (WatchItem::Modified(e), "MODIFIED")
        | (WatchItem::Deleted(e), "DELETED") => e,
        (other, _) => panic!("{kind} decoded as {other:?}"),
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn watch_lines_of_any_bytes_decode_or_fail(
        bytes in vec(any::<u8>(), 0..256),
        shape in shape(),
    ) {
        let _ = wire::watch_line(&bytes, shape, Timestamp::UNIX_EPOCH);
    }

    #[test]
    fn any_json_decodes_or_fails(
        v in json_input(),
        style in style(),
        shape in shape(),
        observed in observed(),
    ) {
        let text = to_json(&v, style);
        let _ = wire::watch_line(text.as_bytes(), shape, observed);
        let _ = wire::list_page(text.as_bytes(), shape, observed);
        let _ = replay::decode(&text, observed);
    }

    #[test]
    fn stripping_managed_fields_empties_their_arrays_and_nothing_else(
        v in json_input(),
        style in style(),
    ) {
        let mut stripped = to_json(&v, style).into_bytes();
        wire::strip_arrays(&mut stripped, wire::EVENT_UNREAD);
        // Only compact JSON, as the API server writes it, is stripped.
        let want = match style {
            Style::Pretty => to_json(&v, style),
            Style::Compact | Style::Escaped => to_json(&without_managed_fields(v), style),
        };
        prop_assert_eq!(String::from_utf8(stripped).unwrap(), want);
    }

    #[test]
    fn damaged_watch_lines_decode_or_fail(
        d in draw(),
        shape in shape(),
        kind in watch_type(),
        edits in edits(),
        observed in observed(),
    ) {
        let (object, _) = build(&d, shape, observed);
        let line = json!({"type": kind, "object": object}).to_string();
        let mut damaged = mutate(line.into_bytes(), &edits);
        let _ = wire::watch_line(&damaged, shape, observed);
        let _ = wire::list_page(&damaged, shape, observed);
        let _ = replay::decode(&String::from_utf8_lossy(&damaged), observed);
        wire::strip_arrays(&mut damaged, wire::EVENT_UNREAD);
        let _ = wire::watch_line(&damaged, shape, observed);
    }

    #[test]
    fn a_watch_line_gives_back_its_event(
        d in draw(),
        shape in shape(),
        kind in watch_type(),
        style in style(),
        observed in observed(),
    ) {
        let (object, want) = build(&d, shape, observed);
        let line = to_json(&json!({"type": kind, "object": object}), style);
        let item = wire::watch_line(line.as_bytes(), shape, observed);
        prop_assert!(item.is_ok(), "{line}: {item:?}");
        prop_assert_eq!(watched(item.unwrap(), kind), want.clone(), "{}", line);
        // As the exporter reads it: without its managedFields.
        let mut stripped = line.clone().into_bytes();
        wire::strip_arrays(&mut stripped, wire::EVENT_UNREAD);
        let item = wire::watch_line(&stripped, shape, observed);
        prop_assert_eq!(watched(item.unwrap(), kind), want, "{}", line);
    }

    #[test]
    fn a_list_page_gives_back_its_events(
        draws in vec(draw(), 0..5),
        shape in shape(),
        resource_version in "[0-9]{0,8}",
        continue_ in option::of(text()),
        style in style(),
        observed in observed(),
    ) {
        let (objects, want): (Vec<Value>, Vec<Event>) =
            draws.iter().map(|d| build(d, shape, observed)).unzip();
        let list = json!({
            "kind": "EventList",
            "apiVersion": names(shape).api_version,
            "metadata": {"resourceVersion": resource_version, "continue": continue_},
            "items": objects,
        });
        let mut text = to_json(&list, style).into_bytes();
        wire::strip_arrays(&mut text, wire::EVENT_UNREAD);
        let page = wire::list_page(&text, shape, observed);
        prop_assert!(page.is_ok(), "{}", String::from_utf8_lossy(&text));
        let page = page.unwrap();
        let got: Vec<Event> = page.items.into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(got, want);
        prop_assert_eq!(page.resource_version, resource_version);
        prop_assert_eq!(page.continue_, continue_.filter(|c| !c.is_empty()));
    }

    #[test]
    fn bookmarks_and_errors_give_back_their_fields(
        resource_version in text(),
        code in any::<i64>(),
        message in text(),
        style in style(),
        shape in shape(),
    ) {
        let bookmark = json!({"type": "BOOKMARK", "object": {
            "kind": "Event", "apiVersion": names(shape).api_version,
            "metadata": {"resourceVersion": resource_version,
                         "annotations": {"k8s.io/initial-events-end": "true"}},
        }});
        let epoch = Timestamp::UNIX_EPOCH;
        let item = wire::watch_line(to_json(&bookmark, style).as_bytes(), shape, epoch);
        prop_assert!(
            matches!(&item, Ok(WatchItem::Bookmark { resource_version: rv })
                            if *rv == resource_version),
            "{:?}", item
        );
        let error = json!({"type": "ERROR", "object": {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Expired", "code": code,
        }});
        let item = wire::watch_line(to_json(&error, style).as_bytes(), shape, epoch);
        prop_assert!(
            matches!(&item, Ok(WatchItem::Error { code: c, message: m })
                            if *c == code && *m == message),
            "{:?}", item
        );
    }
}

/// Where a field can be put in an Event object: at the top, or in one of its nested objects.
const NESTS: &[&str] = &[
    "",
    "metadata",
    "series",
    "source",
    "deprecatedSource",
    "involvedObject",
    "regarding",
];

proptest! {
    #![proptest_config(config(256))]

    /// The replay reads objects through a `serde_json::Value`, the watch straight from the text:
    /// with any field of a valid object set to any value, the two agree (but the replay also
    /// refuses objects that are not Events or have no identity).
    #[test]
    fn the_watch_and_replay_decoders_agree(
        d in draw(),
        shape in shape(),
        nest in select(NESTS),
        key in prop_oneof![4 => select(KEYS).prop_map(str::to_owned), 1 => text()],
        value in json_value(),
        observed in observed(),
    ) {
        let (mut object, _) = build(&d, shape, observed);
        prop_assume!(!(nest.is_empty() && matches!(key.as_str(), "kind" | "apiVersion")));
        let place = if nest.is_empty() {
            &mut object
        } else {
            object.as_object_mut().unwrap().entry(nest).or_insert_with(|| json!({}))
        };
        if let Value::Object(fields) = place {
            fields.insert(key, value);
        }
        let line = json!({"type": "ADDED", "object": object}).to_string();
        let watch =
            wire::watch_line(line.as_bytes(), shape, observed).map(|item| watched(item, "ADDED"));
        let replayed = replay::decode(&line, observed).pop().unwrap();
        prop_assume!(!matches!(
            replayed,
            Err(DecodeError::NoIdentity | DecodeError::NotAnEvent(_))
        ));
        let replayed = replayed.map(|record| match record {
            Record::Watch(item) => watched(*item, "ADDED"),
            Record::Listed(e) => panic!("a watch line read as a listed {e:?}"),
        });
        prop_assert_eq!(watch.ok(), replayed.ok(), "{}", line);
    }
}

// ---------------------------------------------------------------------------------------------
// The replay formats

/// Pieces of JSON text, and JSON that the replay gives meaning to.
const JSON_BITS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "\\",
    "\n",
    "\r\n",
    " ",
    ",",
    ":",
    "\"items\":",
    "\"type\":\"ADDED\",\"object\":",
];

/// Reads `text` as the replay source does: in chunks (of 13 bytes here, so boundaries fall
/// inside values and characters), split into top-level JSON values and List items, each
/// decoded.
fn replay_all(text: &str, observed: Timestamp) -> Vec<Result<Record, DecodeError>> {
    let mut splitter = JsonSplitter::default();
    let mut pieces = Vec::new();
    for chunk in text.as_bytes().chunks(13) {
        splitter.push(chunk, &mut pieces);
    }
    pieces.extend(splitter.finish());
    pieces
        .into_iter()
        .flat_map(|piece| match piece {
            Piece::Value(value) => replay::decode(&value, observed),
            Piece::Item(item) => vec![replay::decode_item(&item, observed)],
            Piece::Malformed(e) => vec![Err(e)],
        })
        .collect()
}

/// The events that the records apply, and the resourceVersions of their bookmarks.
fn applied(records: Vec<Result<Record, DecodeError>>) -> Result<(Vec<Event>, Vec<String>), String> {
    let mut events = Vec::new();
    let mut bookmarks = Vec::new();
    for record in records {
        match record.map_err(|e| e.to_string())? {
            Record::Listed(e) => events.push(*e),
            Record::Watch(item) => match *item {
                WatchItem::Added(e) | WatchItem::Modified(e) => events.push(e),
                WatchItem::Bookmark { resource_version } => bookmarks.push(resource_version),
                other => return Err(format!("unexpected {other:?}")),
            },
        }
    }
    Ok((events, bookmarks))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn any_replay_text_decodes_or_fails(text in "(?s).{0,200}", observed in observed()) {
        let _ = replay::decode(&text, observed);
        let _ = replay_all(&text, observed);
    }

    #[test]
    fn json_ish_replay_text_decodes_or_fails(
        fragments in vec(
            prop_oneof![
                select(JSON_BITS).prop_map(str::to_owned),
                text(),
            ],
            0..40,
        ),
        observed in observed(),
    ) {
        let text = fragments.concat();
        let _ = replay::decode(&text, observed);
        let _ = replay_all(&text, observed);
    }
}

proptest! {
    #![proptest_config(config(128))]

    /// A List as `kubectl get events -o json` prints it, a watch stream (`-w
    /// --output-watch-events`, each event compact or pretty), the objects pretty-printed one
    /// after another (`-w` alone) and JSON lines of the objects: each gives back the events, in
    /// order, whichever API each object is of; and so does a mix of all four in one input.
    #[test]
    fn the_replay_encodings_give_back_the_same_events(
        items in vec((draw(), shape()), 1..5),
        watch_types in vec(select(&["ADDED", "MODIFIED"][..]), 5),
        watch_pretty in any::<bool>(),
        crlf in any::<bool>(),
        final_newline in any::<bool>(),
        bookmark in "[0-9]{1,8}",
        observed in observed(),
    ) {
        let (objects, want): (Vec<Value>, Vec<Event>) =
            items.iter().map(|(d, shape)| build(d, *shape, observed)).unzip();
        let newline = if crlf { "\r\n" } else { "\n" };
        let lines = |values: &mut dyn Iterator<Item = String>| {
            values.map(|v| v + newline).collect::<String>()
        };

        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects,
                          "metadata": {"resourceVersion": ""}});
        let list = to_json(&list, Style::Pretty).replace('\n', newline) + newline;
        let style = if watch_pretty { Style::Pretty } else { Style::Compact };
        let watch = lines(&mut objects
            .iter()
            .zip(&watch_types)
            .map(|(object, kind)| json!({"type": kind, "object": object}))
            .chain([json!({"type": "BOOKMARK", "object": {
                "kind": "Event", "apiVersion": "v1", "metadata": {"resourceVersion": bookmark},
            }})])
            .map(|v| to_json(&v, style).replace('\n', newline)));
        let pretty = lines(&mut objects
            .iter()
            .map(|v| to_json(v, Style::Pretty).replace('\n', newline)));
        let json_lines = lines(&mut objects.iter().map(Value::to_string));
        let mut mix = [list.as_str(), &watch, &pretty, &json_lines].concat();
        if !final_newline {
            mix.truncate(mix.len() - newline.len());
        }

        for (name, text, times, bookmarks) in [
            ("list", &list, 1, vec![]),
            ("watch", &watch, 1, vec![bookmark.clone()]),
            ("pretty objects", &pretty, 1, vec![]),
            ("json lines", &json_lines, 1, vec![]),
            ("mix", &mix, 4, vec![bookmark.clone()]),
        ] {
            let got = applied(replay_all(text, observed));
            prop_assert!(got.is_ok(), "{name}: {got:?}\n{text}");
            let (events, got_bookmarks) = got.unwrap();
            let expected: Vec<Event> =
                std::iter::repeat_n(&want, times).flatten().cloned().collect();
            prop_assert_eq!(events, expected, "{}", name);
            prop_assert_eq!(got_bookmarks, bookmarks, "{}", name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Archive records

prop_compose! {
    fn any_event()(
        strings in vec(text(), 13),
        message in message(),
        warning in any::<bool>(),
        count in any::<u64>(),
        first in 0..=Timestamp::MAX.as_microsecond(),
        last in 0..=Timestamp::MAX.as_microsecond(),
    ) -> Event {
        let mut s = strings.into_iter();
        let mut next = || s.next().unwrap();
        Event {
            uid: next(),
            namespace: next(),
            name: next(),
            resource_version: next(),
            regarding: ObjectRef {
                kind: next(),
                namespace: next(),
                name: next(),
                uid: next(),
                api_version: next(),
                field_path: next(),
            },
            reason: next(),
            type_: if warning { EventType::Warning } else { EventType::Normal },
            message,
            count,
            first_seen: Timestamp::from_microsecond(first).unwrap(),
            last_seen: Timestamp::from_microsecond(last).unwrap(),
            source: next(),
            host: next(),
            reporting_instance: String::new(),
            action: String::new(),
            workload: kube_event_exporter::event::Workload::default(),
        }
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn a_record_gives_back_its_event(
        mut e in any_event(),
        reporting_instance in text(),
        action in text(),
    ) {
        e.reporting_instance = reporting_instance;
        e.action = action;
        let mut buf = vec![0xAB];
        record::encode(&e, &mut buf);
        let bytes = &buf[1..];
        prop_assert_eq!(record::decode(bytes).unwrap(), e.clone());
        prop_assert_eq!(record::view(bytes).unwrap().to_event(), e);
    }

    /// A later version of a record is an occurrence exactly when nothing but the count, the
    /// last occurrence and the resourceVersion moved (and the first sighting not earlier), and
    /// the stored record with that occurrence over it is the later version.
    #[test]
    fn a_later_version_is_an_occurrence_exactly_when_only_that_moved(
        old in any_event(),
        other in any_event(),
        new_message in any::<bool>(),
    ) {
        let mut new = old.clone();
        (new.count, new.last_seen, new.resource_version) =
            (other.count, other.last_seen, other.resource_version.clone());
        new.first_seen = other.first_seen;
        if new_message {
            new.message = other.message.clone();
        }
        let (mut a, mut b) = (Vec::new(), Vec::new());
        record::encode(&old, &mut a);
        record::encode(&new, &mut b);
        let only_occurrence = new.message == old.message && new.first_seen >= old.first_seen;
        match record::update_of(&a, &b).unwrap() {
            Some(o) => {
                prop_assert!(only_occurrence);
                let mut shown = record::view(&a).unwrap().with(o).to_event();
                shown.first_seen = new.first_seen;
                prop_assert_eq!(shown, new);
            }
            None => prop_assert!(!only_occurrence),
        }
    }

    #[test]
    fn any_record_bytes_decode_or_fail(bytes in vec(any::<u8>(), 0..128)) {
        check_record_bytes(&bytes)?;
    }

    #[test]
    fn damaged_records_decode_or_fail(e in any_event(), edits in edits()) {
        let mut buf = Vec::new();
        record::encode(&e, &mut buf);
        check_record_bytes(&mutate(buf, &edits))?;
    }
}

/// Decodes without panicking; where the whole record decodes, it is an update of itself with
/// its own occurrence.
fn check_record_bytes(bytes: &[u8]) -> Result<(), TestCaseError> {
    let update = record::update_of(bytes, bytes);
    if let Ok(v) = record::view(bytes) {
        let o = update.unwrap().expect("a record is an update of itself");
        prop_assert_eq!(
            (o.count, o.last_seen_us, o.resource_version),
            (v.count, v.last_seen_us, v.resource_version)
        );
        prop_assert_eq!(record::decode(bytes).unwrap(), v.to_event());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Queries and cursors

const PARAMS: [&str; 12] = [
    "namespace",
    "kind",
    "name",
    "reason",
    "type",
    "workload_kind",
    "workload",
    "since",
    "until",
    "limit",
    "cursor",
    "format",
];

fn query_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&PARAMS[..]).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,8}",
        1 => text(),
    ]
}

fn query_value() -> impl Strategy<Value = String> {
    prop_oneof![
        text(),
        select(
            &[
                "",
                "Normal",
                "Warning",
                "warning",
                "table",
                "json",
                "0",
                "1",
                "100",
                "1000",
                "1001",
                "-1",
                "+5",
                "2h",
                "7d",
                "1h30m",
                "0s",
                "5 s",
                "99999999999999999999d",
                "18446744073709551615ms",
                "30500000000w",
                "2026-11-29T10:00:00Z",
                "-009999-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
                "1.2.3",
                "..",
                ".",
            ][..]
        )
        .prop_map(str::to_owned),
        "([0-9]{1,21}(ms|s|m|h|d|w)){1,3}",
        concat!(
            "[+-]?[0-9]{4,6}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}",
            "(\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})",
        ),
        (any::<u64>(), any::<u64>())
            .prop_map(|(last_seen, seq)| Cursor { last_seen, seq }.encode()),
        "[0-9a-fA-F+.-]{0,30}",
        "[a-z]{250,600}",
    ]
}

/// Any instant jiff can hold, or one near today.
fn now() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        (Timestamp::MIN.as_second()..=Timestamp::MAX.as_second())
            .prop_map(|s| Timestamp::from_second(s).unwrap()),
        time(),
        Just(Timestamp::MIN),
        Just(Timestamp::MAX),
    ]
}

/// A time bound as a user writes it: an RFC 3339 time (at an offset), or `<n><unit>…` back
/// from now.
#[derive(Clone, Debug)]
enum Bound {
    At(i64, i32),
    Back(Vec<(u64, usize)>),
}

const UNITS: [(&str, u64); 6] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
];

fn bound() -> impl Strategy<Value = Bound> {
    prop_oneof![
        (0i64..220_000_000_000_000_000, offset_minutes()).prop_map(|(us, o)| Bound::At(us, o)),
        // At most 3 × 299 weeks: from a `now` in this century, never before 1970.
        vec((0u64..300, 0..UNITS.len()), 1..4).prop_map(Bound::Back),
    ]
}

/// The parameter text of `b`, and the microseconds it means at `now`.
fn spell_bound(b: &Bound, now: Timestamp) -> (String, u64) {
    match b {
        Bound::At(us, offset) => (
            spell_time(Timestamp::from_microsecond(*us).unwrap(), *offset),
            us.unsigned_abs(),
        ),
        Bound::Back(parts) => {
            let text = parts
                .iter()
                .map(|(n, unit)| n.to_string() + UNITS[*unit].0)
                .collect();
            let back_ms: u64 = parts.iter().map(|(n, unit)| n * UNITS[*unit].1).sum();
            (text, now.as_microsecond().unsigned_abs() - back_ms * 1000)
        }
    }
}

/// A filter value: non-empty, at most 253 bytes.
fn filter_value() -> impl Strategy<Value = String> {
    prop_oneof![4 => word(), 1 => "[a-z0-9]{240,253}"]
}

#[derive(Clone, Debug)]
struct QueryDraw {
    filters: [Option<String>; 6],
    type_: Option<EventType>,
    since: Option<Bound>,
    until: Option<Bound>,
    limit: Option<usize>,
    cursor: Option<Cursor>,
    table: Option<bool>,
    unknown: Vec<(String, String)>,
    order: Vec<u32>,
}

prop_compose! {
    fn query_draw()(
        filters in [option::of(filter_value()), option::of(filter_value()),
                    option::of(filter_value()), option::of(filter_value()),
                    option::of(filter_value()), option::of(filter_value())],
        type_ in option::of(prop_oneof![Just(EventType::Normal), Just(EventType::Warning)]),
        since in option::of(bound()),
        until in option::of(bound()),
        limit in option::of(1usize..=1000),
        cursor in option::of((any::<u64>(), any::<u64>())),
        table in option::of(any::<bool>()),
        unknown in vec(
            (
                "[a-zA-Z_]{1,10}".prop_filter("an unknown key", |k| !PARAMS.contains(&k.as_str())),
                text(),
            ),
            0..3,
        ),
        order in vec(any::<u32>(), 16),
    ) -> QueryDraw {
        let cursor = cursor.map(|(last_seen, seq)| Cursor { last_seen, seq });
        QueryDraw { filters, type_, since, until, limit, cursor, table, unknown, order }
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// A bad query is an `Err` whose message names a parameter it was given.
    #[test]
    fn any_query_parses_or_names_the_bad_parameter(
        pairs in vec((query_key(), query_value()), 0..8),
        now in now(),
    ) {
        match Query::parse(&pairs, now) {
            Ok(q) => {
                prop_assert!((1..=1000).contains(&q.limit));
                if let (Some(since), Some(until)) = (q.since, q.until) {
                    prop_assert!(since <= until);
                }
            }
            Err(e) => {
                let given = |p: &str| pairs.iter().any(|(k, _)| k == p);
                prop_assert!(
                    PARAMS.iter().any(|p| given(p) && e.0.contains(p)),
                    "{:?} gave {:?}", pairs, e.0
                );
            }
        }
    }

    #[test]
    fn a_query_gives_back_its_parameters(q in query_draw(), now in time()) {
        let [namespace, kind, name, reason, workload_kind, workload] = q.filters.clone();
        let since = q.since.as_ref().map(|b| spell_bound(b, now));
        let until = q.until.as_ref().map(|b| spell_bound(b, now));
        let want = Query {
            cluster: None,
            namespace: namespace.clone(),
            kind: kind.clone(),
            name: name.clone(),
            reason: reason.clone(),
            type_: q.type_,
            workload_kind: workload_kind.clone(),
            workload: workload.clone(),
            since: since.as_ref().map(|(_, us)| *us),
            until: until.as_ref().map(|(_, us)| *us),
            limit: q.limit.unwrap_or(kube_event_exporter::archive::query::DEFAULT_LIMIT),
            cursor: q.cursor,
            table: q.table.unwrap_or(false),
            namespaces: None,
        };
        let mut pairs: Vec<(String, String)> = [
            ("namespace", namespace),
            ("kind", kind),
            ("name", name),
            ("reason", reason),
            ("type", q.type_.map(|t| t.to_string())),
            ("workload_kind", workload_kind),
            ("workload", workload),
            ("since", since.map(|(text, _)| text)),
            ("until", until.map(|(text, _)| text)),
            ("limit", q.limit.map(|l| l.to_string())),
            ("cursor", q.cursor.map(|c| c.encode())),
            ("format", q.table.map(|t| if t { "table" } else { "json" }.to_owned())),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k.to_owned(), v?)))
        .chain(q.unknown.iter().cloned())
        .collect();
        let mut keyed: Vec<_> = pairs.drain(..).zip(&q.order).map(|(p, k)| (*k, p)).collect();
        keyed.sort_by_key(|(k, _)| *k);
        let pairs: Vec<_> = keyed.into_iter().map(|(_, p)| p).collect();

        let got = Query::parse(&pairs, now);
        match (want.since, want.until) {
            (Some(since), Some(until)) if since > until => {
                prop_assert_eq!(got.unwrap_err().0, "since is after until");
            }
            _ => prop_assert_eq!(got, Ok(want), "{:?}", pairs),
        }
    }

    #[test]
    fn a_cursor_gives_back_its_position(last_seen in any::<u64>(), seq in any::<u64>()) {
        let c = Cursor { last_seen, seq };
        prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
    }

    #[test]
    fn any_cursor_text_decodes_or_fails(s in prop_oneof!["(?s).{0,40}", "[0-9a-fA-F.+-]{0,40}"]) {
        if let Ok(c) = Cursor::decode(&s) {
            prop_assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
    }

    /// An edited cursor is refused, or (an edit the hex parser cannot see: a digit's case, a
    /// `+` for a leading 0 of the checksum) means the same position.
    #[test]
    fn an_edited_cursor_is_refused_or_unchanged(
        last_seen in any::<u64>(),
        seq in any::<u64>(),
        at in any::<Index>(),
        with in select(&['0', '1', '9', 'a', 'f', 'A', 'F', 'g', '.', '+', '-', ' '][..]),
    ) {
        let c = Cursor { last_seen, seq };
        let mut text = c.encode().into_bytes();
        let i = at.index(text.len());
        text[i] = u8::try_from(with).unwrap();
        let text = String::from_utf8(text).unwrap();
        match Cursor::decode(&text) {
            Ok(got) => prop_assert_eq!(got, c, "{}", text),
            Err(e) => prop_assert!(e.0.contains("cursor")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The rules file

/// Fragments of rules files, valid and not, and of YAML's harder syntax.
const YAML_BITS: &[&str] = &[
    "rules:",
    "archive:",
    "\n",
    "  ",
    "    ",
    "- ",
    "match: ",
    "exclude: ",
    "alert: ",
    "drop: ",
    "severity: ",
    "alertname: ",
    "labels: ",
    "namespace_rate: ",
    "namespace_burst: ",
    "rate: ",
    "burst: ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "'reason=\"x\"'",
    "'namespace=~\"prod-.*\"'",
    "\"kind!~\\\"(\\\"\"",
    "'type!=Warning'",
    "'message=~\"(?s).*\"'",
    "'colour=\"red\"'",
    "'reason'",
    "true",
    "false",
    "yes",
    "0",
    "4294967296",
    "-1",
    "1e3",
    "critical",
    "team: x",
    "namespace: x",
    "&a ",
    "*a",
    "<<: *a",
    "!!str ",
    "!!binary ",
    "!custom ",
    "? ",
    "---\n",
    "...\n",
    "# c\n",
    "%YAML 1.2\n",
    "|\n",
    ">-\n",
    "\t",
    "~",
    "null",
    "'",
    "\"",
    "\\",
    "é",
    "😀",
    "\u{feff}",
    "\r",
    "\u{0}",
    "\u{85}",
];

const FIELDS: [&str; 7] = [
    "namespace",
    "kind",
    "name",
    "reason",
    "type",
    "message",
    "source",
];

fn field_of(e: &Event, field: usize) -> &str {
    match FIELDS[field] {
        "namespace" => &e.namespace,
        "kind" => &e.regarding.kind,
        "name" => &e.regarding.name,
        "reason" => &e.reason,
        "type" => e.type_.as_str(),
        "message" => &e.message,
        _ => &e.source,
    }
}

/// One matcher of a generated rule: on `field`, with operator `op` (`=`, `!=`, `=~`, `!~`),
/// written to hold for the event or not (`hit`).
#[derive(Clone, Debug)]
struct MatcherDraw {
    field: usize,
    op: u8,
    hit: bool,
    spaced: bool,
    quoted: bool,
}

fn matcher(hit_probability: f64) -> impl Strategy<Value = MatcherDraw> {
    (
        0..FIELDS.len(),
        0u8..4,
        prop::bool::weighted(hit_probability),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(field, op, hit, spaced, quoted)| MatcherDraw {
            field,
            op,
            hit,
            spaced,
            quoted,
        })
}

/// The matcher's text for an event whose field holds `v`.
fn matcher_text(m: &MatcherDraw, v: &str) -> String {
    let literal = || regex::escape(v);
    let (op, value) = match (m.op, m.hit) {
        (0, true) | (1, false) => (["=", "!="][usize::from(m.op)], v.to_owned()),
        (0 | 1, _) => (["=", "!="][usize::from(m.op)], format!("{v}x")),
        (2, true) | (3, false) => (["=~", "!~"][usize::from(m.op - 2)], literal()),
        _ => (
            ["=~", "!~"][usize::from(m.op - 2)],
            format!("{}x", literal()),
        ),
    };
    // Quotes are optional where the value has no outer space, is not itself quoted, and does
    // not start with `~` (`name=~x` is a regex).
    let bare_ok = value.trim() == value
        && !value.starts_with('~')
        && !(value.len() >= 2 && value.starts_with('"') && value.ends_with('"'));
    let value = if m.quoted || !bare_ok {
        format!("\"{value}\"")
    } else {
        value
    };
    let space = if m.spaced { " " } else { "" };
    format!("{}{space}{op}{space}{value}", FIELDS[m.field])
}

#[derive(Clone, Debug)]
struct RuleDraw {
    matchers: Vec<MatcherDraw>,
    exclude: Vec<MatcherDraw>,
    alert: Option<bool>,
    drop: Option<bool>,
    severity: Option<String>,
    alertname: Option<String>,
    labels: BTreeMap<String, String>,
}

const RESERVED: [&str; 7] = [
    "alertname",
    "alerttype",
    "namespace",
    "kind",
    "name",
    "reason",
    "severity",
];

prop_compose! {
    fn rule_draw()(
        matchers in vec(matcher(0.8), 0..4),
        exclude in vec(matcher(0.3), 0..3),
        alert in option::of(any::<bool>()),
        drop in option::of(prop::bool::weighted(0.2)),
        severity in option::of(word()),
        alertname in option::of(word()),
        labels in btree_map(
            "[a-zA-Z_][a-zA-Z0-9_]{0,8}"
                .prop_filter("a reserved label", |k| !RESERVED.contains(&k.as_str())),
            text(),
            0..3,
        ),
    ) -> RuleDraw {
        RuleDraw { matchers, exclude, alert, drop, severity, alertname, labels }
    }
}

prop_compose! {
    fn rules_event()(
        strings in vec(text(), 6),
        warning in any::<bool>(),
    ) -> Event {
        let [namespace, kind, name, reason, message, source] =
            <[String; 6]>::try_from(strings).unwrap();
        Event {
            uid: "u".into(),
            namespace,
            name: "e".into(),
            resource_version: String::new(),
            regarding: ObjectRef { kind, name, ..ObjectRef::default() },
            reason,
            type_: if warning { EventType::Warning } else { EventType::Normal },
            message,
            count: 1,
            first_seen: Timestamp::UNIX_EPOCH,
            last_seen: Timestamp::UNIX_EPOCH,
            source,
            host: String::new(),
            reporting_instance: String::new(),
            action: String::new(),
            workload: kube_event_exporter::event::Workload::default(),
        }
    }
}

/// The rules file as a JSON value (which YAML reads as flow style).
fn rules_value(rules: &[RuleDraw], e: &Event, archive: &ArchiveSpec) -> Value {
    let matchers = |ms: &[MatcherDraw]| {
        ms.iter()
            .map(|m| matcher_text(m, field_of(e, m.field)))
            .collect::<Vec<_>>()
    };
    let rules: Vec<Value> = rules
        .iter()
        .map(|r| {
            let mut o = Map::new();
            if !r.matchers.is_empty() {
                o.insert("match".into(), matchers(&r.matchers).into());
            }
            if !r.exclude.is_empty() {
                o.insert("exclude".into(), matchers(&r.exclude).into());
            }
            for (key, flag) in [("alert", r.alert), ("drop", r.drop)] {
                if let Some(flag) = flag {
                    o.insert(key.into(), flag.into());
                }
            }
            for (key, value) in [("severity", &r.severity), ("alertname", &r.alertname)] {
                if let Some(value) = value {
                    o.insert(key.into(), value.as_str().into());
                }
            }
            if !r.labels.is_empty() {
                o.insert("labels".into(), json!(r.labels));
            }
            o.into()
        })
        .collect();
    let mut file = json!({"rules": rules});
    let limits = [
        ("namespace_rate", archive.namespace_rate),
        ("namespace_burst", archive.namespace_burst),
        ("rate", archive.rate),
        ("burst", archive.burst),
    ];
    if limits.iter().any(|(_, v)| v.is_some()) {
        file["archive"] = limits
            .iter()
            .filter_map(|(k, v)| Some(((*k).to_owned(), Value::from((*v)?.get()))))
            .collect::<Map<_, _>>()
            .into();
    }
    file
}

/// The file in YAML's block style, every string double-quoted with everything outside
/// printable ASCII escaped.
fn block_yaml(file: &Value) -> String {
    fn scalar(v: &Value) -> String {
        match v {
            Value::String(s) => {
                let mut out = String::from("\"");
                for c in s.chars() {
                    match c {
                        '"' => out.push_str("\\\""),
                        '\\' => out.push_str("\\\\"),
                        ' '..='~' => out.push(c),
                        _ => write!(out, "\\U{:08x}", u32::from(c)).unwrap(),
                    }
                }
                out + "\""
            }
            Value::Array(items) => format!(
                "[{}]",
                items.iter().map(scalar).collect::<Vec<_>>().join(", ")
            ),
            Value::Object(map) => format!(
                "{{{}}}",
                map.iter()
                    .map(|(k, v)| format!("{}: {}", scalar(&Value::from(k.as_str())), scalar(v)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            other => other.to_string(),
        }
    }
    let rules = file["rules"].as_array().unwrap();
    let mut out = String::from(if rules.is_empty() {
        "rules: []\n"
    } else {
        "rules:\n"
    });
    for rule in rules {
        let rule = rule.as_object().unwrap();
        if rule.is_empty() {
            out.push_str("  - {}\n");
        }
        for (i, (k, v)) in rule.iter().enumerate() {
            let lead = if i == 0 { "  - " } else { "    " };
            writeln!(out, "{lead}{k}: {}", scalar(v)).unwrap();
        }
    }
    if let Some(Value::Object(archive)) = file.get("archive") {
        out.push_str("archive:\n");
        for (k, v) in archive {
            writeln!(out, "  {k}: {v}").unwrap();
        }
    }
    out
}

/// The file as JSON, which YAML reads as flow style; the characters YAML does not allow raw in a
/// stream (C0 and C1 controls, DEL, the BOM, U+FFFE and U+FFFF) escaped.
fn flow_yaml(file: &Value, pretty: bool) -> String {
    let not_printable = |c: char| {
        c < ' '
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}')
    };
    let mut out = String::new();
    write_json(
        file,
        &not_printable,
        if pretty { "\n " } else { "" },
        &mut out,
    );
    out
}

fn nonzero() -> impl Strategy<Value = Option<NonZeroU32>> {
    option::of(any::<NonZeroU32>())
}

proptest! {
    #![proptest_config(config(256))]

    /// Any text is rules or an error that starts with the file's name.
    #[test]
    fn any_rules_text_parses_or_fails(text in "(?s).{0,200}") {
        check_rules_text(&text)?;
    }

    #[test]
    fn yaml_ish_rules_text_parses_or_fails(
        bits in vec(
            prop_oneof![3 => select(YAML_BITS).prop_map(str::to_owned), 1 => text()],
            0..40,
        ),
    ) {
        check_rules_text(&bits.concat())?;
    }
}

fn check_rules_text(text: &str) -> Result<(), TestCaseError> {
    match Rules::parse(text, "rules.yaml") {
        Ok(rules) => {
            // Deciding never panics either.
            let e = Event {
                uid: "u".into(),
                namespace: "x".into(),
                name: "e".into(),
                resource_version: String::new(),
                regarding: ObjectRef::default(),
                reason: "x".into(),
                type_: EventType::Warning,
                message: "x".into(),
                count: 1,
                first_seen: Timestamp::UNIX_EPOCH,
                last_seen: Timestamp::UNIX_EPOCH,
                source: String::new(),
                host: String::new(),
                reporting_instance: String::new(),
                action: String::new(),
                workload: kube_event_exporter::event::Workload::default(),
            };
            let _ = rules.decide(&e);
        }
        Err(e) => prop_assert!(e.to_string().starts_with("rules.yaml"), "{}", e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    /// Every rule that applies is applied in file order: `drop` sticks, a later `alert`,
    /// `severity` and `alertname` win, labels merge; by default only Warnings alert.
    #[test]
    fn a_rules_file_decides_what_its_rules_say(
        rules in vec(rule_draw(), 0..4),
        e in rules_event(),
        archive in (nonzero(), nonzero(), nonzero(), nonzero()),
        flow in any::<bool>(),
        pretty in any::<bool>(),
    ) {
        let archive = ArchiveSpec {
            namespace_rate: archive.0,
            namespace_burst: archive.1,
            rate: archive.2,
            burst: archive.3,
        };
        let file = rules_value(&rules, &e, &archive);
        let text = if flow {
            flow_yaml(&file, pretty)
        } else {
            block_yaml(&file)
        };
        let parsed = Rules::parse(&text, "rules.yaml");
        prop_assert!(parsed.is_ok(), "{}\n{}", parsed.unwrap_err(), text);
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.archive, archive);

        let mut want = kube_event_exporter::rules::Decision {
            drop: false,
            alert: e.is_warning(),
            alertname: None,
            severity: None,
            labels: BTreeMap::new(),
        };
        for r in &rules {
            if r.matchers.iter().all(|m| m.hit) && !r.exclude.iter().any(|m| m.hit) {
                want.drop |= r.drop.unwrap_or(false);
                want.alert = r.alert.unwrap_or(want.alert);
                want.severity = r.severity.clone().or(want.severity);
                want.alertname = r.alertname.clone().or(want.alertname);
                want.labels.extend(r.labels.clone());
            }
        }
        prop_assert_eq!(parsed.decide(&e), want, "{}", text);
    }
}

// ---------------------------------------------------------------------------------------------
// The Pod decoder, over Pods as they come and with their unread arrays cut

/// A Pod as the API server writes it: what the decoder reads, and some of what it skips.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "api-7f9c5d-x2b4q", "namespace": "shop", "uid": "p1",
            "resourceVersion": "42", "creationTimestamp": "2026-12-02T10:00:00Z",
            "annotations": {"deployment.kubernetes.io/revision": "3"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "api-7f9c5d", "uid": "rs1", "controller": true}],
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {"f:x": {}}}}]},
        "spec": {"nodeName": "node-3", "restartPolicy": "Always",
                 "containers": [{"name": "api", "image": "api:1", "args": ["-v", "}]\"["]}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "api", "restartCount": 4,
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                    "finishedAt": "2026-12-02T10:14:00Z"}}}]}
    })
}

/// Where noise goes: the Pod, its metadata, spec, status, annotations, first container status.
fn place(pod: &mut Value, at: usize) -> &mut Map<String, Value> {
    let v = match at {
        0 => pod,
        1 => &mut pod["metadata"],
        2 => &mut pod["spec"],
        3 => &mut pod["status"],
        4 => &mut pod["metadata"]["annotations"],
        _ => &mut pod["status"]["containerStatuses"][0],
    };
    v.as_object_mut().expect("an object")
}

/// Field names the Pod decoder does not read, at any of those places.
const SKIPPED: &[&str] = &[
    "managedFields",
    "labels",
    "containers",
    "initContainers",
    "volumes",
    "tolerations",
    "conditions",
    "phase",
    "image",
    "kubectl.kubernetes.io/last-applied-configuration",
    "other",
];

/// Field names the Pod decoder reads, somewhere.
const READ: &[&str] = &[
    "metadata",
    "spec",
    "status",
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "ownerReferences",
    "annotations",
    "deployment.kubernetes.io/revision",
    "nodeName",
    "restartPolicy",
    "containerStatuses",
    "initContainerStatuses",
    "restartCount",
    "lastState",
];

fn decode_pod(text: &str) -> Result<KubeObject, String> {
    Resource::Pods.decode(text).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(config(256))]

    /// Whatever the skipped fields hold, however the Pod is spelled, it decodes the same.
    #[test]
    fn what_a_pod_holds_besides_its_read_fields_changes_nothing(
        noise in vec((0usize..6, select(SKIPPED), json_value()), 0..6),
        style in style(),
        kind in watch_type(),
    ) {
        let clean = pod();
        let want = decode_pod(&clean.to_string()).expect("the clean Pod decodes");
        let mut noisy = clean;
        for (at, key, value) in noise {
            place(&mut noisy, at).insert(key.to_owned(), value);
        }
        prop_assert_eq!(decode_pod(&to_json(&noisy, style)), Ok(want.clone()));
        let line = to_json(&json!({"type": kind, "object": noisy}), style);
        // As the exporter reads it: its unread arrays cut, and as it comes.
        let mut stripped = line.clone().into_bytes();
        wire::strip_arrays(&mut stripped, Resource::Pods.unread_arrays());
        for line in [line.as_bytes(), &stripped] {
            let item = Resource::Pods.watch_line(line).expect("the line decodes");
            let got = match item {
                WatchItem::Added(o) | WatchItem::Modified(o) | WatchItem::Deleted(o) => o,
                other => panic!("{kind} decoded as {other:?}"),
            };
            prop_assert_eq!(got, want.clone());
        }
    }

    /// Any value where the decoder reads, or where it skips: it decodes or fails the same
    /// however it is spelled, and never panics.
    #[test]
    fn any_value_in_a_pod_decodes_the_same_however_spelled(
        at in 0usize..6,
        key in prop_oneof![select(READ), select(SKIPPED)],
        value in json_value(),
        style in style(),
    ) {
        let mut pod = pod();
        place(&mut pod, at).insert(key.to_owned(), value);
        let compact = decode_pod(&pod.to_string());
        let spelled = decode_pod(&to_json(&pod, style));
        let mut stripped = pod.to_string().into_bytes();
        wire::strip_arrays(&mut stripped, Resource::Pods.unread_arrays());
        let stripped = decode_pod(std::str::from_utf8(&stripped).unwrap());
        for other in [spelled, stripped] {
            prop_assert_eq!(compact.is_ok(), other.is_ok(), "{:?} / {:?}", compact, other);
            if let (Ok(a), Ok(b)) = (&compact, other) {
                prop_assert_eq!(a, &b);
            }
        }
    }

    #[test]
    fn damaged_pods_decode_or_fail(edits in edits(), kind in watch_type()) {
        let line = json!({"type": kind, "object": pod()}).to_string();
        let mut damaged = mutate(line.into_bytes(), &edits);
        let _ = Resource::Pods.watch_line(&damaged);
        let _ = Resource::Pods.decode(&String::from_utf8_lossy(&damaged));
        wire::strip_arrays(&mut damaged, Resource::Pods.unread_arrays());
        let _ = Resource::Pods.watch_line(&damaged);
    }
}
