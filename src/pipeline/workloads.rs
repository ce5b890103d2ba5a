//! Workloads, and the occurrences Kubernetes never writes as Events.
//!
//! From the watches of Pods, ReplicaSets and Jobs the pipeline keeps each object's controller
//! (its owner with `controller: true`) and nothing else, so an event's workload is found by
//! following owners upwards, in memory, never with a request per event. An event about a Pod,
//! ReplicaSet or Job that is not known yet waits until its watch has listed, and then up to
//! [`HOLD`], for it to arrive; then it goes on without a workload. An event that last happened
//! well before the lists ([`LIST_SLACK`]) does not wait: its object existed before the lists,
//! so it is known, or gone (the Events about a Pod outlive it by an hour, and a start lists
//! them all).
//!
//! From Pods' container statuses and Deployments' progress condition it derives
//! `ContainerRestarted`, `ContainerOOMKilled` and `RolloutStuck`: derived events whose counts go
//! through the same ledger as Events. Their ledger entries are pinned (kept while their object
//! exists), and two marks, also ledger entries, remember the last OOM-killed termination and the
//! last stuck revision, so a restart of the exporter neither repeats nor loses one. What an
//! object shows the first time the exporter ever sees it is recorded but not counted: a first
//! start does not alert on last month's restarts.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::Arc,
    time::{Duration, Instant},
};

use jiff::Timestamp;

use super::ledger::Ledger;
use crate::{
    event::{Event, EventType, ObjectRef, Workload},
    source::objects::{Container, Deployment, KubeObject, Pod, Resource, Termination},
    util::hash::{FastMap, stable_hash},
};

/// How long an event about an object its watch has not delivered yet waits for it.
pub const HOLD: Duration = Duration::from_millis(500);

/// How long before the lists' end an event must have last happened for its object, had it
/// still existed, to be in them: the lists' own duration and the clocks' skew.
const LIST_SLACK: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// How long a deleted object's owner is kept: Events about it live an hour after it.
const TOMBSTONE: Duration = Duration::from_secs(2 * 3600);

/// At most this many events wait for their objects; beyond, they go on without a workload.
const MAX_HELD: usize = 100_000;

/// The `source` of derived records.
pub const SOURCE: &str = "kube-event-exporter";

/// Owner chains longer than this are cut (a cycle, or nonsense).
const MAX_DEPTH: usize = 8;

/// The events waiting for one object, and the arrival number of the first.
#[derive(Debug)]
#[allow(clippy::vec_box)]
struct Waiting {
    first: u64,
    events: Vec<Box<Event>>,
}

#[derive(Debug)]
struct Known {
    /// `(kind, name)` of the controller; `None`: the object is its own workload.
    owner: Option<(Box<str>, Box<str>)>,
    /// When the object was deleted; its owner is kept a while for late events.
    deleted: Option<Instant>,
}

fn key(namespace: &str, kind: &str, name: &str) -> u64 {
    stable_hash([namespace, kind, name])
}

/// The watched resource whose objects have `kind`, if any.
fn watched(kind: &str) -> Option<Resource> {
    match kind {
        "Pod" => Some(Resource::Pods),
        "ReplicaSet" => Some(Resource::ReplicaSets),
        "Job" => Some(Resource::Jobs),
        _ => None,
    }
}

/// Which unknown objects an event waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    /// Any of a watched resource: a watch event may bring it in a moment.
    Watched,
    /// Only of a resource still listing.
    Listing,
    Never,
}

fn slot(r: Resource) -> usize {
    match r {
        Resource::Pods => 0,
        Resource::ReplicaSets => 1,
        Resource::Jobs => 2,
        Resource::Deployments => 3,
    }
}

/// What the pipeline knows of workloads. Events stay in the boxes the pipeline owns them in
/// (an alert keeps its box until its batch commits).
#[derive(Debug)]
#[allow(clippy::vec_box)]
pub struct Workloads {
    owners: FastMap<u64, Known>,
    /// Per resource: streams that have not listed yet (`None`: not watched or refused).
    listing: [Option<usize>; 4],
    /// When every watched resource had listed.
    listed_at: Option<Timestamp>,
    /// Events waiting for their object, by object key.
    held: FastMap<u64, Waiting>,
    held_count: usize,
    /// The arrival number of each waiting object's first event; the next one to give.
    arrivals: BTreeSet<u64>,
    next_arrival: u64,
    /// Checkpoints that must wait for the events that arrived before them (those with a lower
    /// arrival number): a restart resumes after a checkpoint, so it must not pass an event that
    /// is not in the archive yet.
    checkpoints: VecDeque<(u64, Arc<str>, String)>,
    /// When each held object's wait ends; `None` while its resource is still listing.
    deadlines: VecDeque<(Instant, u64)>,
    /// Pods seen by this process, by uid key, with a fingerprint of their containers' state:
    /// an update that changes none of it derives nothing.
    pods: FastMap<u64, u64>,
    /// The archive says a previous process watched Pods: an object it never recorded had
    /// nothing to record (no restarts), so what a list shows now is new.
    watched_before: bool,
}

/// What one object update derived: events with the count a never-seen entry starts from, and
/// marks (uid, value).
#[derive(Debug, Default)]
pub struct Derived {
    pub events: Vec<(Box<Event>, u64)>,
    pub marks: Vec<(String, u64)>,
}

impl Workloads {
    /// `streams` streams watch each resource (0: workloads off); `watched_before`: see the
    /// field.
    pub fn new(streams: usize, watched_before: bool) -> Self {
        let listing = if streams == 0 { None } else { Some(streams) };
        Self {
            owners: FastMap::default(),
            listing: [listing; 4],
            listed_at: None,
            held: FastMap::default(),
            held_count: 0,
            arrivals: BTreeSet::new(),
            next_arrival: 0,
            checkpoints: VecDeque::new(),
            deadlines: VecDeque::new(),
            pods: FastMap::default(),
            watched_before,
        }
    }

    /// Objects known (live or recently deleted).
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Events waiting for their objects.
    pub fn held(&self) -> usize {
        self.held_count
    }

    /// Fills in `e`'s workload, or keeps it to wait for its object (returns `None`).
    pub fn attribute(&mut self, mut e: Box<Event>, now: Instant) -> Option<Box<Event>> {
        let r = &e.regarding;
        let ns = if r.namespace.is_empty() {
            &e.namespace
        } else {
            &r.namespace
        };
        let k = key(ns, &r.kind, &r.name);
        if let Some(waiting) = self.held.get_mut(&k) {
            // An update of an event already waiting: it waits behind it, in order.
            waiting.events.push(e);
            self.held_count += 1;
            return None;
        }
        match self.resolve(ns, &r.kind, &r.name) {
            Some(w) => {
                e.workload = w;
                Some(e)
            }
            None if self.held_count < MAX_HELD && !self.listed_after(&e) => {
                // Until its resource has listed, an event waits for the list; then HOLD more.
                let listed = watched(&r.kind).is_some_and(|res| self.listing[slot(res)] == Some(0));
                if listed {
                    self.deadlines.push_back((now + HOLD, k));
                }
                let first = self.next_arrival;
                self.next_arrival += 1;
                self.arrivals.insert(first);
                self.held.insert(
                    k,
                    Waiting {
                        first,
                        events: vec![e],
                    },
                );
                self.held_count += 1;
                None
            }
            None => {
                e.workload = self.resolve_known(ns, &r.kind, &r.name);
                Some(e)
            }
        }
    }

    /// Whether every watched resource listed well after `e` last happened: its objects were
    /// in the lists unless they are gone, so waiting brings nothing.
    fn listed_after(&self, e: &Event) -> bool {
        self.listed_at
            .is_some_and(|at| e.last_seen < at.saturating_sub(LIST_SLACK).unwrap_or(at))
    }

    /// The workload of an object; `None` when an object of the chain is one a watch should
    /// deliver and has not (yet): a Pod seen before its ReplicaSet. [`Self::resolve_known`]
    /// ends the chain there instead.
    fn resolve(&self, namespace: &str, kind: &str, name: &str) -> Option<Workload> {
        self.walk(namespace, kind, name, Wait::Watched)
    }

    /// The workload as far as the owners known now say (the chain ends at an unknown one).
    fn resolve_known(&self, namespace: &str, kind: &str, name: &str) -> Workload {
        self.walk(namespace, kind, name, Wait::Never)
            .unwrap_or_default()
    }

    fn walk(&self, namespace: &str, kind: &str, name: &str, wait: Wait) -> Option<Workload> {
        let (mut kind, mut name) = (kind, name);
        for depth in 0..MAX_DEPTH {
            match self.owners.get(&key(namespace, kind, name)) {
                Some(Known {
                    owner: Some((k, n)),
                    ..
                }) => (kind, name) = (k, n),
                None if self.awaits(kind, name, wait) => return None,
                // A Pod, ReplicaSet or Job the watches do not have (gone, or not watched): its
                // owner is unknown, and so is its workload.
                None if depth == 0 && watched(kind).is_some() => {
                    return Some(Workload::default());
                }
                Some(Known { owner: None, .. }) | None => break,
            }
        }
        Some(Workload {
            kind: kind.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Whether to wait for an unknown object of `kind`.
    fn awaits(&self, kind: &str, name: &str, wait: Wait) -> bool {
        let listing = watched(kind).and_then(|r| self.listing[slot(r)]);
        !name.is_empty()
            && match wait {
                Wait::Watched => listing.is_some(),
                Wait::Listing => listing.is_some_and(|left| left > 0),
                Wait::Never => false,
            }
    }

    /// Whether `e` still waits for an object of its chain, with `wait`.
    fn awaited(&self, e: &Event, wait: Wait) -> bool {
        let r = &e.regarding;
        let ns = if r.namespace.is_empty() {
            &e.namespace
        } else {
            &r.namespace
        };
        self.walk(ns, &r.kind, &r.name, wait).is_none()
    }

    /// Takes in a listed, added or updated object; returns the events that waited for it.
    pub fn applied(&mut self, object: &KubeObject) -> Vec<Box<Event>> {
        let id = object.id();
        if matches!(object, KubeObject::Deployment(_)) && id.owner.is_none() {
            // A Deployment is its own workload: nothing to remember.
            return Vec::new();
        }
        let k = key(&id.namespace, id.kind, &id.name);
        let owner = id
            .owner
            .as_ref()
            .map(|o| (o.kind.as_str(), o.name.as_str()));
        // Owned copies only when the owner is new or changed: most updates of an object keep it.
        let owned = || owner.map(|(kind, name)| (kind.into(), name.into()));
        match self.owners.get_mut(&k) {
            Some(known) => {
                if known.owner.as_ref().map(|(a, b)| (&**a, &**b)) != owner {
                    known.owner = owned();
                }
                known.deleted = None;
            }
            None => {
                self.owners.insert(
                    k,
                    Known {
                        owner: owned(),
                        deleted: None,
                    },
                );
            }
        }
        // Events about this object go on once their whole chain is known; else they wait on
        // for their deadline (a Pod's ReplicaSet may come next).
        match self.held.get(&k).and_then(|w| w.events.first()) {
            Some(first) if !self.awaited(first, Wait::Watched) => self.release(k),
            _ => Vec::new(),
        }
    }

    /// The events waiting for object `k`, their workloads filled in.
    #[allow(clippy::vec_box)]
    fn release(&mut self, k: u64) -> Vec<Box<Event>> {
        let Some(Waiting { first, mut events }) = self.held.remove(&k) else {
            return Vec::new();
        };
        self.arrivals.remove(&first);
        self.held_count -= events.len();
        for e in &mut events {
            let r = &e.regarding;
            let ns = if r.namespace.is_empty() {
                &e.namespace
            } else {
                &r.namespace
            };
            e.workload = self.resolve_known(ns, &r.kind, &r.name);
        }
        events
    }

    /// An object was deleted: its owner stays a while for the Events still to come about it.
    pub fn deleted(&mut self, object: &KubeObject, now: Instant) {
        let id = object.id();
        if let Some(known) = self.owners.get_mut(&key(&id.namespace, id.kind, &id.name)) {
            known.deleted = Some(now);
        }
        if let KubeObject::Pod(p) = object {
            self.pods.remove(&(crate::event::uid_key(&p.id.uid) as u64));
        }
    }

    /// A stream of `resource` has listed (or is refused, `refused`): once all have, what waited
    /// for the lists goes on (an object the lists did not have is gone: the Events about it
    /// outlive it by an hour), unless it still waits for another resource's list.
    pub fn listed(&mut self, resource: Resource, refused: bool) -> Vec<Box<Event>> {
        let s = slot(resource);
        if refused {
            self.listing[s] = None;
        } else if let Some(left) = &mut self.listing[s] {
            *left = left.saturating_sub(1);
            if *left > 0 {
                return Vec::new();
            }
        }
        if self.listed_at.is_none() && self.listing.iter().all(|l| l.is_none_or(|n| n == 0)) {
            self.listed_at = Some(Timestamp::now());
        }
        let waiting: Vec<u64> = self.held.keys().copied().collect();
        let mut released = Vec::new();
        for k in waiting {
            let Some(first) = self.held.get(&k).and_then(|w| w.events.first()) else {
                continue;
            };
            if !self.awaited(first, Wait::Listing) {
                released.extend(self.release(k));
            }
        }
        released
    }

    /// Events whose wait has ended, without a workload; and deleted objects forgotten.
    pub fn expired(&mut self, now: Instant) -> Vec<Box<Event>> {
        let mut released = Vec::new();
        while let Some(&(at, k)) = self.deadlines.front() {
            if at > now {
                break;
            }
            self.deadlines.pop_front();
            released.extend(self.release(k));
        }
        released
    }

    /// Whether the checkpoint of `stream` at `resource_version` may be written now; if not, it
    /// waits for the events that arrived before it (see [`Self::due_checkpoints`]).
    pub fn checkpoint(&mut self, stream: &Arc<str>, resource_version: &str) -> bool {
        if self.arrivals.is_empty() {
            return true;
        }
        self.checkpoints.push_back((
            self.next_arrival,
            stream.clone(),
            resource_version.to_owned(),
        ));
        false
    }

    /// The checkpoints every event before which has gone on.
    pub fn due_checkpoints(&mut self) -> Vec<(Arc<str>, String)> {
        let oldest = self.arrivals.first().copied().unwrap_or(u64::MAX);
        let mut due = Vec::new();
        while self
            .checkpoints
            .front()
            .is_some_and(|(after, ..)| *after <= oldest)
        {
            if let Some((_, stream, rv)) = self.checkpoints.pop_front() {
                due.push((stream, rv));
            }
        }
        due
    }

    /// Forgets objects deleted longer than [`TOMBSTONE`] ago.
    pub fn sweep(&mut self, now: Instant) {
        self.owners.retain(|_, known| {
            known
                .deleted
                .is_none_or(|at| now.saturating_duration_since(at) < TOMBSTONE)
        });
    }

    /// What a Pod's or Deployment's update derives, given what the ledger knows.
    pub fn derive(&mut self, object: &KubeObject, listed: bool, ledger: &Ledger) -> Derived {
        let mut out = Derived::default();
        match object {
            KubeObject::Pod(pod) => {
                let pod_key = crate::event::uid_key(&pod.id.uid) as u64;
                let print = fingerprint(pod);
                let seen = self.pods.insert(pod_key, print);
                if seen == Some(print) {
                    return out;
                }
                // Never seen by any process: what it shows happened before the exporter could.
                let first_sight = listed && seen.is_none() && !self.watched_before;
                let workload = self.resolve_known(&pod.id.namespace, "Pod", &pod.id.name);
                for c in &pod.containers {
                    derive_container(pod, c, first_sight, &workload, ledger, &mut out);
                }
            }
            KubeObject::Deployment(d) => {
                let first_sight = listed && !self.watched_before;
                derive_rollout(d, first_sight, ledger, &mut out);
            }
            KubeObject::Owned(_) => {}
        }
        out
    }
}

/// A cheap digest of what derivation reads of a Pod (in memory only: any hash will do).
fn fingerprint(pod: &Pod) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    for c in &pod.containers {
        c.name.hash(&mut h);
        c.restarts.hash(&mut h);
        for t in [&c.last, &c.current] {
            if let Some(t) = t {
                t.reason.hash(&mut h);
                t.exit_code.hash(&mut h);
                t.finished_at.map(jiff::Timestamp::as_second).hash(&mut h);
            } else {
                h.write_u8(0);
            }
        }
    }
    h.finish()
}

/// The uid of a derived record: one per (object, container, reason).
pub fn derived_uid(object_uid: &str, container: Option<&str>, reason: &str) -> String {
    match container {
        Some(c) => format!("{object_uid}/{c}/{reason}"),
        None => format!("{object_uid}/{reason}"),
    }
}

/// Every ledger uid a deleted object leaves (its derived records and marks).
pub fn derived_uids(object: &KubeObject) -> Vec<String> {
    match object {
        KubeObject::Pod(p) => p
            .containers
            .iter()
            .flat_map(|c| {
                [RESTARTED, OOM_KILLED, OOM_MARK]
                    .map(|reason| derived_uid(&p.id.uid, Some(&c.name), reason))
            })
            .collect(),
        KubeObject::Deployment(d) => [STUCK, STUCK_MARK]
            .map(|reason| derived_uid(&d.id.uid, None, reason))
            .to_vec(),
        KubeObject::Owned(_) => Vec::new(),
    }
}

pub const RESTARTED: &str = "ContainerRestarted";
pub const OOM_KILLED: &str = "ContainerOOMKilled";
pub const STUCK: &str = "RolloutStuck";
/// The mark of the last OOM-killed termination counted: its number (a container's n-th run
/// ends in its n-th termination; `lastState` at restart count R is the R-th).
const OOM_MARK: &str = "ContainerOOMKilled.termination";
/// The mark of the last stuck rollout counted: its revision.
const STUCK_MARK: &str = "RolloutStuck.revision";

fn derived_event(
    id: &crate::source::objects::Identity,
    uid: String,
    reason: &str,
    field_path: String,
    message: String,
    count: u64,
    at: Option<Timestamp>,
) -> Box<Event> {
    let now = Timestamp::now();
    let last_seen = at.unwrap_or(now);
    Box::new(Event {
        name: uid.clone(),
        uid,
        namespace: id.namespace.clone(),
        resource_version: id.resource_version.clone(),
        regarding: ObjectRef {
            kind: id.kind.to_owned(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
            uid: id.uid.clone(),
            api_version: if id.kind == "Pod" { "v1" } else { "apps/v1" }.to_owned(),
            field_path,
        },
        reason: reason.to_owned(),
        type_: EventType::Warning,
        message,
        count,
        first_seen: id.created.unwrap_or(last_seen).min(last_seen),
        last_seen,
        source: SOURCE.to_owned(),
        host: String::new(),
        reporting_instance: String::new(),
        action: String::new(),
        workload: Workload::default(),
    })
}

fn derive_container(
    pod: &Pod,
    c: &Container,
    first_sight: bool,
    workload: &Workload,
    ledger: &Ledger,
    out: &mut Derived,
) {
    let field_path = if c.init {
        format!("spec.initContainers{{{}}}", c.name)
    } else {
        format!("spec.containers{{{}}}", c.name)
    };
    let restarts = c.restarts;
    let restart_uid = derived_uid(&pod.id.uid, Some(&c.name), RESTARTED);
    let before = ledger.count(&restart_uid);
    if restarts > 0 && before.is_none_or(|b| restarts > b) {
        let why = c.last.as_ref().map_or_else(String::new, |t| {
            format!(
                ": exit code {} ({}){}",
                t.exit_code,
                if t.reason.is_empty() {
                    "unknown"
                } else {
                    &t.reason
                },
                t.finished_at
                    .map_or_else(String::new, |at| format!(" at {at}"))
            )
        });
        let message = format!("container {} restarted (restart {restarts}){why}", c.name);
        let at = c.last.as_ref().and_then(|t| t.finished_at);
        let mut e = derived_event(
            &pod.id,
            restart_uid,
            RESTARTED,
            field_path.clone(),
            message,
            restarts,
            at,
        );
        e.host.clone_from(&pod.node);
        e.workload = workload.clone();
        out.events.push((e, if first_sight { restarts } else { 0 }));
    }
    // The newest OOM-killed termination visible: the one before the current run, or the
    // current one of a container that will not run again.
    let oom = |t: &Option<Termination>| t.as_ref().filter(|t| t.reason == "OOMKilled").cloned();
    let candidate = oom(&c.current)
        .filter(|_| pod.never_restarts)
        .map(|t| (restarts + 1, t))
        .or_else(|| oom(&c.last).map(|t| (restarts, t)));
    let Some((number, t)) = candidate else {
        return;
    };
    let mark_uid = derived_uid(&pod.id.uid, Some(&c.name), OOM_MARK);
    let mark = ledger.count(&mark_uid);
    if mark.is_some_and(|m| number <= m) {
        return;
    }
    let oom_uid = derived_uid(&pod.id.uid, Some(&c.name), OOM_KILLED);
    let count = ledger.count(&oom_uid).unwrap_or(0) + 1;
    let message = format!(
        "container {} was OOM-killed (exit code {}), restart {restarts}",
        c.name, t.exit_code
    );
    let mut e = derived_event(
        &pod.id,
        oom_uid,
        OOM_KILLED,
        field_path,
        message,
        count,
        t.finished_at,
    );
    e.host.clone_from(&pod.node);
    e.workload = workload.clone();
    out.events.push((e, if first_sight { count } else { 0 }));
    out.marks.push((mark_uid, number));
}

fn derive_rollout(d: &Deployment, first_sight: bool, ledger: &Ledger, out: &mut Derived) {
    let Some((condition, at)) = &d.stuck else {
        return;
    };
    let mark_uid = derived_uid(&d.id.uid, None, STUCK_MARK);
    if ledger.count(&mark_uid).is_some_and(|m| d.revision <= m) {
        return;
    }
    let uid = derived_uid(&d.id.uid, None, STUCK);
    let count = ledger.count(&uid).unwrap_or(0) + 1;
    let message = format!("rollout of revision {} is stuck: {condition}", d.revision);
    let mut e = derived_event(&d.id, uid, STUCK, String::new(), message, count, *at);
    e.workload = Workload {
        kind: "Deployment".into(),
        name: d.id.name.clone(),
    };
    out.events.push((e, if first_sight { count } else { 0 }));
    out.marks.push((mark_uid, d.revision));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::objects::{Identity, Owner};

    fn owned(kind: &'static str, ns: &str, name: &str, owner: Option<(&str, &str)>) -> KubeObject {
        let id = Identity {
            kind,
            namespace: ns.into(),
            name: name.into(),
            uid: format!("{kind}-{name}"),
            owner: owner.map(|(k, n)| Owner {
                kind: k.into(),
                name: n.into(),
            }),
            ..Identity::default()
        };
        if kind == "Pod" {
            KubeObject::Pod(Pod {
                id,
                ..Pod::default()
            })
        } else {
            KubeObject::Owned(id)
        }
    }

    fn event(kind: &str, name: &str) -> Box<Event> {
        let mut e = crate::archive::record::tests::sample();
        e.regarding.kind = kind.into();
        e.regarding.name = name.into();
        e.regarding.namespace = "shop".into();
        e.workload = Workload::default();
        e.last_seen = Timestamp::now();
        Box::new(e)
    }

    fn listed_all(w: &mut Workloads) {
        for r in Resource::ALL {
            w.listed(r, false);
        }
    }

    #[test]
    fn chains_end_at_the_top_a_cycle_or_a_dangling_owner() {
        let mut w = Workloads::new(1, false);
        listed_all(&mut w);
        let now = Instant::now();
        for o in [
            owned("Pod", "shop", "api-1", Some(("ReplicaSet", "api-7f"))),
            owned("ReplicaSet", "shop", "api-7f", Some(("Deployment", "api"))),
            // A cycle: two ReplicaSets owning each other.
            owned("Pod", "shop", "loop-1", Some(("ReplicaSet", "a"))),
            owned("ReplicaSet", "shop", "a", Some(("ReplicaSet", "b"))),
            owned("ReplicaSet", "shop", "b", Some(("ReplicaSet", "a"))),
            // A dangling owner: a Job whose CronJob is not watched.
            owned("Pod", "shop", "etl-1-x", Some(("Job", "etl-1"))),
            owned("Job", "shop", "etl-1", Some(("CronJob", "etl"))),
        ] {
            w.applied(&o);
        }
        let workload = |w: &mut Workloads, kind, name| {
            w.attribute(event(kind, name), now)
                .map(|e| (e.workload.kind.clone(), e.workload.name.clone()))
        };
        let pair = |k: &str, n: &str| Some((k.to_owned(), n.to_owned()));
        assert_eq!(workload(&mut w, "Pod", "api-1"), pair("Deployment", "api"));
        assert_eq!(
            workload(&mut w, "ReplicaSet", "api-7f"),
            pair("Deployment", "api")
        );
        let looped = workload(&mut w, "Pod", "loop-1").expect("not held");
        assert!(
            looped.0 == "ReplicaSet",
            "a cycle ends, somewhere on it: {looped:?}"
        );
        assert_eq!(workload(&mut w, "Pod", "etl-1-x"), pair("CronJob", "etl"));
        assert_eq!(workload(&mut w, "Node", "node-1"), pair("Node", "node-1"));
    }

    #[test]
    fn an_event_waits_for_its_pod_and_then_goes_on_without_it() {
        let mut w = Workloads::new(1, false);
        let t0 = Instant::now();
        // While the Pods are listing, an unknown Pod's event waits for the list.
        assert!(w.attribute(event("Pod", "api-1"), t0).is_none());
        assert!(w.attribute(event("Pod", "gone"), t0).is_none());
        assert_eq!(w.held(), 2);
        w.listed(Resource::ReplicaSets, false);
        w.listed(Resource::Jobs, false);
        w.applied(&owned("Pod", "shop", "api-1", None));
        // The list has it: its event goes on; the other waits for the end of the list.
        assert_eq!(w.held(), 1);
        let released = w.listed(Resource::Pods, false);
        assert_eq!(released.len(), 1, "the list did not have it: it is gone");
        assert!(
            !released[0].workload.is_known(),
            "a gone Pod's workload is unknown"
        );
        // After the list, an unknown Pod's event waits HOLD for its watch event.
        assert!(w.attribute(event("Pod", "new-1"), t0).is_none());
        assert!(w.expired(t0 + HOLD / 2).is_empty());
        let late = w.expired(t0 + HOLD);
        assert_eq!(late.len(), 1);
        assert_eq!(w.held(), 0);
    }

    /// A start lists the last hour's Events, most of them about Pods long gone: those do not
    /// wait (each would hold its memory for nothing); a recent one may be about a Pod the lists
    /// just missed, and waits.
    #[test]
    fn an_event_from_before_the_lists_does_not_wait_for_its_pod() {
        let mut w = Workloads::new(1, false);
        listed_all(&mut w);
        let t0 = Instant::now();
        let mut old = event("Pod", "gone-1");
        old.last_seen = Timestamp::now() - LIST_SLACK * 2;
        let old = w.attribute(old, t0).expect("not held");
        assert!(!old.workload.is_known());
        let mut recent = event("Pod", "new-1");
        recent.last_seen = Timestamp::now() - LIST_SLACK / 2;
        assert!(w.attribute(recent, t0).is_none(), "held");
        // Its Pod known: the same old event is attributed at once.
        w.applied(&owned("Pod", "shop", "gone-1", Some(("ReplicaSet", "rs"))));
        w.applied(&owned(
            "ReplicaSet",
            "shop",
            "rs",
            Some(("Deployment", "d")),
        ));
        let mut old = event("Pod", "gone-1");
        old.last_seen = Timestamp::now() - LIST_SLACK * 2;
        let old = w.attribute(old, t0).expect("not held");
        assert_eq!(old.workload.name, "d");
    }

    /// A restart resumes after the last checkpoint: one must not pass an event still waiting.
    #[test]
    fn a_checkpoint_waits_for_the_events_before_it() {
        let mut w = Workloads::new(1, false);
        listed_all(&mut w);
        let t0 = Instant::now();
        let stream: Arc<str> = "all namespaces".into();
        assert!(w.checkpoint(&stream, "1"), "nothing waits: at once");
        assert!(w.attribute(event("Pod", "a"), t0).is_none());
        assert!(!w.checkpoint(&stream, "2"));
        assert!(w.attribute(event("Pod", "b"), t0).is_none());
        assert!(!w.checkpoint(&stream, "3"));
        assert!(w.due_checkpoints().is_empty());
        w.applied(&owned("Pod", "shop", "a", None));
        let due: Vec<String> = w.due_checkpoints().into_iter().map(|(_, rv)| rv).collect();
        assert_eq!(due, ["2"], "b still waits: 3 waits for it");
        w.expired(t0 + HOLD);
        let due: Vec<String> = w.due_checkpoints().into_iter().map(|(_, rv)| rv).collect();
        assert_eq!(due, ["3"]);
    }

    #[test]
    fn a_refused_watch_makes_no_event_wait() {
        let mut w = Workloads::new(1, false);
        w.listed(Resource::Pods, true);
        let e = w
            .attribute(event("Pod", "api-1"), Instant::now())
            .expect("not held");
        assert!(
            !e.workload.is_known(),
            "without the Pod watch a Pod's workload is unknown"
        );
        let e = w
            .attribute(event("Node", "node-1"), Instant::now())
            .expect("not held");
        assert_eq!(
            (e.workload.kind.as_str(), e.workload.name.as_str()),
            ("Node", "node-1")
        );
    }
}
