//! A fake Kubernetes API server that speaks the real wire protocol: discovery, paged lists with
//! `continue`, chunked watch streams from a resourceVersion, bookmarks, `timeoutSeconds`, 410
//! Gone after compaction (in the stream, as a real server does), single-object GETs, server-side
//! Tables for kubectl, and Status errors (403 Forbidden per resource). It serves Events (both
//! `v1` and `events.k8s.io/v1` view the same stored objects, converted the way the API server
//! converts them) and the workloads an Event names: pods, replicasets, deployments,
//! statefulsets, daemonsets, jobs and cronjobs, all on one resourceVersion sequence as etcd
//! has. Tests drive it and inject faults through its methods; `objects.rs` builds the objects.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    convert::Infallible,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Query, State},
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};

use table::TableOptions;

/// The two API views of Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    CoreV1,
    EventsV1,
}

/// One resource as the fake serves it at one group/version. Events are served twice (core and
/// events.k8s.io) over one store; every other resource once.
#[derive(Debug)]
pub struct Resource {
    /// The plural the URL and RBAC use: `pods`.
    pub name: &'static str,
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
}

impl Resource {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn is_events(&self) -> bool {
        self.name == "events"
    }

    /// The view of Events this entry serves; only meaningful for events.
    fn events_api(&self) -> Api {
        if self.group == "events.k8s.io" {
            Api::EventsV1
        } else {
            Api::CoreV1
        }
    }
}

const ALL: &[&str] = &["all"];

/// Everything the fake serves, in discovery order.
pub const RESOURCES: &[Resource] = &[
    Resource {
        name: "events",
        group: "",
        version: "v1",
        kind: "Event",
        singular: "event",
        short_names: &["ev"],
        categories: &[],
    },
    Resource {
        name: "events",
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        singular: "event",
        short_names: &["ev"],
        categories: &[],
    },
    Resource {
        name: "pods",
        group: "",
        version: "v1",
        kind: "Pod",
        singular: "pod",
        short_names: &["po"],
        categories: ALL,
    },
    Resource {
        name: "replicasets",
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        singular: "replicaset",
        short_names: &["rs"],
        categories: ALL,
    },
    Resource {
        name: "deployments",
        group: "apps",
        version: "v1",
        kind: "Deployment",
        singular: "deployment",
        short_names: &["deploy"],
        categories: ALL,
    },
    Resource {
        name: "statefulsets",
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
        singular: "statefulset",
        short_names: &["sts"],
        categories: ALL,
    },
    Resource {
        name: "daemonsets",
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
        singular: "daemonset",
        short_names: &["ds"],
        categories: ALL,
    },
    Resource {
        name: "jobs",
        group: "batch",
        version: "v1",
        kind: "Job",
        singular: "job",
        short_names: &[],
        categories: ALL,
    },
    Resource {
        name: "cronjobs",
        group: "batch",
        version: "v1",
        kind: "CronJob",
        singular: "cronjob",
        short_names: &["cj"],
        categories: ALL,
    },
];

/// The resource named `name` (a plural: `pods`); panics on one the fake does not serve, since
/// that is a mistake in the test.
pub fn resource(name: &str) -> &'static Resource {
    RESOURCES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("the fake API server does not serve {name:?}"))
}

/// The groups `/apis` lists, each with its one version.
const GROUPS: &[&str] = &["events.k8s.io", "apps", "batch"];

/// The user a forbidden request is refused for: the exporter's service account in `deploy/`.
const USER: &str = "system:serviceaccount:kube-event-exporter:kube-event-exporter";

/// One request, as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: HashMap<String, String>,
}

/// What a request's path names: `/api/v1/namespaces/shop/pods/web-1` → group "", version "v1",
/// namespace "shop", resource "pods", name "web-1".
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
}

fn target(path: &str) -> Option<Target<'_>> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(*ns), rest),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        [resource] => (*resource, None),
        [resource, name] => (*resource, Some(*name)),
        _ => return None,
    };
    Some(Target {
        group,
        version,
        namespace,
        resource,
        name,
    })
}

impl Request {
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }
    /// A request for Events (either view): list or watch.
    pub fn is_events(&self) -> bool {
        self.path.ends_with("/events")
    }
    /// A list of Events (either view).
    pub fn is_list(&self) -> bool {
        self.is_events() && !self.is_watch()
    }
    /// The resource (plural) the path names, `None` for discovery and other paths.
    pub fn resource(&self) -> Option<&str> {
        target(&self.path).map(|t| t.resource)
    }
    /// The namespace the path names, `None` for cluster-wide requests.
    pub fn namespace(&self) -> Option<&str> {
        target(&self.path).and_then(|t| t.namespace)
    }
    /// The object a single-object GET names.
    pub fn name(&self) -> Option<&str> {
        target(&self.path).and_then(|t| t.name)
    }
    /// A list (not a watch, not a single GET) of `resource`.
    pub fn is_list_of(&self, resource: &str) -> bool {
        self.resource() == Some(resource) && self.name().is_none() && !self.is_watch()
    }
    /// A watch of `resource`.
    pub fn is_watch_of(&self, resource: &str) -> bool {
        self.resource() == Some(resource) && self.name().is_none() && self.is_watch()
    }
    /// A GET of one object of `resource`.
    pub fn is_get_of(&self, resource: &str) -> bool {
        self.resource() == Some(resource) && self.name().is_some()
    }
}

#[derive(Clone, Debug)]
enum Signal {
    Event {
        rv: u64,
        /// The store: a resource's plural.
        resource: &'static str,
        kind: &'static str,
        /// Shared by every watch: a broadcast clones the signal for each receiver.
        object: Arc<Value>,
    },
    /// End every open watch stream normally.
    Close,
    /// Send an in-stream 410 Gone on every open watch, then end it.
    Expire,
}

/// One change, kept for watches that resume from an older resourceVersion.
struct Change {
    rv: u64,
    resource: &'static str,
    kind: &'static str,
    object: Arc<Value>,
}

/// Objects of one resource, stored without apiVersion and kind (events in core/v1 shape), keyed
/// by (namespace, name) like etcd keys.
type Store = BTreeMap<(String, String), Value>;

struct State0 {
    /// One counter for every resource, as etcd has.
    rv: u64,
    objects: HashMap<&'static str, Store>,
    /// Every change, for watches that resume from an older resourceVersion.
    history: Vec<Change>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    /// Status codes for the next requests of a resource, one each.
    fail_next: HashMap<&'static str, VecDeque<u16>>,
    refuse_all: bool,
    hold_lists: bool,
    /// Resources whose next watch stalls.
    stall_next_watch: HashSet<&'static str>,
    /// Resources the user may not list, watch or get.
    forbidden: HashSet<&'static str>,
    bookmark_interval: Duration,
    requests: Vec<Request>,
    next_uid: u64,
}

impl State0 {
    fn store(&mut self, resource: &'static str) -> &mut Store {
        self.objects.entry(resource).or_default()
    }
}

struct Shared {
    state: Mutex<State0>,
    signals: broadcast::Sender<Signal>,
    lists_released: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State0> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The running fake; stopped when dropped.
pub struct FakeApiServer {
    pub addr: SocketAddr,
    /// TokenReviews and SubjectAccessReviews: users, rules, faults.
    pub reviews: Arc<super::fake_reviews::Reviews>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a test says about a new event; the fake fills in the rest as an API server would.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub namespace: String,
    pub kind: String,
    pub object: String,
    pub reason: String,
    pub type_: String,
    pub message: String,
    pub count: u32,
    pub component: String,
    /// For events.k8s.io-native events: count and last time in `series`, not `count`.
    pub series: bool,
    /// How long ago it happened (first and last timestamp).
    pub age: Duration,
}

pub fn new_event(
    namespace: &str,
    kind: &str,
    object: &str,
    reason: &str,
    type_: &str,
    count: u32,
) -> NewEvent {
    NewEvent {
        namespace: namespace.into(),
        kind: kind.into(),
        object: object.into(),
        reason: reason.into(),
        type_: type_.into(),
        message: format!("{reason} on {kind}/{object}"),
        count,
        component: "kubelet".into(),
        series: false,
        age: Duration::ZERO,
    }
}

fn rfc3339_ago(age: Duration) -> String {
    (jiff::Timestamp::now() - age)
        .round(jiff::Unit::Second)
        .expect("rounding to seconds cannot overflow")
        .to_string()
}

fn now_rfc3339() -> String {
    rfc3339_ago(Duration::ZERO)
}

impl FakeApiServer {
    pub async fn start() -> Self {
        let (signals, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: Mutex::new(State0 {
                rv: 1000,
                objects: HashMap::new(),
                history: Vec::new(),
                compacted: 0,
                fail_next: HashMap::new(),
                refuse_all: false,
                hold_lists: false,
                stall_next_watch: HashSet::new(),
                forbidden: HashSet::new(),
                bookmark_interval: Duration::from_secs(1),
                requests: Vec::new(),
                next_uid: 1,
            }),
            signals,
            lists_released: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake API server");
        let addr = listener.local_addr().expect("local addr");
        let reviews = Arc::new(super::fake_reviews::Reviews::default());
        let intercept =
            axum::middleware::from_fn_with_state(reviews.clone(), super::fake_reviews::intercept);
        let app = Router::new()
            .fallback(handle)
            .layer(intercept)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake API server");
        });
        Self {
            addr,
            reviews,
            shared,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (with a token, as a real one would have).
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: fake\n  user:\n    token: test-token\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\ncurrent-context: fake\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    fn commit(&self, st: &mut State0, kind: &'static str, object: Value) -> u64 {
        self.commit_to(st, "events", kind, object)
    }

    /// Stores the change to `resource` at the next resourceVersion, keeps it for resuming
    /// watches and tells the open ones.
    fn commit_to(
        &self,
        st: &mut State0,
        resource: &'static str,
        kind: &'static str,
        mut object: Value,
    ) -> u64 {
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = key_of(&object);
        let object = if kind == "DELETED" {
            st.store(resource).remove(&key);
            Arc::new(object)
        } else {
            let shared = Arc::new(object.clone());
            st.store(resource).insert(key, object);
            shared
        };
        st.history.push(Change {
            rv,
            resource,
            kind,
            object: Arc::clone(&object),
        });
        let _ = self.shared.signals.send(Signal::Event {
            rv,
            resource,
            kind,
            object,
        });
        rv
    }

    /// Creates an Event; returns its name (the key for later updates).
    pub fn create(&self, ev: &NewEvent) -> String {
        let mut st = self.shared.lock();
        let n = st.next_uid;
        st.next_uid += 1;
        let name = format!("{}.{:016x}", ev.object, 0x17f0_0000_0000_0000u64 + n);
        let now = rfc3339_ago(ev.age);
        let mut object = json!({
            "metadata": {
                "name": name, "namespace": ev.namespace, "uid": format!("00000000-0000-4000-8000-{n:012}"),
                "creationTimestamp": now,
                "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1"}]
            },
            "involvedObject": {"kind": ev.kind, "namespace": ev.namespace, "name": ev.object, "apiVersion": "v1",
                               "uid": format!("11111111-0000-4000-8000-{n:012}")},
            "reason": ev.reason, "message": ev.message, "type": ev.type_,
            "source": {"component": ev.component, "host": "node-1"},
            "reportingComponent": ev.component, "reportingInstance": "node-1",
            "eventTime": null,
        });
        if ev.series {
            object["eventTime"] = json!(format!("{}.000000Z", now.trim_end_matches('Z')));
            object["series"] = json!({"count": ev.count, "lastObservedTime": format!("{}.000000Z", now.trim_end_matches('Z'))});
            object["action"] = json!("Binding");
        } else {
            object["count"] = json!(ev.count);
            object["firstTimestamp"] = json!(now);
            object["lastTimestamp"] = json!(now);
        }
        self.commit(&mut st, "ADDED", object);
        name
    }

    fn modify_event(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.shared.lock();
        let mut object = st
            .store("events")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .expect("no such event");
        f(&mut object);
        self.commit(&mut st, "MODIFIED", object);
    }

    /// Stores many events at once, as if they had been created long ago: no watch sees them and
    /// they are not in the watch history (for start-up benchmarks).
    pub fn preload(&self, events: impl IntoIterator<Item = NewEvent>) {
        let mut st = self.shared.lock();
        for ev in events {
            let n = st.next_uid;
            st.next_uid += 1;
            st.rv += 1;
            let name = format!("{}.{:016x}", ev.object, 0x17f0_0000_0000_0000u64 + n);
            let now = rfc3339_ago(ev.age);
            let object = json!({
                "metadata": {"name": name, "namespace": ev.namespace, "uid": format!("00000000-0000-4000-8000-{n:012}"),
                             "resourceVersion": st.rv.to_string(), "creationTimestamp": now},
                "involvedObject": {"kind": ev.kind, "namespace": ev.namespace, "name": ev.object, "apiVersion": "v1"},
                "reason": ev.reason, "message": ev.message, "type": ev.type_,
                "source": {"component": ev.component, "host": "node-1"},
                "count": ev.count, "firstTimestamp": now, "lastTimestamp": now, "eventTime": null,
            });
            st.store("events")
                .insert((ev.namespace.clone(), name), object);
        }
    }

    /// Raises the event's count (and last timestamp), as a recorder does on a repeat.
    pub fn set_count(&self, namespace: &str, name: &str, count: u32) {
        let now = now_rfc3339();
        self.modify_event(namespace, name, |o| {
            if o.get("series").is_some() {
                o["series"] = json!({"count": count, "lastObservedTime": format!("{}.000000Z", now.trim_end_matches('Z'))});
            } else {
                o["count"] = json!(count);
                o["lastTimestamp"] = json!(now);
            }
        });
    }

    /// Gives the event a count no Event can have (a string), as a buggy writer might: lists and
    /// watches serve it, and a client's decoder must cope.
    pub fn corrupt(&self, namespace: &str, name: &str) {
        self.modify_event(namespace, name, |o| o["count"] = json!("many"));
    }

    /// A MODIFIED that changes nothing a user sees (a label): a duplicate delivery.
    pub fn touch(&self, namespace: &str, name: &str) {
        self.modify_event(namespace, name, |o| {
            o["metadata"]["labels"] = json!({"touched": "yes"});
        });
    }

    pub fn delete(&self, namespace: &str, name: &str) {
        let mut st = self.shared.lock();
        let object = st
            .store("events")
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .expect("no such event");
        self.commit(&mut st, "DELETED", object);
    }

    /// Ends every open watch stream cleanly, as an API server does on timeout or restart.
    pub fn close_watches(&self) {
        let _ = self.shared.signals.send(Signal::Close);
    }

    /// Compacts history up to now: open watches get an in-stream 410 Gone, and so does any
    /// watch from an older resourceVersion. A list returns a watchable resourceVersion.
    pub fn expire(&self) {
        let mut st = self.shared.lock();
        st.compacted = st.rv + 1;
        st.history.clear();
        // The next list answers at a resourceVersion at or above the compaction.
        st.rv += 1;
        let _ = self.shared.signals.send(Signal::Expire);
    }

    /// Answers the next event request (list or watch) with this HTTP status.
    pub fn fail_next(&self, status: u16) {
        self.fail_next_of("events", status);
    }

    /// Answers the next request (list, watch or get) of `resource` with this HTTP status.
    pub fn fail_next_of(&self, resource: &str, status: u16) {
        let name = self::resource(resource).name;
        self.shared
            .lock()
            .fail_next
            .entry(name)
            .or_default()
            .push_back(status);
    }

    /// While on, every request for a resource is answered 503 and open watches end.
    pub fn refuse_all(&self, on: bool) {
        self.shared.lock().refuse_all = on;
        if on {
            self.close_watches();
        }
    }

    /// While on, list requests (of every resource) wait.
    pub fn hold_lists(&self, on: bool) {
        self.shared.lock().hold_lists = on;
        if !on {
            self.shared.lists_released.notify_waiters();
        }
    }

    /// The next watch of events answers 200 and then sends nothing, ever.
    pub fn stall_next_watch(&self) {
        self.stall_next_watch_of("events");
    }

    /// The next watch of `resource` answers 200 and then sends nothing, ever.
    pub fn stall_next_watch_of(&self, resource: &str) {
        let name = self::resource(resource).name;
        self.shared.lock().stall_next_watch.insert(name);
    }

    pub fn set_bookmark_interval(&self, every: Duration) {
        self.shared.lock().bookmark_interval = every;
    }

    /// Every request so far, in order: discovery, lists, watches, gets, refused ones.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Creates or replaces (by namespace and name) an object of `resource` (a plural: `pods`,
    /// `deployments`), as a create or an update through the API would: sets
    /// `metadata.resourceVersion`, keeps or sets `metadata.uid` and `creationTimestamp`, drops
    /// `apiVersion` and `kind` (the fake adds them as it serves), and sends ADDED or MODIFIED.
    /// Returns the new resourceVersion.
    pub fn apply(&self, resource: &str, mut object: Value) -> u64 {
        let resource = self::resource(resource).name;
        let mut st = self.shared.lock();
        if let Some(o) = object.as_object_mut() {
            o.remove("apiVersion");
            o.remove("kind");
        }
        let key = key_of(&object);
        assert!(!key.1.is_empty(), "an object needs metadata.name: {object}");
        let old = st.store(resource).get(&key).cloned();
        for field in ["uid", "creationTimestamp"] {
            if object["metadata"].get(field).is_none_or(Value::is_null) {
                let value = match (&old, field) {
                    (Some(old), _) => old["metadata"][field].clone(),
                    (None, "uid") => {
                        let n = st.next_uid;
                        st.next_uid += 1;
                        json!(format!("00000000-0000-4000-a000-{n:012}"))
                    }
                    (None, _) => json!(now_rfc3339()),
                };
                object["metadata"][field] = value;
            }
        }
        let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.commit_to(&mut st, resource, kind, object)
    }

    /// Changes a stored object in place (a status update, a label) and sends MODIFIED. Returns
    /// the new resourceVersion. Panics if there is no such object.
    pub fn modify(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> u64 {
        let resource = self::resource(resource).name;
        let mut st = self.shared.lock();
        let mut object = st
            .store(resource)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("no {resource} {namespace}/{name}"));
        f(&mut object);
        self.commit_to(&mut st, resource, "MODIFIED", object)
    }

    /// Deletes a stored object and sends DELETED with its last state (at the new
    /// resourceVersion, as the API server does). Returns that resourceVersion.
    pub fn remove(&self, resource: &str, namespace: &str, name: &str) -> u64 {
        let resource = self::resource(resource).name;
        let mut st = self.shared.lock();
        let object = st
            .store(resource)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("no {resource} {namespace}/{name}"));
        self.commit_to(&mut st, resource, "DELETED", object)
    }

    /// The stored object, as a GET would show it but without apiVersion and kind.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = self::resource(resource).name;
        self.shared
            .lock()
            .store(resource)
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// While on, every list, watch and get of `resource` (both views, for events) is refused
    /// with 403 Forbidden as RBAC refuses it. Open watches go on, as on a real server (which
    /// authorizes a request when it starts); `close_watches` ends them.
    pub fn forbid(&self, resource: &str, on: bool) {
        let resource = self::resource(resource).name;
        let mut st = self.shared.lock();
        if on {
            st.forbidden.insert(resource);
        } else {
            st.forbidden.remove(resource);
        }
    }

    /// The latest resourceVersion, of any resource.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }
}

fn key_of(object: &Value) -> (String, String) {
    let s = |p: &str| {
        object
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (s("/metadata/namespace"), s("/metadata/name"))
}

/// Renders a stored object in the view's shape, as the API server's conversion does.
fn render(api: Api, object: &Value) -> Value {
    let mut o = object.clone();
    match api {
        Api::CoreV1 => {
            o["apiVersion"] = json!("v1");
            o["kind"] = json!("Event");
            o
        }
        Api::EventsV1 => {
            let get = |k: &str| object.get(k).cloned().unwrap_or(Value::Null);
            let mut out = json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": get("metadata"), "eventTime": get("eventTime"),
                "reason": get("reason"), "type": get("type"), "note": get("message"),
                "regarding": get("involvedObject"),
                "reportingController": get("reportingComponent"), "reportingInstance": get("reportingInstance"),
            });
            for (from, to) in [
                ("series", "series"),
                ("action", "action"),
                ("related", "related"),
                ("source", "deprecatedSource"),
                ("firstTimestamp", "deprecatedFirstTimestamp"),
                ("lastTimestamp", "deprecatedLastTimestamp"),
                ("count", "deprecatedCount"),
            ] {
                if let Some(v) = object.get(from).filter(|v| !v.is_null()) {
                    out[to] = v.clone();
                }
            }
            out
        }
    }
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn status_response(code: u16, reason: &str, message: &str) -> Response {
    let code_ = StatusCode::from_u16(code).expect("valid status");
    (
        code_,
        [(header::CONTENT_TYPE, "application/json")],
        status(code, reason, message).to_string(),
    )
        .into_response()
}

fn json_response(v: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// An object of `res` as a GET or a watch serves it, with apiVersion and kind. (A list leaves
/// them out of its items, as the API server does for built-in types; see `write_item`.)
fn render_object(res: &Resource, object: &Value) -> Value {
    if res.is_events() {
        return render(res.events_api(), object);
    }
    let mut o = object.clone();
    o["apiVersion"] = json!(res.api_version());
    o["kind"] = json!(res.kind);
    o
}

/// A Status naming the resource (and object) it refuses, as the API server's errors do.
fn status_about(
    code: u16,
    reason: &str,
    message: &str,
    res: &Resource,
    name: Option<&str>,
) -> Response {
    let mut body = status(code, reason, message);
    let mut details = json!({"kind": res.name});
    if !res.group.is_empty() {
        details["group"] = json!(res.group);
    }
    if let Some(name) = name {
        details["name"] = json!(name);
    }
    body["details"] = details;
    let code_ = StatusCode::from_u16(code).expect("valid status");
    (
        code_,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The 403 RBAC answers, word for word.
fn forbidden(res: &Resource, verb: &str, namespace: Option<&str>, name: Option<&str>) -> Response {
    // The qualified resource, as `GroupResource` prints it: `deployments.apps`.
    let resource = if res.group.is_empty() {
        res.name.to_owned()
    } else {
        format!("{}.{}", res.name, res.group)
    };
    let subject = match name {
        Some(name) => format!("{resource} {name:?}"),
        None => resource,
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".to_owned(),
    };
    let message = format!(
        "{subject} is forbidden: User {USER:?} cannot {verb} resource {:?} in API group {:?} {scope}",
        res.name, res.group
    );
    status_about(403, "Forbidden", &message, res, name)
}

/// The answer to a discovery path, if `segments` is one.
fn discovery(segments: &[&str]) -> Option<Value> {
    let doc = match segments {
        ["version"] => {
            json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0", "platform": "linux/amd64"})
        }
        ["api"] => json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ["apis"] => {
            let groups: Vec<Value> = GROUPS
                .iter()
                .map(|g| {
                    let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [gv], "preferredVersion": gv})
                })
                .collect();
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        }
        ["api", "v1"] => resource_list("", "v1"),
        ["apis", group, "v1"] if GROUPS.contains(group) => resource_list(group, "v1"),
        _ => return None,
    };
    Some(doc)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let query: HashMap<String, String> = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let path = uri.path().trim_end_matches('/').to_owned();
    let request = Request { path, query };
    shared.lock().requests.push(request.clone());
    if method != Method::GET {
        return status_response(405, "MethodNotAllowed", "the fake serves GET only");
    }
    let segments: Vec<&str> = request.path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(doc) = discovery(&segments) {
        return json_response(&doc);
    }
    if let ["api", "v1", "namespaces", rest @ ..] = segments.as_slice()
        && rest.len() <= 1
    {
        return namespaces(&shared, rest.first().copied());
    }
    let served = target(&request.path).and_then(|t| {
        RESOURCES
            .iter()
            .find(|r| r.group == t.group && r.version == t.version && r.name == t.resource)
            .map(|r| (r, t))
    });
    let Some((res, t)) = served else {
        return status_response(
            404,
            "NotFound",
            &format!(
                "the server could not find the requested resource {}",
                request.path
            ),
        );
    };
    serve(&shared, res, &t, &request, &headers).await
}

/// Answers a list, watch or get of `res`, after the injected faults and RBAC had their say.
async fn serve(
    shared: &Arc<Shared>,
    res: &'static Resource,
    t: &Target<'_>,
    request: &Request,
    headers: &HeaderMap,
) -> Response {
    let verb = match (t.name, request.is_watch()) {
        (Some(_), _) => "get",
        (None, true) => "watch",
        (None, false) => "list",
    };
    let fault = {
        let mut st = shared.lock();
        if st.refuse_all {
            Some(503)
        } else if st.forbidden.contains(res.name) {
            drop(st);
            return forbidden(res, verb, t.namespace, t.name);
        } else {
            st.fail_next.get_mut(res.name).and_then(VecDeque::pop_front)
        }
    };
    if let Some(code) = fault {
        return match code {
            410 => status_response(410, "Expired", "too old resource version"),
            c => status_response(c, "InternalError", "injected fault"),
        };
    }
    // kubectl asks for a server-side Table when it prints columns; Events keep answering with
    // their list, which kubectl prints with its default columns.
    let table = (!res.is_events()).then(|| TableOptions::from(headers, &request.query));
    match (t.name, verb) {
        (Some(name), _) => get(shared, res, t.namespace, name, table.flatten()),
        (None, "watch") => watch(
            shared.clone(),
            res,
            t.namespace.map(str::to_owned),
            &request.query,
        ),
        (None, _) => list(shared, res, t.namespace, &request.query, table.flatten()).await,
    }
}

/// Namespaces, derived from the stored objects (plus the ones every cluster has): kubectl GETs
/// one to tell a missing object from a missing namespace.
fn namespaces(shared: &Arc<Shared>, name: Option<&str>) -> Response {
    let mut names: std::collections::BTreeSet<String> = ["default", "kube-public", "kube-system"]
        .map(str::to_owned)
        .into();
    let rv = {
        let st = shared.lock();
        for store in st.objects.values() {
            names.extend(store.keys().map(|(ns, _)| ns.clone()));
        }
        st.rv
    };
    let namespace = |ns: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": ns, "uid": format!("00000000-0000-4000-b000-{:012}", ns.len()),
                            "resourceVersion": "1", "creationTimestamp": "2025-01-01T00:00:00Z",
                            "labels": {"kubernetes.io/metadata.name": ns}},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    };
    match name {
        Some(ns) if names.contains(ns) => json_response(&namespace(ns)),
        Some(ns) => {
            let mut body = status(404, "NotFound", &format!("namespaces {ns:?} not found"));
            body["details"] = json!({"name": ns, "kind": "namespaces"});
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        None => json_response(&json!({"kind": "NamespaceList", "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()},
            "items": names.iter().map(|n| namespace(n)).collect::<Vec<_>>()})),
    }
}

fn resource_list(group: &str, version: &str) -> Value {
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            let mut entry = json!({"name": r.name, "singularName": r.singular, "namespaced": true, "kind": r.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]});
            if r.is_events() {
                // Exactly what the fake has always announced for events.
                entry["verbs"] = json!(["create", "delete", "get", "list", "patch", "update", "watch"]);
            }
            if !r.short_names.is_empty() {
                entry["shortNames"] = json!(r.short_names);
            }
            if !r.categories.is_empty() {
                entry["categories"] = json!(r.categories);
            }
            entry
        })
        .collect();
    let mut resources = resources;
    if group.is_empty() {
        resources.push(
            json!({"name": "namespaces", "singularName": "namespace", "namespaced": false,
            "kind": "Namespace", "verbs": ["get", "list"], "shortNames": ["ns"]}),
        );
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

fn in_scope(object: &Value, namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            == Some(ns)
    })
}

fn get(
    shared: &Arc<Shared>,
    res: &'static Resource,
    namespace: Option<&str>,
    name: &str,
    table: Option<TableOptions>,
) -> Response {
    let st = shared.lock();
    let found = namespace.and_then(|ns| {
        st.objects
            .get(res.name)?
            .get(&(ns.to_owned(), name.to_owned()))
    });
    match (found, namespace) {
        (Some(object), _) => match table {
            Some(options) => json_response(&table::render(
                res,
                &[object],
                &json!({"resourceVersion": st.rv.to_string()}),
                options,
            )),
            None => json_response(&render_object(res, object)),
        },
        (None, Some(_)) => status_about(
            404,
            "NotFound",
            &format!(
                "{}{} {name:?} not found",
                res.name,
                if res.group.is_empty() {
                    String::new()
                } else {
                    format!(".{}", res.group)
                }
            ),
            res,
            Some(name),
        ),
        (None, None) => status_response(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

async fn list(
    shared: &Arc<Shared>,
    res: &'static Resource,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    table: Option<TableOptions>,
) -> Response {
    loop {
        let released = shared.lists_released.notified();
        if !shared.lock().hold_lists {
            break;
        }
        released.await;
    }
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let st = shared.lock();
    // continue = "<list rv>/<namespace>/<name>" of the last item served.
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let mut parts = token.splitn(3, '/');
            let rv: u64 = parts.next().and_then(|r| r.parse().ok()).unwrap_or(0);
            let key = (
                parts.next().unwrap_or_default().to_owned(),
                parts.next().unwrap_or_default().to_owned(),
            );
            if rv < st.compacted {
                return status_response(
                    410,
                    "Expired",
                    "The provided continue parameter is too old",
                );
            }
            (rv, Some(key))
        }
        None => (st.rv, None),
    };
    let empty = Store::new();
    let store = st.objects.get(res.name).unwrap_or(&empty);
    let mut page: Vec<&Value> = Vec::new();
    let mut next = None;
    let mut last: Option<&(String, String)> = None;
    // Pages continue after the last key served: a range, not a scan from the start.
    let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    let in_range = store
        .range((start, std::ops::Bound::Unbounded))
        .filter(|(_, o)| in_scope(o, namespace));
    for (key, object) in in_range {
        if page.len() == limit {
            let (ns, name) = last.expect("a full page has a last item");
            next = Some(format!("{list_rv}/{ns}/{name}"));
            break;
        }
        page.push(object);
        last = Some(key);
    }
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(token) = next {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(0);
    }
    if let Some(options) = table {
        return json_response(&table::render(res, &page, &metadata, options));
    }
    // Written out as text item by item: a million-event list is the start-up benchmark's
    // load, and cloning every object into a response tree cost more than the exporter's work.
    let mut items = String::new();
    for (i, object) in page.into_iter().enumerate() {
        if i > 0 {
            items.push(',');
        }
        write_item(&mut items, res, object);
    }
    let kind = format!("{}List", res.kind);
    let head =
        json!({"kind": kind, "apiVersion": res.api_version(), "metadata": metadata}).to_string();
    // `{…head…,"items":[…]}`
    let body = format!("{},\"items\":[{items}]}}", &head[..head.len() - 1]);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Appends `object` as a list of `res` serves it. Events: a stored (core/v1) object gets its
/// apiVersion and kind without being copied; the events.k8s.io view is converted. Other
/// resources: without apiVersion and kind, as the API server lists built-in types (clients
/// take them from the list).
fn write_item(out: &mut String, res: &Resource, object: &Value) {
    match (res.is_events(), res.events_api()) {
        (true, Api::CoreV1) => {
            let text = object.to_string();
            out.push_str(r#"{"apiVersion":"v1","kind":"Event""#);
            if text.len() > 2 {
                out.push(',');
                out.push_str(&text[1..]);
            } else {
                out.push('}');
            }
        }
        (true, api @ Api::EventsV1) => out.push_str(&render(api, object).to_string()),
        (false, _) => out.push_str(&object.to_string()),
    }
}

/// One watch line of `object` as `res` serves it, written without copying the object (a Pod is
/// ~6 KB of JSON: the Pod benchmark's thousands of updates a second go through here).
fn watch_line(kind: &str, res: &Resource, object: &Value) -> Bytes {
    if res.is_events() {
        return line(kind, &render(res.events_api(), object));
    }
    let text = object.to_string();
    let mut out = String::with_capacity(text.len() + 96);
    out.push_str(r#"{"type":"#);
    out.push_str(&Value::from(kind).to_string());
    out.push_str(r#","object":{"apiVersion":"#);
    out.push_str(&Value::from(res.api_version()).to_string());
    out.push_str(r#","kind":"#);
    out.push_str(&Value::from(res.kind).to_string());
    if text.len() > 2 {
        out.push(',');
    }
    out.push_str(&text[1..]);
    out.push_str("}\n");
    Bytes::from(out)
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn watch(
    shared: Arc<Shared>,
    res: &'static Resource,
    namespace: Option<String>,
    query: &HashMap<String, String>,
) -> Response {
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    let (backlog, mut signals, stall, expired, bookmark_every) = {
        let mut st = shared.lock();
        let stall = st.stall_next_watch.remove(res.name);
        let expired = from != 0 && from < st.compacted;
        let backlog: Vec<Bytes> = if from == 0 {
            // resourceVersion 0 or none: the current state as ADDED, then changes.
            st.store(res.name)
                .values()
                .filter(|o| in_scope(o, namespace.as_deref()))
                .map(|o| watch_line("ADDED", res, o))
                .collect()
        } else {
            st.history
                .iter()
                .filter(|c| {
                    c.rv > from
                        && c.resource == res.name
                        && in_scope(&c.object, namespace.as_deref())
                })
                .map(|c| watch_line(c.kind, res, &c.object))
                .collect()
        };
        (
            backlog,
            shared.signals.subscribe(),
            stall,
            expired,
            st.bookmark_interval,
        )
    };
    tokio::spawn(async move {
        if stall {
            // Headers went out; the body never comes. Hold the stream open until the client leaves.
            tx.closed().await;
            return;
        }
        if expired {
            let gone = status(410, "Expired", &format!("too old resource version: {from}"));
            let _ = tx.send(line("ERROR", &gone)).await;
            return;
        }
        for l in backlog {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            let out = tokio::select! {
                () = &mut deadline => return,
                () = tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let rv = shared.lock().rv;
                    line("BOOKMARK", &json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rv.to_string()}}))
                }
                signal = signals.recv() => match signal {
                    Ok(Signal::Event { rv, resource, kind, object }) if rv > from && resource == res.name && in_scope(&object, namespace.as_deref()) => watch_line(kind, res, &object),
                    Ok(Signal::Event { .. }) => continue,
                    Ok(Signal::Close) | Err(_) => return,
                    Ok(Signal::Expire) => {
                        let _ = tx.send(line("ERROR", &status(410, "Expired", "too old resource version"))).await;
                        return;
                    }
                },
            };
            if tx.send(out).await.is_err() {
                return;
            }
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for (`Accept:
/// application/json;as=Table;…`) when it prints columns, with the columns the API server's
/// printers give each kind.
mod table {
    use std::collections::HashMap;

    use axum::http::{HeaderMap, header};
    use serde_json::{Value, json};

    use super::{Resource, render_object};

    #[derive(Clone, Copy, Debug)]
    pub enum Include {
        None,
        Metadata,
        Object,
    }

    /// A request for a Table, and what each row carries (`includeObject`).
    #[derive(Clone, Copy, Debug)]
    pub struct TableOptions {
        include: Include,
    }

    impl TableOptions {
        /// `Some` when the client accepts a Table.
        pub fn from(headers: &HeaderMap, query: &HashMap<String, String>) -> Option<Self> {
            let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
            if !accept.split(',').any(|a| a.contains("as=Table")) {
                return None;
            }
            let include = match query.get("includeObject").map(String::as_str) {
                Some("None") => Include::None,
                Some("Object") => Include::Object,
                _ => Include::Metadata,
            };
            Some(Self { include })
        }
    }

    /// `(name, type, format, priority)`: priority 1 columns show with `-o wide`.
    type Column = (&'static str, &'static str, &'static str, u8);

    const NAME: Column = ("Name", "string", "name", 0);
    const AGE: Column = ("Age", "string", "", 0);
    const CONTAINERS: Column = ("Containers", "string", "", 1);
    const IMAGES: Column = ("Images", "string", "", 1);
    const SELECTOR: Column = ("Selector", "string", "", 1);

    fn columns(kind: &str) -> Vec<Column> {
        match kind {
            "Pod" => vec![
                NAME,
                ("Ready", "string", "", 0),
                ("Status", "string", "", 0),
                ("Restarts", "string", "", 0),
                AGE,
                ("IP", "string", "", 1),
                ("Node", "string", "", 1),
                ("Nominated Node", "string", "", 1),
                ("Readiness Gates", "string", "", 1),
            ],
            "Deployment" => vec![
                NAME,
                ("Ready", "string", "", 0),
                ("Up-to-date", "integer", "", 0),
                ("Available", "integer", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            "ReplicaSet" => vec![
                NAME,
                ("Desired", "integer", "", 0),
                ("Current", "integer", "", 0),
                ("Ready", "integer", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            "StatefulSet" => vec![NAME, ("Ready", "string", "", 0), AGE, CONTAINERS, IMAGES],
            "DaemonSet" => vec![
                NAME,
                ("Desired", "integer", "", 0),
                ("Current", "integer", "", 0),
                ("Ready", "integer", "", 0),
                ("Up-to-date", "integer", "", 0),
                ("Available", "integer", "", 0),
                ("Node Selector", "string", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            "Job" => vec![
                NAME,
                ("Status", "string", "", 0),
                ("Completions", "string", "", 0),
                ("Duration", "string", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            "CronJob" => vec![
                NAME,
                ("Schedule", "string", "", 0),
                ("Timezone", "string", "", 0),
                ("Suspend", "boolean", "", 0),
                ("Active", "integer", "", 0),
                ("Last Schedule", "string", "", 0),
                AGE,
                CONTAINERS,
                IMAGES,
                SELECTOR,
            ],
            _ => vec![NAME, AGE],
        }
    }

    pub fn render(
        res: &Resource,
        objects: &[&Value],
        metadata: &Value,
        options: TableOptions,
    ) -> Value {
        let definitions: Vec<Value> = columns(res.kind)
            .into_iter()
            .map(|(name, type_, format, priority)| {
                json!({"name": name, "type": type_, "format": format, "priority": priority,
                       "description": format!("{name} of the {}", res.kind)})
            })
            .collect();
        let rows: Vec<Value> = objects
            .iter()
            .map(|o| {
                let mut row = json!({"cells": cells(res.kind, o)});
                match options.include {
                    Include::None => {}
                    Include::Metadata => {
                        row["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                               "metadata": o["metadata"]});
                    }
                    Include::Object => row["object"] = render_object(res, o),
                }
                row
            })
            .collect();
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
               "columnDefinitions": definitions, "rows": rows})
    }

    fn str_at<'a>(o: &'a Value, pointer: &str) -> &'a str {
        o.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn int_at(o: &Value, pointer: &str) -> i64 {
        o.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
    }

    fn cells(kind: &str, o: &Value) -> Vec<Value> {
        let name = json!(str_at(o, "/metadata/name"));
        let age = json!(age_of(str_at(o, "/metadata/creationTimestamp")));
        let containers = |template: &str| {
            let list = o
                .pointer(&format!("{template}/spec/containers"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let pick = |field: &str| {
                let values: Vec<&str> = list
                    .iter()
                    .filter_map(|c| c.get(field).and_then(Value::as_str))
                    .collect();
                json!(values.join(","))
            };
            (pick("name"), pick("image"))
        };
        let selector = || {
            let labels = o
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            json!(labels)
        };
        match kind {
            "Pod" => pod_cells(o, name, age),
            "Deployment" => {
                let (c, i) = containers("/spec/template");
                let ready = format!(
                    "{}/{}",
                    int_at(o, "/status/readyReplicas"),
                    int_at(o, "/spec/replicas")
                );
                vec![
                    name,
                    json!(ready),
                    json!(int_at(o, "/status/updatedReplicas")),
                    json!(int_at(o, "/status/availableReplicas")),
                    age,
                    c,
                    i,
                    selector(),
                ]
            }
            "ReplicaSet" => {
                let (c, i) = containers("/spec/template");
                vec![
                    name,
                    json!(int_at(o, "/spec/replicas")),
                    json!(int_at(o, "/status/replicas")),
                    json!(int_at(o, "/status/readyReplicas")),
                    age,
                    c,
                    i,
                    selector(),
                ]
            }
            "StatefulSet" => {
                let (c, i) = containers("/spec/template");
                let ready = format!(
                    "{}/{}",
                    int_at(o, "/status/readyReplicas"),
                    int_at(o, "/spec/replicas")
                );
                vec![name, json!(ready), age, c, i]
            }
            "DaemonSet" => {
                let (c, i) = containers("/spec/template");
                let node_selector = o
                    .pointer("/spec/template/spec/nodeSelector")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "<none>".to_owned());
                vec![
                    name,
                    json!(int_at(o, "/status/desiredNumberScheduled")),
                    json!(int_at(o, "/status/currentNumberScheduled")),
                    json!(int_at(o, "/status/numberReady")),
                    json!(int_at(o, "/status/updatedNumberScheduled")),
                    json!(int_at(o, "/status/numberAvailable")),
                    json!(node_selector),
                    age,
                    c,
                    i,
                    selector(),
                ]
            }
            "Job" => {
                let (c, i) = containers("/spec/template");
                let conditions = o
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let has = |t: &str| {
                    conditions
                        .iter()
                        .any(|c| c["type"] == t && c["status"] == "True")
                };
                let status = if has("Complete") {
                    "Complete"
                } else if has("Failed") {
                    "Failed"
                } else {
                    "Running"
                };
                let completions = format!(
                    "{}/{}",
                    int_at(o, "/status/succeeded"),
                    o.pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                );
                let duration = match (
                    parse_time(str_at(o, "/status/startTime")),
                    parse_time(str_at(o, "/status/completionTime")),
                ) {
                    (Ok(start), Ok(end)) => human((end - start).get_seconds()),
                    (Ok(start), Err(_)) => human((jiff::Timestamp::now() - start).get_seconds()),
                    _ => String::new(),
                };
                vec![
                    name,
                    json!(status),
                    json!(completions),
                    json!(duration),
                    age,
                    c,
                    i,
                    selector(),
                ]
            }
            "CronJob" => {
                let (c, i) = containers("/spec/jobTemplate/spec/template");
                let last = match str_at(o, "/status/lastScheduleTime") {
                    "" => "<none>".to_owned(),
                    t => age_of(t),
                };
                let timezone = match str_at(o, "/spec/timeZone") {
                    "" => "<none>",
                    tz => tz,
                };
                let active = o
                    .pointer("/status/active")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                vec![
                    name,
                    json!(str_at(o, "/spec/schedule")),
                    json!(timezone),
                    json!(
                        o.pointer("/spec/suspend")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                    ),
                    json!(active),
                    json!(last),
                    age,
                    c,
                    i,
                    selector(),
                ]
            }
            _ => vec![name, age],
        }
    }

    /// The Pod printer's Ready, Status and Restarts, as `kubectl get pods` shows them.
    fn pod_cells(o: &Value, name: Value, age: Value) -> Vec<Value> {
        let statuses = o
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let total = o
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let ready = statuses.iter().filter(|s| s["ready"] == true).count();
        let mut restarts = 0;
        let mut last_restart: Option<jiff::Timestamp> = None;
        let mut reason = match str_at(o, "/status/reason") {
            "" => str_at(o, "/status/phase").to_owned(),
            r => r.to_owned(),
        };
        for s in statuses.iter().rev() {
            restarts += s["restartCount"].as_i64().unwrap_or(0);
            if let Ok(t) = parse_time(str_at(s, "/lastState/terminated/finishedAt")) {
                last_restart = last_restart.max(Some(t));
            }
            let waiting = str_at(s, "/state/waiting/reason");
            let terminated = str_at(s, "/state/terminated/reason");
            if !waiting.is_empty() {
                waiting.clone_into(&mut reason);
            } else if !terminated.is_empty() {
                terminated.clone_into(&mut reason);
            } else if s.pointer("/state/terminated").is_some() {
                reason = format!("ExitCode:{}", int_at(s, "/state/terminated/exitCode"));
            }
        }
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            "Terminating".clone_into(&mut reason);
        }
        let restarts = match last_restart {
            Some(t) => format!(
                "{restarts} ({} ago)",
                human((jiff::Timestamp::now() - t).get_seconds())
            ),
            None => restarts.to_string(),
        };
        let or_none = |s: &str| {
            if s.is_empty() {
                "<none>".to_owned()
            } else {
                s.to_owned()
            }
        };
        vec![
            name,
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts),
            age,
            json!(or_none(str_at(o, "/status/podIP"))),
            json!(or_none(str_at(o, "/spec/nodeName"))),
            json!("<none>"),
            json!("<none>"),
        ]
    }

    fn parse_time(text: &str) -> Result<jiff::Timestamp, jiff::Error> {
        text.parse()
    }

    fn age_of(timestamp: &str) -> String {
        match parse_time(timestamp) {
            Ok(t) => human((jiff::Timestamp::now() - t).get_seconds()),
            Err(_) => "<unknown>".to_owned(),
        }
    }

    /// A duration as the API server's printers write it (`apimachinery` `HumanDuration`).
    fn human(seconds: i64) -> String {
        let secs = seconds.max(0);
        let (mins, hours, days) = (secs / 60, secs / 3600, secs / 86_400);
        match secs {
            _ if secs < 120 => format!("{secs}s"),
            _ if mins < 10 => match secs % 60 {
                0 => format!("{mins}m"),
                r => format!("{mins}m{r}s"),
            },
            _ if mins < 180 => format!("{mins}m"),
            _ if hours < 8 => match mins % 60 {
                0 => format!("{hours}h"),
                r => format!("{hours}h{r}m"),
            },
            _ if hours < 48 => format!("{hours}h"),
            _ if hours < 192 => match hours % 24 {
                0 => format!("{days}d"),
                r => format!("{days}d{r}h"),
            },
            _ if days < 730 => format!("{days}d"),
            _ => format!("{}y", days / 365),
        }
    }
}
