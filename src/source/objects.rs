//! The lean decoders of the objects that give events their workloads and the occurrences
//! Kubernetes never writes as Events: Pods (owner, containers' restarts and terminations),
//! ReplicaSets and Jobs (owner), Deployments (revision, progress). Like the Event decoder they
//! read only these fields in one pass over the JSON and skip the rest (`managedFields`, specs).

use jiff::Timestamp;
use serde::Deserialize;

use serde::de;

use super::wire::{Str, Time, WatchItem, owned, owned_non_empty};

/// A raw object of one resource, as a watch line carries it.
trait RawObject<'a>: Deserialize<'a> {
    fn resource_version(&self) -> String;
    fn into_object(self) -> KubeObject;
}

macro_rules! raw_object {
    ($raw:ident, $into:expr) => {
        impl<'a> RawObject<'a> for $raw<'a> {
            fn resource_version(&self) -> String {
                self.metadata
                    .resource_version
                    .as_ref()
                    .map(|s| s.0.clone().into_owned())
                    .unwrap_or_default()
            }
            fn into_object(self) -> KubeObject {
                $into(self)
            }
        }
    };
}

raw_object!(RawPod, |p: RawPod<'_>| KubeObject::Pod(p.into()));
raw_object!(
    RawDeployment,
    |d: RawDeployment<'_>| KubeObject::Deployment(d.into())
);
// The kind is filled in by the caller: ReplicaSets and Jobs share the shape.
raw_object!(RawOwned, |o: RawOwned<'_>| KubeObject::Owned(
    o.into_owned("")
));

impl KubeObject {
    /// A ReplicaSet's or Job's identity with its kind.
    fn kind(mut self, kind: &'static str) -> Self {
        if let Self::Owned(id) = &mut self {
            id.kind = kind;
        }
        self
    }
}

#[derive(Deserialize)]
struct RawLine<'a, T> {
    #[serde(borrow, rename = "type")]
    type_: Str<'a>,
    object: T,
}

/// A watch `ERROR` line: its Status's code and message.
fn error_line(line: &[u8]) -> Option<WatchItem<KubeObject>> {
    #[derive(Deserialize)]
    struct Status<'a> {
        code: Option<i64>,
        #[serde(borrow)]
        message: Option<Str<'a>>,
    }
    let raw: RawLine<'_, Status<'_>> = serde_json::from_slice(line).ok()?;
    (raw.type_.0 == "ERROR").then(|| WatchItem::Error {
        code: raw.object.code.unwrap_or(0),
        message: owned(raw.object.message),
    })
}

/// One watch line, object and all, in one pass.
fn line_of<'a, T: RawObject<'a>>(line: &'a [u8]) -> serde_json::Result<WatchItem<KubeObject>> {
    let raw: RawLine<'a, T> = serde_json::from_slice(line)?;
    Ok(match raw.type_.0.as_ref() {
        "ADDED" => WatchItem::Added(raw.object.into_object()),
        "MODIFIED" => WatchItem::Modified(raw.object.into_object()),
        "DELETED" => WatchItem::Deleted(raw.object.into_object()),
        "BOOKMARK" => WatchItem::Bookmark {
            resource_version: raw.object.resource_version(),
        },
        // Read again as the Status it holds, by [`error_line`].
        "ERROR" => return Err(de::Error::custom("an ERROR line holds a Status")),
        other => {
            return Err(de::Error::custom(format_args!(
                "unknown watch event type {other:?}"
            )));
        }
    })
}

/// The resources watched for workloads, with where they are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resource {
    Pods,
    ReplicaSets,
    Jobs,
    Deployments,
}

impl Resource {
    pub const ALL: [Self; 4] = [Self::Pods, Self::ReplicaSets, Self::Jobs, Self::Deployments];

    /// The plural name, as in RBAC rules and URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Pods => "pods",
            Self::ReplicaSets => "replicasets",
            Self::Jobs => "jobs",
            Self::Deployments => "deployments",
        }
    }

    /// The API group (as in RBAC rules; the core group is empty).
    pub fn group(self) -> &'static str {
        match self {
            Self::Pods => "",
            Self::ReplicaSets | Self::Deployments => "apps",
            Self::Jobs => "batch",
        }
    }

    /// The collection's URL in `namespace` (all when `None`).
    pub fn url_path(self, namespace: Option<&str>) -> String {
        let prefix = match self.group() {
            "" => "/api/v1".to_owned(),
            group => format!("/apis/{group}/v1"),
        };
        match namespace {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{}", self.plural()),
            None => format!("{prefix}/{}", self.plural()),
        }
    }

    /// The kind of its objects.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Pods => "Pod",
            Self::ReplicaSets => "ReplicaSet",
            Self::Jobs => "Job",
            Self::Deployments => "Deployment",
        }
    }

    /// The keys whose array values its decoder never reads, at any depth: cut before it reads
    /// (see [`super::wire::strip_arrays`]). Of a Pod: all but 1 KB of a typical 6 KB.
    pub fn unread_arrays(self) -> &'static [&'static str] {
        const UNREAD: [&str; 7] = [
            "managedFields",
            "containers",
            "initContainers",
            "ephemeralContainers",
            "volumes",
            "tolerations",
            // A Deployment's are read: its progress.
            "conditions",
        ];
        match self {
            Self::Pods | Self::ReplicaSets | Self::Jobs => &UNREAD,
            Self::Deployments => &UNREAD[..6],
        }
    }

    /// Decodes one watch line of this resource in one pass over it.
    pub fn watch_line(self, line: &[u8]) -> serde_json::Result<WatchItem<KubeObject>> {
        let decoded = match self {
            Self::Pods => line_of::<RawPod>(line),
            Self::ReplicaSets => line_of::<RawOwned>(line).map(|i| i.map(|o| o.kind("ReplicaSet"))),
            Self::Jobs => line_of::<RawOwned>(line).map(|i| i.map(|o| o.kind("Job"))),
            Self::Deployments => line_of::<RawDeployment>(line),
        };
        // An `ERROR` line holds a Status, not an object (its `status` is a string, which no
        // object's shape takes): it is read again as one.
        decoded.or_else(|e| error_line(line).ok_or(e))
    }

    /// Decodes one object of this resource.
    pub fn decode(self, json: &str) -> serde_json::Result<KubeObject> {
        Ok(match self {
            Self::Pods => KubeObject::Pod(serde_json::from_str::<RawPod>(json)?.into()),
            Self::ReplicaSets | Self::Jobs => {
                KubeObject::Owned(serde_json::from_str::<RawOwned>(json)?.into_owned(self.kind()))
            }
            Self::Deployments => {
                KubeObject::Deployment(serde_json::from_str::<RawDeployment>(json)?.into())
            }
        })
    }
}

/// An object's controller, from `ownerReferences` (the one with `controller: true`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub kind: String,
    pub name: String,
}

/// What the exporter keeps of any watched object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    pub owner: Option<Owner>,
    pub created: Option<Timestamp>,
}

/// How a container ended, from `state.terminated` or `lastState.terminated`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Termination {
    pub reason: String,
    pub exit_code: i64,
    pub finished_at: Option<Timestamp>,
}

/// A container's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    pub name: String,
    pub init: bool,
    pub restarts: u64,
    /// The termination before the current run (`lastState.terminated`).
    pub last: Option<Termination>,
    /// The current state, if terminated (`state.terminated`).
    pub current: Option<Termination>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pod {
    pub id: Identity,
    pub node: String,
    /// `spec.restartPolicy` is `Never`: a terminated container stays terminated.
    pub never_restarts: bool,
    pub containers: Vec<Container>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Deployment {
    pub id: Identity,
    /// `metadata.annotations["deployment.kubernetes.io/revision"]`: the current rollout.
    pub revision: u64,
    /// The `Progressing` condition's message and last transition, when it is `False` with reason
    /// `ProgressDeadlineExceeded`.
    pub stuck: Option<(String, Option<Timestamp>)>,
}

/// A watched object, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubeObject {
    Pod(Pod),
    /// A ReplicaSet or a Job: only its owner matters.
    Owned(Identity),
    Deployment(Deployment),
}

impl KubeObject {
    pub fn id(&self) -> &Identity {
        match self {
            Self::Pod(p) => &p.id,
            Self::Owned(id) => id,
            Self::Deployment(d) => &d.id,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawOwnerRef<'a> {
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    controller: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawObjectMeta<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    namespace: Option<Str<'a>>,
    #[serde(borrow)]
    uid: Option<Str<'a>>,
    #[serde(borrow)]
    resource_version: Option<Str<'a>>,
    creation_timestamp: Option<Time>,
    #[serde(borrow)]
    owner_references: Vec<RawOwnerRef<'a>>,
    #[serde(borrow)]
    annotations: RawAnnotations<'a>,
}

/// Of the annotations, only the Deployment's revision.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAnnotations<'a> {
    #[serde(borrow, rename = "deployment.kubernetes.io/revision")]
    revision: Option<Str<'a>>,
}

impl RawObjectMeta<'_> {
    fn into_identity(self, kind: &'static str) -> Identity {
        let owner = self
            .owner_references
            .into_iter()
            .find(|r| r.controller == Some(true))
            .map(|r| Owner {
                kind: owned(r.kind),
                name: owned(r.name),
            })
            .filter(|o| !o.kind.is_empty() && !o.name.is_empty());
        Identity {
            kind,
            namespace: owned(self.namespace),
            name: owned(self.name),
            uid: owned(self.uid),
            resource_version: owned(self.resource_version),
            owner,
            created: self.creation_timestamp.map(|t| t.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawOwned<'a> {
    #[serde(borrow)]
    metadata: RawObjectMeta<'a>,
}

impl RawOwned<'_> {
    fn into_owned(self, kind: &'static str) -> Identity {
        self.metadata.into_identity(kind)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawTerminated<'a> {
    #[serde(borrow)]
    reason: Option<Str<'a>>,
    exit_code: Option<i64>,
    finished_at: Option<Time>,
}

impl From<RawTerminated<'_>> for Termination {
    fn from(t: RawTerminated<'_>) -> Self {
        Self {
            reason: owned(t.reason),
            exit_code: t.exit_code.unwrap_or(0),
            finished_at: t.finished_at.map(|t| t.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawState<'a> {
    #[serde(borrow)]
    terminated: Option<RawTerminated<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawContainerStatus<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    restart_count: Option<i64>,
    #[serde(borrow)]
    state: RawState<'a>,
    #[serde(borrow)]
    last_state: RawState<'a>,
}

impl RawContainerStatus<'_> {
    fn into_container(self, init: bool) -> Container {
        Container {
            name: owned(self.name),
            init,
            restarts: self
                .restart_count
                .and_then(|c| u64::try_from(c).ok())
                .unwrap_or(0),
            last: self.last_state.terminated.map(Into::into),
            current: self.state.terminated.map(Into::into),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawPodSpec<'a> {
    #[serde(borrow)]
    node_name: Option<Str<'a>>,
    #[serde(borrow)]
    restart_policy: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawPodStatus<'a> {
    #[serde(borrow)]
    container_statuses: Vec<RawContainerStatus<'a>>,
    #[serde(borrow)]
    init_container_statuses: Vec<RawContainerStatus<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPod<'a> {
    #[serde(borrow)]
    metadata: RawObjectMeta<'a>,
    #[serde(borrow)]
    spec: RawPodSpec<'a>,
    #[serde(borrow)]
    status: RawPodStatus<'a>,
}

impl From<RawPod<'_>> for Pod {
    fn from(p: RawPod<'_>) -> Self {
        let init = p.status.init_container_statuses.into_iter();
        let containers = init
            .map(|c| c.into_container(true))
            .chain(
                p.status
                    .container_statuses
                    .into_iter()
                    .map(|c| c.into_container(false)),
            )
            .collect();
        Self {
            id: p.metadata.into_identity("Pod"),
            node: owned(p.spec.node_name),
            never_restarts: p.spec.restart_policy.is_some_and(|r| r.0 == "Never"),
            containers,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawCondition<'a> {
    #[serde(borrow, rename = "type")]
    type_: Option<Str<'a>>,
    #[serde(borrow)]
    status: Option<Str<'a>>,
    #[serde(borrow)]
    reason: Option<Str<'a>>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
    last_transition_time: Option<Time>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDeploymentStatus<'a> {
    #[serde(borrow)]
    conditions: Vec<RawCondition<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDeployment<'a> {
    #[serde(borrow)]
    metadata: RawObjectMeta<'a>,
    #[serde(borrow)]
    status: RawDeploymentStatus<'a>,
}

impl From<RawDeployment<'_>> for Deployment {
    fn from(d: RawDeployment<'_>) -> Self {
        let revision = d
            .metadata
            .annotations
            .revision
            .as_ref()
            .and_then(|r| r.0.parse().ok())
            .unwrap_or(0);
        let stuck = d
            .status
            .conditions
            .into_iter()
            .find(|c| {
                c.type_.as_ref().is_some_and(|t| t.0 == "Progressing")
                    && c.status.as_ref().is_some_and(|s| s.0 == "False")
                    && c.reason
                        .as_ref()
                        .is_some_and(|r| r.0 == "ProgressDeadlineExceeded")
            })
            .map(|c| {
                (
                    owned_non_empty(c.message).unwrap_or_default(),
                    c.last_transition_time.map(|t| t.0),
                )
            });
        Self {
            id: d.metadata.into_identity("Deployment"),
            revision,
            stuck,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_keeps_its_owner_and_containers_only() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "api-7f9c5d-x2b4q", "namespace": "shop", "uid": "p1",
                "resourceVersion": "42",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Other", "name": "x", "uid": "o"},
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7f9c5d",
                     "uid": "rs1", "controller": true, "blockOwnerDeletion": true}],
                "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]},
            "spec": {"nodeName": "node-3", "restartPolicy": "Always",
                     "containers": [{"name": "api", "image": "api:1"}]},
            "status": {"phase": "Running",
                "initContainerStatuses": [{"name": "init", "restartCount": 0,
                    "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}],
                "containerStatuses": [{"name": "api", "restartCount": 4, "ready": true,
                    "state": {"running": {"startedAt": "2026-12-02T10:15:00Z"}},
                    "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                        "finishedAt": "2026-12-02T10:14:00Z"}}}]}
        });
        let KubeObject::Pod(p) = Resource::Pods.decode(&pod.to_string()).unwrap() else {
            panic!("a pod");
        };
        assert_eq!(
            p.id.owner,
            Some(Owner {
                kind: "ReplicaSet".into(),
                name: "api-7f9c5d".into()
            })
        );
        assert_eq!((p.id.uid.as_str(), p.node.as_str()), ("p1", "node-3"));
        assert!(!p.never_restarts);
        assert_eq!(p.containers.len(), 2);
        let api = &p.containers[1];
        assert_eq!(
            (api.name.as_str(), api.init, api.restarts),
            ("api", false, 4)
        );
        let last = api.last.as_ref().unwrap();
        assert_eq!((last.reason.as_str(), last.exit_code), ("OOMKilled", 137));
        assert!(api.current.is_none());
        assert!(p.containers[0].init);
        assert_eq!(
            p.containers[0].current.as_ref().unwrap().reason,
            "Completed"
        );
    }

    #[test]
    fn a_deployment_knows_its_revision_and_a_stuck_rollout() {
        let d = json!({"metadata": {"name": "api", "namespace": "shop", "uid": "d1",
                "annotations": {"deployment.kubernetes.io/revision": "7"}},
            "status": {"conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                 "message": "ReplicaSet \"api-6b4\" has timed out progressing.",
                 "lastTransitionTime": "2026-12-02T10:20:00Z"}]}});
        let KubeObject::Deployment(d) = Resource::Deployments.decode(&d.to_string()).unwrap()
        else {
            panic!("a deployment");
        };
        assert_eq!(d.revision, 7);
        let (message, at) = d.stuck.unwrap();
        assert!(message.contains("timed out"));
        assert_eq!(at.unwrap().to_string(), "2026-12-02T10:20:00Z");
        assert_eq!(d.id.owner, None);
    }

    #[test]
    fn watch_lines_decode_in_one_pass_bookmarks_and_errors_included() {
        let added = br#"{"type":"MODIFIED","object":{"kind":"ReplicaSet","metadata":{"name":"api-7f","namespace":"shop","resourceVersion":"9","ownerReferences":[{"kind":"Deployment","name":"api","controller":true}]}}}"#;
        let WatchItem::Modified(KubeObject::Owned(id)) =
            Resource::ReplicaSets.watch_line(added).unwrap()
        else {
            panic!("a modified ReplicaSet");
        };
        assert_eq!((id.kind, id.resource_version.as_str()), ("ReplicaSet", "9"));
        assert_eq!(id.owner.unwrap().name, "api");
        let bookmark =
            br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"12"}}}"#;
        assert!(matches!(
            Resource::Pods.watch_line(bookmark).unwrap(),
            WatchItem::Bookmark { resource_version } if resource_version == "12"
        ));
        let error =
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}"#;
        assert!(matches!(
            Resource::Deployments.watch_line(error).unwrap(),
            WatchItem::Error { code: 410, message } if message == "too old"
        ));
        assert!(
            Resource::Jobs
                .watch_line(br#"{"type":"NOPE","object":{}}"#)
                .is_err()
        );
        assert!(
            Resource::Pods
                .watch_line(br#"{"type":"ADDED","object":{"status":1}}"#)
                .is_err()
        );
    }

    #[test]
    fn bad_objects_are_errors() {
        for bad in [
            r#"{"metadata": 3}"#,
            r#"{"status": {"containerStatuses": 1}}"#,
            "[",
            "",
        ] {
            assert!(Resource::Pods.decode(bad).is_err(), "{bad}");
        }
        let job = r#"{"metadata": {"name": "etl-1", "namespace": "data",
            "ownerReferences": [{"kind": "CronJob", "name": "etl", "controller": true}]}}"#;
        let KubeObject::Owned(id) = Resource::Jobs.decode(job).unwrap() else {
            panic!("owned");
        };
        assert_eq!(
            (id.kind, id.owner.unwrap().kind.as_str()),
            ("Job", "CronJob")
        );
    }
}
