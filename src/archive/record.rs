//! The compact record encoding: a version byte, varints for times and count, then
//! length-prefixed strings (the uid first). No field names, no managedFields: a typical event fits in a few
//! hundred bytes, under the ~950 B at which redb packs four records per page.

use crate::event::{Event, EventType, ObjectRef, Workload, from_micros, micros};

const VERSION: u8 = 1;

/// Why stored bytes could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("corrupt archive record: {0}")]
pub struct CorruptRecord(&'static str);

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// A string as its length (an unsigned LEB128 varint) and its bytes: also ClickHouse's
/// `RowBinary` String.
pub fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.extend_from_slice(s.as_bytes());
}

/// Encodes the whole event, appended to `buf`.
pub fn encode(e: &Event, buf: &mut Vec<u8>) {
    buf.push(VERSION);
    put_varint(buf, micros(e.first_seen));
    put_varint(buf, micros(e.last_seen));
    put_varint(buf, e.count);
    let r = &e.regarding;
    let fields: [&str; 19] = [
        &e.uid,
        &e.namespace,
        &e.name,
        &e.resource_version,
        &r.kind,
        &r.namespace,
        &r.name,
        &r.uid,
        &r.api_version,
        &r.field_path,
        &e.reason,
        e.type_.as_str(),
        &e.message,
        &e.source,
        &e.host,
        &e.reporting_instance,
        &e.action,
        // Added after the first release: a record that ends before them has none.
        &e.workload.kind,
        &e.workload.name,
    ];
    for s in fields {
        put_str(buf, s);
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, CorruptRecord> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self
                .0
                .split_first()
                .ok_or(CorruptRecord("truncated varint"))?;
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(CorruptRecord("varint too long"))
    }

    fn str(&mut self) -> Result<&'a str, CorruptRecord> {
        let len = usize::try_from(self.varint()?).map_err(|_| CorruptRecord("length overflow"))?;
        if len > self.0.len() {
            return Err(CorruptRecord("truncated string"));
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        std::str::from_utf8(s).map_err(|_| CorruptRecord("string is not UTF-8"))
    }
}

/// A reader of a record's fields, past its version byte (checked).
fn fields(bytes: &[u8]) -> Result<Reader<'_>, CorruptRecord> {
    let (&version, rest) = bytes.split_first().ok_or(CorruptRecord("empty"))?;
    if version != VERSION {
        return Err(CorruptRecord("unknown version"));
    }
    Ok(Reader(rest))
}

/// The first sighting (µs) of a record, without decoding the rest.
pub fn first_seen_us(bytes: &[u8]) -> Result<u64, CorruptRecord> {
    fields(bytes)?.varint()
}

/// `bytes` (a valid record) with its first sighting set to `us`.
pub fn with_first_seen(bytes: &[u8], us: u64) -> Result<Vec<u8>, CorruptRecord> {
    let mut r = fields(bytes)?;
    r.varint()?;
    let mut out = Vec::with_capacity(bytes.len() + 2);
    out.push(VERSION);
    put_varint(&mut out, us);
    out.extend_from_slice(r.0);
    Ok(out)
}

/// What a repeat of an event changes in its record: the last occurrence, the count and the
/// object's resourceVersion. The archive stores an update that changes nothing else apart from
/// the record ([`super::schema::OCCURRENCES`]), a few bytes instead of the whole record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Occurrence<'a> {
    pub last_seen_us: u64,
    pub count: u64,
    pub resource_version: &'a str,
}

/// A record cut around what an update may change: its first sighting, its [`Occurrence`], and
/// the bytes of everything else (before and after the resourceVersion).
struct Parts<'a> {
    first_seen_us: u64,
    occurrence: Occurrence<'a>,
    before: &'a [u8],
    after: &'a [u8],
}

fn parts(bytes: &[u8]) -> Result<Parts<'_>, CorruptRecord> {
    let mut r = fields(bytes)?;
    let first_seen_us = r.varint()?;
    let last_seen_us = r.varint()?;
    let count = r.varint()?;
    let rest = r.0;
    // uid, namespace and name come before the resourceVersion.
    for _ in 0..3 {
        r.str()?;
    }
    let before = &rest[..rest.len() - r.0.len()];
    let resource_version = r.str()?;
    Ok(Parts {
        first_seen_us,
        occurrence: Occurrence {
            last_seen_us,
            count,
            resource_version,
        },
        before,
        after: r.0,
    })
}

/// `new`'s occurrence when `new`, a later version of the record `old`, differs from it only
/// there: the rest of `old` stands. A later first sighting does not count as a difference (an
/// event without a first time gets its last occurrence as one, and the archive keeps what was
/// seen first); an earlier one does.
pub fn update_of<'a>(old: &[u8], new: &'a [u8]) -> Result<Option<Occurrence<'a>>, CorruptRecord> {
    let (old, new) = (parts(old)?, parts(new)?);
    let same = old.before == new.before
        && old.after == new.after
        && new.first_seen_us >= old.first_seen_us;
    Ok(same.then_some(new.occurrence))
}

/// A record read in place: its strings borrow the stored bytes, nothing is allocated.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub first_seen_us: u64,
    pub last_seen_us: u64,
    pub count: u64,
    pub uid: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub resource_version: &'a str,
    pub kind: &'a str,
    pub object_namespace: &'a str,
    pub object_name: &'a str,
    pub object_uid: &'a str,
    pub api_version: &'a str,
    pub field_path: &'a str,
    pub reason: &'a str,
    pub type_: EventType,
    pub message: &'a str,
    pub source: &'a str,
    pub host: &'a str,
    pub reporting_instance: &'a str,
    pub action: &'a str,
    pub workload_kind: &'a str,
    pub workload: &'a str,
}

pub fn view(bytes: &[u8]) -> Result<View<'_>, CorruptRecord> {
    let mut r = fields(bytes)?;
    let mut view = View {
        first_seen_us: r.varint()?,
        last_seen_us: r.varint()?,
        count: r.varint()?,
        uid: r.str()?,
        namespace: r.str()?,
        name: r.str()?,
        resource_version: r.str()?,
        kind: r.str()?,
        object_namespace: r.str()?,
        object_name: r.str()?,
        object_uid: r.str()?,
        api_version: r.str()?,
        field_path: r.str()?,
        reason: r.str()?,
        // Records of earlier versions may hold other types; Kubernetes knows only these two.
        type_: if r.str()? == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        message: r.str()?,
        source: r.str()?,
        host: r.str()?,
        reporting_instance: r.str()?,
        action: r.str()?,
        workload_kind: "",
        workload: "",
    };
    // Added after the first release: a record that ends before them has none.
    if !r.0.is_empty() {
        view.workload_kind = r.str()?;
        view.workload = r.str()?;
    }
    Ok(view)
}

pub fn decode(bytes: &[u8]) -> Result<Event, CorruptRecord> {
    Ok(view(bytes)?.to_event())
}

impl<'a> View<'a> {
    /// The record as it is after a later [`Occurrence`].
    #[must_use]
    pub fn with(mut self, o: Occurrence<'a>) -> Self {
        self.last_seen_us = o.last_seen_us;
        self.count = o.count;
        self.resource_version = o.resource_version;
        self
    }

    pub fn to_event(&self) -> Event {
        Event {
            uid: self.uid.to_owned(),
            first_seen: from_micros(self.first_seen_us),
            last_seen: from_micros(self.last_seen_us),
            count: self.count,
            namespace: self.namespace.to_owned(),
            name: self.name.to_owned(),
            resource_version: self.resource_version.to_owned(),
            regarding: ObjectRef {
                kind: self.kind.to_owned(),
                namespace: self.object_namespace.to_owned(),
                name: self.object_name.to_owned(),
                uid: self.object_uid.to_owned(),
                api_version: self.api_version.to_owned(),
                field_path: self.field_path.to_owned(),
            },
            reason: self.reason.to_owned(),
            type_: self.type_,
            message: self.message.to_owned(),
            source: self.source.to_owned(),
            host: self.host.to_owned(),
            reporting_instance: self.reporting_instance.to_owned(),
            action: self.action.to_owned(),
            workload: Workload {
                kind: self.workload_kind.to_owned(),
                name: self.workload.to_owned(),
            },
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample() -> Event {
        Event {
            uid: "3eb13b90-4668-4257-bdd6-40fb06671ad1".into(),
            namespace: "shop".into(),
            name: "api-7f9c-x2.17f3a".into(),
            resource_version: "41234".into(),
            regarding: ObjectRef {
                kind: "Pod".into(),
                namespace: "shop".into(),
                name: "api-7f9c-x2".into(),
                uid: "1a3d1fa7-bc89-40a9-a3b8-c1e9392456de".into(),
                api_version: "v1".into(),
                field_path: "spec.containers{api}".into(),
            },
            reason: "BackOff".into(),
            type_: EventType::Warning,
            message: "Back-off restarting failed container api in pod api-7f9c-x2_shop(1a3d1fa7)"
                .into(),
            count: 7,
            first_seen: "2026-11-29T10:00:00Z".parse().unwrap(),
            last_seen: "2026-11-29T10:14:00.123456Z".parse().unwrap(),
            source: "kubelet".into(),
            host: "node-3".into(),
            reporting_instance: "node-3".into(),
            action: String::new(),
            workload: Workload {
                kind: "Deployment".into(),
                name: "api".into(),
            },
        }
    }

    /// Records written before workloads existed end after `action`: they decode with none.
    #[test]
    fn a_record_without_a_workload_decodes_with_none() {
        let mut e = sample();
        let mut buf = Vec::new();
        encode(&e, &mut buf);
        // The two trailing fields, each a length byte and its bytes.
        buf.truncate(buf.len() - (1 + "Deployment".len()) - (1 + "api".len()));
        e.workload = Workload::default();
        assert_eq!(decode(&buf).unwrap(), e);
    }

    #[test]
    fn round_trip_and_size() {
        let e = sample();
        let mut buf = Vec::new();
        encode(&e, &mut buf);
        assert_eq!(decode(&buf).unwrap(), e);
        assert!(
            buf.len() < 300,
            "typical record is compact: {} bytes",
            buf.len()
        );
    }

    #[test]
    fn an_update_that_moves_only_the_occurrence_is_told_apart() {
        let old = sample();
        let bytes = |e: &Event| {
            let mut buf = Vec::new();
            encode(e, &mut buf);
            buf
        };
        let stored = bytes(&old);
        let mut repeat = old.clone();
        repeat.count = 8;
        repeat.last_seen = "2026-11-29T10:15:00Z".parse().unwrap();
        repeat.resource_version = "41999".into();
        // A first time taken from the last occurrence moves later: the stored one stands.
        repeat.first_seen = repeat.last_seen;
        let new = bytes(&repeat);
        let o = update_of(&stored, &new)
            .unwrap()
            .expect("only the occurrence moved");
        assert_eq!((o.count, o.resource_version), (8, "41999"));
        let shown = view(&stored).unwrap().with(o).to_event();
        assert_eq!(shown.count, 8);
        assert_eq!(shown.last_seen, repeat.last_seen);
        assert_eq!(shown.resource_version, "41999");
        assert_eq!(shown.first_seen, old.first_seen);

        // Anything else that changed is a new record.
        let mut earlier = repeat.clone();
        earlier.first_seen = "2026-11-29T09:00:00Z".parse().unwrap();
        let mut message = repeat.clone();
        message.message = "Back-off restarting failed container api (again)".into();
        let mut workload = repeat.clone();
        workload.workload = Workload::default();
        for changed in [earlier, message, workload] {
            assert_eq!(update_of(&stored, &bytes(&changed)).unwrap(), None);
        }
        assert!(update_of(&stored[..10], &new).is_err());
    }

    #[test]
    fn corrupt_bytes_are_errors_not_panics() {
        let mut buf = Vec::new();
        encode(&sample(), &mut buf);
        // Cut right before the workload is a record of the first layout: valid.
        let first_layout = buf.len() - (1 + "Deployment".len()) - (1 + "api".len());
        for cut in (0..buf.len()).filter(|&c| c != first_layout) {
            assert!(decode(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(
            decode(&[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ])
            .is_err()
        );
    }
}
