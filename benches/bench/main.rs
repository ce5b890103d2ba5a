//! The benchmark suite. `cargo bench --bench bench` runs the full mode (1M-event runs, each
//! measurement three times, medians); `-- --quick` a quick one (100k-event runs, once each, under
//! two minutes); `-- --runs N` sets the runs. Each measurement runs in its own process, so its
//! peak RSS is its own. Nothing here asserts on time.

#![allow(clippy::too_many_lines, clippy::format_push_string)]

#[path = "../../tests/e2e/support/mod.rs"]
#[allow(unused_imports)]
mod support;

mod archive;
mod auth;
mod binary;
mod clickhouse;
mod common;
mod in_process;
mod pods;
mod writer;

use std::{collections::BTreeMap, process::Command};

use common::quick;

// ---------- driver ----------

const MEASUREMENTS: [(&str, &str); 14] = [
    (
        "pipeline-core",
        "1. pipeline, core/v1 watch lines (decode, ledger, metrics, archive, alerts)",
    ),
    (
        "pipeline-events",
        "1. pipeline, events.k8s.io/v1 watch lines",
    ),
    ("rss-100k", "RSS after 100k distinct events"),
    (
        "e2e",
        "2. end to end over HTTP (fake API server → real binary)",
    ),
    ("startup", "3. start-up: initial list in pages of 500"),
    (
        "restart",
        "3. restart on a full archive (ledger from the records, no list)",
    ),
    (
        "archive",
        "4. archive: insert, disk, queries (100 rows), the page of 100 rows",
    ),
    ("alerts", "5. alert latency: watch → Alertmanager → webhook"),
    ("churn", "6. memory under churn (2 simulated hours)"),
    (
        "replay-list",
        "7. replay of a kubectl List (200k events), every record archived",
    ),
    (
        "writer",
        "8. archive writer, every record archived: 100k new + 50k updates/s, then flat out",
    ),
    (
        "pods",
        "9. a cluster of Pods: listed at start, then 5,000 status updates/s (1 in 10 a restart)",
    ),
    (
        "auth",
        "10. --auth kubernetes: a history request with a cached decision vs without auth; reviews of a cold one",
    ),
    (
        "clickhouse",
        "11. ClickHouse: shipping rate live and draining a backlog, pipeline with and without shipping, fleet query over 10M rows, outbox disk",
    ),
];

async fn run_one(name: &str) -> BTreeMap<&'static str, f64> {
    match name {
        "pipeline-core" => in_process::pipeline_throughput(false).await,
        "pipeline-events" => in_process::pipeline_throughput(true).await,
        "rss-100k" => binary::rss_after_100k().await,
        "e2e" => binary::end_to_end().await,
        "startup" => binary::startup().await,
        "restart" => binary::restart().await,
        "archive" => archive::archive_queries(),
        "alerts" => binary::alert_latency().await,
        "churn" => in_process::churn().await,
        "replay-list" => binary::replay_list().await,
        "writer" => writer::writer_sustained().await,
        "pods" => pods::pods().await,
        "auth" => auth::auth().await,
        "clickhouse" => clickhouse::clickhouse().await,
        other => panic!("unknown measurement {other}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let name = args[i + 1].clone();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let result = rt.block_on(run_one(&name));
        println!("RESULT {}", serde_json::to_string(&result).expect("json"));
        return;
    }
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        // Quick mode stays under two minutes with one run of each; full mode takes medians.
        .unwrap_or(if quick() { 1 } else { 3 });
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    let me = std::env::current_exe().expect("exe");
    println!(
        "kube-event-exporter benchmarks ({} mode, medians of {runs} runs)\n",
        if quick() { "quick" } else { "full" }
    );
    for (name, title) in MEASUREMENTS {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for _ in 0..runs {
            let mut cmd = Command::new(&me);
            cmd.args(["--only", name]);
            if quick() {
                cmd.arg("--quick");
            }
            let out = cmd.output().expect("run measurement");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let Some(line) = stdout.lines().find_map(|l| l.strip_prefix("RESULT ")) else {
                eprintln!(
                    "{name} failed:\n{stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::process::exit(1);
            };
            let result: BTreeMap<String, f64> = serde_json::from_str(line).expect("result");
            for (k, v) in result {
                values.entry(k).or_default().push(v);
            }
        }
        println!("{title}");
        for (k, mut v) in values {
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            println!("    {k:<28} {median:>14.2}");
        }
    }
}
