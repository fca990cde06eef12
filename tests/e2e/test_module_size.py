"""Both modules stay within the budgets kept in the repository: file size, and the linear memory each instance
starts with (what Traefik pays per router and per reload)."""

import json
from pathlib import Path

import pytest

from secure_headers_harness.paths import HTTP_WASM_DIR, PROXY_WASM
from secure_headers_harness.wasm_module import memory_layout

BUDGETS = json.loads(Path(__file__).with_name("module_size_budget.json").read_text())
AIM = 262_144
MODULES = [(PROXY_WASM, "proxy_wasm"), (HTTP_WASM_DIR / "secure_headers.wasm", "http_wasm")]


@pytest.mark.parametrize("module, budget_key", MODULES)
def test_module_within_budget(built_modules, module, budget_key):
    size, budget = module.stat().st_size, BUDGETS[f"{budget_key}_bytes"]
    print(f"\n{module}: {size:,} bytes (budget {budget:,}, aim {AIM:,})")
    assert size <= budget, f"{module}: {size:,} bytes is over the budget of {budget:,}"


@pytest.mark.parametrize("module, budget_key", MODULES)
def test_initial_memory_within_budget(built_modules, module, budget_key):
    """The toolchain's default 1 MiB stack made every instance start at 1088 KiB; hosts/wasm_stack.rs sets 64 KiB."""
    layout, budget = memory_layout(module), BUDGETS[f"{budget_key}_initial_memory_bytes"]
    print(f"\n{module}: {layout}")
    assert layout["stack_bytes"] <= 65_536, f"{module}: a {layout['stack_bytes']:,}-byte stack"
    assert layout["initial_memory_bytes"] <= budget, \
        f"{module}: starts with {layout['initial_memory_bytes']:,} bytes of linear memory, budget {budget:,}"
