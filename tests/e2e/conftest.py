"""Fixtures for end-to-end tests against real Envoy 1.40 and real Traefik 3.7 (both from PyPI) in front of the
Immich-like upstream. The same tests run against both hosts; where a host cannot do something, the test says so."""

from __future__ import annotations

import time

import pytest
from secure_headers_harness.envoy import Envoy, document_path, without_headers_stop_iteration
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import HTTP_WASM_DIR as PLUGIN_DIR, PROXY_WASM as ENVOY_MODULE
from secure_headers_harness.traefik import Traefik
from secure_headers_harness.upstream import Upstream

HOSTS = ["envoy", "traefik"]
# Envoy as Istio and Envoy Gateway configure it today (no allow_on_headers_stop_iteration): documents whose inline
# scripts are hashed are fetched by the filter instead of read in their own stream.
ENVOY_FETCH = "envoy-fetch"
HASHING_HOSTS = ["envoy", ENVOY_FETCH, "traefik"]
# A browser navigation (Traefik holds every GET/HEAD that need not stream, this one among them).
DOCUMENT = {"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml"}


class Proxy:
    """A running host with one policy."""

    def __init__(self, name: str, server: Envoy | Traefik):
        self.name = name
        self.server = server

    @property
    def streamed_lacks_response_decisions(self) -> bool:
        """Traefik streams Range, `streaming_paths` and sub-resource responses: the companion headers middleware
        gives them its removals and static headers, once each, but nothing the policy decides from the response
        (keep_upstream's CSP, Cache-Control defaults). See README, "Traefik"."""
        return self.name == "traefik"

    @property
    def is_envoy(self) -> bool:
        return self.name.startswith("envoy")

    def get(self, path: str, **kwargs):
        port = self.server.ports["https" if kwargs.get("https") else "http"]
        return request(port, path, **kwargs)

    def settle_document_path(self, path: str, host: str = "immich.test", timeout: float = 5) -> str | None:
        """Envoy learns how it may hash documents from the first one whose headers it holds (that one gets the
        static CSP when the answer is "fetch"): sends one and returns what the module logged, None in Traefik."""
        if not self.is_envoy:
            return None
        deadline = time.monotonic() + timeout
        while document_path(self.server.log()) is None and time.monotonic() < deadline:
            self.get(path, host=host, headers=DOCUMENT)
            time.sleep(0.05)
        return document_path(self.server.log())


@pytest.fixture(scope="session")
def built_modules() -> None:
    for module in (ENVOY_MODULE, PLUGIN_DIR / "secure_headers.wasm", PLUGIN_DIR / ".traefik.yml"):
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
            if host == "traefik":
                server = Traefik(policy, upstream.port)
            else:
                edits = [without_headers_stop_iteration] if host == ENVOY_FETCH else []
                server = Envoy(policy, upstream.port, edits=edits)
            running[(host, policy)] = server.start()
        return Proxy(host, running[(host, policy)])

    yield start
    for server in running.values():
        server.stop()


@pytest.fixture(params=HOSTS)
def host(request) -> str:
    return request.param


# What each host's first held document must teach the module (Traefik has only one way).
EXPECTED_DOCUMENT_PATH = {"envoy": "in-stream", ENVOY_FETCH: "fetch", "traefik": None}


def settled_proxy(proxy_for, host: str, policy: str) -> Proxy:
    """The running proxy, once it knows how it hashes documents (Envoy learns it from its first held one, a
    document of the Immich-like upstream's under the policy's host immich.test)."""
    proxy = proxy_for(host, policy)
    learned = proxy.settle_document_path("/browser/hashed?v=probe")
    assert learned == EXPECTED_DOCUMENT_PATH[host], proxy.server.log()[-3000:]
    return proxy
