//! The Kubernetes source: list, then watch Events (one stream for all namespaces, or one per
//! chosen namespace), following bookmarks and re-watching from the last resourceVersion.
//! A 410 Gone (in the stream or as the answer) forces a relist, counted as a possible gap.
//! Every other failure is retried with backoff; a stream never stops for good.
//!
//! After a restart a stream resumes from its stored resourceVersion with a raw watch call
//! (kube-rs's `watcher()` always lists first, kube-rs issue 1419), and lists only on 410.
//! Requests are kube-rs's own, sent through its `Client`; the bytes that come back are decoded
//! by [`super::wire`], which reads only the fields the exporter uses.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::AsyncBufReadExt;
use jiff::Timestamp;
use k8s_openapi::api::{core::v1 as core, events::v1 as events};
use kube::{
    Client, Resource,
    api::{ListParams, WatchParams},
    core::Request,
};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    SourceMsg,
    wire::{self, Shape, WatchItem},
};
use crate::{config::EventsApi, health::Health, metrics::Metrics};

/// Page size of the initial list: what kube-rs and kubectl use.
const LIST_PAGE_SIZE: u32 = 500;

/// How long past its `timeoutSeconds` a silent watch is given before it counts as stalled:
/// kube-rs's own margin.
pub const STALL_MARGIN: Duration = Duration::from_secs(5);

/// Watches Events through the Kubernetes API.
pub struct KubeSource {
    client: Client,
    api: EventsApi,
    /// Empty: all namespaces.
    namespaces: Vec<String>,
    watch_timeout: Duration,
    /// Stream name → the resourceVersion it had reached before a restart.
    resume: HashMap<String, String>,
    tx: mpsc::Sender<SourceMsg>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

/// The name of the stream watching `namespace` (all when `None`): its checkpoint key.
pub fn stream_name(namespace: Option<&str>) -> String {
    namespace.map_or_else(
        || "all namespaces".to_owned(),
        |ns| format!("namespace {ns}"),
    )
}

impl KubeSource {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        api: EventsApi,
        namespaces: Vec<String>,
        watch_timeout: Duration,
        resume: HashMap<String, String>,
        tx: mpsc::Sender<SourceMsg>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
    ) -> Self {
        Self {
            client,
            api,
            namespaces,
            watch_timeout,
            resume,
            tx,
            metrics,
            health,
        }
    }

    /// How many streams report `Synced`: the pipeline is ready once all have.
    pub fn stream_count(&self) -> usize {
        self.namespaces.len().max(1)
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let scopes: Vec<Option<String>> = if self.namespaces.is_empty() {
            vec![None]
        } else {
            self.namespaces.iter().cloned().map(Some).collect()
        };
        let mut streams = JoinSet::new();
        for namespace in scopes {
            let (shape, url_path) = match self.api {
                EventsApi::CoreV1 => (
                    Shape::CoreV1,
                    core::Event::url_path(&(), namespace.as_deref()),
                ),
                EventsApi::EventsV1 => (
                    Shape::EventsV1,
                    events::Event::url_path(&(), namespace.as_deref()),
                ),
            };
            let name = stream_name(namespace.as_deref());
            let stream = WatchStream {
                resume: self.resume.get(&name).cloned(),
                name: name.into(),
                client: self.client.clone(),
                request: Request::new(url_path),
                shape,
                watch_timeout: self.watch_timeout,
                tx: self.tx.clone(),
                metrics: self.metrics.clone(),
                health: self.health.clone(),
                backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
                synced: false,
                failing: false,
            };
            streams.spawn(stream.run(shutdown.clone()));
        }
        while let Some(res) = streams.join_next().await {
            res?;
        }
        Ok(())
    }
}

/// Why one list or watch attempt ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("resourceVersion expired (410 Gone)")]
    Expired,
    #[error("request failed: {0}")]
    RequestFailed(#[source] kube::Error),
    #[error("reading the watch stream failed: {0}")]
    ReadFailed(#[source] std::io::Error),
    #[error("list page is not a valid list: {0}")]
    BadList(#[source] serde_json::Error),
    #[error("watch stream silent for {0:?}")]
    Stalled(Duration),
    #[error("API server sent an error: {0}")]
    ErrorEvent(String),
    #[error("pipeline stopped")]
    PipelineGone,
}

fn classify(e: kube::Error) -> StreamError {
    match &e {
        kube::Error::Api(status) if status.code == 410 => StreamError::Expired,
        _ => StreamError::RequestFailed(e),
    }
}

/// One list-then-watch loop over one scope.
struct WatchStream {
    name: Arc<str>,
    /// Where to start instead of a list: the checkpoint of a previous run.
    resume: Option<String>,
    client: Client,
    /// The Events URL of the stream's API and scope.
    request: Request,
    shape: Shape,
    watch_timeout: Duration,
    tx: mpsc::Sender<SourceMsg>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    backoff: Backoff,
    synced: bool,
    /// Whether `health` currently holds this stream as failing.
    failing: bool,
}

impl WatchStream {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut resource_version = self.resume.take();
        if let Some(rv) = &resource_version {
            info!(stream = %self.name, resource_version = %rv, "Resuming the watch from the archive's checkpoint.");
        }
        loop {
            let attempt = async {
                let rv = match resource_version.take() {
                    Some(rv) => rv,
                    None => self.list().await?,
                };
                resource_version = Some(rv);
                self.watch(&mut resource_version).await
            };
            let result = tokio::select! {
                r = attempt => r,
                () = shutdown.cancelled() => return,
            };
            let delay = match result {
                // The server ended the watch (timeoutSeconds): re-watch at once.
                Ok(()) => None,
                Err(StreamError::PipelineGone) => return,
                Err(StreamError::Expired) => {
                    resource_version = None;
                    self.metrics.watch_gaps.inc();
                    warn!(stream = %self.name, "Watch expired (410 Gone); relisting, events may have been missed.");
                    Some(self.backoff.next_delay())
                }
                Err(e) => {
                    self.set_failing(true);
                    warn!(stream = %self.name, error = %e, "Watch failed; retrying.");
                    Some(self.backoff.next_delay())
                }
            };
            self.metrics.watch_restarts.inc();
            if let Some(delay) = delay {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }

    /// Lists every Event page by page and returns the list's resourceVersion.
    async fn list(&mut self) -> Result<String, StreamError> {
        let mut params = ListParams::default().limit(LIST_PAGE_SIZE);
        loop {
            let request = self
                .request
                .list(&params)
                .map_err(|e| StreamError::RequestFailed(kube::Error::BuildRequest(e)))?;
            let text = self.client.request_text(request).await.map_err(classify)?;
            let page = wire::list_page(&text, self.shape, Timestamp::now())
                .map_err(StreamError::BadList)?;
            drop(text);
            self.set_failing(false);
            for item in page.items {
                match item {
                    Ok(event) => self.send(SourceMsg::Applied(Box::new(event))).await?,
                    Err(e) => self.skip_undecodable(&e),
                }
            }
            if let Some(token) = page.continue_ {
                params = params.continue_token(&token);
                continue;
            }
            self.checkpoint(&page.resource_version).await?;
            if !self.synced {
                self.synced = true;
                self.send(SourceMsg::Synced).await?;
                info!(stream = %self.name, "Initial list done.");
            }
            return Ok(page.resource_version);
        }
    }

    fn skip_undecodable(&self, e: &serde_json::Error) {
        self.metrics.decode_errors.inc();
        warn!(stream = %self.name, error = %e, "Skipped an undecodable Event.");
    }

    /// Watches from `resource_version`, advancing it with every event and bookmark. Returns
    /// `Ok` when the server closes the stream.
    async fn watch(&mut self, resource_version: &mut Option<String>) -> Result<(), StreamError> {
        let rv = resource_version.clone().unwrap_or_default();
        let timeout_secs = u32::try_from(self.watch_timeout.as_secs()).unwrap_or(u32::MAX);
        let params = WatchParams::default().timeout(timeout_secs); // bookmarks are on by default
        let mut request = self
            .request
            .watch(&params, &rv)
            .map_err(|e| StreamError::RequestFailed(kube::Error::BuildRequest(e)))?;
        // As kube-rs does for watches: one gzip member per event is more than its decoder takes.
        request.headers_mut().insert(
            http::header::ACCEPT_ENCODING,
            http::HeaderValue::from_static("identity"),
        );
        let mut stream = self
            .client
            .request_stream(request)
            .await
            .map_err(classify)?;
        self.set_failing(false);
        if !self.synced {
            // Resumed from a checkpoint: no list to wait for.
            self.synced = true;
            self.send(SourceMsg::Synced).await?;
        }
        // The server closes the stream after timeoutSeconds; silence beyond that is a stall.
        let stall_after = self.watch_timeout + STALL_MARGIN;
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let read = tokio::time::timeout(stall_after, stream.read_until(b'\n', &mut line))
                .await
                .map_err(|_| StreamError::Stalled(stall_after))?
                .map_err(StreamError::ReadFailed)?;
            if read == 0 {
                return Ok(());
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let item = match wire::watch_line(&line, self.shape, Timestamp::now()) {
                Ok(item) => item,
                Err(e) => {
                    self.skip_undecodable(&e);
                    continue;
                }
            };
            let counters = &self.metrics.watch_events;
            match &item {
                WatchItem::Added(_) => counters.added.inc(),
                WatchItem::Modified(_) => counters.modified.inc(),
                WatchItem::Deleted(_) => counters.deleted.inc(),
                WatchItem::Bookmark { .. } => counters.bookmark.inc(),
                WatchItem::Error { .. } => counters.error.inc(),
            };
            match item {
                WatchItem::Added(event) | WatchItem::Modified(event) => {
                    *resource_version = Some(event.resource_version.clone());
                    self.send(SourceMsg::Applied(Box::new(event))).await?;
                }
                WatchItem::Deleted(event) => {
                    *resource_version = Some(event.resource_version);
                    self.send(SourceMsg::Deleted { uid: event.uid }).await?;
                }
                WatchItem::Bookmark {
                    resource_version: rv,
                } => {
                    *resource_version = Some(rv);
                }
                WatchItem::Error { code, message } => {
                    return Err(if code == 410 {
                        StreamError::Expired
                    } else {
                        StreamError::ErrorEvent(format!("{code} {message}"))
                    });
                }
            }
            if let Some(rv) = resource_version.as_deref() {
                self.checkpoint(rv).await?;
            }
            self.backoff.reset();
        }
    }

    async fn checkpoint(&self, resource_version: &str) -> Result<(), StreamError> {
        self.send(SourceMsg::Checkpoint {
            stream: self.name.clone(),
            resource_version: resource_version.to_owned(),
        })
        .await
    }

    async fn send(&self, msg: SourceMsg) -> Result<(), StreamError> {
        self.tx
            .send(msg)
            .await
            .map_err(|_| StreamError::PipelineGone)
    }

    fn set_failing(&mut self, failing: bool) {
        if failing != self.failing {
            self.failing = failing;
            if failing {
                self.health.stream_failed(&self.name);
            } else {
                self.health.stream_ok(&self.name);
            }
        }
    }
}

/// Exponential backoff with full jitter in the upper half: delays of
/// `[d/2, d]` where `d = min(max, base * 2^attempt)`.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            attempt: 0,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        ceiling / 2 + ceiling.mul_f64(jitter() / 2.0)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A cheap uniform value in `[0, 1)`; backoff needs spread, not cryptographic randomness.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        let delays: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[9] >= Duration::from_millis(500));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
