"""Large downloads stream through the filter: the first byte arrives long before the last, and the proxy's
resident memory stays flat. Run as a browser navigation too (Sec-Fetch-Dest: document): `streaming_paths`
keeps Traefik from buffering it. And the case a careful operator worries about: a large GET on a path that is
not under `streaming_paths` is held by Traefik (buffered whole, then the full policy applies), measured here."""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass

import pytest
from conftest import DOCUMENT
from secure_headers_harness.processes import rss_kib
from test_policy import DEMO_POLICY

SIZE = 200 * 1024 * 1024
HELD_SIZE = 64 * 1024 * 1024
MAX_RSS_GROWTH_KIB = 50 * 1024


@dataclass
class Download:
    status: int
    received: int
    first_byte: float
    total: float
    rss_growth_kib: int
    headers: http.client.HTTPMessage

    def report(self, label: str) -> str:
        return (f"{label}: first byte {self.first_byte * 1000:.1f} ms, all {self.received >> 20} MiB in "
                f"{self.total:.2f} s, RSS +{self.rss_growth_kib // 1024} MiB")


def download(proxy, size: int, headers: dict[str, str]) -> Download:
    pid = proxy.server.process.pid
    baseline = rss_kib(pid)
    peak = [baseline]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    conn = http.client.HTTPConnection("127.0.0.1", proxy.server.ports["http"], timeout=120)
    try:
        start = time.monotonic()
        conn.request("GET", f"/api/download/archive?size={size}", headers={"Host": "immich.test", **headers})
        response = conn.getresponse()
        first = response.read(1)
        first_byte = time.monotonic() - start
        received = len(first)
        while chunk := response.read(1 << 16):
            received += len(chunk)
        total = time.monotonic() - start
    finally:
        done.set()
        sampler.join()
        conn.close()
    return Download(response.status, received, first_byte, total, peak[0] - baseline, response.headers)


@pytest.mark.parametrize("headers", [{}, DOCUMENT], ids=["fetch", "navigation"])
def test_200mb_download_streams_with_flat_memory(proxy_for, host, headers):
    got = download(proxy_for(host, DEMO_POLICY), SIZE, headers)
    print("\n" + got.report(host))
    assert got.status == 200 and got.received == SIZE
    assert got.headers.get("x-content-type-options") == "nosniff"
    assert got.headers.get("x-powered-by") is None, "Traefik: the companion middleware removes it"
    assert got.first_byte < got.total / 10, f"first byte after {got.first_byte:.2f}s of {got.total:.2f}s: buffered?"
    assert got.rss_growth_kib < MAX_RSS_GROWTH_KIB, f"{host} grew by {got.rss_growth_kib} KiB while streaming"


def test_a_large_download_outside_streaming_paths_is_held_by_traefik(proxy_for):
    """Without `streaming_paths`, Traefik holds a plain GET (curl, a scanner): the whole body is buffered in
    Traefik's memory before the first byte leaves, and the response gets the full policy."""
    policy = json.dumps({**json.loads(DEMO_POLICY), "rules": [
        {**json.loads(DEMO_POLICY)["rules"][0], "streaming_paths": []}]})
    got = download(proxy_for("traefik", policy), HELD_SIZE, {})
    print("\n" + got.report("traefik, held"))
    assert got.status == 200 and got.received == HELD_SIZE
    assert got.headers.get("x-content-type-options") == "nosniff"
    assert got.headers.get("x-powered-by") is None
    assert got.first_byte > got.total / 2, "held: the first byte leaves after the whole body arrived"
    assert got.rss_growth_kib > (HELD_SIZE >> 10) / 2, "held: the body is in Traefik's memory"
