//! Measurement 10: what `--auth kubernetes` costs a history request. Two real binaries against
//! one fake API server (which answers TokenReviews and SubjectAccessReviews), one with the flag
//! and one without, archive the same events; then `GET /api/v1/events?namespace=…&limit=100`
//! is timed on each, alternately, with a valid token on the one with auth. A request whose
//! decision was cached (no review reached the fake while it ran) is compared with the request
//! without auth; the first request of a token, and of a namespace, is counted in reviews.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    common::{REASONS, percentile, quick},
    support::{
        Exporter, POLL,
        fake_apiserver::{FakeApiServer, NewEvent, new_event},
        http, wait_for,
    },
};

/// Namespaces of the archived events; the benchmark's user may read the first [`PERMITTED`].
const NAMESPACES: usize = 10;
const PERMITTED: usize = 5;

/// One history request's latency, the whole body read; it must answer 200.
async fn timed_get(client: &reqwest::Client, url: &str, token: Option<&str>) -> Duration {
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let t = Instant::now();
    let response = request.send().await.expect("request");
    let status = response.status();
    let body = response.bytes().await.expect("body");
    let elapsed = t.elapsed();
    assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
    elapsed
}

/// The exporter with `extra` against `fake`, every one of `n` events archived.
async fn exporter(
    fake: &FakeApiServer,
    dir: &std::path::Path,
    n: usize,
    extra: &[&str],
) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--no-workloads",
    ];
    for flag in [
        "--archive-namespace-rate",
        "--archive-namespace-burst",
        "--archive-rate",
        "--archive-burst",
    ] {
        args.extend([flag, "1000000"]);
    }
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    wait_for(
        "every event to be archived",
        Duration::from_secs(120),
        POLL,
        || async {
            let written = exporter
                .metrics()
                .await
                .value("kube_event_exporter_archive_writes_total");
            (written >= n as f64).then_some(())
        },
    )
    .await;
    exporter
}

pub async fn auth() -> BTreeMap<&'static str, f64> {
    let n: usize = if quick() { 2_000 } else { 20_000 };
    let requests: usize = if quick() { 300 } else { 3_000 };
    let fake = FakeApiServer::start().await;
    fake.preload((0..n).map(|i| NewEvent {
        message: format!(
            "Back-off restarting failed container app in pod p-{i}_ns-{}(uid-{i:08}): exit code 1, \
             last state Terminated (Error) after 2s",
            i % NAMESPACES
        ),
        ..new_event(
            &format!("ns-{}", i % NAMESPACES),
            "Pod",
            &format!("p-{i}"),
            REASONS[i % 8],
            "Warning",
            1,
        )
    }));
    let r = &fake.reviews;
    // A team's token: allowed in some namespaces through its group, as a RoleBinding would.
    for token in ["bench-token", "cold-token", "list-token"] {
        r.add_user(token, &format!("user-{token}"), &["bench-devs"]);
    }
    for ns in 0..PERMITTED {
        r.allow_group("bench-devs", Some(&format!("ns-{ns}")));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (open_dir, auth_dir) = (dir.path().join("open"), dir.path().join("auth"));
    std::fs::create_dir_all(&open_dir).expect("dir");
    std::fs::create_dir_all(&auth_dir).expect("dir");
    let open = exporter(&fake, &open_dir, n, &[]).await;
    let guarded = exporter(&fake, &auth_dir, n, &["--auth", "kubernetes"]).await;
    let client = http();
    let path = |ns: usize| format!("/api/v1/events?namespace=ns-{ns}&limit=100");

    // Cold: a token never seen, a namespace never asked for: one TokenReview and one
    // SubjectAccessReview. Then the same token in another namespace: one SubjectAccessReview.
    let before = r.counts();
    let cold = timed_get(&client, &guarded.url(&path(0)), Some("cold-token")).await;
    let after_cold = r.counts();
    timed_get(&client, &guarded.url(&path(1)), Some("cold-token")).await;
    let after_second_ns = r.counts();
    // No namespace, a user allowed in some: one TokenReview, one review for all namespaces,
    // one per archived namespace (the README's "Cost").
    timed_get(
        &client,
        &guarded.url("/api/v1/events?limit=100"),
        Some("list-token"),
    )
    .await;
    let after_list = r.counts();

    // Warm both up (connections, caches, the archive's pages), then alternate.
    for i in 0..50 {
        let ns = i % PERMITTED;
        timed_get(&client, &open.url(&path(ns)), None).await;
        timed_get(&client, &guarded.url(&path(ns)), Some("bench-token")).await;
    }
    let mut without = Vec::with_capacity(requests);
    let mut with = Vec::with_capacity(requests);
    let mut refreshed = 0usize;
    for i in 0..requests {
        let ns = i % PERMITTED;
        without.push(timed_get(&client, &open.url(&path(ns)), None).await);
        let reviews = r.counts();
        let t = timed_get(&client, &guarded.url(&path(ns)), Some("bench-token")).await;
        // A decision that expired (10 s) was reviewed again: not a cached request.
        if r.counts() == reviews {
            with.push(t);
        } else {
            refreshed += 1;
        }
    }
    without.sort();
    with.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50_without, p99_without) = (
        ms(percentile(&without, 0.5)),
        ms(percentile(&without, 0.99)),
    );
    let (p50_with, p99_with) = (ms(percentile(&with, 0.5)), ms(percentile(&with, 0.99)));
    let mean = |v: &[Duration]| ms(v.iter().sum::<Duration>()) / v.len() as f64;
    let diff = |a: (usize, usize), b: (usize, usize)| ((b.0 - a.0) as f64, (b.1 - a.1) as f64);
    let (cold_tokens, cold_access) = diff(before, after_cold);
    let (second_tokens, second_access) = diff(after_cold, after_second_ns);
    let (list_tokens, list_access) = diff(after_second_ns, after_list);
    BTreeMap::from([
        ("requests_timed", requests as f64),
        ("cached_p50_ms_without_auth", p50_without),
        ("cached_p99_ms_without_auth", p99_without),
        ("cached_p50_ms_with_auth", p50_with),
        ("cached_p99_ms_with_auth", p99_with),
        ("cached_p50_extra_ms", p50_with - p50_without),
        ("cached_p99_extra_ms", p99_with - p99_without),
        ("cached_mean_extra_ms", mean(&with) - mean(&without)),
        ("cached_refreshed", refreshed as f64),
        ("cold_ms", ms(cold)),
        ("cold_tokenreviews", cold_tokens),
        ("cold_sars", cold_access),
        ("second_ns_tokenreviews", second_tokens),
        ("second_ns_sars", second_access),
        ("no_ns_tokenreviews", list_tokens),
        ("no_ns_sars", list_access),
    ])
}
