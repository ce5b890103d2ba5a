//! Builders of workload objects as a real cluster returns them (labels, annotations,
//! ownerReferences, managedFields, full spec and status), for the fake API server's `apply`.
//! A Pod comes out at 5–6.5 KB, like a real one. Uids are derived from kind, namespace and name, so
//! a test can name an owner's uid before building it ([`uid_for`]); `.uid(…)` overrides.

use std::{
    collections::hash_map::DefaultHasher,
    hash::{Hash, Hasher},
};

use serde_json::{Map, Value, json};

use super::fake_apiserver::FakeApiServer;

/// A stable uid (UUID v4 shaped) for an object: the same kind, namespace and name give the same
/// uid in every run.
pub fn uid_for(kind: &str, namespace: &str, name: &str) -> String {
    let (a, b) = (
        hash((1, kind, namespace, name)),
        hash((2, kind, namespace, name)),
    );
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn hash(value: impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// A ten-character hash in the alphabet the controllers use (`pod-template-hash`, pod suffixes).
pub fn short_hash(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..len)
        .map(|i| ALPHABET[(hash((seed, i)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .expect("rounding to seconds cannot overflow")
        .to_string()
}

fn api_version_of(kind: &str) -> &'static str {
    match kind {
        "ReplicaSet" | "Deployment" | "StatefulSet" | "DaemonSet" => "apps/v1",
        "Job" | "CronJob" => "batch/v1",
        _ => "v1",
    }
}

/// The ownerReference a controller sets on what it creates.
pub fn owner_reference(kind: &str, name: &str, uid: &str) -> Value {
    json!({"apiVersion": api_version_of(kind), "kind": kind, "name": name, "uid": uid,
           "controller": true, "blockOwnerDeletion": true})
}

/// The `fieldsV1` set a field manager owns over `value`, as the API server records it: maps as
/// `f:` keys, list items by their `name` (or `type`, `ip`, `uid`) as `k:` keys.
fn fields_v1(value: &Value) -> Value {
    const ATOMIC: &[&str] = &["containerStatuses", "initContainerStatuses", "sources"];
    let Value::Object(map) = value else {
        return json!({});
    };
    let mut out = Map::new();
    for (k, v) in map {
        let inner = match v {
            // Atomic lists: owned as a whole, as the kubelet owns its container statuses.
            _ if ATOMIC.contains(&k.as_str()) => json!({}),
            Value::Object(m) if !m.is_empty() => {
                let mut f = fields_v1(v);
                f[".".to_owned()] = json!({});
                f
            }
            Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
                let mut f = Map::new();
                for item in items {
                    let key = ["name", "type", "ip", "uid", "key", "containerPort"]
                        .iter()
                        .find_map(|k| item.get(*k).map(|v| format!("k:{{\"{k}\":{v}}}")));
                    if let Some(key) = key {
                        let mut sub = fields_v1(item);
                        sub[".".to_owned()] = json!({});
                        f.insert(key, sub);
                    }
                }
                Value::Object(f)
            }
            _ => json!({}),
        };
        out.insert(format!("f:{k}"), inner);
    }
    Value::Object(out)
}

fn managed(manager: &str, time: &str, fields: &Value, subresource: Option<&str>) -> Value {
    let mut entry = json!({"manager": manager, "operation": "Update", "apiVersion": "v1", "time": time,
                           "fieldsType": "FieldsV1", "fieldsV1": fields});
    if let Some(s) = subresource {
        entry["subresource"] = json!(s);
    }
    entry
}

/// Fills `metadata.managedFields` as a cluster has them: `spec_manager` owns metadata and spec,
/// `status_manager` the status subresource.
fn set_managed_fields(object: &mut Value, spec_manager: &str, status_manager: &str) {
    let time = object["metadata"]["creationTimestamp"]
        .as_str()
        .map_or_else(now, str::to_owned);
    let api_version = object["apiVersion"].as_str().unwrap_or("v1").to_owned();
    let mut meta = Map::new();
    for k in ["labels", "annotations", "ownerReferences", "generateName"] {
        if let Some(v) = object["metadata"].get(k) {
            meta.insert(k.to_owned(), v.clone());
        }
    }
    let spec_fields = fields_v1(&json!({"metadata": meta, "spec": object["spec"]}));
    let status_fields = fields_v1(&json!({"status": object["status"]}));
    let mut entries = vec![
        managed(spec_manager, &time, &spec_fields, None),
        managed(status_manager, &time, &status_fields, Some("status")),
    ];
    for e in &mut entries {
        e["apiVersion"] = json!(api_version);
    }
    object["metadata"]["managedFields"] = json!(entries);
}

/// What every builder shares: the object's metadata. `build` gives the finished JSON (with
/// apiVersion and kind, as `kubectl get -o json` shows an object).
pub trait Builder: Sized {
    /// The object under construction.
    fn object(&mut self) -> &mut Value;
    /// The finished object.
    fn build(self) -> Value;

    fn uid(mut self, uid: &str) -> Self {
        self.object()["metadata"]["uid"] = json!(uid);
        self
    }
    fn label(mut self, key: &str, value: &str) -> Self {
        self.object()["metadata"]["labels"][key] = json!(value);
        self
    }
    fn annotation(mut self, key: &str, value: &str) -> Self {
        self.object()["metadata"]["annotations"][key] = json!(value);
        self
    }
    /// Created at `timestamp` (RFC 3339) instead of now.
    fn created(mut self, timestamp: &str) -> Self {
        self.object()["metadata"]["creationTimestamp"] = json!(timestamp);
        self
    }
    /// Controlled by `kind`/`name` (an ownerReference with controller and blockOwnerDeletion).
    fn owned_by(mut self, kind: &str, name: &str, uid: &str) -> Self {
        self.object()["metadata"]["ownerReferences"] = json!([owner_reference(kind, name, uid)]);
        self
    }
}

fn metadata(kind: &str, namespace: &str, name: &str, app: &str) -> Value {
    json!({
        "name": name, "namespace": namespace, "uid": uid_for(kind, namespace, name),
        "creationTimestamp": now(), "generation": 1,
        "labels": {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "shop", "app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"meta.helm.sh/release-name": app, "meta.helm.sh/release-namespace": namespace},
    })
}

/// A container spec as a chart writes one.
fn container_spec(name: &str, image: &str) -> Value {
    json!({
    "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
    "env": [
        {"name": "LOG_LEVEL", "value": "info"},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
                ],
    "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}},
    "volumeMounts": [
        {"name": "config", "readOnly": true, "mountPath": "/etc/app"},
    ],
    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
        })
}

fn image_for(name: &str) -> String {
    format!("registry.example.com/shop/{name}:1.4.2")
}

/// A pod template for a workload's spec.
fn template(labels: &Value, containers: &[&str], restart_policy: &str) -> Value {
    let containers: Vec<Value> = containers
        .iter()
        .map(|c| container_spec(c, &image_for(c)))
        .collect();
    json!({
        "metadata": {"creationTimestamp": null, "labels": labels},
        "spec": {"containers": containers, "restartPolicy": restart_policy, "terminationGracePeriodSeconds": 30,
                 "dnsPolicy": "ClusterFirst", "securityContext": {}, "schedulerName": "default-scheduler",
                 "volumes": [{"name": "config", "configMap": {"name": "app-config", "defaultMode": 420}}]},
    })
}

// ---------- Pod ----------

#[derive(Clone, Debug)]
struct ContainerState {
    name: String,
    restarts: u32,
    state: Value,
    last_state: Value,
    ready: bool,
    started: bool,
}

/// A Pod; see [`pod`].
#[derive(Clone, Debug)]
pub struct PodBuilder {
    object: Value,
    containers: Vec<ContainerState>,
    init_containers: Vec<ContainerState>,
    phase: Option<String>,
}

/// A running Pod on `node-1` with one container `app` unless `.container(…)` names others.
pub fn pod(namespace: &str, name: &str) -> PodBuilder {
    let app = name.split('-').next().unwrap_or(name);
    let mut meta = metadata("Pod", namespace, name, app);
    meta.as_object_mut()
        .expect("metadata is an object")
        .remove("generation");
    meta["labels"] = json!({"app.kubernetes.io/name": app});
    meta.as_object_mut()
        .expect("metadata is an object")
        .remove("annotations");
    let n = hash(("ip", namespace, name));
    let token_volume = format!("kube-api-access-{}", short_hash(name, 5));
    PodBuilder {
        object: json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {
                "volumes": [
                    {"name": "config", "configMap": {"name": format!("{app}-config"), "defaultMode": 420}},
                    {"name": token_volume, "projected": {"defaultMode": 420, "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                    ]}},
                ],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "serviceAccountName": "default", "serviceAccount": "default", "nodeName": "node-1",
                "securityContext": {}, "schedulerName": "default-scheduler",
                "tolerations": [
                    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                ],
                "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority",
            },
            "status": {
                "hostIP": "10.0.1.12", "hostIPs": [{"ip": "10.0.1.12"}],
                "podIP": format!("10.244.{}.{}", (n >> 8) % 250 + 1, n % 250 + 2),
                "qosClass": "Burstable",
            },
        }),
        containers: Vec::new(),
        init_containers: Vec::new(),
        phase: None,
    }
}

fn running_state(since: &str) -> Value {
    json!({"running": {"startedAt": since}})
}

fn fresh(name: &str, since: &str) -> ContainerState {
    ContainerState {
        name: name.to_owned(),
        restarts: 0,
        state: running_state(since),
        last_state: json!({}),
        ready: true,
        started: true,
    }
}

impl PodBuilder {
    fn created_at(&self) -> String {
        self.object["metadata"]["creationTimestamp"]
            .as_str()
            .map_or_else(now, str::to_owned)
    }

    fn container_mut(&mut self, name: &str) -> &mut ContainerState {
        if let Some(i) = self.init_containers.iter().position(|c| c.name == name) {
            return &mut self.init_containers[i];
        }
        if !self.containers.iter().any(|c| c.name == name) {
            let since = self.created_at();
            self.containers.push(fresh(name, &since));
        }
        self.containers
            .iter_mut()
            .find(|c| c.name == name)
            .expect("just added")
    }

    /// Adds a container (running and ready unless a status helper says otherwise).
    pub fn container(mut self, name: &str) -> Self {
        self.container_mut(name);
        self
    }

    /// Adds an init container, completed (exit 0) as after a normal start.
    pub fn init_container(mut self, name: &str) -> Self {
        let since = self.created_at();
        let mut c = fresh(name, &since);
        c.state = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": since,
                                        "finishedAt": since, "containerID": container_id(name, 0)}});
        c.ready = true;
        c.started = false;
        self.init_containers.push(c);
        self
    }

    pub fn restart_policy(mut self, policy: &str) -> Self {
        self.object["spec"]["restartPolicy"] = json!(policy);
        self
    }

    pub fn node(mut self, node: &str) -> Self {
        self.object["spec"]["nodeName"] = json!(node);
        self
    }

    /// Overrides the phase the containers imply.
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = Some(phase.to_owned());
        self
    }

    /// `status.containerStatuses[container].restartCount`.
    pub fn restarts(mut self, container: &str, n: u32) -> Self {
        self.container_mut(container).restarts = n;
        self
    }

    /// The previous run ended: `lastState.terminated` (`OOMKilled`, 137 …).
    pub fn last_terminated(
        mut self,
        container: &str,
        reason: &str,
        exit_code: i32,
        finished_at: &str,
    ) -> Self {
        let started = self.created_at();
        let c = self.container_mut(container);
        let id = container_id(container, c.restarts.saturating_sub(1));
        c.last_state = json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started,
                                             "finishedAt": finished_at, "containerID": id}});
        self
    }

    /// The current run ended: `state.terminated`, not ready.
    pub fn terminated(
        mut self,
        container: &str,
        reason: &str,
        exit_code: i32,
        finished_at: &str,
    ) -> Self {
        let started = self.created_at();
        let c = self.container_mut(container);
        let id = container_id(container, c.restarts);
        c.state = json!({"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": started,
                                        "finishedAt": finished_at, "containerID": id}});
        c.ready = false;
        c.started = false;
        self
    }

    /// Running (since now) and ready.
    pub fn running(mut self, container: &str) -> Self {
        let c = self.container_mut(container);
        c.state = running_state(&now());
        c.ready = true;
        c.started = true;
        self
    }

    /// Waiting (`CrashLoopBackOff`, `ImagePullBackOff` …), not ready.
    pub fn waiting(mut self, container: &str, reason: &str) -> Self {
        let pod = format!(
            "{}_{}({})",
            self.object["metadata"]["name"].as_str().unwrap_or_default(),
            self.object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default(),
            self.object["metadata"]["uid"].as_str().unwrap_or_default()
        );
        let c = self.container_mut(container);
        let message = match reason {
            "CrashLoopBackOff" => {
                format!("back-off 40s restarting failed container={container} pod={pod}")
            }
            _ => format!("{reason}: see events of pod {pod}"),
        };
        c.state = json!({"waiting": {"reason": reason, "message": message}});
        c.ready = false;
        c.started = false;
        self
    }
}

fn container_id(name: &str, run: u32) -> String {
    format!(
        "containerd://{:016x}{:016x}",
        hash((name, run)),
        hash((run, name))
    )
    .chars()
    .take(77)
    .collect()
}

fn container_status(c: &ContainerState) -> Value {
    let image = image_for(&c.name);
    let mut s = json!({
        "name": c.name, "state": c.state, "lastState": c.last_state, "ready": c.ready,
        "restartCount": c.restarts, "image": image,
        "imageID": format!("{}@sha256:{:016x}{:016x}{:016x}{:016x}", image.split(':').next().unwrap_or_default(),
                           hash((1, &c.name)), hash((2, &c.name)), hash((3, &c.name)), hash((4, &c.name))),
        "started": c.started,
    });
    if c.state.get("waiting").is_none() {
        s["containerID"] = json!(container_id(&c.name, c.restarts));
    }
    s
}

impl Builder for PodBuilder {
    fn object(&mut self) -> &mut Value {
        &mut self.object
    }

    fn build(mut self) -> Value {
        if self.containers.is_empty() {
            self = self.container("app");
        }
        let created = self.created_at();
        let mut o = self.object;
        if let Some(owner) = o["metadata"]["ownerReferences"][0].as_object() {
            let owner_name = owner["name"].as_str().unwrap_or_default();
            if owner["kind"] != "StatefulSet" {
                o["metadata"]["generateName"] = json!(format!("{owner_name}-"));
            }
        }
        let token_volume = o["spec"]["volumes"][1]["name"].clone();
        let specs = |cs: &[ContainerState]| -> Vec<Value> {
            cs.iter()
                .map(|c| {
                    let mut spec = container_spec(&c.name, &image_for(&c.name));
                    spec["volumeMounts"]
                        .as_array_mut()
                        .expect("volumeMounts")
                        .push(json!({"name": token_volume, "readOnly": true,
                                 "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}));
                    spec
                })
                .collect()
        };
        o["spec"]["containers"] = json!(specs(&self.containers));
        if !self.init_containers.is_empty() {
            o["spec"]["initContainers"] = json!(specs(&self.init_containers));
            o["status"]["initContainerStatuses"] =
                self.init_containers.iter().map(container_status).collect();
        }
        o["status"]["containerStatuses"] = self.containers.iter().map(container_status).collect();
        let all_ready = self.containers.iter().all(|c| c.ready);
        let all_done = self
            .containers
            .iter()
            .all(|c| c.state.get("terminated").is_some());
        let phase = self.phase.unwrap_or_else(|| {
            if all_done && o["spec"]["restartPolicy"] != "Always" {
                let ok = self
                    .containers
                    .iter()
                    .all(|c| c.state["terminated"]["exitCode"] == 0);
                if ok { "Succeeded" } else { "Failed" }.to_owned()
            } else {
                "Running".to_owned()
            }
        });
        let unready: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| !c.ready)
            .map(|c| c.name.as_str())
            .collect();
        let condition = |type_: &str, status: bool| {
            let mut c = json!({"type": type_, "status": if status { "True" } else { "False" },
                               "lastProbeTime": null, "lastTransitionTime": created});
            if !status {
                c["reason"] = json!("ContainersNotReady");
                c["message"] = json!(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                ));
            }
            c
        };
        o["status"]["phase"] = json!(phase);
        o["status"]["conditions"] = json!([
            condition("PodReadyToStartContainers", true),
            condition("Initialized", true),
            condition("Ready", all_ready),
            condition("ContainersReady", all_ready),
            condition("PodScheduled", true),
        ]);
        let ip = o["status"]["podIP"].clone();
        o["status"]["podIPs"] = json!([{"ip": ip}]);
        o["status"]["startTime"] = json!(created);
        set_managed_fields(&mut o, "kube-controller-manager", "kubelet");
        o
    }
}

// ---------- workloads ----------

/// A Deployment, ReplicaSet, StatefulSet, DaemonSet, Job or CronJob under construction.
#[derive(Clone, Debug)]
pub struct WorkloadBuilder(Value);

impl Builder for WorkloadBuilder {
    fn object(&mut self) -> &mut Value {
        &mut self.0
    }

    fn build(self) -> Value {
        let mut o = self.0;
        let (spec_manager, status_manager) = match o["kind"].as_str() {
            Some("Deployment" | "StatefulSet" | "DaemonSet" | "CronJob") => {
                ("helm", "kube-controller-manager")
            }
            _ => ("kube-controller-manager", "kube-controller-manager"),
        };
        set_managed_fields(&mut o, spec_manager, status_manager);
        o
    }
}

fn workload(
    kind: &str,
    namespace: &str,
    name: &str,
    spec: Value,
    status: Value,
) -> WorkloadBuilder {
    let app = name.split('-').next().unwrap_or(name);
    let mut object = json!({
        "apiVersion": api_version_of(kind), "kind": kind,
        "metadata": metadata(kind, namespace, name, app),
    });
    object["spec"] = spec;
    object["status"] = status;
    WorkloadBuilder(object)
}

fn app_labels(name: &str) -> Value {
    json!({"app.kubernetes.io/name": name.split('-').next().unwrap_or(name), "app.kubernetes.io/instance": name})
}

/// A Deployment of 2 replicas, available and done progressing at revision 1.
pub fn deployment(namespace: &str, name: &str) -> WorkloadBuilder {
    let labels = app_labels(name);
    let rs = format!("{name}-{}", short_hash(name, 10));
    let now = now();
    workload(
        "Deployment",
        namespace,
        name,
        json!({"replicas": 2, "selector": {"matchLabels": labels}, "template": template(&labels, &["app"], "Always"),
               "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
               "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}),
        json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
               "conditions": [
                   {"type": "Available", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now,
                    "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability."},
                   {"type": "Progressing", "status": "True", "lastUpdateTime": now, "lastTransitionTime": now,
                    "reason": "NewReplicaSetAvailable", "message": format!("ReplicaSet \"{rs}\" has successfully progressed.")},
               ]}),
    )
    .annotation("deployment.kubernetes.io/revision", "1")
}

/// A ReplicaSet of 2 ready replicas; its `pod-template-hash` is the name's last part.
pub fn replicaset(namespace: &str, name: &str) -> WorkloadBuilder {
    let hash = name.rsplit('-').next().unwrap_or(name);
    let base = name.rsplit_once('-').map_or(name, |(b, _)| b);
    let mut labels = app_labels(base);
    labels["pod-template-hash"] = json!(hash);
    workload(
        "ReplicaSet",
        namespace,
        name,
        json!({"replicas": 2, "selector": {"matchLabels": labels}, "template": template(&labels, &["app"], "Always")}),
        json!({"replicas": 2, "fullyLabeledReplicas": 2, "readyReplicas": 2, "availableReplicas": 2, "observedGeneration": 1}),
    )
    .label("pod-template-hash", hash)
    .annotation("deployment.kubernetes.io/desired-replicas", "2")
    .annotation("deployment.kubernetes.io/max-replicas", "3")
    .annotation("deployment.kubernetes.io/revision", "1")
}

/// A StatefulSet of 3 ready replicas.
pub fn statefulset(namespace: &str, name: &str) -> WorkloadBuilder {
    let labels = app_labels(name);
    let revision = format!("{name}-{}", short_hash(name, 10));
    workload(
        "StatefulSet",
        namespace,
        name,
        json!({"replicas": 3, "selector": {"matchLabels": labels}, "template": template(&labels, &["app"], "Always"),
               "serviceName": name, "podManagementPolicy": "OrderedReady",
               "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
               "revisionHistoryLimit": 10, "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}}),
        json!({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3, "currentReplicas": 3, "updatedReplicas": 3,
               "availableReplicas": 3, "currentRevision": revision, "updateRevision": revision, "collisionCount": 0}),
    )
}

/// A DaemonSet scheduled on 3 nodes, all ready.
pub fn daemonset(namespace: &str, name: &str) -> WorkloadBuilder {
    let labels = app_labels(name);
    workload(
        "DaemonSet",
        namespace,
        name,
        json!({"selector": {"matchLabels": labels}, "template": template(&labels, &["app"], "Always"),
               "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
               "revisionHistoryLimit": 10}),
        json!({"currentNumberScheduled": 3, "numberMisscheduled": 0, "desiredNumberScheduled": 3, "numberReady": 3,
               "observedGeneration": 1, "updatedNumberScheduled": 3, "numberAvailable": 3}),
    )
    .annotation("deprecated.daemonset.template.generation", "1")
}

/// A Job with one active Pod.
pub fn job(namespace: &str, name: &str) -> WorkloadBuilder {
    let uid = uid_for("Job", namespace, name);
    let labels = json!({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                        "controller-uid": uid, "job-name": name});
    workload(
        "Job",
        namespace,
        name,
        json!({"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
               "suspend": false, "manualSelector": false, "podReplacementPolicy": "TerminatingOrFailed",
               "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}},
               "template": template(&labels, &["app"], "OnFailure")}),
        json!({"startTime": now(), "active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}}),
    )
}

/// A CronJob every five minutes, last scheduled now.
pub fn cronjob(namespace: &str, name: &str) -> WorkloadBuilder {
    let labels = app_labels(name);
    workload(
        "CronJob",
        namespace,
        name,
        json!({"schedule": "*/5 * * * *", "concurrencyPolicy": "Forbid", "suspend": false,
               "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
               "jobTemplate": {"metadata": {"creationTimestamp": null},
                               "spec": {"backoffLimit": 2, "template": template(&labels, &["app"], "OnFailure")}}}),
        json!({"lastScheduleTime": now()}),
    )
}

impl WorkloadBuilder {
    /// A Deployment's or ReplicaSet's revision annotation.
    pub fn revision(self, n: u32) -> Self {
        self.annotation("deployment.kubernetes.io/revision", &n.to_string())
    }

    /// `spec.replicas` and the matching ready status.
    pub fn replicas(mut self, n: u32) -> Self {
        self.0["spec"]["replicas"] = json!(n);
        for f in [
            "replicas",
            "readyReplicas",
            "availableReplicas",
            "updatedReplicas",
        ] {
            if self.0["status"].get(f).is_some() {
                self.0["status"][f] = json!(n);
            }
        }
        self
    }

    /// `metadata.generation`, and `status.observedGeneration` caught up with it.
    pub fn generation(mut self, n: u64) -> Self {
        self.0["metadata"]["generation"] = json!(n);
        self.0["status"]["observedGeneration"] = json!(n);
        self
    }

    /// A Deployment's `Progressing` condition: `("False", "ProgressDeadlineExceeded",
    /// "ReplicaSet \"web-…\" has timed out progressing.")` is a stuck rollout.
    pub fn progressing(mut self, status: &str, reason: &str, message: &str) -> Self {
        let now = now();
        set_condition(
            &mut self.0,
            json!({"type": "Progressing", "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
                   "reason": reason, "message": message}),
        );
        self
    }

    /// A Job's end: `Complete` or `Failed` (with `reason`, e.g. `BackoffLimitExceeded`).
    pub fn finished(mut self, type_: &str, reason: &str, message: &str) -> Self {
        let now = now();
        set_condition(
            &mut self.0,
            json!({"type": type_, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                   "reason": reason, "message": message}),
        );
        let status = &mut self.0["status"];
        status["active"] = json!(0);
        if type_ == "Complete" {
            status["succeeded"] = json!(1);
            status["completionTime"] = json!(now);
        } else {
            status["failed"] = json!(1);
        }
        self
    }
}

/// Replaces (or adds) the condition of the same type in `status.conditions`.
pub fn set_condition(object: &mut Value, condition: Value) {
    let conditions = &mut object["status"]["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("an array");
    match list.iter_mut().find(|c| c["type"] == condition["type"]) {
        Some(c) => *c = condition,
        None => list.push(condition),
    }
}

// ---------- chains ----------

/// A Deployment, its ReplicaSet (with the `pod-template-hash`) and its Pods, each owned by the
/// one before, as the controllers create them.
#[derive(Clone, Debug)]
pub struct DeploymentChain {
    pub deployment: Value,
    pub replicaset: Value,
    pub pods: Vec<Value>,
}

fn uid_of(object: &Value) -> &str {
    object["metadata"]["uid"].as_str().unwrap_or_default()
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

impl DeploymentChain {
    pub fn deployment_uid(&self) -> &str {
        uid_of(&self.deployment)
    }
    pub fn replicaset_uid(&self) -> &str {
        uid_of(&self.replicaset)
    }
    pub fn replicaset_name(&self) -> &str {
        name_of(&self.replicaset)
    }
    pub fn pod_uids(&self) -> Vec<&str> {
        self.pods.iter().map(uid_of).collect()
    }
    pub fn pod_names(&self) -> Vec<&str> {
        self.pods.iter().map(name_of).collect()
    }

    /// Applies the chain to the fake, owners first.
    pub fn apply(&self, fake: &FakeApiServer) {
        fake.apply("deployments", self.deployment.clone());
        fake.apply("replicasets", self.replicaset.clone());
        for p in &self.pods {
            fake.apply("pods", p.clone());
        }
    }
}

/// `name` → `name-<hash>` → `name-<hash>-<suffix>` × `replicas`, each running and ready.
pub fn deployment_chain(namespace: &str, name: &str, replicas: u32) -> DeploymentChain {
    let deployment = deployment(namespace, name).replicas(replicas).build();
    let hash = short_hash(name, 10);
    let rs_name = format!("{name}-{hash}");
    let replicaset = replicaset(namespace, &rs_name)
        .replicas(replicas)
        .owned_by("Deployment", name, uid_of(&deployment))
        .build();
    let pods = (0..replicas)
        .map(|i| {
            let pod_name = format!("{rs_name}-{}", short_hash(&format!("{rs_name}/{i}"), 5));
            pod(namespace, &pod_name)
                .label("app.kubernetes.io/name", name)
                .label("pod-template-hash", &hash)
                .owned_by("ReplicaSet", &rs_name, uid_of(&replicaset))
                .build()
        })
        .collect();
    DeploymentChain {
        deployment,
        replicaset,
        pods,
    }
}
