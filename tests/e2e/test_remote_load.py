"""Real Envoy loads the module from vm_config.code.remote (an http_uri plus sha256), as fleets that pin a release
do, and what it does when the sha256 is wrong.

Measured with Envoy 1.40: the fetch is asynchronous; the listeners wait (warm) until it ends. With the right
sha256 the filter then works as with a local file. With a wrong one Envoy does NOT refuse the configuration: it
fetches 1 + num_retries times, logs "Retry limit exceeded" and "Plugin secure_headers failed to load", starts the
listeners anyway and applies the failure policy: FAIL_OPEN serves every response without the filter, FAIL_CLOSED
answers 503. An unreachable URL ends the same way. `nack_on_code_cache_miss` makes a static bootstrap exit even with the right sha256 (the cache is
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
import yaml

from secure_headers_harness import paths
from conftest import DOCUMENT, ENVOY_MODULE, Envoy, request
from secure_headers_harness.envoy import RemoteModule, committed_policy
from secure_headers_harness.paths import ROOT
from secure_headers_harness.processes import free_port

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
    envoy = Envoy(committed_policy(), upstream.port, edits=[RemoteModule(module_server.port, module_sha256())])
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
@pytest.mark.parametrize("fault", ["wrong sha256", "unreachable"])
def test_failed_fetch_starts_without_the_filter(module_server, upstream, failure_policy, status, fault):
    if fault == "wrong sha256":
        remote = RemoteModule(module_server.port, "0" * 64, num_retries=2)
    else:
        remote = RemoteModule(free_port(), module_sha256(), num_retries=2)
    envoy = Envoy(committed_policy(), upstream.port, failure_policy=failure_policy, edits=[remote])
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
    if fault == "wrong sha256":
        # Every attempt fetched the whole module and found it wrong: 1 + num_retries per plugin configuration.
        assert module_server.fetches >= 1 + remote.num_retries


def test_nack_on_code_cache_miss_refuses_even_the_right_module_at_bootstrap(module_server, upstream):
    remote = RemoteModule(module_server.port, module_sha256(), nack_on_code_cache_miss=True)
    accepted, log = Envoy(committed_policy(), upstream.port, edits=[remote]).outcome()
    assert not accepted
    assert "Unable to create Wasm plugin secure_headers" in log


def test_readme_remote_example_has_the_tested_shape():
    """The README's code.remote example sets the same fields, nested the same way, as the tests above."""
    readme = (ROOT / "README.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "  remote:\n" in b]
    assert len(blocks) == 1
    shown = blocks[0]["vm_config"]["code"]["remote"]
    tested = {"static_resources": {"clusters": []}, "vm_config": {}}
    RemoteModule(1, "0" * 64)(tested)
    tested = tested["vm_config"]["code"]["remote"]

    def shape(node):
        return {k: shape(v) for k, v in node.items()} if isinstance(node, dict) else type(node).__name__

    assert shape(shown) == shape(tested)
    assert re.fullmatch(r"[0-9a-f]{64}", shown["sha256"])
    version = paths.VERSION
    assert shown["http_uri"]["uri"].endswith(f"/secure-headers-{version}/proxy-wasm/secure_headers.wasm")
