//! The Kubernetes source: list, then watch Events (one stream for all namespaces, or one per
//! chosen namespace), following bookmarks and re-watching from the last resourceVersion.
//! A 410 Gone (in the stream or as the answer) forces a relist, counted as a possible gap.
//! Every other failure is retried with backoff; a stream never stops for good.
//!
//! After a restart a stream resumes from its stored resourceVersion with a raw watch call
//! (kube-rs's `watcher()` always lists first, kube-rs issue 1419), and lists only on 410.
//! Requests are kube-rs's own, sent through its `Client`; the bytes that come back are decoded
//! by [`super::wire`], which reads only the fields the exporter uses.

use std::{fmt, path::Path, str::FromStr, sync::Arc, time::Duration};

use futures::{AsyncBufReadExt, FutureExt};
use jiff::Timestamp;
use k8s_openapi::api::{core::v1 as core, events::v1 as events};
use kube::{
    Client, Resource as _,
    api::{ListParams, WatchParams},
    config::{KubeConfigOptions, Kubeconfig},
    core::Request,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Checkpoints, SourceContext, SourceMsg,
    objects::{KubeObject, Resource},
    wire::{self, Shape, WatchItem},
};
use crate::event::Event;
use crate::util::backoff::Backoff;

/// Which Kubernetes API serves the Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventsApi {
    /// `events.k8s.io/v1`: `regarding`, `note`, `series`.
    EventsV1,
    /// core `v1`: `involvedObject`, `message`, `count`.
    CoreV1,
}

impl FromStr for EventsApi {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "events.k8s.io/v1" => Ok(Self::EventsV1),
            "v1" => Ok(Self::CoreV1),
            _ => Err("expected `events.k8s.io/v1` or `v1`".to_owned()),
        }
    }
}

impl fmt::Display for EventsApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EventsV1 => "events.k8s.io/v1",
            Self::CoreV1 => "v1",
        })
    }
}

/// What to watch and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubeSettings {
    pub api: EventsApi,
    /// Empty: all namespaces.
    pub namespaces: Vec<String>,
    /// Server-side timeout of one watch request.
    pub watch_timeout: Duration,
    /// Also watch Pods, ReplicaSets, Jobs and Deployments (workloads, derived occurrences).
    pub workloads: bool,
}

impl KubeSettings {
    /// How many streams watch: one per namespace (or one for all) of Events, and as many of
    /// each workload resource.
    pub fn stream_count(&self) -> usize {
        let kinds = if self.workloads {
            1 + Resource::ALL.len()
        } else {
            1
        };
        self.namespaces.len().max(1) * kinds
    }
}

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The kubeconfig file given could not be read or used.
    #[error("{0}")]
    KubeconfigRejected(#[source] anyhow::Error),
    /// The context given is not in the kubeconfig, or cannot be used.
    #[error("{0}")]
    ContextRejected(#[source] anyhow::Error),
    /// Nothing given and nothing found (no kubeconfig, not in a cluster).
    #[error("no Kubernetes credentials found (kubeconfig or in-cluster): {0}")]
    NoCredentials(#[source] anyhow::Error),
}

/// A client from `kubeconfig` (else kube's inference: `$KUBECONFIG`, `~/.kube/config`,
/// in-cluster) and `context`, with timeouts that suit long watches.
pub async fn connect(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    watch_timeout: Duration,
) -> Result<Client, ConnectError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    crate::util::tls::ensure_crypto_provider();
    let rejected = |e: anyhow::Error| {
        if context.is_some() {
            ConnectError::ContextRejected(e)
        } else {
            ConnectError::KubeconfigRejected(e)
        }
    };
    let mut config = if let Some(path) = kubeconfig {
        let kubeconfig =
            Kubeconfig::read_from(path).map_err(|e| ConnectError::KubeconfigRejected(e.into()))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| rejected(e.into()))?
    } else if context.is_some() {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| ConnectError::ContextRejected(e.into()))?
    } else {
        kube::Config::infer()
            .await
            .map_err(|e| ConnectError::NoCredentials(e.into()))?
    };
    // A watch answers within its timeoutSeconds; a read that takes longer is a dead connection.
    config.read_timeout = Some(watch_timeout + STALL_MARGIN);
    // kube's built-in retry (15 attempts, delays up to 1000s) would hide an outage from the
    // health check; every stream retries with its own backoff and reports failures.
    config.default_retry = false;
    Client::try_from(config).map_err(|e| ConnectError::NoCredentials(e.into()))
}

/// Page size of the initial list: what kube-rs and kubectl use.
const LIST_PAGE_SIZE: u32 = 500;

/// How long past its `timeoutSeconds` a silent watch is given before it counts as stalled:
/// kube-rs's own margin.
const STALL_MARGIN: Duration = Duration::from_secs(5);

/// Watches Events through the Kubernetes API.
pub struct KubeSource {
    client: Client,
    settings: KubeSettings,
    /// Where each stream had got to before a restart.
    resume: Checkpoints,
    ctx: SourceContext,
}

/// The name of the stream watching `namespace` (all when `None`): its checkpoint key.
pub fn stream_name(namespace: Option<&str>) -> String {
    namespace.map_or_else(
        || "all namespaces".to_owned(),
        |ns| format!("namespace {ns}"),
    )
}

impl KubeSource {
    pub fn new(
        client: Client,
        settings: KubeSettings,
        resume: Checkpoints,
        ctx: SourceContext,
    ) -> Self {
        Self {
            client,
            settings,
            resume,
            ctx,
        }
    }

    /// How many streams report `Synced`: the pipeline is ready once all have.
    pub fn stream_count(&self) -> usize {
        self.settings.stream_count()
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let scopes: Vec<Option<String>> = if self.settings.namespaces.is_empty() {
            vec![None]
        } else {
            self.settings.namespaces.iter().cloned().map(Some).collect()
        };
        info!(api = %self.settings.api, streams = scopes.len(), workloads = self.settings.workloads, "Watching events.");
        let mut kinds = vec![match self.settings.api {
            EventsApi::CoreV1 => StreamKind::Events(Shape::CoreV1),
            EventsApi::EventsV1 => StreamKind::Events(Shape::EventsV1),
        }];
        if self.settings.workloads {
            kinds.extend(Resource::ALL.map(StreamKind::Objects));
            for r in Resource::ALL {
                self.ctx.metrics.watch_forbidden(r.plural(), false);
            }
        }
        // Pods are listed after the ReplicaSets and Jobs that own them, so a Pod's workload is
        // whole the first time the pipeline sees it (its derived records keep it).
        let owners = Arc::new(tokio::sync::watch::Sender::new(0usize));
        let owner_streams = 2 * scopes.len();
        let mut streams = JoinSet::new();
        for namespace in scopes {
            for &kind in &kinds {
                let (owners_listed, wait_for_owners) = match kind {
                    StreamKind::Objects(Resource::ReplicaSets | Resource::Jobs) => {
                        (Some(owners.clone()), None)
                    }
                    StreamKind::Objects(Resource::Pods) => {
                        (None, Some((owners.subscribe(), owner_streams)))
                    }
                    _ => (None, None),
                };
                let (name, url_path) = match kind {
                    StreamKind::Events(Shape::CoreV1) => (
                        stream_name(namespace.as_deref()),
                        core::Event::url_path(&(), namespace.as_deref()),
                    ),
                    StreamKind::Events(Shape::EventsV1) => (
                        stream_name(namespace.as_deref()),
                        events::Event::url_path(&(), namespace.as_deref()),
                    ),
                    StreamKind::Objects(r) => (
                        format!("{} in {}", r.plural(), stream_name(namespace.as_deref())),
                        r.url_path(namespace.as_deref()),
                    ),
                };
                // Objects are always listed at start: the pipeline keeps their owners in memory
                // only (see `pipeline::workloads`).
                let resume = match kind {
                    StreamKind::Events(_) => self.resume.get(&name).cloned(),
                    StreamKind::Objects(_) => None,
                };
                let stream = WatchStream {
                    resume,
                    name: name.into(),
                    client: self.client.clone(),
                    request: Request::new(url_path),
                    kind,
                    watch_timeout: self.settings.watch_timeout,
                    ctx: self.ctx.clone(),
                    backoff: Backoff::new(Duration::from_millis(250), Duration::from_secs(30)),
                    synced: false,
                    failing: false,
                    forbidden: false,
                    owners_listed,
                    wait_for_owners,
                };
                streams.spawn(stream.run(shutdown.clone()));
            }
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

/// What a stream watches: Events of one API shape, or objects of one resource.
#[derive(Clone, Copy, Debug)]
enum StreamKind {
    Events(Shape),
    Objects(Resource),
}

impl StreamKind {
    /// The arrays its decoder never reads, cut before it reads (see [`wire::strip_arrays`]).
    fn unread_arrays(self) -> &'static [&'static str] {
        match self {
            Self::Events(_) => wire::EVENT_UNREAD,
            Self::Objects(r) => r.unread_arrays(),
        }
    }
}

/// One decoded item of either kind of stream.
enum Item {
    Event(Box<Event>),
    Object(Box<KubeObject>),
}

impl Item {
    fn resource_version(&self) -> &str {
        match self {
            Self::Event(e) => &e.resource_version,
            Self::Object(o) => &o.id().resource_version,
        }
    }

    fn applied(self, listed: bool) -> SourceMsg {
        match self {
            Self::Event(e) => SourceMsg::Applied(e),
            Self::Object(object) => SourceMsg::Object { object, listed },
        }
    }

    fn deleted(self) -> SourceMsg {
        match self {
            Self::Event(e) => SourceMsg::Deleted { uid: e.uid },
            Self::Object(o) => SourceMsg::ObjectDeleted(o),
        }
    }
}

/// At most this many watch events go to the pipeline in one message. Small enough that a
/// message's vector (16 × 48 bytes) stays under glibc's large-request size (1 KiB): a larger
/// one, allocated at every flush, made malloc consolidate every small chunk the pipeline had
/// freed since the last (9 % of the exporter's CPU under 3,000 Pod updates a second).
const BATCH: usize = 16;
const _: () = assert!(BATCH * size_of::<SourceMsg>() < 1008);

/// How long an object stream (Pods, ReplicaSets, Jobs, Deployments) lets updates gather after
/// it has taken every one received. A busy cluster's thousands of Pod status updates a second
/// then wake the exporter once per many rather than once each (a wake-up, a read and a
/// hand-over to the pipeline cost more than decoding one); what is derived from them (restarts,
/// OOM kills, stuck rollouts) is this much later. Event streams do not wait: their alerts do
/// not.
const OBJECTS_GATHER: Duration = Duration::from_millis(10);

/// After gathering, how long an object stream reads on before it hands over what it read and
/// gathers again.
const GATHERED_READ: Duration = Duration::from_millis(1);

/// How long a stream the API server refuses (403) waits before it asks again: permissions
/// are granted by a person, not in seconds.
const FORBIDDEN_RETRY: Duration = Duration::from_secs(300);

/// One list-then-watch loop over one scope.
struct WatchStream {
    name: Arc<str>,
    /// Where to start instead of a list: the checkpoint of a previous run.
    resume: Option<String>,
    client: Client,
    /// The collection URL of the stream's API and scope.
    request: Request,
    kind: StreamKind,
    watch_timeout: Duration,
    ctx: SourceContext,
    backoff: Backoff,
    synced: bool,
    /// Whether `health` currently holds this stream as failing.
    failing: bool,
    /// Whether the API server refuses an object stream (403) as far as it last said.
    forbidden: bool,
    /// A stream of owners (ReplicaSets, Jobs) counts itself here once it has listed.
    owners_listed: Option<Arc<tokio::sync::watch::Sender<usize>>>,
    /// The Pod stream waits until this many owner streams have listed.
    wait_for_owners: Option<(tokio::sync::watch::Receiver<usize>, usize)>,
}

impl WatchStream {
    async fn run(mut self, shutdown: CancellationToken) {
        if let Some((mut listed, need)) = self.wait_for_owners.take() {
            tokio::select! {
                _ = listed.wait_for(|n| *n >= need) => {}
                () = shutdown.cancelled() => return,
            }
        }
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
                // Refused (403), or not served at all (404: an API server without the group).
                Err(StreamError::RequestFailed(kube::Error::Api(status)))
                    if matches!(status.code, 403 | 404)
                        && matches!(self.kind, StreamKind::Objects(_)) =>
                {
                    if self.forbidden(&status.message).await.is_err() {
                        return;
                    }
                    Some(FORBIDDEN_RETRY)
                }
                Err(StreamError::Expired) => {
                    resource_version = None;
                    self.ctx.metrics.watch_gap();
                    warn!(stream = %self.name, "Watch expired (410 Gone); relisting, events may have been missed.");
                    Some(self.backoff.next_delay())
                }
                Err(e) => {
                    self.set_failing(true);
                    warn!(stream = %self.name, error = %e, "Watch failed; retrying.");
                    Some(self.backoff.next_delay())
                }
            };
            self.ctx.metrics.watch_restarted();
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
            let mut text = self
                .client
                .request_text(request)
                .await
                .map_err(classify)?
                .into_bytes();
            wire::strip_arrays(&mut text, self.kind.unread_arrays());
            let (items, resource_version, continue_) = match self.kind {
                StreamKind::Events(shape) => {
                    let page = wire::list_page(&text, shape, Timestamp::now())
                        .map_err(StreamError::BadList)?;
                    let items = page
                        .items
                        .into_iter()
                        .map(|i| i.map(|e| Item::Event(Box::new(e))));
                    (
                        items.collect::<Vec<_>>(),
                        page.resource_version,
                        page.continue_,
                    )
                }
                StreamKind::Objects(r) => {
                    let page = wire::object_list_page(&text, |json| r.decode(json))
                        .map_err(StreamError::BadList)?;
                    let items = page
                        .items
                        .into_iter()
                        .map(|i| i.map(|o| Item::Object(Box::new(o))));
                    (items.collect(), page.resource_version, page.continue_)
                }
            };
            drop(text);
            self.set_failing(false);
            self.allowed();
            for item in items {
                match item {
                    Ok(item) => self.send(item.applied(true)).await?,
                    Err(e) => self.skip_undecodable(&e),
                }
            }
            if let Some(token) = continue_ {
                params = params.continue_token(&token);
                continue;
            }
            self.checkpoint(&resource_version).await?;
            if let StreamKind::Objects(resource) = self.kind {
                self.send(SourceMsg::Listed(resource)).await?;
                self.owners_ready();
            }
            if !self.synced {
                self.synced = true;
                self.send(SourceMsg::Synced).await?;
                info!(stream = %self.name, "Initial list done.");
            }
            return Ok(resource_version);
        }
    }

    fn skip_undecodable(&self, e: &serde_json::Error) {
        self.ctx.metrics.record_undecodable();
        let what = match self.kind {
            StreamKind::Events(_) => "Event",
            StreamKind::Objects(r) => r.kind(),
        };
        warn!(stream = %self.name, error = %e, "Skipped an undecodable {what}.");
    }

    /// The API server refused the stream (403): said once, in the log and the metric; the
    /// exporter goes on without it, ready as if it had listed.
    async fn forbidden(&mut self, message: &str) -> Result<(), StreamError> {
        let StreamKind::Objects(resource) = self.kind else {
            return Ok(());
        };
        if !self.forbidden {
            self.forbidden = true;
            self.ctx.metrics.watch_forbidden(resource.plural(), true);
            warn!(stream = %self.name, error = %message,
                "The API server refuses to list {}: going on without workloads and derived \
                 occurrences from them; asking again every 5 minutes.", resource.plural());
            self.send(SourceMsg::Forbidden(resource)).await?;
        }
        self.send(SourceMsg::Listed(resource)).await?;
        self.owners_ready();
        if !self.synced {
            self.synced = true;
            self.send(SourceMsg::Synced).await?;
        }
        Ok(())
    }

    /// An owner stream has listed (or is refused) for the first time: the Pod stream may start.
    fn owners_ready(&mut self) {
        if let Some(listed) = self.owners_listed.take() {
            listed.send_modify(|n| *n += 1);
        }
    }

    /// The API server answered: if it had refused the stream, it allows it now.
    fn allowed(&mut self) {
        if let (true, StreamKind::Objects(resource)) = (self.forbidden, self.kind) {
            self.forbidden = false;
            self.ctx.metrics.watch_forbidden(resource.plural(), false);
            info!(stream = %self.name, "The API server allows the watch again.");
        }
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
        self.allowed();
        if !self.synced {
            // Resumed from a checkpoint (Events only): no list to wait for.
            self.synced = true;
            self.send(SourceMsg::Synced).await?;
        }
        // The server closes the stream after timeoutSeconds; silence beyond that is a stall.
        let stall_after = self.watch_timeout + STALL_MARGIN;
        let mut line = Vec::with_capacity(4096);
        let mut batch = Vec::with_capacity(BATCH);
        let mut drain_until = None;
        loop {
            // Lines already received are taken without waiting; only when none is left does the
            // batch go to the pipeline and the stream wait. A burst is one wake-up, and a message
            // per [`BATCH`] lines.
            // An object stream that has gathered (see [`OBJECTS_GATHER`]) reads on for a moment:
            // what gathered is in the socket, a read away.
            let gathered = if let Some(read) = stream.read_until(b'\n', &mut line).now_or_never() {
                Some(read)
            } else if let Some(until) = drain_until.filter(|t| *t > tokio::time::Instant::now()) {
                let next = stream.read_until(b'\n', &mut line);
                tokio::time::timeout_at(until, next).await.ok()
            } else {
                None
            };
            let read = if let Some(read) = gathered {
                read
            } else {
                self.flush(&mut batch, resource_version.as_deref()).await?;
                if let StreamKind::Objects(_) = self.kind {
                    tokio::time::sleep(OBJECTS_GATHER).await;
                    drain_until = Some(tokio::time::Instant::now() + GATHERED_READ);
                }
                tokio::time::timeout(stall_after, stream.read_until(b'\n', &mut line))
                    .await
                    .map_err(|_| StreamError::Stalled(stall_after))?
            }
            .map_err(StreamError::ReadFailed)?;
            if read == 0 {
                self.flush(&mut batch, resource_version.as_deref()).await?;
                return Ok(());
            }
            let item = self.decode_line(&mut line);
            line.clear();
            let Some(item) = item else {
                continue;
            };
            self.ctx.metrics.watch_event(item.kind());
            match item {
                WatchItem::Added(item) | WatchItem::Modified(item) => {
                    *resource_version = Some(item.resource_version().to_owned());
                    batch.push(item.applied(false));
                }
                WatchItem::Deleted(item) => {
                    *resource_version = Some(item.resource_version().to_owned());
                    batch.push(item.deleted());
                }
                WatchItem::Bookmark {
                    resource_version: rv,
                } => {
                    *resource_version = Some(rv);
                }
                WatchItem::Error { code, message } => {
                    self.flush(&mut batch, resource_version.as_deref()).await?;
                    return Err(if code == 410 {
                        StreamError::Expired
                    } else {
                        StreamError::ErrorEvent(format!("{code} {message}"))
                    });
                }
            }
            if batch.len() >= BATCH {
                self.flush(&mut batch, resource_version.as_deref()).await?;
            }
            self.backoff.reset();
        }
    }

    /// Decodes one watch line; `None` for a blank one or one that does not decode (counted).
    fn decode_line(&self, line: &mut Vec<u8>) -> Option<WatchItem<Item>> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        wire::strip_arrays(line, self.kind.unread_arrays());
        let decoded = match self.kind {
            StreamKind::Events(shape) => wire::watch_line(line, shape, Timestamp::now())
                .map(|i| i.map(|e| Item::Event(Box::new(e)))),
            StreamKind::Objects(r) => r
                .watch_line(line)
                .map(|i| i.map(|o| Item::Object(Box::new(o)))),
        };
        decoded.map_err(|e| self.skip_undecodable(&e)).ok()
    }

    /// Sends what the batch holds, then (Events only) the checkpoint at `resource_version`.
    /// Object streams list at every start: their checkpoint (after the list) only says that
    /// they were watched.
    async fn flush(
        &self,
        batch: &mut Vec<SourceMsg>,
        resource_version: Option<&str>,
    ) -> Result<(), StreamError> {
        match batch.len() {
            0 => {}
            1 => self.send(batch.pop().expect("one")).await?,
            _ => {
                let msgs = std::mem::replace(batch, Vec::with_capacity(BATCH));
                self.send(SourceMsg::Batch(msgs)).await?;
            }
        }
        if let (Some(rv), StreamKind::Events(_)) = (resource_version, self.kind) {
            self.checkpoint(rv).await?;
        }
        Ok(())
    }

    async fn checkpoint(&self, resource_version: &str) -> Result<(), StreamError> {
        self.send(SourceMsg::Checkpoint {
            stream: self.name.clone(),
            resource_version: resource_version.to_owned(),
        })
        .await
    }

    async fn send(&self, msg: SourceMsg) -> Result<(), StreamError> {
        self.ctx
            .tx
            .send(msg)
            .await
            .map_err(|_| StreamError::PipelineGone)
    }

    fn set_failing(&mut self, failing: bool) {
        if failing != self.failing {
            self.failing = failing;
            let part = format!("watch of {}", self.name);
            if failing {
                self.ctx.health.failing(&part);
            } else {
                self.ctx.health.recovered(&part);
            }
        }
    }
}
