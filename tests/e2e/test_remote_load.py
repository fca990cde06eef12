"""Real Envoy loads the module from vm_config.code.remote (an http_uri plus sha256), as fleets that pin a release
do, and what it does when the sha256 is wrong.

Measured with Envoy 1.40: the fetch is asynchronous; the listeners wait (warm) until it ends. With the right
sha256 the filter then works as with a local file. With a wrong one Envoy does NOT refuse the configuration: it
fetches 1 + num_retries times, logs "Retry limit exceeded" and "Plugin secure_headers failed to load", starts the
listeners anyway and applies the failure policy: FAIL_OPEN serves every response without the filter, FAIL_CLOSED
answers 503. `nack_on_code_cache_miss` makes a static bootstrap exit even with the right sha256 (the cache is
empty at start), so it is no guard there. The README ("Loading it from a URL") says what to watch instead.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from conftest import DOCUMENT, ENVOY_MODULE, Envoy, request
from envoy_runner import RemoteModule, committed_policy

VERSION_LINE = re.compile(r"secure-headers: policy loaded \(1 rule\(s\), [\d.]+ ms\), version [\d.]+, policy sha256:")


class ModuleServer:
    """A plain HTTP server for the module's folder that counts the fetches."""

    def __init__(self, folder: Path):
        self.fetches = 0
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.port = self.httpd.server_port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def module_server(built_modules):
    server = ModuleServer(ENVOY_MODULE.parent)
    yield server
    server.close()


def module_sha256() -> str:
    return hashlib.sha256(ENVOY_MODULE.read_bytes()).hexdigest()


def remote_load_stats(envoy: Envoy) -> dict[str, int]:
    with urllib.request.urlopen(f"{envoy.admin}/stats?filter=^wasm\\.remote_load_") as r:
        lines = r.read().decode().splitlines()
    return {name: int(value) for name, value in (line.split(": ") for line in lines)}


def test_right_sha256_loads_and_the_filter_works(module_server, upstream):
    envoy = Envoy(committed_policy(), upstream.port, remote_module=RemoteModule(module_server.port, module_sha256()))
    with envoy:
        response = request(envoy.ports["http"], "/", host="immich.test", headers=DOCUMENT)
        stats = remote_load_stats(envoy)
    assert response.status == 200
    assert response.one("x-frame-options") == "SAMEORIGIN"
    assert response.one("content-security-policy")
    assert response.one("x-powered-by") is None
    assert stats["wasm.remote_load_fetch_successes"] >= 1 and stats["wasm.remote_load_fetch_failures"] == 0
    assert VERSION_LINE.search(envoy.log())


@pytest.mark.parametrize("failure_policy, status", [("FAIL_OPEN", 200), ("FAIL_CLOSED", 503)])
def test_wrong_sha256_starts_without_the_filter(module_server, upstream, failure_policy, status):
    remote = RemoteModule(module_server.port, "0" * 64, num_retries=2)
    envoy = Envoy(committed_policy(), upstream.port, failure_policy=failure_policy, remote_module=remote)
    with envoy:
        response = request(envoy.ports["http"], "/", host="immich.test", headers=DOCUMENT)
        stats = remote_load_stats(envoy)
    log = envoy.log()
    # Envoy does not refuse the configuration: the listeners come up, and the failure policy decides.
    assert response.status == status
    if failure_policy == "FAIL_OPEN":
        assert response.one("x-powered-by") == "Express", "served by the upstream, untouched"
        assert response.one("x-frame-options") is None
    assert "Retry limit exceeded for fetching data from remote data source." in log
    assert "Plugin secure_headers failed to load" in log
    assert not VERSION_LINE.search(log), "the module never ran"
    assert stats["wasm.remote_load_fetch_failures"] >= 1 and stats["wasm.remote_load_fetch_successes"] == 0
    # Every attempt fetched the whole module and found it wrong: 1 + num_retries per plugin configuration.
    assert module_server.fetches >= 1 + remote.num_retries


def test_nack_on_code_cache_miss_refuses_even_the_right_module_at_bootstrap(module_server, upstream):
    remote = RemoteModule(module_server.port, module_sha256(), nack_on_code_cache_miss=True)
    accepted, log = Envoy(committed_policy(), upstream.port, remote_module=remote).outcome()
    assert not accepted
    assert "Unable to create Wasm plugin secure_headers" in log

