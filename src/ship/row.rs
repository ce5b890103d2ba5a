//! One archive record as a ClickHouse row (`JSONEachRow`), and the table's definition. Only
//! SQL that ClickHouse 18.16 and current releases both accept: no LowCardinality, no TTL, no
//! DateTime64 (µs times are kept as UInt64 next to the second-precision DateTime columns).

use jiff::Timestamp;
use serde::Serialize;

use crate::event::{Event, micros};

/// The row of one record of cluster `cluster`: every field of the API's item, plus `cluster`.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    pub cluster: &'a str,
    pub uid: &'a str,
    pub namespace: &'a str,
    pub kind: &'a str,
    pub name: &'a str,
    pub reason: &'a str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub message: &'a str,
    /// The version: a later count replaces the row with the earlier one.
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub first_seen_us: u64,
    pub last_seen_us: u64,
    pub source: &'a str,
    pub host: &'a str,
    pub object_uid: &'a str,
    pub object_namespace: &'a str,
    pub object_api_version: &'a str,
    pub field_path: &'a str,
    pub reporting_instance: &'a str,
    pub action: &'a str,
    pub event_name: &'a str,
    pub workload_kind: &'a str,
    pub workload: &'a str,
}

/// ClickHouse's `DateTime` text: `YYYY-MM-DD hh:mm:ss`, here in UTC (the columns are
/// `DateTime('UTC')`).
pub fn datetime(t: Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M:%S").to_string()
}

impl<'a> Row<'a> {
    pub fn of(cluster: &'a str, e: &'a Event) -> Self {
        Self {
            cluster,
            uid: &e.uid,
            namespace: &e.namespace,
            kind: &e.regarding.kind,
            name: &e.regarding.name,
            reason: &e.reason,
            type_: e.type_.as_str(),
            message: &e.message,
            count: e.count,
            first_seen: datetime(e.first_seen),
            last_seen: datetime(e.last_seen),
            first_seen_us: micros(e.first_seen),
            last_seen_us: micros(e.last_seen),
            source: &e.source,
            host: &e.host,
            object_uid: &e.regarding.uid,
            object_namespace: &e.regarding.namespace,
            object_api_version: &e.regarding.api_version,
            field_path: &e.regarding.field_path,
            reporting_instance: &e.reporting_instance,
            action: &e.action,
            event_name: &e.name,
            workload_kind: &e.workload.kind,
            workload: &e.workload.name,
        }
    }

    /// Appends the row as one line of `JSONEachRow`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        serde_json::to_writer(&mut *out, self).expect("a row of strings and integers serializes");
        out.push(b'\n');
    }
}

/// The table, created if missing. Keyed by (cluster, namespace, uid) and versioned by count, so
/// the latest version of a record replaces the older ones (at merge time: readers use `FINAL`),
/// and a batch shipped twice is invisible. A record's namespace never changes, so that key
/// replaces exactly as (cluster, uid) would, and a query for one namespace reads only its rows
/// (the sparse primary index selects them). Partitioned by the day of `first_seen`, which never
/// changes for a record: every version of it lands in one partition, where `FINAL` and merges
/// can replace it (they never look across partitions). Retention drops whole partitions.
pub fn create_table(database: &str, table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (\
         cluster String, uid String, namespace String, kind String, name String, \
         reason String, `type` String, message String, count UInt64, \
         first_seen DateTime('UTC'), last_seen DateTime('UTC'), \
         first_seen_us UInt64, last_seen_us UInt64, \
         source String, host String, object_uid String, object_namespace String, \
         object_api_version String, field_path String, reporting_instance String, \
         action String, event_name String, workload_kind String, workload String\
         ) ENGINE = ReplacingMergeTree(count) \
         PARTITION BY toYYYYMMDD(first_seen) ORDER BY (cluster, namespace, uid)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::record::tests::sample;

    #[test]
    fn a_row_is_one_json_line_with_utc_datetimes() {
        let e = sample();
        let mut out = Vec::new();
        Row::of("prod", &e).write_line(&mut out);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["cluster"], "prod");
        assert_eq!(v["type"], "Warning");
        assert_eq!(v["last_seen"], "2026-11-29 10:14:00");
        assert_eq!(v["last_seen_us"], micros(e.last_seen));
        assert_eq!(v["count"], 7);
        assert_eq!(v["workload"], "api");
    }

    #[test]
    fn the_table_is_keyed_by_cluster_namespace_uid() {
        let ddl = create_table("default", "kube_events");
        assert!(ddl.ends_with("ORDER BY (cluster, namespace, uid)"), "{ddl}");
        assert!(ddl.contains("ReplacingMergeTree(count)"), "{ddl}");
    }
}
