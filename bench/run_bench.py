#!/usr/bin/python3
"""The runs of scripts/bench.sh and its table; see README "Performance".

For each model directory given (model.pt, vocab.txt, config.pbtxt):

  raw libtorch    build/bench/forward_bench: one text per forward, then all
                  texts sorted by length in batches at the model's token
                  limit (the ceiling)
  bertserve       build/server/bertserve on loopback ports picked by the
                  kernel, driven by `bertserve-cli bench` closed loop at each
                  --callers count, then open loop at half the best closed-loop
                  rate (the p99 goal)
  Python baseline bench/python_baseline_server.py, the per-request grpcio
                  server, driven by the same `bertserve-cli bench` runs

Both servers run side by side; at each caller count their closed-loop runs
alternate (--server-rounds times) and each keeps its fastest, so that drift
in the machine's speed lands on both alike.

then build/bench/batching_bench (the storm of issue 4) on --storm-model.

--device cuda:N runs the raw loop and bertserve on a GPU, each model at its
config.pbtxt dtype; --full-length makes every text exactly the model's
max_sequence_length tokens; --matmul-probe N adds model FLOP utilisation
(MFU) against the device's measured N x N matrix-product rate;
--no-python leaves the Python baseline out (it runs on the CPU only).
scripts/bench.sh with BENCH_DEVICE=cuda:0 (scripts/gpu-check.sh) runs
BERT-Base and BERT-Large shapes in fp16 at 128 and 512 tokens this way.
Every figure is measured in this run; the table gives ratios to the ceiling
and to the Python server, and each goal with whether it held. Figures, not
assertions: the exit status is 0 whatever the figures, non-zero only when a
tool fails.

The ceiling is the faster of the two raw loops (sorted batches, unless a
forward's cost on this machine grows faster than its tokens).

Server CPU per sequence: the server process's CPU time over a run
(/proc/PID/stat utime + stime) divided by the sequences answered.
bertserve's CPU microseconds per sequence outside the forward (gRPC,
parsing, tokenizing, queueing, the response) are measured on its threads:
every thread but those named exec-* (a device's executor and the OpenMP
workers it starts, which inherit its name). The Python server's threads
cannot be told apart, so for both servers the bench also prints an
estimate at one caller, where each forward is one input as in the raw
one-per-forward loop: the server's CPU time less the raw loop's CPU time
per token times the tokens answered, per sequence (it includes OpenMP's
spin between forwards, and drifts with the machine).

  bench/run_bench.py --build build --model build/bench-models/bert-mini:512 ...
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def config_dtype(model_dir):
    """forward_bench --dtype for the model's config.pbtxt dtype (FP32 when absent)."""
    with open(os.path.join(model_dir, "config.pbtxt"), encoding="utf-8") as f:
        found = re.search(r"\bdtype\s*:\s*(\w+)", f.read())
    return found.group(1).lower() if found else "fp32"


def config_int(model_dir, field, default):
    """An integer field of config.pbtxt, by name (the bench writes these files)."""
    with open(os.path.join(model_dir, "config.pbtxt"), encoding="utf-8") as f:
        found = re.search(rf"\b{field}\s*:\s*(\d+)", f.read())
    return int(found.group(1)) if found else default


def stat_cpu_seconds(path):
    """utime + stime, in seconds, of a /proc .../stat file (a process's or a thread's)."""
    with open(path, encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    return stat_cpu_seconds(f"/proc/{pid}/stat")


def thread_cpu_seconds(pid, prefix):
    """utime + stime of a process's threads whose name starts with `prefix`."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm", encoding="utf-8") as f:
                if not f.read().startswith(prefix):
                    continue
            total += stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
        except OSError:  # the thread ended
            continue
    return total


class Process:
    """A server child process whose output is kept, and scanned for a line."""

    def __init__(self, cmd, ready_re, timeout):
        self.lines = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._drain, daemon=True).start()
        self.match = self.wait_for(ready_re, timeout)

    def _drain(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, pattern, timeout):
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if line is None:
                        raise RuntimeError("server exited:\n" + self.tail())
                    found = regex.search(line)
                    if found:
                        return found
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no line matching {pattern!r} in {timeout} s:\n"
                                       + self.tail())
                self.cond.wait(left)

    def tail(self):
        return "\n".join(line for line in self.lines[-30:] if line is not None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []     # table rows, in print order
        self.goals = []    # (goal, figure, held)
        self.overheads = []
        self.notes = []
        self.full_length = 0  # words per text when --full-length, per model

    # --- tools ---------------------------------------------------------------

    def tool(self, name):
        return os.path.join(self.args.build, name)

    def run_json(self, cmd, timeout):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}"
                               f"{proc.stdout}")
        return json.loads(proc.stdout)

    def words(self):
        """forward_bench's and bertserve-cli bench's text length flags."""
        if not self.full_length:
            return []
        # A word is at least one token: texts of this many words are cut to
        # exactly max_sequence_length tokens.
        return ["--min-words", str(self.full_length), "--max-words", str(self.full_length)]

    def cli_bench(self, port, model, seconds, callers=None, rate=None):
        cmd = [self.tool("client/bertserve-cli"), "--server", f"127.0.0.1:{port}", "--json",
               "--timeout", "600", "bench", "-m", model, "-d", str(seconds),
               "--texts", str(self.args.texts_per_request)] + self.words()
        cmd += ["-r", f"{rate:.3f}"] if rate else ["-c", str(callers)]
        result = self.run_json(cmd, timeout=seconds + 600)
        if result["errors"]:
            raise RuntimeError(f"bench errors: {result['errors']}")
        return result

    # --- one model -----------------------------------------------------------

    def raw_loop(self, model_dir, texts):
        result = self.run_json(
            [self.tool("bench/forward_bench"), "--json", "--model", model_dir,
             "--texts", str(texts), "--rounds", str(self.args.rounds),
             "--device", self.args.device, "--dtype", config_dtype(model_dir),
             "--matmul-probe", str(self.args.matmul_probe),
             "--max-sequence-length", str(config_int(model_dir, "max_sequence_length", 512)),
             "--max-batch-tokens", str(config_int(model_dir, "max_batch_tokens", 8192))]
            + self.words(),
            timeout=3600)
        log(f"raw loop on {result['device']} at {result['dtype']}: "
            f"{result['one_per_forward']['sequences_per_second']:.1f} seq/s one per "
            f"forward, {result['sorted']['sequences_per_second']:.1f} sorted, "
            f"{result['tokens_per_text']:.1f} tokens per text")
        return result

    def metrics(self, port, model):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
            text = r.read().decode()
        values = {}
        for name in ("bertserve_compute_duration_seconds_sum", "bertserve_batch_size_sum",
                     "bertserve_batch_size_count"):
            found = re.search(rf'^{name}{{[^}}]*model="{re.escape(model)}"[^}}]*}} (\S+)$',
                              text, re.M)
            values[name] = float(found.group(1)) if found else 0.0
        return values

    def start_bertserve(self, model_dir, name):
        """Starts bertserve on the model and warms it up; returns the process
        and a function that measures one load run against it."""
        repository = os.path.dirname(model_dir)
        cmd = [self.tool("server/bertserve"), "--model-repository", repository, "--load", name,
               "--device", self.args.device, "--listen", "127.0.0.1:0",
               "--metrics-listen", "127.0.0.1:0", "--log-level", "info"]
        server = Process(cmd, r"gRPC listening on \S+:(\d+)", timeout=120)
        try:
            port = int(server.match.group(1))
            metrics_port = int(server.wait_for(r"metrics listening on \S+:(\d+)", 60).group(1))
            self.wait_ready(metrics_port, server)
            self.cli_bench(port, name, self.args.warmup_seconds, callers=4)
        except BaseException:
            server.stop()
            raise
        pid = server.proc.pid

        def measured(**load):
            cpu0, m0 = cpu_seconds(pid), self.metrics(metrics_port, name)
            exec0 = thread_cpu_seconds(pid, "exec-")
            result = self.cli_bench(port, name, self.seconds, **load)
            cpu1, m1 = cpu_seconds(pid), self.metrics(metrics_port, name)
            exec1 = thread_cpu_seconds(pid, "exec-")
            forwards = m1["bertserve_batch_size_count"] - m0["bertserve_batch_size_count"]
            result["cpu_seconds"] = cpu1 - cpu0
            # The device executors' threads and the OpenMP workers they
            # started (named after them): the forwards, and the executor's
            # own batch assembly; everything else is outside the forward.
            result["executor_cpu_seconds"] = exec1 - exec0
            result["compute_seconds"] = (m1["bertserve_compute_duration_seconds_sum"]
                                         - m0["bertserve_compute_duration_seconds_sum"])
            result["forwards"] = forwards
            result["rows_per_forward"] = (
                (m1["bertserve_batch_size_sum"] - m0["bertserve_batch_size_sum"])
                / max(1.0, forwards))
            log(f"bertserve {result['mode']}: {result['sequences_per_second']:.1f} seq/s, "
                f"p50 {result['latency_ms']['p50']:.1f} ms, "
                f"{result['rows_per_forward']:.1f} rows per forward")
            return result
        return server, measured

    def wait_ready(self, metrics_port, server):
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError("server exited:\n" + server.tail())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/readyz",
                                            timeout=10) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("server not ready in 600 s:\n" + server.tail())

    def start_python(self, model_dir, name):
        """As start_bertserve, for the Python baseline server."""
        cmd = [sys.executable, os.path.join(HERE, "python_baseline_server.py"),
               "--model", model_dir]
        server = Process(cmd, r"python baseline listening on \S+:(\d+)", timeout=300)
        try:
            port = int(server.match.group(1))
            self.cli_bench(port, name, self.args.warmup_seconds, callers=4)
        except BaseException:
            server.stop()
            raise
        pid = server.proc.pid

        def measured(callers):
            cpu0 = cpu_seconds(pid)
            result = self.cli_bench(port, name, self.seconds, callers=callers)
            result["cpu_seconds"] = cpu_seconds(pid) - cpu0
            result["compute_seconds"] = (result["server_ms"]["compute"] / 1000
                                         * result["requests_answered"])
            result["rows_per_forward"] = 1.0
            log(f"python baseline {callers} callers: "
                f"{result['sequences_per_second']:.1f} seq/s, "
                f"p50 {result['latency_ms']['p50']:.1f} ms")
            return result
        return server, measured

    def serve(self, model_dir, name):
        """bertserve's runs and the Python baseline's (None without it). Both
        servers stay up side by side, and at each caller count their runs
        alternate --server-rounds times, each server keeping its fastest run:
        the machine's speed drifts over minutes (other work on a shared
        host), and alternating puts both servers under the same drift."""
        servers = []
        served, python = {}, ({} if self.args.python else None)
        try:
            server, bertserve = self.start_bertserve(model_dir, name)
            servers.append(server)
            if python is not None:
                server, baseline = self.start_python(model_dir, name)
                servers.append(server)

            def keep_fastest(runs, key, run):
                if key not in runs or (run["sequences_per_second"]
                                       > runs[key]["sequences_per_second"]):
                    runs[key] = run

            for callers in self.args.callers:
                for _ in range(self.args.server_rounds):
                    keep_fastest(served, callers, bertserve(callers=callers))
                    if python is not None:
                        keep_fastest(python, callers, baseline(callers))
            saturation = max(r["sequences_per_second"] for r in served.values())
            served["half"] = bertserve(rate=saturation / 2)
        finally:
            for server in servers:
                server.stop()
        return served, python

    def model(self, model_dir, texts, seconds):
        self.seconds = seconds
        name = os.path.basename(os.path.normpath(model_dir))
        self.full_length = (config_int(model_dir, "max_sequence_length", 512)
                            if self.args.full_length else 0)
        log(f"{name}: raw libtorch loop on {texts} texts")
        raw = self.raw_loop(model_dir, texts)
        log(f"{name}: bertserve" + (" and the Python baseline, alternating"
                                    if self.args.python else ""))
        served, python = self.serve(model_dir, name)
        self.report(name, raw, served, python)

    # --- the table -----------------------------------------------------------

    @staticmethod
    def outside_forward_us(run, raw):
        """CPU microseconds per sequence outside the forward, at one caller."""
        forward_cpu = run["tokens"] * raw["one_per_forward"]["cpu_us_per_token"] / 1e6
        return (run["cpu_seconds"] - forward_cpu) / max(1, run["sequences"]) * 1e6

    def report(self, name, raw, served, python):
        one, batched = raw["one_per_forward"], raw["sorted"]
        ceiling = max(one["sequences_per_second"], batched["sequences_per_second"])
        limit = raw["max_batch_tokens"]

        matmul = raw["matmul_tflops"] * 1e12  # FLOP/s; 0 without a probe

        def row(what, callers, seq_s, p50, p99, cpu_ms, vs_python=None, rows=None):
            cells = [
                name, what, callers, f"{seq_s:.1f}",
                f"{p50:.1f}" if p50 is not None else "", f"{p99:.1f}" if p99 is not None else "",
                f"{seq_s / ceiling:.2f}"]
            if self.args.python:
                cells.append(f"{vs_python:.2f}" if vs_python is not None else "")
            cells += [f"{rows:.1f}" if rows is not None else "", f"{cpu_ms:.2f}"]
            if self.args.matmul_probe:
                # Model FLOP utilisation: the texts' model FLOPs per second
                # against the device's measured matrix-product rate.
                cells.append(f"{seq_s * raw['flops_per_text'] / matmul:.3f}" if matmul else "")
            self.rows.append(cells)

        def cpu_ms(run):
            return run["cpu_seconds"] / max(1, run["sequences"]) * 1e3

        row("raw libtorch, one input per forward", "-", one["sequences_per_second"],
            one["forward_ms_p50"], None, one["cpu_ms_per_text"], rows=1.0)
        row(f"raw libtorch, sorted batches at {limit} tokens", "-",
            batched["sequences_per_second"], None, None, batched["cpu_ms_per_text"],
            rows=raw["texts"] / batched["forwards"])
        for callers in self.args.callers:
            r = served[callers]
            row("bertserve, gRPC loopback", callers, r["sequences_per_second"],
                r["latency_ms"]["p50"], r["latency_ms"]["p99"], cpu_ms(r),
                vs_python=(r["sequences_per_second"] / python[callers]["sequences_per_second"]
                           if python else None),
                rows=r["rows_per_forward"])
        half = served["half"]
        row(f"bertserve, open loop at {half['rate']:.1f} req/s (half of saturation)", "-",
            half["sequences_per_second"], half["latency_ms"]["p50"], half["latency_ms"]["p99"],
            cpu_ms(half), rows=half["rows_per_forward"])
        for callers in self.args.callers if python else []:
            p = python[callers]
            row("Python grpcio per-request server (BASELINE)", callers,
                p["sequences_per_second"], p["latency_ms"]["p50"], p["latency_ms"]["p99"],
                cpu_ms(p), vs_python=1.0, rows=1.0)

        top, low = max(self.args.callers), min(self.args.callers)
        saturation = served[top]["sequences_per_second"] / ceiling
        self.goals.append((f"{name}: bertserve at {top} callers >= 0.95x the ceiling",
                           f"{saturation:.2f}x", saturation >= 0.95))
        for callers in self.args.callers if python else []:
            if callers < 16:
                continue
            ratio = served[callers]["sequences_per_second"] / python[callers]["sequences_per_second"]
            self.goals.append((f"{name}: bertserve >= 3x the Python server at {callers} callers",
                               f"{ratio:.2f}x", ratio >= 3))
        # "One batch" read two ways: the forwards that ran at that load, and
        # a full batch at the token limit (the sorted loop's longest forward).
        batch_ms = half["compute_seconds"] / max(1, half["forwards"]) * 1000
        full_ms = batched["forward_ms_max"]
        p99 = half["latency_ms"]["p99"]
        self.goals.append((
            f"{name}: p99 at half of saturation <= 3x one batch's compute time, "
            f"the mean forward at that load ({batch_ms:.1f} ms)",
            f"p99 {p99:.1f} ms = {p99 / max(batch_ms, 1e-9):.1f}x", p99 <= 3 * batch_ms))
        self.goals.append((
            f"{name}: the same against a full {limit}-token batch ({full_ms:.0f} ms)",
            f"{p99 / max(full_ms, 1e-9):.2f}x", p99 <= 3 * full_ms))
        def outside_threads_us(run):
            return ((run["cpu_seconds"] - run["executor_cpu_seconds"])
                    / max(1, run["sequences"]) * 1e6)

        outside = ", ".join(
            f"{outside_threads_us(served[c]):.0f} at {c} caller{'' if c == 1 else 's'}"
            for c in self.args.callers)
        executor_ms = (served[low]["executor_cpu_seconds"] / max(1, served[low]["sequences"])
                       * 1e3)
        self.overheads.append(
            f"{name}: bertserve's CPU us per sequence on threads outside the forward (gRPC, "
            f"parsing, tokenizing, queueing, the response), measured: {outside}; its executor "
            f"threads: {executor_ms:.1f} ms per sequence at {low} "
            f"caller{'' if low == 1 else 's'} (the raw loop: "
            f"{one['cpu_ms_per_text']:.1f} ms per text)")
        if low == 1:
            baseline = (f", Python baseline {self.outside_forward_us(python[1], raw):.0f}"
                        if python else "")
            self.overheads.append(
                f"{name}: the same estimated as the server's CPU less the raw loop's for the "
                f"same tokens, 1 caller: bertserve "
                f"{self.outside_forward_us(served[1], raw):.0f}{baseline}")
        if matmul:
            self.notes.append(
                f"{name}: {raw['flops_per_text'] / 1e9:.3g} model GFLOPs per text; the "
                f"device's {raw['matmul_size']}x{raw['matmul_size']} matrix products at "
                f"{raw['dtype']}: {raw['matmul_tflops']:.2f} TFLOP/s")
        self.notes.append(
            f"{name}: {raw['device']}, {raw['dtype']}; raw loop on {raw['texts']} texts "
            f"({raw['tokens_per_text']:.1f} tokens "
            f"each on average), best of {raw['rounds']} rounds; servers: fastest of "
            f"{self.args.server_rounds} alternating runs; server-side split at {top} "
            f"callers, mean ms per request: tokenize "
            f"{served[top]['server_ms']['tokenize']:.2f}, queue "
            f"{served[top]['server_ms']['queue']:.1f}, compute "
            f"{served[top]['server_ms']['compute']:.1f}")

    def storm(self, model_dir):
        log(f"batching_bench storm on {model_dir}")
        cmd = [self.tool("bench/batching_bench"), "--model", model_dir,
               "--device", self.args.device, "--requests", str(self.args.storm_requests)]
        if self.args.storm_clients:
            cmd += ["--clients", str(self.args.storm_clients)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr}")

        def figure(label):
            found = re.search(rf"^\s*{label}\s+([\d.]+)", proc.stdout, re.M)
            if not found:
                raise RuntimeError(f"no '{label}' line in batching_bench's output:\n{proc.stdout}")
            return float(found.group(1))

        batched, ceiling = figure("dynamic batching"), figure("ceiling")
        alone = figure("one request per forward")
        self.goals.append((
            f"storm (batching_bench, {os.path.basename(os.path.normpath(model_dir))}): "
            f"batcher / its ceiling (replaces issue 4's 3x; one per forward {alone:.0f}, "
            f"batched {batched:.0f}, ceiling {ceiling:.0f} req/s)",
            f"{batched / ceiling:.2f}x", None))

    def print_table(self):
        header = ["model", "run", "callers", "seq/s", "p50 ms", "p99 ms", "x ceiling"]
        if self.args.python:
            header.append("x Python")
        header += ["rows/forward", "CPU ms/seq"]
        if self.args.matmul_probe:
            header.append("MFU")
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" for _ in header) + "|")
        for r in self.rows:
            print("| " + " | ".join(str(c) for c in r) + " |")
        print()
        print("Goals:")
        for goal, figure, held in self.goals:
            verdict = "" if held is None else ("  held" if held else "  MISSED")
            print(f"  {goal}: {figure}{verdict}")
        print()
        print("Per-request overhead:")
        for line in self.overheads:
            print(f"  {line}")
        print()
        print("Notes:")
        for note in self.notes:
            print(f"  {note}")
        print("  ceiling: the faster raw loop. CPU ms/seq: the process's CPU time (all threads) "
              "per sequence answered.")
        if self.args.python:
            print("  Python baseline: tokenization is a cached whitespace split + WordPiece "
                  "(near free); one forward per request, all on one forward thread.")
        if self.args.matmul_probe:
            print("  MFU: model FLOPs per second (2 x matrix parameters per token, plus "
                  "attention's 4 x hidden x length per layer) over the measured matrix-product "
                  "rate.")
        print("  p50 of the raw one-per-forward row is one forward's time.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", required=True, help="build directory")
    parser.add_argument("--model", action="append", required=True,
                        metavar="DIR:TEXTS[:SECONDS]",
                        help="model directory (the directory's name is the model's), how "
                             "many texts the raw loop runs, and the length of its load runs "
                             "(default --seconds); repeat for more models")
    parser.add_argument("--callers", default="1,16,64",
                        help="closed-loop caller counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=6,
                        help="length of each load run, where --model gives none")
    parser.add_argument("--warmup-seconds", type=float, default=1,
                        help="load before the measured runs of each server")
    parser.add_argument("--rounds", type=int, default=2,
                        help="forward_bench --rounds (alternations of the raw loops)")
    parser.add_argument("--device", default="cpu",
                        help="where the raw loop and bertserve run (cpu, cuda:N); the dtype "
                             "is each model's config.pbtxt dtype")
    parser.add_argument("--full-length", action="store_true",
                        help="every text cut to exactly the model's max_sequence_length "
                             "tokens (default: texts of 3 to 60 words)")
    parser.add_argument("--texts-per-request", type=int, default=1,
                        help="texts per Classify call of bertserve-cli bench")
    parser.add_argument("--no-python", dest="python", action="store_false",
                        help="leave out the Python baseline server")
    parser.add_argument("--matmul-probe", type=int, default=0, metavar="N",
                        help="measure the device's N x N matrix-product rate and give model "
                             "FLOP utilisation against it (0: not)")
    parser.add_argument("--server-rounds", type=int, default=2,
                        help="load runs per server and caller count, alternating between "
                             "bertserve and the Python baseline; each keeps its fastest")
    parser.add_argument("--storm-model", help="model directory for batching_bench")
    parser.add_argument("--storm-requests", type=int, default=20,
                        help="batching_bench --requests (per client)")
    parser.add_argument("--storm-clients", type=int, default=0,
                        help="batching_bench --clients (default: its own, 32)")
    args = parser.parse_args()
    args.callers = [int(c) for c in args.callers.split(",")]

    bench = Bench(args)
    for spec in args.model:
        model_dir, texts, *seconds = spec.split(":")
        bench.model(model_dir, int(texts), float(seconds[0]) if seconds else args.seconds)
    if args.storm_model:
        bench.storm(args.storm_model)
    bench.print_table()


if __name__ == "__main__":
    main()
