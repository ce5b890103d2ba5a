//! Wiring: resolves the input, opens the archive, builds the parts from the [`Config`]
//! ([`Parts::build`], which the benchmarks use too), runs them as tasks and shuts them down
//! together. A part that fails takes the process down with a non-zero exit.

use std::{sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::{
    alerting::{Alerting, delivery::Deliverer},
    archive::{
        Archive, ArchiveError,
        limits::ArchiveLimiter,
        writer::{self, ArchiveWriter},
    },
    config::{Config, InputConfig},
    event::{micros, unix_secs},
    health::Health,
    http::{
        self, AppState,
        auth::Authorizer,
        server::{HttpServer, connection_cap},
    },
    metrics::Metrics,
    pipeline::{Consumers, Pipeline, ledger::Ledger},
    ship::{self, Shipper, history::History},
    source::{
        self, CHANNEL_CAPACITY, Checkpoints, Input, Source, SourceContext, kube::ConnectError,
    },
};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A kubeconfig or context named by a flag could not be used: a bad value, exit status 2.
    #[error("invalid value for {flag}: {source}")]
    KubeconfigRejected {
        flag: &'static str,
        #[source]
        source: ConnectError,
    },
    #[error(transparent)]
    NoCredentials(ConnectError),
    /// `--auth kubernetes` has no client to review requests with.
    #[error("--auth kubernetes needs Kubernetes credentials: {0}")]
    NoAuthCredentials(#[source] ConnectError),
    /// The archive file could not be opened or created: exit status 2.
    #[error("invalid value for --archive-path: {0}")]
    ArchiveRejected(#[source] ArchiveError),
    #[error("cannot build the Alertmanager client: {0}")]
    AlertClientFailed(#[source] reqwest::Error),
    #[error("cannot build the ClickHouse client: {0}")]
    ClickHouseClientFailed(#[source] reqwest::Error),
    #[error("cannot listen on {addr}: {source}")]
    BindFailed {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl StartError {
    /// 2 for a bad flag value, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::KubeconfigRejected { .. } | Self::ArchiveRejected(_) => 2,
            _ => 1,
        }
    }
}

impl From<ConnectError> for StartError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::KubeconfigRejected(_) => Self::KubeconfigRejected {
                flag: "--kubeconfig",
                source: e,
            },
            ConnectError::ContextRejected(_) => Self::KubeconfigRejected {
                flag: "--context",
                source: e,
            },
            ConnectError::NoCredentials(_) => Self::NoCredentials(e),
        }
    }
}

/// Every part of the exporter but the source and the HTTP listener, built from the
/// configuration and the archive's restored state, not yet running.
pub struct Parts {
    pub pipeline: Pipeline,
    pub archive_writer: ArchiveWriter,
    /// `None`: forwarding off.
    pub alerting: Option<Arc<Alerting>>,
    /// One per Alertmanager.
    pub deliverers: Vec<Deliverer>,
    /// `None`: shipping to ClickHouse off.
    pub shipper: Option<Shipper>,
    /// What a source reports to (the pipeline's channel among it).
    pub source_ctx: SourceContext,
    /// Where each watch stream had got to when the exporter last stopped.
    pub checkpoints: Checkpoints,
    /// What the HTTP handlers read.
    pub state: AppState,
}

impl Parts {
    /// Restores the ledger, the checkpoints and the active alerts from `archive` and wires the
    /// pipeline to its consumers. `streams` sources report `Synced` before the exporter is
    /// ready.
    pub fn build(config: &Config, archive: Archive, streams: usize) -> Result<Self, StartError> {
        let mut metrics =
            Metrics::with_event_series(config.metrics_max_series, config.metrics_workload_labels);
        if config.ships() {
            metrics = metrics.with_clickhouse();
        }
        let metrics = Arc::new(metrics);
        let archive = archive
            .with_outbox(config.ships())
            .map_err(StartError::ArchiveRejected)?;
        let health = Arc::new(Health::new(config.health_failure_threshold));
        let now = jiff::Timestamp::now();
        let since = now.checked_sub(config.ledger_ttl).map_or(0, micros);
        let restored = archive
            .restore(since)
            .map_err(StartError::ArchiveRejected)?;
        info!(
            path = %config.archive.path.display(),
            ledger = restored.ledger.len(),
            checkpoints = restored.checkpoints.len(),
            "Archive open."
        );

        let (sink, archive_writer) = writer::channel(
            archive.clone(),
            ArchiveLimiter::new(config.archive.limits),
            config.archive.writer,
            metrics.clone(),
            health.clone(),
        );
        let (ledger, expired) = Ledger::restore(
            config.ledger_ttl,
            restored.next_seq,
            restored.ledger,
            unix_secs(now),
        );
        for seq in expired {
            sink.forget(seq);
        }

        let (alerting, deliverers) = match &config.alerting {
            Some(settings) => {
                let (alerting, deliverers) =
                    Alerting::with_deliverers(settings.clone(), metrics.clone())
                        .map_err(StartError::AlertClientFailed)?;
                let since = now.checked_sub(alerting.resolve_after()).map_or(0, micros);
                // Bounded: a restart re-posts at most this many archived events' alerts.
                let recent = archive
                    .recent(since, 100_000)
                    .map_err(StartError::ArchiveRejected)?;
                alerting.restore(recent, &config.rules);
                (Some(alerting), deliverers)
            }
            None => (None, Vec::new()),
        };

        let (shipper, history) = clickhouse_parts(config, &archive, &metrics)?;

        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let consumers = Consumers {
            archive: sink,
            rules: config.rules.clone(),
            alerting: alerting.clone(),
        };
        let mut pipeline = Pipeline::new(
            rx,
            ledger,
            config.watch.namespaces.clone(),
            streams,
            metrics.clone(),
            health.clone(),
            consumers,
        );
        if matches!(config.input, InputConfig::Replay(_)) {
            pipeline = pipeline.waiting_for_archive();
        } else if config.watch.workloads {
            let watched_before = restored
                .checkpoints
                .keys()
                .any(|stream| stream.starts_with("pods in"));
            pipeline =
                pipeline.with_workloads(config.watch.namespaces.len().max(1), watched_before);
        }
        Ok(Self {
            pipeline,
            archive_writer,
            alerting,
            deliverers,
            shipper,
            source_ctx: SourceContext {
                tx,
                metrics: metrics.clone(),
                health: health.clone(),
            },
            checkpoints: restored.checkpoints,
            state: AppState {
                metrics,
                health,
                archive,
                auth: None,
                history,
                cluster: config.cluster_name().into(),
            },
        })
    }
}

/// The ClickHouse shipper (shipping on) and reader (`--history-from clickhouse`).
fn clickhouse_parts(
    config: &Config,
    archive: &Archive,
    metrics: &Metrics,
) -> Result<(Option<Shipper>, Option<Arc<History>>), StartError> {
    let Some(settings) = &config.clickhouse else {
        return Ok((None, None));
    };
    let shipper = match metrics.clickhouse() {
        Some(ship_metrics) if config.ships() => Some(
            Shipper::new(archive.clone(), settings.clone(), ship_metrics)
                .map_err(StartError::ClickHouseClientFailed)?,
        ),
        _ => None,
    };
    let history = if config.history_from_clickhouse {
        let client =
            ship::Client::new(settings.clone()).map_err(StartError::ClickHouseClientFailed)?;
        Some(Arc::new(History::new(client)))
    } else {
        None
    };
    Ok((shipper, history))
}

/// A started exporter: everything bound, connected and restored, nothing running yet.
pub struct App {
    /// `None`: `--no-watch`.
    source: Option<Source>,
    parts: Parts,
    listener: TcpListener,
    /// `Some`: `--history-listen`, the history's own listener.
    history_listener: Option<TcpListener>,
}

impl App {
    /// Resolves the input, opens the archive and binds the listeners; fails before anything
    /// runs.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let input = match &config.input {
            InputConfig::Kube {
                kubeconfig,
                context,
            } => Some(Input::Kube {
                client: source::kube::connect(
                    kubeconfig.as_deref(),
                    context.as_deref(),
                    config.watch.watch_timeout,
                )
                .await?,
                settings: config.watch.clone(),
            }),
            InputConfig::Replay(path) => Some(Input::Replay(path.clone())),
            InputConfig::Nothing => None,
        };
        // Access reviews go through the watch's client, or kube's inference otherwise.
        let auth_client = match (&config.auth, &input) {
            (None, _) => None,
            (Some(_), Some(Input::Kube { client, .. })) => Some(client.clone()),
            (Some(_), _) => Some(
                source::kube::connect(None, None, config.watch.watch_timeout)
                    .await
                    .map_err(StartError::NoAuthCredentials)?,
            ),
        };
        let archive = Archive::open_with(&config.archive.path, config.archive.on_corruption)
            .map_err(StartError::ArchiveRejected)?;
        // The stream count is known before the source exists: the pipeline needs it.
        let streams = match &input {
            Some(Input::Kube { settings, .. }) => settings.stream_count(),
            Some(Input::Replay(_)) => 1,
            None => 0,
        };
        let mut parts = Parts::build(&config, archive, streams)?;
        if let (Some(settings), Some(client)) = (&config.auth, auth_client) {
            parts.state.auth = Some(Arc::new(Authorizer::new(
                client,
                settings.clone(),
                parts.state.metrics.clone(),
            )));
        }
        let checkpoints = std::mem::take(&mut parts.checkpoints);
        let source = input.map(|input| {
            let source = Source::new(input, checkpoints, parts.source_ctx.clone());
            debug_assert_eq!(source.stream_count(), streams);
            source
        });
        if source.is_none() {
            // A query-only server has nothing to list first.
            parts.state.health.set_ready();
        }
        let listener = bind(config.listen).await?;
        let history_listener = match config.history_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Self {
            source,
            parts,
            listener,
            history_listener,
        })
    }

    /// Readiness and liveness, shared with the probes.
    pub fn health(&self) -> Arc<Health> {
        self.parts.state.health.clone()
    }

    /// Runs until SIGTERM or SIGINT, or until a part fails.
    pub async fn run(self) -> anyhow::Result<()> {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("Shutting down.");
            signals.cancel();
        });
        self.run_until(shutdown).await
    }

    /// Runs until `shutdown` is cancelled or a part fails.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self {
            source,
            parts,
            listener,
            history_listener,
        } = self;
        let mut tasks = JoinSet::new();

        // The writer outlives the other tasks: it commits what the pipeline queued last.
        let writer_stop = CancellationToken::new();
        let writer_task = tokio::spawn(parts.archive_writer.run(writer_stop.clone()));

        if let Some(history_listener) = history_listener {
            info!(
                listen = %listener.local_addr()?,
                history_listen = %history_listener.local_addr()?,
                "Serving HTTP."
            );
            // Half the cap each: a flood on one port never closes the other's connections.
            let cap = connection_cap() / 2;
            let state = parts.state.clone();
            tasks.spawn(
                HttpServer::new(listener, http::operations_router(state), cap)
                    .run(shutdown.clone()),
            );
            tasks.spawn(
                HttpServer::new(history_listener, http::history_router(parts.state), cap)
                    .run(shutdown.clone()),
            );
        } else {
            info!(listen = %listener.local_addr()?, "Serving HTTP.");
            tasks.spawn(
                HttpServer::new(listener, http::router(parts.state), connection_cap())
                    .run(shutdown.clone()),
            );
        }
        // A finished replay is not a failure: its task ends and the rest serves on.
        if let Some(source) = source {
            tasks.spawn(source.run(shutdown.clone()));
        }
        for deliverer in parts.deliverers {
            tasks.spawn(deliverer.run(shutdown.clone()));
        }
        if let Some(alerting) = parts.alerting {
            tasks.spawn(alerting.run_resender(shutdown.clone()));
        }
        if let Some(shipper) = parts.shipper {
            tasks.spawn(shipper.run(shutdown.clone()));
        }
        // The source holds the only other sender: once it is gone the pipeline only exposes
        // what becomes durable.
        drop(parts.source_ctx);
        tasks.spawn(parts.pipeline.run(shutdown.clone()));

        let result = supervise(tasks, &shutdown).await;
        writer_stop.cancel();
        match writer_task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "Archive writer failed."),
            Err(e) => error!(error = %e, "Archive writer panicked."),
        }
        result
    }
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::BindFailed { addr, source })
}

/// Makes a panic anywhere (a task, a blocking thread) end the process with status 101 once the
/// panic is reported. Tokio would otherwise catch a task's panic and leave the process half
/// alive: a dead signal task, for one, ignores SIGTERM from then on. What was committed to the
/// archive is safe, and the next start resumes from it as after any crash.
pub fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // The default hook ignores a stderr it cannot write to.
        report(info);
        std::process::exit(101);
    }));
}

/// Waits for shutdown or the first failing task, then stops every task (bounded in time).
async fn supervise(
    mut tasks: JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut result = Ok(());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    error!(error = %e, "A task failed; stopping.");
                    result = Err(e);
                    break;
                }
                Some(Err(e)) => {
                    error!(error = %e, "A task panicked; stopping.");
                    result = Err(e.into());
                    break;
                }
            },
        }
    }
    shutdown.cancel();
    // Parts finish their current step and stop; give them a bounded time.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        error!("Tasks did not stop within 10s; exiting anyway.");
    }
    result
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::{process::Command, time::Instant};

    /// Set in the child process that [`a_panicking_task_ends_the_process`] starts.
    const CHILD: &str = "KEE_PANIC_CHILD";

    /// A task that panics while the rest of the runtime waits forever ends the process with
    /// status 101. The test runs itself as a child process with [`CHILD`] set.
    #[test]
    fn a_panicking_task_ends_the_process() {
        if std::env::var_os(CHILD).is_some() {
            super::exit_on_panic();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                tokio::spawn(async { panic!("a task fails") });
                std::future::pending::<()>().await;
            });
            return;
        }
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", "app::tests::a_panicking_task_ends_the_process"])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let deadline = Instant::now() + super::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the process lived on after its task panicked");
            }
            std::thread::sleep(super::Duration::from_millis(20));
        };
        assert_eq!(status.code(), Some(101));
    }
}
