//! Access to the history through Kubernetes RBAC (`--auth kubernetes`), end to end: the real
//! binary against the fake API server, which answers its TokenReviews and SubjectAccessReviews
//! for a few users. Each user reads exactly their namespaces through the API (JSON and table)
//! and the page; no token and a bad token are 401, another namespace 403; a decision is
//! cached; a failing API server is a 503 with no data; proxy headers count only with their
//! flag; `/metrics` and the probes stay open. With `--history-listen` the history is served
//! only on its own port, with the same checks, and the main port serves only `/metrics` and
//! the probes. The fake's reviews are checked against kubectl.

use std::{collections::BTreeSet, process::Command, time::Duration};

use serde_json::Value;

use crate::support::{
    Exporter, POLL,
    fake_apiserver::{FakeApiServer, new_event},
    fake_reviews::{EXPORTER_USER, Fault},
    free_port, http, wait_for,
};

/// The archived events: (namespace, involved object).
const EVENTS: [(&str, &str); 7] = [
    ("shop", "shop-api-1"),
    ("shop", "shop-api-2"),
    ("shop", "shop-db-0"),
    ("pay", "pay-gw-1"),
    ("pay", "pay-gw-2"),
    ("ops", "ops-cron-1"),
    ("kube-system", "coredns-1"),
];

/// A fake API server with the events and users (token, name, groups): alice may read `shop`;
/// bob `ops` himself and `pay` through his group; root everything; carol nothing.
async fn cluster() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    for (ns, object) in EVENTS {
        fake.create(&new_event(ns, "Pod", object, "BackOff", "Warning", 1));
    }
    let r = &fake.reviews;
    r.add_user("alice-token", "alice", &["shop-devs"]);
    r.add_user("bob-token", "bob", &["payments"]);
    r.add_user("root-token", "root", &["admins"]);
    r.add_user("carol-token", "carol", &[]);
    r.allow_user("alice", Some("shop"));
    r.allow_user("bob", Some("ops"));
    r.allow_group("payments", Some("pay"));
    r.allow_group("admins", None);
    fake
}

/// The exporter with `--auth kubernetes` (and `extra`) against `fake`, every event archived.
async fn exporter(fake: &FakeApiServer, dir: &std::path::Path, extra: &[&str]) -> Exporter {
    let kubeconfig = fake.write_kubeconfig(dir);
    let mut args = vec![
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--auth",
        "kubernetes",
    ];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    wait_for(
        "every event to be archived",
        Duration::from_secs(30),
        POLL,
        || async {
            let (status, _, body) = get(
                &exporter,
                "/api/v1/events",
                &[("authorization", "Bearer root-token")],
            )
            .await;
            let n = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["items"].as_array().map(Vec::len));
            (status == 200 && n == Some(EVENTS.len()))
                .then_some(())
                .ok_or_else(|| exporter.with_logs(format!("{status} {body}")))
        },
    )
    .await;
    exporter
}

/// GET `path` with `headers`: status, the WWW-Authenticate header, body.
async fn get(
    exporter: &Exporter,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    get_url(&exporter.url(path), headers).await
}

/// GET `url` with `headers`: status, the WWW-Authenticate header, body.
async fn get_url(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let mut request = http().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let r = request.send().await.expect("request");
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        r.status().as_u16(),
        challenge,
        r.text().await.expect("body"),
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every item through the JSON API, one per page, following the cursors.
async fn walk(exporter: &Exporter, token: &str, query: &str) -> Vec<(String, String)> {
    let auth = bearer(token);
    let mut items = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/api/v1/events?limit=1&{query}{cursor}");
        let (status, _, body) = get(exporter, &path, &[("authorization", &auth)]).await;
        assert_eq!(status, 200, "{token} {path}: {body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        for i in page["items"].as_array().expect("items") {
            let s = |k: &str| i[k].as_str().expect("string").to_owned();
            items.push((s("namespace"), s("name")));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => return items,
        }
    }
}

fn events_in(namespaces: &[&str]) -> BTreeSet<(String, String)> {
    EVENTS
        .iter()
        .filter(|(ns, _)| namespaces.contains(ns))
        .map(|(ns, o)| ((*ns).to_owned(), (*o).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_reads_exactly_their_namespaces_through_the_api_and_the_page() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[]).await;
    let everything = ["shop", "pay", "ops", "kube-system"];
    for (token, permitted) in [
        ("alice-token", &["shop"][..]),
        ("bob-token", &["pay", "ops"]),
        ("root-token", &everything),
        ("carol-token", &[]),
    ] {
        let want = events_in(permitted);
        // JSON, one record per page: the restriction is in the scan, so every cursor leads to
        // the next permitted record and none is skipped or repeated.
        let walked = walk(&exporter, token, "").await;
        assert_eq!(walked.len(), want.len(), "{token}: {walked:?}");
        assert_eq!(walked.into_iter().collect::<BTreeSet<_>>(), want, "{token}");
        // The table and the page show the same records, and nothing of the others.
        let auth = bearer(token);
        for path in ["/api/v1/events?format=table", "/"] {
            let (status, _, body) = get(&exporter, path, &[("authorization", &auth)]).await;
            assert_eq!(status, 200, "{token} {path}: {body}");
            for (ns, object) in EVENTS {
                assert_eq!(
                    body.contains(object),
                    permitted.contains(&ns),
                    "{token} {path}: {object} in {ns}:\n{body}"
                );
            }
        }
        // A permitted namespace asked for by name; every other one is a 403 (JSON, and a
        // readable page).
        for ns in everything {
            let path = format!("/api/v1/events?namespace={ns}");
            let (status, _, body) = get(&exporter, &path, &[("authorization", &auth)]).await;
            if permitted.contains(&ns) {
                assert_eq!(status, 200, "{token} {path}: {body}");
                let n = serde_json::from_str::<Value>(&body).expect("json")["items"]
                    .as_array()
                    .expect("items")
                    .len();
                assert_eq!(n, events_in(&[ns]).len(), "{token} {path}");
            } else {
                assert_eq!(status, 403, "{token} {path}: {body}");
                let error: Value = serde_json::from_str(&body).expect("a JSON error");
                let message = error["error"].as_str().expect("error");
                assert!(message.contains(ns), "{message}");
                assert!(error.get("items").is_none());
                let (status, _, page) = get(
                    &exporter,
                    &format!("/?namespace={ns}"),
                    &[("authorization", &auth)],
                )
                .await;
                assert_eq!(status, 403, "{token} page {ns}");
                assert!(
                    page.contains("You may not read this") && page.contains(ns),
                    "{page}"
                );
                assert!(!EVENTS.iter().any(|(_, o)| page.contains(o)), "{page}");
            }
        }
    }
    // The reviews carried the user the TokenReview named, and asked about list events.
    let specs = fake.reviews.access_specs();
    let alice_shop = specs
        .iter()
        .find(|s| s["user"] == "alice" && s["resourceAttributes"]["namespace"] == "shop")
        .expect("a review of alice in shop");
    assert_eq!(alice_shop["uid"], "uid-alice");
    assert_eq!(
        alice_shop["groups"],
        serde_json::json!(["shop-devs", "system:authenticated"])
    );
    let attributes = &alice_shop["resourceAttributes"];
    assert_eq!(
        (
            &attributes["verb"],
            &attributes["resource"],
            &attributes["group"]
        ),
        (&"list".into(), &"events".into(), &"".into())
    );
    let m = exporter.metrics().await;
    let decided = |result| {
        m.get(
            "kube_event_exporter_auth_decisions_total",
            &[("result", result)],
        )
        .unwrap_or(0.0)
    };
    assert!(decided("allowed") > 0.0 && decided("denied") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_token_the_history_is_401_and_metrics_and_probes_stay_open() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[]).await;
    for headers in [
        &[][..],
        &[("authorization", "Bearer not-a-token")],
        &[("authorization", "Basic YWxpY2U6c2VjcmV0")],
        &[("authorization", "Bearer ")],
        // Proxy headers without --auth-trusted-proxy-headers are no credentials.
        &[
            ("x-forwarded-user", "root"),
            ("x-forwarded-groups", "admins"),
        ],
    ] {
        for path in [
            "/api/v1/events",
            "/api/v1/events?namespace=shop",
            "/api/v1/events?format=table",
            "/",
        ] {
            let (status, challenge, body) = get(&exporter, path, headers).await;
            assert_eq!(status, 401, "{headers:?} {path}: {body}");
            assert_eq!(challenge.as_deref(), Some("Bearer"), "{headers:?} {path}");
            assert!(
                !EVENTS.iter().any(|(_, o)| body.contains(o)),
                "{headers:?} {path}: {body}"
            );
            if path.starts_with("/api") && !path.contains("table") {
                let error: Value = serde_json::from_str(&body).expect("a JSON error");
                assert!(error["error"].is_string(), "{body}");
            }
        }
    }
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, _, body) = get(&exporter, path, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let m = exporter.metrics().await;
    assert_eq!(
        m.get(
            "kube_event_exporter_auth_decisions_total",
            &[("result", "unauthenticated")]
        ),
        Some(20.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_is_cached_briefly() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[]).await;
    let auth = bearer("alice-token");
    let headers = [("authorization", auth.as_str())];
    let path = "/api/v1/events?namespace=shop";
    let before = fake.reviews.counts();
    let (status, _, _) = get(&exporter, path, &headers).await;
    assert_eq!(status, 200);
    let after_first = fake.reviews.counts();
    assert_eq!(
        (after_first.0 - before.0, after_first.1 - before.1),
        (1, 1),
        "one TokenReview and one SubjectAccessReview"
    );
    // The same request again, and the page for the same namespace: no review at all.
    assert_eq!(get(&exporter, path, &headers).await.0, 200);
    assert_eq!(get(&exporter, "/?namespace=shop", &headers).await.0, 200);
    assert_eq!(fake.reviews.counts(), after_first);
    // Briefly: once the RoleBinding is gone, the allow expires and she is refused.
    fake.reviews.revoke_user("alice");
    wait_for(
        "the revoked allow to expire",
        Duration::from_secs(30),
        POLL,
        || async {
            let (status, _, body) = get(&exporter, path, &headers).await;
            (status == 403)
                .then_some(())
                .ok_or(format!("{status} {body}"))
        },
    )
    .await;
    // A query without a namespace: one review for all namespaces, then one per archived
    // namespace, each cached on its own.
    let before = fake.reviews.counts();
    let bob = bearer("bob-token");
    let bob = [("authorization", bob.as_str())];
    assert_eq!(get(&exporter, "/api/v1/events", &bob).await.0, 200);
    let after = fake.reviews.counts();
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 5));
    assert_eq!(get(&exporter, "/api/v1/events", &bob).await.0, 200);
    assert_eq!(
        get(&exporter, "/api/v1/events?namespace=pay", &bob).await.0,
        200
    );
    assert_eq!(fake.reviews.counts(), after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_server_failing_is_a_503_and_never_data() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let exporter = exporter(&fake, dir.path(), &[]).await;
    let alice = bearer("alice-token");
    let alice = [("authorization", alice.as_str())];
    // alice's token is known now; her other namespaces are not.
    assert_eq!(
        get(&exporter, "/api/v1/events?namespace=shop", &alice)
            .await
            .0,
        200
    );
    for fault in [Fault::Fail(500), Fault::Fail(429), Fault::Hang] {
        fake.reviews.set_fault(Some(fault));
        // bob's TokenReview fails; alice's SubjectAccessReviews fail (or, once her cached
        // identity has expired, her TokenReview does).
        for (headers, path) in [
            (
                &[("authorization", "Bearer bob-token")][..],
                "/api/v1/events",
            ),
            (&alice[..], "/api/v1/events?namespace=pay"),
            (&alice[..], "/?namespace=ops"),
            (&alice[..], "/api/v1/events?format=table"),
        ] {
            let (status, _, body) = get(&exporter, path, headers).await;
            assert_eq!(status, 503, "{fault:?} {path}: {body}");
            assert!(
                !EVENTS.iter().any(|(_, o)| body.contains(o)),
                "{fault:?} {path}: {body}"
            );
            if path == "/api/v1/events?namespace=pay" {
                let error: Value = serde_json::from_str(&body).expect("a JSON error");
                assert!(
                    error["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("could not review")),
                    "{body}"
                );
            }
        }
    }
    fake.reviews.set_fault(None);
    let (status, _, body) = get(&exporter, "/api/v1/events?namespace=shop", &alice).await;
    assert_eq!(status, 200, "{body}");
    let m = exporter.metrics().await;
    for review in ["tokenreview", "subjectaccessreview"] {
        assert!(
            m.get(
                "kube_event_exporter_auth_review_errors_total",
                &[("review", review)]
            )
            .is_some_and(|n| n > 0.0),
            "{review}"
        );
    }
    assert_eq!(
        m.get(
            "kube_event_exporter_auth_decisions_total",
            &[("result", "error")]
        ),
        Some(12.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_headers_name_the_user_only_with_their_flag() {
    let fake = cluster().await;
    fake.reviews.allow_user("dave", Some("ops"));
    let dir = tempfile::tempdir().expect("tempdir");
    let trusting = exporter(&fake, dir.path(), &["--auth-trusted-proxy-headers"]).await;
    let tokens_before = fake.reviews.counts().0;
    for (headers, permitted) in [
        (&[("x-forwarded-user", "alice")][..], &["shop"][..]),
        (
            &[
                ("x-forwarded-user", "dave"),
                ("x-forwarded-groups", "payments, other"),
            ],
            &["pay", "ops"],
        ),
        (&[("x-forwarded-user", "nobody")], &[]),
    ] {
        let (status, _, body) = get(&trusting, "/api/v1/events", headers).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
        let page: Value = serde_json::from_str(&body).expect("json");
        let got: BTreeSet<(String, String)> = page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| {
                (
                    i["namespace"].as_str().expect("ns").to_owned(),
                    i["name"].as_str().expect("name").to_owned(),
                )
            })
            .collect();
        assert_eq!(got, events_in(permitted), "{headers:?}");
    }
    assert_eq!(
        fake.reviews.counts().0,
        tokens_before,
        "headers are taken without a TokenReview"
    );
    let dave = fake
        .reviews
        .access_specs()
        .into_iter()
        .find(|s| s["user"] == "dave")
        .expect("a review of dave");
    assert_eq!(dave["groups"], serde_json::json!(["payments", "other"]));
    // Without headers a token still works.
    let (status, _, _) = get(
        &trusting,
        "/api/v1/events?namespace=shop",
        &[("authorization", "Bearer alice-token")],
    )
    .await;
    assert_eq!(status, 200);
    // The flag needs --auth kubernetes.
    let out = Command::new(Exporter::binary())
        .args(["--replay", "-", "--auth-trusted-proxy-headers"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .next()
            .is_some_and(|l| l.contains("--auth-trusted-proxy-headers")),
        "{stderr}"
    );
}

/// `--history-listen`: the history (API and page) only on its own port, with access control
/// as on the shared one; `/metrics` and the probes only on `--listen`, where the history is a
/// 404. What a NetworkPolicy admits per port is then what each client can reach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_on_its_own_port_keeps_its_access_control() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let history_addr = format!("127.0.0.1:{}", free_port());
    let exporter = Exporter::start(&[
        "--kubeconfig",
        kubeconfig.to_str().expect("utf-8"),
        "--auth",
        "kubernetes",
        "--history-listen",
        &history_addr,
    ])
    .await;
    exporter.wait_ready().await;
    let history = |path: &str| format!("http://{history_addr}{path}");
    let root = [("authorization", "Bearer root-token")];
    wait_for(
        "every event to be archived, read on the history port",
        Duration::from_secs(30),
        POLL,
        || async {
            let (status, _, body) = get_url(&history("/api/v1/events"), &root).await;
            let n = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["items"].as_array().map(Vec::len));
            (status == 200 && n == Some(EVENTS.len()))
                .then_some(())
                .ok_or_else(|| exporter.with_logs(format!("{status} {body}")))
        },
    )
    .await;

    // The main port: /metrics and the probes, open; the history is not there, with or
    // without credentials.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, _, body) = get(&exporter, path, &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    for path in [
        "/",
        "/?namespace=shop",
        "/api/v1/events",
        "/api/v1/events?namespace=shop&format=table",
    ] {
        for headers in [&[][..], &root] {
            let (status, _, body) = get(&exporter, path, headers).await;
            assert_eq!(status, 404, "{path} on the main port: {body}");
            assert!(!EVENTS.iter().any(|(_, o)| body.contains(o)), "{body}");
        }
    }

    // The history port: no /metrics, no probes.
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (status, _, body) = get_url(&history(path), &[]).await;
        assert_eq!(status, 404, "{path} on the history port: {body}");
    }
    // Its access control is the same: 401 without a token, each user their namespaces, 403
    // for another one, the API and the page alike.
    for path in ["/api/v1/events", "/"] {
        let (status, challenge, body) = get_url(&history(path), &[]).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(challenge.as_deref(), Some("Bearer"));
        assert!(!EVENTS.iter().any(|(_, o)| body.contains(o)), "{body}");
    }
    let alice = [("authorization", "Bearer alice-token")];
    for path in ["/api/v1/events?format=table", "/"] {
        let (status, _, body) = get_url(&history(path), &alice).await;
        assert_eq!(status, 200, "{path}: {body}");
        for (ns, object) in EVENTS {
            assert_eq!(body.contains(object), ns == "shop", "{path}: {object}");
        }
    }
    for path in ["/api/v1/events?namespace=pay", "/?namespace=pay"] {
        let (status, _, body) = get_url(&history(path), &alice).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    // A decision made on the history port is cached there like anywhere.
    let before = fake.reviews.counts();
    let (status, _, _) = get_url(&history("/api/v1/events?namespace=shop"), &alice).await;
    assert_eq!(status, 200);
    assert_eq!(fake.reviews.counts(), before);
    // The decisions are counted in /metrics on the main port.
    let m = exporter.metrics().await;
    assert!(
        m.get(
            "kube_event_exporter_auth_decisions_total",
            &[("result", "unauthenticated")]
        )
        .is_some_and(|n| n >= 2.0)
    );
}

#[test]
fn a_bad_auth_mode_exits_2_naming_the_flag() {
    for (args, env) in [
        (&["--auth", "rbac"][..], &[][..]),
        (&["--auth", ""], &[]),
        (&[], &[("KEE_AUTH", "oidc")]),
    ] {
        let out = Command::new(Exporter::binary())
            .args(["--replay", "-"])
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.lines().next().is_some_and(|l| l.contains("--auth")),
            "{args:?} {env:?}: {stderr}"
        );
    }
}

/// kubectl, the reference client, as alice or as the exporter's service account: `auth can-i` (a
/// SelfSubjectAccessReview), `auth whoami` (a SelfSubjectReview) and `create` of a TokenReview
/// and a SubjectAccessReview decode what the fake answers, and agree with its rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_agrees_with_the_fake_reviews() {
    let fake = cluster().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // kubectl sends no token over plain http: it names its user with --as.
    let kc = fake.write_kubeconfig(dir.path());
    let kubectl = |kubeconfig: std::path::PathBuf, args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = Command::new("kubectl")
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(&args)
                .output()
                .expect("kubectl");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    for (ns, want) in [("shop", "yes"), ("pay", "no")] {
        let (_, out, err) = kubectl(
            kc.clone(),
            args(&[
                "auth",
                "can-i",
                "list",
                "events",
                "-n",
                ns,
                "--as",
                "alice",
                "--as-group",
                "shop-devs",
            ]),
        )
        .await
        .expect("join");
        assert_eq!(out, want, "can-i in {ns}: {err}");
    }
    let (code, out, err) = kubectl(
        kc.clone(),
        args(&["auth", "whoami", "-o", "json", "--as", "alice"]),
    )
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{err}");
    let me: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(me["status"]["userInfo"]["username"], "alice");

    let token_review = dir.path().join("tokenreview.json");
    std::fs::write(
        &token_review,
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"bob-token"}}"#,
    )
    .expect("write");
    let access_review = dir.path().join("sar.json");
    std::fs::write(
        &access_review,
        r#"{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"bob","groups":["payments"],"resourceAttributes":{"namespace":"pay","verb":"list","resource":"events"}}}"#,
    )
    .expect("write");
    for (file, check) in [
        (&token_review, "/status/user/username"),
        (&access_review, "/status/allowed"),
    ] {
        let (code, out, err) = kubectl(
            kc.clone(),
            args(&[
                "create",
                "-f",
                file.to_str().expect("utf-8"),
                "-o",
                "json",
                "--validate=false",
                "--as",
                EXPORTER_USER,
            ]),
        )
        .await
        .expect("join");
        assert_eq!(code, Some(0), "{}: {err}", file.display());
        let answer: Value = serde_json::from_str(&out).expect("json");
        let want = if check.ends_with("username") {
            Value::from("bob")
        } else {
            Value::from(true)
        };
        assert_eq!(answer.pointer(check), Some(&want), "{out}");
    }
    // Only the exporter's identity may create reviews, as its ClusterRole allows.
    let (code, _, err) = kubectl(
        kc,
        args(&[
            "create",
            "-f",
            token_review.to_str().expect("utf-8"),
            "--validate=false",
            "--as",
            "alice",
        ]),
    )
    .await
    .expect("join");
    assert_ne!(code, Some(0));
    assert!(err.contains("forbidden"), "{err}");
}
