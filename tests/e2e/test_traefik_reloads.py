"""Traefik's memory across configuration reloads (README, "Traefik: memory and reloads").

Real Traefik 3.7 whose file provider watches its folder; ROUTERS routers in Pangolin's shape (badger, then the
middleware); RELOADS reloads, each renaming one router, after each of which Traefik builds every router's
middleware again. Run in the same session for Traefik's own headers middleware, the minimal http-wasm guest (the
floor of any Wasm middleware), the same guest padded with dead code to this plugin's code size (the floor of a
module this size) and this plugin. Traefik's debug API gives Go's live heap after forced collections,
and its DEBUG log says when the http-wasm host closes a replaced middleware.

Measured while this test was written (10 routers, 200 reloads, RSS from the start to the last sample): native
headers -2.5 MiB, minimal guest +12.7 MiB, this plugin +42.8 MiB (it was +285 MiB after 40 reloads with the
toolchain's 1 MiB Wasm stack). Every variant reaches its plateau within 20 reloads and stays there: the growth is
garbage that Go frees late (a replaced middleware is closed by a finalizer, one collection after it was found
unreachable), not memory kept. The padded guest's plateau is the plugin's (about 160 MiB both): what is left above
the minimal guest's is what Traefik's host spends per middleware on a module of this size, not the plugin's
instances (a 16 KiB stack instead of 64 KiB changed nothing measurable).
"""

from __future__ import annotations

import pytest

from secure_headers_harness.paths import work_dir
from secure_headers_harness.reloads import (MINIMAL_GUEST_KEY, PADDED_GUEST_KEY, WatchedTraefik, pangolin_routers,
                                            plateau_summary, plugin_instances, reload_memory)
from secure_headers_harness.traefik import PLUGIN_KEY, companion_middleware

POLICY = '{"presets": ["immich"]}'
ROUTERS = 10
RELOADS = 100
# RSS reaches its plateau within 20 to 45 reloads (the collector's pace varies run to run); the slope is measured
# over the second half.
WARM_UP = 50
VARIANTS = {"native": companion_middleware(POLICY, []),
            "minimal guest": {"plugin": {MINIMAL_GUEST_KEY: {}}},
            "padded guest": {"plugin": {PADDED_GUEST_KEY: {}}},
            "plugin": {"plugin": {PLUGIN_KEY: {"policy": POLICY}}}}
WASM_VARIANTS = ["minimal guest", "padded guest", "plugin"]
# On the plateau RSS wanders by up to 8 MiB around a flat line (the collector's pace), which can tilt a slope fitted
# over 50 reloads by about 100 KiB per reload either way; 150 KiB per reload would still be 30 MiB over 200
# reloads. The 1 MiB-stack build grew about 7 MiB per reload.
PLATEAU_SLOPE_BUDGET_KIB = 150
# The plateau's height above the minimal guest's, per router: measured 3.0 MiB (this plugin +42.8 MiB, the minimal
# guest +12.7 MiB, 10 routers); the budget leaves a third for the collector's pace. The 1 MiB-stack build was
# about 27 MiB per router after 40 reloads.
PLATEAU_OVER_FLOOR_BUDGET_KIB = 4 * 1024
# The plugin's plateau above the padded guest's, per router: measured 0.2 MiB (plateaus +53 and +51 MiB over the
# start, 10 routers), within the plateau's wander; the budget is that wander (8 MiB) over 10 routers.
PLATEAU_OVER_SAME_SIZE_BUDGET_KIB = 800
# Go's live heap after forced collections, end against start: what reloads keep. Measured: under 1 MiB.
KEPT_HEAP_BUDGET_KIB = 2 * 1024


@pytest.fixture(scope="module")
def reloaded(built_modules, upstream) -> dict[str, dict]:
    """Each variant's samples, and what Go keeps and closes once every replaced middleware is collectable."""
    results = {}
    for variant, middleware in VARIANTS.items():
        traefik = WatchedTraefik(dynamic=pangolin_routers(ROUTERS, middleware, upstream.port), debug=True,
                                 workdir=work_dir(f"reloads-{variant.replace(' ', '-')}"), env={"GOMAXPROCS": "1"})
        with traefik:
            traefik.wait_for_router(*[f"r{i}.example.com" for i in range(ROUTERS)], timeout=60)
            traefik.collect_garbage()
            heap_before = traefik.heap_alloc_kib()
            samples = reload_memory(traefik, ROUTERS, middleware, upstream.port, RELOADS, every=5, label=variant)
            traefik.collect_garbage()
            results[variant] = {"samples": samples, "heap_before_kib": heap_before,
                                "heap_after_kib": traefik.heap_alloc_kib(), "closed": traefik.middlewares_closed(),
                                "plugin_instances": plugin_instances(traefik)}
        print(f"\n{variant}: heap {heap_before} -> {results[variant]['heap_after_kib']} KiB after forced GCs, "
              f"{results[variant]['closed']} middlewares closed; RSS "
              + ", ".join(f"{s['rss_kib'] // 1024}" for s in samples) + " MiB")
    return results


def plateau_growth_kib(result: dict) -> float:
    return plateau_summary(result["samples"], WARM_UP)["plateau_growth_kib"]


@pytest.mark.parametrize("variant", WASM_VARIANTS)
def test_every_replaced_middleware_is_closed(reloaded, variant):
    """Traefik closes a replaced Wasm middleware from a finalizer (traefik#11119); after forced collections every
    one of the RELOADS x ROUTERS replaced middlewares has been closed, so Traefik's host keeps no instance."""
    closed = reloaded[variant]["closed"]
    assert closed >= RELOADS * ROUTERS, f"{variant}: {closed} of {RELOADS * ROUTERS} replaced middlewares closed"


def test_the_plugin_builds_one_instance_per_router_per_reload(reloaded):
    """Each reload builds every router's middleware again, each with its one eager guest instance, and nothing
    more: the per-reload cost is ROUTERS instances (Traefik's start may build a few extra before the first)."""
    samples = reloaded["plugin"]["samples"]
    created = samples[-1]["instances"] - samples[0]["instances"]
    assert created == ROUTERS * RELOADS, f"{created} instances created by {RELOADS} reloads of {ROUTERS} routers"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reloads_keep_no_heap(reloaded, variant):
    result = reloaded[variant]
    kept = result["heap_after_kib"] - result["heap_before_kib"]
    assert kept <= KEPT_HEAP_BUDGET_KIB, \
        f"{variant}: Go's live heap grew {kept} KiB over {RELOADS} reloads (budget {KEPT_HEAP_BUDGET_KIB} KiB)"


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rss_is_flat_once_on_its_plateau(reloaded, variant):
    """From WARM_UP on, the slope of RSS over reloads (least squares over the samples) stays under the budget."""
    slope = plateau_summary(reloaded[variant]["samples"], WARM_UP)["plateau_slope_kib_per_reload"]
    assert slope <= PLATEAU_SLOPE_BUDGET_KIB, \
        f"{variant}: RSS grows {slope:.0f} KiB per reload on its plateau (budget {PLATEAU_SLOPE_BUDGET_KIB} KiB)"


@pytest.mark.parametrize("floor, budget_kib", [("minimal guest", PLATEAU_OVER_FLOOR_BUDGET_KIB),
                                               ("padded guest", PLATEAU_OVER_SAME_SIZE_BUDGET_KIB)])
def test_plugin_plateau_within_budget_of_a_guest_that_does_nothing(reloaded, floor, budget_kib):
    plugin, floor_growth = plateau_growth_kib(reloaded["plugin"]), plateau_growth_kib(reloaded[floor])
    per_router = (plugin - floor_growth) / ROUTERS
    print(f"\nplateau over the start: plugin {plugin / 1024:.1f} MiB, {floor} {floor_growth / 1024:.1f} MiB")
    assert per_router <= budget_kib, \
        (f"the plugin's RSS plateau is {plugin / 1024:.1f} MiB above its start, the {floor}'s "
         f"{floor_growth / 1024:.1f} MiB: {per_router:.0f} KiB per router (budget {budget_kib} KiB)")
