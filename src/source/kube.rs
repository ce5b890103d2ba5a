//! The Kubernetes source: list, then watch Events (one stream for all namespaces, or one per
//! chosen namespace), following bookmarks and re-watching from the last resourceVersion.
//! A 410 Gone (in the stream or as the answer) forces a relist, counted as a possible gap.
//! Every other failure is retried with backoff; a stream never stops for good.
//!
//! After a restart a stream resumes from its stored resourceVersion with a raw watch call
//! (kube-rs's `watcher()` always lists first, kube-rs issue 1419), and lists only on 410.

use std::{collections::HashMap, fmt::Debug, sync::Arc, time::Duration};

use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::{
    NamespaceResourceScope,
    api::{core::v1 as core, events::v1 as events},
};
use kube::{
    Api, Client,
    api::{ListParams, WatchEvent, WatchParams},
};
use serde::de::DeserializeOwned;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::SourceMsg;
use crate::{config::EventsApi, event::Event, health::Health, metrics::Metrics};

/// Page size of the initial list: what kube-rs and kubectl use.
const LIST_PAGE_SIZE: u32 = 500;

/// How long past its `timeoutSeconds` a silent watch is given before it counts as stalled:
/// kube-rs's own margin.
pub const STALL_MARGIN: Duration = Duration::from_secs(5);

/// An Event type of one of the two APIs.
pub trait EventObject:
    kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Send
    + 'static
{
    fn normalise(self, observed: Timestamp) -> Event;
}

impl EventObject for core::Event {
    fn normalise(self, observed: Timestamp) -> Event {
        Event::from_core(self, observed)
    }
}

impl EventObject for events::Event {
    fn normalise(self, observed: Timestamp) -> Event {
        Event::from_events_v1(self, observed)
    }
}

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
            let name = namespace.as_ref().map_or_else(
                || "all namespaces".to_owned(),
                |ns| format!("namespace {ns}"),
            );
            match self.api {
                EventsApi::CoreV1 => {
                    let api = scoped_api::<core::Event>(&self.client, namespace.as_deref());
                    streams.spawn(self.stream(name, api).run(shutdown.clone()));
                }
                EventsApi::EventsV1 => {
                    let api = scoped_api::<events::Event>(&self.client, namespace.as_deref());
                    streams.spawn(self.stream(name, api).run(shutdown.clone()));
                }
            }
        }
        while let Some(res) = streams.join_next().await {
            res?;
        }
        Ok(())
    }

    fn stream<K: EventObject>(&self, name: String, api: Api<K>) -> WatchStream<K> {
        WatchStream {
            resume: self.resume.get(&name).cloned(),
            name: name.into(),
            api,
            watch_timeout: self.watch_timeout,
            tx: self.tx.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
            synced: false,
            failing: false,
        }
    }
}

fn scoped_api<K: EventObject>(client: &Client, namespace: Option<&str>) -> Api<K> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Why one list or watch attempt ended.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("resourceVersion expired (410 Gone)")]
    Expired,
    #[error("request failed: {0}")]
    RequestFailed(#[source] kube::Error),
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
struct WatchStream<K: EventObject> {
    name: Arc<str>,
    /// Where to start instead of a list: the checkpoint of a previous run.
    resume: Option<String>,
    api: Api<K>,
    watch_timeout: Duration,
    tx: mpsc::Sender<SourceMsg>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    backoff: Backoff,
    synced: bool,
    /// Whether `health` currently holds this stream as failing.
    failing: bool,
}

impl<K: EventObject> WatchStream<K> {
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
            let page = self.api.list(&params).await.map_err(classify)?;
            self.set_failing(false);
            let observed = Timestamp::now();
            for item in page.items {
                self.send(SourceMsg::Applied(Box::new(item.normalise(observed))))
                    .await?;
            }
            if let Some(token) = page.metadata.continue_.filter(|c| !c.is_empty()) {
                params = params.continue_token(&token);
                continue;
            }
            let rv = page.metadata.resource_version.unwrap_or_default();
            self.checkpoint(&rv).await?;
            if !self.synced {
                self.synced = true;
                self.send(SourceMsg::Synced).await?;
                info!(stream = %self.name, "Initial list done.");
            }
            return Ok(rv);
        }
    }

    /// Watches from `resource_version`, advancing it with every event and bookmark. Returns
    /// `Ok` when the server closes the stream.
    async fn watch(&mut self, resource_version: &mut Option<String>) -> Result<(), StreamError> {
        let rv = resource_version.clone().unwrap_or_default();
        let timeout_secs = u32::try_from(self.watch_timeout.as_secs()).unwrap_or(u32::MAX);
        let params = WatchParams::default().timeout(timeout_secs); // bookmarks are on by default
        let stream = self.api.watch(&params, &rv).await.map_err(classify)?;
        self.set_failing(false);
        if !self.synced {
            // Resumed from a checkpoint: no list to wait for.
            self.synced = true;
            self.send(SourceMsg::Synced).await?;
        }
        let mut stream = stream.boxed();
        // The server closes the stream after timeoutSeconds; silence beyond that is a stall.
        let stall_after = self.watch_timeout + STALL_MARGIN;
        loop {
            let item = tokio::time::timeout(stall_after, stream.try_next())
                .await
                .map_err(|_| StreamError::Stalled(stall_after))?;
            let event = match item {
                Ok(Some(event)) => event,
                Ok(None) => return Ok(()),
                Err(kube::Error::SerdeError(e)) => {
                    self.metrics.decode_errors.inc();
                    warn!(stream = %self.name, error = %e, "Skipped an undecodable watch event.");
                    continue;
                }
                Err(e) => return Err(classify(e)),
            };
            let counters = &self.metrics.watch_events;
            match &event {
                WatchEvent::Added(_) => counters.added.inc(),
                WatchEvent::Modified(_) => counters.modified.inc(),
                _ => 0,
            };
            match event {
                WatchEvent::Added(obj) | WatchEvent::Modified(obj) => {
                    resource_version.clone_from(&obj.meta().resource_version);
                    let ev = obj.normalise(Timestamp::now());
                    self.send(SourceMsg::Applied(Box::new(ev))).await?;
                }
                WatchEvent::Deleted(obj) => {
                    counters.deleted.inc();
                    resource_version.clone_from(&obj.meta().resource_version);
                    let uid = obj.normalise(Timestamp::now()).uid;
                    self.send(SourceMsg::Deleted { uid }).await?;
                }
                WatchEvent::Bookmark(bookmark) => {
                    counters.bookmark.inc();
                    *resource_version = Some(bookmark.metadata.resource_version);
                }
                WatchEvent::Error(status) => {
                    counters.error.inc();
                    return Err(if status.code == 410 {
                        StreamError::Expired
                    } else {
                        StreamError::ErrorEvent(format!("{} {}", status.code, status.message))
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
