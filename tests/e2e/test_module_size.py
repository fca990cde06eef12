"""Both modules stay within the size budgets kept in the repository."""

import json
from pathlib import Path

import pytest

from secure_headers_harness.paths import HTTP_WASM_DIR, PROXY_WASM

BUDGETS = json.loads(Path(__file__).with_name("module_size_budget.json").read_text())
AIM = 262_144


@pytest.mark.parametrize("module, budget_key", [(PROXY_WASM, "proxy_wasm_bytes"),
                                                (HTTP_WASM_DIR / "secure_headers.wasm", "http_wasm_bytes")])
def test_module_within_budget(built_modules, module, budget_key):
    size, budget = module.stat().st_size, BUDGETS[budget_key]
    print(f"\n{module}: {size:,} bytes (budget {budget:,}, aim {AIM:,})")
    assert size <= budget, f"{module}: {size:,} bytes is over the budget of {budget:,}"
