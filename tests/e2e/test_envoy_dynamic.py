"""The native build (hosts/envoy-dynamic, dist/envoy-dynamic/libsecure_headers.so) in real Envoy 1.40 as its
dynamic module: the ZAP baseline's rules, the same final headers as the Wasm build on every kind of response, a
panic inside the module that does not take Envoy down, no heap allocation on the header path, the committed config,
the release. The presets, scoping,
https/http and browser tests run on it through test_policy.py and test_in_browser.py (ENVOY_DYNAMIC_TOO), the bad
policies through test_config_errors.py."""

from __future__ import annotations

import hashlib
import json
import http.client
import os
import subprocess
import urllib.request

import pytest
import yaml
from conftest import DOCUMENT, ENVOY_DYNAMIC_HOST
from secure_headers_harness.envoy import Envoy, envoy_binary, wasm_log_lines, render_config
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import (ALLOC_COUNT_ENVOY_DYNAMIC, ENVOY_DYNAMIC, ENVOY_DYNAMIC_YAML, ROOT,
                                          TRAP_ENVOY_DYNAMIC, VERSION, work_dir)
from secure_headers_harness.processes import free_port
from test_allocations import send
from test_policy import DEMO_POLICY
from test_zap_baseline import scan_all


def native_envoy(policy: str, upstream_port: int, module=ENVOY_DYNAMIC) -> Envoy:
    return Envoy(policy, upstream_port, native_module=module)


@pytest.fixture(scope="module")
def scans(proxy_for):
    return {build: scan_all(proxy_for(build, DEMO_POLICY).get) for build in ("envoy", ENVOY_DYNAMIC_HOST)}


def test_no_zap_seed_finding_remains(scans):
    remaining = [f"{key}: {finding}" for key, (findings, _) in scans[ENVOY_DYNAMIC_HOST].items()
                 for finding in findings]
    assert not remaining, "\n".join(remaining)


def test_the_native_module_writes_exactly_what_the_wasm_module_writes(scans):
    """Every response kind, request style and scheme of the ZAP table: the same final headers, one line each."""
    differences = []
    for key, (_, wasm) in scans["envoy"].items():
        native = scans[ENVOY_DYNAMIC_HOST][key][1]
        for name, values in native.items():
            assert len(values) == 1, f"{key}: {name} arrives {len(values)} times"
        names = sorted(set(wasm) | set(native))
        differences += [f"{key} {n}: wasm {wasm.get(n)} native {native.get(n)}"
                        for n in names if wasm.get(n) != native.get(n)]
    assert not differences, "\n".join(differences)


def test_a_panic_in_the_module_does_not_take_envoy_down(upstream):
    """The trap build panics on `x-secure-headers-trap`: the hook catches it, logs one line, and that response
    passes without the filter (fail open, as the Wasm build's FAIL_OPEN); Envoy and every later request are fine."""
    assert TRAP_ENVOY_DYNAMIC.exists(), "make e2e builds dist/trap-envoy-dynamic"
    with native_envoy(DEMO_POLICY, upstream.port, module=TRAP_ENVOY_DYNAMIC) as envoy:
        port = envoy.ports["http"]
        healthy = request(port, "/", headers=DOCUMENT)
        assert healthy.status == 200 and healthy.one("x-frame-options") == "SAMEORIGIN", "the trap build works"
        trapped = request(port, "/", headers={"X-Secure-Headers-Trap": "1", **DOCUMENT})
        assert trapped.status == 200, "the request in flight is served ..."
        assert trapped.one("x-frame-options") is None, "... without this stream's headers"
        assert trapped.one("x-powered-by") == "Express"
        for _ in range(3):
            after = request(port, "/", headers=DOCUMENT)
            assert after.status == 200 and after.one("x-frame-options") == "SAMEORIGIN", "later streams are whole"
        assert envoy.process.poll() is None, "Envoy is still running"
        panics = [line for line in wasm_log_lines(envoy.log()) if "panic in request_headers" in line]
        assert len(panics) == 1, wasm_log_lines(envoy.log())
        assert "x-secure-headers-trap asked for a panic" in panics[0]


def allocations(envoy: Envoy) -> dict[str, int]:
    """The alloc-count build's counters: heap allocations made in each measured hook, summed over workers."""
    with urllib.request.urlopen(f"{envoy.admin}/stats?filter=secure_headers\\.allocations\\.") as r:
        lines = r.read().decode().splitlines()
    counts = {line.split(":")[0].rsplit(".", 1)[1]: int(line.rsplit(":", 1)[1]) for line in lines}
    assert set(counts) == {"stream_new", "request_headers", "response_headers"}, lines
    return counts


def test_no_heap_allocation_on_the_header_path_in_steady_state(upstream):
    """5,000 requests over the kinds of response Immich sends, after 1,000 of warm-up: the stream's state, the
    request and the response hooks allocate nothing (the streams' boxes are reused, every read borrows Envoy's
    map, every write hands Envoy pre-rendered bytes)."""
    assert ALLOC_COUNT_ENVOY_DYNAMIC.exists(), "make e2e builds dist/alloc-count-envoy-dynamic"
    with native_envoy(DEMO_POLICY, upstream.port, module=ALLOC_COUNT_ENVOY_DYNAMIC) as envoy:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.ports["http"], timeout=30)
        send(conn, 1_000)
        before = allocations(envoy)
        send(conn, 5_000)
        after = allocations(envoy)
        conn.close()
    print(f"\nnative module heap allocations after warm-up: {before}; over 5,000 more responses: "
          f"{ {hook: after[hook] - before[hook] for hook in after} }")
    assert before["stream_new"] > 0, "the first stream's box is counted, or the counter is not counting"
    assert after == before


def test_the_committed_native_configuration_validates(built_modules):
    """envoy-test/envoy-dynamic.yaml (the README's example) as Envoy 1.40 checks it: the module loads and reads
    the committed policy."""
    ports = {"http": free_port(), "https": free_port(), "admin": free_port(), "upstream": free_port()}
    config = render_config(DEMO_POLICY, ports, config_file=ENVOY_DYNAMIC_YAML)
    folder = work_dir("envoy-dynamic-validate")
    path = folder / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    checked = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True,
                             env={**os.environ, "LD_LIBRARY_PATH": str(ENVOY_DYNAMIC.parent)}, cwd=folder, timeout=60)
    out = checked.stdout + checked.stderr
    assert checked.returncode == 0, out[-2000:]
    assert f"configuration '{path}' OK" in out
    assert "secure-headers: policy loaded (1 rule(s)" in out


def test_the_release_carries_the_native_module_and_its_checksum(built_modules):
    """`make dist` (a prerequisite of `make e2e`): the module in the release folder, in release.json and in
    SHA256SUMS, with the digest of the build."""
    release = ROOT / "dist" / "release" / f"secure-headers-{VERSION}"
    summary = json.loads((release / "release.json").read_text())
    digest = hashlib.sha256(ENVOY_DYNAMIC.read_bytes()).hexdigest()
    assert summary["envoy_dynamic"] == {"path": "envoy-dynamic/libsecure_headers.so", "sha256": digest,
                                        "bytes": ENVOY_DYNAMIC.stat().st_size}
    assert f"{digest}  envoy-dynamic/libsecure_headers.so" in (release / "SHA256SUMS").read_text().splitlines()
