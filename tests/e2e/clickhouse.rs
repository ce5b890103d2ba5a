//! Shipping to a real ClickHouse (Debian's 18.16): records and count updates arrive, an outage
//! of ClickHouse is caught up without blocking anything else, a SIGKILL of the exporter in the
//! middle of shipping loses nothing and shows nothing twice, and bad or unreachable URLs.

use std::{collections::BTreeMap, process::Command, time::Duration};

use kube_event_exporter::ship::BATCH_ROWS;
use serde_json::Value;

use crate::support::{
    Exporter, Model, POLL,
    clickhouse::ClickHouse,
    fake_apiserver::{FakeApiServer, new_event},
    free_port, wait_for,
};

/// Every archived record's uid → count, through the API.
async fn archived(exporter: &Exporter) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = "/api/v1/events?limit=1000".to_owned();
        if let Some(c) = &cursor {
            url = format!("{url}&cursor={c}");
        }
        let (status, body) = exporter.get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        for i in page["items"].as_array().expect("items") {
            out.insert(
                i["uid"].as_str().expect("uid").to_owned(),
                i["count"].as_u64().expect("count"),
            );
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// uid → count of the cluster's rows in ClickHouse, as `FINAL` shows them.
async fn shipped(ch: &ClickHouse, cluster: &str) -> Result<BTreeMap<String, u64>, String> {
    let rows = ch
        .rows(&format!(
            "SELECT uid, count FROM default.kube_events FINAL WHERE cluster = '{cluster}' FORMAT JSONEachRow"
        ))
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let uid = r["uid"].as_str().expect("uid").to_owned();
        // 64-bit integers come quoted.
        let count = r["count"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .or_else(|| r["count"].as_u64())
            .expect("count");
        if out.insert(uid.clone(), count).is_some() {
            return Err(format!("{uid} shown twice after FINAL"));
        }
    }
    Ok(out)
}

/// Waits until ClickHouse shows exactly the archive's records with their counts.
async fn wait_shipped(exporter: &Exporter, ch: &ClickHouse, cluster: &str, want_len: usize) {
    wait_for(
        "ClickHouse to hold what the archive holds",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || async {
            let local = archived(exporter).await;
            let remote = shipped(ch, cluster).await?;
            if local.len() == want_len && remote == local {
                Ok(())
            } else {
                Err(exporter
                    .with_logs(format!(
                        "want {want_len}, local {} records, ClickHouse {} rows, differing: {:?}",
                        local.len(),
                        remote.len(),
                        local
                            .iter()
                            .filter(|(k, v)| remote.get(*k) != Some(v))
                            .take(5)
                            .collect::<Vec<_>>()
                    ))
                    .to_string())
            }
        },
    )
    .await;
}

/// After a forced merge, no (cluster, uid) has two rows, `FINAL` or not.
async fn assert_no_duplicates(ch: &ClickHouse) {
    ch.query("OPTIMIZE TABLE default.kube_events FINAL")
        .await
        .expect("optimize");
    let dupes = ch
        .query("SELECT cluster, uid, count() AS n FROM default.kube_events GROUP BY cluster, uid HAVING n > 1 FORMAT TSV")
        .await
        .expect("query");
    assert_eq!(dupes, "", "duplicate rows after OPTIMIZE FINAL");
}

async fn start(
    fake: &FakeApiServer,
    dir: &std::path::Path,
    ch_url: &str,
    extra: &[&str],
) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let archive = dir.join("archive.redb");
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--archive-path",
        archive.to_str().expect("utf-8"),
        "--no-workloads",
        "--clickhouse-url",
        ch_url,
        "--cluster-name",
        "prod",
        "--archive-namespace-burst",
        "100000",
        "--archive-burst",
        "100000",
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    exporter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_and_updates_arrive_and_an_outage_is_caught_up_once() {
    let mut ch = ClickHouse::start().await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Model::default();
    let backoff = m.create(
        &fake,
        &new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3),
    );
    m.create(
        &fake,
        &new_event("prod", "Node", "node-1", "NodeNotReady", "Warning", 1),
    );
    let exporter = start(&fake, dir.path(), &ch.url(), &[]).await;
    wait_shipped(&exporter, &ch, "prod", 2).await;
    let columns = ch
        .rows("SELECT * FROM default.kube_events FINAL WHERE reason = 'BackOff' FORMAT JSONEachRow")
        .await
        .expect("row");
    let api = exporter.get("/api/v1/events?reason=BackOff").await.1;
    let item = &serde_json::from_str::<Value>(&api).expect("json")["items"][0];
    for field in [
        "uid",
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
    ] {
        assert_eq!(columns[0][field], item[field], "{field}");
    }
    assert_eq!(columns[0]["cluster"], "prod");

    // A count update replaces the row.
    m.set_count(&fake, "shop", &backoff, 8);
    wait_shipped(&exporter, &ch, "prod", 2).await;

    // ClickHouse goes away: events keep flowing, counted and archived, and the outbox grows.
    ch.stop();
    m.set_count(&fake, "shop", &backoff, 11);
    for i in 0..20 {
        m.create(
            &fake,
            &new_event("shop", "Pod", &format!("web-{i}"), "Pulled", "Normal", 1),
        );
    }
    exporter.wait_totals(&m.totals()).await;
    wait_for(
        "the outbox to hold the changes and failures to be counted",
        Duration::from_secs(30),
        POLL,
        || async {
            let s = exporter.metrics().await;
            let rows = s.value("kube_event_exporter_clickhouse_outbox_rows");
            let failed = s
                .get(
                    "kube_event_exporter_clickhouse_batches_failed_total",
                    &[("reason", "connect")],
                )
                .unwrap_or(0.0);
            (rows == 21.0 && failed >= 1.0).then_some(())
        },
    )
    .await;
    assert_eq!(exporter.get("/readyz").await.0, 200);
    assert_eq!(exporter.get("/healthz").await.0, 200);
    assert!(
        exporter
            .metrics()
            .await
            .value("kube_event_exporter_clickhouse_outbox_oldest_age_seconds")
            > 0.0
    );

    // Back: everything arrives, once.
    ch.resume().await;
    wait_shipped(&exporter, &ch, "prod", 22).await;
    wait_for(
        "the outbox to drain",
        Duration::from_secs(10),
        POLL,
        || async {
            let s = exporter.metrics().await;
            (s.value("kube_event_exporter_clickhouse_outbox_rows") == 0.0).then_some(())
        },
    )
    .await;
    assert_no_duplicates(&ch).await;
    assert_eq!(
        shipped(&ch, "prod").await.expect("rows"),
        archived(&exporter).await
    );
    let logs = exporter.logs();
    assert_eq!(
        logs.matches("Shipping to ClickHouse failed").count(),
        1,
        "one log line per change of failure: {logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_mid_shipping_loses_nothing_and_shows_nothing_twice() {
    let ch = ClickHouse::start().await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Model::default();
    // More than one batch, so the kill comes between batches or inside one.
    let n = BATCH_ROWS * 8 / 5;
    for i in 0..n {
        m.create(
            &fake,
            &new_event("shop", "Pod", &format!("api-{i}"), "Pulled", "Normal", 1),
        );
    }
    let mut exporter = start(&fake, dir.path(), &ch.url(), &[]).await;
    // Killed once some batches went, before all did.
    wait_for(
        "a first batch to ship",
        Duration::from_secs(60),
        Duration::from_millis(10),
        || async {
            let s = exporter.metrics().await;
            (s.value("kube_event_exporter_clickhouse_rows_shipped_total") > 0.0).then_some(())
        },
    )
    .await;
    exporter.kill();
    let before = ch
        .query("SELECT count() FROM default.kube_events FINAL")
        .await
        .expect("count");
    let exporter = start(&fake, dir.path(), &ch.url(), &[]).await;
    wait_shipped(&exporter, &ch, "prod", n).await;
    assert_no_duplicates(&ch).await;
    let total = ch
        .query("SELECT count() FROM default.kube_events")
        .await
        .expect("count");
    assert_eq!(
        total.trim(),
        n.to_string(),
        "shipped {before} before the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_clickhouse_at_start_is_retried_with_backoff_and_counted() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3));
    let url = format!("http://127.0.0.1:{}", free_port());
    let exporter = start(&fake, dir.path(), &url, &[]).await;
    let failed = || async {
        exporter
            .metrics()
            .await
            .get(
                "kube_event_exporter_clickhouse_batches_failed_total",
                &[("reason", "connect")],
            )
            .unwrap_or(0.0)
    };
    wait_for(
        "two failed attempts",
        Duration::from_secs(20),
        POLL,
        || async { (failed().await >= 2.0).then_some(()) },
    )
    .await;
    // Backoff: far fewer attempts than polls in the same time.
    let at = failed().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(failed().await - at <= 4.0, "retries back off");
    assert_eq!(exporter.get("/readyz").await.0, 200);
    assert_eq!(archived(&exporter).await.len(), 1);
}

#[test]
fn bad_clickhouse_flags_exit_2_naming_the_flag() {
    for (args, flag) in [
        (
            &["--clickhouse-url", "not a url", "--cluster-name", "a"][..],
            "--clickhouse-url",
        ),
        (
            &["--clickhouse-url", "ftp://ch:21", "--cluster-name", "a"],
            "--clickhouse-url",
        ),
        (&["--clickhouse-url", "http://ch:8123"], "--cluster-name"),
        (&["--cluster-name", "a"], "--cluster-name"),
        (
            &[
                "--clickhouse-url",
                "http://ch:8123",
                "--cluster-name",
                "a",
                "--clickhouse-table",
                "x;drop",
            ],
            "--clickhouse-table",
        ),
        (
            &[
                "--clickhouse-url",
                "http://ch:8123",
                "--cluster-name",
                "a",
                "--clickhouse-retention",
                "1h",
            ],
            "--clickhouse-retention",
        ),
    ] {
        let out = Command::new(Exporter::binary())
            .args(args)
            .args(["--replay", "/dev/null"])
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

/// Refused credentials and a table of other columns: counted by reason, logged once each,
/// retried, never a crash; once the table is fixed, the waiting records arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_logged_once_and_caught_up_after_the_fix() {
    let ch = ClickHouse::start().await;
    let fake = FakeApiServer::start().await;
    fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3));

    // A wrong password: 401, not retried promptly.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("http://default:wrong@{}", ch.addr);
    let mut exporter = start(&fake, dir.path(), &url, &[]).await;
    wait_for(
        "a refusal counted",
        Duration::from_secs(20),
        POLL,
        || async { (failed(&exporter, "status_4xx").await >= 1.0).then_some(()) },
    )
    .await;
    let logs = exporter.logs();
    assert!(logs.contains("401"), "{logs}");
    assert!(
        !logs.contains("wrong"),
        "the password is never logged: {logs}"
    );
    exporter.kill();

    // A table of other columns: every INSERT fails with ClickHouse's message, logged once.
    ch.query("CREATE TABLE default.kube_events (cluster String, uid String, count UInt64) ENGINE = ReplacingMergeTree(count) ORDER BY (cluster, uid)")
        .await
        .expect("create");
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &ch.url(), &[]).await;
    wait_for(
        "schema failures counted",
        Duration::from_secs(20),
        POLL,
        || async { (failed(&exporter, "status_5xx").await >= 3.0).then_some(()) },
    )
    .await;
    assert_eq!(
        exporter
            .logs()
            .matches("Shipping to ClickHouse failed")
            .count(),
        1
    );
    assert_eq!(exporter.get("/readyz").await.0, 200);

    // Fixed (dropped; the exporter creates it again at its next start): nothing was lost.
    ch.query("DROP TABLE default.kube_events")
        .await
        .expect("drop");
    let mut exporter = exporter;
    exporter.kill();
    let exporter = start(&fake, dir.path(), &ch.url(), &[]).await;
    wait_shipped(&exporter, &ch, "prod", 1).await;
}

/// `clickhouse_batches_failed_total{reason}`.
async fn failed(exporter: &Exporter, reason: &str) -> f64 {
    exporter
        .metrics()
        .await
        .get(
            "kube_event_exporter_clickhouse_batches_failed_total",
            &[("reason", reason)],
        )
        .unwrap_or(0.0)
}

/// Every page of `query` (`limit` each), walking the cursors: the items of each page.
async fn pages(exporter: &Exporter, query: &str) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/events?limit=7&{query}");
        if let Some(c) = &cursor {
            url = format!("{url}&cursor={c}");
        }
        let (status, body) = exporter.get(&url).await;
        assert_eq!(status, 200, "{url}: {}", exporter.with_logs(&body));
        let page: Value = serde_json::from_str(&body).expect("json");
        out.push(page["items"].as_array().expect("items").clone());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Events of one cluster, each a minute apart, so that the order newest first has no ties.
fn scenario(fake: &FakeApiServer, offset: u64) -> Vec<String> {
    let shapes = [
        ("shop", "Pod", "api-1", "BackOff", "Warning"),
        ("shop", "Pod", "api-2", "Pulled", "Normal"),
        ("prod", "Node", "node-1", "NodeNotReady", "Warning"),
        ("staging", "Pod", "web-0", "BackOff", "Warning"),
        ("shop", "Deployment", "api", "ScalingReplicaSet", "Normal"),
    ];
    let mut names = Vec::new();
    for round in 0..5u64 {
        for (i, (ns, kind, object, reason, type_)) in shapes.iter().enumerate() {
            let mut ev = new_event(ns, kind, &format!("{object}-{round}"), reason, type_, 1);
            ev.age = Duration::from_secs(60 * (offset + round * 5 + i as u64) + 7);
            names.push(fake.create(&ev));
        }
    }
    names
}

/// A query-only history server over two clusters' rows answers, for each cluster, the same
/// pages (every filter, every cursor step) as that cluster's own exporter over its archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_over_clickhouse_answers_as_the_archive_does() {
    let ch = ClickHouse::start().await;
    let (fake_prod, fake_staging) = (FakeApiServer::start().await, FakeApiServer::start().await);
    let prod_names = scenario(&fake_prod, 0);
    let (n_prod, n_staging) = (prod_names.len(), scenario(&fake_staging, 1).len());
    let (dir_prod, dir_staging) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let prod = start(&fake_prod, dir_prod.path(), &ch.url(), &[]).await;
    let staging = {
        let kubeconfig = fake_staging.write_kubeconfig(dir_staging.path());
        let archive = dir_staging.path().join("archive.redb");
        let exporter = Exporter::start(&[
            "--kubeconfig",
            kubeconfig.to_str().expect("utf-8"),
            "--archive-path",
            archive.to_str().expect("utf-8"),
            "--no-workloads",
            "--clickhouse-url",
            &ch.url(),
            "--cluster-name",
            "staging",
        ])
        .await;
        exporter.wait_ready().await;
        exporter
    };
    wait_shipped(&prod, &ch, "prod", n_prod).await;
    wait_shipped(&staging, &ch, "staging", n_staging).await;
    // Count updates (and so newer last occurrences): the fleet reads the latest version, once.
    fake_prod.set_count("shop", &prod_names[0], 4);
    fake_prod.set_count("shop", &prod_names[11], 9);
    wait_for(
        "the updates to be archived",
        Duration::from_secs(20),
        POLL,
        || async {
            let counts: Vec<u64> = archived(&prod).await.into_values().collect();
            (counts.contains(&4) && counts.contains(&9)).then_some(())
        },
    )
    .await;
    wait_shipped(&prod, &ch, "prod", n_prod).await;

    // The fleet server: no kube credentials, no watch.
    let fleet = Exporter::start(&[
        "--no-watch",
        "--history-from",
        "clickhouse",
        "--clickhouse-url",
        &ch.url(),
    ])
    .await;
    fleet.wait_ready().await;

    let all = pages(&prod, "").await.concat();
    let time = |i: usize| all[i]["last_seen"].as_str().expect("time").to_owned();
    let (since, until) = (time(17), time(4));
    let queries = [
        String::new(),
        "namespace=shop".into(),
        "reason=BackOff".into(),
        "type=Warning".into(),
        "namespace=shop&kind=Pod&name=api-1-2".into(),
        "kind=Node".into(),
        format!("since={since}"),
        format!("until={until}"),
        format!("since={since}&until={until}&type=Normal"),
        "namespace=nowhere".into(),
    ];
    for (cluster, own) in [("prod", &prod), ("staging", &staging)] {
        for q in &queries {
            let local = pages(own, q).await;
            let remote = pages(&fleet, &format!("cluster={cluster}&{q}")).await;
            assert_eq!(remote, local, "{cluster}: {q}");
            assert_eq!(pages(own, &format!("cluster={cluster}&{q}")).await, local);
        }
        assert_eq!(
            pages(own, "cluster=elsewhere").await,
            vec![Vec::<Value>::new()],
            "an archive holds its own cluster only"
        );
    }
    let everything = pages(&fleet, "").await.concat();
    assert_eq!(everything.len(), n_prod + n_staging);
    let times: Vec<&str> = everything
        .iter()
        .map(|i| i["last_seen"].as_str().expect("time"))
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first across clusters");

    // Errors are the API's: a bad parameter is a 400, a foreign cursor a 400 too.
    assert_eq!(fleet.get("/api/v1/events?limit=0").await.0, 400);
    assert_eq!(fleet.get("/api/v1/events?cursor=bogus").await.0, 400);
    // The table and the page read the same store.
    let (status, table) = fleet
        .get("/api/v1/events?format=table&cluster=staging&reason=BackOff")
        .await;
    assert_eq!(status, 200);
    assert_eq!(table.lines().count(), 1 + 10, "{table}");
    let (status, page) = fleet.get("/?cluster=prod&namespace=prod").await;
    assert_eq!(status, 200);
    assert!(page.contains("node-1-3"), "{page}");
    assert!(!page.contains("web-0"), "{page}");
}

/// Retention in ClickHouse: partitions (days of first occurrence) past
/// `--clickhouse-retention` are dropped at start (and hourly), and a record first seen before
/// it is not sent at all; newer days stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_past_the_retention_are_dropped() {
    let ch = ClickHouse::start().await;
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut old = new_event("shop", "Pod", "old-1", "BackOff", "Warning", 1);
    old.age = Duration::from_secs(3 * 86_400);
    fake.create(&old);
    fake.create(&new_event("shop", "Pod", "new-1", "BackOff", "Warning", 1));
    let retention = ["--clickhouse-retention", "2d"];
    let mut exporter = start(&fake, dir.path(), &ch.url(), &retention).await;
    let shipped_names = || async {
        ch.query("SELECT name FROM default.kube_events FINAL ORDER BY name FORMAT TSV")
            .await
            .unwrap_or_default()
    };
    wait_for(
        "the new record to ship",
        Duration::from_secs(20),
        POLL,
        || async { (shipped_names().await == "new-1\n").then_some(()) },
    )
    .await;
    assert_eq!(archived(&exporter).await.len(), 2, "the archive keeps both");
    wait_for(
        "the outbox to drain",
        Duration::from_secs(20),
        POLL,
        || async {
            let s = exporter.metrics().await;
            (s.value("kube_event_exporter_clickhouse_outbox_rows") == 0.0).then_some(())
        },
    )
    .await;

    // A row of an old day (shipped by a replica with a longer retention, say): dropped with its
    // partition at the next start.
    ch.query(
        "INSERT INTO default.kube_events (cluster, uid, name, count, first_seen, last_seen) VALUES ('prod', 'u-old', 'older-1', 1, '2020-01-01 00:00:00', '2020-01-01 00:00:00')",
    )
    .await
    .expect("insert");
    exporter.kill();
    let _exporter = start(&fake, dir.path(), &ch.url(), &retention).await;
    wait_for("the old partition to go", Duration::from_secs(20), POLL, || async {
        let parts = ch
            .query("SELECT DISTINCT partition FROM system.parts WHERE database = 'default' AND table = 'kube_events' AND active FORMAT TSV")
            .await
            .unwrap_or_default();
        (!parts.contains("20200101")).then_some(parts)
    })
    .await;
    assert_eq!(shipped_names().await, "new-1\n");
}

/// Two replicas of one cluster's exporter (one fake API server, two archives) shipping to one
/// table: ClickHouse answers as with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_answer_as_one() {
    let ch = ClickHouse::start().await;
    let fake = FakeApiServer::start().await;
    let names = scenario(&fake, 0);
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("tempdir"),
        tempfile::tempdir().expect("tempdir"),
    );
    let a = start(&fake, dir_a.path(), &ch.url(), &[]).await;
    let b = start(&fake, dir_b.path(), &ch.url(), &[]).await;
    fake.set_count("shop", &names[1], 6);
    for replica in [&a, &b] {
        wait_for(
            "the update to be archived",
            Duration::from_secs(20),
            POLL,
            || async {
                archived(replica)
                    .await
                    .values()
                    .any(|c| *c == 6)
                    .then_some(())
            },
        )
        .await;
        wait_shipped(replica, &ch, "prod", names.len()).await;
    }
    let fleet = Exporter::start(&[
        "--no-watch",
        "--history-from",
        "clickhouse",
        "--clickhouse-url",
        &ch.url(),
    ])
    .await;
    fleet.wait_ready().await;
    for q in ["", "namespace=shop", "reason=BackOff&type=Warning"] {
        assert_eq!(pages(&fleet, q).await, pages(&a, q).await, "{q}");
    }
    assert_no_duplicates(&ch).await;
    let rows = ch
        .query("SELECT count() FROM default.kube_events")
        .await
        .expect("count");
    assert_eq!(rows.trim(), names.len().to_string());
}
