//! Wiring: builds the parts from the [`Config`], runs them as tasks and shuts them down
//! together. A part that fails takes the process down with a non-zero exit.

use std::{sync::Arc, time::Duration};

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::{net::TcpListener, sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::{
    alerting::{
        Alerting,
        delivery::{Deliverer, DeliveryQueue},
    },
    archive::{
        Archive, LedgerEntry, Restored,
        limits::ArchiveLimiter,
        writer::{self, ArchiveSink, WriterSettings},
    },
    config::{AlertingConfig, Config, Source},
    health::Health,
    http::{AppState, HttpServer},
    metrics::Metrics,
    pipeline::{Consumers, Pipeline, ledger::Ledger},
    rules::Rules,
    source::{CHANNEL_CAPACITY, kube::KubeSource, replay::ReplaySource},
};

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A kubeconfig named by a flag could not be used: a bad value, exit status 2.
    #[error("invalid value for {flag}: {source}")]
    KubeconfigRejected {
        flag: &'static str,
        #[source]
        source: anyhow::Error,
    },
    /// The archive file could not be opened or created: exit status 2.
    #[error("invalid value for --archive-path: {0}")]
    ArchiveRejected(#[source] crate::archive::ArchiveError),
    #[error("no Kubernetes credentials found (kubeconfig or in-cluster): {0}")]
    NoCredentials(#[source] anyhow::Error),
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

/// A started exporter: everything bound and connected, nothing running yet.
pub struct App {
    config: Config,
    client: Option<kube::Client>,
    listener: TcpListener,
    archive: Archive,
    restored: Restored,
}

impl App {
    /// Loads credentials and binds the listener; fails before anything runs.
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let client = match &config.source {
            Source::Kube {
                kubeconfig,
                context,
            } => Some(
                kube_client(
                    kubeconfig.as_deref(),
                    context.as_deref(),
                    config.watch_timeout,
                )
                .await?,
            ),
            Source::Replay(_) => None,
        };
        let archive = Archive::open(&config.archive.path).map_err(StartError::ArchiveRejected)?;
        let since = jiff::Timestamp::now()
            .checked_sub(config.ledger_ttl)
            .map_or(0, crate::archive::record::micros);
        let restored = archive
            .restore(since)
            .map_err(StartError::ArchiveRejected)?;
        info!(
            path = %config.archive.path.display(),
            ledger = restored.ledger.len(),
            checkpoints = restored.checkpoints.len(),
            "Archive open."
        );
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::BindFailed {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            config,
            client,
            listener,
            archive,
            restored,
        })
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
        let config = self.config;
        let metrics = Arc::new(Metrics::new());
        let health = Arc::new(Health::new(config.health_failure_threshold));
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let mut tasks = JoinSet::new();

        // The writer outlives the other tasks: it commits what the pipeline queued last.
        let (sink, archive_writer) = archive_writer(&config, &self.archive, &metrics);
        let writer_stop = CancellationToken::new();
        let writer_task = tokio::spawn(archive_writer.run(writer_stop.clone()));

        let ledger = restore_ledger(
            config.ledger_ttl,
            self.restored.next_seq,
            self.restored.ledger,
            &sink,
        );

        info!(listen = %self.listener.local_addr()?, "Serving HTTP.");
        let state = AppState {
            metrics: metrics.clone(),
            health: health.clone(),
            archive: self.archive.clone(),
        };
        tasks.spawn(HttpServer::new(self.listener, state).run(shutdown.clone()));

        let streams = match (&config.source, self.client) {
            (Source::Kube { .. }, Some(client)) => {
                let source = KubeSource::new(
                    client,
                    config.events_api,
                    config.namespaces.clone(),
                    config.watch_timeout,
                    self.restored.checkpoints,
                    tx,
                    metrics.clone(),
                    health.clone(),
                );
                let streams = source.stream_count();
                info!(api = %config.events_api, streams, "Watching events.");
                tasks.spawn(source.run(shutdown.clone()));
                streams
            }
            (Source::Replay(path), _) => {
                let source = ReplaySource::new(path.clone(), tx, metrics.clone());
                // A finished replay is not a failure: its task ends and the rest serves on.
                tasks.spawn(source.run(shutdown.clone()));
                1
            }
            (Source::Kube { .. }, None) => unreachable!("App::start builds a client for Kube"),
        };

        let alerting = config
            .alerting
            .as_ref()
            .map(|a| {
                start_alerting(
                    a,
                    &config.rules,
                    &self.archive,
                    &metrics,
                    &mut tasks,
                    &shutdown,
                )
            })
            .transpose()?;
        let consumers = Consumers {
            archive: sink,
            rules: config.rules,
            alerting,
        };
        let pipeline = Pipeline::new(
            rx,
            ledger,
            config.namespaces,
            streams,
            metrics,
            health,
            consumers,
        );
        tasks.spawn(pipeline.run(shutdown.clone()));

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

/// The archive's sink for the pipeline and its writer task, with the size gauges set.
fn archive_writer(
    config: &Config,
    archive: &Archive,
    metrics: &Arc<Metrics>,
) -> (ArchiveSink, writer::ArchiveWriter) {
    let cap = config
        .archive
        .max_bytes
        .map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX));
    metrics.archive.max_bytes.set(cap);
    metrics
        .archive
        .size_bytes
        .set(i64::try_from(archive.file_bytes()).unwrap_or(i64::MAX));
    writer::channel(
        archive.clone(),
        ArchiveLimiter::new(config.archive.limits),
        WriterSettings {
            retention: config.archive.retention,
            max_bytes: config.archive.max_bytes,
        },
        metrics.clone(),
    )
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

/// Starts one delivery task per Alertmanager and the resender, and re-posts the alerts that
/// were active when the exporter last stopped (unchanged: no new occurrence is invented).
fn start_alerting(
    config: &AlertingConfig,
    rules: &Rules,
    archive: &Archive,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<anyhow::Result<()>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Arc<Alerting>> {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("kube-event-exporter/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let mut queues = Vec::new();
    for (name, endpoint) in &config.alertmanagers {
        let queue = Arc::new(DeliveryQueue::new(name, config.queue_size, metrics));
        let deliverer = Deliverer::new(
            queue.clone(),
            endpoint.clone(),
            client.clone(),
            metrics.clone(),
        );
        tasks.spawn(deliverer.run(shutdown.clone()));
        queues.push(queue);
    }
    info!(
        alertmanagers = config.alertmanagers.len(),
        "Forwarding alerts."
    );
    let alerting = Arc::new(Alerting::new(
        config.settings.clone(),
        queues,
        metrics.clone(),
    ));
    let since = jiff::Timestamp::now()
        .checked_sub(config.settings.resolve_after)
        .map_or(0, crate::archive::record::micros);
    // Bounded: a restart re-posts at most this many archived events' alerts.
    for event in archive.recent(since, 100_000)? {
        let decision = rules.decide(&event);
        if decision.alert && !decision.drop {
            alerting.occurrence(&event, &decision);
        }
    }
    tasks.spawn(alerting.clone().run_resender(shutdown.clone()));
    Ok(alerting)
}

/// The ledger as the archive left it; entries unseen for longer than the ttl are dropped
/// (and forgotten in the archive too).
fn restore_ledger(
    ttl: Duration,
    next_seq: u64,
    entries: Vec<(u64, LedgerEntry)>,
    sink: &ArchiveSink,
) -> Ledger {
    let mut ledger = Ledger::new(ttl, next_seq);
    // Sized once: growing a million-entry table on the way holds the old and the new at once.
    ledger.reserve(entries.len());
    let now = std::time::Instant::now();
    let now_secs = jiff::Timestamp::now().as_second().unsigned_abs();
    for (seq, entry) in entries {
        let age = Duration::from_secs(now_secs.saturating_sub(entry.touched));
        if !ledger.restore(seq, entry.key, entry.count, entry.archived, age, now) {
            sink.forget(seq);
        }
    }
    ledger
}

async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
    watch_timeout: Duration,
) -> Result<kube::Client, StartError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let rejected =
        |flag| move |e: anyhow::Error| StartError::KubeconfigRejected { flag, source: e };
    let mut config = if let Some(path) = kubeconfig {
        let kubeconfig =
            Kubeconfig::read_from(path).map_err(|e| rejected("--kubeconfig")(e.into()))?;
        kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| {
                rejected(if context.is_some() {
                    "--context"
                } else {
                    "--kubeconfig"
                })(e.into())
            })?
    } else if context.is_some() {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| rejected("--context")(e.into()))?
    } else {
        kube::Config::infer()
            .await
            .map_err(|e| StartError::NoCredentials(e.into()))?
    };
    // A watch answers within its timeoutSeconds; a read that takes longer is a dead connection.
    config.read_timeout = Some(watch_timeout + crate::source::kube::STALL_MARGIN);
    // kube's built-in retry (15 attempts, delays up to 1000s) would hide an outage from the
    // health check; every stream retries with its own backoff and reports failures.
    config.default_retry = false;
    kube::Client::try_from(config).map_err(|e| StartError::NoCredentials(e.into()))
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
