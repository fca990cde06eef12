"""Every policy of tests/bad_policies.json, loaded into real Envoy: refused, with one log line naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from envoy_runner import Envoy, wasm_log_lines

TABLE = json.loads((Path(__file__).resolve().parents[1] / "bad_policies.json").read_text())


def policy_text(case: dict) -> str:
    return case["raw"] if "raw" in case else json.dumps(case["policy"])


@pytest.mark.parametrize("case", TABLE, ids=[f"{i}:{c['path'] or 'document'}" for i, c in enumerate(TABLE)])
def test_envoy_refuses_the_policy_and_says_where(built_module, upstream, case):
    accepted, log = Envoy(policy_text(case), upstream.port).outcome()
    assert not accepted, f"Envoy started with a bad policy:\n{log[-2000:]}"
    lines = wasm_log_lines(log)
    assert len(lines) == 1, f"want one line from the module, got {lines}"
    # The module blanks control characters so the log line stays one line.
    path = "".join(" " if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in case["path"]) or "(policy)"
    assert f"secure-headers: invalid policy at {path}: " in lines[0]
    assert case["reason"] in lines[0]
    assert "Unable to create Wasm plugin" in log, "Envoy itself reports the plugin as not loaded"


def test_a_good_policy_loads_and_says_so(built_module, upstream):
    accepted, log = Envoy('{"presets": ["immich"]}', upstream.port).outcome()
    assert accepted, log[-2000:]
    assert any("secure-headers: policy loaded (1 rule(s))" in line for line in wasm_log_lines(log))
