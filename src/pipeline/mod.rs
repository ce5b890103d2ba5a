//! The pipeline: source messages in, occurrences out. It turns Event updates into occurrence
//! counts with the [`ledger`], applies the namespace filter and feeds the consumers: the
//! metrics and the archive. It is the only module that knows who consumes occurrences.

pub mod ledger;

use std::{sync::Arc, time::Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::{
    alerting::Alerting,
    archive::writer::{ArchiveSink, Sighting},
    event::{Event, unix_secs},
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
            counters: EventCounters::new(&metrics),
            metrics,
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
                    self.metrics.ledger_size(self.ledger.len());
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
                self.metrics.ledger_size(self.ledger.len());
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
            self.metrics.occurrence_filtered();
            return;
        }
        let decision = self.rules.decide(event);
        if decision.drop {
            self.metrics.occurrence_filtered();
            return;
        }
        let seen = self.ledger.observe(&event.uid, event.count, Instant::now());
        self.metrics.ledger_size(self.ledger.len());
        if seen.occurrences == 0 {
            self.metrics.occurrence_duplicate();
            return;
        }
        self.counters.add(event, seen.occurrences);
        let indexed_at = self.archive.write(Sighting {
            event,
            seq: seen.seq,
            key: seen.key,
            indexed_at: seen.indexed_at,
            seen_at: unix_secs(jiff::Timestamp::now()),
        });
        if indexed_at != seen.indexed_at {
            self.ledger.set_archived(seen.key, indexed_at);
        }
        if let Some(alerting) = &self.alerting {
            if decision.alert {
                alerting.occurrence(event, &decision);
            } else if event.is_warning() {
                self.metrics.alert_skipped_by_rule();
            }
        }
        self.metrics.occurrence_at(event.last_seen);
    }
}
