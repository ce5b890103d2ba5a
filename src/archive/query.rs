//! Reading the archive: validated query parameters in, a page of records newest-first out,
//! with a cursor for the next page. The most selective index for the filters is scanned in
//! reverse key order, so a page touches about `limit` rows.

use std::{collections::BTreeSet, iter::Peekable, sync::Arc};

use jiff::Timestamp;
use redb::ReadableDatabase;

use super::{
    Archive, Result, read_record, record,
    schema::{
        BY_NAMESPACE, BY_OBJECT, BY_OBJECT_RECENT, BY_REASON, BY_TIME, OCCURRENCES, RECORDS,
        name_key, object_key,
    },
};
use crate::{
    event::{Event, EventType, micros},
    util::{hash::stable_hash, units::parse_duration},
};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Longest accepted filter value: a DNS subdomain, the longest name Kubernetes allows.
const MAX_VALUE_LEN: usize = 253;

/// A page stops after examining this many index rows even if it is not full, so a filter that
/// rarely matches cannot turn one request into a scan of the whole archive; its cursor resumes
/// the scan.
const MAX_SCANNED: usize = 50_000;

/// Up to this many permitted namespaces are read by merging their [`BY_NAMESPACE`] ranges, so a
/// page touches about `limit` rows however small their share of the archive; a larger set
/// scans the time index and filters (such a user may read most of the archive anyway).
const MAX_MERGED: usize = 64;

/// A parameter a user got wrong; the message names it. Answered with 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

fn invalid(msg: impl Into<String>) -> InvalidQuery {
    InvalidQuery(msg.into())
}

/// A validated query. All filters are optional and combined with AND.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Query {
    /// The cluster (`--cluster-name`) whose records to answer; the archive holds one cluster's,
    /// ClickHouse many.
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub reason: Option<String>,
    pub type_: Option<EventType>,
    /// The involved object's workload (exact match).
    pub workload_kind: Option<String>,
    pub workload: Option<String>,
    /// Inclusive bounds on the last occurrence, in µs.
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
    /// `format=table`.
    pub table: bool,
    /// Access control: only records of these namespaces; `None` is every namespace. Never from
    /// the query string: the HTTP layer sets it from the caller's permissions. It applies
    /// inside the scan, so pages and cursors are those of the permitted records alone.
    pub namespaces: Option<Arc<BTreeSet<String>>>,
}

/// A position in the newest-first `(last_seen, seq)` order: the next page starts strictly
/// after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub last_seen: u64,
    pub seq: u64,
}

impl Cursor {
    /// `<last_seen hex>.<seq hex>.<checksum hex>`: opaque to users, checked on the way back.
    pub fn encode(&self) -> String {
        let body = format!("{:x}.{:x}", self.last_seen, self.seq);
        format!("{body}.{:08x}", checksum(&body))
    }

    pub fn decode(s: &str) -> Result<Self, InvalidQuery> {
        let bad = || invalid("cursor is not one this server issued (corrupt or edited)");
        let (body, sum) = s.rsplit_once('.').ok_or_else(bad)?;
        if sum.len() != 8 || u32::from_str_radix(sum, 16).ok() != Some(checksum(body)) {
            return Err(bad());
        }
        let (ts, seq) = body.split_once('.').ok_or_else(bad)?;
        let hex = |v: &str| u64::from_str_radix(v, 16).map_err(|_| bad());
        Ok(Self {
            last_seen: hex(ts)?,
            seq: hex(seq)?,
        })
    }
}

/// Catches corruption and casual edits (a cursor is a position, not a secret).
fn checksum(body: &str) -> u32 {
    stable_hash([body]) as u32
}

/// A time bound: RFC 3339, or a duration back from `now` (`2h`, `7d`).
fn parse_time(param: &str, value: &str, now: Timestamp) -> Result<u64, InvalidQuery> {
    if let Ok(t) = value.parse::<Timestamp>() {
        return Ok(micros(t));
    }
    if let Ok(back) = parse_duration(value) {
        let t = now.checked_sub(back).unwrap_or(Timestamp::MIN);
        return Ok(micros(t));
    }
    Err(invalid(format!(
        "{param}: `{value}` is neither an RFC 3339 time (2026-11-29T10:00:00Z) nor a duration back from now (2h, 7d)"
    )))
}

impl Query {
    /// Validates the decoded `key=value` pairs of a query string. Unknown keys are ignored;
    /// a key given twice is an error, since which one wins would be a guess.
    pub fn parse(pairs: &[(String, String)], now: Timestamp) -> Result<Self, InvalidQuery> {
        let mut q = Query {
            limit: DEFAULT_LIMIT,
            ..Query::default()
        };
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in pairs {
            let key = key.as_str();
            let known = [
                "cluster",
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
            if !known.contains(&key) {
                continue;
            }
            if seen.contains(&key) {
                return Err(invalid(format!("{key} is given more than once")));
            }
            seen.push(key);
            let max = if key == "cursor" {
                2 * MAX_VALUE_LEN + 40
            } else {
                MAX_VALUE_LEN
            };
            if value.len() > max {
                return Err(invalid(format!(
                    "{key} is too long ({} bytes, at most {max})",
                    value.len()
                )));
            }
            let text = || {
                if value.is_empty() {
                    Err(invalid(format!("{key} is empty")))
                } else {
                    Ok(Some(value.clone()))
                }
            };
            match key {
                "cluster" => q.cluster = text()?,
                "namespace" => q.namespace = text()?,
                "kind" => q.kind = text()?,
                "name" => q.name = text()?,
                "reason" => q.reason = text()?,
                "workload_kind" => q.workload_kind = text()?,
                "workload" => q.workload = text()?,
                "type" => q.type_ = Some(value.parse().map_err(InvalidQuery)?),
                "since" => q.since = Some(parse_time("since", value, now)?),
                "until" => q.until = Some(parse_time("until", value, now)?),
                "limit" => {
                    q.limit = value
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            invalid(format!(
                                "limit must be a whole number from 1 to {MAX_LIMIT}, not `{value}`"
                            ))
                        })?;
                }
                "cursor" => q.cursor = Some(Cursor::decode(value)?),
                "format" => match value.as_str() {
                    "table" => q.table = true,
                    "json" => q.table = false,
                    _ => {
                        return Err(invalid(format!(
                            "format must be json or table, not `{value}`"
                        )));
                    }
                },
                _ => unreachable!("filtered by `known`"),
            }
        }
        if let (Some(since), Some(until)) = (q.since, q.until)
            && since > until
        {
            return Err(invalid("since is after until"));
        }
        Ok(q)
    }

    fn matches(&self, e: &Event) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.namespace, &e.namespace)
            && eq(&self.kind, &e.regarding.kind)
            && eq(&self.name, &e.regarding.name)
            && eq(&self.reason, &e.reason)
            && self.type_.is_none_or(|t| t == e.type_)
            && eq(&self.workload_kind, &e.workload.kind)
            && eq(&self.workload, &e.workload.name)
            && self
                .namespaces
                .as_ref()
                .is_none_or(|allowed| allowed.contains(&e.namespace))
    }
}

/// One page of results.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Event>,
    pub next_cursor: Option<Cursor>,
    /// Each item's cluster, when the store holds several (ClickHouse); empty for the archive,
    /// whose items are all this exporter's cluster.
    pub clusters: Vec<String>,
    /// The position of the last item.
    last: Option<Cursor>,
}

impl Page {
    /// A page read from another store.
    pub fn new(items: Vec<Event>, clusters: Vec<String>, next_cursor: Option<Cursor>) -> Self {
        Self {
            items,
            next_cursor,
            clusters,
            last: None,
        }
    }
}

/// The inclusive upper end of the scan in `(last_seen, seq)` order: just before the cursor,
/// else `until`.
fn upper(q: &Query) -> (u64, u64) {
    let until = (q.until.unwrap_or(u64::MAX), u64::MAX);
    match q.cursor {
        Some(c) if (c.last_seen, c.seq) <= until => match c.seq.checked_sub(1) {
            Some(seq) => (c.last_seen, seq),
            None if c.last_seen == 0 => (0, 0),
            None => (c.last_seen - 1, u64::MAX),
        },
        _ => until,
    }
}

impl Archive {
    /// Runs `q`: newest last occurrence first; ties broken by seq (first sighting), descending.
    pub fn query(&self, q: &Query) -> Result<Page> {
        let txn = self.db()?.begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let occurrences = txn.open_table(OCCURRENCES)?;
        let since = q.since.unwrap_or(0);
        let (top, top_seq) = upper(q);
        if q.cursor.is_some_and(|c| (c.last_seen, c.seq) == (0, 0)) || top < since {
            return Ok(Page::default());
        }
        // Access control: one permitted namespace is a namespace filter; several are merged.
        let permitted = match (&q.namespace, &q.namespaces) {
            (None, Some(set)) if set.is_empty() => return Ok(Page::default()),
            (None, Some(set)) if set.len() == 1 => set.first().cloned(),
            _ => None,
        };
        let namespace = q.namespace.as_ref().or(permitted.as_ref());
        // Candidates as (last_seen, seq), newest first, from the most selective index: the
        // rows of each key asked for, merged.
        let keyed: Vec<(Index, u64)> = match (namespace, &q.kind, &q.name, &q.reason, &q.namespaces)
        {
            (Some(ns), Some(kind), Some(name), ..) => {
                let key = object_key(ns, kind, name);
                vec![(BY_OBJECT, key), (BY_OBJECT_RECENT, key)]
            }
            (Some(ns), ..) => vec![(BY_NAMESPACE, name_key(ns))],
            (None, .., Some(set)) if set.len() <= MAX_MERGED => {
                set.iter().map(|ns| (BY_NAMESPACE, name_key(ns))).collect()
            }
            (None, _, _, Some(reason), _) => vec![(BY_REASON, name_key(reason))],
            _ => Vec::new(),
        };
        let candidates: Candidates = if keyed.is_empty() {
            let t = txn.open_table(BY_TIME)?;
            let range = t.range((since, 0)..=(top, top_seq))?;
            Box::new(range.rev().map(|r| Ok(r?.0.value())))
        } else {
            let mut streams = Vec::with_capacity(keyed.len());
            for (index, key) in keyed {
                let range = txn
                    .open_table(index)?
                    .range((key, since, 0)..=(key, top, top_seq))?;
                let stream: Candidates = Box::new(range.rev().map(|r| {
                    let (_, ts, seq) = r?.0.value();
                    Ok((ts, seq))
                }));
                streams.push(stream.peekable());
            }
            newest_first(streams)
        };
        let mut page = Page::default();
        for (scanned, candidate) in candidates.enumerate() {
            let (ts, seq) = candidate?;
            if scanned == MAX_SCANNED {
                // Resume at this row, which was not examined; this page may be short.
                page.next_cursor = Some(Cursor {
                    last_seen: ts,
                    seq: seq.saturating_add(1),
                });
                break;
            }
            let Some(event) = read_record(&records, &occurrences, seq, |v| v.to_event())? else {
                continue;
            };
            if !q.matches(&event) {
                continue;
            }
            if page.items.len() == q.limit {
                // One more match exists: the page is full and there is a next one.
                page.next_cursor = page.last;
                break;
            }
            page.last = Some(Cursor { last_seen: ts, seq });
            page.items.push(event);
        }
        Ok(page)
    }
}

/// An index keyed by (a hash, last_seen, seq).
type Index = redb::TableDefinition<'static, (u64, u64, u64), ()>;

/// Index rows as `(last_seen, seq)`, newest first.
type Candidates = Box<dyn Iterator<Item = Result<(u64, u64)>>>;

/// Merges newest-first streams into one newest-first stream; an error comes out as soon as it
/// is at the head of its stream.
fn newest_first(mut streams: Vec<Peekable<Candidates>>) -> Candidates {
    Box::new(std::iter::from_fn(move || {
        let mut best: Option<(usize, (u64, u64))> = None;
        for (i, stream) in streams.iter_mut().enumerate() {
            match stream.peek() {
                Some(Err(_)) => return stream.next(),
                Some(Ok(key)) if best.is_none_or(|(_, b)| *key > b) => best = Some((i, *key)),
                None | Some(Ok(_)) => {}
            }
        }
        best.and_then(|(i, _)| streams[i].next())
    }))
}

impl Archive {
    /// The namespaces that have archived records, sorted: a skip scan of [`BY_NAMESPACE`], one
    /// index seek and one record read per namespace. Two namespaces whose keys collide show
    /// as one (the one whose record is read): a reader permitted only the other misses it,
    /// never sees more than permitted.
    pub fn namespaces(&self) -> Result<Vec<String>> {
        let txn = self.db()?.begin_read()?;
        let index = txn.open_table(BY_NAMESPACE)?;
        let records = txn.open_table(RECORDS)?;
        let mut found = BTreeSet::new();
        let mut from = 0;
        while let Some(row) = index.range((from, 0, 0)..)?.next() {
            let (key, _, seq) = row?.0.value();
            if let Some(bytes) = records.get(seq)? {
                found.insert(record::decode(bytes.value())?.namespace);
            }
            match key.checked_add(1) {
                Some(next) => from = next,
                None => break,
            }
        }
        Ok(found.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_filters_match_exactly() {
        let mut e = crate::archive::record::tests::sample();
        let q = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Query::parse(&pairs, Timestamp::now()).unwrap()
        };
        assert!(q(&[("workload", "api"), ("workload_kind", "Deployment")]).matches(&e));
        assert!(!q(&[("workload", "ap")]).matches(&e));
        assert!(!q(&[("workload_kind", "StatefulSet")]).matches(&e));
        e.workload = crate::event::Workload::default();
        assert!(
            !q(&[("workload", "api")]).matches(&e),
            "unknown is no match"
        );
        assert!(Query::parse(&[("workload".into(), String::new())], Timestamp::now()).is_err());
    }
}
