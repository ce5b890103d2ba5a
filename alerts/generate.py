#!/usr/bin/env python3
"""Writes deploy/prometheusrule/prometheusrule.yaml from alerts/kube-event-exporter.rules.yml.

Run from the repository root after changing the rules; a test keeps the two equal.
"""
import yaml

with open("alerts/kube-event-exporter.rules.yml") as f:
    rules = yaml.safe_load(f)
doc = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PrometheusRule",
    "metadata": {"name": "kube-event-exporter", "namespace": "kube-event-exporter"},
    "spec": rules,
}
with open("deploy/prometheusrule/prometheusrule.yaml", "w") as f:
    f.write("# Generated from alerts/kube-event-exporter.rules.yml by alerts/generate.py;\n")
    f.write("# a test keeps the two equal.\n")
    yaml.dump(doc, f, sort_keys=False, width=1000)
