"""Every policy of tests/bad_policies.json, loaded into real Envoy (with the Wasm module and with the native dynamic
module) and real Traefik: refused, with one log line naming the field, and never served half-read."""

from __future__ import annotations

import json
import re

import subprocess

import pytest
from secure_headers_harness.envoy import Envoy, wasm_log_lines
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import BAD_POLICY_TABLE, CLI, ENVOY_DYNAMIC
from secure_headers_harness.traefik import Traefik

TABLE = json.loads(BAD_POLICY_TABLE.read_text())
IDS = [f"{i}:{c['path'] or 'document'}" for i, c in enumerate(TABLE)]


def policy_text(case: dict) -> str:
    return case["raw"] if "raw" in case else json.dumps(case["policy"])


def logged_path(case: dict) -> str:
    """The path as the module logs it: control characters blanked so the line stays one line."""
    return "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in case["path"]) or "(policy)"


# Each Envoy build (the Wasm module, the native dynamic module) and how Envoy reports its filter as not loaded.
ENVOY_BUILDS = {"wasm": (None, "Unable to create Wasm plugin"),
                "native": (ENVOY_DYNAMIC, "Failed to create filter config: Failed to initialize dynamic module")}


@pytest.mark.parametrize("build", ENVOY_BUILDS)
@pytest.mark.parametrize("case", TABLE, ids=IDS)
def test_envoy_refuses_the_policy_and_says_where(built_modules, upstream, case, build):
    native_module, refusal = ENVOY_BUILDS[build]
    accepted, log = Envoy(policy_text(case), upstream.port, native_module=native_module).outcome()
    assert not accepted, f"Envoy started with a bad policy:\n{log[-2000:]}"
    lines = wasm_log_lines(log)
    assert len(lines) == 1, f"want one line from the module, got {lines}"
    assert f"secure-headers: invalid policy at {logged_path(case)}: " in lines[0]
    assert case["reason"] in lines[0]
    assert refusal in log, "Envoy itself reports the filter as not loaded"
    validate = subprocess.run([str(CLI), "validate", "-"], input=policy_text(case), capture_output=True, text=True)
    assert validate.returncode == 1
    assert lines[0].rstrip().endswith(validate.stdout.rstrip()), "`validate` prints the line Envoy logs"


@pytest.mark.parametrize("build", ENVOY_BUILDS)
def test_envoy_logs_a_good_policy_as_loaded(built_modules, upstream, build):
    accepted, log = Envoy('{"presets": ["immich"]}', upstream.port, native_module=ENVOY_BUILDS[build][0]).outcome()
    assert accepted, log[-2000:]
    assert any(re.search(r"secure-headers: policy loaded \(1 rule\(s\), [\d.]+ ms\)", line)
               for line in wasm_log_lines(log))


@pytest.fixture(scope="module")
def traefik_with_every_bad_policy(built_modules, upstream):
    """One Traefik, one router and middleware per bad policy (bad-<i>.test), plus the good immich router."""
    routers = {f"bad-{i}.test": policy_text(case) for i, case in enumerate(TABLE)}
    traefik = Traefik('{"presets": ["immich"]}', upstream.port, extra_routers=routers)
    with traefik:
        for i in range(len(TABLE)):  # Traefik builds each router's middleware on its first use
            request(traefik.ports["http"], "/", host=f"bad-{i}.test")
        traefik.wait_for_log(f"middlewareName=extra-{len(TABLE) - 1}@file")
        yield traefik


@pytest.mark.parametrize("index", range(len(TABLE)), ids=IDS)
def test_traefik_refuses_the_policy_says_where_and_serves_404(traefik_with_every_bad_policy, index):
    traefik, case = traefik_with_every_bad_policy, TABLE[index]
    lines = [line for line in traefik.log().splitlines()
             if "secure-headers:" in line and re.search(rf"middlewareName=extra-{index}@file\b", line)]
    assert lines, f"no log line for middleware extra-{index}"
    for line in lines:
        assert f"secure-headers: invalid policy at {logged_path(case)}: " in line, line
        assert case["reason"] in line, line
    # What Traefik serves for a router whose middleware cannot be built: its own 404, never the upstream.
    reply = request(traefik.ports["http"], "/", host=f"bad-{index}.test")
    assert reply.status == 404
    assert reply.one("x-powered-by") is None, "the request never reached the upstream"


def test_traefik_serves_the_good_router_beside_the_broken_ones(traefik_with_every_bad_policy):
    reply = request(traefik_with_every_bad_policy.ports["http"], "/", headers={"Sec-Fetch-Dest": "document"})
    assert reply.status == 200
    assert reply.one("x-content-type-options") == "nosniff"


def read_back_by_the_schema(case: dict) -> bool:
    """A string where JSON wants another type (a number, a list): Traefik delivers every scalar, and a list of
    scalars from labels, as a string, so the YAML keys form reads these by the schema instead of refusing."""
    def has_string(v) -> bool:
        if isinstance(v, str):
            return True
        if isinstance(v, list):
            return any(map(has_string, v))
        return isinstance(v, dict) and any(map(has_string, v.values()))
    return case["reason"] == "invalid type" and has_string(case["policy"])


KEYS_CASES = [i for i, c in enumerate(TABLE) if isinstance(c.get("policy"), dict) and not read_back_by_the_schema(c)]


@pytest.fixture(scope="module")
def traefik_with_every_bad_policy_as_yaml_keys(built_modules, upstream):
    """The same table written as YAML keys under each middleware (the README's native form)."""
    routers = {f"keys-{i}.test": TABLE[i]["policy"] for i in KEYS_CASES}
    traefik = Traefik('{"presets": ["immich"]}', upstream.port, extra_routers=routers)
    with traefik:
        for i in KEYS_CASES:
            request(traefik.ports["http"], "/", host=f"keys-{i}.test")
        traefik.wait_for_log(f"middlewareName=extra-{len(KEYS_CASES) - 1}@file")
        yield traefik


@pytest.mark.parametrize("index", KEYS_CASES, ids=[IDS[i] for i in KEYS_CASES])
def test_traefik_refuses_the_policy_as_yaml_keys_at_the_same_path(traefik_with_every_bad_policy_as_yaml_keys,
                                                                   index):
    traefik, case = traefik_with_every_bad_policy_as_yaml_keys, TABLE[index]
    middleware = f"extra-{KEYS_CASES.index(index)}"
    lines = [line for line in traefik.log().splitlines()
             if "secure-headers:" in line and re.search(rf"middlewareName={middleware}@file\b", line)]
    assert lines, f"no log line for middleware {middleware}"
    for line in lines:
        assert f"secure-headers: invalid policy at {logged_path(case)}: " in line, line
    assert request(traefik.ports["http"], "/", host=f"keys-{index}.test").status == 404
