#!/usr/bin/env python3
"""Generates the Grafana dashboards in this folder (import-ready JSON, schemaVersion 39).

    python3 dashboards/generate.py

Every query takes `max without (instance, pod)` before summing, so two exporter replicas do not
double the numbers.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${datasource}"}
HERE = os.path.dirname(os.path.abspath(__file__))


def dedup(expr):
    return f"max without (instance, pod) ({expr})"


def occurred_in(selector, window):
    """Occurrences within `window`, series by series, for an instant query.

    A `kube_events_total` series is created by its first occurrence, so `increase()` never sees
    that one: for rare reasons (a workload's first OOM kill, a Deployment's first stuck rollout)
    that is most of them. A series that did not exist `window` ago counts in full instead.
    """
    s = f"kube_events_total{{{selector}}}"
    return f"(increase({s}[{window}]) and {s} offset {window}) or ({s} unless {s} offset {window})"


def events(matchers, fn="rate", window="$__rate_interval"):
    sel = 'namespace=~"$namespace", kind=~"$kind", reason=~"$reason"'
    if matchers:
        sel += ", " + matchers
    return dedup(f"{fn}(kube_events_total{{{sel}}}[{window}])")


class Board:
    def __init__(self):
        self.panels = []
        self.y = 0
        self.next_id = 1

    def add(self, panel, w=12, h=8, x=None):
        panel["id"] = self.next_id
        self.next_id += 1
        if x is None:
            x = 0 if not self.panels or self.panels[-1]["gridPos"]["x"] + self.panels[-1]["gridPos"]["w"] + w > 24 else self.panels[-1]["gridPos"]["x"] + self.panels[-1]["gridPos"]["w"]
        if x == 0 and self.panels:
            self.y = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in self.panels)
        panel["gridPos"] = {"h": h, "w": w, "x": x, "y": self.y}
        self.panels.append(panel)


def no_value_if(defaults, no_value):
    """What a panel shows instead of "No data", when it has something better to say."""
    return {**defaults, "noValue": no_value} if no_value else defaults


def timeseries(title, targets, unit="ops", stack=False, description=""):
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"drawStyle": "line", "fillOpacity": 20 if stack else 0,
                           "stacking": {"mode": "normal" if stack else "none", "group": "A"}},
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "right", "calcs": ["sum"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [{"datasource": DS, "refId": chr(65 + i), "expr": e, "legendFormat": l}
                    for i, (e, l) in enumerate(targets)],
    }


def stat(title, expr, unit="none", description=""):
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area"},
        "targets": [{"datasource": DS, "refId": "A", "expr": expr, "instant": True}],
    }


def bars(title, expr, legend, description="", no_value=""):
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": no_value_if({"unit": "none"}, no_value), "overrides": []},
        "options": {"orientation": "horizontal", "displayMode": "gradient",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "targets": [{"datasource": DS, "refId": "A", "expr": expr, "legendFormat": legend, "instant": True}],
    }


def table(title, expr, columns, renames, description="", no_value=""):
    """An instant query as a table: one row per series, `columns` first, then the value."""
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DS,
        "fieldConfig": {"defaults": no_value_if({"unit": "none"}, no_value), "overrides": []},
        "options": {"showHeader": True, "sortBy": [{"displayName": "Value", "desc": True}]},
        "targets": [{"datasource": DS, "refId": "A", "expr": expr, "instant": True, "format": "table"}],
        "transformations": [{"id": "organize", "options": {
            "excludeByName": {"Time": True},
            "indexByName": {c: i for i, c in enumerate(columns + ["Value"])},
            "renameByName": renames}}],
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def var_query(name, label, query, include_all=True):
    return {
        "type": "query", "name": name, "label": label, "datasource": DS,
        "query": {"query": query, "refId": f"{name}-var"}, "definition": query,
        "refresh": 2, "includeAll": include_all, "multi": True, "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "sort": 1,
    }


def dashboard(uid, title, description, board, variables, tags):
    return {
        "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "description": "",
                      "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus"}],
        "__requires": [{"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"},
                       {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}],
        "uid": uid, "title": title, "description": description, "tags": tags,
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1,
        "time": {"from": "now-6h", "to": "now"}, "refresh": "1m", "timezone": "",
        "templating": {"list": [{"type": "datasource", "name": "datasource", "label": "Data source",
                                 "query": "prometheus", "current": {"selected": False, "text": "${DS_PROMETHEUS}", "value": "${DS_PROMETHEUS}"},
                                 "hide": 0, "refresh": 1, "regex": ""}] + variables},
        "annotations": {"list": []},
        "panels": board.panels,
    }


RESTARTS = "BackOff|Killing|Unhealthy|OOMKilling|OOMKilled"
FAILURES = ("FailedScheduling|FailedMount|FailedAttachVolume|FailedCreate|Failed|ErrImagePull|"
            "BackoffLimitExceeded|ProgressDeadlineExceeded")


RESTARTED = 'reason="ContainerRestarted"'
OOM_KILLED = 'reason="ContainerOOMKilled"'
ROLLOUT_STUCK = 'reason="RolloutStuck"'
NEEDS_RBAC = ("The exporter derives it from Pod and Deployment status (Kubernetes records no Event for it); "
              "without read access to pods, replicasets, jobs and deployments it stays empty "
              "(kube_event_exporter_watch_forbidden says so).")
NEEDS_WORKLOAD_LABELS = ("Needs the exporter's --metrics-workload-labels, which adds the labels workload_kind and "
                         "workload to kube_events_total; empty without it.")


def service_row(b):
    """Container restarts, OOM kills and stuck rollouts: what Kubernetes keeps only in object status."""
    b.add(row("What happened to my service?"), w=24, h=1)
    ns = 'namespace=~"$namespace"'
    workload = 'workload_kind=~"$workload_kind", workload=~"$workload"'
    containers = 'kind="Pod", reason=~"ContainerRestarted|ContainerOOMKilled"'

    def in_range(matchers):
        return dedup(occurred_in(f"{ns}, {matchers}", "$__range"))

    restarts = in_range(f'kind="Pod", {RESTARTED}')
    b.add(bars("Container restarts by namespace", f"topk(10, sum by (namespace) ({restarts}) > 0)", "{{namespace}}",
               description="Container restarts (ContainerRestarted) in the selected range. " + NEEDS_RBAC,
               no_value="No restarts"), w=8)
    oom = in_range(f'kind="Pod", {OOM_KILLED}')
    b.add(bars("OOM kills by namespace", f"topk(10, sum by (namespace) ({oom}) > 0)", "{{namespace}}",
               description="Containers killed for exceeding their memory limit (ContainerOOMKilled) in the selected "
                           "range. " + NEEDS_RBAC,
               no_value="No OOM kills"), w=8)
    stuck = in_range(f'kind="Deployment", {ROLLOUT_STUCK}, {workload}')
    b.add(table("Stuck rollouts", f"sum by (namespace, workload) ({stuck}) > 0",
                ["namespace", "workload"], {"namespace": "Namespace", "workload": "Deployment", "Value": "Stuck rollouts"},
                description="Rollouts past their progress deadline (RolloutStuck) in the selected range, by namespace; "
                            "by Deployment with --metrics-workload-labels. " + NEEDS_RBAC,
                no_value="No stuck rollouts"), w=8)
    by_workload = in_range(f'{containers}, {workload}, workload!=""')
    b.add(bars("Restarts and OOM kills by workload",
               f"topk(20, sum by (namespace, workload_kind, workload, reason) ({by_workload}) > 0)",
               "{{namespace}}/{{workload}} ({{workload_kind}}) {{reason}}",
               description="Container restarts and OOM kills in the selected range by Deployment, StatefulSet, "
                           "DaemonSet, CronJob or bare Pod. " + NEEDS_WORKLOAD_LABELS,
               no_value="None, or no --metrics-workload-labels"), w=12, h=9)
    over_time = dedup(f"rate(kube_events_total{{{ns}, {containers}, {workload}}}[$__rate_interval])")
    b.add(timeseries("Restarts and OOM kills over time", [
        (f"60 * sum by (namespace, workload, reason) ({over_time})", "{{namespace}} {{workload}} {{reason}}")],
        unit="opm",
        description="Per minute, by namespace; by workload with --metrics-workload-labels. The first occurrence of "
                    "a series after the exporter starts creates it: it shows in the counts beside, not here."),
        w=12, h=9)


def events_dashboard():
    b = Board()
    b.add({"type": "text", "title": "The messages behind a spike", "options": {"mode": "markdown", "content": (
        "Counters say *how often*; the exporter's archive says *what*. Ask it for the events behind a spike "
        "(times in RFC 3339 or relative, like `2h`):\n\n"
        "```\ncurl -s 'http://kube-event-exporter.kube-event-exporter:9103/api/v1/events?namespace=<ns>&reason=BackOff&since=2h' -H 'Accept: text/plain'\n"
        "curl -s 'http://kube-event-exporter.kube-event-exporter:9103/api/v1/events?namespace=<ns>&kind=Pod&name=<pod>&since=1d'\n"
        "curl -s 'http://kube-event-exporter.kube-event-exporter:9103/api/v1/events?namespace=<ns>&workload=<deployment>&since=1d'\n```\n"
        "JSON by default, a `kubectl get events`-like table with `Accept: text/plain`; follow `next_cursor` for more. "
        "The exporter's page `/` takes the same parameters (`/?namespace=<ns>&workload=<deployment>`).")}},
        w=24, h=7)
    service_row(b)
    b.add(row("All events"), w=24, h=1)
    b.add(timeseries("Occurrences by reason", [(f"sum by (reason) ({events('')})", "{{reason}}")], stack=True,
                     description="Event occurrences per second (count increases), by reason."))
    b.add(timeseries("Occurrences by type", [(f"sum by (type) ({events('')})", "{{type}}")], stack=True,
                     description="Normal and Warning occurrences per second."))
    warning = 'type="Warning"'
    oom = 'reason=~"OOMKilling|OOMKilled"'
    restarts = f'reason=~"{RESTARTS}"'
    failures = f'reason=~"{FAILURES}"'
    warn = f"sum({events(warning, 'increase', '$__range')})"
    total = f"sum({events('', 'increase', '$__range')})"
    b.add(stat("Warning share", f"{warn} / {total}", unit="percentunit",
               description="Share of occurrences in the selected range that are Warnings."), w=6, h=6)
    b.add(stat("Warnings in range", warn, description="Warning occurrences in the selected range."), w=6, h=6)
    b.add(stat("Occurrences in range", total, description="All occurrences in the selected range."), w=6, h=6)
    b.add(stat("OOM kills in range", f"sum({events(oom, 'increase', '$__range')}) or vector(0)",
               description="OOMKilling (node-problem-detector) and OOMKilled occurrences."), w=6, h=6)
    b.add(timeseries("Restarts: back-offs, kills, failed probes, OOM", [
        (f"sum by (namespace, reason) ({events(restarts)})", "{{namespace}} {{reason}}")],
        description="BackOff, Killing, Unhealthy and OOM events by namespace."))
    b.add(timeseries("Failures: scheduling, volumes, images, jobs, rollouts", [
        (f"sum by (namespace, reason) ({events(failures)})", "{{namespace}} {{reason}}")],
        description="FailedScheduling, FailedMount, FailedAttachVolume, FailedCreate, Failed/ErrImagePull, BackoffLimitExceeded, ProgressDeadlineExceeded."))
    b.add(bars("Noisiest namespaces", f"topk(10, sum by (namespace) ({events('', 'increase', '$__range')}))", "{{namespace}}",
               description="Occurrences in the selected range."), w=8)
    b.add(bars("Noisiest kinds", f"topk(10, sum by (kind) ({events('', 'increase', '$__range')}))", "{{kind}}"), w=8)
    b.add(bars("Noisiest reasons", f"topk(10, sum by (reason) ({events('', 'increase', '$__range')}))", "{{reason}}"), w=8)
    variables = [
        var_query("namespace", "Namespace", "label_values(kube_events_total, namespace)"),
        var_query("kind", "Kind", 'label_values(kube_events_total{namespace=~"$namespace"}, kind)'),
        var_query("reason", "Reason", 'label_values(kube_events_total{namespace=~"$namespace", kind=~"$kind"}, reason)'),
        # Empty lists (only "All") unless the exporter runs with --metrics-workload-labels.
        var_query("workload_kind", "Workload kind", 'label_values(kube_events_total{namespace=~"$namespace"}, workload_kind)'),
        var_query("workload", "Workload",
                  'label_values(kube_events_total{namespace=~"$namespace", workload_kind=~"$workload_kind"}, workload)'),
    ]
    return dashboard("kube-events", "Kubernetes events",
                     "What your pods went through: occurrences of Kubernetes events by namespace, kind and reason.",
                     b, variables, ["kubernetes", "events"])


def operator_dashboard():
    b = Board()
    own = lambda name: f"kube_event_exporter_{name}"
    b.add(stat("Exporters up", "count(kube_event_exporter_build_info) or vector(0)"), w=6, h=5)
    b.add(stat("Age of the last event", f"time() - max({own('last_event_timestamp_seconds')})", unit="s",
               description="Seconds since the newest occurrence counted."), w=6, h=5)
    b.add(stat("Relists forced by 410 (range)", f"sum(increase({own('watch_gaps_total')}[$__range]))",
               description="Each may have lost events."), w=6, h=5)
    b.add(stat("Decode errors (range)", f"sum(increase({own('decode_errors_total')}[$__range]))"), w=6, h=5)
    b.add(timeseries("Watch events received", [(f"sum by (instance, type) (rate({own('watch_events_total')}[$__rate_interval]))", "{{instance}} {{type}}")]))
    b.add(timeseries("Watch restarts and skipped updates", [
        (f"sum by (instance) (rate({own('watch_restarts_total')}[$__rate_interval]))", "{{instance}} restarts"),
        (f"sum by (instance, reason) (rate({own('occurrences_skipped_total')}[$__rate_interval]))", "{{instance}} skipped {{reason}}")]))
    b.add(timeseries("Alerts posted per Alertmanager", [
        (f"sum by (alertmanager) (rate({own('alerts_posted_total')}[$__rate_interval]))", "{{alertmanager}}")]))
    b.add(timeseries("Alert post failures", [
        (f"sum by (alertmanager, reason) (rate({own('alert_post_failures_total')}[$__rate_interval]))", "{{alertmanager}} {{reason}}")]))
    b.add(timeseries("Alert queues and drops", [
        (f"max by (alertmanager) ({own('alert_queue_length')})", "{{alertmanager}} queued"),
        (f"sum by (alertmanager) (rate({own('alerts_dropped_total')}[$__rate_interval]))", "{{alertmanager}} dropped/s"),
        (f"max({own('alerts_active')})", "active alerts")], unit="none"))
    b.add(timeseries("Alert post latency (p99)", [
        (f"histogram_quantile(0.99, sum by (alertmanager, le) (rate({own('alert_post_duration_seconds_bucket')}[$__rate_interval])))", "{{alertmanager}}")], unit="s"))
    b.add(timeseries("Archive writes and drops", [
        (f"sum by (instance) (rate({own('archive_writes_total')}[$__rate_interval]))", "{{instance}} written"),
        (f"sum by (instance, reason) (rate({own('archive_dropped_total')}[$__rate_interval]))", "{{instance}} dropped {{reason}}"),
        (f"sum by (instance, reason) (rate({own('archive_deleted_total')}[$__rate_interval]))", "{{instance}} deleted {{reason}}")]))
    b.add(timeseries("Archive commit latency", [
        (f"histogram_quantile(0.5, sum by (le) (rate({own('archive_commit_duration_seconds_bucket')}[$__rate_interval])))", "p50"),
        (f"histogram_quantile(0.99, sum by (le) (rate({own('archive_commit_duration_seconds_bucket')}[$__rate_interval])))", "p99")], unit="s"))
    b.add(timeseries("Archive size", [
        (f"max by (instance) ({own('archive_size_bytes')})", "{{instance}} file"),
        (f"max by (instance) ({own('archive_max_bytes')} > 0)", "{{instance}} cap")], unit="bytes"))
    b.add(timeseries("Archive records and backlog", [
        (f"max by (instance) ({own('archive_records')})", "{{instance}} records"),
        (f"max by (instance) ({own('archive_pending')})", "{{instance}} pending"),
        (f"max by (instance) ({own('ledger_entries')})", "{{instance}} ledger")], unit="none"))
    b.add(timeseries("Watches refused (403)", [
        (f"max by (instance, resource) ({own('watch_forbidden')})", "{{instance}} {{resource}}")], unit="none",
        description="1 while the API server refuses the exporter's list/watch of pods, replicasets, jobs or "
                    "deployments with 403 Forbidden. Events still flow; workloads and the occurrences derived "
                    "from object status (ContainerRestarted, ContainerOOMKilled, RolloutStuck) are missing. "
                    "Grant get/list/watch on them (deploy/base/clusterrole.yaml)."))
    b.add(row("Shipping to ClickHouse (with --clickhouse-url)"), w=24, h=1)
    b.add(timeseries("Rows shipped and failed requests", [
        (f"sum by (instance) (rate({own('clickhouse_rows_shipped_total')}[$__rate_interval]))", "{{instance}} rows shipped"),
        (f"sum by (instance, reason) (rate({own('clickhouse_batches_failed_total')}[$__rate_interval]))", "{{instance}} failed {{reason}}")],
        description="Rows ClickHouse acknowledged, and failed requests by reason: connect, timeout, status_4xx "
                    "(credentials, a missing database), status_5xx (schema, server errors), archive, other."))
    b.add(timeseries("Outbox: waiting rows and the oldest's age", [
        (f"max by (instance) ({own('clickhouse_outbox_oldest_age_seconds')})", "{{instance}} oldest (s)"),
        (f"max by (instance) ({own('clickhouse_outbox_rows')})", "{{instance}} rows waiting"),
        (f"sum by (instance) (increase({own('clickhouse_rows_unshipped_deleted_total')}[$__rate_interval]))", "{{instance}} deleted unshipped")],
        unit="none",
        description="Records committed locally and not yet in ClickHouse. They wait in the archive until shipped; "
                    "KubeEventExporterClickHouseLagging fires when the oldest is over 15 minutes old."))
    return dashboard("kube-event-exporter", "kube-event-exporter",
                     "The exporter itself: watch health, relists and gaps, alert delivery, archive, shipping to ClickHouse.",
                     b, [], ["kubernetes", "events", "kube-event-exporter"])


for name, board in [("kubernetes-events.json", events_dashboard()), ("kube-event-exporter.json", operator_dashboard())]:
    with open(os.path.join(HERE, name), "w") as f:
        json.dump(board, f, indent=2)
        f.write("\n")
