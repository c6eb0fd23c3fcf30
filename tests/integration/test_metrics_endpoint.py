"""The /metrics endpoint of a real server, probed as a hostile client would:
50 slow or idle connections do not delay a scrape; an over-long request head
is refused, not served from a truncated read; /healthz and /readyz follow the
gRPC health services (readiness waits for a startup model whose model.pt is a
FIFO nobody writes yet)."""

import os
import shutil
import socket
import tempfile
import unittest
import urllib.error
import urllib.request

import harness

SLOW_CLIENTS = 50


def http_get(port, path, timeout):
    """(status, body) of GET path; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class MetricsEndpointTest(harness.ServerTestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bertserve-endpoint-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, True)
        repo = os.path.join(cls.tmp, "models")
        for name in ("tt-tuple", "plain"):
            shutil.copytree(os.path.join(harness.models_dir(), name), os.path.join(repo, name))
        cls.fifo = harness.FifoModel(repo, "plain")
        harness.start_server(cls, repository=repo, load=["tt-tuple", "plain"])
        cls.addClassCleanup(cls.fifo.release)

    def test_1_health_paths_follow_the_grpc_health_services(self):
        port = self.server.metrics_port
        # `plain` is still reading its FIFO: alive, not ready, on both protocols.
        self.assertEqual(self.server.health_check(""), harness.SERVING)
        self.assertEqual(http_get(port, "/healthz", 10), (200, "ok\n"))
        self.assertEqual(self.server.health_check("readiness"), harness.NOT_SERVING)
        self.assertEqual(http_get(port, "/readyz", 10), (503, "not serving\n"))
        self.fifo.feed()
        self.server.wait_ready()
        self.assertEqual(http_get(port, "/readyz", 10), (200, "ok\n"))

    def test_2_slow_and_idle_clients_do_not_delay_a_scrape(self):
        port = self.server.metrics_port
        slow = []
        try:
            for i in range(SLOW_CLIENTS):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                if i % 2 == 0:
                    s.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
                slow.append(s)
            for _ in range(3):
                for s in slow[::2]:
                    s.sendall(b"a")  # a byte at a time, never the blank line
                # Prometheus' default scrape timeout is 10 s; 1 s is plenty here.
                status, body = http_get(port, "/metrics", timeout=1)
                self.assertEqual(status, 200)
                self.assertIn("bertserve_build_info", body)
        finally:
            for s in slow:
                s.close()

    def test_3_an_over_long_request_head_is_refused(self):
        with socket.create_connection(("127.0.0.1", self.server.metrics_port), timeout=30) as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\nX-Filler: " + b"a" * (17 << 10) + b"\r\n\r\n")
            answer = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 431 "), answer[:200])
        self.assertNotIn(b"bertserve_build_info", answer)


if __name__ == "__main__":
    unittest.main()
