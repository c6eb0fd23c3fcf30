"""bertserve-cli's command line: the global options --server, --json and
--timeout before or after the subcommand (nested ones included), exit codes
(2 for bad usage, 0 for --help and --version), BERTSERVE_SERVER as the default
server, and the health subcommand against a ready and a never-ready server."""

import json
import os
import re
import socket
import subprocess
import unittest

import harness

MODEL = "tt-tuple"


def closed_address():
    """127.0.0.1:PORT where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def run_cli(*args, env=None, timeout=harness.CLI_TIMEOUT_S):
    """bertserve-cli with exactly these arguments; BERTSERVE_SERVER is removed
    from the environment unless env sets it."""
    environment = {k: v for k, v in os.environ.items() if k != "BERTSERVE_SERVER"}
    environment.update(env or {})
    return subprocess.run([harness.require_env("BERTSERVE_CLI")] + list(args),
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=environment)


def project_version():
    with open(os.path.join(harness.SOURCE_DIR, "CMakeLists.txt"), encoding="utf-8") as f:
        m = re.search(r"project\(bertserve VERSION (\S+)", f.read())
    return m.group(1)


class CliTestCase(harness.ServerTestCase):

    def assertExit(self, proc, code, what=""):
        self.assertEqual(proc.returncode, code,
                         f"{what}: {' '.join(proc.args)} exited {proc.returncode}, want {code}\n"
                         f"stdout: {proc.stdout}\nstderr: {proc.stderr}")

    def assertJson(self, proc, what=""):
        self.assertExit(proc, 0, what)
        try:
            return json.loads(proc.stdout)
        except ValueError as e:
            self.fail(f"{what}: {' '.join(proc.args)} printed no JSON document ({e}):\n"
                      f"{proc.stdout}")


class CliAgainstReadyServerTest(CliTestCase):

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=[MODEL])
        cls.server.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_global_options_before_or_after_the_subcommand(self):
        address = self.server.address
        placements = {
            "classify": [
                ["--server", address, "--json", "--timeout", "30", "classify", "-m", MODEL, "hi"],
                ["classify", "-m", MODEL, "hi", "--json", "--server", address, "--timeout", "30"],
                ["classify", "--json", "-m", MODEL, "--server", address, "hi"],
                ["--json", "classify", "-m", MODEL, "--timeout", "30", "hi", "--server", address],
            ],
            "models list": [
                ["--server", address, "--json", "models", "list"],
                ["models", "list", "--server", address, "--json", "--timeout", "30"],
                ["models", "--json", "--server", address, "list"],
            ],
            "tokenize": [
                ["tokenize", "-m", MODEL, "hi", "--json", "--server", address],
                ["--json", "--server", address, "tokenize", "-m", MODEL, "hi"],
            ],
            "health": [
                ["--json", "--server", address, "health"],
                ["health", "--json", "--server", address, "--timeout", "30"],
            ],
        }
        for command, variants in placements.items():
            docs = []
            for args in variants:
                doc = self.assertJson(run_cli(*args), command)
                doc.pop("timing", None)
                docs.append(doc)
            for args, doc in zip(variants[1:], docs[1:]):
                if command != "models list":  # memory and last-used figures move
                    self.assertEqual(doc, docs[0], f"{command}: {args} vs {variants[0]}")
                else:
                    self.assertEqual([m["name"] for m in doc["models"]],
                                     [m["name"] for m in docs[0]["models"]])

    def test_without_json_the_output_is_text(self):
        proc = run_cli("classify", "-m", MODEL, "hi", "--server", self.server.address)
        self.assertExit(proc, 0)
        self.assertIn(f"model {MODEL}:", proc.stdout)
        self.assertRaises(ValueError, json.loads, proc.stdout)

    def test_models_list_counts_the_models_on_each_device(self):
        proc = run_cli("models", "list", "--server", self.server.address)
        self.assertExit(proc, 0)
        devices = [line for line in proc.stdout.splitlines() if line.startswith("device ")]
        self.assertTrue(devices, proc.stdout)
        # MODEL is READY, on the first (here the only) device.
        self.assertRegex(devices[0], r", [1-9][0-9]* models")
        if devices[0].split()[1] == "cpu":
            self.assertIn("no budget", devices[0])  # the plain CPU has none

    def test_timeout_after_a_nested_subcommand_is_the_deadline(self):
        # `plain` is not loaded at startup; a millisecond is too short to load it.
        proc = run_cli("models", "load", "plain", "--server", self.server.address,
                       "--timeout", "0.001", "--token-file", self.server.token_file)
        self.assertExit(proc, 1, "a deadline too short for a load")
        self.assertIn("DEADLINE_EXCEEDED", proc.stderr)

    def test_bertserve_server_sets_the_default_address(self):
        live, dead = self.server.address, closed_address()
        doc = self.assertJson(run_cli("models", "list", "--json", env={"BERTSERVE_SERVER": live}),
                              "BERTSERVE_SERVER=live")
        self.assertIn(MODEL, [m["name"] for m in doc["models"]])

        proc = run_cli("models", "list", "--timeout", "10", env={"BERTSERVE_SERVER": dead})
        self.assertExit(proc, 1, "BERTSERVE_SERVER=closed port")
        self.assertIn("UNAVAILABLE", proc.stderr)

        # --server wins over the environment, in either position.
        for args in (["--server", live, "models", "list"], ["models", "list", "--server", live]):
            self.assertExit(run_cli(*args, env={"BERTSERVE_SERVER": dead}), 0, "--server wins")

        help_text = run_cli("--help").stdout
        self.assertIn("BERTSERVE_SERVER", help_text)

    def test_health_of_a_ready_server(self):
        proc = run_cli("health", "--server", self.server.address)
        self.assertExit(proc, 0, "health")
        self.assertRegex(proc.stdout, r"(?m)^liveness\s+SERVING$")
        self.assertRegex(proc.stdout, r"(?m)^readiness\s+SERVING$")
        doc = self.assertJson(run_cli("health", "--json", "--server", self.server.address))
        self.assertEqual(doc, {"liveness": "SERVING", "readiness": "SERVING"})

    def test_an_error_answer_exits_1(self):
        proc = run_cli("classify", "-m", "no-such-model", "hi", "--server", self.server.address)
        self.assertExit(proc, 1, "unknown model")
        self.assertIn("NOT_FOUND", proc.stderr)
        self.assertEqual(proc.stdout, "")


    def test_bench_closed_and_open_loop(self):
        """The load generator works on a tiny run (figures are not judged:
        they depend on the machine)."""
        runs = {
            "closed": ("bench", "-m", MODEL, "--duration", "1", "--concurrency", "3",
                       "--texts", "2", "--max-words", "10"),
            "open": ("bench", "-m", MODEL, "--duration", "1", "--rate", "40"),
        }
        for mode, args in runs.items():
            with self.subTest(mode):
                proc = run_cli(*args, "--json", "--server", self.server.address)
                self.assertExit(proc, 0, f"bench {mode}")
                doc = json.loads(proc.stdout)
                self.assertEqual(doc["errors"], {})
                self.assertGreater(doc["requests_answered"], 0)
                self.assertEqual(doc["requests_answered"], doc["requests_sent"])
                self.assertEqual(doc["sequences"],
                                 doc["requests_answered"] * (2 if mode == "closed" else 1))
                self.assertGreater(doc["tokens"], doc["sequences"])
                for key in ("p50", "p90", "p99", "max"):
                    self.assertGreater(doc["latency_ms"][key], 0)
                self.assertGreater(doc["server_ms"]["compute"], 0)
        # Errors are counted by code, and the exit code says so.
        proc = run_cli("bench", "-m", "no-such-model", "--duration", "0.5", "--json",
                       "--server", self.server.address)
        self.assertExit(proc, 1, "bench of an unknown model")
        self.assertGreater(json.loads(proc.stdout)["errors"]["NOT_FOUND"], 0)
        # A caller whose server cannot be reached stops instead of hammering
        # it: one call each, however long the run was to be.
        proc = run_cli("bench", "-m", MODEL, "--duration", "600", "--concurrency", "4", "--json",
                       "--server", closed_address())
        self.assertExit(proc, 1, "bench of a closed port")
        doc = json.loads(proc.stdout)
        self.assertEqual(doc["requests_sent"], 4)
        self.assertEqual(doc["errors"], {"UNAVAILABLE": 4})


class CliUsageTest(CliTestCase):
    """No server needed: usage errors are found before any connection."""

    def test_usage_errors_exit_2(self):
        cases = {
            "no subcommand": [],
            "unknown subcommand": ["frobnicate"],
            "unknown option": ["models", "list", "--no-such-flag"],
            "missing --model": ["classify", "text"],
            "missing text": ["classify", "-m", MODEL],
            "models without its subcommand": ["models"],
            "--timeout without value": ["models", "list", "--timeout"],
            "--timeout not a number": ["health", "--timeout", "soon"],
            "--timeout zero": ["--timeout", "0", "health"],
            "--top-k not a number": ["classify", "-m", MODEL, "--top-k", "one", "t"],
            "more --pair than texts": ["classify", "-m", MODEL, "a", "--pair", "x", "--pair", "y"],
            "--server port out of range": ["--server", "127.0.0.1:99999", "health"],
            "--server without a port": ["--server", "localhost", "health"],
            "--server empty": ["--server", "", "health"],
            "--rate zero": ["bench", "-m", MODEL, "--rate", "0"],
            "--rate and --concurrency": ["bench", "-m", MODEL, "--rate", "5", "-c", "4"],
        }
        for what, args in cases.items():
            proc = run_cli(*args, env={"BERTSERVE_SERVER": closed_address()})
            self.assertExit(proc, 2, what)
            self.assertNotEqual(proc.stderr.strip(), "", f"{what}: no message on stderr")

    def test_help_exits_0_and_names_the_exit_codes(self):
        for args in (["--help"], ["classify", "--help"], ["models", "list", "--help"],
                     ["health", "--help"]):
            proc = run_cli(*args)
            self.assertExit(proc, 0, " ".join(args))
            self.assertIn("Usage:", proc.stdout)
            self.assertIn("Exit codes:", proc.stdout)
        self.assertIn("health exits 0 only when both", run_cli("health", "--help").stdout)

    def test_version(self):
        for args in (["--version"], ["models", "list", "--version"]):
            proc = run_cli(*args)
            self.assertExit(proc, 0, " ".join(args))
            self.assertEqual(proc.stdout, f"bertserve-cli {project_version()}\n")


class CliHealthOfUnreadyServerTest(CliTestCase):
    """A startup model that cannot load keeps readiness NOT_SERVING for good,
    while liveness is SERVING: health must say so and exit 3."""

    @classmethod
    def setUpClass(cls):
        harness.start_server(cls, load=["broken-model"])

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_not_ready_exits_3(self):
        address = self.server.address
        proc = run_cli("health", "--server", address)
        self.assertExit(proc, 3, "health of an unready server")
        self.assertRegex(proc.stdout, r"(?m)^liveness\s+SERVING$")
        self.assertRegex(proc.stdout, r"(?m)^readiness\s+NOT_SERVING$")
        proc = run_cli("--json", "health", "--server", address)
        self.assertExit(proc, 3, "health --json of an unready server")
        self.assertEqual(json.loads(proc.stdout),
                         {"liveness": "SERVING", "readiness": "NOT_SERVING"})

    def test_unreachable_server_exits_1(self):
        proc = run_cli("health", "--server", closed_address(), "--timeout", "10")
        self.assertExit(proc, 1, "health of a closed port")
        self.assertIn("UNAVAILABLE", proc.stderr)
        self.assertEqual(proc.stdout, "")


if __name__ == "__main__":
    unittest.main()
