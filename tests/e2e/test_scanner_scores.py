"""The README's scanner table ("'strict-dynamic'"), measured through Envoy and Traefik: Immich's index page (the
upstream's `/`, two inline scripts) under the immich preset's static CSP, with `inline_script_hashes`, and under
immich-strict. Google's CSP Evaluator (npm csp_evaluator, tests/e2e/csp_evaluator.mjs) reads the CSP each response
carries; the MDN HTTP Observatory's scanner (npm @mdn/mdn-http-observatory, tests/e2e/observatory.mjs) scans the
host over https on loopback, with no http port. `pytest -s` prints the table the README copies."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import DOCUMENT, settled_proxy
from secure_headers_harness.paths import CERTS, ROOT
from secure_headers_harness.processes import free_port

HERE = Path(__file__).parent
# What each script runs, installed by `make scanner-tools`.
TOOLS = {"csp_evaluator.mjs": ROOT / "tools/csp-evaluator/node_modules/csp_evaluator",
         "observatory.mjs": ROOT / "tools/observatory/node_modules/@mdn/mdn-http-observatory"}

# Each policy's one rule, for every host name (the Observatory asks for localhost, the probe for immich.test).
STATIC = "immich (static)"
POLICIES = {
    STATIC: {"presets": ["immich"]},
    "immich + inline_script_hashes": {"presets": ["immich"], "inline_script_hashes": {"max_scripts": 2}},
    "immich-strict": {"presets": ["immich-strict"]},
}


def node(script: str, *args: str, stdin: str = "") -> dict | list:
    if not TOOLS[script].is_dir():
        pytest.fail(f"{TOOLS[script]} is missing: run `make scanner-tools` (make e2e does it)")
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(CERTS / "ca.crt")}
    result = subprocess.run(["node", str(HERE / script), *args], input=stdin, capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, f"{script} failed ({result.returncode}): {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def measure(proxy_for, host: str, layer: dict) -> dict:
    """The CSP of `/` as a browser navigation gets it, its CSP Evaluator findings, and the Observatory's scan."""
    policy = json.dumps({"rules": [{"name": "immich", **layer}]})
    # A policy that hashes waits until Envoy has learnt how (the static one holds no document to learn from).
    proxy = proxy_for(host, policy) if layer == POLICIES[STATIC] else settled_proxy(proxy_for, host, policy)
    reply = proxy.get("/", headers=DOCUMENT)
    csp = reply.one("content-security-policy")
    assert reply.status == 200 and csp, reply
    observatory = node("observatory.mjs", "localhost", str(proxy.server.ports["https"]), str(free_port()))
    return {"csp": csp, "findings": node("csp_evaluator.mjs", stdin=csp), "observatory": observatory}


def severities(findings: list[dict], directive: str = "script-src") -> dict[str, str]:
    """{value: severity} of the findings in one directive."""
    return {f["value"]: f["severity"] for f in findings if f["directive"] == directive}


def described(finding: dict) -> str:
    """Severity and value; and why, for a finding of no severity (an entry 'strict-dynamic' makes ignored)."""
    why = f" ({finding['description']})" if finding["severity"] == "NONE" else ""
    return f"{finding['severity']} {finding['value']}{why}"


def table(host: str, measured: dict[str, dict]) -> str:
    lines = [f"scanner results through {host} (tests/e2e/test_scanner_scores.py):",
             "| policy | CSP Evaluator findings in script-src | MDN HTTP Observatory |", "|---|---|---|"]
    for name, m in measured.items():
        findings = ", ".join(described(f) for f in m["findings"] if f["directive"] == "script-src")
        scan = m["observatory"]
        csp = scan["tests"]["content-security-policy"]
        lines.append(f"| `{name}` | {findings or 'none'} | {scan['score']} ({scan['grade']}), CSP test "
                     f"`{csp['result']}` ({csp['scoreModifier']:+d}) |")
    elsewhere = {n: [f"{f['directive']} {f['severity']} {f['value']}" for f in m["findings"]
                     if f["directive"] != "script-src"] for n, m in measured.items()}
    lines.append(f"CSP Evaluator findings in other directives: {json.dumps(elsewhere)}")
    lines.append("the Observatory's other tests: " + ", ".join(
        f"{test} {o['result']} {o['scoreModifier']:+d}" for test, o in other_tests(measured[STATIC]).items()))
    return "\n".join(lines)


def other_tests(m: dict) -> dict:
    """The Observatory's tests but its CSP one."""
    return {test: o for test, o in m["observatory"]["tests"].items() if test != "content-security-policy"}


def test_immich_strict_has_no_high_finding_and_the_observatory_scores_it_no_lower(proxy_for, host):
    measured = {name: measure(proxy_for, host, layer) for name, layer in POLICIES.items()}
    print("\n" + table(host, measured))
    static, hashed, strict = (measured[name] for name in POLICIES)
    assert "'sha256-" not in static["csp"] and "'sha256-" in hashed["csp"], (static["csp"], hashed["csp"])
    assert " 'strict-dynamic' 'sha256-" in strict["csp"], strict["csp"]

    assert severities(static["findings"]).get("'unsafe-inline'") == "HIGH", static["findings"]
    assert severities(static["findings"]).get("https://www.gstatic.com") == "HIGH", static["findings"]
    assert severities(hashed["findings"]).get("https://www.gstatic.com") == "HIGH", hashed["findings"]
    assert "'unsafe-inline'" not in severities(hashed["findings"]), hashed["findings"]
    assert [f for f in strict["findings"] if f["severity"] == "HIGH"] == [], strict["findings"]
    assert [v for v, s in severities(strict["findings"]).items() if s.startswith("MEDIUM")] == [], strict["findings"]

    scores = {name: m["observatory"]["score"] for name, m in measured.items()}
    assert scores["immich-strict"] >= scores[STATIC], scores
    assert other_tests(static) == other_tests(hashed) == other_tests(strict), "the policies differ in the CSP only"
    assert measured["immich-strict"]["observatory"]["tests"]["content-security-policy"]["pass"], strict["observatory"]
