#!/usr/bin/env python3
"""Generates examples/events.jsonl: a morning in a small cluster, as JSON lines.

Deterministic (seeded). Lines are `{"type": ..., "object": ...}` watch events (as
`kubectl get events -A -o json -w --output-watch-events` prints them, one per line) and bare
Event objects, in both the core/v1 and the events.k8s.io/v1 shape. Repeats of the same thing
update the same Event object (count, lastTimestamp), as kubelet's recorder does.

    python3 examples/generate.py > examples/events.jsonl
"""
import json
import random
import uuid
from datetime import datetime, timedelta, timezone

rng = random.Random(42)
T0 = datetime(2026, 11, 29, 8, 0, 0, tzinfo=timezone.utc)
NODES = ["node-1", "node-2", "node-3", "node-4", "node-5"]
REGISTRY = "registry.example.com"
rv = 41000
out = []


def ts(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def uid():
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Ev:
    """One Event object and its updates."""

    def __init__(self, ns, kind, name, reason, type_, message, component, host, t, api_version="v1", obj_uid=None):
        self.ns, self.kind, self.name = ns, kind, name
        self.reason, self.type, self.message = reason, type_, message
        self.component, self.host = component, host
        self.first = self.last = t
        self.count = 1
        self.uid = uid()
        self.obj_uid = obj_uid or uid()
        self.api_version = api_version
        self.event_name = f"{name}.{rng.getrandbits(64):016x}"

    def object(self):
        global rv
        rv += rng.randint(1, 7)
        meta = {"name": self.event_name, "namespace": self.ns, "uid": self.uid,
                "resourceVersion": str(rv), "creationTimestamp": ts(self.first)}
        regarding = {"kind": self.kind, "namespace": self.ns if self.kind != "Node" else "",
                     "name": self.name, "uid": self.obj_uid,
                     "apiVersion": "v1" if self.kind in ("Pod", "Node") else "apps/v1"}
        if self.kind == "Pod" and self.reason in ("Pulling", "Pulled", "Created", "Started", "Killing", "BackOff", "Unhealthy", "Failed"):
            regarding["fieldPath"] = "spec.containers{%s}" % self.name.split("-")[0]
        if self.api_version == "v1":
            return {"apiVersion": "v1", "kind": "Event", "metadata": meta, "involvedObject": regarding,
                    "reason": self.reason, "message": self.message, "type": self.type,
                    "source": {"component": self.component, **({"host": self.host} if self.host else {})},
                    "firstTimestamp": ts(self.first), "lastTimestamp": ts(self.last), "count": self.count,
                    "eventTime": None, "reportingComponent": self.component, "reportingInstance": self.host or ""}
        obj = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": meta, "regarding": regarding,
               "reason": self.reason, "note": self.message, "type": self.type, "eventTime": micro(self.first),
               "reportingController": self.component, "reportingInstance": self.host or self.component,
               "action": {"Scheduled": "Binding", "FailedScheduling": "Scheduling"}.get(self.reason, self.reason)}
        if self.count > 1:
            obj["series"] = {"count": self.count, "lastObservedTime": micro(self.last)}
        return obj

    def emit(self, watch_type=None):
        o = self.object()
        out.append((self.last, {"type": watch_type, "object": o} if watch_type else o))

    def repeat(self, t, n=1):
        self.count += n
        self.last = t
        self.emit("MODIFIED")


def event(*args, **kw):
    e = Ev(*args, **kw)
    e.emit("ADDED" if rng.random() < 0.7 else None)
    return e


def pod_start(ns, deploy, image, t, node):
    pod = f"{deploy}-{rng.getrandbits(32):08x}"[:len(deploy) + 11] + f"-{rng.getrandbits(20):05x}"
    pod_uid = uid()
    event(ns, "Pod", pod, "Scheduled", "Normal", f"Successfully assigned {ns}/{pod} to {node}",
          "default-scheduler", None, t, api_version="events.k8s.io/v1", obj_uid=pod_uid)
    t += timedelta(seconds=1)
    event(ns, "Pod", pod, "Pulling", "Normal", f'Pulling image "{REGISTRY}/{image}"', "kubelet", node, t, obj_uid=pod_uid)
    t += timedelta(seconds=rng.randint(2, 9))
    secs = rng.uniform(0.8, 6.0)
    event(ns, "Pod", pod, "Pulled", "Normal",
          f'Successfully pulled image "{REGISTRY}/{image}" in {secs:.3f}s ({secs:.3f}s including waiting). Image size: {rng.randint(20, 400) * 1048576} bytes.',
          "kubelet", node, t, obj_uid=pod_uid)
    container = deploy.split("-")[0]
    event(ns, "Pod", pod, "Created", "Normal", f"Created container: {container}", "kubelet", node, t, obj_uid=pod_uid)
    event(ns, "Pod", pod, "Started", "Normal", f"Started container {container}", "kubelet", node, t, obj_uid=pod_uid)
    return pod, pod_uid


def rollout(ns, deploy, image, replicas, t):
    rs = f"{deploy}-{rng.getrandbits(36):09x}"
    event(ns, "Deployment", deploy, "ScalingReplicaSet", "Normal",
          f"Scaled up replica set {rs} from 0 to {replicas}", "deployment-controller", None, t)
    pods = []
    for _ in range(replicas):
        t += timedelta(seconds=rng.randint(1, 4))
        pod, pod_uid = pod_start(ns, deploy, image, t, rng.choice(NODES))
        event(ns, "ReplicaSet", rs, "SuccessfulCreate", "Normal", f"Created pod: {pod}", "replicaset-controller", None, t)
        pods.append((pod, pod_uid))
    return pods, t


t = T0
# shop: a healthy rollout, then a bad release that crash-loops and fails its probes.
shop_pods, t = rollout("shop", "api", "shop/api:1.42.0", 3, t)
_, t = rollout("shop", "web", "shop/web:2.7.1", 2, t)
t += timedelta(minutes=5)
bad_pods, t = rollout("shop", "checkout", "shop/checkout:3.0.0", 2, t)
for pod, pod_uid in bad_pods:
    node = rng.choice(NODES)
    probe = event("shop", "Pod", pod, "Unhealthy", "Warning",
                  'Readiness probe failed: Get "http://10.42.%d.%d:8080/healthz": dial tcp 10.42.%d.%d:8080: connect: connection refused'
                  % (rng.randint(0, 9), rng.randint(2, 250), 3, 17), "kubelet", node, t, obj_uid=pod_uid)
    live = event("shop", "Pod", pod, "Unhealthy", "Warning", "Liveness probe failed: HTTP probe failed with statuscode: 500",
                 "kubelet", node, t, obj_uid=pod_uid)
    kill = event("shop", "Pod", pod, "Killing", "Normal", "Container checkout failed liveness probe, will be restarted",
                 "kubelet", node, t, obj_uid=pod_uid)
    back = event("shop", "Pod", pod, "BackOff", "Warning",
                 f"Back-off restarting failed container checkout in pod {pod}_shop({pod_uid})", "kubelet", node, t, obj_uid=pod_uid)
    for i in range(rng.randint(6, 10)):
        t += timedelta(seconds=rng.randint(20, 90))
        probe.repeat(t, rng.randint(2, 4))
        live.repeat(t, 3)
        kill.repeat(t)
        back.repeat(t, rng.randint(1, 3))
# A typo'd image tag.
t += timedelta(minutes=2)
pod = "web-6d4b8c9f7-qz8rm"
ev_pull = event("shop", "Pod", pod, "Failed", "Warning",
                f'Failed to pull image "{REGISTRY}/shop/web:2.7.2-rc1": rpc error: code = NotFound desc = failed to pull and unpack image "{REGISTRY}/shop/web:2.7.2-rc1": failed to resolve reference "{REGISTRY}/shop/web:2.7.2-rc1": {REGISTRY}/shop/web:2.7.2-rc1: not found',
                "kubelet", "node-2", t)
ev_err = event("shop", "Pod", pod, "Failed", "Warning", "Error: ErrImagePull", "kubelet", "node-2", t)
ev_bo = event("shop", "Pod", pod, "BackOff", "Warning", f'Back-off pulling image "{REGISTRY}/shop/web:2.7.2-rc1"', "kubelet", "node-2", t)
ev_ibo = event("shop", "Pod", pod, "Failed", "Warning", "Error: ImagePullBackOff", "kubelet", "node-2", t)
for _ in range(8):
    t += timedelta(seconds=rng.randint(30, 120))
    ev_pull.repeat(t)
    ev_err.repeat(t)
    ev_bo.repeat(t, 2)
    ev_ibo.repeat(t, 2)

# payments: a memory-hungry service gets OOM-killed; a missing ConfigMap blocks a mount.
pay_pods, t = rollout("payments", "ledger", "payments/ledger:5.1.0", 2, t)
for pod, pod_uid in pay_pods:
    node = rng.choice(NODES)
    oom = event("default", "Node", node, "OOMKilling", "Warning",
                f"Memory cgroup out of memory: Killed process {rng.randint(1000, 40000)} (java) total-vm:4318060kB, anon-rss:1048576kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:2560kB oom_score_adj:984",
                "kernel-monitor", node, t)
    back = event("payments", "Pod", pod, "BackOff", "Warning",
                 f"Back-off restarting failed container ledger in pod {pod}_payments({pod_uid})", "kubelet", node, t, obj_uid=pod_uid)
    for _ in range(rng.randint(3, 6)):
        t += timedelta(seconds=rng.randint(60, 300))
        oom.repeat(t)
        back.repeat(t)
mount = event("payments", "Pod", "fraud-scorer-5c7d8b6f4-h2x9w", "FailedMount", "Warning",
              'MountVolume.SetUp failed for volume "model-config" : configmap "fraud-model-config" not found', "kubelet", "node-4", t)
for _ in range(12):
    t += timedelta(minutes=2)
    mount.repeat(t)
event("payments", "ReplicaSet", "ledger-7b9f6d5c8", "FailedCreate", "Warning",
      'Error creating: pods "ledger-7b9f6d5c8-" is forbidden: exceeded quota: compute-resources, requested: limits.memory=2Gi, used: limits.memory=8Gi, limited: limits.memory=8Gi',
      "replicaset-controller", None, t)
job = event("payments", "Job", "nightly-settlement-29011440", "BackoffLimitExceeded", "Warning",
            "Job has reached the specified backoff limit", "job-controller", None, t)

# data: a big pod that cannot be scheduled; an autoscaler at work.
sched = Ev("data", "Pod", "spark-driver-0", "FailedScheduling", "Warning",
           "0/5 nodes are available: 2 Insufficient memory, 3 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. preemption: 0/5 nodes are available: 2 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.",
           "default-scheduler", None, t, api_version="events.k8s.io/v1")
sched.emit("ADDED")
for _ in range(15):
    t += timedelta(minutes=1)
    sched.repeat(t)
_, t = rollout("data", "ingest", "data/ingest:0.9.3", 4, t)
for n in (4, 6, 8):
    t += timedelta(minutes=3)
    event("data", "HorizontalPodAutoscaler", "ingest", "SuccessfulRescale", "Normal",
          f"New size: {n}; reason: cpu resource utilization (percentage of request) above target", "horizontal-pod-autoscaler", None, t)
event("data", "Pod", "etl-writer-0", "FailedAttachVolume", "Warning",
      'AttachVolume.Attach failed for volume "pvc-3f1c" : rpc error: code = Internal desc = Could not attach volume "vol-0a1b2c" to node "node-5": volume is in use',
      "attachdetach-controller", None, t)

# search: a routine rollout; shop scales its cart.
_, t = rollout("search", "indexer", "search/indexer:4.2.0", 3, t)
_, t = rollout("shop", "cart", "shop/cart:1.9.4", 3, t)

# kube-system and nodes.
_, t = rollout("kube-system", "coredns", "coredns/coredns:1.11.3", 2, t)
nn = event("default", "Node", "node-4", "NodeNotReady", "Normal", "Node node-4 status is now: NodeNotReady", "node-controller", None, t)
t += timedelta(minutes=4)
event("default", "Node", "node-4", "NodeReady", "Normal", "Node node-4 status is now: NodeReady", "kubelet", "node-4", t)
event("default", "Node", "node-4", "Rebooted", "Warning", "Node node-4 has been rebooted, boot id: 6b3d0f3e-2f1a-4c8e-9d4b-7e2a1c5f9b10", "kubelet", "node-4", t)

# Interleave updates in time order, as a watch would deliver them.
out.sort(key=lambda p: p[0])
for _, line in out:
    print(json.dumps(line, separators=(",", ":")))
