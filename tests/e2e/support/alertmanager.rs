//! A real Alertmanager (Debian's `prometheus-alertmanager`) on a loopback port with a temp dir,
//! and a webhook receiver the test runs, which records what Alertmanager (or the exporter, when
//! it stands in for one) sends it.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, Uri},
};
use serde_json::Value;

use super::{POLL, free_port, http, signal, wait_for, wait_http_ok};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub body: Value,
}

#[derive(Default)]
struct Inbox {
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
}

/// An HTTP receiver on 127.0.0.1 that records every POST and answers a chosen status.
pub struct Webhook {
    pub addr: SocketAddr,
    inbox: Arc<Inbox>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, uri: Uri, body: Bytes) -> StatusCode {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    inbox.received.lock().expect("inbox").push(Received {
        path: uri.path().to_owned(),
        body,
    });
    StatusCode::from_u16(inbox.status.load(Ordering::Relaxed)).expect("status")
}

impl Webhook {
    pub async fn start(status: u16) -> Self {
        let inbox = Arc::new(Inbox {
            received: Mutex::default(),
            status: AtomicU16::new(status),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind webhook");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new().fallback(receive).with_state(inbox.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("webhook");
        });
        Self { addr, inbox, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.inbox.received.lock().expect("inbox").clone()
    }

    /// Alertmanager notifications posted to `path`, flattened to their alerts, with the
    /// notification's status (`firing` / `resolved`) on each.
    pub fn alerts(&self, path: &str) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .flat_map(|r| r.body["alerts"].as_array().cloned().unwrap_or_default())
            .collect()
    }
}

/// A running Alertmanager; stopped on drop.
pub struct Alertmanager {
    child: Option<Child>,
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// A route tree: `(matcher, receiver path)` in order, then a default receiver at `/default`.
pub fn config(webhook: &Webhook, routes: &[(&str, &str)]) -> String {
    let mut text = String::from(
        "route:\n  receiver: default\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n  routes:\n",
    );
    if routes.is_empty() {
        text.push_str("    []\n");
    }
    for (matcher, receiver) in routes {
        text.push_str(&format!(
            "    - matchers: ['{matcher}']\n      receiver: '{receiver}'\n"
        ));
    }
    text.push_str(&format!("receivers:\n  - name: default\n    webhook_configs: [{{url: '{}', send_resolved: true}}]\n", webhook.url("/default")));
    for (_, receiver) in routes {
        text.push_str(&format!(
            "  - name: '{receiver}'\n    webhook_configs: [{{url: '{}', send_resolved: true}}]\n",
            webhook.url(&format!("/{receiver}"))
        ));
    }
    text
}

impl Alertmanager {
    /// Starts on a free port.
    pub async fn start(config: &str) -> Self {
        Self::start_at(
            format!("127.0.0.1:{}", free_port()).parse().expect("addr"),
            config,
        )
        .await
    }

    /// Starts on `addr` with a fresh storage dir: a restart that loses all state.
    pub async fn start_at(addr: SocketAddr, config: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).expect("write config");
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("alertmanager.log")).expect("log"))
            .spawn()
            .expect("spawn prometheus-alertmanager (apt-get install prometheus-alertmanager)");
        let am = Self {
            child: Some(child),
            addr,
            dir,
        };
        wait_http_ok(
            "Alertmanager to be ready",
            &format!("http://{addr}/-/ready"),
        )
        .await;
        am
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `GET /api/v2/alerts`.
    pub async fn alerts(&self) -> Vec<Value> {
        let r = http()
            .get(format!("http://{}/api/v2/alerts", self.addr))
            .send()
            .await;
        match r {
            Ok(r) => r.json::<Vec<Value>>().await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("Alertmanager is running").id()
    }

    /// Stops the process (SIGSTOP) without closing its socket: connections still succeed and
    /// requests are taken in by the kernel, but nothing answers them until [`Self::thaw`]. Returns
    /// once the process is stopped.
    pub async fn freeze(&self) {
        let pid = self.pid();
        signal(pid, "STOP");
        wait_for(
            "Alertmanager to be stopped",
            Duration::from_secs(10),
            POLL,
            || async move {
                // The state is the field after the parenthesised command name.
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map_err(|e| e.to_string())?;
                match stat
                    .rsplit_once(") ")
                    .and_then(|(_, rest)| rest.chars().next())
                {
                    Some('T') => Ok(()),
                    state => Err(format!("state {state:?}")),
                }
            },
        )
        .await;
    }

    /// Lets a frozen Alertmanager run again (SIGCONT): it answers what waited.
    pub fn thaw(&self) {
        signal(self.pid(), "CONT");
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        self.stop();
    }
}
