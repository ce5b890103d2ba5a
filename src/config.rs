//! Command line and environment in, one validated, immutable [`Config`] out.
//!
//! Every flag also reads `KEE_<FLAG>`; every check that can fail runs here, before anything
//! starts, so a bad value exits with status 2 and names the flag.

use std::{fmt, net::SocketAddr, num::NonZeroU32, path::PathBuf, str::FromStr, time::Duration};

use clap::{Parser, ValueEnum};

use crate::{
    alerting::AlertSettings,
    archive::limits::ArchiveLimits,
    rules::{Rules, is_label_name},
};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A human duration: `90s`, `15m`, `7d`, `1h30m`, `250ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Self)
    }
}

/// Parses a sequence of `<integer><unit>` pairs, units `ms`, `s`, `m`, `h`, `d`, `w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration like 90s, 15m, 2h or 7d");
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per_unit: u64 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let millis = value.checked_mul(millis_per_unit).ok_or_else(bad)?;
        total = total
            .checked_add(Duration::from_millis(millis))
            .ok_or_else(bad)?;
    }
    Ok(total)
}

/// A byte size: `500000000`, `512MiB`, `10GiB`, `2GB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a size like 500MiB, 10GiB or 2000000000");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(Self).ok_or_else(bad)
    }
}

/// The command line. Parse it with [`Args::try_parse_from`] in tests.
#[derive(Debug, Parser)]
#[command(name = "kube-event-exporter", version, about, max_term_width = 100)]
pub struct Args {
    /// Address for /metrics, the probes and the archive API.
    #[arg(
        long,
        env = "KEE_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:9102"
    )]
    pub listen: SocketAddr,

    /// Kubeconfig to use [default: kube's inference: $KUBECONFIG, ~/.kube/config, in-cluster].
    #[arg(long, env = "KEE_KUBECONFIG", value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context [default: the current context].
    #[arg(long, env = "KEE_CONTEXT", value_name = "NAME")]
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

    /// How users reach this exporter; the base of each alert's generatorURL
    /// [default: http://<listen>].
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

    /// YAML file with rules (drop events, choose and shape alerts) and archive limits.
    #[arg(long, env = "KEE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
}

/// Where events come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The Kubernetes API, through the kubeconfig (or in-cluster) credentials.
    Kube {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
    /// A file of recorded events; `None` is stdin.
    Replay(Option<PathBuf>),
}

/// The validated configuration. Built once at start and never changed.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub source: Source,
    pub events_api: EventsApi,
    /// Empty means all namespaces.
    pub namespaces: Vec<String>,
    pub log_format: LogFormat,
    pub watch_timeout: Duration,
    pub health_failure_threshold: Duration,
    pub ledger_ttl: Duration,
    pub archive: ArchiveConfig,
    /// `None`: forwarding off.
    pub alerting: Option<AlertingConfig>,
    pub rules: Rules,
}

/// Where alerts go and how they look.
#[derive(Clone, Debug)]
pub struct AlertingConfig {
    /// (name for metrics and logs, `POST /api/v2/alerts` endpoint) per Alertmanager.
    pub alertmanagers: Vec<(String, reqwest::Url)>,
    pub settings: AlertSettings,
    pub queue_size: usize,
}

/// Where and how events are archived.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    pub path: PathBuf,
    pub retention: Duration,
    pub max_bytes: Option<u64>,
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
        let alerting = alerting_config(&args)?;
        let archive = archive_config(&args, &rules)?;
        let namespaces = namespaces(&args.namespace)?;
        if args.watch_timeout.0 < Duration::from_secs(1) {
            return Err(invalid("--watch-timeout", "must be at least 1s"));
        }
        Ok(Self {
            listen: args.listen,
            events_api: args.events_api,
            namespaces,
            log_format: args.log_format,
            watch_timeout: args.watch_timeout.0,
            health_failure_threshold: args.health_failure_threshold.0,
            ledger_ttl: args.ledger_ttl.0,
            archive,
            alerting,
            rules,
            source: source(args.replay, args.kubeconfig, args.context)?,
        })
    }
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

fn source(
    replay: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
) -> Result<Source, InvalidConfig> {
    let unreadable = |flag, path: &std::path::Path| {
        invalid(flag, format!("{} is not a readable file", path.display()))
    };
    match replay {
        Some(path) if path.as_os_str() == "-" => Ok(Source::Replay(None)),
        Some(path) if !path.is_file() => Err(unreadable("--replay", &path)),
        Some(path) => Ok(Source::Replay(Some(path))),
        None => match kubeconfig {
            Some(path) if !path.is_file() => Err(unreadable("--kubeconfig", &path)),
            kubeconfig => Ok(Source::Kube {
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
        retention: args.archive_retention.0,
        max_bytes: args.archive_max_bytes.map(|b| b.0),
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

fn alerting_config(args: &Args) -> Result<Option<AlertingConfig>, InvalidConfig> {
    if args.alertmanager_url.is_empty() {
        return Ok(None);
    }
    let mut alertmanagers = Vec::new();
    for raw in &args.alertmanager_url {
        let mut url = reqwest::Url::parse(raw.trim())
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
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
        alertmanagers.push((name.as_str().trim_end_matches('/').to_owned(), url));
    }
    let mut static_labels = std::collections::BTreeMap::new();
    for label in &args.alert_label {
        let (name, value) = label
            .split_once('=')
            .filter(|(n, _)| is_label_name(n))
            .ok_or_else(|| {
                invalid(
                    "--alert-label",
                    format!("`{label}` is not NAME=VALUE with a valid label name"),
                )
            })?;
        static_labels.insert(name.to_owned(), value.to_owned());
    }
    let external_url = match &args.external_url {
        Some(u) => {
            reqwest::Url::parse(u)
                .ok()
                .filter(|p| matches!(p.scheme(), "http" | "https"))
                .ok_or_else(|| invalid("--external-url", format!("`{u}` is not an http(s) URL")))?;
            u.trim_end_matches('/').to_owned()
        }
        None => format!("http://{}", args.listen),
    };
    if args.alert_resolve_after.0 < Duration::from_secs(1) {
        return Err(invalid("--alert-resolve-after", "must be at least 1s"));
    }
    if args.alert_resend_interval.0 < Duration::from_millis(100) {
        return Err(invalid("--alert-resend-interval", "must be at least 100ms"));
    }
    Ok(Some(AlertingConfig {
        alertmanagers,
        settings: AlertSettings {
            resolve_after: args.alert_resolve_after.0,
            resend_interval: args.alert_resend_interval.0,
            static_labels,
            external_url,
        },
        queue_size: args.alert_queue_size.get() as usize,
    }))
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
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5s",
            "1.5h",
            "99999999999999999999d",
            "5 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn defaults() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9102".parse().unwrap());
        assert_eq!(c.events_api, EventsApi::EventsV1);
        assert!(c.namespaces.is_empty());
        assert_eq!(
            c.source,
            Source::Kube {
                kubeconfig: None,
                context: None
            }
        );
    }

    #[test]
    fn namespaces_repeat_and_split() {
        let c = parse(&["--namespace", "a,b", "--namespace", "c", "--namespace", "a"]).unwrap();
        assert_eq!(c.namespaces, ["a", "b", "c"]);
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
            .map(|(n, u)| (n.as_str(), u.as_str()))
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
        assert_eq!(a.settings.static_labels["cluster"], "prod");
        assert_eq!(a.settings.external_url, "http://0.0.0.0:9102");
        assert_eq!(a.settings.resolve_after, Duration::from_secs(900));
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
    fn byte_sizes() {
        assert_eq!("10GiB".parse(), Ok(ByteSize(10 << 30)));
        assert_eq!("2GB".parse(), Ok(ByteSize(2_000_000_000)));
        assert_eq!("4096".parse(), Ok(ByteSize(4096)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn stdin_replay() {
        assert_eq!(
            parse(&["--replay", "-"]).unwrap().source,
            Source::Replay(None)
        );
    }
}
