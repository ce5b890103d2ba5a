//! The replay source, fed with what the real kubectl prints against the fake API server (which
//! also proves the fake faithful to a real client), with malformed input, stdin and the sample.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use crate::support::{
    Exporter, POLL, Totals,
    fake_apiserver::{FakeApiServer, new_event},
    totals_key, wait_for,
};

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("kubectl");
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args);
    cmd
}

fn run_json(mut cmd: Command) -> Value {
    let out = cmd.output().expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl printed JSON")
}

async fn replay_totals(args: &[&str]) -> (Totals, f64) {
    let exporter = Exporter::start(args).await;
    exporter.wait_ready().await;
    let m = exporter.metrics().await;
    (
        m.event_totals(),
        m.value("kube_event_exporter_decode_errors_total"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_list_and_watch_output_replay_to_the_same_totals() {
    let fake = FakeApiServer::start().await;
    let backoff = fake.create(&new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3));
    fake.create(&new_event("shop", "Pod", "api-1", "Pulled", "Normal", 1));
    let mut scheduled = new_event("prod", "Pod", "db-0", "FailedScheduling", "Warning", 2);
    scheduled.series = true;
    let sched = fake.create(&scheduled);
    fake.create(&new_event(
        "default",
        "Node",
        "node-1",
        "NodeNotReady",
        "Warning",
        1,
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let cache = dir.path().join("kube-cache");

    // kubectl lists both API views of the same objects.
    let core = run_json(kubectl(
        &kubeconfig,
        &cache,
        &["get", "events", "-A", "-o", "json"],
    ));
    assert_eq!(core["items"].as_array().map(Vec::len), Some(4), "{core}");
    let events = run_json(kubectl(
        &kubeconfig,
        &cache,
        &["get", "events.v1.events.k8s.io", "-A", "-o", "json"],
    ));
    let notes: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["note"].as_str())
        .collect();
    assert_eq!(notes.len(), 4, "{events}");

    // Two watchers: with and without --output-watch-events.
    let stream_file = dir.path().join("watch-events.json");
    let bare_file = dir.path().join("watch-objects.json");
    let spawn_watch = |file: &PathBuf, extra: &[&str]| {
        let mut args = vec!["get", "events", "-A", "-o", "json", "-w"];
        args.extend_from_slice(extra);
        kubectl(&kubeconfig, &cache, &args)
            .stdout(std::fs::File::create(file).expect("create"))
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl -w")
    };
    let mut watchers = [
        spawn_watch(&stream_file, &["--output-watch-events"]),
        spawn_watch(&bare_file, &[]),
    ];
    wait_for(
        "both kubectl watches",
        Duration::from_secs(20),
        POLL,
        || async { (fake.requests().iter().filter(|r| r.is_watch()).count() >= 2).then_some(()) },
    )
    .await;
    fake.set_count("shop", &backoff, 7);
    fake.set_count("prod", &sched, 5);
    fake.create(&new_event(
        "prod",
        "Pod",
        "db-1",
        "OOMKilling",
        "Warning",
        1,
    ));
    wait_for(
        "kubectl to print the updates",
        Duration::from_secs(20),
        POLL,
        || async {
            let done = [&stream_file, &bare_file].iter().all(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("db-1")
            });
            done.then_some(())
        },
    )
    .await;
    fake.close_watches();
    for w in &mut watchers {
        assert!(
            w.wait().expect("kubectl exits").success(),
            "kubectl -w exits 0 when the stream ends"
        );
    }
    let stream_text = std::fs::read_to_string(&stream_file).expect("read");
    assert!(
        stream_text.contains("\"MODIFIED\""),
        "watch events printed: {stream_text}"
    );

    let list_file = dir.path().join("list.json");
    let final_list = run_json(kubectl(
        &kubeconfig,
        &cache,
        &["get", "events", "-A", "-o", "json"],
    ));
    std::fs::write(
        &list_file,
        serde_json::to_string_pretty(&final_list).expect("json"),
    )
    .expect("write");

    let expected: Totals = [
        (totals_key("shop", "Pod", "BackOff", "Warning"), 7),
        (totals_key("shop", "Pod", "Pulled", "Normal"), 1),
        (totals_key("prod", "Pod", "FailedScheduling", "Warning"), 5),
        (totals_key("default", "Node", "NodeNotReady", "Warning"), 1),
        (totals_key("prod", "Pod", "OOMKilling", "Warning"), 1),
    ]
    .into();
    for file in [&list_file, &stream_file, &bare_file] {
        let (totals, errors) = replay_totals(&["--replay", file.to_str().expect("utf-8")]).await;
        assert_eq!(totals, expected, "replay of {}", file.display());
        assert_eq!(errors, 0.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_are_skipped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = |uid: &str, ns: &str, reason: &str, count: u32| {
        format!(
            r#"{{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{{"name":"{uid}","namespace":"{ns}","uid":"{uid}","resourceVersion":"1"}},"regarding":{{"kind":"Pod","name":"p"}},"reason":"{reason}","type":"Warning","note":"x","eventTime":null,"deprecatedCount":{count}}}"#
        )
    };
    let lines = [
        good("u1", "shop", "BackOff", 2),
        "this is not json".to_owned(),
        good("u2", "prod", "BackOff", 1),
        r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"cut","#.to_owned(),
        good("u3", "prod", "Unhealthy", 4),
        r#"{"apiVersion":"v1","kind":"Event","metadata":{"name":"bad-count"},"involvedObject":{},"count":"many"}"#.to_owned(),
        good("u1", "shop", "BackOff", 3),
    ];
    let file = dir.path().join("events.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write");
    let (totals, errors) = replay_totals(&["--replay", file.to_str().expect("utf-8")]).await;
    let expected: Totals = [
        (totals_key("shop", "Pod", "BackOff", "Warning"), 3),
        (totals_key("prod", "Pod", "BackOff", "Warning"), 1),
        (totals_key("prod", "Pod", "Unhealthy", "Warning"), 4),
    ]
    .into();
    assert_eq!(totals, expected);
    assert_eq!(errors, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_stdin_and_keeps_serving() {
    let sample = sample_path();
    let stdin = Stdio::from(std::fs::File::open(&sample).expect("open sample"));
    let mut exporter = Exporter::start_with_stdin(&["--replay", "-"], stdin).await;
    exporter.wait_ready().await;
    let from_stdin = exporter.metrics().await.event_totals();
    let (from_file, errors) = replay_totals(&["--replay", sample.to_str().expect("utf-8")]).await;
    assert_eq!(from_stdin, from_file);
    assert_eq!(errors, 0.0);
    // Still serving after the input ended; SIGTERM stops it cleanly.
    assert_eq!(exporter.get("/healthz").await.0, 200);
    assert!(exporter.terminate().await.success());
}

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/events.jsonl")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_is_realistic_and_clean() {
    let (totals, errors) =
        replay_totals(&["--replay", sample_path().to_str().expect("utf-8")]).await;
    assert_eq!(errors, 0.0);
    let sum: u64 = totals.values().sum();
    assert!(sum >= 300, "several hundred occurrences, got {sum}");
    let reasons: std::collections::BTreeSet<&str> = totals.keys().map(|k| k.2.as_str()).collect();
    for reason in [
        "BackOff",
        "Killing",
        "Unhealthy",
        "FailedScheduling",
        "FailedMount",
        "Failed",
        "OOMKilling",
        "Pulled",
        "Created",
        "Started",
        "Scheduled",
        "ScalingReplicaSet",
        "SuccessfulCreate",
    ] {
        assert!(reasons.contains(reason), "sample lacks {reason}");
    }
    let namespaces: std::collections::BTreeSet<&str> =
        totals.keys().map(|k| k.0.as_str()).collect();
    assert!(namespaces.len() >= 3);
}
