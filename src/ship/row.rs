//! One archive record as a ClickHouse row (`RowBinary`, written straight from the stored
//! record's bytes), and the table's definition. Only SQL that ClickHouse 18.16 and current
//! releases both accept: no LowCardinality, no TTL, no DateTime64 (µs times are kept as UInt64
//! next to the second-precision DateTime columns).

use crate::archive::record::{View, put_str};

/// The columns [`write_row`] writes, in its order.
pub const COLUMNS: &str = "cluster, uid, namespace, kind, name, reason, `type`, message, count, \
     first_seen, last_seen, first_seen_us, last_seen_us, source, host, object_uid, \
     object_namespace, object_api_version, field_path, reporting_instance, action, event_name, \
     workload_kind, workload";

/// `RowBinary`'s DateTime: seconds since the epoch as a little-endian UInt32 (a time past 2106
/// is kept at its end).
fn put_datetime(out: &mut Vec<u8>, us: u64) {
    let seconds = u32::try_from(us / 1_000_000).unwrap_or(u32::MAX);
    out.extend_from_slice(&seconds.to_le_bytes());
}

/// Appends the row of record `r` of cluster `cluster`, as [`COLUMNS`] lists them: every field
/// of the API's item, plus `cluster`. Its count is the row's version: a later count replaces
/// the row with the earlier one.
pub fn write_row(cluster: &str, r: &View<'_>, out: &mut Vec<u8>) {
    for s in [
        cluster,
        r.uid,
        r.namespace,
        r.kind,
        r.object_name,
        r.reason,
        r.type_.as_str(),
        r.message,
    ] {
        put_str(out, s);
    }
    out.extend_from_slice(&r.count.to_le_bytes());
    put_datetime(out, r.first_seen_us);
    put_datetime(out, r.last_seen_us);
    out.extend_from_slice(&r.first_seen_us.to_le_bytes());
    out.extend_from_slice(&r.last_seen_us.to_le_bytes());
    for s in [
        r.source,
        r.host,
        r.object_uid,
        r.object_namespace,
        r.api_version,
        r.field_path,
        r.reporting_instance,
        r.action,
        r.name,
        r.workload_kind,
        r.workload,
    ] {
        put_str(out, s);
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
    use crate::{
        archive::record::{encode, tests::sample, view},
        event::micros,
    };

    /// Reads one String of `RowBinary`.
    fn take_str<'a>(b: &mut &'a [u8]) -> &'a str {
        let (mut n, mut shift) = (0usize, 0);
        loop {
            let (&byte, rest) = b.split_first().expect("a length");
            *b = rest;
            n |= usize::from(byte & 0x7f) << shift;
            shift += 7;
            if byte < 0x80 {
                break;
            }
        }
        let (s, rest) = b.split_at(n);
        *b = rest;
        std::str::from_utf8(s).expect("utf-8")
    }

    fn take<const N: usize>(b: &mut &[u8]) -> [u8; N] {
        let (head, rest) = b.split_at(N);
        *b = rest;
        head.try_into().expect("N bytes")
    }

    #[test]
    fn a_row_holds_the_columns_in_their_order() {
        let e = sample();
        let mut stored = Vec::new();
        encode(&e, &mut stored);
        let mut out = Vec::new();
        write_row("prod", &view(&stored).expect("view"), &mut out);
        let mut b = out.as_slice();
        let strings: Vec<&str> = (0..8).map(|_| take_str(&mut b)).collect();
        assert_eq!(
            strings,
            [
                "prod",
                e.uid.as_str(),
                &e.namespace,
                &e.regarding.kind,
                &e.regarding.name,
                &e.reason,
                "Warning",
                &e.message
            ]
        );
        assert_eq!(u64::from_le_bytes(take(&mut b)), 7);
        let first = u32::from_le_bytes(take(&mut b));
        let last = u32::from_le_bytes(take(&mut b));
        assert_eq!(i64::from(last), e.last_seen.as_second());
        assert_eq!(i64::from(first), e.first_seen.as_second());
        assert_eq!(u64::from_le_bytes(take(&mut b)), micros(e.first_seen));
        assert_eq!(u64::from_le_bytes(take(&mut b)), micros(e.last_seen));
        let rest: Vec<&str> = (0..11).map(|_| take_str(&mut b)).collect();
        assert_eq!(rest[8], e.name);
        assert_eq!(rest[10], "api");
        assert!(b.is_empty(), "nothing after the last column");
        assert_eq!(COLUMNS.split(',').count(), 24, "one column per value");
    }

    #[test]
    fn the_table_is_keyed_by_cluster_namespace_uid() {
        let ddl = create_table("default", "kube_events");
        assert!(ddl.ends_with("ORDER BY (cluster, namespace, uid)"), "{ddl}");
        assert!(ddl.contains("ReplacingMergeTree(count)"), "{ddl}");
    }
}
