//! The pipeline: source messages in, occurrences out. It turns Event updates into occurrence
//! counts with the [`ledger`], applies the namespace filter and feeds the consumers: the
//! metrics, the archive and the alerts. It is the only module that knows who consumes
//! occurrences.
//!
//! An occurrence is written to the archive (its record and ledger entry) at once, but counted
//! in `/metrics` and alerted only once the archive batch that carries it has committed (see
//! [`crate::archive::writer::Durable`]). A process killed before the commit never exposed it,
//! so the next process, which does not find it in the ledger and counts it, counts it once;
//! one killed after the commit exposed it, and the next finds it in the ledger. While the
//! archive cannot commit at all, occurrences are exposed from memory (availability first).

pub mod ledger;
pub mod workloads;

use std::{collections::VecDeque, sync::Arc, time::Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::{
    alerting::Alerting,
    archive::writer::{ArchiveSink, Durable, Sighting},
    event::{Event, unix_secs},
    health::Health,
    metrics::{EventCounters, Metrics},
    rules::{Decision, Rules},
    source::SourceMsg,
};
use ledger::Ledger;
use workloads::{Derived, Workloads};

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
    /// What the archive has made durable, and whether the writer is still there to say so.
    durable: watch::Receiver<Durable>,
    /// The archive cannot commit (last seen in `durable`): occurrences are exposed at once.
    archive_failing: bool,
    writer_alive: bool,
    /// Alerting occurrences waiting for their batch to commit, oldest first.
    alerts_waiting: VecDeque<(u64, Box<Event>, Decision)>,
    /// Every source has synced: ready once this batch is durable, so a ready exporter shows
    /// what its initial list counted.
    ready_at: Option<u64>,
    /// The source can wait (a file): take its next message only when the archive has room,
    /// rather than drop records as `queue_full`.
    wait_for_archive: bool,
    /// Owners of watched objects, events waiting for them, derived occurrences.
    workloads: Workloads,
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
            durable: consumers.archive.durable(),
            archive_failing: false,
            writer_alive: true,
            alerts_waiting: VecDeque::new(),
            ready_at: None,
            wait_for_archive: false,
            workloads: Workloads::new(0, false),
            archive: consumers.archive,
            rules: consumers.rules,
            alerting: consumers.alerting,
        }
    }

    /// Makes the pipeline wait for the archive's room before it takes the next message: for a
    /// source that can wait (a file), so that it never loses records for lack of writer
    /// capacity. A watch cannot wait (the API server would drop it), so it never does.
    #[must_use]
    pub fn waiting_for_archive(mut self) -> Self {
        self.wait_for_archive = true;
        self
    }

    /// Resolves workloads from `streams` watches of each resource (see [`workloads`]);
    /// `watched_before`: a previous process watched Pods (the archive has their checkpoint).
    #[must_use]
    pub fn with_workloads(mut self, streams: usize, watched_before: bool) -> Self {
        self.workloads = Workloads::new(streams, watched_before);
        self
    }

    /// Runs until shutdown. Once every source is gone (a replay that ended) it still exposes
    /// what becomes durable, until the writer is gone too.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        // Events waiting for their objects are let go at most this late after their time.
        let mut hold = tokio::time::interval(workloads::HOLD / 4);
        hold.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut sources = true;
        loop {
            if !sources && !self.writer_alive {
                return Ok(());
            }
            if self.wait_for_archive && self.writer_alive && !self.archive.has_room() {
                tokio::select! {
                    () = self.archive.room() => {}
                    () = shutdown.cancelled() => return Ok(()),
                }
                continue;
            }
            tokio::select! {
                msg = self.rx.recv(), if sources => match msg {
                    Some(msg) => self.handle(msg),
                    None => sources = false,
                },
                changed = self.durable.changed(), if self.writer_alive => {
                    // A writer that is gone (shutdown) makes nothing durable any more.
                    self.writer_alive = changed.is_ok();
                    self.expose();
                }
                _ = hold.tick(), if self.workloads.held() > 0 => {
                    for event in self.workloads.expired(Instant::now()) {
                        self.apply(event);
                    }
                    self.write_due_checkpoints();
                    self.expose();
                }
                _ = sweep.tick() => {
                    self.workloads.sweep(Instant::now());
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
        self.dispatch(msg);
        self.write_due_checkpoints();
        if self.durable.has_changed().unwrap_or(false)
            || self.archive_failing
            || self.ready_at.is_some()
        {
            self.expose();
        }
    }

    /// Writes the checkpoints that waited for events now gone on to the archive.
    fn write_due_checkpoints(&mut self) {
        for (stream, rv) in self.workloads.due_checkpoints() {
            self.archive.checkpoint(&stream, &rv);
        }
    }

    /// Counts and alerts the occurrences whose batch is durable (or all of them while the
    /// archive is failing).
    fn expose(&mut self) {
        let durable = *self.durable.borrow_and_update();
        self.archive_failing = durable.failing;
        let covered = |generation| !self.writer_alive || durable.covers(generation);
        self.counters.expose(covered);
        if self.ready_at.is_some_and(covered) {
            self.ready_at = None;
            self.health.set_ready();
        }
        while let Some((generation, ..)) = self.alerts_waiting.front() {
            if !covered(*generation) {
                break;
            }
            let Some((_, event, decision)) = self.alerts_waiting.pop_front() else {
                break;
            };
            if let Some(alerting) = &self.alerting {
                alerting.occurrence(&event, &decision);
            }
        }
    }

    fn dispatch(&mut self, msg: SourceMsg) {
        match msg {
            SourceMsg::Batch(msgs) => {
                for msg in msgs {
                    self.dispatch(msg);
                }
            }
            SourceMsg::Applied(event) => {
                if let Some(event) = self.workloads.attribute(event, Instant::now()) {
                    self.apply(event);
                }
            }
            SourceMsg::Object { object, listed } => {
                let released = self.workloads.applied(&object);
                let derived = self.workloads.derive(&object, listed, &self.ledger);
                self.apply_derived(derived);
                for event in released {
                    self.apply(event);
                }
            }
            SourceMsg::ObjectDeleted(object) => {
                self.workloads.deleted(&object, Instant::now());
                for uid in workloads::derived_uids(&object) {
                    if let Some(seq) = self.ledger.forget(&uid) {
                        self.archive.forget(seq);
                    }
                }
            }
            SourceMsg::Listed(resource) => {
                for event in self.workloads.listed(resource, false) {
                    self.apply(event);
                }
            }
            SourceMsg::Forbidden(resource) => {
                for event in self.workloads.listed(resource, true) {
                    self.apply(event);
                }
            }
            SourceMsg::Deleted { uid } => {
                if let Some(seq) = self.ledger.forget(&uid) {
                    self.archive.forget(seq);
                }
                self.metrics.ledger_size(self.ledger.len());
            }
            SourceMsg::Checkpoint {
                stream,
                resource_version,
            } => {
                if self.workloads.checkpoint(&stream, &resource_version) {
                    self.archive.checkpoint(&stream, &resource_version);
                }
            }
            SourceMsg::Synced => {
                self.unsynced = self.unsynced.saturating_sub(1);
                if self.unsynced == 0 && !self.health.is_ready() {
                    self.ready_at = Some(self.archive.written_generation());
                    self.archive.flush_soon();
                }
            }
        }
    }

    /// Counts, archives and alerts what one object update derived, as one archive write: its
    /// records, their pinned ledger entries and its marks become durable together.
    fn apply_derived(&mut self, derived: Derived) {
        if derived.events.is_empty() {
            return;
        }
        let now = unix_secs(jiff::Timestamp::now());
        let mut kept = Vec::with_capacity(derived.events.len());
        for (event, baseline) in derived.events {
            let decision = self.rules.decide(&event);
            if decision.drop {
                self.metrics.occurrence_filtered();
                continue;
            }
            let seen = self
                .ledger
                .observe_derived(&event.uid, event.count, baseline);
            kept.push((event, decision, seen));
        }
        let marks: Vec<(u64, u128, u64)> = derived
            .marks
            .iter()
            .map(|(uid, value)| {
                let seen = self.ledger.observe_derived(uid, *value, *value);
                (seen.seq, seen.key, *value)
            })
            .collect();
        let sightings: Vec<Sighting<'_>> = kept
            .iter()
            .map(|(event, _, seen)| Sighting {
                event,
                seq: seen.seq,
                key: seen.key,
                indexed_at: seen.indexed_at,
                seen_at: now,
                pinned: true,
            })
            .collect();
        let written = self.archive.write_all(&sightings, &marks);
        drop(sightings);
        self.metrics.ledger_size(self.ledger.len());
        for ((event, decision, seen), written) in kept.into_iter().zip(written) {
            if written.indexed_at != seen.indexed_at {
                self.ledger.set_archived(seen.key, written.indexed_at);
            }
            self.occurred(event, decision, seen.occurrences, written.generation);
        }
    }

    /// Notes `n` occurrences of `event` in batch `generation`: counted, and alerted as the rules
    /// say, once the batch is durable.
    fn occurred(&mut self, event: Box<Event>, decision: Decision, n: u64, generation: u64) {
        if n == 0 {
            return;
        }
        self.counters.add(&event, n, generation);
        self.metrics.occurrence_at(event.last_seen);
        if self.alerting.is_some() {
            if decision.alert {
                self.alerts_waiting.push_back((generation, event, decision));
                // An alert should not wait for the next interval's commit.
                self.archive.flush_soon();
            } else if event.is_warning() {
                self.metrics.alert_skipped_by_rule();
            }
        }
    }

    /// The event is owned: an alerting occurrence keeps it, without a copy, until its batch
    /// commits.
    fn apply(&mut self, event: Box<Event>) {
        if !self.namespaces.is_empty() && !self.namespaces.contains(&event.namespace) {
            self.metrics.occurrence_filtered();
            return;
        }
        let decision = self.rules.decide(&event);
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
        let written = self.archive.write(Sighting {
            event: &event,
            seq: seen.seq,
            key: seen.key,
            indexed_at: seen.indexed_at,
            seen_at: unix_secs(jiff::Timestamp::now()),
            pinned: false,
        });
        if written.indexed_at != seen.indexed_at {
            self.ledger.set_archived(seen.key, written.indexed_at);
        }
        self.occurred(event, decision, seen.occurrences, written.generation);
    }
}
