"""drHEADer scans the demo (immich preset over https) with the ruleset kept in envoy-test/ and finds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from envoy_runner import CERTS, committed_policy

RULES = Path(__file__).resolve().parents[2] / "envoy-test" / "drheader-rules.yml"


def scan(url: str) -> list[dict]:
    drheader = Path(sys.executable).parent / "drheader"
    assert drheader.exists(), "drheader is missing from the virtualenv: `make venv` installs it"
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(CERTS / "ca.crt")}
    result = subprocess.run([str(drheader), "scan", "single", url, "--rules-file", str(RULES), "--output", "json"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.stdout.strip().startswith("["), f"drheader failed ({result.returncode}): {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def test_demo_passes_drheader_with_the_kept_ruleset(envoy_for):
    proxy = envoy_for(committed_policy())
    findings = scan(f"https://localhost:{proxy.envoy.ports['https']}/")
    assert findings == [], json.dumps(findings, indent=1)


def test_the_ruleset_is_not_vacuous(upstream):
    """The same scan of the bare upstream (no filter) must fail on the headers the filter adds."""
    findings = scan(f"http://localhost:{upstream.port}/")
    failed = {f["rule"] for f in findings}
    assert {"Content-Security-Policy", "X-Frame-Options", "X-Powered-By", "Strict-Transport-Security"} <= failed
