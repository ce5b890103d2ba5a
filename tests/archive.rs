//! The archive through its public API: 100k records queried against a brute-force model,
//! updates in place, retention with a plateauing file, the size cap, the HTTP query API's
//! validation (including random query strings), and the history page's rendering: its table,
//! escaping, errors, paging and weight.

use std::{collections::HashSet, time::Duration};

use axum::{Router, body::Body, http::Request};
use jiff::Timestamp;
use kube_event_exporter::{
    archive::{
        Archive, Batch, LedgerEntry, OnCorruption,
        query::{Cursor, Query},
        schema::OBJECT_RECENT_ROWS,
        writer::{WriterSettings, sweep},
    },
    event::{Event, EventType, ObjectRef, micros, uid_key},
    health::Health,
    http::{AppState, router},
    metrics::Metrics,
};
use tower::ServiceExt;

const REASONS: [&str; 8] = [
    "BackOff",
    "Pulled",
    "Created",
    "Started",
    "Unhealthy",
    "FailedScheduling",
    "Killing",
    "FailedMount",
];
const KINDS: [&str; 3] = ["Pod", "Deployment", "Node"];

fn base() -> Timestamp {
    "2026-11-20T00:00:00Z".parse().expect("time")
}

/// A deterministic event: namespace, object, reason, type and time all follow from `i`, which
/// is also its seq (so uid order and seq order agree).
fn event(i: u64, last_seen: Timestamp) -> Event {
    let ns = format!("ns-{}", i % 20);
    let kind = KINDS[(i % 3) as usize];
    let reason = REASONS[(i % 8) as usize];
    Event {
        uid: format!("uid-{i:08}"),
        namespace: ns.clone(),
        name: format!("obj-{}.{i:x}", i % 50),
        resource_version: i.to_string(),
        regarding: ObjectRef {
            kind: kind.into(),
            namespace: ns,
            name: format!("obj-{}", i % 50),
            uid: format!("objuid-{}", i % 50),
            api_version: "v1".into(),
            field_path: String::new(),
        },
        reason: reason.into(),
        type_: if i.is_multiple_of(5) {
            EventType::Warning
        } else {
            EventType::Normal
        },
        message: format!("{reason} happened to obj-{} ({i})", i % 50),
        count: 1 + i % 7,
        first_seen: last_seen,
        last_seen,
        source: "kubelet".into(),
        host: format!("node-{}", i % 5),
        reporting_instance: String::new(),
        action: String::new(),
        workload: kube_event_exporter::event::Workload::default(),
    }
}

fn commit_all(archive: &Archive, events: &[Event]) {
    commit_updates(archive, events, |_| None);
}

/// Commits `events` as updates of what the archive holds: `replaces` gives the last occurrence
/// each is indexed under now.
fn commit_updates(
    archive: &Archive,
    events: &[Event],
    replaces: impl Fn(&Event) -> Option<Timestamp>,
) {
    for chunk in events.chunks(1000) {
        let mut batch = Batch::default();
        for e in chunk {
            let seq: u64 = e.uid.trim_start_matches("uid-").parse().expect("uid-<seq>");
            batch.put(seq, e, replaces(e).map(micros), usize::MAX);
            let entry = LedgerEntry {
                key: uid_key(&e.uid),
                count: e.count,
                touched: 0,
                archived: Some(micros(e.last_seen)),
            };
            batch.ledger.insert(seq, entry);
            batch.next_seq = batch.next_seq.max(seq + 1);
        }
        archive.commit(&batch).expect("commit");
    }
}

fn query(pairs: &[(&str, String)]) -> Query {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Query::parse(&pairs, Timestamp::now()).expect("valid query")
}

/// Walks every page; returns the uids in order.
fn walk(archive: &Archive, mut q: Query) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let page = archive.query(&q).expect("query");
        assert!(page.items.len() <= q.limit);
        out.extend(page.items.iter().map(|e| e.uid.clone()));
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => return out,
        }
    }
}

/// What the model says: newest last occurrence first, ties by uid descending.
fn expected(events: &[Event], keep: impl Fn(&Event) -> bool) -> Vec<String> {
    let mut v: Vec<&Event> = events.iter().filter(|e| keep(e)).collect();
    v.sort_by(|a, b| (b.last_seen, &b.uid).cmp(&(a.last_seen, &a.uid)));
    v.iter().map(|e| e.uid.clone()).collect()
}

/// Every object of `namespace` (each kind and name), whole histories, against the model.
fn every_object_answers_exactly(archive: &Archive, events: &[Event], namespace: &str) {
    for kind in KINDS {
        for name in (0..50).map(|n| format!("obj-{n}")) {
            let q = query(&[
                ("namespace", namespace.into()),
                ("kind", kind.into()),
                ("name", name.clone()),
                ("limit", "40".into()),
            ]);
            let want = expected(events, |e| {
                e.namespace == namespace && e.regarding.kind == kind && e.regarding.name == name
            });
            assert_eq!(walk(archive, q), want, "{kind}/{name}");
        }
    }
}

/// The object index's rows (`total`) are each in one of its two tables, the recent one no bigger
/// than its bound and one batch (1,000 rows).
fn assert_object_rows_split(path: &std::path::Path, total: u64) {
    let db = redb::Database::open(path).expect("open");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("txn");
    let rows = |name: &str| {
        let def: redb::TableDefinition<(u64, u64, u64), ()> = redb::TableDefinition::new(name);
        redb::ReadableTableMetadata::len(&txn.open_table(def).expect("table")).expect("len")
    };
    let (settled, recent) = (rows("by_object"), rows("by_object_recent"));
    assert_eq!(settled + recent, total);
    assert!(
        settled > 0 && recent <= OBJECT_RECENT_ROWS + 1000,
        "{settled} + {recent}"
    );
}

#[test]
fn hundred_thousand_records_answer_every_kind_of_query_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    // 100k events over a week, at 6-second steps, with ties on purpose (i / 2).
    let mut events: Vec<Event> = (0..100_000u64)
        .map(|i| event(i, base() + Duration::from_secs((i / 2) * 6)))
        .collect();
    commit_all(&archive, &events);
    assert_eq!(archive.record_count().expect("count"), 100_000);

    // Updates rewrite the record in place: 5,000 events happen again later.
    let later = base() + Duration::from_secs(8 * 86_400);
    let mut before = std::collections::HashMap::new();
    for (n, i) in (0..100_000).step_by(20).enumerate() {
        let e = &mut events[i];
        before.insert(e.uid.clone(), e.last_seen);
        e.count += 10;
        e.last_seen = later + Duration::from_secs(n as u64);
    }
    let updated: Vec<Event> = events.iter().step_by(20).cloned().collect();
    commit_updates(&archive, &updated, |e| before.get(&e.uid).copied());
    assert_eq!(
        archive.record_count().expect("count"),
        100_000,
        "updates add no rows"
    );
    let first_updated = archive.get(20).expect("get").expect("present");
    assert_eq!(first_updated.count, events[20].count);
    assert_eq!(
        first_updated.first_seen, events[20].first_seen,
        "first_seen keeps the earliest"
    );

    let day = |d: u64| base() + Duration::from_secs(d * 86_400);
    let rfc = |t: Timestamp| t.to_string();

    // By namespace, all pages.
    let q = query(&[("namespace", "ns-7".into()), ("limit", "1000".into())]);
    assert_eq!(
        walk(&archive, q),
        expected(&events, |e| e.namespace == "ns-7")
    );

    // By namespace and time window.
    let (since, until) = (day(2), day(3));
    let q = query(&[
        ("namespace", "ns-3".into()),
        ("since", rfc(since)),
        ("until", rfc(until)),
        ("limit", "137".into()),
    ]);
    assert_eq!(
        walk(&archive, q),
        expected(&events, |e| e.namespace == "ns-3"
            && e.last_seen >= since
            && e.last_seen <= until)
    );

    // By involved object, with a window.
    let q = query(&[
        ("namespace", "ns-4".into()),
        ("kind", "Pod".into()),
        ("name", "obj-24".into()),
        ("since", rfc(day(1))),
        ("limit", "50".into()),
    ]);
    let want = expected(&events, |e| {
        e.namespace == "ns-4"
            && e.regarding.kind == "Pod"
            && e.regarding.name == "obj-24"
            && e.last_seen >= day(1)
    });
    assert!(!want.is_empty());
    assert_eq!(walk(&archive, q), want);
    // Every object of a namespace, whole histories: their rows were written in 100 batches
    // and updated, so they lie in both object tables (checked at the end).
    every_object_answers_exactly(&archive, &events, "ns-9");

    // By reason and type across namespaces.
    let q = query(&[
        ("reason", "BackOff".into()),
        ("type", "Warning".into()),
        ("limit", "1000".into()),
    ]);
    assert_eq!(
        walk(&archive, q),
        expected(&events, |e| e.reason == "BackOff"
            && e.type_ == EventType::Warning)
    );

    // Only a time window.
    let (since, until) = (day(5), day(5) + Duration::from_secs(3_600));
    let q = query(&[
        ("since", rfc(since)),
        ("until", rfc(until)),
        ("limit", "1000".into()),
    ]);
    assert_eq!(
        walk(&archive, q),
        expected(&events, |e| e.last_seen >= since && e.last_seen <= until)
    );

    // The default page: the 100 newest.
    let page = archive.query(&query(&[])).expect("query");
    let all = expected(&events, |_| true);
    assert_eq!(
        page.items.iter().map(|e| e.uid.clone()).collect::<Vec<_>>(),
        all[..100]
    );
    assert!(page.next_cursor.is_some());

    drop(archive);
    assert_object_rows_split(&dir.path().join("a.redb"), 100_000);
}

#[test]
fn retention_deletes_what_is_old_and_the_file_plateaus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let settings = WriterSettings {
        retention: Duration::from_secs(10 * 3_600),
        max_bytes: None,
    };
    let mut sizes = Vec::new();
    // Forty hours of churn, 2,000 new records an hour, ten hours kept.
    for hour in 0..40u64 {
        let now = base() + Duration::from_secs(hour * 3_600);
        let events: Vec<Event> = (0..2_000).map(|i| event(hour * 2_000 + i, now)).collect();
        commit_all(&archive, &events);
        let swept = sweep(&archive, settings, now).expect("sweep");
        if hour >= 11 {
            assert_eq!(
                swept.retention, 2_000,
                "hour {hour}: one hour's records expire"
            );
        }
        sizes.push(archive.file_bytes());
    }
    let now = base() + Duration::from_secs(39 * 3_600);
    // What is newer than the retention stays, what is older went.
    assert_eq!(archive.record_count().expect("count"), 11 * 2_000);
    assert!(archive.get(28 * 2_000).expect("get").is_none());
    assert!(archive.get(29 * 2_000).expect("get").is_some());
    let q = query(&[(
        "until",
        (now - Duration::from_secs(10 * 3_600 + 1)).to_string(),
    )]);
    assert!(archive.query(&q).expect("query").items.is_empty());
    // Steady state from hour 15 on: the file no longer grows (freed pages are reused).
    let (at15, at39) = (sizes[15], sizes[39]);
    assert!(
        at39 <= at15 + at15 / 10,
        "file grew from {at15} to {at39} bytes under steady churn: {sizes:?}"
    );
}

#[test]
fn the_size_cap_evicts_the_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let events: Vec<Event> = (0..60_000u64)
        .map(|i| event(i, base() + Duration::from_secs(i)))
        .collect();
    commit_all(&archive, &events);
    let used = archive.used_bytes().expect("used");
    let cap = used / 2;
    let settings = WriterSettings {
        retention: Duration::from_secs(3_650 * 86_400),
        max_bytes: Some(cap),
    };
    let swept = sweep(&archive, settings, base()).expect("sweep");
    assert!(swept.size > 0 && swept.retention == 0);
    assert!(archive.used_bytes().expect("used") <= cap);
    // The newest survive, the oldest went.
    assert!(archive.get(59999).expect("get").is_some());
    assert!(archive.get(0).expect("get").is_none());
}

#[test]
fn an_update_at_the_same_time_keeps_one_row_in_every_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let t = base();
    let mut e = event(5, t);
    commit_all(&archive, std::slice::from_ref(&e));
    // The count moves within the same second, then the event recurs a minute later.
    for (count, last_seen) in [(2, t), (3, t + Duration::from_secs(60))] {
        let before = e.last_seen;
        e.count = count;
        e.last_seen = last_seen;
        commit_updates(&archive, std::slice::from_ref(&e), |_| Some(before));
        for filter in [
            vec![],
            vec![("namespace", e.namespace.clone())],
            vec![("reason", e.reason.clone())],
            vec![
                ("namespace", e.namespace.clone()),
                ("kind", e.regarding.kind.clone()),
                ("name", e.regarding.name.clone()),
            ],
        ] {
            let page = archive.query(&query(&filter)).expect("query");
            let counts: Vec<u64> = page.items.iter().map(|r| r.count).collect();
            assert_eq!(counts, [count], "{filter:?}");
            assert_eq!(page.items[0].last_seen, last_seen);
        }
    }
}

/// An event that carries no first time gets its last occurrence as one; an update must not
/// move the record's first sighting later (shipped rows are partitioned by it), but an earlier
/// one is taken.
#[test]
fn an_update_never_moves_the_first_sighting_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let t = base();
    let mut e = event(5, t);
    commit_all(&archive, std::slice::from_ref(&e));
    let later = t + Duration::from_secs(3600);
    (e.count, e.first_seen, e.last_seen) = (2, later, later);
    commit_updates(&archive, std::slice::from_ref(&e), |_| Some(t));
    let stored = archive.get(5).expect("get").expect("the record");
    assert_eq!(
        (stored.count, stored.first_seen, stored.last_seen),
        (2, t, later)
    );
    let earlier = t - Duration::from_secs(60);
    (e.count, e.first_seen) = (3, earlier);
    commit_updates(&archive, std::slice::from_ref(&e), |_| Some(later));
    let stored = archive.get(5).expect("get").expect("the record");
    assert_eq!((stored.count, stored.first_seen), (3, earlier));
    assert_eq!(
        stored.message, e.message,
        "the rest of the record is the update's"
    );
}

/// A repeat that moves only the count, the last occurrence and the resourceVersion writes
/// those apart from the record (the record's bytes stay as written); every reader sees the
/// repeat, and a change of anything else rewrites the record.
#[test]
fn a_repeat_writes_its_occurrence_apart_and_every_reader_sees_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.redb");
    let archive = Archive::open(&path)
        .expect("open")
        .with_outbox(true)
        .expect("outbox");
    let t = base();
    let mut e = event(5, t);
    commit_all(&archive, std::slice::from_ref(&e));
    let stored_bytes = |path: &std::path::Path| {
        let records: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("records");
        let db = redb::Database::open(path).expect("open");
        let txn = redb::ReadableDatabase::begin_read(&db).expect("txn");
        let table = txn.open_table(records).expect("records");
        table.get(5).expect("get").expect("record").value().to_vec()
    };
    drop(archive);
    let written = stored_bytes(&path);

    let archive = Archive::open(&path)
        .expect("open")
        .with_outbox(true)
        .expect("outbox");
    let later = t + Duration::from_secs(90);
    (e.count, e.last_seen, e.resource_version) = (9, later, "777".into());
    commit_updates(&archive, std::slice::from_ref(&e), |_| Some(t));
    assert_eq!(archive.get(5).expect("get"), Some(e.clone()));
    let page = archive.query(&query(&[])).expect("query");
    assert_eq!(page.items, [e.clone()]);
    assert_eq!(archive.recent(0, 10).expect("recent"), [e.clone()]);
    let restored = archive.restore(0).expect("restore");
    assert_eq!(restored.ledger.len(), 1);
    assert_eq!(restored.ledger[0].1.count, 9);
    let mut shipped = Vec::new();
    archive
        .outbox_read(10, |v| shipped.push((v.count, v.last_seen_us)))
        .expect("outbox");
    assert_eq!(shipped, [(9, micros(later))]);
    drop(archive);
    assert_eq!(
        stored_bytes(&path),
        written,
        "the record itself was not rewritten"
    );

    // A new message is a new record, which carries its own occurrence from then on.
    let archive = Archive::open(&path).expect("open");
    e.message = "something else".into();
    commit_updates(&archive, std::slice::from_ref(&e), |_| Some(later));
    assert_eq!(archive.get(5).expect("get"), Some(e.clone()));
    (e.count, e.last_seen) = (10, later + Duration::from_secs(1));
    commit_updates(&archive, std::slice::from_ref(&e), |_| Some(later));
    assert_eq!(archive.get(5).expect("get"), Some(e.clone()));
    // Retention takes both.
    archive.delete_older_than(u64::MAX, 10).expect("delete");
    assert_eq!(archive.get(5).expect("get"), None);
    assert_eq!(archive.record_count().expect("count"), 0);
}

#[test]
fn the_ledger_comes_back_from_the_records_and_the_ledger_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let recent = base() + Duration::from_secs(3600);
    // uid-1: archived, count 3 in its record. uid-2: rate limited, only in the ledger table.
    // uid-3: archived but last seen before the window.
    let mut events = [event(1, recent), event(2, recent), event(3, base())];
    events[0].count = 3;
    let mut batch = Batch::default();
    for e in [&events[0], &events[2]] {
        let seq: u64 = e.uid.trim_start_matches("uid-").parse().expect("seq");
        batch.put(seq, e, None, usize::MAX);
    }
    // A dropped update of uid-1 (count 5) left a ledger row ahead of its record.
    for (seq, count, archived) in [(1, 5, Some(micros(recent))), (2, 4, None)] {
        let key = uid_key(&format!("uid-{seq:08}"));
        let entry = LedgerEntry {
            key,
            count,
            touched: 7,
            archived,
        };
        batch.ledger.insert(seq, entry);
    }
    batch.next_seq = 4;
    archive.commit(&batch).expect("commit");
    let restored = archive
        .restore(micros(recent - Duration::from_secs(60)))
        .expect("restore");
    let mut ledger = restored.ledger;
    ledger.sort_by_key(|(seq, _)| *seq);
    let got: Vec<_> = ledger
        .iter()
        .map(|(seq, e)| (*seq, e.key, e.count, e.archived))
        .collect();
    assert_eq!(
        got,
        [
            (1, uid_key(&events[0].uid), 5, Some(micros(recent))),
            (2, uid_key(&events[1].uid), 4, None),
        ]
    );
    assert_eq!(ledger[0].1.touched, micros(recent) / 1_000_000);
    assert_eq!(restored.next_seq, 4);
}

#[test]
fn an_archive_of_another_layout_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("old.redb");
    let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    {
        // The first layout: no version, a next_seq, a ledger keyed by uid strings.
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("txn");
        txn.open_table(meta)
            .expect("meta")
            .insert("next_seq", 7)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let err = Archive::open(&path).err().expect("refused").to_string();
    assert!(
        err.contains("layout version 1") && err.contains("move it away"),
        "{err}"
    );
    // Nothing was written to it.
    let db = redb::Database::open(&path).expect("still a redb file");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("txn");
    let table = txn.open_table(meta).expect("meta");
    assert!(table.get("schema").expect("get").is_none());
    assert_eq!(
        table.get("next_seq").expect("get").map(|v| v.value()),
        Some(7)
    );
    // The layout before occurrences were kept apart opens as it is and is marked current, so
    // that an older exporter refuses it from then on.
    let previous = dir.path().join("previous.redb");
    let records: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("records");
    {
        let archive = Archive::open(&previous).expect("open");
        commit_all(&archive, &[event(1, base())]);
    }
    let set_schema = |path: &std::path::Path, version: u64| {
        let db = redb::Database::open(path).expect("open");
        let txn = db.begin_write().expect("txn");
        txn.open_table(meta)
            .expect("meta")
            .insert("schema", version)
            .expect("insert");
        // Version 2 had no occurrence table.
        txn.delete_table(redb::TableDefinition::<u64, (u64, u64, &str)>::new(
            "occurrences",
        ))
        .expect("delete");
        txn.commit().expect("commit");
    };
    set_schema(&previous, 2);
    let archive = Archive::open(&previous).expect("layout 2 opens");
    assert_eq!(archive.get(1).expect("get"), Some(event(1, base())));
    drop(archive);
    let db = redb::Database::open(&previous).expect("open");
    let txn = redb::ReadableDatabase::begin_read(&db).expect("txn");
    assert_eq!(
        txn.open_table(meta)
            .expect("meta")
            .get("schema")
            .expect("get")
            .map(|v| v.value()),
        Some(3)
    );
    let records = txn.open_table(records).expect("records");
    assert_eq!(redb::ReadableTableMetadata::len(&records).expect("len"), 1);
    drop(records);
    drop((txn, db));
    set_schema(&previous, 4);
    let err = Archive::open(&previous).err().expect("refused").to_string();
    assert!(err.contains("layout version 4"), "{err}");

    // A current archive reopens.
    let current = dir.path().join("new.redb");
    commit_all(&Archive::open(&current).expect("open"), &[event(1, base())]);
    assert_eq!(
        Archive::open(&current)
            .expect("reopen")
            .record_count()
            .expect("count"),
        1
    );
}

/// Four 0xFF bytes at every page-aligned offset of a valid archive (and in the middle of each
/// page): each damaged copy either opens and answers every query, or is refused as damaged
/// (with `OnCorruption::Fail`), or is moved aside for a new archive. Never a panic, never a
/// query error after a successful open.
#[test]
fn a_damaged_archive_is_refused_or_moved_aside_never_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.redb");
    let events: Vec<Event> = (0..1000).map(|i| event(i, base())).collect();
    commit_all(&Archive::open(&good).expect("open"), &events);
    let bytes = std::fs::read(&good).expect("read");
    let (mut refused, mut opened) = (0, 0);
    for offset in (0..bytes.len()).step_by(2048) {
        eprintln!("damaging offset {offset}");
        let path = dir.path().join("damaged.redb");
        let mut damaged = bytes.clone();
        damaged[offset..offset + 4].fill(0xFF);
        std::fs::write(&path, &damaged).expect("write");
        let outcome = std::panic::catch_unwind(|| match Archive::open(&path) {
            Ok(archive) => {
                let q = query(&[("limit", "1000".into())]);
                walk(&archive, q).len()
            }
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.contains("damaged") || message.contains("cannot open"),
                    "offset {offset}: {message}"
                );
                usize::MAX
            }
        });
        match outcome {
            Ok(usize::MAX) => refused += 1,
            Ok(n) => {
                assert_eq!(n, events.len(), "offset {offset}: opened but lost records");
                opened += 1;
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
        std::fs::remove_file(&path).expect("remove");
    }
    assert!(
        refused > 0 && opened > 0,
        "refused {refused}, opened {opened}"
    );

    // Moved aside: the damaged file is kept next to a new, empty archive.
    let path = dir.path().join("aside.redb");
    let mut damaged = bytes.clone();
    let header_page = 4096;
    damaged[header_page..header_page + 4].fill(0xFF);
    std::fs::write(&path, &damaged).expect("write");
    assert!(
        Archive::open(&path).is_err(),
        "the damaged page is refused by default"
    );
    let archive = Archive::open_with(&path, OnCorruption::MoveAside).expect("a new archive");
    assert_eq!(archive.record_count().expect("count"), 0);
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("aside.redb.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(dir.path().join(&aside[0])).expect("read"),
        damaged,
        "the damaged file is kept as it was"
    );
}

/// The HTTP routes over `archive`, in process: requests go through the router as a server
/// would pass them (no socket).
fn app(archive: Archive) -> Router {
    router(AppState {
        metrics: std::sync::Arc::new(Metrics::new()),
        health: std::sync::Arc::new(Health::new(Duration::from_secs(60))),
        archive,
        auth: None,
        history: None,
        cluster: "".into(),
    })
}

/// A response's status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// `GET path_and_query`, normalised as an HTTP client would send it (percent-encoding what a
/// request line cannot hold).
async fn get(app: &Router, path_and_query: &str, accept: Option<&str>) -> Answer {
    let url = reqwest::Url::parse(&format!("http://localhost{path_and_query}")).expect("url");
    let uri = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let mut request = Request::get(uri);
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("the router is infallible");
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    Answer {
        status,
        body: String::from_utf8(bytes.to_vec()).expect("utf-8"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_parameter_is_a_400_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    commit_all(
        &archive,
        &(0..10).map(|i| event(i, base())).collect::<Vec<_>>(),
    );
    let app = app(archive);
    let long = "x".repeat(300);
    let forged = {
        let good = Cursor {
            last_seen: 5,
            seq: 1,
        }
        .encode();
        format!("{}0{}", &good[..1], &good[2..])
    };
    for (query, names) in [
        ("type=Critical".to_owned(), "type"),
        ("since=yesterday".to_owned(), "since"),
        ("until=2026-13-45T99:00:00Z".to_owned(), "until"),
        ("since=1h&until=2h".to_owned(), "since is after until"),
        ("limit=0".to_owned(), "limit"),
        ("limit=1001".to_owned(), "limit"),
        ("limit=ten".to_owned(), "limit"),
        ("cursor=abc".to_owned(), "cursor"),
        (format!("cursor={forged}"), "cursor"),
        (format!("name={long}"), "name"),
        ("namespace=".to_owned(), "namespace"),
        ("format=xml".to_owned(), "format"),
        ("reason=BackOff&reason=Pulled".to_owned(), "reason"),
    ] {
        let r = get(&app, &format!("/api/v1/events?{query}"), None).await;
        assert_eq!(r.status, 400, "{query}");
        let body = r.json();
        let msg = body["error"].as_str().expect("error message");
        assert!(msg.contains(names), "{query}: {msg}");
    }
    // Unknown parameters are ignored, as Prometheus's API does.
    let r = get(&app, "/api/v1/events?color=blue&limit=3", None).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_query_strings_never_yield_a_5xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    commit_all(
        &archive,
        &(0..200)
            .map(|i| event(i, base() + Duration::from_secs(i)))
            .collect::<Vec<_>>(),
    );
    let app = app(archive);
    let keys = [
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
        "x",
        "",
    ];
    let values = [
        "",
        "ns-1",
        "Pod",
        "Warning",
        "Normal",
        "2h",
        "7d",
        "0",
        "1",
        "1000",
        "1001",
        "-1",
        "2026-11-20T00:00:00Z",
        "9999-99-99",
        "%",
        "%zz",
        "%00",
        "%ff%fe",
        "a.b.c",
        "0.0.00000000",
        "table",
        "json",
        "\u{1F600}",
        "1e9",
        "18446744073709551616s",
        "0.7570696b.aaaaaaaa",
        "+",
        "&",
        "=",
    ];
    // xorshift: reproducible, no extra dependency.
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut statuses = HashSet::new();
    for _ in 0..1_500 {
        let parts: Vec<String> = (0..=next(4))
            .map(|_| format!("{}={}", keys[next(keys.len())], values[next(values.len())]))
            .collect();
        let query = parts.join(if next(5) == 0 { ";" } else { "&" });
        let r = get(&app, &format!("/api/v1/events?{query}"), None).await;
        let status = r.status;
        assert!(status == 200 || status == 400, "{query} → {status}");
        statuses.insert(status);
        if status == 400 {
            let body = r.json();
            assert!(
                body["error"].as_str().is_some_and(|m| !m.is_empty()),
                "{query}"
            );
        }
    }
    assert_eq!(
        statuses.len(),
        2,
        "both good and bad queries were generated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_table_pages_carry_the_spec_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    // Kubernetes times are whole seconds (or µs); the archive keeps µs.
    let now = Timestamp::now().round(jiff::Unit::Second).expect("round");
    // 10: a Warning about a Deployment.
    let mut e = event(10, now - Duration::from_secs(330));
    e.first_seen = now - Duration::from_secs(900);
    commit_all(&archive, &[e.clone()]);
    let app = app(archive);

    let body = get(
        &app,
        &format!("/api/v1/events?namespace={}", e.namespace),
        None,
    )
    .await
    .json();
    let item = &body["items"][0];
    for (field, want) in [
        ("uid", serde_json::json!(e.uid)),
        ("namespace", serde_json::json!(e.namespace)),
        ("kind", serde_json::json!("Deployment")),
        ("name", serde_json::json!(e.regarding.name)),
        ("reason", serde_json::json!(e.reason)),
        ("type", serde_json::json!("Warning")),
        ("message", serde_json::json!(e.message)),
        ("count", serde_json::json!(e.count)),
        ("first_seen", serde_json::json!(e.first_seen.to_string())),
        ("last_seen", serde_json::json!(e.last_seen.to_string())),
        ("source", serde_json::json!("kubelet")),
        ("host", serde_json::json!(e.host)),
    ] {
        assert_eq!(item[field], want, "{field}");
    }
    assert!(body["next_cursor"].is_null());

    for (path, accept) in [
        ("/api/v1/events?format=table", None),
        ("/api/v1/events", Some("text/plain")),
    ] {
        let text = get(&app, path, accept).await.body;
        let mut lines = text.lines();
        let header = lines.next().expect("header");
        assert!(
            header.starts_with("NAMESPACE   LAST SEEN   TYPE      REASON"),
            "{text}"
        );
        let row: Vec<&str> = lines.next().expect("row").split_whitespace().collect();
        assert_eq!(
            row[..5],
            [
                e.namespace.as_str(),
                "5m",
                "Warning",
                e.reason.as_str(),
                "deployment/obj-10"
            ],
            "{text}"
        );
        assert_eq!(row.last(), Some(&e.count.to_string().as_str()));
    }
}

/// The `<tbody>` of a history page.
fn tbody(html: &str) -> &str {
    let start = html.find("<tbody>").expect("a table body");
    let end = html.find("</tbody>").expect("a closed table body");
    &html[start..end]
}

/// The `value` of the page's input named `name`, still HTML-escaped.
fn input_value<'a>(html: &'a str, name: &str) -> &'a str {
    let at = html
        .find(&format!("name={name} "))
        .unwrap_or_else(|| panic!("an input named {name}"));
    let rest = &html[at..];
    let start = rest.find("value=\"").expect("a value") + "value=\"".len();
    let len = rest[start..].find('"').expect("a closed value");
    &rest[start..start + len]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_lists_events_newest_first_in_an_accessible_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let now = Timestamp::now().round(jiff::Unit::Second).expect("round");
    // 10: a Warning, 5½ minutes ago; 11 and 12: Normal, later.
    let mut events: Vec<Event> = (10..13)
        .map(|i| event(i, now - Duration::from_secs(330 - 60 * (i - 10))))
        .collect();
    events[2].message = "line one\nline two".into();
    commit_all(&archive, &events);
    let app = app(archive);

    let r = get(&app, "/", Some("text/html")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let html = &r.body;
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<meta name=viewport"));
    assert!(html.contains("<caption>3 events archived, newest first"));
    for column in [
        "Last seen",
        "Type",
        "Namespace",
        "Object",
        "Reason",
        "Message",
    ] {
        assert!(
            html.contains(&format!("<th scope=col>{column}</th>")),
            "{column}"
        );
    }
    // Every form control has a label.
    for id in html
        .split(" id=")
        .skip(1)
        .map(|s| s.split([' ', '>']).next().expect("an id").trim_matches('"'))
    {
        if id.starts_with("f-") && id != "f-ago" {
            assert!(
                html.contains(&format!("<label for={id}>")),
                "{id} unlabelled"
            );
        }
    }
    let body = tbody(html);
    let positions: Vec<usize> = [12, 11, 10]
        .iter()
        .map(|i| body.find(&format!("obj-{i}<")).expect("a row per event"))
        .collect();
    assert!(positions.is_sorted(), "newest first: {body}");
    let warning = events[0].clone();
    assert!(body.contains("<tr class=w>"), "the Warning row stands out");
    assert!(
        body.contains("<strong><span aria-hidden=true>⚠ </span>Warning</strong>"),
        "with a text marker"
    );
    assert_eq!(body.matches("<tr class=w>").count(), 1);
    let when = warning.last_seen.to_string();
    assert!(
        body.contains(&format!(
            "<time datetime=\"{when}\" title=\"{when}\">5 min ago</time>"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<a href=\"?namespace={ns}&amp;kind=Deployment&amp;name=obj-10\">Deployment/obj-10</a>",
            ns = warning.namespace
        )),
        "each row links to its object: {body}"
    );
    assert!(body.contains("<td class=m>line one\nline two</td>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_escapes_every_user_string() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let mut e = event(1, base());
    let nasty = r#"<script>alert("x")</script> & 'quoted' <img src=x onerror=alert(1)>"#;
    e.message = nasty.into();
    e.reason = nasty.into();
    e.regarding.kind = "<b>Kind</b>".into();
    e.regarding.name = "a\"name'<".into();
    commit_all(&archive, &[e]);
    let app = app(archive);
    let escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;quoted&#39; &lt;img src=x onerror=alert(1)&gt;";

    let html = get(&app, "/", None).await.body;
    assert_eq!(
        html.matches("<script").count(),
        1,
        "only the page's own script"
    );
    assert!(!html.contains("<img") && !html.contains("<b>"));
    let body = tbody(&html);
    assert_eq!(
        body.matches(escaped).count(),
        2,
        "reason and message: {body}"
    );
    assert!(body.contains("&lt;b&gt;Kind&lt;/b&gt;/a&quot;name&#39;&lt;</a>"));
    assert!(body.contains("name=a%22name%27%3C\""), "{body}");

    // What a user typed comes back in the form, escaped, next to the API's message.
    let r = get(
        &app,
        "/?namespace=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&type=%3Cscript%3E",
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body.matches("<script").count(), 1, "{}", r.body);
    assert_eq!(
        input_value(&r.body, "namespace"),
        "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    );
    assert!(
        r.body
            .contains("type must be Normal or Warning, not `&lt;script&gt;`"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<option selected>&lt;script&gt;</option>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_answers_bad_queries_like_the_api_and_ignores_empty_fields() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a.redb");
    let archive = Archive::open(&path).expect("open");
    commit_all(
        &archive,
        &(0..10)
            .map(|i| event(i, base() + Duration::from_secs(i)))
            .collect::<Vec<_>>(),
    );
    let app = app(archive.clone());
    for query in [
        "limit=ten",
        "since=yesterday",
        "since=1h&until=2h",
        "cursor=abc",
        "reason=BackOff&reason=Pulled",
        "format=xml",
    ] {
        let api = get(&app, &format!("/api/v1/events?{query}"), None).await;
        let page = get(&app, &format!("/?{query}"), None).await;
        assert_eq!((api.status, page.status), (400, 400), "{query}");
        let message = api.json()["error"].as_str().expect("error").to_owned();
        let shown = message.replace('\'', "&#39;");
        assert!(
            page.body.contains("role=alert") && page.body.contains(&shown),
            "{query}: {}",
            page.body
        );
        assert!(
            !page.body.contains("<table>"),
            "no table for a refused query"
        );
    }
    assert_eq!(
        input_value(&get(&app, "/?limit=ten", None).await.body, "limit"),
        "ten"
    );

    // A plain form submits every field: empty ones are no filter.
    let r = get(
        &app,
        "/?namespace=&kind=&name=&reason=&type=&since=&until=&limit=",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(tbody(&r.body).matches("<tr").count(), 10);

    // The archive being reopened after an I/O error: a 503, like the API.
    std::fs::remove_file(&path).expect("remove");
    std::fs::create_dir(&path).expect("a directory where the file was");
    archive.reopen().expect_err("a directory is not an archive");
    let api = get(&app, "/api/v1/events", None).await;
    let page = get(&app, "/", None).await;
    assert_eq!((api.status, page.status), (503, 503));
    assert!(page.body.contains("The archive cannot answer now"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_pages_with_the_apis_cursor_and_keeps_its_filters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let events: Vec<Event> = (0..25)
        .map(|i| event(i, base() + Duration::from_secs(i)))
        .collect();
    commit_all(&archive, &events);
    let app = app(archive);
    // ns-0 and ns-1 hold 0, 20, 1, 21; type=Normal leaves 1 and 21 of ns-1.
    let mut url = "/?namespace=ns-1&type=Normal&limit=1".to_owned();
    let mut seen = Vec::new();
    for page in 0.. {
        let html = get(&app, &url, None).await.body;
        let body = tbody(&html);
        seen.extend(
            events
                .iter()
                .filter(|e| body.contains(&format!(">{}<", e.message)))
                .map(|e| e.uid.clone()),
        );
        assert_eq!(html.contains("Newest</a>"), page > 0, "{html}");
        let Some(at) = html.find("\" rel=next>") else {
            break;
        };
        let start = html[..at].rfind("href=\"").expect("href") + "href=\"".len();
        let next = html[start..at].replace("&amp;", "&");
        assert!(
            next.starts_with("?namespace=ns-1&type=Normal&limit=1&cursor="),
            "{next}"
        );
        url = format!("/{next}");
    }
    assert_eq!(seen, ["uid-00000021", "uid-00000001"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_hundred_typical_events_weighs_under_60_kb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let events: Vec<Event> = (0..100)
        .map(|i| {
            let mut e = event(i, base() + Duration::from_secs(i));
            e.regarding.name = format!("api-7f9c5d{i:02}-x2b4q");
            e.message = format!(
                "Back-off restarting failed container api in pod api-7f9c5d{i:02}-x2b4q_shop(3eb13b90-4668-4257-bdd6-40fb06671ad1)"
            );
            e
        })
        .collect();
    commit_all(&archive, &events);
    let html = get(&app(archive), "/", None).await.body;
    assert_eq!(tbody(&html).matches("<tr").count(), 100);
    assert!(html.len() <= 60_000, "{} bytes", html.len());
}

/// Access control's namespace set: pages and cursors cover exactly the permitted records,
/// whether the set is empty, one namespace, merged (a few) or filtered from the time index
/// (more than the merge takes), alone or with other filters; the archive lists its namespaces.
#[test]
fn a_permitted_namespace_set_limits_every_page_and_cursor() {
    use std::{collections::BTreeSet, sync::Arc};
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = Archive::open(&dir.path().join("a.redb")).expect("open");
    let events: Vec<Event> = (0..5_000)
        .map(|i| event(i, base() + Duration::from_secs(i % 1_700)))
        .collect();
    commit_all(&archive, &events);
    let all: Vec<String> = (0..20).map(|n| format!("ns-{n}")).collect();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(archive.namespaces().expect("namespaces"), sorted);
    let many: BTreeSet<String> = (0..5)
        .map(|n| format!("ns-{n}"))
        .chain((0..70).map(|n| format!("absent-{n}")))
        .collect();
    for set in [
        BTreeSet::new(),
        BTreeSet::from(["ns-3".to_owned()]),
        BTreeSet::from(["ns-3".to_owned(), "ns-7".to_owned(), "ns-11".to_owned()]),
        all.iter().cloned().collect(),
        many,
    ] {
        for filters in [
            vec![("limit", "7".to_owned())],
            vec![("limit", "5".to_owned()), ("reason", "BackOff".to_owned())],
            vec![("limit", "3".to_owned()), ("type", "Warning".to_owned())],
            vec![
                ("limit", "2".to_owned()),
                ("kind", "Pod".to_owned()),
                ("name", "obj-3".to_owned()),
            ],
        ] {
            let mut q = query(&filters);
            let plain = q.clone();
            q.namespaces = Some(Arc::new(set.clone()));
            let want = expected(&events, |e| {
                set.contains(&e.namespace)
                    && plain.reason.as_ref().is_none_or(|r| *r == e.reason)
                    && plain.type_.is_none_or(|t| t == e.type_)
                    && plain.kind.as_ref().is_none_or(|k| *k == e.regarding.kind)
                    && plain.name.as_ref().is_none_or(|n| *n == e.regarding.name)
            });
            assert_eq!(
                walk(&archive, q),
                want,
                "{} namespaces, {filters:?}",
                set.len()
            );
        }
    }
}
