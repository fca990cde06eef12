"""Fixtures for end-to-end tests against real Envoy 1.40 and real Traefik 3.7 (both from PyPI) in front of the
Immich-like upstream. The same tests run against both hosts; where a host cannot do something, the test says so."""

from __future__ import annotations

import time

import pytest
from secure_headers_harness.envoy import Envoy, document_path, without_headers_stop_iteration
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import ENVOY_DYNAMIC, HTTP_WASM_DIR as PLUGIN_DIR, PROXY_WASM as ENVOY_MODULE
from secure_headers_harness.traefik import Traefik
from secure_headers_harness.upstream import Upstream

HOSTS = ["envoy", "traefik"]
# Envoy with the native dynamic module instead of the Wasm one: a test module runs its `host` tests on it too when
# it sets ENVOY_DYNAMIC_TOO = True (the tests of the headers themselves: presets, scoping, https/http, browsers).
ENVOY_DYNAMIC_HOST = "envoy-dynamic"
# Envoy's Wasm build as Istio and Envoy Gateway configure it today (no allow_on_headers_stop_iteration): documents
# whose inline scripts are hashed are fetched by the filter instead of read in their own stream. A test module runs
# its `host` tests on it too when it sets ENVOY_FETCH_TOO = True.
ENVOY_FETCH = "envoy-fetch"
# A browser navigation (Traefik holds every GET/HEAD that need not stream, this one among them).
DOCUMENT = {"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml"}


class Proxy:
    """A running host with one policy."""

    def __init__(self, name: str, server: Envoy | Traefik):
        self.name = name
        self.server = server

    @property
    def is_envoy(self) -> bool:
        """Envoy, with either build of the filter (Wasm or the native dynamic module)."""
        return self.name in ("envoy", ENVOY_FETCH, ENVOY_DYNAMIC_HOST)

    @property
    def streamed_lacks_response_decisions(self) -> bool:
        """Traefik streams Range, `streaming_paths` and sub-resource responses: the companion headers middleware
        gives them its removals and static headers, once each, but nothing the policy decides from the response
        (keep_upstream's CSP, Cache-Control defaults). See README, "Traefik"."""
        return self.name == "traefik"

    def get(self, path: str, **kwargs):
        port = self.server.ports["https" if kwargs.get("https") else "http"]
        return request(port, path, **kwargs)

    def settle_document_path(self, path: str, host: str = "immich.test", timeout: float = 5) -> str | None:
        """Envoy's Wasm module learns how it may hash documents from the first one whose headers it holds (that one
        gets the static CSP when the answer is "fetch"): sends one and returns what the module logged; None in
        Traefik and with the native module, which have one way."""
        if self.name not in ("envoy", ENVOY_FETCH):
            return None
        deadline = time.monotonic() + timeout
        while document_path(self.server.log()) is None and time.monotonic() < deadline:
            self.get(path, host=host, headers=DOCUMENT)
            time.sleep(0.05)
        return document_path(self.server.log())


@pytest.fixture(scope="session")
def built_modules() -> None:
    for module in (ENVOY_MODULE, PLUGIN_DIR / "secure_headers.wasm", PLUGIN_DIR / ".traefik.yml", ENVOY_DYNAMIC):
        if not module.exists():
            pytest.fail(f"{module} is missing: run `make build` (make e2e does it)")


@pytest.fixture(scope="session")
def upstream():
    with Upstream() as up:
        yield up


@pytest.fixture(scope="session")
def proxy_for(built_modules, upstream):
    """Returns a running proxy for (host, policy JSON); one process per distinct pair, stopped at the end."""
    running: dict[tuple[str, str], Envoy | Traefik] = {}

    def start(host: str, policy: str) -> Proxy:
        if (host, policy) not in running:
            if host == "envoy":
                server = Envoy(policy, upstream.port)
            elif host == ENVOY_FETCH:
                server = Envoy(policy, upstream.port, edits=[without_headers_stop_iteration])
            elif host == ENVOY_DYNAMIC_HOST:
                server = Envoy(policy, upstream.port, native_module=ENVOY_DYNAMIC)
            else:
                server = Traefik(policy, upstream.port)
            running[(host, policy)] = server.start()
        return Proxy(host, running[(host, policy)])

    yield start
    for server in running.values():
        server.stop()


def pytest_generate_tests(metafunc) -> None:
    """`host`: each of HOSTS, and the Envoy dynamic module where the test module asks for it; a test that
    parametrizes `host` itself keeps its own list."""
    if "host" not in metafunc.fixturenames:
        return
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0]
        if "host" in ([n.strip() for n in names.split(",")] if isinstance(names, str) else names):
            return
    hosts = list(HOSTS)
    if getattr(metafunc.module, "ENVOY_FETCH_TOO", False):
        hosts.insert(1, ENVOY_FETCH)
    if getattr(metafunc.module, "ENVOY_DYNAMIC_TOO", False):
        hosts.append(ENVOY_DYNAMIC_HOST)
    metafunc.parametrize("host", hosts)


# What each host's first held document must teach the Wasm module (Traefik and the native module have one way).
EXPECTED_DOCUMENT_PATH = {"envoy": "in-stream", ENVOY_FETCH: "fetch", "traefik": None, ENVOY_DYNAMIC_HOST: None}


def settled_proxy(proxy_for, host: str, policy: str) -> Proxy:
    """The running proxy, once it knows how it hashes documents (Envoy learns it from its first held one, a
    document of the Immich-like upstream's under the policy's host immich.test)."""
    proxy = proxy_for(host, policy)
    learned = proxy.settle_document_path("/browser/hashed?v=probe")
    assert learned == EXPECTED_DOCUMENT_PATH[host], proxy.server.log()[-3000:]
    return proxy
