//! Test support: the real exporter binary as a child process, a real Prometheus, the fake API
//! server, Alertmanager, a headless chromium, the operator's kit files, and two ways to wait without sleeping:
//! [`wait_for`] polls for a condition with a deadline, and [`barrier`] makes "this did not
//! happen" checkable by waiting for a later event to come through.

#![allow(dead_code)]

pub mod alertmanager;
pub mod browser;
pub mod clickhouse;
pub mod fake_apiserver;
pub mod fake_reviews;
pub mod objects;
pub mod operator_kit;

use std::{
    collections::BTreeMap,
    fmt::Display,
    future::Future,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A free loopback port. The tiny window before the child binds it is retried by `Exporter`.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind :0")
        .local_addr()
        .expect("addr")
        .port()
}

/// How often most waits look: often enough that a test waits little longer than the product.
pub const POLL: Duration = Duration::from_millis(50);

/// One look of [`wait_for`]: `Some` or `Ok` is the awaited value; `None` or `Err` is "not yet",
/// the error saying what was seen instead (printed if the wait times out).
pub trait Look {
    type Value;
    type Seen: Display;
    fn into_result(self) -> Result<Self::Value, Self::Seen>;
}

impl<T> Look for Option<T> {
    type Value = T;
    type Seen = &'static str;
    fn into_result(self) -> Result<T, &'static str> {
        self.ok_or("not yet")
    }
}

impl<T, E: Display> Look for Result<T, E> {
    type Value = T;
    type Seen = E;
    fn into_result(self) -> Self {
        self
    }
}

/// The suite's one poll loop: runs `check` every `every` until it yields a value and returns
/// it; after `within` panics naming `what` and showing what the last look saw.
pub async fn wait_for<L, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: F,
) -> L::Value
where
    L: Look,
    F: FnMut() -> Fut,
    Fut: Future<Output = L>,
{
    let deadline = Instant::now() + within;
    loop {
        let seen = match check().await.into_result() {
            Ok(v) => return v,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last look: {seen}"
        );
        tokio::time::sleep(every).await;
    }
}

/// A causal barrier for checking that something did *not* happen, instead of waiting a while.
/// The exporter takes events in the order the API server sends them, and each output (the
/// counters, the archive, each Alertmanager's queue) handles them in that order. So: create
/// `marker` after whatever must have had no effect, wait until `observed` shows the marker in
/// an output, and that output has handled everything before it; what it does not show did not
/// happen. Returns what `observed` yielded, to check in one look.
pub async fn barrier<L, F, Fut>(
    fake: &fake_apiserver::FakeApiServer,
    marker: &fake_apiserver::NewEvent,
    observed: F,
) -> L::Value
where
    L: Look,
    F: FnMut() -> Fut,
    Fut: Future<Output = L>,
{
    fake.create(marker);
    let what = format!(
        "the marker event {}/{} {} to come through",
        marker.namespace, marker.object, marker.reason
    );
    wait_for(&what, Duration::from_secs(20), POLL, observed).await
}

/// Sends `signal` (`TERM`, `STOP`, `CONT`) to the process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}: {status}");
}

/// Waits until `url` answers a 2xx (a server's readiness endpoint).
pub async fn wait_http_ok(what: &str, url: &str) {
    wait_for(what, Duration::from_secs(30), POLL, || async {
        http()
            .get(url)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;
}

pub fn http() -> reqwest::Client {
    // The product installs ring at start; test processes must too (reqwest has no default).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// The exporter binary, run as a child process on a free loopback port; killed on drop.
pub struct Exporter {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Exporter {
    pub fn binary() -> &'static str {
        env!("CARGO_BIN_EXE_kube-event-exporter")
    }

    /// Starts the exporter with `args` plus `--listen`; waits until it answers HTTP.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_with_stdin(args, Stdio::null()).await
    }

    pub async fn start_with_stdin(args: &[&str], stdin: Stdio) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("exporter.log");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut command = Command::new(Self::binary());
        command.args(args).args(["--listen", &addr.to_string()]);
        if !args.contains(&"--archive-path") {
            command
                .arg("--archive-path")
                .arg(dir.path().join("archive.redb"));
        }
        let child = command
            .env("RUST_LOG", "info,kube_event_exporter=debug")
            .stdin(stdin)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn exporter");
        let mut exporter = Self {
            child,
            addr,
            log,
            _dir: dir,
        };
        let client = http();
        let url = exporter.url("/healthz");
        wait_for(
            "the exporter to serve HTTP",
            Duration::from_secs(20),
            POLL,
            || {
                let (client, url) = (client.clone(), url.clone());
                async move { client.get(&url).send().await.ok().map(|_| ()) }
            },
        )
        .await;
        assert!(
            exporter.child.try_wait().expect("try_wait").is_none(),
            "exporter exited: {}",
            exporter.logs()
        );
        exporter
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        match http().get(self.url(path)).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    pub async fn metrics(&self) -> Samples {
        let (status, body) = self.get("/metrics").await;
        assert_eq!(status, 200, "GET /metrics: {body}");
        Samples::parse(&body)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        self.wait_status("/readyz", 200, Duration::from_secs(60))
            .await;
    }

    /// Waits until `path` answers `status`; returns the body. Panics with the logs on timeout.
    pub async fn wait_status(&self, path: &str, status: u16, timeout: Duration) -> String {
        wait_for(
            &format!("{path} to answer {status}"),
            timeout,
            POLL,
            || async move {
                match self.get(path).await {
                    (got, body) if got == status => Ok(body),
                    (got, body) => Err(self.with_logs(format!("{got} {body:?}"))),
                }
            },
        )
        .await
    }

    /// Waits until `kube_events_total` equals `expected`.
    pub async fn wait_totals(&self, expected: &Totals) {
        wait_for(
            "kube_events_total to match",
            Duration::from_secs(60),
            POLL,
            || async move {
                let last = self.metrics().await.event_totals();
                if last == *expected {
                    Ok(())
                } else {
                    Err(self.with_logs(format!("\nexpected: {expected:#?}\nlast: {last:#?}")))
                }
            },
        )
        .await;
    }

    /// `seen`, and the exporter's log when printed: what a failed wait on the exporter shows.
    /// The log is read only then, not on every look.
    pub fn with_logs<T: Display>(&self, seen: T) -> impl Display {
        struct WithLogs<'a, T>(T, &'a Path);
        impl<T: Display> Display for WithLogs<'_, T> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let logs = std::fs::read_to_string(self.1).unwrap_or_default();
                write!(f, "{}\nexporter logs:\n{logs}", self.0)
            }
        }
        WithLogs(seen, &self.log)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit status, without blocking the test's runtime.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        let child = &mut self.child;
        wait_for(
            "the exporter to exit on SIGTERM",
            Duration::from_secs(15),
            Duration::from_millis(20),
            || {
                let status = child.try_wait().expect("try_wait");
                async move { status }
            },
        )
        .await
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The labels of `kube_events_total`: namespace, kind, reason, type.
pub type TotalsKey = (String, String, String, String);

/// `kube_events_total` as `(namespace, kind, reason, type) → value`.
pub type Totals = BTreeMap<TotalsKey, u64>;

pub fn totals_key(namespace: &str, kind: &str, reason: &str, type_: &str) -> TotalsKey {
    (namespace.into(), kind.into(), reason.into(), type_.into())
}

/// What a scenario has produced so far: every event's latest count, by its labels. Occurrences
/// never go away: a deleted event keeps its count.
#[derive(Default)]
pub struct Model(pub BTreeMap<(String, String), (TotalsKey, u64)>);

impl Model {
    /// Creates the event in the fake and remembers it; returns its name.
    pub fn create(
        &mut self,
        fake: &fake_apiserver::FakeApiServer,
        ev: &fake_apiserver::NewEvent,
    ) -> String {
        let name = fake.create(ev);
        let key = totals_key(&ev.namespace, &ev.kind, &ev.reason, &ev.type_);
        self.0.insert(
            (ev.namespace.clone(), name.clone()),
            (key, u64::from(ev.count)),
        );
        name
    }

    pub fn set_count(
        &mut self,
        fake: &fake_apiserver::FakeApiServer,
        namespace: &str,
        name: &str,
        count: u32,
    ) {
        fake.set_count(namespace, name, count);
        self.0
            .get_mut(&(namespace.to_owned(), name.to_owned()))
            .expect("known event")
            .1 = u64::from(count);
    }

    pub fn totals(&self) -> Totals {
        let mut t = Totals::new();
        for (key, count) in self.0.values() {
            *t.entry(key.clone()).or_default() += count;
        }
        t
    }
}

/// Parsed exposition samples: `name` and labels → value.
#[derive(Debug, Default)]
pub struct Samples(pub Vec<(String, BTreeMap<String, String>, f64)>);

impl Samples {
    pub fn parse(text: &str) -> Self {
        let mut out = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
            let value: f64 = value.parse().expect("numeric sample value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            out.push((name.to_owned(), labels, value));
        }
        Self(out)
    }

    /// The value of `name` with exactly these labels, if present.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
    }

    /// The value of an unlabelled sample, 0 when absent.
    pub fn value(&self, name: &str) -> f64 {
        self.get(name, &[]).unwrap_or(0.0)
    }

    pub fn event_totals(&self) -> Totals {
        self.0
            .iter()
            .filter(|(n, _, v)| n == "kube_events_total" && *v > 0.0)
            .map(|(_, l, v)| {
                let g = |k: &str| l.get(k).cloned().unwrap_or_default();
                (
                    (g("namespace"), g("kind"), g("reason"), g("type")),
                    *v as u64,
                )
            })
            .collect()
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

/// A real Prometheus (Debian's), scraping `targets` every second; stopped on drop.
pub struct Prometheus {
    child: Child,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(targets: &[SocketAddr], rule_files: &[&Path]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let rules: Vec<String> = rule_files
            .iter()
            .map(|r| format!("  - '{}'\n", r.display()))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n{}scrape_configs:\n  - job_name: kube-event-exporter\n    static_configs:\n      - targets: [{}]\n",
            if rules.is_empty() {
                "  []\n".to_owned()
            } else {
                rules.concat()
            },
            targets.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).expect("log"))
            .spawn()
            .expect("spawn prometheus (apt-get install prometheus)");
        let p = Self { child, addr, dir };
        wait_http_ok("Prometheus to be ready", &format!("http://{addr}/-/ready")).await;
        p
    }

    /// Runs an instant query; returns the `data` object of the answer.
    pub async fn query(&self, promql: &str) -> Result<Value, String> {
        let r = http()
            .get(format!("http://{}/api/v1/query", self.addr))
            .query(&[("query", promql)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(body.to_string());
        }
        Ok(body["data"].clone())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
