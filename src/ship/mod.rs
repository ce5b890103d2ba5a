//! Shipping to ClickHouse: the [`Shipper`] task reads the archive's outbox (records written
//! since they were last shipped), posts them in batches over ClickHouse's HTTP interface, and
//! removes from the outbox exactly what ClickHouse acknowledged. It only reads the archive and
//! writes its outbox progress: the watch, the metrics and the alerts never wait for it.
//!
//! Delivery is at least once and shows exactly once: a crash after ClickHouse took a batch but
//! before the outbox forgot it sends the batch again, and the table (ReplacingMergeTree keyed by
//! cluster and uid, versioned by count, see [`row::create_table`]) keeps one row of each, as
//! readers see it with `FINAL`.

pub mod history;
pub mod row;

use std::{
    fmt,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, Url};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    archive::{Archive, ArchiveError},
    event::micros,
    metrics::ClickHouseMetrics,
    util::backoff::Backoff,
};

/// Rows per INSERT at most: large enough that a backlog drains at 150,000 rows a second and
/// ClickHouse makes and merges few parts (on one 2-core machine, batches of 5,000 drained at
/// 100,000/s and slowed the pipeline sharing the cores more), small enough that a body (~600
/// bytes a row, ~12 MB) is quick to retry.
pub const BATCH_ROWS: usize = 20_000;

/// How often an idle shipper looks at the outbox: a record reaches ClickHouse about this long
/// after its commit.
const POLL: Duration = Duration::from_secs(1);

/// How often partitions past the retention are dropped.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);

/// One request's time limit: an INSERT of a full batch takes well under a second on a healthy
/// server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and what to ship.
#[derive(Clone)]
pub struct ShipSettings {
    /// ClickHouse's HTTP endpoint, without credentials.
    pub endpoint: Url,
    /// From the URL's userinfo; sent as `X-ClickHouse-User` / `X-ClickHouse-Key`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// Plain identifiers (checked by the config): they are written into SQL.
    pub database: String,
    pub table: String,
    /// This cluster's name, a column of every row.
    pub cluster: String,
    /// Partitions (days of first occurrence) older than this are dropped.
    pub retention: Duration,
}

impl fmt::Debug for ShipSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShipSettings")
            .field("endpoint", &self.endpoint.as_str())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("table", &self.table)
            .field("cluster", &self.cluster)
            .field("retention", &self.retention)
            .finish()
    }
}

/// Why a request to ClickHouse (or the outbox around it) failed.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("cannot connect to ClickHouse: {0}")]
    ConnectFailed(#[source] reqwest::Error),
    #[error("ClickHouse did not answer in time: {0}")]
    TimedOut(#[source] reqwest::Error),
    #[error("request to ClickHouse failed: {0}")]
    RequestFailed(#[source] reqwest::Error),
    #[error("ClickHouse refused the request ({status}): {body}")]
    Refused { status: StatusCode, body: String },
    #[error("ClickHouse answered rows this exporter cannot read: {detail}")]
    Unreadable { detail: String },
    #[error(transparent)]
    ArchiveFailed(#[from] ArchiveError),
    #[error("archive task failed: {0}")]
    TaskFailed(#[from] tokio::task::JoinError),
}

impl ShipError {
    /// A bounded label value for `clickhouse_batches_failed_total{reason}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConnectFailed(_) => "connect",
            Self::TimedOut(_) => "timeout",
            Self::RequestFailed(_) | Self::Unreadable { .. } => "other",
            Self::Refused { status, .. } if status.is_client_error() => "status_4xx",
            Self::Refused { .. } => "status_5xx",
            Self::ArchiveFailed(_) | Self::TaskFailed(_) => "archive",
        }
    }

    /// Whether a prompt retry may succeed. A refusal that will not change by itself (bad
    /// credentials, a missing database) is retried slowly instead: data is never dropped.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Refused { status, .. } => {
                status.is_server_error()
                    || *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => true,
        }
    }

    fn from_reqwest(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::TimedOut(e)
        } else if e.is_connect() {
            Self::ConnectFailed(e)
        } else {
            Self::RequestFailed(e)
        }
    }
}

pub type Result<T, E = ShipError> = std::result::Result<T, E>;

/// ClickHouse's HTTP interface.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    settings: ShipSettings,
}

impl Client {
    pub fn new(settings: ShipSettings) -> Result<Self, reqwest::Error> {
        crate::util::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self { http, settings })
    }

    /// Runs `query`, with `data` as its input (an INSERT's rows); returns the answer's text.
    pub async fn execute(&self, query: &str, data: Vec<u8>) -> Result<String> {
        let mut url = self.settings.endpoint.clone();
        // Without data the statement is the body: 18.16 refuses a POST without a length.
        let body = if data.is_empty() {
            query.as_bytes().to_vec()
        } else {
            url.query_pairs_mut().append_pair("query", query);
            data
        };
        let mut request = self.http.post(url).body(body);
        if let Some(user) = &self.settings.user {
            request = request.header("X-ClickHouse-User", user);
        }
        if let Some(password) = &self.settings.password {
            request = request.header("X-ClickHouse-Key", password);
        }
        let response = request.send().await.map_err(ShipError::from_reqwest)?;
        let status = response.status();
        let text = response.text().await.map_err(ShipError::from_reqwest)?;
        if status.is_success() {
            Ok(text)
        } else {
            Err(ShipError::Refused {
                status,
                body: text.trim().chars().take(500).collect(),
            })
        }
    }

    /// `db`.`table`, quoted.
    fn table(&self) -> String {
        format!("`{}`.`{}`", self.settings.database, self.settings.table)
    }
}

/// What one shipping step did.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// A full batch went: more may wait.
    More,
    /// The outbox is drained (or held less than a batch).
    Idle,
}

/// The task that ships the outbox.
pub struct Shipper {
    archive: Archive,
    client: Client,
    metrics: ClickHouseMetrics,
    table_ready: bool,
    next_retention: Instant,
    /// The failure last logged: a new kind of failure is logged, a repeated one only counted.
    failing: Option<String>,
}

impl Shipper {
    pub fn new(
        archive: Archive,
        settings: ShipSettings,
        metrics: ClickHouseMetrics,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            archive,
            client: Client::new(settings)?,
            metrics,
            table_ready: false,
            next_retention: Instant::now(),
            failing: None,
        })
    }

    /// Ships until `shutdown`. Failures are retried with backoff, for ever: the outbox keeps
    /// every record until ClickHouse has it (or local retention deletes it).
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Connection errors and 5xx: soon. A refusal (credentials, schema): slowly.
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut slow = Backoff::new(Duration::from_secs(10), Duration::from_secs(300));
        loop {
            let wait = match self.step().await {
                Ok(progress) => {
                    if let Some(was) = self.failing.take() {
                        info!(was = %was, "Shipping to ClickHouse recovered.");
                    }
                    backoff.reset();
                    slow.reset();
                    match progress {
                        Progress::More => Duration::ZERO,
                        Progress::Idle => POLL,
                    }
                }
                Err(e) => {
                    self.metrics.failed(e.kind());
                    let delay = if e.is_retryable() {
                        backoff.next_delay()
                    } else {
                        slow.next_delay()
                    };
                    let what = failure_class(&e);
                    if self.failing.as_deref() != Some(what.as_str()) {
                        warn!(error = %e, retry_in = ?delay, "Shipping to ClickHouse failed; records wait in the archive.");
                        self.failing = Some(what);
                    }
                    delay
                }
            };
            self.report_outbox().await;
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Creates the table once, drops old partitions now and then, ships one batch.
    async fn step(&mut self) -> Result<Progress> {
        if !self.table_ready {
            let ddl =
                row::create_table(&self.client.settings.database, &self.client.settings.table);
            self.client.execute(&ddl, Vec::new()).await?;
            self.table_ready = true;
            info!(table = %self.client.table(), "ClickHouse table ready.");
        }
        if Instant::now() >= self.next_retention {
            // A failed drop is retried at the next interval; shipping goes on.
            if let Err(e) = self.drop_old_partitions().await {
                self.metrics.failed(e.kind());
                warn!(error = %e, "Dropping old ClickHouse partitions failed.");
            }
            self.next_retention = Instant::now() + RETENTION_INTERVAL;
        }
        self.ship_batch().await
    }

    async fn ship_batch(&mut self) -> Result<Progress> {
        let cluster = self.client.settings.cluster.clone();
        // A record first seen before the retention would land in a partition that is, or will
        // be, dropped: it is acknowledged without being sent.
        let oldest = crate::event::micros(retention_cutoff(self.client.settings.retention));
        let archive = self.archive.clone();
        let (read, body) = tokio::task::spawn_blocking(move || {
            let mut body = Vec::new();
            let read = archive.outbox_read(BATCH_ROWS, |r| {
                if r.first_seen_us >= oldest {
                    row::write_row(&cluster, r, &mut body);
                }
            })?;
            Ok::<_, ShipError>((read, body))
        })
        .await??;
        if read.is_empty() {
            return Ok(Progress::Idle);
        }
        let full = read.len() >= BATCH_ROWS;
        if !body.is_empty() {
            let insert = format!(
                "INSERT INTO {} ({}) FORMAT RowBinary",
                self.client.table(),
                row::COLUMNS
            );
            self.client.execute(&insert, body).await?;
        }
        let archive = self.archive.clone();
        let shipped = read.len();
        tokio::task::spawn_blocking(move || archive.outbox_ack(&read)).await??;
        self.metrics.shipped(shipped);
        Ok(if full { Progress::More } else { Progress::Idle })
    }

    /// Drops the day partitions before the retention (by day of first occurrence, UTC).
    async fn drop_old_partitions(&self) -> Result<()> {
        let s = &self.client.settings;
        let cutoff_day: u32 = retention_cutoff(s.retention)
            .strftime("%Y%m%d")
            .to_string()
            .parse()
            .expect("a formatted date is digits");
        let listing = format!(
            "SELECT DISTINCT partition FROM system.parts WHERE database = '{}' AND table = '{}' AND active FORMAT TabSeparated",
            s.database, s.table
        );
        let partitions = self.client.execute(&listing, Vec::new()).await?;
        for day in partitions
            .lines()
            .filter_map(|p| p.trim().parse::<u32>().ok())
            .filter(|day| *day < cutoff_day)
        {
            let drop = format!("ALTER TABLE {} DROP PARTITION {day}", self.client.table());
            self.client.execute(&drop, Vec::new()).await?;
            info!(
                partition = day,
                "Dropped a ClickHouse partition past the retention."
            );
        }
        Ok(())
    }

    async fn report_outbox(&self) {
        let archive = self.archive.clone();
        let stats = tokio::task::spawn_blocking(move || archive.outbox_stats()).await;
        if let Ok(Ok(stats)) = stats {
            let now = micros(jiff::Timestamp::now());
            let age = stats
                .oldest_us
                .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1e6);
            self.metrics.outbox(stats.rows, age);
        }
    }
}

/// The start (UTC midnight) of the oldest day partition the retention keeps.
fn retention_cutoff(retention: Duration) -> jiff::Timestamp {
    let cutoff = jiff::Timestamp::now()
        .checked_sub(jiff::SignedDuration::try_from(retention).unwrap_or_default())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    cutoff
        .to_zoned(jiff::tz::TimeZone::UTC)
        .start_of_day()
        .map_or(cutoff, |day| day.timestamp())
}

/// What makes two failures "the same" for logging: the kind, and the status of a refusal.
fn failure_class(e: &ShipError) -> String {
    match e {
        ShipError::Refused { status, .. } => format!("{} {}", e.kind(), status.as_u16()),
        _ => e.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_will_not_change_are_retried_slowly() {
        let refused = |code: u16| ShipError::Refused {
            status: StatusCode::from_u16(code).expect("status"),
            body: String::new(),
        };
        let table = [
            (401, "status_4xx", false),
            (403, "status_4xx", false),
            (404, "status_4xx", false),
            (408, "status_4xx", true),
            (429, "status_4xx", true),
            (500, "status_5xx", true),
            (503, "status_5xx", true),
        ];
        for (code, kind, retryable) in table {
            let e = refused(code);
            assert_eq!((e.kind(), e.is_retryable()), (kind, retryable), "{code}");
            assert!(ClickHouseMetrics::REASONS.contains(&e.kind()));
        }
    }

    #[test]
    fn settings_never_print_the_password() {
        let s = ShipSettings {
            endpoint: "http://ch:8123/".parse().expect("url"),
            user: Some("kee".into()),
            password: Some("s3cret".into()),
            database: "default".into(),
            table: "kube_events".into(),
            cluster: "prod".into(),
            retention: Duration::from_secs(86_400),
        };
        assert!(!format!("{s:?}").contains("s3cret"));
    }
}
