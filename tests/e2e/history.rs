//! The archive through the running exporter: restarts (SIGKILL) on the same archive with and
//! without an expired checkpoint, a kill in the middle of a storm, pagination while events
//! arrive, and the new-record rate limits.

use std::{
    collections::{BTreeMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{
    Exporter, Model, POLL, Totals, TotalsKey, barrier,
    fake_apiserver::{FakeApiServer, Request, new_event},
    totals_key, wait_for,
};

/// Every archived record matching `query`, walking all pages.
async fn archived(exporter: &Exporter, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/events?limit=1000&{query}");
        if let Some(c) = &cursor {
            url = format!("{url}&cursor={c}");
        }
        let (status, body) = exporter.get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        items.extend(page["items"].as_array().expect("items").iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
}

/// uid → count of every archived record.
async fn archived_counts(exporter: &Exporter) -> BTreeMap<String, u64> {
    archived(exporter, "")
        .await
        .iter()
        .map(|i| {
            (
                i["uid"].as_str().expect("uid").to_owned(),
                i["count"].as_u64().expect("count"),
            )
        })
        .collect()
}

fn minus(a: &Totals, b: &Totals) -> Totals {
    a.iter()
        .map(|(k, v)| (k.clone(), v - b.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// "Nothing counted twice", checked behind a barrier: creates a marker event, waits until the
/// exporter has counted it (and so everything before it), and returns the totals less the
/// marker's one occurrence.
async fn totals_behind_a_marker(fake: &FakeApiServer, exporter: &Exporter) -> Totals {
    let marker = new_event("marker", "Pod", "m", "Started", "Normal", 1);
    let key: TotalsKey = totals_key("marker", "Pod", "Started", "Normal");
    let mut totals = barrier(fake, &marker, || async {
        let totals = exporter.metrics().await.event_totals();
        totals.contains_key(&key).then_some(totals)
    })
    .await;
    assert_eq!(totals.remove(&key), Some(1), "the marker counted once");
    totals
}

/// Starts the exporter on `archive`, against `fake`.
async fn start(fake: &FakeApiServer, dir: &std::path::Path, extra: &[&str]) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let archive = dir.join("archive.redb");
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--archive-path",
        archive.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    exporter
}

/// Waits until the archive holds exactly the model's events with their counts: then the
/// ledger entries committed with them are durable too.
async fn wait_committed(exporter: &Exporter, model: &Model) {
    let want: Vec<u64> = {
        let mut v: Vec<u64> = model.0.values().map(|(_, c)| *c).collect();
        v.sort_unstable();
        v
    };
    wait_for(
        "the archive to match the model",
        Duration::from_secs(20),
        POLL,
        || async {
            let mut have: Vec<u64> = archived_counts(exporter).await.into_values().collect();
            have.sort_unstable();
            if have == want {
                Ok(())
            } else {
                Err(exporter.with_logs(format!("want {want:?}, have {have:?}")))
            }
        },
    )
    .await;
}

/// Phase one of both restart tests: a first run that counts and commits a scenario, then dies
/// by SIGKILL. Returns the totals it had counted and the records it had committed.
async fn first_life(
    fake: &FakeApiServer,
    dir: &std::path::Path,
    m: &mut Model,
) -> (Totals, BTreeMap<String, u64>) {
    let backoff = m.create(
        fake,
        &new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3),
    );
    m.create(
        fake,
        &new_event("shop", "Pod", "api-1", "Pulled", "Normal", 1),
    );
    m.create(
        fake,
        &new_event("prod", "Pod", "db-0", "OOMKilling", "Warning", 1),
    );
    m.create(
        fake,
        &new_event("default", "Node", "node-1", "NodeNotReady", "Warning", 2),
    );
    let mut exporter = start(fake, dir, &[]).await;
    m.set_count(fake, "shop", &backoff, 7);
    m.create(
        fake,
        &new_event("prod", "Pod", "db-1", "FailedMount", "Warning", 4),
    );
    exporter.wait_totals(&m.totals()).await;
    wait_committed(&exporter, m).await;
    let counted = exporter.metrics().await.event_totals();
    let committed = archived_counts(&exporter).await;
    // Killed with its watch stream open.
    exporter.kill();
    (counted, committed)
}

/// What happens while the exporter is down: repeats, new events, a deletion.
fn downtime(fake: &FakeApiServer, m: &mut Model) {
    let key =
        m.0.keys()
            .find(|(ns, _)| ns == "shop")
            .expect("a shop event")
            .clone();
    m.set_count(fake, &key.0, &key.1, 9);
    m.create(
        fake,
        &new_event("shop", "Pod", "api-2", "Unhealthy", "Warning", 2),
    );
    m.create(
        fake,
        &new_event("staging", "Pod", "web-0", "BackOff", "Warning", 1),
    );
    let prod =
        m.0.keys()
            .find(|(ns, _)| ns == "prod")
            .expect("a prod event")
            .clone();
    fake.delete(&prod.0, &prod.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_exporter_resumes_from_its_checkpoint_and_counts_nothing_twice() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Model::default();
    let (counted, committed) = first_life(&fake, dir.path(), &mut m).await;
    downtime(&fake, &mut m);
    let requests_before = fake.requests().len();

    let exporter = start(&fake, dir.path(), &[]).await;
    // Only what was not counted before: the repeats and new events of the downtime.
    exporter.wait_totals(&minus(&m.totals(), &counted)).await;
    let after = archived_counts(&exporter).await;
    for (uid, count) in &committed {
        assert!(
            after.get(uid).is_some_and(|c| c >= count),
            "record {uid} committed before the kill is missing"
        );
    }
    wait_for(
        "the two new events archived",
        Duration::from_secs(10),
        POLL,
        || async { (archived_counts(&exporter).await.len() == committed.len() + 2).then_some(()) },
    )
    .await;
    assert_eq!(
        totals_behind_a_marker(&fake, &exporter).await,
        minus(&m.totals(), &counted),
        "nothing counted twice, later either"
    );

    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .skip(requests_before)
        .filter(Request::is_events)
        .collect();
    assert!(
        requests.iter().all(Request::is_watch),
        "no list after a restart: {requests:?}"
    );
    let rv: u64 = requests[0].query["resourceVersion"]
        .parse()
        .expect("numeric rv");
    assert!(
        rv > 1000,
        "resumed from the stored resourceVersion, got {rv}"
    );
    assert_eq!(
        exporter
            .metrics()
            .await
            .value("kube_event_exporter_watch_gaps_total"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_checkpoint_relists_counts_a_gap_and_still_counts_nothing_twice() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut m = Model::default();
    let (counted, _) = first_life(&fake, dir.path(), &mut m).await;
    downtime(&fake, &mut m);
    // The API server compacts: the stored resourceVersion is gone.
    fake.expire();
    m.create(
        &fake,
        &new_event("prod", "Pod", "db-9", "BackOff", "Warning", 3),
    );
    let requests_before = fake.requests().len();

    let exporter = start(&fake, dir.path(), &[]).await;
    exporter.wait_totals(&minus(&m.totals(), &counted)).await;
    assert_eq!(
        totals_behind_a_marker(&fake, &exporter).await,
        minus(&m.totals(), &counted),
        "nothing counted twice, later either"
    );
    let s = exporter.metrics().await;
    assert_eq!(s.value("kube_event_exporter_watch_gaps_total"), 1.0);
    let requests: Vec<_> = fake
        .requests()
        .into_iter()
        .skip(requests_before)
        .filter(Request::is_events)
        .collect();
    assert!(requests[0].is_watch(), "tried the checkpoint first");
    assert!(requests.iter().any(Request::is_list), "then relisted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_in_the_middle_of_a_storm_loses_no_committed_record() {
    let fake = std::sync::Arc::new(FakeApiServer::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    // Rate limits that never bite: whether a limited record was dropped before or after the
    // kill would depend on timing, and limits have their own test.
    let unlimited = ["--archive-namespace-burst", "5000"];
    let mut exporter = start(&fake, dir.path(), &unlimited).await;
    let storm = {
        let fake = fake.clone();
        tokio::spawn(async move {
            for i in 0..3_000 {
                fake.create(&new_event(
                    &format!("ns-{}", i % 5),
                    "Pod",
                    &format!("p-{i}"),
                    "BackOff",
                    "Warning",
                    1,
                ));
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let committed = wait_for(
        "some records committed",
        Duration::from_secs(60),
        POLL,
        || async {
            let c = archived_counts(&exporter).await;
            (c.len() >= 300).then_some(c)
        },
    )
    .await;
    exporter.kill();
    storm.await.expect("storm");
    let exporter = start(&fake, dir.path(), &unlimited).await;
    let after = archived_counts(&exporter).await;
    let lost: Vec<_> = committed
        .keys()
        .filter(|uid| !after.contains_key(*uid))
        .collect();
    assert!(
        lost.is_empty(),
        "{} committed records lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    // And the rest of the storm arrives: every event of it once, nothing else.
    let records = wait_for(
        "the whole storm archived",
        Duration::from_secs(60),
        POLL,
        || async {
            let records = archived(&exporter, "").await;
            if records.len() == 3_000 {
                Ok(records)
            } else {
                Err(format!("{} records", records.len()))
            }
        },
    )
    .await;
    let events: HashSet<(String, String)> = records
        .iter()
        .map(|r| {
            let field = |k: &str| r[k].as_str().expect(k).to_owned();
            (field("namespace"), field("name"))
        })
        .collect();
    let storm: HashSet<(String, String)> = (0..3_000)
        .map(|i| (format!("ns-{}", i % 5), format!("p-{i}")))
        .collect();
    assert!(
        events == storm,
        "the archive holds the storm's events, each once; {} of {} match",
        events.intersection(&storm).count(),
        storm.len()
    );
    assert!(
        records.iter().all(|r| r["count"] == 1),
        "every record has its event's one occurrence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_return_every_record_once_in_order_while_events_arrive() {
    let fake = FakeApiServer::start().await;
    for i in 0..120 {
        fake.create(&new_event(
            "shop",
            "Pod",
            &format!("api-{}", i % 9),
            ["BackOff", "Pulled", "Started"][i % 3],
            "Normal",
            1,
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = start(&fake, dir.path(), &[]).await;
    let original: HashSet<String> = wait_for(
        "120 records archived",
        Duration::from_secs(20),
        POLL,
        || async {
            let items = archived(&exporter, "namespace=shop").await;
            (items.len() == 120).then(|| {
                items
                    .iter()
                    .map(|i| i["uid"].as_str().expect("uid").to_owned())
                    .collect()
            })
        },
    )
    .await;

    // Seven records a page; every sixth page, ten new events arrive and are archived (waited
    // for) before the next page is read.
    let mut arrived = 0;
    let mut pages = 0;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("/api/v1/events?namespace=shop&limit=7&cursor={c}"),
            None => "/api/v1/events?namespace=shop&limit=7".to_owned(),
        };
        let (status, body) = exporter.get(&url).await;
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        for item in page["items"].as_array().expect("items") {
            seen.push((
                item["last_seen"]
                    .as_str()
                    .expect("time")
                    .parse::<jiff::Timestamp>()
                    .expect("rfc3339"),
                item["uid"].as_str().expect("uid").to_owned(),
            ));
        }
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        if pages % 6 == 1 {
            for _ in 0..10 {
                fake.create(&new_event(
                    "shop",
                    "Pod",
                    &format!("new-{arrived}"),
                    "Killing",
                    "Normal",
                    1,
                ));
                arrived += 1;
            }
            let want = 120 + arrived;
            wait_for(
                &format!("{want} records archived"),
                Duration::from_secs(20),
                POLL,
                || async {
                    (archived(&exporter, "namespace=shop").await.len() == want).then_some(())
                },
            )
            .await;
        }
    }
    assert!(
        arrived >= 30,
        "only {arrived} events arrived during the walk"
    );
    let uids: Vec<&String> = seen.iter().map(|(_, u)| u).collect();
    let unique: HashSet<&String> = uids.iter().copied().collect();
    assert_eq!(unique.len(), uids.len(), "a record came twice");
    for uid in &original {
        assert!(unique.contains(uid), "record {uid} was skipped");
    }
    // What arrives is newer than the cursor: the walk returns exactly the records there were
    // when it began.
    assert_eq!(
        unique,
        original.iter().collect(),
        "the walk returned records that arrived after it began"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 >= w[1].0),
        "not newest first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_namespace_is_rate_limited_and_updates_never_are() {
    let fake = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let exporter = start(
        &fake,
        dir.path(),
        &[
            "--archive-namespace-burst",
            "20",
            "--archive-namespace-rate",
            "1",
        ],
    )
    .await;
    // 200 new events in "noisy" (10× its burst), 20 in "quiet", interleaved.
    for i in 0..200 {
        fake.create(&new_event(
            "noisy",
            "Pod",
            &format!("p-{i}"),
            "BackOff",
            "Warning",
            1,
        ));
        if i % 10 == 0 {
            fake.create(&new_event(
                "quiet",
                "Pod",
                &format!("q-{i}"),
                "BackOff",
                "Warning",
                1,
            ));
        }
    }
    let expected: Totals = [
        (totals_key("noisy", "Pod", "BackOff", "Warning"), 200),
        (totals_key("quiet", "Pod", "BackOff", "Warning"), 20),
    ]
    .into();
    exporter.wait_totals(&expected).await;
    let dropped = |s: &crate::support::Samples| {
        s.get(
            "kube_event_exporter_archive_dropped_total",
            &[("reason", "rate_limited")],
        )
        .unwrap_or(0.0) as usize
    };
    let archived_noisy = wait_for(
        "the admitted records committed",
        Duration::from_secs(10),
        POLL,
        || async {
            let noisy = archived(&exporter, "namespace=noisy").await;
            let d = dropped(&exporter.metrics().await);
            (noisy.len() + d == 200).then_some(noisy)
        },
    )
    .await;
    let elapsed = started.elapsed().as_secs() as usize;
    assert!(
        archived_noisy.len() >= 20 && archived_noisy.len() <= 20 + elapsed + 1,
        "{} noisy records archived in {elapsed}s",
        archived_noisy.len()
    );
    assert_eq!(
        archived(&exporter, "namespace=quiet").await.len(),
        20,
        "the quiet namespace lost nothing"
    );

    // Updates of the archived noisy records land, however far over quota the namespace is.
    for item in &archived_noisy {
        fake.set_count("noisy", item["event_name"].as_str().expect("event_name"), 5);
    }
    wait_for(
        "every update archived",
        Duration::from_secs(20),
        POLL,
        || async {
            let items = archived(&exporter, "namespace=noisy").await;
            let updated = items.iter().filter(|i| i["count"] == 5).count();
            (updated >= archived_noisy.len()).then_some(())
        },
    )
    .await;
}
