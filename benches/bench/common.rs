//! What every measurement shares: the quick/full switch, process readings from /proc, and
//! realistic events as the API server sends them.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;

/// The floor of a watch figure: CPU per line of the lean decode of `lines` in this process, as
/// the exporter reads a line (into its buffer, its `unread` arrays cut, decoded by `decode`).
pub fn floor_decode_us(lines: &[String], unread: &[&str], decode: impl Fn(&[u8]) -> bool) -> f64 {
    let rounds = 20;
    let mut buf = Vec::with_capacity(8192);
    let t = std::time::Instant::now();
    for _ in 0..rounds {
        for line in lines {
            buf.clear();
            buf.extend_from_slice(line.as_bytes());
            kube_event_exporter::source::wire::strip_arrays(&mut buf, unread);
            assert!(std::hint::black_box(decode(&buf)), "{line}");
        }
    }
    t.elapsed().as_secs_f64() * 1e6 / (rounds * lines.len()) as f64
}

/// The mean length of `lines`, in bytes.
pub fn avg_len(lines: &[String]) -> f64 {
    lines.iter().map(String::len).sum::<usize>() as f64 / lines.len() as f64
}

pub const NAMESPACES: u64 = 50;
pub const REASONS: [&str; 8] = [
    "BackOff",
    "Pulled",
    "Created",
    "Started",
    "Unhealthy",
    "FailedScheduling",
    "Killing",
    "FailedMount",
];

pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
}

/// A field of `/proc/<process>/status` in KiB (`process` is a pid or `self`).
pub fn status_kib(process: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn proc_status(field: &str) -> u64 {
    status_kib("self", field)
}

pub fn child_status(pid: u32, field: &str) -> u64 {
    status_kib(&pid.to_string(), field)
}

/// CPU seconds (user + system) of a process so far (`process` is a pid or `self`).
pub fn process_cpu_seconds(process: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{process}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime; the first after the name is field 3), in
    // clock ticks of 10 ms.
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

pub fn cpu_seconds() -> f64 {
    process_cpu_seconds("self")
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A kubelet-style core/v1 Event of about 1.2 KB as JSON, in `namespace`, happening `count`
/// times.
pub fn core_event(i: u64, count: u64, rv: u64) -> serde_json::Value {
    let ns = format!("team-{:02}", i % NAMESPACES);
    let pod = format!(
        "svc-{}-7f9c5d8b6-{:05x}",
        (i / 7) % 400,
        (i * 7919) % 0xfffff
    );
    let reason = REASONS[(i % 8) as usize];
    let message = match reason {
        "BackOff" => format!("Back-off restarting failed container app in pod {pod}_{ns}(3f1c2d4e-9a8b-4c7d-8e6f-{i:012})"),
        "Unhealthy" => format!("Readiness probe failed: Get \"http://10.42.{}.{}:8080/healthz\": dial tcp 10.42.{}.{}:8080: connect: connection refused", i % 250, i % 200, i % 250, i % 200),
        "FailedScheduling" => "0/120 nodes are available: 40 Insufficient memory, 80 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/120 nodes are available: 40 No preemption victims found for incoming pod, 80 Preemption is not helpful for scheduling.".to_owned(),
        "Pulled" => format!("Successfully pulled image \"registry.example.com/{ns}/svc:{}.{}.0\" in 1.204s (1.204s including waiting). Image size: 48213 bytes.", i % 9, i % 30),
        _ => format!("{reason} container app"),
    };
    let t = Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("round")
        .to_string();
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {
            "name": format!("{pod}.{:016x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15)), "namespace": ns,
            "uid": format!("{:08x}-4668-4257-bdd6-{i:012x}", i.wrapping_mul(2_654_435_761) as u32),
            "resourceVersion": rv.to_string(), "creationTimestamp": t,
            "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": t,
                               "fieldsType": "FieldsV1", "fieldsV1": {"f:count": {}, "f:firstTimestamp": {}, "f:involvedObject": {}, "f:lastTimestamp": {}, "f:message": {}, "f:reason": {}, "f:reportingComponent": {}, "f:reportingInstance": {}, "f:source": {"f:component": {}, "f:host": {}}, "f:type": {}}}]
        },
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": pod, "uid": format!("1a3d1fa7-bc89-40a9-a3b8-{:012x}", i / 7),
                           "apiVersion": "v1", "resourceVersion": "918273", "fieldPath": "spec.containers{app}"},
        "reason": reason, "message": message,
        "source": {"component": "kubelet", "host": format!("node-{}", i % 120)},
        "firstTimestamp": t, "lastTimestamp": t, "count": count,
        "type": if matches!(reason, "BackOff" | "Unhealthy" | "FailedScheduling" | "FailedMount") { "Warning" } else { "Normal" },
        "eventTime": null, "reportingComponent": "kubelet", "reportingInstance": format!("node-{}", i % 120)
    })
}

/// The same event in the events.k8s.io/v1 shape (as the API server converts it).
pub fn events_v1_event(i: u64, count: u64, rv: u64) -> serde_json::Value {
    let c = core_event(i, count, rv);
    json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": c["metadata"], "eventTime": null,
        "reason": c["reason"], "type": c["type"], "note": c["message"], "regarding": c["involvedObject"],
        "reportingController": "kubelet", "reportingInstance": c["reportingInstance"],
        "deprecatedSource": c["source"], "deprecatedFirstTimestamp": c["firstTimestamp"],
        "deprecatedLastTimestamp": c["lastTimestamp"], "deprecatedCount": count
    })
}

/// The `k`-th of `distinct * repeats` watch lines: every event once, then every event again with
/// a higher count…, as a storm of repeats arrives.
pub fn watch_line(k: u64, distinct: u64, events_api: bool) -> String {
    let (round, i) = (k / distinct, k % distinct);
    let rv = 1_000_000 + k;
    let object = if events_api {
        events_v1_event(i, round + 1, rv)
    } else {
        core_event(i, round + 1, rv)
    };
    let kind = if round == 0 { "ADDED" } else { "MODIFIED" };
    json!({"type": kind, "object": object}).to_string()
}

/// Bytes the file's allocated blocks take on disk.
pub fn disk_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

pub fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}
