//! Reading the archive: validated query parameters in, a page of records newest-first out,
//! with a cursor for the next page. The most selective index for the filters is scanned in
//! reverse key order, so a page touches about `limit` rows.

use jiff::Timestamp;
use redb::ReadableDatabase;

use super::{
    Archive, Result,
    record::{self, micros},
    schema::{BY_NAMESPACE, BY_OBJECT, BY_REASON, BY_TIME, RECORDS},
};
use crate::{config::parse_duration, event::Event};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// Longest accepted filter value: a DNS subdomain, the longest name Kubernetes allows.
const MAX_VALUE_LEN: usize = 253;

/// A page stops after examining this many index rows even if it is not full, so a filter that
/// rarely matches cannot turn one request into a scan of the whole archive; its cursor resumes
/// the scan.
const MAX_SCANNED: usize = 50_000;

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
    pub namespace: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub reason: Option<String>,
    pub type_: Option<String>,
    /// Inclusive bounds on the last occurrence, in µs.
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
    /// `format=table`.
    pub table: bool,
}

/// A position in the newest-first order: the next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub last_seen: u64,
    pub uid: String,
}

impl Cursor {
    /// `<last_seen hex>.<uid hex>.<checksum hex>`: opaque to users, checked on the way back.
    pub fn encode(&self) -> String {
        let body = format!("{:x}.{}", self.last_seen, hex(self.uid.as_bytes()));
        format!("{body}.{:08x}", checksum(body.as_bytes()))
    }

    pub fn decode(s: &str) -> Result<Self, InvalidQuery> {
        let bad = || invalid("cursor is not one this server issued (corrupt or edited)");
        let (body, sum) = s.rsplit_once('.').ok_or_else(bad)?;
        if u32::from_str_radix(sum, 16).ok() != Some(checksum(body.as_bytes())) || sum.len() != 8 {
            return Err(bad());
        }
        let (ts, uid) = body.split_once('.').ok_or_else(bad)?;
        let last_seen = u64::from_str_radix(ts, 16).map_err(|_| bad())?;
        let uid = unhex(uid)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        Ok(Self { last_seen, uid })
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// FNV-1a: catches corruption and casual edits (a cursor is a position, not a secret).
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
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
                "namespace",
                "kind",
                "name",
                "reason",
                "type",
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
                "namespace" => q.namespace = text()?,
                "kind" => q.kind = text()?,
                "name" => q.name = text()?,
                "reason" => q.reason = text()?,
                "type" => {
                    if value != "Normal" && value != "Warning" {
                        return Err(invalid(format!(
                            "type must be Normal or Warning, not `{value}`"
                        )));
                    }
                    q.type_ = Some(value.clone());
                }
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
            && eq(&self.type_, &e.type_)
    }
}

/// One page of results.
#[derive(Debug, Default)]
pub struct Page {
    pub items: Vec<Event>,
    pub next_cursor: Option<Cursor>,
}

/// The upper end of the scan in `(last_seen, uid)` order: the cursor, else `until`.
fn upper(q: &Query) -> (u64, Option<&str>) {
    match &q.cursor {
        Some(c) => {
            let until = q.until.unwrap_or(u64::MAX);
            if c.last_seen > until {
                (until, None)
            } else {
                (c.last_seen, Some(c.uid.as_str()))
            }
        }
        None => (q.until.unwrap_or(u64::MAX), None),
    }
}

impl Archive {
    /// Runs `q`: newest last occurrence first; ties broken by uid, descending.
    pub fn query(&self, q: &Query) -> Result<Page> {
        let txn = self.db().begin_read()?;
        let records = txn.open_table(RECORDS)?;
        let since = q.since.unwrap_or(0);
        let (top, after_uid) = upper(q);
        // Candidates as (last_seen, uid), newest first, from the most selective index.
        let mut candidates: Box<dyn Iterator<Item = Result<(u64, String)>>> =
            match (&q.namespace, &q.kind, &q.name, &q.reason) {
                (Some(ns), Some(kind), Some(name), _) => {
                    let t = txn.open_table(BY_OBJECT)?;
                    let (ns, kind, name) = (ns.as_str(), kind.as_str(), name.as_str());
                    let range =
                        t.range((ns, kind, name, since, "")..=(ns, kind, name, top, "\u{10ffff}"))?;
                    Box::new(range.rev().map(|r| {
                        let (k, _) = r?;
                        let (_, _, _, ts, uid) = k.value();
                        Ok((ts, uid.to_owned()))
                    }))
                }
                (Some(ns), ..) => {
                    let t = txn.open_table(BY_NAMESPACE)?;
                    let ns = ns.as_str();
                    let range = t.range((ns, since, "")..=(ns, top, "\u{10ffff}"))?;
                    Box::new(range.rev().map(|r| {
                        let (k, _) = r?;
                        let (_, ts, uid) = k.value();
                        Ok((ts, uid.to_owned()))
                    }))
                }
                (None, _, _, Some(reason)) => {
                    let t = txn.open_table(BY_REASON)?;
                    let reason = reason.as_str();
                    let range = t.range((reason, since, "")..=(reason, top, "\u{10ffff}"))?;
                    Box::new(range.rev().map(|r| {
                        let (k, _) = r?;
                        let (_, ts, uid) = k.value();
                        Ok((ts, uid.to_owned()))
                    }))
                }
                _ => {
                    let t = txn.open_table(BY_TIME)?;
                    let range = t.range((since, "")..=(top, "\u{10ffff}"))?;
                    Box::new(range.rev().map(|r| {
                        let (k, _) = r?;
                        let (ts, uid) = k.value();
                        Ok((ts, uid.to_owned()))
                    }))
                }
            };
        let mut page = Page::default();
        let mut scanned = 0;
        for candidate in &mut candidates {
            let (ts, uid) = candidate?;
            // Strictly after the cursor: at the cursor's time, only smaller uids.
            if ts == top && after_uid.is_some_and(|a| uid.as_str() >= a) {
                continue;
            }
            if scanned == MAX_SCANNED {
                // Resume from the last row examined; this page may be short.
                page.next_cursor = Some(Cursor {
                    last_seen: ts,
                    uid: format!("{uid}\u{10ffff}"),
                });
                break;
            }
            scanned += 1;
            let Some(bytes) = records.get(uid.as_str())? else {
                continue;
            };
            let event = record::decode(&uid, bytes.value())?;
            if !q.matches(&event) {
                continue;
            }
            if page.items.len() == q.limit {
                // One more match exists: the page is full and there is a next one.
                page.next_cursor = page.items.last().map(|e| Cursor {
                    last_seen: micros(e.last_seen),
                    uid: e.uid.clone(),
                });
                break;
            }
            page.items.push(event);
        }
        Ok(page)
    }
}

/// How long ago, the way kubectl prints it: `45s`, `12m`, `3h`, `2d`.
pub fn age(since: Timestamp, now: Timestamp) -> String {
    let secs = now.duration_since(since).as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The page as an aligned text table like `kubectl get events` (NAMESPACE first when the
/// query spans namespaces, as with `-A`).
pub fn table(page: &Page, with_namespace: bool, now: Timestamp) -> String {
    use std::fmt::Write;
    let mut rows: Vec<Vec<String>> = vec![
        [
            "NAMESPACE",
            "LAST SEEN",
            "TYPE",
            "REASON",
            "OBJECT",
            "MESSAGE",
            "COUNT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for e in &page.items {
        rows.push(vec![
            e.namespace.clone(),
            age(e.last_seen, now),
            e.type_.clone(),
            e.reason.clone(),
            format!("{}/{}", e.regarding.kind.to_lowercase(), e.regarding.name),
            e.message.replace(['\n', '\r', '\t'], " "),
            e.count.to_string(),
        ]);
    }
    if !with_namespace {
        for row in &mut rows {
            row.remove(0);
        }
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < columns {
                line.extend(std::iter::repeat_n(
                    ' ',
                    widths[c] - cell.chars().count() + 3,
                ));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(cursor) = &page.next_cursor {
        let _ = writeln!(out, "# more: add cursor={} to the query", cursor.encode());
    }
    out
}
