//! The one normalised event type: filled from core/v1 or events.k8s.io/v1 Event objects (by
//! [`crate::source::wire`]), used by every stage after the source.

use jiff::Timestamp;

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
