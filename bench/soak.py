"""`make soak`: at least 1,000,000 requests through real Envoy with the `immich` preset, inline script hashes and
the CSP report collector, a mix of normal traffic, hashed documents (held and read in their own stream: envoy.yaml
sets allow_on_headers_stop_iteration) and valid, malformed and oversized reports. Passes when no response fails
(no 5xx, no socket error), no document falls back for a host reason (not held, body unread, fetch failed), and
the guest's linear memory and Envoy's resident memory stay flat after warm-up.

Uses the `alloc-count` build (the shipped code plus a heap counter and a linear-memory gauge). Prints a line per
chunk and writes bench/soak.json."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from secure_headers_harness.envoy import Envoy
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import ALLOC_COUNT_WASM as MODULE, ROOT, work_dir
from secure_headers_harness.processes import rss_kib
from secure_headers_harness.upstream import Upstream

POLICY = json.dumps({"csp_reports": {}, "rules": [
    {"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
     "inline_script_hashes": {"max_scripts": 2}}]})
REPORT = json.dumps({"csp-report": {"document-uri": "http://immich.test/photos", "effective-directive": "img-src",
                                    "blocked-uri": "https://tiles.example/1.png", "disposition": "report"}})
# One in three requests is a report; of those, most are hostile. Statuses are what each kind must get. The last
# field is the request's Sec-Fetch-Dest: a navigation to an HTML document, held and hashed by the filter.
MIX = [
    ("GET", "/browser/hashed?v=soak", None, None, 200, "document"),
    ("GET", "/", None, None, 200),
    ("GET", "/api/server/ping", None, None, 200),
    ("GET", "/api/assets/a/thumbnail?size=4096", None, None, 200),
    ("GET", "/_app/immutable/app.js", None, None, 200),
    ("GET", "/favicon.ico", None, None, 200),
    ("GET", "/nope", None, None, 404),
    ("POST", "/.well-known/csp-report", "application/csp-report", REPORT, 204),
    ("POST", "/.well-known/csp-report", "application/csp-report", "{\"csp-report\": [1, 2", 400),
    ("POST", "/.well-known/csp-report", "application/csp-report", "x" * 70_000, 413),
    ("POST", "/.well-known/csp-report", "text/plain", REPORT, 415),
    ("POST", "/.well-known/csp-report", "application/reports+json",
     json.dumps([{"type": "csp-violation", "body": {"effectiveDirective": "connect-src",
                                                    "blockedURL": f"https://h{i}.example/"}} for i in range(40)]), 204),
    ("GET", "/.well-known/csp-report", None, None, 405),
]

WRK_SCRIPT = """
local mix = %(mix)s
local threads = {}
setup = function(thread) table.insert(threads, thread) end
-- Per thread (each runs its own Lua state); done() gathers them.
i = 0
statuses = {}
request = function()
  i = i %% #mix + 1
  local m = mix[i]
  local headers = {["Host"] = "immich.test"}
  if m[3] then headers["Content-Type"] = m[3] end
  if m[6] then headers["Sec-Fetch-Dest"] = m[6] end
  return wrk.format(m[1], m[2], headers, m[4])
end
response = function(status)
  statuses[status] = (statuses[status] or 0) + 1
end
done = function(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + count end
  end
  io.write("statuses ")
  for status, count in pairs(total) do io.write(status, "=", count, " ") end
  io.write("\\n")
end
"""


def lua_string(value: str | None) -> str:
    return "nil" if value is None else json.dumps(value)


def wrk_script(path: Path) -> None:
    rows = ",".join(f"{{{json.dumps(m)}, {json.dumps(p)}, {lua_string(t)}, {lua_string(b)}, {s}, {lua_string(d)}}}"
                    for m, p, t, b, s, d in (row + (None,) * (6 - len(row)) for row in MIX))
    path.write_text(WRK_SCRIPT % {"mix": "{" + rows + "}"})


def stat(envoy: Envoy, name: str) -> int:
    with urllib.request.urlopen(f"{envoy.admin}/stats?filter=^{re.escape(name)}$") as r:
        values = [int(v) for v in re.findall(r": (\d+)", r.read().decode())]
    return max(values) if "memory" in name else sum(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--chunk-seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: `make soak` installs it with apt")
    if not MODULE.exists():
        raise SystemExit(f"{MODULE} is missing: `make soak` builds it")
    workdir = work_dir("soak")
    script = workdir / "mix.lua"
    wrk_script(script)
    expected = {str(row[4]) for row in MIX}
    samples = []
    with Upstream() as upstream, Envoy(POLICY, upstream.port, wasm=MODULE) as envoy:
        for method, path, content_type, body, status, *dest in MIX:  # each kind answers as expected first
            headers = {"Content-Type": content_type, "Content-Length": str(len(body))} if body else {}
            headers.update({"Sec-Fetch-Dest": d for d in dest})
            got = request(envoy.ports["http"], path, method=method, headers=headers,
                          body=body.encode() if body else None).status
            if got != status:
                raise SystemExit(f"{method} {path}: {got}, expected {status}")
        total, failed, started = 0, 0, time.monotonic()
        while total < args.requests:
            out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.chunk_seconds}s", "-s",
                                  str(script), envoy.http], capture_output=True, text=True, check=True).stdout
            count = int(re.search(r"(\d+) requests in", out).group(1))
            errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
            statuses = dict(pair.split("=") for pair in re.search(r"statuses (.*)", out).group(1).split())
            if sum(int(n) for n in statuses.values()) < count * 0.99:
                raise SystemExit(f"wrk counted statuses for fewer responses than it sent:\n{out}")
            unexpected = sum(int(n) for s, n in statuses.items() if s not in expected)
            socket_errors = sum(int(n) for n in errors.groups()) if errors else 0
            total += count
            failed += unexpected + socket_errors
            sample = {"requests": total, "rps": round(count / args.chunk_seconds),
                      "failed": unexpected + socket_errors, "statuses": statuses,
                      "envoy_rss_kib": rss_kib(envoy.process.pid),
                      "guest_linear_memory_bytes": stat(envoy, "wasmcustom.secure_headers.linear_memory_bytes"),
                      "guest_heap_allocations": stat(envoy, "wasmcustom.secure_headers.heap_allocations"),
                      "reports_accepted": stat(envoy, "wasmcustom.secure_headers.csp_reports.accepted"),
                      "documents_hashed": stat(envoy, "wasmcustom.secure_headers.inline_scripts.documents_hashed"),
                      "document_fetches_failed": stat(
                          envoy, "wasmcustom.secure_headers.inline_scripts.fallback.fetch_failed"),
                      "documents_not_held_or_unread": sum(
                          stat(envoy, f"wasmcustom.secure_headers.inline_scripts.fallback.{reason}")
                          for reason in ("not_held", "body_unread")),
                      "reports_rejected": sum(stat(envoy, f"wasmcustom.secure_headers.csp_reports.rejected.{r}")
                                              for r in ("malformed", "too_large", "media_type", "method"))}
            samples.append(sample)
            print(f"{total:>9,} requests  {sample['rps']:>6,}/s  failed {sample['failed']}  "
                  f"envoy RSS {sample['envoy_rss_kib'] / 1024:.1f} MiB  "
                  f"guest memory {sample['guest_linear_memory_bytes'] / 1048576:.2f} MiB  "
                  f"heap allocations {sample['guest_heap_allocations']:,}", flush=True)
        blocked = stat(envoy, "wasmcustom.secure_headers.csp_reports.blocked.other")
        elapsed = time.monotonic() - started
    warm = samples[1] if len(samples) > 1 else samples[0]
    last = samples[-1]
    result = {
        "requests": total, "seconds": round(elapsed), "failed": failed,
        "envoy_rss_kib_after_warmup": warm["envoy_rss_kib"], "envoy_rss_kib_end": last["envoy_rss_kib"],
        "guest_memory_after_warmup": warm["guest_linear_memory_bytes"],
        "guest_memory_end": last["guest_linear_memory_bytes"],
        "blocked_origin_counters_beyond_32_counted_as_other": blocked,
        "documents_hashed": last["documents_hashed"], "document_fetches_failed": last["document_fetches_failed"],
        "documents_not_held_or_unread": last["documents_not_held_or_unread"],
        "samples": samples,
    }
    (ROOT / "bench" / "soak.json").write_text(json.dumps(result, indent=1) + "\n")
    rss_growth = (last["envoy_rss_kib"] - warm["envoy_rss_kib"]) / 1024
    print(f"\n{total:,} requests in {elapsed:.0f} s, {failed} failed; after warm-up Envoy RSS "
          f"{warm['envoy_rss_kib'] / 1024:.1f} -> {last['envoy_rss_kib'] / 1024:.1f} MiB ({rss_growth:+.1f}), guest "
          f"memory {warm['guest_linear_memory_bytes']:,} -> {last['guest_linear_memory_bytes']:,} bytes; "
          f"{last['documents_hashed']:,} documents hashed, {last['document_fetches_failed']} fetches failed, "
          f"{last['documents_not_held_or_unread']} not held or unread")
    flat = last["guest_linear_memory_bytes"] == warm["guest_linear_memory_bytes"] and rss_growth < 8
    host_fallbacks = last["document_fetches_failed"] + last["documents_not_held_or_unread"]
    return 0 if failed == 0 and host_fallbacks == 0 and flat else 1


if __name__ == "__main__":
    sys.exit(main())
