"""The Envoy module stays within the size budget kept in the repository."""

import json
from pathlib import Path

from secure_headers_harness.paths import PROXY_WASM as WASM

BUDGET = json.loads(Path(__file__).with_name("module_size_budget.json").read_text())["proxy_wasm_bytes"]


def test_proxy_wasm_module_within_budget(built_modules):
    size = WASM.stat().st_size
    print(f"\n{WASM.name}: {size:,} bytes (budget {BUDGET:,}, aim 262,144)")
    assert size <= BUDGET, f"{size:,} bytes is over the budget of {BUDGET:,}"
