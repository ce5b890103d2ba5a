//! Reading the history back from ClickHouse (`--history-from clickhouse`): a validated
//! [`Query`] in, a [`Page`] out, with the archive's semantics: newest last occurrence first, a
//! cursor that resumes strictly after the last item, the same filters plus `cluster`.
//!
//! Each event shows once however many rows it has (updates, a batch sent twice, two replicas):
//! rows are grouped by (cluster, uid) and each column taken from the row with the highest count
//! (`argMax`), which every ClickHouse version does the same way, merged or not. Filters on what
//! never changes for an event (cluster, namespace, kind, name, reason, type) and the lower time
//! bound select rows before grouping, as a PREWHERE (the table is ordered by (cluster, namespace,
//! uid), so a cluster and namespace select parts of its index); an upper bound on the last
//! occurrence (the `until`, the cursor) also bounds the first sighting there, which skips the
//! day partitions after it. Filters on what an update changes (the
//! upper time bound, the cursor, the workload) select groups after, so an older version never
//! answers for a newer one. Ties in last occurrence are ordered by a hash of (cluster, uid), where the archive uses
//! its sequence numbers: cursors of one store do not fit the other.

use jiff::Timestamp;
use serde_json::Value;

use super::{Client, Result, ShipError};
use crate::{
    archive::query::{Cursor, Page, Query},
    event::{Event, ObjectRef, Workload},
};

/// The history in ClickHouse.
#[derive(Clone)]
pub struct History {
    client: Client,
}

/// A ClickHouse string literal: backslashes and quotes escaped.
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The columns an item needs, each from the version with the highest count.
const LATEST: [&str; 17] = [
    "namespace",
    "kind",
    "name",
    "reason",
    "type",
    "message",
    "source",
    "host",
    "object_uid",
    "object_namespace",
    "object_api_version",
    "field_path",
    "reporting_instance",
    "action",
    "event_name",
    "workload_kind",
    "workload",
];

impl History {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The SELECT for `q`, one row more than a page (to know whether there is a next one);
    /// `None` when nothing can match.
    pub fn select(&self, q: &Query) -> Option<String> {
        let mut rows = Vec::new();
        let eq = |column: &str, value: &Option<String>, out: &mut Vec<String>| {
            if let Some(v) = value {
                out.push(format!("`{column}` = {}", lit(v)));
            }
        };
        eq("cluster", &q.cluster, &mut rows);
        eq("namespace", &q.namespace, &mut rows);
        eq("kind", &q.kind, &mut rows);
        eq("name", &q.name, &mut rows);
        eq("reason", &q.reason, &mut rows);
        if let Some(t) = q.type_ {
            rows.push(format!("`type` = {}", lit(t.as_str())));
        }
        if let Some(set) = &q.namespaces {
            if set.is_empty() {
                return None;
            }
            let list: Vec<String> = set.iter().map(|n| lit(n)).collect();
            rows.push(format!("namespace IN ({})", list.join(", ")));
        }
        // The latest version is the last one seen: kept whenever it is recent enough.
        if let Some(since) = q.since {
            rows.push(format!("last_seen_us >= {since}"));
        }
        // An upper bound on the last occurrence (`until`, or the cursor's) bounds the first
        // sighting too, which never changes for a record and is never after any of its last
        // occurrences: a record first seen later has every version, the latest included, past
        // the bound, so its rows can go before grouping without changing a group that stays.
        let bound = [q.until, q.cursor.map(|c| c.last_seen)]
            .into_iter()
            .flatten()
            .min();
        if let Some(bound) = bound {
            rows.push(format!("first_seen_us <= {bound}"));
            // The same bound on the partition key's column (whole seconds, rounded down as the
            // column is) lets ClickHouse skip the days after it without opening them.
            rows.push(format!("first_seen <= toDateTime({})", bound / 1_000_000));
        }
        let mut groups = Vec::new();
        if let Some(until) = q.until {
            groups.push(format!("l_last_seen_us <= {until}"));
        }
        if let Some(c) = q.cursor {
            groups.push(format!(
                "(l_last_seen_us < {ls} OR (l_last_seen_us = {ls} AND k < {k}))",
                ls = c.last_seen,
                k = c.seq
            ));
        }
        if let Some(w) = &q.workload_kind {
            groups.push(format!("l_workload_kind = {}", lit(w)));
        }
        if let Some(w) = &q.workload {
            groups.push(format!("l_workload = {}", lit(w)));
        }
        let columns: Vec<String> = LATEST
            .iter()
            .chain(&["first_seen_us", "last_seen_us"])
            .map(|c| format!("argMax(`{c}`, count) AS l_{c}"))
            .collect();
        let clause = |word: &str, conditions: &[String]| {
            if conditions.is_empty() {
                String::new()
            } else {
                format!(" {word} {}", conditions.join(" AND "))
            }
        };
        Some(format!(
            "SELECT cluster, uid, cityHash64(cluster, uid) AS k, max(count) AS l_count, {} \
             FROM {}{} GROUP BY cluster, uid{} \
             ORDER BY l_last_seen_us DESC, k DESC LIMIT {} FORMAT JSONEachRow",
            columns.join(", "),
            self.client.table(),
            // PREWHERE: the filters' few columns are read first, and the long ones (message,
            // names) only for the granules where a row passed.
            clause("PREWHERE", &rows),
            clause("HAVING", &groups),
            q.limit + 1,
        ))
    }

    /// Runs `q` against ClickHouse.
    pub async fn query(&self, q: &Query) -> Result<Page> {
        if q.cursor.is_some_and(|c| (c.last_seen, c.seq) == (0, 0)) {
            return Ok(Page::default());
        }
        let Some(sql) = self.select(q) else {
            return Ok(Page::default());
        };
        let text = self.client.execute(&sql, Vec::new()).await?;
        let mut items = Vec::new();
        let mut clusters = Vec::new();
        let mut last = None;
        let mut next_cursor = None;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            if items.len() == q.limit {
                next_cursor = last;
                break;
            }
            let row: Value = serde_json::from_str(line).map_err(|e| ShipError::Unreadable {
                detail: e.to_string(),
            })?;
            let (event, cursor) = event(&row).ok_or_else(|| ShipError::Unreadable {
                detail: format!("a row lacks a column: {line}"),
            })?;
            clusters.push(text_of(&row, "cluster").unwrap_or_default());
            items.push(event);
            last = Some(cursor);
        }
        Ok(Page::new(items, clusters, next_cursor))
    }
}

fn text_of(row: &Value, key: &str) -> Option<String> {
    row.get(key)?.as_str().map(str::to_owned)
}

/// A 64-bit integer: ClickHouse quotes them in JSON by default.
fn number(row: &Value, key: &str) -> Option<u64> {
    let v = row.get(key)?;
    v.as_u64().or_else(|| v.as_str()?.parse().ok())
}

fn time(us: u64) -> Option<Timestamp> {
    Timestamp::from_microsecond(i64::try_from(us).ok()?).ok()
}

/// The event of one result row and its position.
fn event(row: &Value) -> Option<(Event, Cursor)> {
    let s = |c: &str| text_of(row, &format!("l_{c}"));
    let last_seen_us = number(row, "l_last_seen_us")?;
    let event = Event {
        uid: text_of(row, "uid")?,
        namespace: s("namespace")?,
        name: s("event_name")?,
        resource_version: String::new(),
        regarding: ObjectRef {
            kind: s("kind")?,
            namespace: s("object_namespace")?,
            name: s("name")?,
            uid: s("object_uid")?,
            api_version: s("object_api_version")?,
            field_path: s("field_path")?,
        },
        reason: s("reason")?,
        type_: s("type")?.parse().ok()?,
        message: s("message")?,
        count: number(row, "l_count")?,
        first_seen: time(number(row, "l_first_seen_us")?)?,
        last_seen: time(last_seen_us)?,
        source: s("source")?,
        host: s("host")?,
        reporting_instance: s("reporting_instance")?,
        action: s("action")?,
        workload: Workload {
            kind: s("workload_kind")?,
            name: s("workload")?,
        },
    };
    let cursor = Cursor {
        last_seen: last_seen_us,
        seq: number(row, "k")?,
    };
    Some((event, cursor))
}

#[cfg(test)]
mod tests {
    use std::{collections::BTreeSet, sync::Arc, time::Duration};

    use super::*;
    use crate::ship::ShipSettings;

    fn history() -> History {
        let settings = ShipSettings {
            endpoint: "http://ch:8123/".parse().expect("url"),
            user: None,
            password: None,
            database: "default".into(),
            table: "kube_events".into(),
            cluster: String::new(),
            retention: Duration::from_secs(86_400),
        };
        History::new(Client::new(settings).expect("client"))
    }

    #[test]
    fn values_are_quoted_and_escaped() {
        assert_eq!(lit("a'b\\c"), "'a\\'b\\\\c'");
        let q = Query {
            namespace: Some("x' OR 1=1 --".into()),
            limit: 10,
            ..Query::default()
        };
        let sql = history().select(&q).expect("sql");
        assert!(sql.contains("`namespace` = 'x\\' OR 1=1 --'"), "{sql}");
    }

    #[test]
    fn what_an_update_changes_is_filtered_after_grouping() {
        let q = Query {
            reason: Some("BackOff".into()),
            since: Some(5),
            until: Some(9),
            workload: Some("api".into()),
            cursor: Some(Cursor {
                last_seen: 8,
                seq: 3,
            }),
            limit: 100,
            ..Query::default()
        };
        let sql = history().select(&q).expect("sql");
        let (rows, groups) = sql.split_once("GROUP BY").expect("grouped");
        assert!(rows.contains("`reason` = 'BackOff'") && rows.contains("last_seen_us >= 5"));
        for after in ["l_last_seen_us <= 9", "l_workload = 'api'", "k < 3"] {
            assert!(groups.contains(after), "{after}: {sql}");
            assert!(!rows.contains(after), "{after}: {sql}");
        }
        assert!(sql.contains("LIMIT 101"));
        // The cursor's last occurrence (8) is tighter than `until` (9).
        assert!(rows.contains("first_seen_us <= 8"), "{sql}");
    }

    #[test]
    fn namespace_and_first_sighting_select_rows_before_grouping() {
        let q = Query {
            namespace: Some("shop".into()),
            since: Some(5),
            until: Some(9_500_000),
            limit: 100,
            ..Query::default()
        };
        let sql = history().select(&q).expect("sql");
        let (rows, _) = sql.split_once("GROUP BY").expect("grouped");
        let (_, filter) = rows
            .split_once(" PREWHERE ")
            .expect("a PREWHERE before GROUP BY");
        for before in [
            "`namespace` = 'shop'",
            "last_seen_us >= 5",
            "first_seen_us <= 9500000",
            "first_seen <= toDateTime(9)",
        ] {
            assert!(filter.contains(before), "{before}: {sql}");
        }
        let open = Query {
            namespace: Some("shop".into()),
            limit: 100,
            ..Query::default()
        };
        let sql = history().select(&open).expect("sql");
        assert!(
            !sql.contains("first_seen_us <=") && !sql.contains("first_seen <="),
            "no upper bound, no pre-filter: {sql}"
        );
    }

    #[test]
    fn no_permitted_namespace_asks_nothing() {
        let q = Query {
            namespaces: Some(Arc::new(BTreeSet::new())),
            limit: 10,
            ..Query::default()
        };
        assert_eq!(history().select(&q), None);
    }
}
