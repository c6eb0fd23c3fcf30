"""Runs a built bertserve image and checks it from the host; used by
scripts/image-check.sh.

  check_image.py --image IMAGE --container NAME --models DIR -- BUILDAH...

BUILDAH... is the buildah command with its global options (storage root,
driver). The container NAME (made with `buildah from IMAGE`) is run with the
image's own entrypoint and arguments, the model repository DIR mounted at
/models, and the listeners moved to ephemeral loopback ports (chroot isolation
shares the host's network). The check passes when the server turns ready, a
Classify of each demo model from the host matches PyTorch running the same
model.pt, /metrics reports bertserve_ready 1, and SIGTERM drains the server to
exit code 0.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from google.protobuf import text_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))
import harness  # noqa: E402  (protocol stubs, server process, PyTorch reference)

# bert-base-uncased ids of "My name is John" + "pair", checked independently of
# the server (DESIGN.md): tokenization inside the image must give these.
PAIR_TEXT, PAIR_TEXT_PAIR = "My name is John", "pair"
PAIR_IDS = [101, 2026, 2171, 2003, 2198, 102, 3940, 102]
PAIR_TYPE_IDS = [0, 0, 0, 0, 0, 0, 1, 1]
FREE_TEXT = "what a lovely day"
SCORE_TOLERANCE = 1e-4


def descendants(pid):
    """Every process below pid, found through /proc (children first listed)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


class ImageServer(harness.Server):
    """bertserve inside the image, started by `buildah run`.

    `buildah run` answers SIGTERM by killing its child, and SIGKILL leaves the
    child running, so signals go to the bertserve process itself and kill()
    takes the whole process tree.
    """

    def __init__(self, buildah, container, models, entrypoint):
        super().__init__(model_repository="")
        self.buildah = buildah
        self.container = container
        self.models_dir = models
        self.entrypoint = entrypoint

    def command(self):
        return self.buildah + [
            "run", "--isolation", "chroot", "-v", f"{self.models_dir}:/models:ro",
            self.container, "--"] + self.entrypoint + [
            "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0"]

    def server_pid(self):
        for pid in descendants(self.proc.pid):
            if process_name(pid) == "bertserve":
                return pid
        raise harness.ServerError("no bertserve process under buildah run\n" + self.log_tail())

    def stop(self, timeout=harness.STOP_TIMEOUT_S, after_signal=None):
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        os.kill(self.server_pid(), signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise harness.ServerError(f"bertserve did not exit within {timeout:.0f}s of "
                                      "SIGTERM\n" + self.log_tail())
        harness._LIVE_SERVERS.discard(self)
        for t in self._threads:
            t.join(10)
        if code != 0:
            raise harness.ServerError(f"buildah run exited with code {code} after SIGTERM\n"
                                      + self.log_tail())

    def kill(self):
        if self.proc is not None:
            for pid in reversed(descendants(self.proc.pid)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        super().kill()


def image_command(buildah, image):
    """The image's ENTRYPOINT followed by its CMD, as `docker run IMAGE` runs it."""
    out = subprocess.run(buildah + ["inspect", "--type", "image", image],
                         check=True, capture_output=True, text=True).stdout
    config = json.loads(out)["OCIv1"]["config"]
    return (config.get("Entrypoint") or []) + (config.get("Cmd") or [])


def check_scores(name, result, labels, want_probs):
    got = {s.index: s for s in result.scores}
    if sorted(got) != list(range(len(labels))):
        raise AssertionError(f"{name}: scores for indices {sorted(got)}, want all of {labels}")
    worst = 0.0
    for index, want in enumerate(want_probs):
        if got[index].label != labels[index]:
            raise AssertionError(f"{name}: index {index} labelled {got[index].label!r}, "
                                 f"want {labels[index]!r}")
        worst = max(worst, abs(got[index].score - want))
    if worst > SCORE_TOLERANCE:
        raise AssertionError(f"{name}: scores {[got[i].score for i in range(len(labels))]}, "
                             f"PyTorch gives {want_probs}")
    return worst


def model_labels(models_dir, name):
    config = harness.config_pb2.ModelConfig()
    with open(os.path.join(models_dir, name, "config.pbtxt")) as f:
        text_format.Parse(f.read(), config)
    return list(config.labels)


def token_ids(server, model, text, pair=""):
    request = harness.inference_pb2.TokenizeRequest(model=model)
    request.input.CopyFrom(harness.text_input(text, pair))
    response = server.inference.Tokenize(request)
    return [t.id for t in response.tokens], [t.type_id for t in response.tokens]


def check(server, models_dir):
    started = time.monotonic()
    server.start()
    server.wait_ready()
    print(f"image-check: ready {time.monotonic() - started:.1f}s after start, "
          f"gRPC on {server.address}, metrics on 127.0.0.1:{server.metrics_port}")

    # demo-sentiment: forward(input_ids, attention_mask, token_type_ids), a
    # text pair with known ids and a free text, in one request.
    model = "demo-sentiment"
    ids, types = token_ids(server, model, PAIR_TEXT, PAIR_TEXT_PAIR)
    if (ids, types) != (PAIR_IDS, PAIR_TYPE_IDS):
        raise AssertionError(f"Tokenize({PAIR_TEXT!r}, {PAIR_TEXT_PAIR!r}) gave ids {ids} "
                             f"types {types}, want {PAIR_IDS} {PAIR_TYPE_IDS}")
    free_ids, free_types = token_ids(server, model, FREE_TEXT)
    response = server.inference.Classify(harness.classify_request(
        model, [PAIR_TEXT, FREE_TEXT], pairs=[PAIR_TEXT_PAIR, ""]))
    reference = harness.ReferenceModel(os.path.join(models_dir, model))
    labels = model_labels(models_dir, model)
    worst = 0.0
    for result, (want_ids, want_types) in zip(
            response.results, [(PAIR_IDS, PAIR_TYPE_IDS), (free_ids, free_types)]):
        if result.num_tokens != len(want_ids):
            raise AssertionError(f"{model}: {result.num_tokens} tokens, want {len(want_ids)}")
        want = harness.probabilities(reference.logits(want_ids, want_types))
        worst = max(worst, check_scores(model, result, labels, want))
    if len(response.results) != 2:
        raise AssertionError(f"{model}: {len(response.results)} results for 2 inputs")

    # demo-topics: forward(input_ids, attention_mask), dict output.
    topics = "demo-topics"
    topic_ids, _ = token_ids(server, topics, FREE_TEXT)
    result = server.inference.Classify(harness.classify_request(topics, [FREE_TEXT])).results[0]
    want = harness.probabilities(
        harness.ReferenceModel(os.path.join(models_dir, topics)).logits(topic_ids))
    worst = max(worst, check_scores(topics, result, model_labels(models_dir, topics), want))
    top = max(result.scores, key=lambda s: s.score)
    print(f"image-check: Classify matches PyTorch on {model} and {topics} "
          f"(largest score difference {worst:.1e}; {topics} says {top.label} "
          f"{top.score:.4f} for {FREE_TEXT!r})")

    body = harness.scrape_metrics(server.metrics_port)
    if "bertserve_ready 1" not in body:
        raise AssertionError("/metrics does not report bertserve_ready 1")
    server.stop()
    print("image-check: /metrics reports ready; SIGTERM drained the server to exit code 0")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True)
    parser.add_argument("--container", required=True)
    parser.add_argument("--models", required=True, help="the model repository (models/)")
    parser.add_argument("buildah", nargs="+", help="buildah and its global options")
    args = parser.parse_args()
    models_dir = os.path.abspath(args.models)
    server = ImageServer(args.buildah, args.container, models_dir,
                         image_command(args.buildah, args.image))
    try:
        check(server, models_dir)
    except Exception as e:  # report, take the process tree down, fail
        print(f"image-check: FAILED: {e}\n{server.log_tail()}", file=sys.stderr)
        server.kill()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
