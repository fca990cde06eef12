"""What each host does when the filter fails at run time, shown with a test build that traps on a magic request
header (`x-secure-headers-trap`, feature `trap-test`). Measured with Envoy 1.40: the request during which the VM
traps gets 503 whatever the failure policy; after it, FAIL_OPEN serves every response without the filter (so
without its headers) and FAIL_CLOSED refuses every request with 503, until Envoy restarts or reloads the config."""

from __future__ import annotations

import shutil

import pytest
from conftest import DOCUMENT
from secure_headers_harness.envoy import Envoy
from secure_headers_harness.paths import (ENVOY_YAML, HTTP_WASM_DIR as PLUGIN_DIR,
                                          TRAP_HTTP_WASM as TRAEFIK_TRAP_MODULE, TRAP_PROXY_WASM as ENVOY_TRAP_MODULE)
from secure_headers_harness.traefik import Traefik
from test_policy import DEMO_POLICY

TRAP = {"X-Secure-Headers-Trap": "1", **DOCUMENT}


def proxy_get(server, path: str, headers: dict[str, str]):
    from secure_headers_harness.http_client import request

    return request(server.ports["http"], path, headers=headers)


@pytest.mark.parametrize("failure_policy", ["FAIL_OPEN", "FAIL_CLOSED"])
def test_envoy_failure_policy_decides_what_a_trap_costs(upstream, failure_policy):
    assert ENVOY_TRAP_MODULE.exists(), "make e2e builds dist/trap-proxy-wasm"
    with Envoy(DEMO_POLICY, upstream.port, wasm=ENVOY_TRAP_MODULE, failure_policy=failure_policy) as envoy:
        healthy = proxy_get(envoy, "/", DOCUMENT)
        assert healthy.status == 200 and healthy.one("x-frame-options") == "SAMEORIGIN", "the trap build works"
        trapped = proxy_get(envoy, "/", TRAP)
        after = proxy_get(envoy, "/", DOCUMENT)
        assert trapped.status == 503, "the request in flight fails with either policy"
        if failure_policy == "FAIL_OPEN":
            assert after.status == 200, "later requests are served ..."
            assert after.one("x-frame-options") is None, "... without the filter's headers: the VM stays failed"
        else:
            assert after.status == 503, "the failed VM stays failed: every later request is refused"
        assert "wasm" in envoy.log().lower()


def test_the_shipped_envoy_configuration_fails_open():
    import yaml

    config = yaml.safe_load(ENVOY_YAML.read_text())
    wasm = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    plugin = next(f for f in wasm["http_filters"] if f["name"] == "envoy.filters.http.wasm")
    assert plugin["typed_config"]["config"]["failure_policy"] == "FAIL_OPEN"


def test_traefik_on_a_trap(upstream, tmp_path):
    """Traefik has no failure policy setting: a trap fails that one request with 500 and the next request is
    served normally by a fresh plugin instance."""
    assert TRAEFIK_TRAP_MODULE.exists(), "make e2e builds dist/trap-http-wasm"
    plugin = tmp_path / "plugin"
    shutil.copytree(PLUGIN_DIR, plugin)
    shutil.copy(TRAEFIK_TRAP_MODULE, plugin / "secure_headers.wasm")
    with Traefik(DEMO_POLICY, upstream.port, plugin_dir=plugin) as traefik:
        healthy = proxy_get(traefik, "/", DOCUMENT)
        assert healthy.status == 200 and healthy.one("x-frame-options") == "SAMEORIGIN"
        trapped = proxy_get(traefik, "/", TRAP)
        after = proxy_get(traefik, "/", DOCUMENT)
        print(f"\ntraefik on a trap: {trapped.status}, next request {after.status} "
              f"x-frame-options={after.one('x-frame-options')}")
        assert trapped.status == 500
        assert after.status == 200 and after.one("x-frame-options") == "SAMEORIGIN"
