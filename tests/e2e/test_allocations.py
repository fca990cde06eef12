"""The response path allocates nothing: 10,000 requests through the immich preset in real Envoy, after warm-up,
counted by the alloc-count build of the module (Envoy counter wasmcustom.secure_headers.heap_allocations)."""

from __future__ import annotations

import http.client
import json
import urllib.request
from pathlib import Path

from secure_headers_harness.envoy import Envoy
from secure_headers_harness.paths import ALLOC_COUNT_WASM as COUNTING_MODULE
from test_policy import DEMO_POLICY

BUDGET = json.loads((Path(__file__).with_name("allocation_budget.json")).read_text())["allocations_per_response"]
# The kinds of response Immich sends: SPA HTML, media, JSON, favicon (repaired), a redirect, a 404.
PATHS = ["/", "/api/assets/a/thumbnail?size=2048", "/api/server/ping", "/favicon.ico", "/redirect", "/nope",
         "/_app/immutable/app.js", "/.well-known/immich"]
WARM_UP, MEASURED = 1_000, 10_000


def heap_allocations(envoy: Envoy) -> int:
    with urllib.request.urlopen(f"{envoy.admin}/stats?filter=secure_headers.heap_allocations") as r:
        text = r.read().decode()
    values = [int(line.rsplit(":", 1)[1]) for line in text.splitlines() if "heap_allocations" in line]
    assert values, f"the counting build exposes no counter: {text!r}"
    return sum(values)


def send(conn: http.client.HTTPConnection, count: int) -> None:
    for i in range(count):
        conn.request("GET", PATHS[i % len(PATHS)], headers={"Host": "immich.test", "X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        response.read()
        assert response.status in (200, 302, 404), response.status


def test_no_heap_allocation_per_response_in_steady_state(upstream):
    assert COUNTING_MODULE.exists(), f"{COUNTING_MODULE} is missing: `make e2e` builds it"
    with Envoy(DEMO_POLICY, upstream.port, wasm=COUNTING_MODULE) as envoy:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.ports["http"], timeout=30)
        send(conn, WARM_UP)
        before = heap_allocations(envoy)
        send(conn, MEASURED)
        after = heap_allocations(envoy)
        conn.close()
    per_response = (after - before) / MEASURED
    print(f"\nheap allocations: {before} after {WARM_UP} warm-up responses, +{after - before} over {MEASURED} "
          f"more = {per_response:.4f} per response (budget {BUDGET})")
    assert before > 0, "the counter must see the start-up allocations, or it is not counting"
    assert per_response <= BUDGET


def test_the_counter_sees_allocations_when_a_value_outgrows_the_scratch_slots(upstream):
    """Control: a 40 KiB path does not fit a 32 KiB scratch slot, so every request's headers go to the heap."""
    long_path = "/" + "a" * 40 * 1024
    with Envoy(DEMO_POLICY, upstream.port, wasm=COUNTING_MODULE) as envoy:
        conn = http.client.HTTPConnection("127.0.0.1", envoy.ports["http"], timeout=30)
        send(conn, 100)
        before = heap_allocations(envoy)
        for _ in range(100):
            conn.request("GET", long_path, headers={"Host": "immich.test"})
            conn.getresponse().read()
        after = heap_allocations(envoy)
        conn.close()
    assert after - before >= 100, f"{after - before} allocations for 100 oversized reads"
