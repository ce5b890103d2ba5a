//! Command line and environment in, one validated, immutable [`Config`] out.
//!
//! Every flag also reads `KEE_<FLAG>`; every check that can fail runs here, before anything
//! starts, so a bad value exits with status 2 and names the flag.

use std::{fmt, net::SocketAddr, num::NonZeroU32, path::PathBuf, str::FromStr, time::Duration};

use clap::{Parser, ValueEnum};

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

    /// New archive records per second per namespace (updates of archived events are never
    /// limited).
    #[arg(
        long,
        env = "KEE_ARCHIVE_NAMESPACE_RATE",
        value_name = "N",
        default_value = "10"
    )]
    pub archive_namespace_rate: NonZeroU32,

    /// New archive records a namespace may write at once, above its rate.
    #[arg(
        long,
        env = "KEE_ARCHIVE_NAMESPACE_BURST",
        value_name = "N",
        default_value = "500"
    )]
    pub archive_namespace_burst: NonZeroU32,

    /// New archive records per second, all namespaces together.
    #[arg(
        long,
        env = "KEE_ARCHIVE_RATE",
        value_name = "N",
        default_value = "200"
    )]
    pub archive_rate: NonZeroU32,

    /// New archive records all namespaces together may write at once, above the rate.
    #[arg(
        long,
        env = "KEE_ARCHIVE_BURST",
        value_name = "N",
        default_value = "5000"
    )]
    pub archive_burst: NonZeroU32,
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
}

/// Where and how events are archived.
#[derive(Clone, Debug)]
pub struct ArchiveConfig {
    pub path: PathBuf,
    pub retention: Duration,
    pub max_bytes: Option<u64>,
    pub limits: crate::archive::limits::ArchiveLimits,
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
        let mut namespaces = Vec::new();
        for ns in args.namespace.iter().map(|n| n.trim()) {
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
        let source = match args.replay {
            Some(path) if path.as_os_str() == "-" => Source::Replay(None),
            Some(path) => {
                if !path.is_file() {
                    return Err(invalid(
                        "--replay",
                        format!("{} is not a readable file", path.display()),
                    ));
                }
                Source::Replay(Some(path))
            }
            None => {
                if let Some(path) = &args.kubeconfig
                    && !path.is_file()
                {
                    return Err(invalid(
                        "--kubeconfig",
                        format!("{} is not a readable file", path.display()),
                    ));
                }
                Source::Kube {
                    kubeconfig: args.kubeconfig,
                    context: args.context,
                }
            }
        };
        if args.watch_timeout.0 < Duration::from_secs(1) {
            return Err(invalid("--watch-timeout", "must be at least 1s"));
        }
        if args.archive_retention.0 < Duration::from_secs(60) {
            return Err(invalid("--archive-retention", "must be at least 1m"));
        }
        if let Some(dir) = args
            .archive_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(invalid(
                "--archive-path",
                format!("directory {} does not exist", dir.display()),
            ));
        }
        if args.archive_path.is_dir() {
            return Err(invalid(
                "--archive-path",
                format!("{} is a directory", args.archive_path.display()),
            ));
        }
        // Below a few MiB redb's own metadata would trip the cap.
        if let Some(ByteSize(max)) = args.archive_max_bytes
            && max < 16 << 20
        {
            return Err(invalid("--archive-max-bytes", "must be at least 16MiB"));
        }
        Ok(Self {
            listen: args.listen,
            source,
            events_api: args.events_api,
            namespaces,
            log_format: args.log_format,
            watch_timeout: args.watch_timeout.0,
            health_failure_threshold: args.health_failure_threshold.0,
            ledger_ttl: args.ledger_ttl.0,
            archive: ArchiveConfig {
                path: args.archive_path,
                retention: args.archive_retention.0,
                max_bytes: args.archive_max_bytes.map(|b| b.0),
                limits: crate::archive::limits::ArchiveLimits {
                    namespace_rate: args.archive_namespace_rate,
                    namespace_burst: args.archive_namespace_burst,
                    global_rate: args.archive_rate,
                    global_burst: args.archive_burst,
                },
            },
        })
    }
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
