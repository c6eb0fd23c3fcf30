"""Observability through real parts: Debian's Prometheus scrapes a running
bertserve; PromQL sees the metrics move as traffic, evictions and swap-ins
happen; `promtool check metrics` passes on a live scrape; the metrics agree
with the Models API; every query of the Grafana dashboard parses and returns
data."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

import harness
from harness import classify_request, models_pb2

MODELS = ["tt-tuple", "single-logit", "plain"]
WAIT_S = 60  # longest any condition below may take to hold


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """A real Prometheus server on loopback scraping one target every second."""

    def __init__(self, target_port, rules):
        self.dir = tempfile.mkdtemp(prefix="bertserve-prometheus-")
        self.port = free_port()
        config = os.path.join(self.dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    f"rule_files:\n  - {rules}\n"
                    "scrape_configs:\n  - job_name: bertserve\n    static_configs:\n"
                    f"      - targets: ['127.0.0.1:{target_port}']\n")
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def get(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as r:
            return r.status, r.read().decode()

    def query(self, expr):
        """The instant query's result list; raises if Prometheus refuses it."""
        status, body = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        doc = json.loads(body)
        if status != 200 or doc.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return doc["data"]["result"]

    def value(self, expr):
        """The single value of a scalar-like query, or None when it has no result."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def wait_for_data(self, expr):
        """Waits until an instant query returns a non-empty result; a query
        Prometheus refuses fails at once."""
        deadline = time.monotonic() + WAIT_S
        while not self.query(expr):
            if time.monotonic() > deadline:
                raise AssertionError(f"no data within {WAIT_S}s for {expr!r}")
            time.sleep(0.2)

    def wait_for(self, what, condition):
        """Polls `condition` (Prometheus scrapes on its own clock) until it holds."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (OSError, AssertionError):
                pass  # not up yet
            time.sleep(0.2)
        raise AssertionError(f"Prometheus never saw: {what}")


class ObservabilityTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("prometheus") is None or shutil.which("promtool") is None:
            raise AssertionError("prometheus and promtool are missing: run scripts/setup.sh")
        source = harness.require_env("BERTSERVE_SOURCE_DIR")
        cls.repo = tempfile.mkdtemp(prefix="bertserve-observability-")
        cls.addClassCleanup(shutil.rmtree, cls.repo, True)
        for name in MODELS:
            shutil.copytree(os.path.join(harness.models_dir(), name), os.path.join(cls.repo, name))
        weights = max(harness.ReferenceModel(os.path.join(cls.repo, n)).weight_bytes()
                      for n in MODELS)
        # Two of the three models fit: round-robin traffic evicts and swaps.
        # The foreign-memory file lets a test squeeze the simulated device.
        cls.foreign = os.path.join(cls.repo, "foreign-bytes")
        with open(cls.foreign, "w") as f:
            f.write("0")
        harness.start_server(cls, repository=cls.repo, load=[], extra_args=[
            "--device", "sim", "--simulated-device-memory", str(4 * weights),
            "--vram-reserve", "0", "--vram-budget", str(3 * weights),
            "--simulated-foreign-memory-file", cls.foreign])
        cls.server.wait_ready()
        cls.prometheus = Prometheus(cls.server.metrics_port,
                                    os.path.join(source, "deploy", "prometheus",
                                                 "bertserve-rules.yaml"))
        cls.addClassCleanup(cls.prometheus.stop)
        cls.prometheus.wait_for("its bertserve target up",
                                lambda: cls.prometheus.value('up{job="bertserve"}') == 1)
        cls.requests_before = cls.prometheus.value("sum(bertserve_requests_total)") or 0

        # Traffic: 30 answered requests round robin, one for an unknown model.
        for i in range(30):
            cls.server.inference.Classify(classify_request(MODELS[i % 3], ["hello there"]))
        try:
            cls.server.inference.Classify(classify_request("no-such-model", ["hi"]))
        except Exception:  # noqa: BLE001 - NOT_FOUND is the point
            pass
        cls.prometheus.wait_for(
            "the traffic",
            lambda: (cls.prometheus.value('sum(bertserve_requests_total{code="OK"})') or 0) >= 30
            and (cls.prometheus.value('sum(bertserve_requests_total{code="NOT_FOUND"})') or 0) >= 1)

    def test_oom_splits_show_in_promql(self):
        # tt-tuple resident, then "another process" leaves a quarter of the
        # activations a full batch of it needs: an 8-input request OOMs and splits.
        self.server.inference.Classify(classify_request("tt-tuple", ["warm"]))
        status = self.server.models.Get(models_pb2.GetModelRequest(name="tt-tuple"))
        harness.leave_free(self.server, self.foreign, status.activation_reserve_bytes // 4)
        try:
            words = " ".join(["serving"] * 40)
            reply = self.server.inference.Classify(classify_request("tt-tuple", [words] * 8))
            self.assertEqual(len(reply.results), 8)
        finally:
            harness.set_foreign_memory(self.server, self.foreign, 0)
        p = self.prometheus
        p.wait_for("OOM events and splits", lambda: (
            (p.value('sum(bertserve_oom_events_total{model="tt-tuple"})') or 0) > 0
            and (p.value('sum(bertserve_batch_splits_total{model="tt-tuple"})') or 0) > 0
            and (p.value('sum(bertserve_batch_token_limit_changes_total'
                         '{model="tt-tuple", direction="down"})') or 0) > 0))

    def test_promtool_passes_a_live_scrape(self):
        body = harness.scrape_metrics(self.server.metrics_port)
        proc = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                              text=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertEqual((proc.stdout + proc.stderr).strip(), "")
        for family in re.findall(r"^# TYPE (\S+) (\S+)$", body, re.M):
            name, kind = family
            self.assertTrue(name.startswith("bertserve_"), name)
            if kind == "counter":
                self.assertTrue(name.endswith("_total"), name)
            self.assertIn(f"# HELP {name} ", body)

    def test_metrics_move_with_traffic_and_placements(self):
        p = self.prometheus
        self.assertGreaterEqual(p.value("sum(bertserve_requests_total)"), self.requests_before + 31)
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        evictions = sum(m.evictions for m in listing.models)
        swap_ins = sum(m.swap_ins for m in listing.models)
        self.assertGreater(evictions, 0)
        self.assertGreater(swap_ins, 0)
        p.wait_for("placements equal to the Models API's counts", lambda: (
            p.value('sum(bertserve_model_placements_total{kind="evict", result="ok"})') == evictions
            and p.value('sum(bertserve_model_placements_total{kind="swap_in", result="ok"})')
            == swap_ins))
        self.assertGreater(p.value("sum(bertserve_batch_size_count)"), 0)
        self.assertGreater(p.value('sum(bertserve_model_state{state="ready"})'), 0)
        # Admitted bytes never pass the budget, in any sample of the run.
        self.assertLessEqual(
            p.value("max_over_time((max(bertserve_vram_reserved_bytes)"
                    " - max(bertserve_vram_budget_bytes))[5m:1s])"), 0)
        # Latency is recorded per method: loads and listings stay apart from
        # inference, so the latency panels and alert can leave them out.
        self.assertEqual(
            p.value('sum(bertserve_request_duration_seconds_count{method="Classify"})'),
            p.value('sum(bertserve_requests_total{method="Classify"})'))
        body = harness.scrape_metrics(self.server.metrics_port)
        methods = {re.search(r'method="([^"]*)"', k).group(1) for k in
                   harness.metric_samples(body, "bertserve_request_duration_seconds_count")}
        self.assertIn("Classify", methods)
        self.assertIn("Models.List", methods)
        # OOM series exist from the first batch on, at 0 here.
        self.assertEqual(p.value("sum(bertserve_oom_events_total)"), 0)

    def test_metrics_agree_with_the_models_api(self):
        body = harness.scrape_metrics(self.server.metrics_port)
        listing = self.server.models.List(models_pb2.ListModelsRequest())
        memory = harness.metric_samples(body, "bertserve_model_memory_bytes")
        reserves = harness.metric_samples(body, "bertserve_model_activation_reserve_bytes")
        resident = 0
        largest_reserve = 0
        for m in listing.models:
            # Device-tier series name the device; the one a model is on has its bytes.
            device = sum(v for k, v in memory.items()
                         if f'model="{m.name}"' in k and 'tier="device"' in k)
            if m.device_bytes:
                self.assertEqual(memory.get(
                    f'{{device="{m.device}",model="{m.name}",tier="device"}}'), m.device_bytes)
            host = memory.get(f'{{model="{m.name}",tier="host"}}', 0)
            self.assertEqual(device, m.device_bytes, m.name)
            self.assertEqual(host, m.host_bytes, m.name)
            self.assertEqual(reserves.get(f'{{model="{m.name}"}}', 0),
                             m.activation_reserve_bytes, m.name)
            if harness.state_name(m.state) == "READY":
                resident += m.device_bytes
                largest_reserve = max(largest_reserve, m.activation_reserve_bytes)
        budget = list(harness.metric_samples(body, "bertserve_vram_budget_bytes").values())
        reserved = list(harness.metric_samples(body, "bertserve_vram_reserved_bytes").values())
        self.assertEqual(budget, [listing.device.budget_bytes])
        self.assertEqual(reserved, [resident + largest_reserve])
        self.assertLessEqual(resident + largest_reserve, budget[0])

    def test_every_dashboard_query_returns_data(self):
        path = os.path.join(harness.require_env("BERTSERVE_SOURCE_DIR"), "deploy", "grafana",
                            "bertserve.json")
        with open(path) as f:
            dashboard = json.load(f)
        body = harness.scrape_metrics(self.server.metrics_port)
        exported = set(re.findall(r"^# TYPE (\S+) ", body, re.M))
        checked = 0
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):  # rows have none
                expr = (target["expr"].replace("$__rate_interval", "1m").replace("$model", ".*")
                        .replace("$instance", ".*").replace("$device", ".*"))
                for name in re.findall(r"\bbertserve_[a-z_]+", expr):
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    self.assertTrue(name in exported or base in exported,
                                    f"panel {panel['title']!r} uses {name}, which is not exported")
                with self.subTest(panel=panel["title"], expr=target["expr"]):
                    # rate() needs two samples of a series inside its window,
                    # and the traffic's series are only seconds old: wait,
                    # through Prometheus, until the query can return data.
                    self.prometheus.wait_for_data(expr)
                checked += 1
        self.assertGreaterEqual(checked, 20)

    def test_dashboard_file_is_what_its_generator_writes(self):
        source = harness.require_env("BERTSERVE_SOURCE_DIR")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run([sys.executable, os.path.join(source, "scripts", "make_dashboard.py"),
                            out.name], check=True)
            with open(os.path.join(source, "deploy", "grafana", "bertserve.json")) as f:
                with open(out.name) as generated:
                    self.assertEqual(json.load(f), json.load(generated))

    def test_alert_rules_load_and_none_fires(self):
        def rules():
            return json.loads(self.prometheus.get("/api/v1/rules")[1])["data"]["groups"]
        # A rule's health is "unknown" until its first evaluation.
        self.prometheus.wait_for("every rule evaluated", lambda: all(
            r["health"] != "unknown" for g in rules() for r in g["rules"]))
        groups = rules()
        names = {r["name"] for g in groups for r in g["rules"]}
        self.assertEqual(names, {"BertserveVramNearBudget", "BertserveOutOfMemory",
                                 "BertserveEvictionThrash", "BertserveModelFailed",
                                 "BertserveNotReady", "BertserveHighLatency"})
        for g in groups:
            for r in g["rules"]:
                self.assertEqual(r["health"], "ok", r)
                self.assertNotEqual(r["state"], "firing", r["name"])


if __name__ == "__main__":
    unittest.main()
