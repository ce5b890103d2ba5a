//! The pipeline: source messages in, occurrences out. It turns Event updates into occurrence
//! counts with the [`ledger`], applies the namespace filter and feeds the consumers: the
//! metrics and the archive. It is the only module that knows who consumes occurrences.

pub mod ledger;

use std::{sync::Arc, time::Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    alerting::Alerting,
    archive::writer::ArchiveSink,
    event::Event,
    health::Health,
    metrics::{EventCounters, Metrics},
    rules::Rules,
    source::SourceMsg,
};
use ledger::Ledger;

/// How often unseen ledger entries are swept out.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Pipeline {
    rx: mpsc::Receiver<SourceMsg>,
    ledger: Ledger,
    /// Empty: every namespace.
    namespaces: Vec<String>,
    metrics: Arc<Metrics>,
    counters: EventCounters,
    health: Arc<Health>,
    /// Streams that still have to report their initial list; ready at zero.
    unsynced: usize,
    archive: ArchiveSink,
    rules: Rules,
    /// `None`: forwarding off.
    alerting: Option<Arc<Alerting>>,
}

/// The consumers of occurrences besides the metrics.
pub struct Consumers {
    pub archive: ArchiveSink,
    pub rules: Rules,
    pub alerting: Option<Arc<Alerting>>,
}

impl Pipeline {
    pub fn new(
        rx: mpsc::Receiver<SourceMsg>,
        ledger: Ledger,
        namespaces: Vec<String>,
        streams: usize,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        consumers: Consumers,
    ) -> Self {
        Self {
            rx,
            ledger,
            namespaces,
            metrics,
            counters: EventCounters::default(),
            health,
            unsynced: streams,
            archive: consumers.archive,
            rules: consumers.rules,
            alerting: consumers.alerting,
        }
    }

    /// Runs until every source is gone or shutdown.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.handle(msg),
                    None => return Ok(()),
                },
                _ = sweep.tick() => {
                    for seq in self.ledger.sweep(Instant::now()) {
                        self.archive.forget(seq);
                    }
                    self.archive.housekeep();
                    self.metrics.ledger_entries.set(self.ledger.len() as i64);
                }
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    pub fn handle(&mut self, msg: SourceMsg) {
        match msg {
            SourceMsg::Applied(event) => self.apply(&event),
            SourceMsg::Deleted { uid } => {
                if let Some(seq) = self.ledger.forget(&uid) {
                    self.archive.forget(seq);
                }
                self.metrics.ledger_entries.set(self.ledger.len() as i64);
            }
            SourceMsg::Checkpoint {
                stream,
                resource_version,
            } => self.archive.checkpoint(&stream, &resource_version),
            SourceMsg::Synced => {
                self.unsynced = self.unsynced.saturating_sub(1);
                if self.unsynced == 0 {
                    self.health.set_ready();
                }
            }
        }
    }

    fn apply(&mut self, event: &Event) {
        if !self.namespaces.is_empty() && !self.namespaces.contains(&event.namespace) {
            self.metrics.skipped_filtered.inc();
            return;
        }
        let decision = self.rules.decide(event);
        if decision.drop {
            self.metrics.skipped_filtered.inc();
            return;
        }
        let seen = self.ledger.observe(&event.uid, event.count, Instant::now());
        self.metrics.ledger_entries.set(self.ledger.len() as i64);
        if seen.occurrences == 0 {
            self.metrics.skipped_duplicate.inc();
            return;
        }
        self.counters
            .get(&self.metrics.events, event)
            .inc_by(seen.occurrences);
        let now_secs = jiff::Timestamp::now().as_second().unsigned_abs();
        let archived = self
            .archive
            .write(seen.seq, seen.key, event, seen.archived, now_secs);
        if archived != seen.archived {
            self.ledger.set_archived(seen.key, archived);
        }
        if let Some(alerting) = &self.alerting {
            if decision.alert {
                alerting.occurrence(event, &decision);
            } else if event.is_warning() {
                self.metrics.alerting.skipped_rule.inc();
            }
        }
        let last = event.last_seen.as_millisecond() as f64 / 1000.0;
        if last > self.metrics.last_event_timestamp.get() {
            self.metrics.last_event_timestamp.set(last);
        }
    }
}
