//! The history page in a real browser (headless chromium through chromedriver), served by the
//! real binary from what it archived off the fake API server: filtering by every field, paging
//! forward and back, a row's link to its object, an alert's generatorURL, the page's own
//! refresh, JavaScript off, and a bad query. A screenshot is kept in
//! `target/test-artifacts/page.png` (`UPDATE_SCREENSHOT=1` also writes `docs/page.png`).

use std::{path::Path, time::Duration};

use jiff::Timestamp;

use crate::support::{
    Exporter, POLL,
    alertmanager::Webhook,
    browser::Browser,
    fake_apiserver::{FakeApiServer, NewEvent, new_event},
    http,
    objects::{Builder, deployment, pod, replicaset, uid_for},
    wait_for,
};

/// One event of the fixture: namespace, kind, object, reason, type, count, minutes ago, message.
type Spec = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    u32,
    u64,
    &'static str,
);

/// A realistic morning: a few namespaces, Warnings among Normal events, Node events in
/// `default`, a long message and one with line breaks. Every last occurrence is distinct, so
/// newest first is one order.
#[rustfmt::skip]
const MORNING: &[Spec] = &[
    ("shop", "Pod", "api-7f9c5d-x2b4q", "BackOff", "Warning", 7, 2,
     "Back-off restarting failed container api in pod api-7f9c5d-x2b4q_shop(3eb13b90-4668-4257-bdd6-40fb06671ad1)"),
    ("payments", "Pod", "ledger-0", "FailedScheduling", "Warning", 3, 4,
     "0/6 nodes are available: 3 Insufficient memory, 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. \
      preemption: 0/6 nodes are available: 3 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling."),
    ("shop", "Pod", "api-7f9c5d-x2b4q", "Unhealthy", "Warning", 12, 6,
     "Readiness probe failed: Get \"http://10.0.3.17:8080/ready\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
    ("data", "Pod", "etl-28391520-7kq2m", "Failed", "Warning", 1, 9,
     "Error: ErrImagePull\nfailed to pull and unpack image \"registry.example.com/data/etl:2.4.1\":\nfailed to resolve reference: not found"),
    ("shop", "Pod", "api-7f9c5d-x2b4q", "Started", "Normal", 1, 14, "Started container api"),
    ("shop", "Pod", "api-7f9c5d-x2b4q", "Pulled", "Normal", 1, 15,
     "Successfully pulled image \"registry.example.com/shop/api:1.9.4\" in 2.963s (2.963s including waiting). Image size: 71303168 bytes."),
    ("shop", "Deployment", "api", "ScalingReplicaSet", "Normal", 1, 16, "Scaled up replica set api-7f9c5d from 2 to 3"),
    ("default", "Node", "node-3", "NodeNotReady", "Warning", 1, 25, "Node node-3 status is now: NodeNotReady"),
    ("payments", "Pod", "gateway-6d8f7-mm2kx", "Killing", "Normal", 1, 40, "Stopping container gateway"),
    ("kube-system", "Pod", "coredns-816bcb9f-9afd4", "Scheduled", "Normal", 1, 95,
     "Successfully assigned kube-system/coredns-816bcb9f-9afd4 to node-4"),
    ("data", "CronJob", "etl", "SuccessfulCreate", "Normal", 1, 130, "Created job etl-28391520"),
    ("default", "Node", "node-4", "Rebooted", "Warning", 1, 170,
     "Node node-4 has been rebooted, boot id: 6b3d0f3e-2f1a-4c8e-9d4b-7e2a1c5f9b10"),
];

/// A field of the form, a value to type in it, and which events it keeps.
type Filter<'a> = (&'a str, &'a str, &'a dyn Fn(&Spec) -> bool);

fn event(s: &Spec) -> NewEvent {
    let (namespace, kind, object, reason, type_, count, minutes, message) = *s;
    let mut e = new_event(namespace, kind, object, reason, type_, count);
    e.message = message.into();
    e.age = Duration::from_secs(minutes * 60);
    e
}

/// What a row shows of an event: namespace, object, reason.
fn key(s: &Spec) -> (String, String, String) {
    (s.0.to_owned(), format!("{}/{}", s.1, s.2), s.3.to_owned())
}

/// The fixture's events that `keep` selects, newest first: what the page must show.
fn expected(keep: impl Fn(&Spec) -> bool) -> Vec<(String, String, String)> {
    let mut v: Vec<&Spec> = MORNING.iter().filter(|s| keep(s)).collect();
    v.sort_by_key(|s| s.6);
    v.into_iter().map(key).collect()
}

/// The page's rows as (namespace, object, reason); the object without its workload line.
async fn shown(browser: &Browser) -> Vec<(String, String, String)> {
    browser
        .rows()
        .await
        .into_iter()
        .map(|r| {
            let object = r[3].lines().next().unwrap_or_default().to_owned();
            (r[2].clone(), object, r[4].clone())
        })
        .collect()
}

/// Waits until the page shows `want` (after a navigation the old page may still be there).
async fn wait_shown(browser: &Browser, what: &str, want: &[(String, String, String)]) {
    wait_for(what, Duration::from_secs(10), POLL, || async {
        let have = shown(browser).await;
        if have == want {
            Ok(())
        } else {
            Err(format!("want {want:#?}\nhave {have:#?}"))
        }
    })
    .await;
}

/// Waits until the browser is at a URL ending in `tail`; returns it.
async fn wait_url(browser: &Browser, tail: &str) -> String {
    wait_for(
        &format!("the URL to end in {tail}"),
        Duration::from_secs(10),
        POLL,
        || async {
            let url = browser.current_url().await;
            if url.ends_with(tail) {
                Ok(url)
            } else {
                Err(url)
            }
        },
    )
    .await
}

/// The fake API server holding `events`, and the exporter (with `extra` flags) once it has
/// archived them all.
async fn archived(
    events: &[NewEvent],
    extra: &[&str],
) -> (FakeApiServer, tempfile::TempDir, Exporter) {
    let fake = FakeApiServer::start().await;
    for e in events {
        fake.create(e);
    }
    // The shop's api Pod belongs to the Deployment api, through its ReplicaSet.
    fake.apply("deployments", deployment("shop", "api").build());
    let deployment_uid = uid_for("Deployment", "shop", "api");
    fake.apply(
        "replicasets",
        replicaset("shop", "api-7f9c5d")
            .owned_by("Deployment", "api", &deployment_uid)
            .build(),
    );
    let replicaset_uid = uid_for("ReplicaSet", "shop", "api-7f9c5d");
    fake.apply(
        "pods",
        pod("shop", "api-7f9c5d-x2b4q")
            .owned_by("ReplicaSet", "api-7f9c5d", &replicaset_uid)
            .container("api")
            .build(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = fake.write_kubeconfig(dir.path());
    let mut args = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let exporter = Exporter::start(&args).await;
    exporter.wait_ready().await;
    let want = events.len();
    wait_for(
        "every event archived",
        Duration::from_secs(20),
        POLL,
        || async {
            let (_, body) = exporter.get("/api/v1/events?limit=1000").await;
            let page: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let have = page["items"].as_array().map_or(0, Vec::len);
            if have == want {
                Ok(())
            } else {
                Err(exporter.with_logs(format!("{have} of {want}")))
            }
        },
    )
    .await;
    (fake, dir, exporter)
}

fn morning() -> Vec<NewEvent> {
    MORNING.iter().map(event).collect()
}

/// Where test artefacts go: `target/test-artifacts/`.
fn artifact(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_filters_by_every_field_pages_and_links_to_each_object() {
    let (_fake, _dir, exporter) = archived(&morning(), &[]).await;
    let browser = Browser::start(true, 1280, 1000).await;
    let home = exporter.url("/");

    browser.goto(&home).await;
    wait_shown(&browser, "every event, newest first", &expected(|_| true)).await;
    let warnings = browser.find_all("tbody tr.w").await;
    assert_eq!(warnings.len(), 6, "Warning rows stand out");
    // The page's CSP admits its own script and style, by hash: both apply.
    assert_eq!(
        browser
            .execute(
                "return [document.documentElement.className, \
                 getComputedStyle(document.querySelector('tr.w')).backgroundColor \
                 !== getComputedStyle(document.querySelector('tr:not(.w)')).backgroundColor]"
            )
            .await,
        serde_json::json!(["js", true])
    );
    assert_eq!(
        browser
            .text(&browser.find("tbody tr.w td:nth-child(2)").await)
            .await,
        "⚠ Warning"
    );
    // A Pod's row names its workload, which links to the workload's history.
    let object = browser
        .text(&browser.find("tbody tr:nth-child(1) td:nth-child(4)").await)
        .await;
    assert_eq!(object, "Pod/api-7f9c5d-x2b4q\nof Deployment/api");
    let message = browser
        .text(&browser.find("tbody tr:nth-child(4) td.m").await)
        .await;
    assert_eq!(message, MORNING[3].7, "line breaks kept, nothing cut");
    let screenshot = artifact("page.png");
    browser.screenshot(&screenshot).await;
    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(
            &screenshot,
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/page.png"),
        )
        .expect("copy the screenshot to docs/");
    }

    // Each filter through the form; the URL is the view, without the empty fields.
    let ninety_minutes_ago = (Timestamp::now() - Duration::from_secs(90 * 60)).to_string();
    let filters: [Filter; 7] = [
        ("namespace", "shop", &|s| s.0 == "shop"),
        // The Pod's events and the Deployment's own.
        ("workload", "api", &|s| {
            s.0 == "shop" && (s.2 == "api" || s.2.starts_with("api-"))
        }),
        ("kind", "Node", &|s| s.1 == "Node"),
        ("name", "etl", &|s| s.2 == "etl"),
        ("reason", "BackOff", &|s| s.3 == "BackOff"),
        ("since", "1h", &|s| s.6 < 60),
        ("until", &ninety_minutes_ago, &|s| s.6 > 90),
    ];
    for (field, value, keep) in filters {
        browser.goto(&home).await;
        browser.fill(&format!("#f-{field}"), value).await;
        browser.click("button[type=submit]").await;
        let encoded = serde_urlencoded::to_string([(field, value)]).expect("encode");
        wait_url(&browser, &format!("/?{encoded}")).await;
        wait_shown(&browser, &format!("{field}={value}"), &expected(keep)).await;
        let input = browser.find(&format!("#f-{field}")).await;
        assert_eq!(
            browser.property(&input, "value").await,
            value,
            "the form keeps {field}"
        );
    }
    browser.goto(&home).await;
    browser.click("#f-type option:nth-child(3)").await;
    browser.click("button[type=submit]").await;
    wait_url(&browser, "/?type=Warning").await;
    wait_shown(&browser, "type=Warning", &expected(|s| s.4 == "Warning")).await;

    // Pages of two through the shop's five events, then back.
    browser
        .goto(&exporter.url("/?namespace=shop&limit=2"))
        .await;
    let shop = expected(|s| s.0 == "shop");
    let mut pages = Vec::new();
    loop {
        let rows = shown(&browser).await;
        assert!(rows.len() <= 2 && !rows.is_empty(), "{rows:?}");
        pages.push(rows);
        if browser.find_all("a[rel=next]").await.is_empty() {
            break;
        }
        let before = browser.current_url().await;
        browser.click("a[rel=next]").await;
        wait_for("the next page", Duration::from_secs(10), POLL, || async {
            (browser.current_url().await != before).then_some(())
        })
        .await;
        assert!(
            browser
                .current_url()
                .await
                .contains("namespace=shop&limit=2&cursor=")
        );
    }
    assert_eq!(pages.concat(), shop, "every shop event once, in order");
    assert_eq!(pages.len(), 3);
    browser.back().await;
    wait_shown(&browser, "the previous page after back", &pages[1]).await;
    browser.click(".pager a:not([rel])").await;
    wait_url(&browser, "/?namespace=shop&limit=2").await;
    wait_shown(&browser, "the newest page", &pages[0]).await;

    // A row's object link: everything about that object.
    browser.goto(&home).await;
    browser
        .click("tbody tr:first-child td:nth-child(4) a")
        .await;
    wait_url(&browser, "/?namespace=shop&kind=Pod&name=api-7f9c5d-x2b4q").await;
    wait_shown(
        &browser,
        "the object's events",
        &expected(|s| s.0 == "shop" && s.2 == "api-7f9c5d-x2b4q"),
    )
    .await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_page_refreshes_itself_keeps_its_filters_and_escapes_what_arrives() {
    let (fake, _dir, exporter) = archived(&morning(), &[]).await;
    let browser = Browser::start(true, 1280, 1000).await;
    browser.goto(&exporter.url("/?namespace=shop")).await;
    wait_shown(&browser, "the shop's events", &expected(|s| s.0 == "shop")).await;
    assert_eq!(
        browser
            .execute("window.kept = 1; return document.documentElement.className")
            .await,
        "js"
    );

    // Another namespace's event first, then the shop's: once the shop's is shown, a page that
    // had lost its filter would show the other one too.
    fake.create(&new_event(
        "payments", "Pod", "late-1", "BackOff", "Warning", 1,
    ));
    let nasty = r#"<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> & 'quoted'"#;
    let mut e = new_event("shop", "Pod", "new-1", "BackOff", "Warning", 1);
    e.message = nasty.to_owned();
    fake.create(&e);
    let rows = wait_for(
        "the refresh to show the new event",
        Duration::from_secs(30),
        POLL,
        || async {
            let rows = browser.rows().await;
            rows.iter().any(|r| r[3] == "Pod/new-1").then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 6, "only the shop's events: {rows:?}");
    assert_eq!(rows[0][5], nasty, "the message shown as text");
    assert_eq!(
        browser
            .execute("return [window.kept, window.pwned === undefined]")
            .await,
        serde_json::json!([1, true]),
        "swapped in place, not reloaded; nothing injected ran"
    );
    let time = browser.find("tbody tr:first-child time").await;
    assert!(browser.text(&time).await.ends_with(" s ago"));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_javascript_the_table_renders_and_filters_and_bad_queries_explain_themselves() {
    let (_fake, _dir, exporter) = archived(&morning(), &[]).await;
    let browser = Browser::start(false, 1280, 1000).await;
    browser.goto(&exporter.url("/")).await;
    wait_shown(&browser, "every event", &expected(|_| true)).await;
    assert!(
        browser.find_all("html.js").await.is_empty(),
        "the page's script did not run"
    );

    // Typed and submitted with Enter, as from a keyboard.
    browser.fill("#f-namespace", "payments\u{E007}").await;
    // A plain form sends every field; the empty ones are no filter.
    let url = wait_url(&browser, "&limit=").await;
    assert!(
        url.contains("/?namespace=payments&workload=&kind=&name="),
        "{url}"
    );
    wait_shown(
        &browser,
        "the payments events",
        &expected(|s| s.0 == "payments"),
    )
    .await;

    let query = "?namespace=%3Cb%3Eshop%22&limit=ten";
    let (status, body) = exporter.get(&format!("/api/v1/events{query}")).await;
    assert_eq!(status, 400);
    let api: serde_json::Value = serde_json::from_str(&body).expect("json");
    let response = http()
        .get(exporter.url(&format!("/{query}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 400);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.starts_with("default-src 'none'; script-src 'sha256-"),
        "{csp}"
    );
    browser.goto(&exporter.url(&format!("/{query}"))).await;
    let error = browser.text(&browser.find("[role=alert]").await).await;
    assert!(
        error.contains(api["error"].as_str().expect("error")),
        "{error}"
    );
    let namespace = browser.find("#f-namespace").await;
    assert_eq!(
        browser.property(&namespace, "value").await,
        "<b>shop\"",
        "as typed"
    );
    assert!(browser.find_all("table").await.is_empty());
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alerts_generator_url_opens_the_page_filtered_to_its_object() {
    let webhook = Webhook::start(200).await;
    let events = [
        new_event("shop", "Pod", "api-1", "BackOff", "Warning", 3),
        new_event("shop", "Pod", "api-1", "Pulled", "Normal", 1),
        new_event("shop", "Pod", "api-2", "Pulled", "Normal", 1),
        new_event(
            "shop",
            "Deployment",
            "api-1",
            "ScalingReplicaSet",
            "Normal",
            1,
        ),
    ];
    // Without --external-url the exporter links to its --listen address.
    let (_fake, _dir, exporter) =
        archived(&events, &["--alertmanager-url", &webhook.url("")]).await;
    let alert = wait_for("the alert", Duration::from_secs(20), POLL, || async {
        webhook
            .received()
            .iter()
            .flat_map(|r| r.body.as_array().cloned().unwrap_or_default())
            .next()
    })
    .await;
    let url = alert["generatorURL"].as_str().expect("generatorURL");
    assert_eq!(url, exporter.url("/?namespace=shop&kind=Pod&name=api-1"));

    let browser = Browser::start(true, 1280, 800).await;
    browser.goto(url).await;
    // Both happened in the same second: their order is the order the exporter saw them in.
    let rows = wait_for(
        "the alert's object's events",
        Duration::from_secs(10),
        POLL,
        || async {
            let mut rows = shown(&browser).await;
            rows.sort();
            (rows.len() == 2).then_some(rows)
        },
    )
    .await;
    let object = |r: &str| ("shop".to_owned(), "Pod/api-1".to_owned(), r.to_owned());
    assert_eq!(rows, [object("BackOff"), object("Pulled")]);
    for (field, want) in [("namespace", "shop"), ("kind", "Pod"), ("name", "api-1")] {
        let input = browser.find(&format!("#f-{field}")).await;
        assert_eq!(browser.property(&input, "value").await, want);
    }
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_each_row_is_a_labelled_block_and_nothing_scrolls_sideways() {
    let (_fake, _dir, exporter) = archived(&morning(), &[]).await;
    let browser = Browser::start(true, 390, 844).await;
    browser.goto(&exporter.url("/")).await;
    wait_shown(&browser, "every event", &expected(|_| true)).await;
    let layout = browser
        .execute(
            "const td = document.querySelector('tbody td:nth-child(5)'); \
             return [window.innerWidth, document.documentElement.scrollWidth, \
                     getComputedStyle(td).display, getComputedStyle(td, '::before').content];",
        )
        .await;
    let width = layout[0].as_u64().expect("width");
    assert!(width <= 600, "a phone-sized viewport: {layout}");
    assert!(
        layout[1].as_u64().expect("scroll width") <= width,
        "no sideways scrolling: {layout}"
    );
    assert_eq!(layout[2], "block", "{layout}");
    assert_eq!(layout[3], "\"Reason: \"", "{layout}");
    browser.screenshot(&artifact("page-phone.png")).await;
    browser.quit().await;
}
