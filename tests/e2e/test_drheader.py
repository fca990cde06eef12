"""drHEADer scans the demo (immich preset over https) through both hosts with the ruleset kept in envoy-test/
and finds nothing, as drHEADer asks by default and as a browser navigation; the same scan of the bare upstream
fails, so the ruleset is not vacuous."""

from __future__ import annotations

import json
import os

import pytest
import subprocess
import sys
from pathlib import Path

from conftest import DOCUMENT
from secure_headers_harness.paths import CERTS, DRHEADER_RULES as RULES
from test_policy import DEMO_POLICY


def scan(url: str, headers: dict[str, str] | None = None) -> list[dict]:
    drheader = Path(sys.executable).parent / "drheader"
    assert drheader.exists(), "drheader is missing from the virtualenv: `make venv` installs it"
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(CERTS / "ca.crt")}
    extra = ["--headers", json.dumps(headers)] if headers else []
    result = subprocess.run([str(drheader), "scan", "single", "--rules-file", str(RULES), "--output", "json",
                             url, *extra],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip().startswith("["), f"drheader failed ({result.returncode}): {result.stdout[-2000:]}"
    return json.loads(result.stdout)


@pytest.mark.parametrize("headers", [None, DOCUMENT], ids=["drheader-default", "navigation"])
def test_demo_passes_drheader_with_the_kept_ruleset(proxy_for, host, headers):
    proxy = proxy_for(host, DEMO_POLICY)
    findings = scan(f"https://localhost:{proxy.server.ports['https']}/", headers)
    assert findings == [], json.dumps(findings, indent=1)


def test_the_ruleset_is_not_vacuous(upstream):
    findings = scan(f"http://localhost:{upstream.port}/")
    failed = {f["rule"] for f in findings}
    assert {"Content-Security-Policy", "X-Frame-Options", "X-Powered-By", "Strict-Transport-Security"} <= failed
