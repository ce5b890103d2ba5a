//! The one normalised event type: filled from core/v1 or events.k8s.io/v1 Event objects (by
//! the source's wire decoder), used by every stage after the source; and an event's identity
//! and times as the stages exchange and store them (uid keys, microseconds).

use std::fmt;

use jiff::Timestamp;

use crate::util::hash::stable_hash128;

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

/// The top-level owner of an event's object, found by following controller `ownerReferences`
/// (Pod → ReplicaSet → Deployment, Pod → Job → CronJob, Pod → StatefulSet, …). An object with no
/// controller is its own workload. Empty while not known.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Workload {
    pub kind: String,
    pub name: String,
}

impl Workload {
    pub fn is_known(&self) -> bool {
        !self.kind.is_empty()
    }
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
    pub type_: EventType,
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
    /// The involved object's workload; empty while not known.
    pub workload: Workload,
}

impl Event {
    pub fn is_warning(&self) -> bool {
        self.type_ == EventType::Warning
    }
}

/// An event's `type`: Kubernetes knows these two; an absent type is `Normal`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EventType {
    #[default]
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Normal" => Ok(Self::Normal),
            "Warning" => Ok(Self::Warning),
            _ => Err(format!("type must be Normal or Warning, not `{s}`")),
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event's identity in the ledger and the archive: a uid, which the API server makes a UUID,
/// as its 128 bits; any other uid (a replay file's `<namespace>/<name>`) as its 128-bit FNV-1a
/// hash.
pub fn uid_key(uid: &str) -> u128 {
    parse_uuid(uid).unwrap_or_else(|| stable_hash128(uid.as_bytes()))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex digits, any case) as a number.
fn parse_uuid(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let mut v: u128 = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            continue;
        }
        v = (v << 4) | u128::from(char::from(c).to_digit(16)?);
    }
    Some(v)
}

/// Microseconds since the Unix epoch, clamped at 0: how times are stored and indexed.
pub fn micros(t: Timestamp) -> u64 {
    u64::try_from(t.as_microsecond()).unwrap_or(0)
}

/// The inverse of [`micros`], clamped to what a timestamp can hold.
pub fn from_micros(us: u64) -> Timestamp {
    Timestamp::from_microsecond(i64::try_from(us).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX)
}

/// Whole seconds since the Unix epoch at `now`.
pub fn unix_secs(now: Timestamp) -> u64 {
    now.as_second().unsigned_abs()
}

/// The series count where there is one, else the deprecated count; counts below 1 (absent,
/// zero, negative) mean the event happened once. Both APIs pick alike, so one object yields
/// the same count through either.
pub(crate) fn first_positive(counts: [Option<i64>; 2]) -> u64 {
    counts
        .into_iter()
        .flatten()
        .find(|c| *c > 0)
        .map_or(1, i64::unsigned_abs)
}

/// First and last occurrence: the latest of the last-timestamp fields, the first timestamp,
/// each falling back to `eventTime` and then to when the exporter observed the object.
pub(crate) fn seen(
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

pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
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

    #[test]
    fn uuids_are_their_bits_and_other_uids_hash() {
        assert_eq!(
            uid_key("3eb13b90-4668-4257-bdd6-40fb06671ad1"),
            0x3eb1_3b90_4668_4257_bdd6_40fb_0667_1ad1
        );
        assert_eq!(
            uid_key("3EB13B90-4668-4257-BDD6-40FB06671AD1"),
            uid_key("3eb13b90-4668-4257-bdd6-40fb06671ad1")
        );
        for not_uuid in [
            "ns/name",
            "3eb13b90-4668-4257-bdd6-40fb06671adz",
            "3eb13b90+4668-4257-bdd6-40fb06671ad1",
            "",
        ] {
            assert_eq!(parse_uuid(not_uuid), None, "{not_uuid}");
        }
        assert_ne!(uid_key("ns/a"), uid_key("ns/b"));
        assert_eq!(
            uid_key("ns/a"),
            uid_key("ns/a"),
            "stable: the archive stores it"
        );
    }

    #[test]
    fn event_types_parse_and_print() {
        for t in [EventType::Normal, EventType::Warning] {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert!(
            "Info"
                .parse::<EventType>()
                .unwrap_err()
                .contains("Normal or Warning")
        );
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
