"""deploy/kserve: the KServe ServingRuntime and InferenceService agree with
each other and with what KServe requires of a gRPC custom runtime (the
container KServe looks for, the h2c port, protocol grpc-v2, the model
repository where the storage initializer puts it), every argument is a flag
`bertserve --help` documents, and a server started with exactly the
runtime's arguments (ports aside) answers the Open Inference Protocol on the
port the runtime names, with its probes' health services. The runtime's
container is validated against the Kubernetes Pod schema by
validate_manifests.mjs (deploy_schemas); KServe's own kinds have no schema
package here, so their fields are checked below."""

import os
import re
import subprocess
import sys
import unittest

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
import test_v2  # noqa: E402  (the v2 stubs)
from test_manifests import ManifestServer  # noqa: E402

ROOT = harness.require_env("BERTSERVE_SOURCE_DIR")
KSERVE = os.path.join(ROOT, "deploy", "kserve")
# Where KServe's storage initializer writes the storageUri's contents.
KSERVE_MODEL_DIR = "/mnt/models"


def load(name):
    with open(os.path.join(KSERVE, name)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    assert len(docs) == 1, f"{name}: one object expected, found {len(docs)}"
    return docs[0]


def flag_values(args):
    """{--flag: value} of --flag=value arguments (the only form used)."""
    values = {}
    for arg in args:
        flag, sep, value = arg.partition("=")
        assert sep, f"{arg}: write --flag=value"
        values[flag] = value
    return values


class KServeManifestsTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.runtime = load("servingruntime.yaml")
        cls.isvc = load("inferenceservice.yaml")
        cls.container = cls.runtime["spec"]["containers"][0]
        cls.args = flag_values(cls.container["args"])

    def test_kinds_and_references(self):
        self.assertEqual((self.runtime["apiVersion"], self.runtime["kind"]),
                         ("serving.kserve.io/v1alpha1", "ServingRuntime"))
        self.assertEqual((self.isvc["apiVersion"], self.isvc["kind"]),
                         ("serving.kserve.io/v1beta1", "InferenceService"))
        model = self.isvc["spec"]["predictor"]["model"]
        self.assertEqual(model["runtime"], self.runtime["metadata"]["name"])
        formats = [(f["name"], f.get("version")) for f in self.runtime["spec"]["supportedModelFormats"]]
        self.assertIn((model["modelFormat"]["name"], model["modelFormat"].get("version")), formats)
        self.assertEqual(model["protocolVersion"], "grpc-v2")
        self.assertIn("grpc-v2", self.runtime["spec"]["protocolVersions"])
        self.assertRegex(model["storageUri"], r"^(pvc|s3|gs|https?)://")

    def test_container_is_what_kserve_expects(self):
        self.assertEqual(len(self.runtime["spec"]["containers"]), 1)
        self.assertEqual(self.container["name"], "kserve-container")
        port = self.container["ports"][0]
        self.assertEqual(port["name"], "h2c", "KServe carries gRPC on a port named h2c")
        self.assertEqual(port["containerPort"], int(self.args["--listen"].rsplit(":", 1)[1]))
        self.assertEqual(self.args["--model-repository"], KSERVE_MODEL_DIR)
        for probe, service in (("readinessProbe", "readiness"), ("livenessProbe", "")):
            grpc_probe = self.container[probe]["grpc"]
            self.assertEqual(grpc_probe["port"], port["containerPort"], probe)
            self.assertEqual(grpc_probe.get("service", ""), service, probe)
        grace = 30  # Kubernetes' default terminationGracePeriodSeconds
        pre_stop = int(self.container["lifecycle"]["preStop"]["exec"]["command"][1])
        self.assertLess(pre_stop + float(self.args["--drain-timeout"]), grace)

    def test_every_flag_is_one_the_binary_has(self):
        help_text = subprocess.run([harness.require_env("BERTSERVE_BIN"), "--help"], check=True,
                                   capture_output=True, text=True).stdout
        flags = set(re.findall(r"(--[a-z][a-z0-9-]*)", help_text))
        for flag in self.args:
            self.assertIn(flag, flags, f"{flag} is not in bertserve --help")

    def test_runtime_arguments_serve_v2(self):
        # The runtime's arguments, with the test models for KServe's
        # /mnt/models and free loopback ports for the fixed ones (another
        # server may hold 50051 here).
        args = [f"{flag}={value}" for flag, value in self.args.items()
                if flag not in ("--model-repository", "--listen", "--metrics-listen")]
        server = ManifestServer(args + ["--model-repository=" + harness.models_dir(),
                                        "--listen=127.0.0.1:0", "--metrics-listen=127.0.0.1:0",
                                        "--load=plain"])
        self.addCleanup(server.kill)
        server.start()
        server.wait_ready()
        stub = test_v2.pb_grpc.GRPCInferenceServiceStub(server.channel)
        self.assertTrue(stub.ServerReady(test_v2.pb.ServerReadyRequest()).ready)
        response = stub.ModelInfer(test_v2.text_request("plain", [("hello", "")]),
                                   timeout=harness.RPC_TIMEOUT_S)
        self.assertEqual([o.name for o in response.outputs], ["LABEL", "PROBABILITIES"])
        server.stop()


if __name__ == "__main__":
    unittest.main()
