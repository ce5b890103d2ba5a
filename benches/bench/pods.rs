//! Measurement 9: a cluster of Pods. The fake API server holds realistic Pods (~6 KB of JSON
//! each, managedFields and status included) owned by ReplicaSets of Deployments; the real binary
//! lists them at start, then takes 5,000 Pod status updates per second, one in ten a container
//! restart. Measured: start-up with the Pods listed, RSS with the Pod watch against the same
//! cluster with `--no-workloads`, and the exporter's CPU per Pod update.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use kube_event_exporter::source::objects::Resource;
use serde_json::{Value, json};

use crate::{
    common::{child_status, floor_decode_us, mib, process_cpu_seconds, quick},
    support::{
        Exporter,
        fake_apiserver::FakeApiServer,
        objects::{Builder, pod, replicaset, uid_for},
    },
};

const UPDATES_PER_S: u64 = 5_000;

fn pod_of(i: usize) -> Value {
    let ns = format!("team-{:02}", (i / 20) % 50);
    let rs = format!("svc-{}-7f9c5d8b6", i / 20);
    let mut p = pod(&ns, &format!("{rs}-{i:05x}"))
        .owned_by("ReplicaSet", &rs, &uid_for("ReplicaSet", &ns, &rs))
        .container("app")
        .node(&format!("node-{}", i % 120));
    p = p.restarts("app", 0);
    p.running("app").build()
}

async fn exporter(fake: &FakeApiServer, dir: &std::path::Path, extra: &[&str]) -> (Exporter, f64) {
    let kubeconfig = fake.write_kubeconfig(dir);
    let archive = dir.join("archive.redb");
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--archive-path",
        archive.to_str().expect("utf-8"),
    ];
    args.extend(extra);
    let t0 = Instant::now();
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    (exporter, t0.elapsed().as_secs_f64())
}

pub async fn pods() -> BTreeMap<&'static str, f64> {
    let n: usize = if quick() { 10_000 } else { 100_000 };
    let secs: u64 = if quick() { 3 } else { 10 };
    let fake = FakeApiServer::start().await;
    fake.set_bookmark_interval(Duration::from_secs(3600));
    for rs in 0..n.div_ceil(20) {
        let ns = format!("team-{:02}", rs % 50);
        let name = format!("svc-{rs}-7f9c5d8b6");
        fake.apply("replicasets", replicaset(&ns, &name).build());
    }
    let mut bytes = 0;
    let mut lines = Vec::new();
    for i in 0..n {
        let p = pod_of(i);
        bytes += p.to_string().len();
        if lines.len() < 2_000 {
            lines.push(json!({"type": "MODIFIED", "object": p}).to_string());
        }
        fake.apply("pods", p);
    }
    // The floor: the lean decode of such watch lines, in this process.
    let decode_us = floor_decode_us(&lines, Resource::Pods.unread_arrays(), |line| {
        Resource::Pods.watch_line(line).is_ok()
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let (without, _) = exporter(&fake, dir.path(), &["--no-workloads"]).await;
    let rss_without = mib(child_status(without.pid(), "VmRSS:"));
    drop(without);
    let dir = tempfile::tempdir().expect("tempdir");
    let (exporter, startup) = exporter(&fake, dir.path(), &[]).await;
    let rss_listed = mib(child_status(exporter.pid(), "VmRSS:"));

    // The exporter's CPU while idle for as long, to subtract: what it spends on timers and
    // commits whatever comes in.
    let pid = exporter.pid().to_string();
    let idle0 = process_cpu_seconds(&pid);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let idle = process_cpu_seconds(&pid) - idle0;

    // Status updates at 5,000/s; every tenth is a restart of its Pod's container.
    let cpu0 = process_cpu_seconds(&pid);
    let t0 = Instant::now();
    let total = UPDATES_PER_S * secs;
    let mut restarts = vec![0u32; n];
    let mut restarted = 0u64;
    for k in 0..total {
        let i = (k as usize * 7919) % n;
        let at = format!("2026-12-02T10:{:02}:{:02}Z", (k / 60) % 60, k % 60);
        let ns = format!("team-{:02}", (i / 20) % 50);
        let name = format!("svc-{}-7f9c5d8b6-{i:05x}", i / 20);
        if k % 10 == 0 {
            restarts[i] += 1;
            restarted += 1;
            let count = restarts[i];
            fake.modify("pods", &ns, &name, |p| {
                let status = &mut p["status"]["containerStatuses"][0];
                status["restartCount"] = count.into();
                status["lastState"] = serde_json::json!({"terminated": {
                    "exitCode": 1, "reason": "Error", "finishedAt": at}});
            });
        } else {
            fake.modify("pods", &ns, &name, |p| {
                p["status"]["conditions"][0]["lastProbeTime"] = at.into();
            });
        }
        let due = Duration::from_secs_f64((k + 1) as f64 / UPDATES_PER_S as f64);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let offered_secs = t0.elapsed().as_secs_f64();
    loop {
        let m = exporter.metrics().await;
        let counted: f64 =
            m.0.iter()
                .filter(|(name, l, _)| {
                    name == "kube_events_total"
                        && l.get("reason").map(String::as_str) == Some("ContainerRestarted")
                })
                .map(|(.., v)| v)
                .sum();
        if counted as u64 >= restarted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu = process_cpu_seconds(&pid) - cpu0;
    BTreeMap::from([
        ("pods", n as f64),
        ("pod_json_bytes_avg", bytes as f64 / n as f64),
        ("floor_pod_decode_us", decode_us),
        ("startup_s", startup),
        ("rss_no_workloads_mib", rss_without),
        ("rss_pods_listed_mib", rss_listed),
        ("rss_added_by_pods_mib", rss_listed - rss_without),
        ("updates_per_s_offered", total as f64 / offered_secs),
        (
            "cpu_us_per_pod_update",
            (cpu - idle).max(0.0) * 1e6 / total as f64,
        ),
        ("exporter_idle_cpu_pct", idle * 100.0 / secs as f64),
        (
            "rss_after_updates_mib",
            mib(child_status(exporter.pid(), "VmRSS:")),
        ),
    ])
}
