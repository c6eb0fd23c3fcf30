#!/usr/bin/env python3
"""Writes deploy/grafana/bertserve.json, the bertserve Grafana dashboard.

The dashboard is generated so that every panel follows the same conventions
(datasource variable, $__rate_interval, model and instance variables); edit
this script and run it again rather than the JSON. A test checks that the
committed JSON is what this script writes, and evaluates every query against
a real Prometheus scraping a real server.

Without OUT it also writes the same bytes to
deploy/k8s/components/monitoring/bertserve.json, the copy that the monitoring
kustomize component ships as a ConfigMap (kustomize reads no file outside the
component's directory); tests/deploy checks the two are identical.

    python3 scripts/make_dashboard.py [OUT]
"""

import json
import os
import sys

SEL = 'instance=~"$instance"'
MSEL = 'model=~"$model", instance=~"$instance"'
DSEL = 'device=~"$device", instance=~"$instance"'
RATE = "[$__rate_interval]"
# Inference calls only: model loads and listings have their own latency.
INFER = 'method=~"Classify|ClassifyStream|v2.ModelInfer|v2.ModelStreamInfer"'


def target(expr, legend, ref):
    return {"datasource": {"type": "prometheus", "uid": "${datasource}"},
            "expr": expr, "legendFormat": legend, "refId": ref}


def panel(pid, title, description, exprs, unit, x, y, w=12, h=8, kind="timeseries",
          stack=False, right=None):
    targets = [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(exprs)]
    custom = {"fillOpacity": 30 if stack else 10, "lineWidth": 1,
              "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
    p = {"id": pid, "type": kind, "title": title, "description": description,
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "gridPos": {"x": x, "y": y, "w": w, "h": h}, "targets": targets,
         "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
         "options": {"legend": {"displayMode": "table", "placement": "bottom",
                                "calcs": ["lastNotNull", "max"]},
                     "tooltip": {"mode": "multi", "sort": "desc"}}}
    if kind == "state-timeline":
        p["fieldConfig"] = {"defaults": {"custom": {"fillOpacity": 80}}, "overrides": []}
        p["options"] = {"mergeValues": True, "showValue": "never", "rowHeight": 0.8}
    if right:
        p["fieldConfig"]["overrides"].append({
            "matcher": {"id": "byFrameRefID", "options": right[0]},
            "properties": [{"id": "custom.axisPlacement", "value": "right"},
                           {"id": "unit", "value": right[1]}]})
    return p


def variable(name, label, query):
    return {"name": name, "label": label, "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {"query": query, "refId": name}, "definition": query,
            "includeAll": True, "allValue": ".*", "multi": True, "refresh": 2,
            "current": {"text": "All", "value": "$__all"}, "sort": 1}


def dashboard():
    panels = [
        panel(1, "VRAM: budget, admitted, allocator, device used",
              "The VRAM budget in force, the bytes bertserve admitted (resident weights plus the "
              "largest activation reserve), what the framework allocator holds and uses, and what "
              "the device reports used by every process.",
              [(f"max by (device) (bertserve_vram_budget_bytes{{{SEL}}})", "budget {{device}}"),
               (f"max by (device) (bertserve_vram_reserved_bytes{{{SEL}}})", "admitted {{device}}"),
               (f"max by (device) (bertserve_allocator_reserved_bytes{{{SEL}}})",
                "allocator reserved {{device}}"),
               (f"max by (device) (bertserve_allocator_allocated_bytes{{{SEL}}})",
                "allocator allocated {{device}}"),
               (f"max by (device) (bertserve_device_memory_used_bytes{{{SEL}}})",
                "device used {{device}}")],
              "bytes", 0, 0),
        panel(2, "Weights per model and tier",
              "Weight bytes each model holds on the device and in host memory, stacked.",
              [(f"sum by (model, tier) (bertserve_model_memory_bytes{{{MSEL}}})",
                "{{model}} {{tier}}")],
              "bytes", 12, 0, stack=True),
        panel(3, "Model states", "The state of every model over time.",
              [(f"max by (model, state) (bertserve_model_state{{{MSEL}}}) == 1", "{{model}} {{state}}")],
              "none", 0, 8, kind="state-timeline"),
        panel(4, "Placements per second",
              "Loads, swap-ins, evictions and unloads per second, and host memory of offloaded "
              "weights against its budget (right axis).",
              [(f"sum by (kind, result) (rate(bertserve_model_placements_total{{{MSEL}}}{RATE}))",
                "{{kind}} {{result}}"),
               (f"max(bertserve_host_memory_bytes{{{SEL}}})", "host memory"),
               (f"max(bertserve_host_budget_bytes{{{SEL}}})", "host budget")],
              "ops", 12, 8, right=("B", "bytes")),
        panel(5, "Placement duration p50 / p99", "Time per placement job by kind.",
              [("histogram_quantile(0.5, sum by (le, kind) (rate("
                f"bertserve_model_placement_duration_seconds_bucket{{{SEL}}}{RATE})))", "p50 {{kind}}"),
               ("histogram_quantile(0.99, sum by (le, kind) (rate("
                f"bertserve_model_placement_duration_seconds_bucket{{{SEL}}}{RATE})))", "p99 {{kind}}")],
              "s", 0, 16),
        panel(6, "Out of memory: events, splits and the batch token limit",
              "OOM errors caught and batches split per second; the adaptive batch token limit on "
              "the right axis.",
              [(f"sum by (model) (rate(bertserve_oom_events_total{{{MSEL}}}{RATE}))", "OOM {{model}}"),
               (f"sum by (model) (rate(bertserve_batch_splits_total{{{MSEL}}}{RATE}))",
                "splits {{model}}"),
               (f"max by (model) (bertserve_batch_token_limit{{{MSEL}}})", "token limit {{model}}")],
              "ops", 12, 16, right=("C", "none")),
        panel(7, "Requests per second by model and code", "Finished RPCs.",
              [(f"sum by (model, code) (rate(bertserve_requests_total{{{MSEL}}}{RATE}))",
                "{{model}} {{code}}")],
              "reqps", 0, 24),
        panel(8, "Error ratio by model", "Share of RPCs that did not end OK.",
              [(f"(sum by (model) (rate(bertserve_requests_total{{code!=\"OK\", {MSEL}}}{RATE}))"
                f" or sum by (model) (rate(bertserve_requests_total{{{MSEL}}}{RATE})) * 0)"
                f" / sum by (model) (rate(bertserve_requests_total{{{MSEL}}}{RATE}))", "{{model}}")],
              "percentunit", 12, 24),
        panel(9, "Inference latency p50 / p99 by model",
              "End-to-end latency of inference calls (Classify, ClassifyStream messages and "
              "the Open Inference Protocol's ModelInfer and ModelStreamInfer messages); "
              "model loads and listings are not counted.",
              [("histogram_quantile(0.5, sum by (le, model) (rate("
                f"bertserve_request_duration_seconds_bucket{{{INFER}, {MSEL}}}{RATE})))",
                "p50 {{model}}"),
               ("histogram_quantile(0.99, sum by (le, model) (rate("
                f"bertserve_request_duration_seconds_bucket{{{INFER}, {MSEL}}}{RATE})))",
                "p99 {{model}}")],
              "s", 0, 32),
        panel(10, "Queue depth and queue time",
              "Inputs waiting for a batch, and the p99 of their wait (right axis).",
              [(f"sum by (model) (bertserve_queue_depth{{{MSEL}}})", "queued {{model}}"),
               ("histogram_quantile(0.99, sum by (le, model) (rate("
                f"bertserve_queue_duration_seconds_bucket{{{MSEL}}}{RATE})))", "p99 wait {{model}}")],
              "none", 12, 32, right=("B", "s")),
        panel(11, "Padding efficiency and batch size",
              "Real tokens / padded tokens per forward (1 = no padding), and mean inputs per "
              "forward (right axis).",
              [(f"sum by (model) (rate(bertserve_padding_ratio_sum{{{MSEL}}}{RATE}))"
                f" / sum by (model) (rate(bertserve_padding_ratio_count{{{MSEL}}}{RATE}))",
                "efficiency {{model}}"),
               (f"sum by (model) (rate(bertserve_batch_size_sum{{{MSEL}}}{RATE}))"
                f" / sum by (model) (rate(bertserve_batch_size_count{{{MSEL}}}{RATE}))",
                "inputs/forward {{model}}")],
              "percentunit", 0, 40, right=("B", "none")),
        panel(12, "Compute and tokenize time p99", "Per forward pass and per request.",
              [("histogram_quantile(0.99, sum by (le, model) (rate("
                f"bertserve_compute_duration_seconds_bucket{{{MSEL}}}{RATE})))", "forward {{model}}"),
               ("histogram_quantile(0.99, sum by (le, model) (rate("
                f"bertserve_tokenize_duration_seconds_bucket{{{MSEL}}}{RATE})))", "tokenize {{model}}")],
              "s", 12, 40),
        # One row per device (repeated over $device): what each GPU holds,
        # what the placement policy did there, and whether it was lost.
        {"id": 13, "type": "row", "title": "Device $device", "collapsed": False,
         "repeat": "device", "gridPos": {"x": 0, "y": 48, "w": 24, "h": 1}, "panels": []},
        panel(14, "Memory on $device",
              "The device's budget, the bytes bertserve admitted there (resident weights plus "
              "the largest activation reserve) and what the device reports used by every "
              "process.",
              [(f"max by (device) (bertserve_vram_budget_bytes{{{DSEL}}})", "budget {{device}}"),
               (f"max by (device) (bertserve_vram_reserved_bytes{{{DSEL}}})",
                "admitted {{device}}"),
               (f"max by (device) (bertserve_device_memory_used_bytes{{{DSEL}}})",
                "device used {{device}}")],
              "bytes", 0, 49),
        panel(15, "Models and placements on $device",
              "Models with weights on the device, placements there per second by the reason "
              "the policy chose it (free: fitted beside the others; evict: after evicting idle "
              "models; wait: after models in use ended their turn), and 1 once the device "
              "failed for good (right axis).",
              [(f"max by (device) (bertserve_device_models{{{DSEL}}})", "models {{device}}"),
               (f"sum by (device, reason) (rate(bertserve_placement_decisions_total{{{DSEL}}}{RATE}))",
                "placed {{reason}}"),
               (f"max by (device) (bertserve_device_lost{{{DSEL}}})", "lost {{device}}")],
              "none", 12, 49, right=("C", "none")),
    ]
    return {
        "title": "bertserve", "uid": "bertserve", "tags": ["bertserve", "inference"],
        "timezone": "browser", "schemaVersion": 39, "version": 1, "editable": True,
        "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "label": "Data source", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0},
            variable("instance", "Instance", "label_values(bertserve_build_info, instance)"),
            variable("model", "Model", "label_values(bertserve_model_state, model)"),
            variable("device", "Device", "label_values(bertserve_vram_budget_bytes, device)"),
        ]},
        "annotations": {"list": []},
        "panels": panels,
    }


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    outs = sys.argv[1:2] or [
        os.path.join(here, "deploy", "grafana", "bertserve.json"),
        os.path.join(here, "deploy", "k8s", "components", "monitoring", "bertserve.json")]
    text = json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"
    for out in outs:
        with open(out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
