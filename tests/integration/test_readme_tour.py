"""The README's "A tour" section, run exactly as printed against the demo server.

The test reads the section's fenced code blocks from README.md (no copy of the
commands lives here) and plays them in order in one bash session started at the
repository root, the way a user types them into one terminal while
`scripts/demo.sh` runs in another:

  ```sh       each logical line (backslash continuations joined) is one step;
              assignments and `cd` carry over to the next steps
  ```python   one step, fed to Python on stdin in the session's current
              directory (so modules there import, as in an interactive python3)

A step fails the test when it exits non-zero (pipelines count with pipefail),
when a `$cli`, curl or Python step prints nothing, or when a step with --json
prints no JSON document; the message names the step, its output and the
server's log. Steps after a failed one do not run.

The server is the demo one (scripts/make-demo-repo.sh into a temporary
directory, every model loaded at startup, as scripts/demo.sh does) but on free
ports instead of 50051 and 9400, so the test changes only what a user would
change to point the tour at another server:

  - BERTSERVE_SERVER is set to the server's address (the CLI's default server);
  - 127.0.0.1:50051, 127.0.0.1:50052 and 127.0.0.1:9400 in the blocks become
    the server's gRPC, admin and metrics addresses;
  - build/client/bertserve-cli becomes BERTSERVE_CLI (the build may live
    elsewhere);
  - TMPDIR is a temporary directory of the test, so `mktemp -d` stays in it;
  - `python3` is the Python running this test (Debian's, as on the Debian 12
    machine the README is written for), first on PATH.

grpcurl is not packaged in Debian, so the grpcurl steps run only where grpcurl
is on PATH; the request documents they send are checked against the protocol
everywhere.

BERTSERVE_README (default: README.md of the source tree) names the file to read,
so that a deliberately broken copy can show the test failing.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

from google.protobuf import json_format, symbol_database

import harness

TOUR_HEADING = "## A tour"
TOUR_TIMEOUT_S = 240.0  # below the CTest TIMEOUT, so a hanging step is named
DEMO_CLI_PATH = "build/client/bertserve-cli"
DEMO_GRPC_ADDRESS = "127.0.0.1:50051"
DEMO_METRICS_ADDRESS = "127.0.0.1:9400"
DEMO_ADMIN_ADDRESS = "127.0.0.1:50052"


def readme_path():
    return os.environ.get("BERTSERVE_README") or os.path.join(harness.SOURCE_DIR, "README.md")


def tour_blocks(text):
    """[(language, code)] of the fenced blocks under the tour heading, in order."""
    lines = text.splitlines()
    try:
        start = lines.index(TOUR_HEADING) + 1
    except ValueError:
        raise AssertionError(f"{readme_path()} has no line {TOUR_HEADING!r}")
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks, language, code = [], None, []
    for line in lines[start:end]:
        fence = re.match(r"^```(\S*)\s*$", line)
        if fence and language is None:
            language, code = fence.group(1), []
        elif fence:
            blocks.append((language, "\n".join(code)))
            language = None
        elif language is not None:
            code.append(line)
    if language is not None:
        raise AssertionError(f"unterminated ```{language} block in {TOUR_HEADING!r}")
    return blocks


def shell_lines(code):
    """Logical lines of a shell block: continuations joined (kept verbatim),
    blank and comment-only lines dropped."""
    out, pending = [], ""
    for line in code.split("\n"):
        pending += line
        if pending.endswith("\\"):
            pending += "\n"
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            out.append(pending)
        pending = ""
    if pending.strip():
        out.append(pending)
    return out


class Step:
    """One command of the tour and what running it printed."""

    def __init__(self, kind, code):
        self.kind = kind  # "sh" or "python"
        self.code = code
        self.rc = None
        self.stdout = ""
        self.stderr = ""

    def first_word(self):
        return self.code.split(None, 1)[0] if self.code.strip() else ""

    def must_print(self):
        return self.kind == "python" or self.first_word() in ("$cli", "curl", "grpcurl")

    def describe(self):
        return (f"README tour step ({self.kind}):\n{self.code}\n"
                f"exit code: {self.rc}\n---- stdout ----\n{self.stdout}"
                f"---- stderr ----\n{self.stderr}---- end ----")


def tour_steps(text, with_grpcurl):
    """The steps of the tour, in order, and the grpcurl steps left out."""
    steps, left_out = [], []
    for language, code in tour_blocks(text):
        if language in ("sh", "bash", "shell", "console"):
            for line in shell_lines(code):
                step = Step("sh", line)
                if step.first_word() == "grpcurl" and not with_grpcurl:
                    left_out.append(step)
                else:
                    steps.append(step)
        elif language == "python":
            steps.append(Step("python", code))
    return steps, left_out


def substitute(code, server):
    code = code.replace(DEMO_GRPC_ADDRESS, server.address)
    code = code.replace(DEMO_ADMIN_ADDRESS, server.admin_address)
    return code.replace(DEMO_METRICS_ADDRESS, f"127.0.0.1:{server.metrics_port}")


class ReadmeTourTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        with open(readme_path(), encoding="utf-8") as f:
            cls.readme = f.read()
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-tour-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        repository = harness.make_demo_repo(os.path.join(cls.tmp, "demo"))
        # As scripts/demo.sh runs it: management on the loopback admin
        # listener only (no token file), reflection on.
        harness.start_server(cls, repository=repository,
                             management_token=False, admin=True, extra_args=["--reflection"])
        cls.server.wait_ready()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def run_tour(self, steps):
        """Runs the steps in one bash session; fills in rc, stdout, stderr.
        Returns the steps that ran."""
        work = tempfile.mkdtemp(prefix="steps-", dir=self.tmp)
        session_tmp = tempfile.mkdtemp(prefix="TMPDIR-", dir=self.tmp)
        script = ["set -o pipefail"]
        for i, step in enumerate(steps):
            base = os.path.join(work, str(i))
            code = substitute(step.code, self.server)
            if step.kind == "sh":
                code = code.replace(DEMO_CLI_PATH, harness.require_env("BERTSERVE_CLI"))
            else:
                with open(base + ".py", "w", encoding="utf-8") as f:
                    f.write(code + "\n")
                code = f"{shlex.quote(sys.executable)} - <{shlex.quote(base + '.py')}"
            # Braces, not a subshell: assignments and cd persist. The newline
            # before } ends a trailing comment.
            out, err, rc = (shlex.quote(base + ext) for ext in (".out", ".err", ".rc"))
            script.append(f"{{ {code}\n}} >{out} 2>{err} </dev/null; "
                          f"echo $? >{rc}; [ \"$(cat {rc})\" = 0 ] || exit 0")
        bin_dir = tempfile.mkdtemp(prefix="bin-", dir=self.tmp)
        os.symlink(sys.executable, os.path.join(bin_dir, "python3"))
        env = dict(os.environ, BERTSERVE_SERVER=self.server.address, TMPDIR=session_tmp,
                   PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
        try:
            session = subprocess.run(["bash", "-c", "\n".join(script)], cwd=harness.SOURCE_DIR,
                                     env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                     text=True, timeout=TOUR_TIMEOUT_S)
            self.session_output = session.stdout + session.stderr
            timed_out = False
        except subprocess.TimeoutExpired:
            self.session_output = ""
            timed_out = True
        ran = []
        for i, step in enumerate(steps):
            base = os.path.join(work, str(i))
            if not os.path.exists(base + ".out"):
                break
            with open(base + ".out", encoding="utf-8", errors="replace") as f:
                step.stdout = f.read()
            with open(base + ".err", encoding="utf-8", errors="replace") as f:
                step.stderr = f.read()
            if os.path.exists(base + ".rc"):
                with open(base + ".rc") as f:
                    step.rc = int(f.read().strip())
            elif timed_out:
                self.fail(f"still running after {TOUR_TIMEOUT_S:.0f}s: " + step.describe())
            ran.append(step)
        return ran

    def test_every_tour_command_works_as_printed(self):
        steps, left_out = tour_steps(self.readme, with_grpcurl=bool(shutil.which("grpcurl")))
        self.assertTrue(any(s.first_word() == "$cli" for s in steps),
                        f"no `$cli` command found under {TOUR_HEADING!r} in {readme_path()}")
        for step in steps:
            left = re.findall(r"\b(?:127\.0\.0\.1|localhost):\d+", substitute(step.code,
                                                                              self.server))
            for address in left:
                self.assertIn(address, (self.server.address, self.server.admin_address,
                                        f"127.0.0.1:{self.server.metrics_port}"),
                              f"the tour names {address}, which this test cannot point at "
                              f"its server:\n{step.code}")
        if left_out:
            sys.stderr.write("grpcurl is not installed; not run:\n"
                             + "\n".join(s.code for s in left_out) + "\n")

        ran = self.run_tour(steps)
        for step in ran:
            if step.rc != 0:
                self.fail("failed: " + step.describe())
            if step.must_print() and not step.stdout.strip():
                self.fail("printed nothing: " + step.describe())
            if step.kind == "sh" and re.search(r"(^|\s)--json(\s|$)", step.code):
                try:
                    json.loads(step.stdout)
                except ValueError as e:
                    self.fail(f"--json printed no JSON document ({e}): " + step.describe())
        if len(ran) < len(steps):
            self.fail(f"bash stopped before the step\n{steps[len(ran)].code}\n"
                      f"---- bash said ----\n{self.session_output}---- end ----")

    def test_grpcurl_requests_match_the_protocol(self):
        """Every grpcurl -d document parses as the named method's request."""
        steps, left_out = tour_steps(self.readme, with_grpcurl=False)
        db = symbol_database.Default()
        checked = 0
        for step in left_out:
            words = shlex.split(step.code.replace("\\\n", " "))
            if "-d" not in words:
                continue
            document = words[words.index("-d") + 1]
            method = words[-1]
            m = re.fullmatch(r"([\w.]+)/(\w+)", method)
            self.assertIsNotNone(m, f"the last word is not SERVICE/METHOD:\n{step.code}")
            try:
                rpc = db.pool.FindServiceByName(m.group(1)).FindMethodByName(m.group(2))
            except KeyError:
                self.fail(f"the protocol has no method {method}:\n{step.code}")
            request = db.GetSymbol(rpc.input_type.full_name)()
            try:
                json_format.Parse(document, request)
            except json_format.ParseError as e:
                self.fail(f"the -d document is not a {rpc.input_type.full_name} ({e}):\n"
                          f"{step.code}")
            self.assertIn("-plaintext", words, f"the server has no TLS here:\n{step.code}")
            checked += 1
        self.assertGreater(checked, 0, "the tour shows no grpcurl -d request")


if __name__ == "__main__":
    unittest.main()
