"""Traefik reloading its routers as Pangolin makes it: resource routers in Pangolin's shape (badger, then the
middleware under test), a Traefik whose file provider watches its folder (`reload` writes the next
configuration), and the http-wasm guests to compare (this plugin, the minimal guest, the minimal guest padded to
the plugin's code size). Used by tests/e2e/test_traefik_reloads.py and bench/traefik_scale.py."""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .paths import BENCH_FILTERS, HTTP_WASM_DIR, ROOT
from .processes import free_port, rss_kib
from .traefik import MODULE_NAME, PLUGIN_KEY, TraefikProcess, install_plugin
from .wasm_module import memory_layout, padded_guest

# The minimal http-wasm guest (bench/filters/empty-http-wasm: two exports, one page of memory): what Traefik's
# host costs per Wasm middleware whatever the module, the floor the plugin is measured against.
MINIMAL_GUEST_FILES = [BENCH_FILTERS / "bench_empty_http_wasm.wasm",
                       ROOT / "bench" / "filters" / "empty-http-wasm" / ".traefik.yml"]
MINIMAL_GUEST_MODULE, MINIMAL_GUEST_KEY = "github.com/secure-headers/bench-empty-http-wasm", "empty"
# The same guest padded with dead code to this plugin's code size: what Traefik's host costs per middleware for a
# module of the plugin's size, whatever the module does and whatever memory it takes.
PADDED_GUEST_MODULE, PADDED_GUEST_KEY = "github.com/secure-headers/bench-padded-http-wasm", "padded"


def padded_guest_files() -> list[Path]:
    code_bytes = memory_layout(HTTP_WASM_DIR / "secure_headers.wasm")["code_bytes"]
    wasm = MINIMAL_GUEST_FILES[0]
    return [padded_guest(wasm, code_bytes, BENCH_FILTERS / "padded" / wasm.name), MINIMAL_GUEST_FILES[1]]


# Each guest as Traefik's static configuration installs it: plugin key -> (module name, files).
GUESTS = {PLUGIN_KEY: (MODULE_NAME, lambda: list(HTTP_WASM_DIR.iterdir())),
          MINIMAL_GUEST_KEY: (MINIMAL_GUEST_MODULE, lambda: MINIMAL_GUEST_FILES),
          PADDED_GUEST_KEY: (PADDED_GUEST_MODULE, padded_guest_files)}


# What badger asks: any path both upstreams (the harness's Immich and the benchmark's) answer 200.
AUTH_PATH = "/api/server/ping"


def resource_host(i: int) -> str:
    return f"r{i}.example.com"


def renamed_host(generation: int) -> str:
    """Router 0's host in configuration `generation`: each reload renames it, as a changed Pangolin resource."""
    return f"g{generation}.{resource_host(0)}" if generation else resource_host(0)


def pangolin_routers(routers: int, middleware: dict, upstream_port: int, generation: int = 0) -> dict:
    """`routers` resource routers as Pangolin generates them: badger (a forwardAuth, answered 200 by the
    upstream's ping), then `middleware`; `generation` renames router 0's host."""
    http = {"routers": {}, "services": {"app": {"loadBalancer": {
        "servers": [{"url": f"http://127.0.0.1:{upstream_port}"}]}}},
        "middlewares": {"badger": {"forwardAuth": {"address": f"http://127.0.0.1:{upstream_port}{AUTH_PATH}"}},
                        "hardening": middleware}}
    for i in range(routers):
        host = renamed_host(generation) if i == 0 else resource_host(i)
        http["routers"][f"{i}-router"] = {"rule": f"Host(`{host}`)", "service": "app",
                                          "middlewares": ["badger", "hardening"]}
    return {"http": http}


def install_guests(workdir: Path) -> dict:
    """Both guests under plugins-local/, as an operator installs local plugins; the static configuration's
    `experimental.localPlugins` for them."""
    for module, files in GUESTS.values():
        install_plugin(workdir, module, files())
    return {key: {"moduleName": module} for key, (module, _) in GUESTS.items()}


@dataclass(kw_only=True)
class WatchedTraefik(TraefikProcess):
    """Real Traefik whose file provider watches its folder: `reload()` replaces the file, as an operator's editor
    or Pangolin's config writer does, and Traefik builds every router again."""

    dynamic: dict
    ports: dict[str, int] = field(default_factory=lambda: {"http": free_port(), "ping": free_port()})
    # Traefik's debug API (Go's memory statistics, a forced GC) on the ping entry point, and DEBUG logs, where the
    # http-wasm host says "[wasm] middleware Close ok" for each replaced middleware it closes.
    debug: bool = False

    def providers(self) -> dict:
        """Where Traefik reads its routers: the watched folder, holding `dynamic` (a subclass may serve them
        another way)."""
        self.folder = self.workdir / "dynamic"
        self.folder.mkdir(exist_ok=True)
        self.reload(self.dynamic)
        return {"file": {"directory": str(self.folder), "watch": True}}

    def write_config(self) -> Path:
        static = {
            "entryPoints": {"web": {"address": f"127.0.0.1:{self.ports['http']}"},
                            "traefik": {"address": f"127.0.0.1:{self.ports['ping']}"}},
            "ping": {"entryPoint": "traefik"},
            # Traefik's default throttle is 2 s; a short one keeps reloads to a fraction of a second.
            "providers": {"providersThrottleDuration": "100ms", **self.providers()},
            "experimental": {"localPlugins": install_guests(self.workdir)},
            "log": {"level": "DEBUG" if self.debug else "INFO", "noColor": True},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            **({"api": {"insecure": True, "debug": True}} if self.debug else {}),
        }
        config = self.workdir / "traefik.yml"
        config.write_text(json.dumps(static))
        return config

    def start(self, timeout: float = 60, probe_host: str = resource_host(0)) -> "WatchedTraefik":
        return super().start(timeout, probe_host)

    def reload(self, dynamic: dict) -> None:
        """The next configuration, written beside and renamed over the watched file (one change event)."""
        staged = self.folder / ".routers.yml.next"
        staged.write_text(json.dumps(dynamic))
        os.replace(staged, self.folder / "routers.yml")  # JSON is YAML: the file provider reads it

    def rss_kib(self) -> int:
        return rss_kib(self.process.pid)

    def _debug(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['ping']}/debug/{path}", timeout=30) as r:
            return r.read()

    def heap_alloc_kib(self) -> int:
        """Bytes of live Go objects and not yet collected garbage (runtime.MemStats.HeapAlloc), in KiB."""
        return json.loads(self._debug("vars"))["memstats"]["HeapAlloc"] // 1024

    def collect_garbage(self, cycles: int = 5) -> None:
        """Forced GCs (pprof's heap profile with gc=1). A replaced middleware is closed by a finalizer, which runs
        after the GC that found it unreachable; what it frees goes at the next one, so one cycle is not enough."""
        for _ in range(cycles):
            self._debug("pprof/heap?gc=1")
            time.sleep(0.2)

    def middlewares_closed(self) -> int:
        return self.log().count("[wasm] middleware Close ok")


def plugin_instances(traefik: TraefikProcess) -> int:
    """Plugin instances Traefik has created so far: each logs one line when its policy is loaded."""
    return traefik.log().count("secure-headers: policy loaded")


def reload_memory(traefik, routers: int, middleware: dict, upstream_port: int, count: int, every: int = 10,
                  label: str = "") -> list[dict]:
    """From every router answering, `count` reloads through `traefik.reload` (a watched file, or an HTTP
    provider), each renaming router 0 and waiting until its new host serves. Samples Traefik's RSS and the plugin
    instances created so far before, every `every` reloads, and 5 s after the last (Go's GC and scavenger run in
    the background: that is what an operator sees a moment later)."""
    def sample(reloads: int, **extra) -> dict:
        return {"reloads": reloads, "rss_kib": traefik.rss_kib(), "instances": plugin_instances(traefik), **extra}

    traefik.wait_for_router(*[resource_host(i) for i in range(routers)], timeout=60)
    samples = [sample(0)]
    for generation in range(1, count + 1):
        traefik.reload(pangolin_routers(routers, middleware, upstream_port, generation))
        traefik.wait_for_router(renamed_host(generation), timeout=60)
        if generation % every == 0 or generation == count:
            samples.append(sample(generation))
            print(f"{label} reloads: {samples[-1]}", file=sys.stderr, flush=True)
    time.sleep(5)
    samples.append(sample(count, settled=True))
    return samples


def plateau_summary(samples: list[dict], warm_up: int) -> dict:
    """What `reload_memory`'s samples say, in KiB: RSS before the first reload; the plateau (the median of the
    samples from `warm_up` reloads on) above it; the plateau's least-squares slope per reload; and RSS 5 s after
    the last reload. RSS rises for the first reloads (Go frees a replaced middleware only collections later),
    then holds: the slope on the plateau is what keeps growing, the plateau's height what an operator sizes for."""
    points = [s for s in samples if s["reloads"] >= warm_up and not s.get("settled")]
    slope = statistics.linear_regression([s["reloads"] for s in points], [s["rss_kib"] for s in points]).slope
    return {"before_kib": samples[0]["rss_kib"],
            "plateau_growth_kib": statistics.median(s["rss_kib"] for s in points) - samples[0]["rss_kib"],
            "plateau_slope_kib_per_reload": slope, "settled_kib": samples[-1]["rss_kib"]}
