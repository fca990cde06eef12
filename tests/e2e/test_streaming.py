"""Large downloads stream through the filter: the first byte arrives long before the last, and the proxy's
resident memory stays flat. Run as a browser navigation too (Sec-Fetch-Dest: document): `streaming_paths`
keeps Traefik from buffering it."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path

import pytest
from conftest import DOCUMENT
from test_policy import DEMO_POLICY

SIZE = 200 * 1024 * 1024
MAX_RSS_GROWTH_KIB = 50 * 1024


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.parametrize("headers", [{}, DOCUMENT], ids=["fetch", "navigation"])
def test_200mb_download_streams_with_flat_memory(proxy_for, host, headers):
    proxy = proxy_for(host, DEMO_POLICY)
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
        conn.request("GET", f"/api/download/archive?size={SIZE}", headers={"Host": "immich.test", **headers})
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
    growth = peak[0] - baseline
    print(f"\n{host}: first byte {first_byte * 1000:.1f} ms, all {SIZE >> 20} MiB in {total:.2f} s, "
          f"RSS {baseline // 1024} MiB -> peak {peak[0] // 1024} MiB (+{growth // 1024} MiB)")
    assert response.status == 200 and received == SIZE
    assert response.getheader("x-content-type-options") == "nosniff"
    assert first_byte < total / 10, f"first byte after {first_byte:.2f}s of {total:.2f}s: buffered?"
    assert growth < MAX_RSS_GROWTH_KIB, f"{host} grew by {growth} KiB while streaming"
