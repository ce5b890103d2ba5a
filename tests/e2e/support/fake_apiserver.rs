//! A fake Kubernetes API server for Events that speaks the real wire protocol: discovery, paged
//! lists with `continue`, chunked watch streams from a resourceVersion, bookmarks,
//! `timeoutSeconds`, 410 Gone after compaction (in the stream, as a real server does), and
//! Status errors. Both `v1` and `events.k8s.io/v1` view the same stored objects, converted the
//! way the API server converts them. Tests drive it and inject faults through its methods.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
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
    http::{Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc};

/// The two API views of Events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    CoreV1,
    EventsV1,
}

/// One request, as the server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub query: HashMap<String, String>,
}

impl Request {
    pub fn is_watch(&self) -> bool {
        self.query
            .get("watch")
            .is_some_and(|w| w == "true" || w == "1")
    }
    pub fn is_events(&self) -> bool {
        self.path.ends_with("/events")
    }
    pub fn is_list(&self) -> bool {
        self.is_events() && !self.is_watch()
    }
}

#[derive(Clone, Debug)]
enum Signal {
    Event {
        rv: u64,
        kind: &'static str,
        object: Value,
    },
    /// End every open watch stream normally.
    Close,
    /// Send an in-stream 410 Gone on every open watch, then end it.
    Expire,
}

struct State0 {
    rv: u64,
    /// Stored in core/v1 shape, keyed by (namespace, name) like etcd keys.
    objects: BTreeMap<(String, String), Value>,
    /// Every change, for watches that resume from an older resourceVersion.
    history: Vec<(u64, &'static str, Value)>,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted: u64,
    /// Status codes for the next event requests, one each.
    fail_next: VecDeque<u16>,
    refuse_all: bool,
    hold_lists: bool,
    stall_next_watch: bool,
    bookmark_interval: Duration,
    requests: Vec<Request>,
    next_uid: u64,
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
                objects: BTreeMap::new(),
                history: Vec::new(),
                compacted: 0,
                fail_next: VecDeque::new(),
                refuse_all: false,
                hold_lists: false,
                stall_next_watch: false,
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

    fn commit(&self, st: &mut State0, kind: &'static str, mut object: Value) -> u64 {
        st.rv += 1;
        let rv = st.rv;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = key_of(&object);
        if kind == "DELETED" {
            st.objects.remove(&key);
        } else {
            st.objects.insert(key, object.clone());
        }
        st.history.push((rv, kind, object.clone()));
        let _ = self.shared.signals.send(Signal::Event { rv, kind, object });
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

    fn modify(&self, namespace: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let mut st = self.shared.lock();
        let mut object = st
            .objects
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
            st.objects.insert((ev.namespace.clone(), name), object);
        }
    }

    /// Raises the event's count (and last timestamp), as a recorder does on a repeat.
    pub fn set_count(&self, namespace: &str, name: &str, count: u32) {
        let now = now_rfc3339();
        self.modify(namespace, name, |o| {
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
        self.modify(namespace, name, |o| o["count"] = json!("many"));
    }

    /// A MODIFIED that changes nothing a user sees (a label): a duplicate delivery.
    pub fn touch(&self, namespace: &str, name: &str) {
        self.modify(namespace, name, |o| {
            o["metadata"]["labels"] = json!({"touched": "yes"});
        });
    }

    pub fn delete(&self, namespace: &str, name: &str) {
        let mut st = self.shared.lock();
        let object = st
            .objects
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
        self.shared.lock().fail_next.push_back(status);
    }

    /// While on, every event request is answered 503 and open watches end.
    pub fn refuse_all(&self, on: bool) {
        self.shared.lock().refuse_all = on;
        if on {
            self.close_watches();
        }
    }

    /// While on, list requests wait.
    pub fn hold_lists(&self, on: bool) {
        self.shared.lock().hold_lists = on;
        if !on {
            self.shared.lists_released.notify_waiters();
        }
    }

    /// The next watch answers 200 and then sends nothing, ever.
    pub fn stall_next_watch(&self) {
        self.shared.lock().stall_next_watch = true;
    }

    pub fn set_bookmark_interval(&self, every: Duration) {
        self.shared.lock().bookmark_interval = every;
    }

    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
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

async fn handle(State(shared): State<Arc<Shared>>, method: Method, uri: Uri) -> Response {
    let query: HashMap<String, String> = Query::try_from_uri(&uri).map(|q| q.0).unwrap_or_default();
    let path = uri.path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let request = Request {
        path: path.clone(),
        query: query.clone(),
    };
    if method != Method::GET {
        return status_response(405, "MethodNotAllowed", "the fake serves GET only");
    }
    let (api, namespace) = match segments.as_slice() {
        ["version"] => {
            return json_response(
                &json!({"major": "1", "minor": "37", "gitVersion": "v1.37.0", "platform": "linux/amd64"}),
            );
        }
        ["api"] => {
            return json_response(&json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}));
        }
        ["apis"] => {
            let gv = json!({"groupVersion": "events.k8s.io/v1", "version": "v1"});
            return json_response(&json!({"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "events.k8s.io", "versions": [gv], "preferredVersion": gv}]}));
        }
        ["api", "v1"] => return json_response(&resource_list("v1")),
        ["apis", "events.k8s.io", "v1"] => {
            return json_response(&resource_list("events.k8s.io/v1"));
        }
        ["api", "v1", "events"] => (Api::CoreV1, None),
        ["api", "v1", "namespaces", ns, "events"] => (Api::CoreV1, Some((*ns).to_owned())),
        ["apis", "events.k8s.io", "v1", "events"] => (Api::EventsV1, None),
        ["apis", "events.k8s.io", "v1", "namespaces", ns, "events"] => {
            (Api::EventsV1, Some((*ns).to_owned()))
        }
        _ => {
            return status_response(
                404,
                "NotFound",
                &format!("the server could not find the requested resource {path}"),
            );
        }
    };
    let fault = {
        let mut st = shared.lock();
        st.requests.push(request.clone());
        if st.refuse_all {
            Some(503)
        } else {
            st.fail_next.pop_front()
        }
    };
    if let Some(code) = fault {
        return match code {
            410 => status_response(410, "Expired", "too old resource version"),
            c => status_response(c, "InternalError", "injected fault"),
        };
    }
    if request.is_watch() {
        watch(shared, api, namespace, &query)
    } else {
        list(&shared, api, namespace.as_deref(), &query).await
    }
}

fn resource_list(group_version: &str) -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": [{"name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                       "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"], "shortNames": ["ev"]}]})
}

fn in_scope(object: &Value, namespace: Option<&str>) -> bool {
    namespace.is_none_or(|ns| {
        object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            == Some(ns)
    })
}

async fn list(
    shared: &Arc<Shared>,
    api: Api,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
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
    // Written out as text item by item: a million-event list is the start-up benchmark's
    // load, and cloning every object into a response tree cost more than the exporter's work.
    let mut items = String::new();
    let mut next = None;
    let mut last: Option<&(String, String)> = None;
    // Pages continue after the last key served: a range, not a scan from the start.
    let start = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
    let in_range = st
        .objects
        .range((start, std::ops::Bound::Unbounded))
        .filter(|(_, o)| in_scope(o, namespace));
    for (served, (key, object)) in in_range.enumerate() {
        if served == limit {
            let (ns, name) = last.expect("a full page has a last item");
            next = Some(format!("{list_rv}/{ns}/{name}"));
            break;
        }
        if served > 0 {
            items.push(',');
        }
        write_item(&mut items, api, object);
        last = Some(key);
    }
    let (api_version, kind) = match api {
        Api::CoreV1 => ("v1", "EventList"),
        Api::EventsV1 => ("events.k8s.io/v1", "EventList"),
    };
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(token) = next {
        metadata["continue"] = json!(token);
        metadata["remainingItemCount"] = json!(0);
    }
    let head = json!({"kind": kind, "apiVersion": api_version, "metadata": metadata}).to_string();
    // `{…head…,"items":[…]}`
    let body = format!("{},\"items\":[{items}]}}", &head[..head.len() - 1]);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Appends `object` as `api` serves it: a stored (core/v1) object gets its apiVersion and kind
/// without being copied; the events.k8s.io view is converted.
fn write_item(out: &mut String, api: Api, object: &Value) {
    match api {
        Api::CoreV1 => {
            let text = object.to_string();
            out.push_str(r#"{"apiVersion":"v1","kind":"Event""#);
            if text.len() > 2 {
                out.push(',');
                out.push_str(&text[1..]);
            } else {
                out.push('}');
            }
        }
        Api::EventsV1 => out.push_str(&render(api, object).to_string()),
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut text = json!({"type": kind, "object": object}).to_string();
    text.push('\n');
    Bytes::from(text)
}

fn watch(
    shared: Arc<Shared>,
    api: Api,
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
        let stall = std::mem::take(&mut st.stall_next_watch);
        let expired = from != 0 && from < st.compacted;
        let backlog: Vec<Bytes> = if from == 0 {
            // resourceVersion 0 or none: the current state as ADDED, then changes.
            st.objects
                .values()
                .filter(|o| in_scope(o, namespace.as_deref()))
                .map(|o| line("ADDED", &render(api, o)))
                .collect()
        } else {
            st.history
                .iter()
                .filter(|(rv, _, o)| *rv > from && in_scope(o, namespace.as_deref()))
                .map(|(_, kind, o)| line(kind, &render(api, o)))
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
                    let api_version = match api { Api::CoreV1 => "v1", Api::EventsV1 => "events.k8s.io/v1" };
                    line("BOOKMARK", &json!({"kind": "Event", "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}}))
                }
                signal = signals.recv() => match signal {
                    Ok(Signal::Event { rv, kind, object }) if rv > from && in_scope(&object, namespace.as_deref()) => line(kind, &render(api, &object)),
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
