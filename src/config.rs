//! Command line and environment in, one validated, immutable [`Config`] out.
//!
//! Every flag also reads `KEE_<FLAG>`; every check that can fail runs here, before anything
//! starts, so a bad value exits with status 2 and names the flag.

use std::{net::SocketAddr, num::NonZeroU32, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

use crate::{
    alerting::{AlertSettings, Alertmanager},
    archive::{OnCorruption, limits::ArchiveLimits, writer::WriterSettings},
    http::auth::AuthSettings,
    rules::{Rules, is_label_name},
    ship::ShipSettings,
    source::kube::{EventsApi, KubeSettings},
    util::units::{ByteSize, HumanDuration},
};

/// `--archive-on-corruption`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CorruptionPolicy {
    /// Exit with status 2, naming the file.
    Fail,
    /// Rename the file to `<path>.damaged-<unix seconds>` and start a new archive.
    MoveAside,
}

/// `--history-from`: where `/api/v1/events` and the page read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum HistorySource {
    /// The local archive: this cluster's events.
    Archive,
    /// ClickHouse (--clickhouse-url): every cluster that ships there.
    Clickhouse,
}

/// `--auth`: who may read the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Anyone who reaches the port reads every namespace.
    None,
    /// A bearer token checked with a TokenReview; each namespace with a SubjectAccessReview.
    Kubernetes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The command line. Parse it with [`Args::try_parse_from`] in tests.
// On/off flags are bools: that is what clap parses a switch into.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(name = "kube-event-exporter", version, about, max_term_width = 100)]
pub struct Args {
    /// Address for /metrics and the probes, and for the history (/api/v1/events and the page)
    /// unless --history-listen is given.
    #[arg(
        long,
        env = "KEE_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:9102"
    )]
    pub listen: SocketAddr,

    /// Serve the history (/api/v1/events and the page) only on this address, and only
    /// /metrics and the probes on --listen, so a NetworkPolicy can admit each on its own port
    /// [default: none, the history is served on --listen].
    #[arg(long, env = "KEE_HISTORY_LISTEN", value_name = "ADDR")]
    pub history_listen: Option<SocketAddr>,

    /// Kubeconfig to use [default: kube's inference: $KUBECONFIG, ~/.kube/config, in-cluster].
    #[arg(
        long,
        env = "KEE_KUBECONFIG",
        value_name = "PATH",
        conflicts_with = "replay"
    )]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context [default: the current context].
    #[arg(
        long,
        env = "KEE_CONTEXT",
        value_name = "NAME",
        conflicts_with = "replay"
    )]
    pub context: Option<String>,

    /// Events API to watch: `events.k8s.io/v1` or `v1`.
    #[arg(
        long,
        env = "KEE_EVENTS_API",
        value_name = "API",
        default_value = "events.k8s.io/v1"
    )]
    pub events_api: EventsApi,

    /// Watch only these namespaces (repeatable or comma-separated) [default: all namespaces].
    #[arg(long, env = "KEE_NAMESPACE", value_name = "NS", value_delimiter = ',')]
    pub namespace: Vec<String>,

    /// Read events from this file (`-` = stdin) instead of the API; keeps serving after the
    /// input ends. Accepts kubectl JSON lists, watch streams and JSON lines of Events.
    #[arg(long, env = "KEE_REPLAY", value_name = "FILE")]
    pub replay: Option<PathBuf>,

    /// Log format.
    #[arg(long, env = "KEE_LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Server-side timeout of one watch request; a stream silent for this long plus 5s is
    /// treated as stalled and re-established.
    #[arg(
        long,
        env = "KEE_WATCH_TIMEOUT",
        value_name = "DURATION",
        default_value = "290s"
    )]
    pub watch_timeout: HumanDuration,

    /// Do not watch Pods, ReplicaSets, Jobs and Deployments: events get no workloads, and
    /// container restarts, OOM kills and stuck rollouts are not derived.
    #[arg(long, env = "KEE_NO_WORKLOADS")]
    pub no_workloads: bool,

    /// /healthz answers 503 once the watch has been failing (errors, no connection, stalled)
    /// for longer than this.
    #[arg(
        long,
        env = "KEE_HEALTH_FAILURE_THRESHOLD",
        value_name = "DURATION",
        default_value = "5m"
    )]
    pub health_failure_threshold: HumanDuration,

    /// How long an event's last-seen count is remembered without a new sighting; must exceed
    /// the API server's event TTL (1h by default) so an unchanged event is never counted again.
    #[arg(
        long,
        env = "KEE_LEDGER_TTL",
        value_name = "DURATION",
        default_value = "2h"
    )]
    pub ledger_ttl: HumanDuration,

    /// The redb archive file (created if missing).
    #[arg(
        long,
        env = "KEE_ARCHIVE_PATH",
        value_name = "PATH",
        default_value = "./kube-event-exporter.redb"
    )]
    pub archive_path: PathBuf,

    /// What to do when the archive file fails its integrity check at start.
    #[arg(
        long,
        env = "KEE_ARCHIVE_ON_CORRUPTION",
        value_name = "POLICY",
        value_enum,
        default_value_t = CorruptionPolicy::Fail
    )]
    pub archive_on_corruption: CorruptionPolicy,

    /// Archived events whose last occurrence is older than this are deleted.
    #[arg(
        long,
        env = "KEE_ARCHIVE_RETENTION",
        value_name = "DURATION",
        default_value = "7d"
    )]
    pub archive_retention: HumanDuration,

    /// Evict the oldest records while the archive's live pages exceed this size
    /// (e.g. 10GiB) [default: no cap].
    #[arg(long, env = "KEE_ARCHIVE_MAX_BYTES", value_name = "SIZE")]
    pub archive_max_bytes: Option<ByteSize>,

    /// New archive records per second per namespace; updates of archived events are never
    /// limited [default: 10, or the config file's archive.namespace_rate].
    #[arg(long, env = "KEE_ARCHIVE_NAMESPACE_RATE", value_name = "N")]
    pub archive_namespace_rate: Option<NonZeroU32>,

    /// New archive records a namespace may write at once, above its rate [default: 500].
    #[arg(long, env = "KEE_ARCHIVE_NAMESPACE_BURST", value_name = "N")]
    pub archive_namespace_burst: Option<NonZeroU32>,

    /// New archive records per second, all namespaces together [default: 200].
    #[arg(long, env = "KEE_ARCHIVE_RATE", value_name = "N")]
    pub archive_rate: Option<NonZeroU32>,

    /// New archive records all namespaces together may write at once [default: 5000].
    #[arg(long, env = "KEE_ARCHIVE_BURST", value_name = "N")]
    pub archive_burst: Option<NonZeroU32>,

    /// Alertmanager to post alerts to (repeatable or comma-separated): every URL gets every
    /// alert, as an Alertmanager cluster expects [default: none, forwarding off].
    #[arg(
        long,
        env = "KEE_ALERTMANAGER_URL",
        value_name = "URL",
        value_delimiter = ','
    )]
    pub alertmanager_url: Vec<String>,

    /// An alert stays firing this long after its last occurrence.
    #[arg(
        long,
        env = "KEE_ALERT_RESOLVE_AFTER",
        value_name = "DURATION",
        default_value = "15m"
    )]
    pub alert_resolve_after: HumanDuration,

    /// A static label on every alert, e.g. cluster=prod (repeatable or comma-separated).
    #[arg(
        long,
        env = "KEE_ALERT_LABEL",
        value_name = "NAME=VALUE",
        value_delimiter = ','
    )]
    pub alert_label: Vec<String>,

    /// How users reach this exporter's history; the base of each alert's generatorURL
    /// [default: http://<history-listen>, or http://<listen> without it].
    #[arg(long, env = "KEE_EXTERNAL_URL", value_name = "URL")]
    pub external_url: Option<String>,

    /// Active alerts are re-posted this often, so a restarted Alertmanager gets them back.
    #[arg(
        long,
        env = "KEE_ALERT_RESEND_INTERVAL",
        value_name = "DURATION",
        default_value = "1m"
    )]
    pub alert_resend_interval: HumanDuration,

    /// Alert updates that may wait per Alertmanager; beyond it the oldest are dropped.
    #[arg(
        long,
        env = "KEE_ALERT_QUEUE_SIZE",
        value_name = "N",
        default_value = "10000"
    )]
    pub alert_queue_size: NonZeroU32,

    /// Label sets of kube_events_total with a series of their own; occurrences of any further
    /// label set are counted in one series whose labels are all `_overflow`.
    #[arg(
        long,
        env = "KEE_METRICS_MAX_SERIES",
        value_name = "N",
        default_value = "10000"
    )]
    pub metrics_max_series: NonZeroU32,

    /// Label kube_events_total with the events' workloads too (`workload_kind`, `workload`):
    /// one series per workload, namespace, kind, reason and type.
    #[arg(long, env = "KEE_METRICS_WORKLOAD_LABELS")]
    pub metrics_workload_labels: bool,

    /// YAML file with rules (drop events, choose and shape alerts) and archive limits.
    #[arg(long, env = "KEE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Who may read the history (/api/v1/events and the page; /metrics and the probes stay
    /// open): `none`, anyone who reaches the port; `kubernetes`, a bearer token checked with a
    /// TokenReview, and only the namespaces where a SubjectAccessReview lets its user list
    /// events. Uses the exporter's kube credentials (with --replay, kube's inference).
    #[arg(long, env = "KEE_AUTH", value_name = "MODE", value_enum, default_value_t = AuthMode::None)]
    pub auth: AuthMode,

    /// With --auth kubernetes: take the user from X-Forwarded-User and the groups from
    /// X-Forwarded-Groups (comma-separated) when present, instead of a token. Safe only when
    /// nothing but the proxy that sets them can reach the exporter.
    #[arg(long, env = "KEE_AUTH_TRUSTED_PROXY_HEADERS")]
    pub auth_trusted_proxy_headers: bool,

    /// Ship every archived record to ClickHouse over its HTTP interface, e.g.
    /// http://user:password@clickhouse:8123 [default: none, shipping off].
    #[arg(
        long,
        env = "KEE_CLICKHOUSE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub clickhouse_url: Option<String>,

    /// ClickHouse database of the table (it must exist).
    #[arg(
        long,
        env = "KEE_CLICKHOUSE_DATABASE",
        value_name = "NAME",
        default_value = "default"
    )]
    pub clickhouse_database: String,

    /// ClickHouse table, created if missing.
    #[arg(
        long,
        env = "KEE_CLICKHOUSE_TABLE",
        value_name = "NAME",
        default_value = "kube_events"
    )]
    pub clickhouse_table: String,

    /// Day partitions of ClickHouse (by first occurrence) older than this are dropped.
    #[arg(
        long,
        env = "KEE_CLICKHOUSE_RETENTION",
        value_name = "DURATION",
        default_value = "90d"
    )]
    pub clickhouse_retention: HumanDuration,

    /// This cluster's name in ClickHouse (required with --clickhouse-url, unless --no-watch).
    #[arg(long, env = "KEE_CLUSTER_NAME", value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Where /api/v1/events and the page read: `archive` (this cluster's local archive) or
    /// `clickhouse` (every cluster that ships to --clickhouse-url).
    #[arg(long, env = "KEE_HISTORY_FROM", value_name = "STORE", value_enum, default_value_t = HistorySource::Archive)]
    pub history_from: HistorySource,

    /// Watch nothing and ship nothing: a query-only history server over ClickHouse (needs
    /// --history-from clickhouse; no Kubernetes credentials).
    #[arg(long, env = "KEE_NO_WATCH", conflicts_with_all = ["replay", "kubeconfig", "context"])]
    pub no_watch: bool,
}

/// Where events come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputConfig {
    /// The Kubernetes API, through the kubeconfig (or in-cluster) credentials.
    Kube {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
    /// A file of recorded events; `None` is stdin.
    Replay(Option<PathBuf>),
    /// `--no-watch`: no events come in.
    Nothing,
}

/// The validated configuration. Built once at start and never changed; each stage gets its
/// own settings from it.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    /// `Some`: the history is served there and not on `listen`.
    pub history_listen: Option<SocketAddr>,
    pub input: InputConfig,
    /// What to watch; its namespaces also filter a replay.
    pub watch: KubeSettings,
    pub log_format: LogFormat,
    pub health_failure_threshold: Duration,
    pub ledger_ttl: Duration,
    /// The cap on `kube_events_total`'s label sets.
    pub metrics_max_series: usize,
    /// `kube_events_total` gets `workload_kind` and `workload` labels.
    pub metrics_workload_labels: bool,
    pub archive: ArchiveConfig,
    /// `None`: forwarding off.
    pub alerting: Option<AlertSettings>,
    pub rules: Rules,
    /// `None`: `--auth none`.
    pub auth: Option<AuthSettings>,
    /// `None`: no ClickHouse. With it, records are shipped unless `--no-watch`.
    pub clickhouse: Option<ShipSettings>,
    /// `/api/v1/events` and the page read from ClickHouse.
    pub history_from_clickhouse: bool,
}

impl Config {
    /// Whether records are shipped to ClickHouse.
    pub fn ships(&self) -> bool {
        self.clickhouse.is_some() && !matches!(self.input, InputConfig::Nothing)
    }

    /// This cluster's name; empty when it has none (no ClickHouse, or `--no-watch`).
    pub fn cluster_name(&self) -> &str {
        self.clickhouse.as_ref().map_or("", |c| c.cluster.as_str())
    }
}

/// Where and how events are archived.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    pub path: PathBuf,
    pub on_corruption: OnCorruption,
    pub writer: WriterSettings,
    pub limits: ArchiveLimits,
}

/// A configuration value that failed validation; the message starts with the flag.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {flag}: {reason}")]
pub struct InvalidConfig {
    pub flag: &'static str,
    pub reason: String,
}

fn invalid(flag: &'static str, reason: impl Into<String>) -> InvalidConfig {
    InvalidConfig {
        flag,
        reason: reason.into(),
    }
}

impl TryFrom<Args> for Config {
    type Error = InvalidConfig;

    fn try_from(args: Args) -> Result<Self, InvalidConfig> {
        let rules = match &args.config {
            Some(path) => Rules::load(path).map_err(|e| invalid("--config", e.to_string()))?,
            None => Rules::default(),
        };
        let history_listen = history_listen(args.listen, args.history_listen)?;
        let alerting = alerting_config(&args)?;
        let archive = archive_config(&args, &rules)?;
        let clickhouse = clickhouse_config(&args)?;
        let history_from_clickhouse = args.history_from == HistorySource::Clickhouse;
        if history_from_clickhouse && clickhouse.is_none() {
            return Err(invalid(
                "--history-from",
                "clickhouse needs --clickhouse-url",
            ));
        }
        if args.no_watch && !history_from_clickhouse {
            return Err(invalid(
                "--no-watch",
                "only with --history-from clickhouse (there is nothing else to serve)",
            ));
        }
        // Access decisions list the namespaces of the local archive, not of a fleet.
        if history_from_clickhouse && args.auth == AuthMode::Kubernetes {
            return Err(invalid(
                "--auth",
                "kubernetes is not available with --history-from clickhouse",
            ));
        }
        let namespaces = namespaces(&args.namespace)?;
        if args.watch_timeout.0 < Duration::from_secs(1) {
            return Err(invalid("--watch-timeout", "must be at least 1s"));
        }
        if args.health_failure_threshold.0 < Duration::from_secs(1) {
            return Err(invalid("--health-failure-threshold", "must be at least 1s"));
        }
        // Shorter than any API server's event TTL: unchanged events would be counted again.
        if args.ledger_ttl.0 < Duration::from_secs(60) {
            return Err(invalid("--ledger-ttl", "must be at least 1m"));
        }
        let auth = match args.auth {
            AuthMode::Kubernetes => Some(AuthSettings {
                trusted_proxy_headers: args.auth_trusted_proxy_headers,
            }),
            AuthMode::None if args.auth_trusted_proxy_headers => {
                return Err(invalid(
                    "--auth-trusted-proxy-headers",
                    "only with --auth kubernetes",
                ));
            }
            AuthMode::None => None,
        };
        let input = if args.no_watch {
            InputConfig::Nothing
        } else {
            input(args.replay, args.kubeconfig, args.context)?
        };
        Ok(Self {
            auth,
            clickhouse,
            history_from_clickhouse,
            listen: args.listen,
            history_listen,
            watch: KubeSettings {
                api: args.events_api,
                namespaces,
                watch_timeout: args.watch_timeout.0,
                workloads: !args.no_workloads,
            },
            log_format: args.log_format,
            health_failure_threshold: args.health_failure_threshold.0,
            ledger_ttl: args.ledger_ttl.0,
            metrics_max_series: args.metrics_max_series.get() as usize,
            metrics_workload_labels: args.metrics_workload_labels,
            archive,
            alerting,
            rules,
            input,
        })
    }
}

/// The shipping settings; `None` without `--clickhouse-url`. Credentials in the URL move to
/// their own fields, so the URL can be logged.
fn clickhouse_config(args: &Args) -> Result<Option<ShipSettings>, InvalidConfig> {
    let identifier = |flag, name: &str| {
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(name.to_owned())
        } else {
            Err(invalid(
                flag,
                format!("`{name}` is not a plain identifier (letters, digits, '_')"),
            ))
        }
    };
    let database = identifier("--clickhouse-database", &args.clickhouse_database)?;
    let table = identifier("--clickhouse-table", &args.clickhouse_table)?;
    // Partitions are days.
    if args.clickhouse_retention.0 < Duration::from_secs(86_400) {
        return Err(invalid("--clickhouse-retention", "must be at least 1d"));
    }
    let Some(raw) = &args.clickhouse_url else {
        if args.cluster_name.is_some() {
            return Err(invalid("--cluster-name", "only with --clickhouse-url"));
        }
        return Ok(None);
    };
    let mut endpoint = reqwest::Url::parse(raw)
        .map_err(|e| invalid("--clickhouse-url", format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
        return Err(invalid(
            "--clickhouse-url",
            "must be an http:// or https:// URL with a host",
        ));
    }
    if endpoint.query().is_some() || endpoint.fragment().is_some() {
        return Err(invalid(
            "--clickhouse-url",
            "must not have a query or fragment",
        ));
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
            .map_err(|_| invalid("--clickhouse-url", "credentials are not UTF-8"))
    };
    let user = match endpoint.username() {
        "" => None,
        u => Some(decode(u)?),
    };
    let password = endpoint.password().map(decode).transpose()?;
    // Cannot fail on an http(s) URL with a host.
    let _ = endpoint.set_username("");
    let _ = endpoint.set_password(None);
    let cluster = match args.cluster_name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => name.to_owned(),
        // A query-only server ships nothing: it has no cluster of its own.
        None if args.no_watch => String::new(),
        _ => {
            return Err(invalid(
                "--cluster-name",
                "required with --clickhouse-url (this cluster's name in ClickHouse)",
            ));
        }
    };
    Ok(Some(ShipSettings {
        endpoint,
        user,
        password,
        database,
        table,
        cluster,
        retention: args.clickhouse_retention.0,
    }))
}

/// `--history-listen`, which must not be an address `--listen` binds too: the same port on
/// the same IP, or on any IP when either is unspecified (`0.0.0.0`, `[::]`). Port 0 picks a
/// free port each time, so it never clashes.
fn history_listen(
    listen: SocketAddr,
    history: Option<SocketAddr>,
) -> Result<Option<SocketAddr>, InvalidConfig> {
    let Some(history) = history else {
        return Ok(None);
    };
    let overlaps = history.ip() == listen.ip()
        || history.ip().is_unspecified()
        || listen.ip().is_unspecified();
    if history.port() != 0 && history.port() == listen.port() && overlaps {
        return Err(invalid(
            "--history-listen",
            format!("{history} is also --listen's address ({listen}); give it its own port"),
        ));
    }
    Ok(Some(history))
}

fn namespaces(given: &[String]) -> Result<Vec<String>, InvalidConfig> {
    let mut namespaces = Vec::new();
    for ns in given.iter().map(|n| n.trim()) {
        if !is_dns_label(ns) {
            return Err(invalid(
                "--namespace",
                format!("`{ns}` is not a namespace name (lowercase letters, digits and '-')"),
            ));
        }
        if !namespaces.iter().any(|n| n == ns) {
            namespaces.push(ns.to_owned());
        }
    }
    Ok(namespaces)
}

fn input(
    replay: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> Result<InputConfig, InvalidConfig> {
    let unreadable = |flag, path: &std::path::Path| {
        invalid(flag, format!("{} is not a readable file", path.display()))
    };
    match replay {
        Some(path) if path.as_os_str() == "-" => Ok(InputConfig::Replay(None)),
        Some(path) if !path.is_file() => Err(unreadable("--replay", &path)),
        Some(path) => Ok(InputConfig::Replay(Some(path))),
        None => match kubeconfig {
            Some(path) if !path.is_file() => Err(unreadable("--kubeconfig", &path)),
            kubeconfig => Ok(InputConfig::Kube {
                kubeconfig,
                context,
            }),
        },
    }
}

/// Archive settings; the rate limits come from the flags, else the config file, else defaults.
fn archive_config(args: &Args, rules: &Rules) -> Result<ArchiveConfig, InvalidConfig> {
    if args.archive_retention.0 < Duration::from_secs(60) {
        return Err(invalid("--archive-retention", "must be at least 1m"));
    }
    let path = &args.archive_path;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(invalid(
            "--archive-path",
            format!("directory {} does not exist", dir.display()),
        ));
    }
    if path.is_dir() {
        return Err(invalid(
            "--archive-path",
            format!("{} is a directory", path.display()),
        ));
    }
    // Below a few MiB redb's own metadata would trip the cap.
    if let Some(ByteSize(max)) = args.archive_max_bytes
        && max < 16 << 20
    {
        return Err(invalid("--archive-max-bytes", "must be at least 16MiB"));
    }
    let n = |v: u32| NonZeroU32::new(v).expect("default limits are positive");
    let file = rules.archive;
    Ok(ArchiveConfig {
        path: path.clone(),
        on_corruption: match args.archive_on_corruption {
            CorruptionPolicy::Fail => OnCorruption::Fail,
            CorruptionPolicy::MoveAside => OnCorruption::MoveAside,
        },
        writer: WriterSettings {
            retention: args.archive_retention.0,
            max_bytes: args.archive_max_bytes.map(|b| b.0),
        },
        limits: ArchiveLimits {
            namespace_rate: args
                .archive_namespace_rate
                .or(file.namespace_rate)
                .unwrap_or(n(10)),
            namespace_burst: args
                .archive_namespace_burst
                .or(file.namespace_burst)
                .unwrap_or(n(500)),
            global_rate: args.archive_rate.or(file.rate).unwrap_or(n(200)),
            global_burst: args.archive_burst.or(file.burst).unwrap_or(n(5000)),
        },
    })
}

/// The alerting settings; `None` without an Alertmanager. The other alert flags are checked
/// either way, so a typo is caught before it matters.
fn alerting_config(args: &Args) -> Result<Option<AlertSettings>, InvalidConfig> {
    let mut static_labels = std::collections::BTreeMap::new();
    for label in &args.alert_label {
        let (name, value) = label
            .split_once('=')
            .filter(|(n, v)| is_label_name(n) && !v.is_empty())
            .ok_or_else(|| {
                invalid(
                    "--alert-label",
                    format!("`{label}` is not NAME=VALUE with a valid label name and a value"),
                )
            })?;
        static_labels.insert(name.to_owned(), value.to_owned());
    }
    let external_url = match &args.external_url {
        Some(u) => {
            http_url(u)
                .ok_or_else(|| invalid("--external-url", format!("`{u}` is not an http(s) URL")))?;
            u.trim().trim_end_matches('/').to_owned()
        }
        None => format!("http://{}", args.history_listen.unwrap_or(args.listen)),
    };
    if args.alert_resolve_after.0 < Duration::from_secs(1) {
        return Err(invalid("--alert-resolve-after", "must be at least 1s"));
    }
    if args.alert_resend_interval.0 < Duration::from_millis(100) {
        return Err(invalid("--alert-resend-interval", "must be at least 100ms"));
    }
    let mut alertmanagers = Vec::new();
    for raw in &args.alertmanager_url {
        let mut url = http_url(raw).ok_or_else(|| {
            invalid(
                "--alertmanager-url",
                format!("`{raw}` is not an http(s) URL"),
            )
        })?;
        // Named without credentials in metrics and logs.
        let mut name = url.clone();
        let _ = name.set_password(None);
        let _ = name.set_username("");
        if !url.path().ends_with("/api/v2/alerts") {
            let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        alertmanagers.push(Alertmanager {
            name: name.as_str().trim_end_matches('/').to_owned(),
            endpoint: url,
        });
    }
    if alertmanagers.is_empty() {
        return Ok(None);
    }
    Ok(Some(AlertSettings {
        alertmanagers,
        queue_size: args.alert_queue_size.get() as usize,
        resolve_after: args.alert_resolve_after.0,
        resend_interval: args.alert_resend_interval.0,
        static_labels,
        external_url,
    }))
}

/// `raw` as an absolute http(s) URL with a host.
fn http_url(raw: &str) -> Option<reqwest::Url> {
    reqwest::Url::parse(raw.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// RFC 1123 label: what Kubernetes accepts as a namespace name.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["kube-event-exporter"];
        argv.extend_from_slice(args);
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::try_from(args).map_err(|e| e.to_string())
    }

    #[test]
    fn clickhouse_credentials_leave_the_url() {
        let c = parse(&[
            "--clickhouse-url",
            "https://kee:p%40ss@ch.example:8443/",
            "--cluster-name",
            "prod",
        ])
        .unwrap();
        let ch = c.clickhouse.as_ref().expect("clickhouse");
        assert_eq!(ch.endpoint.as_str(), "https://ch.example:8443/");
        assert_eq!(
            (ch.user.as_deref(), ch.password.as_deref()),
            (Some("kee"), Some("p@ss"))
        );
        assert_eq!(
            (ch.database.as_str(), ch.table.as_str()),
            ("default", "kube_events")
        );
        assert_eq!(ch.retention, Duration::from_secs(90 * 86_400));
        assert!(c.ships() && !c.history_from_clickhouse);
        assert_eq!(c.cluster_name(), "prod");
    }

    #[test]
    fn a_query_only_server_needs_clickhouse_and_no_cluster_name() {
        let c = parse(&[
            "--no-watch",
            "--history-from",
            "clickhouse",
            "--clickhouse-url",
            "http://ch:8123",
        ])
        .unwrap();
        assert_eq!(c.input, InputConfig::Nothing);
        assert!(!c.ships() && c.history_from_clickhouse);
        for (args, flag) in [
            (&["--no-watch"][..], "--no-watch"),
            (&["--history-from", "clickhouse"], "--history-from"),
            (
                &[
                    "--history-from",
                    "clickhouse",
                    "--clickhouse-url",
                    "http://ch:8123",
                    "--cluster-name",
                    "a",
                    "--auth",
                    "kubernetes",
                ],
                "--auth",
            ),
        ] {
            let e = parse(args).unwrap_err();
            assert!(e.contains(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9102".parse().unwrap());
        assert_eq!(c.watch.api, EventsApi::EventsV1);
        assert!(c.watch.namespaces.is_empty());
        assert_eq!(
            c.input,
            InputConfig::Kube {
                kubeconfig: None,
                context: None
            }
        );
    }

    #[test]
    fn namespaces_repeat_and_split() {
        let c = parse(&["--namespace", "a,b", "--namespace", "c", "--namespace", "a"]).unwrap();
        assert_eq!(c.watch.namespaces, ["a", "b", "c"]);
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, flag) in [
            (&["--listen", "nowhere"][..], "--listen"),
            (&["--events-api", "v2"], "--events-api"),
            (&["--namespace", "Bad_NS"], "--namespace"),
            (&["--replay", "/no/such/file"], "--replay"),
            (&["--kubeconfig", "/no/such/file"], "--kubeconfig"),
            (&["--log-format", "xml"], "--log-format"),
            (&["--auth", "rbac"], "--auth"),
            (
                &["--auth-trusted-proxy-headers"],
                "--auth-trusted-proxy-headers",
            ),
            (&["--watch-timeout", "soon"], "--watch-timeout"),
            (&["--archive-path", "/no/such/dir/a.redb"], "--archive-path"),
            (&["--archive-retention", "30s"], "--archive-retention"),
            (
                &["--archive-max-bytes", "12 parsecs"],
                "--archive-max-bytes",
            ),
            (&["--archive-max-bytes", "1MiB"], "--archive-max-bytes"),
            (
                &["--archive-namespace-rate", "0"],
                "--archive-namespace-rate",
            ),
            (
                &["--health-failure-threshold", "0s"],
                "--health-failure-threshold",
            ),
            (&["--ledger-ttl", "5s"], "--ledger-ttl"),
            (&["--metrics-max-series", "0"], "--metrics-max-series"),
            // Alert flags are checked with alerting off too.
            (&["--alert-label", "cluster"], "--alert-label"),
            (&["--alert-label", "cluster="], "--alert-label"),
            (&["--external-url", "ftp://x"], "--external-url"),
            (&["--external-url", "http://"], "--external-url"),
            (&["--alert-resolve-after", "0s"], "--alert-resolve-after"),
            (
                &["--alert-resend-interval", "1ms"],
                "--alert-resend-interval",
            ),
            (&["--alert-queue-size", "0"], "--alert-queue-size"),
            (&["--alertmanager-url", ""], "--alertmanager-url"),
            (&["--replay", "-", "--context", "prod"], "--context"),
            (&["--history-listen", "nowhere"], "--history-listen"),
            (&["--history-listen", "0.0.0.0:9102"], "--history-listen"),
            (
                &[
                    "--listen",
                    "127.0.0.1:9000",
                    "--history-listen",
                    "127.0.0.1:9000",
                ],
                "--history-listen",
            ),
            (
                &[
                    "--listen",
                    "0.0.0.0:9000",
                    "--history-listen",
                    "10.0.0.1:9000",
                ],
                "--history-listen",
            ),
            (
                &["--replay", "-", "--kubeconfig", "/etc/hosts"],
                "--kubeconfig",
            ),
        ] {
            let err = parse(args).unwrap_err();
            let first = err.lines().next().unwrap();
            assert!(first.contains(flag), "{args:?}: {first}");
        }
    }

    #[test]
    fn alertmanager_urls_become_endpoints() {
        let c = parse(&[
            "--alertmanager-url",
            "http://am-0:9093,https://user:secret@am-1.example/prefix/",
            "--alert-label",
            "cluster=prod",
        ])
        .unwrap();
        let a = c.alerting.unwrap();
        let got: Vec<(&str, &str)> = a
            .alertmanagers
            .iter()
            .map(|am| (am.name.as_str(), am.endpoint.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("http://am-0:9093", "http://am-0:9093/api/v2/alerts"),
                (
                    "https://am-1.example/prefix",
                    "https://user:secret@am-1.example/prefix/api/v2/alerts"
                ),
            ]
        );
        assert_eq!(a.static_labels["cluster"], "prod");
        assert_eq!(a.external_url, "http://0.0.0.0:9102");
        assert_eq!(a.resolve_after, Duration::from_secs(900));
        assert!(parse(&[]).unwrap().alerting.is_none());
    }

    #[test]
    fn archive_limits_come_from_flags_then_the_file_then_defaults() {
        let dir = std::env::temp_dir().join(format!("kee-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("rules.yaml");
        std::fs::write(&file, "archive:\n  namespace_rate: 3\n  burst: 7\n").unwrap();
        let c = parse(&["--config", file.to_str().unwrap(), "--archive-burst", "9"]).unwrap();
        let l = c.archive.limits;
        assert_eq!(
            [
                l.namespace_rate.get(),
                l.namespace_burst.get(),
                l.global_rate.get(),
                l.global_burst.get()
            ],
            [3, 500, 200, 9]
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn auth_is_off_unless_asked_for() {
        assert_eq!(parse(&[]).unwrap().auth, None);
        assert_eq!(
            parse(&["--auth", "kubernetes", "--auth-trusted-proxy-headers"])
                .unwrap()
                .auth,
            Some(AuthSettings {
                trusted_proxy_headers: true
            })
        );
    }

    #[test]
    fn the_history_has_its_own_address_only_when_asked_for() {
        let c = parse(&["--alertmanager-url", "http://am:9093"]).unwrap();
        assert_eq!(c.history_listen, None);
        assert_eq!(c.alerting.unwrap().external_url, "http://0.0.0.0:9102");
        let c = parse(&[
            "--history-listen",
            "0.0.0.0:9103",
            "--alertmanager-url",
            "http://am:9093",
        ])
        .unwrap();
        assert_eq!(c.history_listen, Some("0.0.0.0:9103".parse().unwrap()));
        // Alert links lead to the history, wherever it is served.
        assert_eq!(c.alerting.unwrap().external_url, "http://0.0.0.0:9103");
        // Another IP on the same port is another address.
        let c = parse(&[
            "--listen",
            "127.0.0.1:9102",
            "--history-listen",
            "127.0.0.2:9102",
        ]);
        assert!(c.is_ok(), "{c:?}");
    }

    #[test]
    fn stdin_replay() {
        assert_eq!(
            parse(&["--replay", "-"]).unwrap().input,
            InputConfig::Replay(None)
        );
    }
}
