"""The shipped Envoy config closes idle upstream connections before the app does, so Envoy never sends a request
on a connection the app is closing.

Immich's server is Node, which closes a keep-alive connection after 5 s idle. Measured in front of it with the
earlier envoy.yaml: 9 of 208 requests in bursts 6 s apart got `503 UC` (upstream_reset_before_response_started),
and the filter's document fetches fell back to the static CSP (documents hashed in-stream get the 503 like any
other request). That is a race (the request and Node's close cross
on the wire), too rare to hit on purpose in a short test, so the upstream here makes its outcome certain: it
closes a connection after 5 s idle like Node, and a request that arrives on a connection already idle for
RACE_AFTER seconds is the one that crossed the close: it is read and the connection is closed without an
answer, as Node's close does to it. Two Envoys run side by side against it, the shipped config and the same
config without the cluster's idle_timeout; each sends a request after RACE_AFTER + a little idle time.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import DOCUMENT, Envoy, request
from secure_headers_harness.envoy import without_headers_stop_iteration

APP_KEEPALIVE = 5.0  # Node's default keepAliveTimeout
RACE_AFTER = 4.5  # a request on a connection idle this long meets the app's close
IDLE_GAP = 4.7  # between rounds: past RACE_AFTER, past the shipped idle_timeout (4 s), short of APP_KEEPALIVE
ROUNDS = 3
PAGE = (b"<!doctype html><html><head><script>document.documentElement.dataset.ready = '1';</script></head>"
        b"<body>keep-alive</body></html>")
POLICY = ('{"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"], '
          '"inline_script_hashes": {"max_scripts": 2}}]}')


class NodeLikeUpstream(socketserver.ThreadingTCPServer):
    """HTTP/1.1 keep-alive upstream that closes idle connections like Node (see the module docstring)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), KeepAliveHandler)
        self.port = self.server_address[1]
        self.unanswered = 0
        self.answered = 0
        self.lock = threading.Lock()

    def count(self, answered: bool) -> None:
        with self.lock:
            if answered:
                self.answered += 1
            else:
                self.unanswered += 1


class KeepAliveHandler(socketserver.BaseRequestHandler):
    def handle(self):
        conn: socket.socket = self.request
        conn.settimeout(APP_KEEPALIVE)  # idle this long: close, as Node does
        buffered = b""
        last_answer: float | None = None
        while True:
            while b"\r\n\r\n" not in buffered:
                try:
                    chunk = conn.recv(65536)
                except (TimeoutError, OSError):
                    return
                if not chunk:
                    return
                buffered += chunk
            head, buffered = buffered.split(b"\r\n\r\n", 1)  # GET requests only: no body
            if last_answer is not None and time.monotonic() - last_answer >= RACE_AFTER:
                self.server.count(answered=False)
                return  # the close crossed this request: it gets no answer
            html = head.split(b" ", 2)[1].startswith(b"/page")
            body = PAGE if html else b'{"res":"pong"}'
            kind = b"text/html; charset=utf-8" if html else b"application/json"
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Powered-By: Express\r\nContent-Type: " + kind +
                         b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nKeep-Alive: timeout=5\r\n\r\n" + body)
            self.server.count(answered=True)
            last_answer = time.monotonic()


def without_idle_timeout(config: dict) -> None:
    """The earlier envoy.yaml: the immich cluster with Envoy's default (no idle timeout)."""
    cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "immich")
    del cluster["typed_extension_protocol_options"]


def counters(envoy: Envoy) -> dict[str, int]:
    with urllib.request.urlopen(f"{envoy.admin}/stats?filter=(upstream_cx_idle_timeout|inline_scripts)") as r:
        lines = r.read().decode().splitlines()
    return {name: int(value) for name, value in (line.split(": ") for line in lines)}


def rounds(envoy: Envoy) -> list[int]:
    """The statuses of a probe after each idle gap: a document (hashed in-stream, or fetched by the filter) or an
    API call, in turn. Before each gap, an API call leaves a live connection in Envoy's pool (also after a probe
    that failed). First, a document on a fresh connection tells the filter its document path."""
    assert request(envoy.ports["http"], "/page", headers=DOCUMENT).status == 200
    probes = []
    for i in range(ROUNDS):
        assert request(envoy.ports["http"], "/api/server/ping").status == 200
        time.sleep(IDLE_GAP)
        path, headers = ("/page", DOCUMENT) if i % 2 == 0 else ("/api/server/ping", None)
        probes.append(request(envoy.ports["http"], path, headers=headers).status)
    return probes


@pytest.fixture
def node_like_upstream():
    server = NodeLikeUpstream()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# What the first document (before the gaps) leaves in the counters: hashed in-stream; on the fetch path, the
# document that told the filter so goes on with the static CSP.
FIRST_DOCUMENT_HASHED = {"in-stream": 1, "fetch": 0}
PATH_EDITS = {"in-stream": [], "fetch": [without_headers_stop_iteration]}


@pytest.mark.parametrize("document_path", list(PATH_EDITS))
def test_idle_timeout_below_the_apps_keepalive_avoids_503s(built_modules, node_like_upstream, document_path):
    edits = PATH_EDITS[document_path]
    shipped = Envoy(POLICY, node_like_upstream.port, edits=edits)
    earlier = Envoy(POLICY, node_like_upstream.port, edits=[*edits, without_idle_timeout])
    with shipped, earlier, ThreadPoolExecutor(2) as pool:
        shipped_run, earlier_run = pool.submit(rounds, shipped), pool.submit(rounds, earlier)
        shipped_statuses, earlier_statuses = shipped_run.result(), earlier_run.result()
        shipped_counters, earlier_counters = counters(shipped), counters(earlier)
    fetch_failed = "wasmcustom.secure_headers.inline_scripts.fallback.fetch_failed"
    hashed = "wasmcustom.secure_headers.inline_scripts.documents_hashed"
    print(f"\nshipped: {shipped_statuses} {shipped_counters}\nwithout idle_timeout: {earlier_statuses} "
          f"{earlier_counters}\nupstream: {node_like_upstream.answered} answered, "
          f"{node_like_upstream.unanswered} closed on arrival")

    # The shipped config: every request answered, every document hashed, and Envoy closed its idle connections
    # itself.
    documents = len(range(0, ROUNDS, 2))
    first = FIRST_DOCUMENT_HASHED[document_path]
    assert shipped_statuses == [200] * ROUNDS
    assert shipped_counters[fetch_failed] == 0 and shipped_counters[hashed] == documents + first
    assert shipped_counters["cluster.immich.upstream_cx_idle_timeout"] >= ROUNDS

    # The same config without it: each request after a gap that went through the route got Envoy's 503. In-stream
    # that is every one, documents included; on the fetch path each document fetch failed instead, and the
    # document itself then went through the route on a fresh connection: 200, with the static CSP.
    if document_path == "in-stream":
        assert earlier_statuses == [503] * ROUNDS
        assert earlier_counters[fetch_failed] == 0 and earlier_counters[hashed] == first
    else:
        assert earlier_statuses == [200 if i % 2 == 0 else 503 for i in range(ROUNDS)]
        assert earlier_counters[fetch_failed] == documents and earlier_counters[hashed] == 0
    assert earlier_counters["cluster.immich.upstream_cx_idle_timeout"] == 0
