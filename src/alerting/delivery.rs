//! Delivery to one Alertmanager: a bounded queue (the oldest alert goes when it overflows,
//! counted) and a task that posts batches to `POST /api/v2/alerts`, retrying connection errors,
//! timeouts, 408, 429 and 5xx with exponential backoff and jitter. Other 4xx are not retried.
//! Each Alertmanager has its own queue and task, so a dead one slows no one else.

use std::{
    collections::{HashSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::PostableAlert;
use crate::{
    metrics::{AlertQueueMetrics, Metrics},
    util::backoff::Backoff,
};

/// Alerts per POST: Alertmanager takes large batches; this bounds one request's size.
const MAX_BATCH: usize = 500;

/// Why a post failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("connection failed: {0}")]
    ConnectFailed(#[source] reqwest::Error),
    #[error("timed out: {0}")]
    TimedOut(#[source] reqwest::Error),
    #[error("answered {status}: {body}")]
    Rejected { status: u16, body: String },
    #[error("request failed: {0}")]
    RequestFailed(#[source] reqwest::Error),
}

impl PostError {
    /// A bounded label value for `alert_post_failures_total{reason}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ConnectFailed(_) => "connect",
            Self::TimedOut(_) => "timeout",
            Self::Rejected { status: 408, .. } => "http_408",
            Self::Rejected { status: 429, .. } => "http_429",
            Self::Rejected { status, .. } if *status >= 500 => "http_5xx",
            Self::Rejected { .. } => "http_4xx",
            Self::RequestFailed(_) => "other",
        }
    }

    /// Connection errors, timeouts, 408, 429 and 5xx may succeed later; other 4xx will not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => matches!(status, 408 | 429) || *status >= 500,
            _ => true,
        }
    }
}

/// The alerts waiting for one Alertmanager.
pub struct DeliveryQueue {
    /// How the Alertmanager is named in metrics and logs.
    label: String,
    alerts: Mutex<VecDeque<Arc<PostableAlert>>>,
    ready: Notify,
    /// At most this many alerts wait; a full queue drops its oldest. Updates of one alert
    /// coalesce when a batch is taken, so this is a bound on distinct pending updates.
    capacity: usize,
    m: AlertQueueMetrics,
}

impl DeliveryQueue {
    pub fn new(label: &str, capacity: usize, metrics: &Metrics) -> Self {
        Self {
            label: label.to_owned(),
            alerts: Mutex::new(VecDeque::new()),
            ready: Notify::new(),
            capacity,
            m: metrics.alert_queue(label),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, VecDeque<Arc<PostableAlert>>> {
        self.alerts.lock()
    }

    /// Queues an alert; never waits.
    pub fn push(&self, alert: Arc<PostableAlert>) {
        let mut q = self.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            self.m.dropped();
        }
        q.push_back(alert);
        self.m.queue_length(q.len());
        drop(q);
        self.ready.notify_one();
    }

    /// Takes up to `max` alerts, the latest update of each.
    pub fn take_batch(&self, max: usize) -> Vec<Arc<PostableAlert>> {
        let mut q = self.lock();
        let mut seen = HashSet::new();
        let mut batch = Vec::new();
        // Newest first, so an alert's latest update wins; then back to queue order.
        let taken: Vec<_> = q.drain(..).collect();
        let mut rest = VecDeque::new();
        for alert in taken.into_iter().rev() {
            if seen.contains(&alert.key) {
                continue;
            }
            seen.insert(alert.key);
            if batch.len() < max {
                batch.push(alert);
            } else {
                rest.push_front(alert);
            }
        }
        *q = rest;
        self.m.queue_length(q.len());
        batch.reverse();
        batch
    }

    /// Puts a failed batch back in front, unless newer updates of the same alerts are queued.
    fn requeue(&self, batch: Vec<Arc<PostableAlert>>) {
        let mut q = self.lock();
        let newer: HashSet<u64> = q.iter().map(|a| a.key).collect();
        for alert in batch.into_iter().rev() {
            if newer.contains(&alert.key) {
                continue;
            }
            if q.len() >= self.capacity {
                self.m.dropped();
                continue;
            }
            q.push_front(alert);
        }
        self.m.queue_length(q.len());
    }
}

/// Posts one Alertmanager's queue.
pub struct Deliverer {
    queue: Arc<DeliveryQueue>,
    endpoint: reqwest::Url,
    client: reqwest::Client,
    backoff: Backoff,
}

impl Deliverer {
    pub fn new(queue: Arc<DeliveryQueue>, endpoint: reqwest::Url, client: reqwest::Client) -> Self {
        Self {
            queue,
            endpoint,
            client,
            // Up to 10 s between tries: quick to recover, one request per 10 s to a dead peer.
            backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let label = self.queue.label.clone();
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.queue.ready.notified() => {}
                () = shutdown.cancelled() => return Ok(()),
            }
            loop {
                let batch = self.queue.take_batch(MAX_BATCH);
                if batch.is_empty() {
                    break;
                }
                let started = Instant::now();
                match self.post(&batch).await {
                    Ok(()) => {
                        self.queue
                            .m
                            .posted(batch.len(), started.elapsed().as_secs_f64());
                        self.backoff.reset();
                        if failing {
                            failing = false;
                            info!(alertmanager = %label, "Alertmanager accepts alerts again.");
                        }
                    }
                    Err(e) => {
                        self.queue.m.post_failed(e.kind());
                        if !failing {
                            failing = true;
                            warn!(alertmanager = %label, error = %e, retry = e.is_retryable(), "Alertmanager post failed.");
                        }
                        if !e.is_retryable() {
                            // The batch itself is wrong; sending it again cannot help.
                            continue;
                        }
                        self.queue.requeue(batch);
                        tokio::select! {
                            () = tokio::time::sleep(self.backoff.next_delay()) => {}
                            () = shutdown.cancelled() => return Ok(()),
                        }
                    }
                }
            }
        }
    }

    async fn post(&self, batch: &[Arc<PostableAlert>]) -> Result<(), PostError> {
        let response = self
            .client
            .post(self.endpoint.clone())
            .json(batch)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    PostError::TimedOut(e)
                } else if e.is_connect() {
                    PostError::ConnectFailed(e)
                } else {
                    PostError::RequestFailed(e)
                }
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(PostError::Rejected {
            status: status.as_u16(),
            body: body.chars().take(200).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn alert(key: u64, count: u64) -> Arc<PostableAlert> {
        Arc::new(PostableAlert {
            labels: Arc::default(),
            annotations: BTreeMap::from([("count", count.to_string())]),
            starts_at: jiff::Timestamp::UNIX_EPOCH,
            ends_at: jiff::Timestamp::UNIX_EPOCH,
            generator_url: Arc::from(""),
            key,
        })
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_it() {
        let m = Metrics::new();
        let q = DeliveryQueue::new("am", 3, &m);
        for k in 0..5 {
            q.push(alert(k, 1));
        }
        assert_eq!(
            m.sample(
                "kube_event_exporter_alerts_dropped_total",
                &[("alertmanager", "am")]
            ),
            2.0
        );
        let keys: Vec<u64> = q.take_batch(10).iter().map(|a| a.key).collect();
        assert_eq!(keys, [2, 3, 4]);
    }

    #[test]
    fn batches_carry_the_latest_update_of_each_alert() {
        let q = DeliveryQueue::new("am", 100, &Metrics::new());
        q.push(alert(1, 1));
        q.push(alert(2, 1));
        q.push(alert(1, 2));
        let batch = q.take_batch(10);
        let got: Vec<(u64, &str)> = batch
            .iter()
            .map(|a| (a.key, a.annotations["count"].as_str()))
            .collect();
        assert_eq!(got, [(2, "1"), (1, "2")]);
        // A failed batch goes back, but not over a newer update.
        q.push(alert(2, 5));
        q.requeue(batch);
        let got: Vec<(u64, String)> = q
            .take_batch(10)
            .iter()
            .map(|a| (a.key, a.annotations["count"].clone()))
            .collect();
        assert_eq!(got, [(1, "2".to_owned()), (2, "5".to_owned())]);
    }

    #[test]
    fn retry_classification() {
        let rejected = |status| PostError::Rejected {
            status,
            body: String::new(),
        };
        for s in [408, 429, 500, 502, 503] {
            assert!(rejected(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 404, 413, 422] {
            assert!(!rejected(s).is_retryable(), "{s}");
        }
        assert_eq!(rejected(503).kind(), "http_5xx");
        assert_eq!(rejected(422).kind(), "http_4xx");
    }
}
