"""Traefik under Pangolin's shape at scale (issues 23, 25): Traefik's memory with 1..200 resource routers that each
use the plugin (Pangolin's `additional_middlewares`), against the same routers with Traefik's native `headers`
middleware and the minimal http-wasm guest; after provider reloads that change a router each time (those four:
native, minimal guest, minimal guest padded to the plugin's code size, plugin); and with 100 concurrent held
1 MiB pages.

Real Traefik 3.7 (GOMAXPROCS=1) reads its routers from an HTTP provider (a local server, as Pangolin's API is),
each router `badger` (a forwardAuth to an always-200 server) then the middleware under test. RSS is Traefik's
VmRSS from /proc; "under load" is the peak sampled every 50 ms while wrk spreads requests over every router.
The plugin's instance count is the number of "policy loaded" lines (each guest instance logs one when Traefik
creates it; Go's sync.Pool drops idle ones at each GC, so this counts instances created, not alive).

Writes bench/traefik_scale.json and bench/traefik_scale.md (BENCHMARKS.md includes the latter). A short run:
`--routers 1,10,50 --reloads 40`. Run by `make bench` after bench/run.py.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from benchmarks_md import include_section
from secure_headers_harness.paths import HTTP_WASM_DIR, work_dir
from secure_headers_harness.reloads import (MINIMAL_GUEST_FILES, MINIMAL_GUEST_KEY, PADDED_GUEST_KEY,
                                            WatchedTraefik, pangolin_routers, plateau_summary, plugin_instances,
                                            reload_memory, resource_host)
from secure_headers_harness.served import Served, serve_in_thread
from secure_headers_harness.traefik import PLUGIN_KEY, companion_middleware
from secure_headers_harness.wasm_module import memory_layout

BENCH = Path(__file__).resolve().parent
POLICY = '{"presets": ["immich"]}'
PAGE = b"<!doctype html><title>ok</title><p>ok</p>"
BIG = 1 << 20  # a held page of 1 MiB
HOLD_SECONDS = 3.0  # the big page's last byte comes this late, so every request is in flight at once


class Upstream:
    """The app: `/` a small page; `/big` 1 MiB of HTML whose last byte waits HOLD_SECONDS; `/auth` badger's 200."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                body = b"x" * BIG if self.path == "/big" else PAGE
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path == "/big":
                    self.wfile.write(body[:-1])
                    self.wfile.flush()
                    time.sleep(HOLD_SECONDS)
                    self.wfile.write(body[-1:])
                else:
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = serve_in_thread(Handler)
        self.port = self.server.server_address[1]


class ProviderAPI(Served):
    """Pangolin's API as Traefik's HTTP provider polls it: serves `config`, which the bench replaces to reload."""

    def __init__(self):
        self.config: dict = {}
        super().__init__(lambda path: (200, json.dumps(self.config).encode()))


@dataclass(kw_only=True)
class PangolinTraefik(WatchedTraefik):
    """The harness's reloading Traefik, reading its routers from an HTTP provider (as from Pangolin's API) instead
    of a watched file; polled fast so reloads take a fraction of a second, not seconds."""

    api: ProviderAPI

    def providers(self) -> dict:
        self.reload(self.dynamic)
        return {"http": {"endpoint": f"http://127.0.0.1:{self.api.port}/api/v1/traefik-config",
                         "pollInterval": "250ms"}}

    def reload(self, dynamic: dict) -> None:
        """The next configuration, served at Traefik's next poll."""
        self.api.config = dynamic

    def linear_memory_kib(self) -> int:
        """The largest linear memory an instance logged after configure (each logs it when created)."""
        sizes = [int(m) for m in re.findall(r"linear memory (\d+) KiB after configure", self.log())]
        return max(sizes, default=0)



class PeakRSS:
    """Samples the process's RSS every 50 ms while the block runs."""

    def __init__(self, traefik: PangolinTraefik):
        self.traefik, self.peak, self.stop = traefik, 0, threading.Event()

    def __enter__(self):
        def sample():
            while not self.stop.is_set():
                self.peak = max(self.peak, self.traefik.rss_kib())
                time.sleep(0.05)
        self.thread = threading.Thread(target=sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.traefik.rss_kib())


def spread_load(traefik: PangolinTraefik, routers: int, seconds: int, connections: int) -> int:
    """wrk over every router (a random Host per request); returns the requests served."""
    script = traefik.workdir / "hosts.lua"
    hosts = ", ".join(f'"{resource_host(i)}"' for i in range(routers))
    script.write_text(f"local hosts = {{{hosts}}}\n"
                      "request = function() return wrk.format(nil, '/', {Host = hosts[math.random(#hosts)]}) end\n")
    run = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                          f"http://127.0.0.1:{traefik.ports['http']}/"], capture_output=True, text=True, check=True)
    return int(run.stdout.split(" requests in")[0].split()[-1])


def held_pages(traefik: PangolinTraefik, concurrent: int, headers: dict[str, str]) -> float:
    """`concurrent` GETs of the 1 MiB page at once (hey, one each); returns the seconds they took."""
    start = time.monotonic()
    extra = [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    subprocess.run(["hey", "-n", str(concurrent), "-c", str(concurrent), "-host", resource_host(0), *extra,
                    f"http://127.0.0.1:{traefik.ports['http']}/big"], capture_output=True, check=True)
    return time.monotonic() - start


def measure(variant: str, middleware: dict, routers: list[int], upstream: Upstream, args) -> dict:
    """Per router count: a fresh Traefik, every router asked once (idle), then wrk over all of them (load)."""
    rows = []
    for count in routers:
        api = ProviderAPI()
        traefik = PangolinTraefik(api=api, dynamic=pangolin_routers(count, middleware, upstream.port),
                                  workdir=work_dir(f"scale-{variant}-{count}"),
                                  env={"GOMAXPROCS": "1"})
        with traefik:
            traefik.wait_for_router(*[resource_host(i) for i in range(count)], timeout=60)
            time.sleep(1)
            idle = traefik.rss_kib()
            created_idle = plugin_instances(traefik)
            with PeakRSS(traefik) as peak:
                served = spread_load(traefik, count, args.seconds, args.connections)
            rows.append({"routers": count, "idle_rss_kib": idle, "load_peak_rss_kib": peak.peak,
                         "linear_memory_after_configure_kib": traefik.linear_memory_kib(),
                         "requests": served, "instances_idle": created_idle,
                         "instances_after_load": plugin_instances(traefik)})
        api.close()
        print(f"{variant} {count} routers: {rows[-1]}", file=sys.stderr)
    return {"rows": rows}


def reloads(variant: str, middleware: dict, routers: int, upstream: Upstream, count: int) -> dict:
    """`count` provider reloads, each renaming router 0's host; RSS before, every 10 reloads, and after, and
    what they say (harness reloads.plateau_summary, the plateau from the second half on)."""
    api = ProviderAPI()
    traefik = PangolinTraefik(api=api, dynamic=pangolin_routers(routers, middleware, upstream.port),
                              workdir=work_dir(f"scale-reloads-{variant.replace(' ', '-')}"),
                              env={"GOMAXPROCS": "1"})
    with traefik:
        samples = reload_memory(traefik, routers, middleware, upstream.port, count, label=variant)
    api.close()
    return {"samples": samples, **plateau_summary(samples, count // 2)}


def reload_variants(plugin: dict, native: dict) -> dict[str, dict]:
    """The middlewares whose reloads are compared: Traefik's own, the minimal guest (any Wasm middleware's
    floor), the minimal guest padded to this plugin's code size (a module this size's floor), the plugin."""
    return {"native headers": native, "minimal guest": {"plugin": {MINIMAL_GUEST_KEY: {}}},
            "padded guest": {"plugin": {PADDED_GUEST_KEY: {}}}, "plugin": plugin}


def all_reloads(plugin: dict, native: dict, routers: int, upstream: Upstream, count: int) -> dict:
    return {"routers": routers, "count": count,
            "variants": {name: reloads(name, middleware, routers, upstream, count)
                         for name, middleware in reload_variants(plugin, native).items()}}


# The same 1 MiB pages three ways, so the held figure can be taken apart: the plugin holding them (a plain GET),
# the plugin streaming them (an image's destination is never a document: one instance per request, no buffer),
# and the native headers middleware (neither).
HELD_VARIANTS = {"plugin_held": ("plugin", {}), "plugin_streamed": ("plugin", {"Sec-Fetch-Dest": "image"}),
                 "native": ("native", {})}


def held(middleware: dict, upstream: Upstream, concurrent: int, headers: dict[str, str]) -> dict:
    api = ProviderAPI()
    traefik = PangolinTraefik(api=api, dynamic=pangolin_routers(1, middleware, upstream.port),
                              workdir=work_dir("scale-held"), env={"GOMAXPROCS": "1"})
    with traefik:
        traefik.wait_for_router(resource_host(0), timeout=60)
        time.sleep(1)
        before = traefik.rss_kib()
        with PeakRSS(traefik) as peak:
            seconds = held_pages(traefik, concurrent, headers)
        instances = plugin_instances(traefik)
        time.sleep(5)
        settled = traefik.rss_kib()
    api.close()
    in_flight = concurrent * BIG // 1024
    return {"concurrent": concurrent, "page_bytes": BIG, "rss_before_kib": before, "peak_rss_kib": peak.peak,
            "bytes_in_flight_kib": in_flight, "growth_over_in_flight": (peak.peak - before) / in_flight,
            "seconds": seconds, "instances": instances, "rss_5s_after_kib": settled}


def per_router(rows: list[dict], key: str) -> float:
    """The slope of RSS over router count, from the first to the last row (KiB per router)."""
    first, last = rows[0], rows[-1]
    return (last[key] - first[key]) / max(1, last["routers"] - first["routers"])


def reload_table(reloads: dict) -> list[str]:
    """One row per middleware: RSS before, the plateau, the slope on it, 5 s after the last reload."""
    lines = [f"Reloads: {reloads['count']} provider reloads of {reloads['routers']} routers, each renaming one "
             "router's host (Traefik builds every router's middleware again each time). The plateau is the median "
             "of the samples from the second half on; its slope the least-squares fit over them.", "",
             "| middleware | RSS before | plateau above it | slope on the plateau | RSS 5 s after the last | "
             "samples (every 10 reloads) |", "|---|---:|---:|---:|---:|---|"]
    for name, r in reloads["variants"].items():
        samples = " ".join(f"{x['rss_kib'] / 1024:.0f}" for x in r["samples"] if not x.get("settled"))
        lines.append(f"| {name} | {r['before_kib'] / 1024:.1f} MiB | {r['plateau_growth_kib'] / 1024:+.1f} MiB | "
                     f"{r['plateau_slope_kib_per_reload']:+.0f} KiB per reload | {r['settled_kib'] / 1024:.1f} MiB "
                     f"| {samples} |")
    return lines


def ratio_line(s: dict, results: dict) -> str:
    """Plugin against native per router; a native slope under 16 KiB is noise, so no ratio is claimed then."""
    native = s["native_kib_per_router_idle"]
    ratio = (f"ratio plugin / native (idle) {s['plugin_kib_per_router_idle'] / native:.1f}x" if native >= 16
             else "the native middleware's per-router cost is within the noise (under 16 KiB), so no ratio is "
                  f"given (the plugin's: {s['plugin_kib_per_router_idle']:.0f} KiB)")
    return (f"{ratio}. Instances per router idle at the largest count: "
            f"{results['plugin']['rows'][-1]['instances_idle'] / results['plugin']['rows'][-1]['routers']:.1f}; "
            "the held-pages table below shows what one instance adds (streamed minus native), so the rest of the "
            "per-router cost is what Traefik builds per router for a Wasm middleware, outside its instances "
            "(not taken apart further).")


def markdown(results: dict) -> str:
    plugin, native = results["plugin"]["rows"], results["native"]["rows"]
    lines = ["## Traefik under Pangolin at scale", "",
             f"`make bench` (bench/traefik_scale.py; {results['note']}). Real Traefik 3.7.15, GOMAXPROCS=1, routers "
             "from an HTTP provider as Pangolin generates them (badger, then the middleware). RSS is Traefik's "
             "VmRSS; idle is after every router answered once; load is the peak while "
             f"`wrk -c{results['connections']}` spreads requests over every router for {results['seconds']} s. "
             "Plugin instances: each logs a line when created (Go's sync.Pool drops idle ones at each GC, so this "
             "counts creations).", "",
             f"The module's initial linear memory: {results['initial_memory_bytes'] // 1024} KiB "
             f"({results['initial_memory_bytes'] // 65536} pages), what every instance reserves; its linear memory "
             "once the policy is compiled (logged by each instance): "
             f"{max(r['linear_memory_after_configure_kib'] for r in results['plugin']['rows'])} KiB. Of the "
             f"initial memory, {results['stack_bytes'] // 1024} KiB is the stack (hosts/wasm_stack.rs; the "
             f"toolchain's default is 1 MiB) and {results['data_bytes'] // 1024} KiB static data; the heap after "
             f"configure fits in the rest. Its code: {results['code_bytes'] // 1024} KiB, which Traefik decodes "
             "for every middleware it builds.", "",
             "| routers | plugin idle RSS | plugin load peak | plugin instances (idle / after load) | "
             "native headers idle RSS | native load peak | empty Wasm guest idle RSS |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for p, n, e in zip(plugin, native, results["empty_wasm"]["rows"]):
        lines.append(f"| {p['routers']} | {p['idle_rss_kib'] / 1024:.1f} MiB | {p['load_peak_rss_kib'] / 1024:.1f} MiB"
                     f" | {p['instances_idle']} / {p['instances_after_load']} | {n['idle_rss_kib'] / 1024:.1f} MiB"
                     f" | {n['load_peak_rss_kib'] / 1024:.1f} MiB | {e['idle_rss_kib'] / 1024:.1f} MiB |")
    s = results["summary"]
    lines += ["", f"Per router (slope from {plugin[0]['routers']} to {plugin[-1]['routers']} routers): plugin "
              f"{s['plugin_kib_per_router_idle']:.0f} KiB idle, {s['plugin_kib_per_router_load']:.0f} KiB under load;"
              f" native headers {s['native_kib_per_router_idle']:.0f} KiB idle, "
              f"{s['native_kib_per_router_load']:.0f} KiB under load; " + ratio_line(s, results),
              "", "An http-wasm guest that does nothing (bench/filters/empty-http-wasm, "
              f"{results['empty_wasm_module_bytes']} bytes) costs {s['empty_wasm_kib_per_router_idle']:.0f} KiB "
              f"per router idle, against the plugin's {s['plugin_kib_per_router_idle']:.0f} KiB.", ""]
    lines += reload_table(results["reloads"]) + [""]
    h = results["held"]
    per_request = {name: (v["peak_rss_kib"] - v["rss_before_kib"]) / v["concurrent"] / 1024 for name, v in h.items()}
    first = h["plugin_held"]
    lines += [f"Held pages: {first['concurrent']} concurrent GETs of a 1 MiB page whose last byte comes "
              f"{HOLD_SECONDS:.0f} s late (so all are in flight at once), against "
              f"{first['bytes_in_flight_kib'] / 1024:.0f} MiB of bodies in flight:", "",
              "| middleware | RSS before | peak | 5 s after | growth / bytes in flight | per request | "
              "instances created |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in h.items():
        lines.append(f"| {name.replace('_', ' ')} | {v['rss_before_kib'] / 1024:.1f} MiB | "
                     f"{v['peak_rss_kib'] / 1024:.1f} MiB | {v['rss_5s_after_kib'] / 1024:.1f} MiB | "
                     f"{v['growth_over_in_flight']:.2f}x | {per_request[name]:.2f} MiB | {v['instances']} |")
    instance = per_request["plugin_streamed"] - per_request["native"]
    buffer = per_request["plugin_held"] - per_request["plugin_streamed"]
    lines += ["", f"So per held request: {instance:.2f} MiB for its guest instance (streamed minus native) and "
              f"{buffer:.2f} MiB for Traefik's buffer of the 1 MiB body (held minus streamed).", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routers", default="1,10,50,200")
    parser.add_argument("--reloads", type=int, default=200)
    parser.add_argument("--reload-routers", type=int, default=10)
    parser.add_argument("--held", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--note", default="full run")
    parser.add_argument("--only-reloads", action="store_true",
                        help="only the reloads; prints their table and writes neither results file")
    args = parser.parse_args()
    if args.reloads < 20:
        parser.error("--reloads must be at least 20: the plateau is fitted over the second half's samples, "
                     "taken every 10 reloads")
    routers = [int(n) for n in args.routers.split(",")]
    upstream = Upstream()
    plugin = {"plugin": {PLUGIN_KEY: {"policy": POLICY}}}
    native = companion_middleware(POLICY, [])
    if args.only_reloads:
        print("\n".join(reload_table(all_reloads(plugin, native, args.reload_routers, upstream, args.reloads))))
        return 0
    results = {"note": args.note, "seconds": args.seconds, "connections": args.connections,
               **memory_layout(HTTP_WASM_DIR / "secure_headers.wasm"),
               "empty_wasm_module_bytes": MINIMAL_GUEST_FILES[0].stat().st_size,
               "plugin": measure("plugin", plugin, routers, upstream, args),
               "native": measure("native", native, routers, upstream, args),
               "empty_wasm": measure("empty", {"plugin": {MINIMAL_GUEST_KEY: {}}}, routers, upstream, args),
               "reloads": all_reloads(plugin, native, args.reload_routers, upstream, args.reloads),
               "held": {name: held(plugin if variant == "plugin" else native, upstream, args.held, headers)
                        for name, (variant, headers) in HELD_VARIANTS.items()}}
    p, n, e = results["plugin"]["rows"], results["native"]["rows"], results["empty_wasm"]["rows"]
    results["summary"] = {
        "empty_wasm_kib_per_router_idle": per_router(e, "idle_rss_kib"),
        "plugin_kib_per_router_idle": per_router(p, "idle_rss_kib"),
        "plugin_kib_per_router_load": per_router(p, "load_peak_rss_kib"),
        "native_kib_per_router_idle": per_router(n, "idle_rss_kib"),
        "native_kib_per_router_load": per_router(n, "load_peak_rss_kib")}
    (BENCH / "traefik_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    (BENCH / "traefik_scale.md").write_text(markdown(results) + "\n")
    include_section("traefik-scale", "bench/traefik_scale.py", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
