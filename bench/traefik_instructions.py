"""Issue 22: instructions per request inside Traefik, counted by valgrind's callgrind (bench/envoy_instructions.py's
method and functions), for the plugin's streamed and held paths against their call floors.

One Traefik 3.7 under callgrind, one entry point per variant with one router (bench/run.py's bench_traefik
variants that matter for the call floor), all proxying to one Envoy upstream pinned to the load CPU (bench/run.py's
`listener`: the headers an Immich server sends). Every request carries the same Host and path, so only the
middleware differs. Per variant and round: requests to warm up, the counters zeroed, N requests on one keep-alive
connection, the counters dumped; instructions per request are the dump's total over N (every thread of Traefik).
The rounds interleave the variants; several Traefik processes run one after the other (each draws its own Go map
seeds and places for wazero's code), and each figure is the median over all their rounds (`median_round`).
"Added" is over the router without middleware. Go runs with GOMAXPROCS=1, without asynchronous preemption and
without garbage collection (GOGC=off; see TRAEFIK_ENV), and Go's scheduler is also counted apart (GO_SCHEDULER).

The plugin's headers are read first from a Traefik run without valgrind (the call floors and the native middleware
are configured from them, as bench_traefik does); under callgrind, on the routers measured and before measuring,
the native headers middleware and both call floors must produce the very same headers as the plugin.

The guest's own share is the code wazero compiled from the Wasm modules (`wazero_code`): the anonymous code
callgrind names "???", as Traefik is one static Go binary whose own code is all in its file. Traefik's binary is
stripped; bench/go_symbols.py names its functions from the pclntab Go keeps.

Writes bench/traefik_instructions.json and its section of BENCHMARKS.md. Alone (about 8 minutes):
`.venv/bin/python bench/traefik_instructions.py [--requests N] [--rounds R] [--processes P]`; needs `make build`, `make venv` and the bench
filters call-floor-traefik and empty-http-wasm built (`cargo build --release --locked --target wasm32-wasip1
--manifest-path bench/filters/<name>/Cargo.toml --target-dir target/bench`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import envoy_instructions as ei
import go_symbols
import run
from benchmarks_md import include_section
from secure_headers_harness.paths import HTTP_WASM_DIR, ROOT, work_dir
from secure_headers_harness.processes import free_port
from secure_headers_harness.reloads import MINIMAL_GUEST_FILES, MINIMAL_GUEST_MODULE
from secure_headers_harness.traefik import MODULE_NAME, PLUGIN_KEY, StaticTraefik, install_plugin, traefik_binary

BENCH = Path(__file__).resolve().parent
SECTION = "traefik-instructions"
WARM_UP = 30
STREAMED = {"Sec-Fetch-Dest": "image"}  # a sub-resource: the plugin streams it
DOCUMENT = {"Sec-Fetch-Dest": "document"}
NONE = "none"
EMPTY = "empty http-wasm guest (ABI floor)"
NATIVE = "native headers middleware"
FLOOR_STREAMED = "call floor, streamed (the host calls only)"
OURS_STREAMED = "secure-headers, streamed path"
FLOOR_HELD = "call floor, held (the host calls only)"
OURS_HELD = "secure-headers, held path (no Fetch Metadata: curl, scanners)"
# Go's asynchronous preemption sends SIGURG on a timer, and callgrind 3.19 may abort when a signal handler
# returns (see PATIENCE): none is sent with asyncpreemptoff=1.
# GOGC=off: no garbage collection at all. A collection of Traefik's heap costs about 30 million instructions and
# comes once per about 1,000 requests, so one cycle more or less within a measurement moved a variant by 30,000
# instructions per request; the allocations that lead to collections are counted instead (runtime.mallocgc calls).
TRAEFIK_ENV = {"GOMAXPROCS": "1", "GODEBUG": "asyncpreemptoff=1", "GOGC": "off"}
PATHS = (("streamed", OURS_STREAMED, FLOOR_STREAMED), ("held", OURS_HELD, FLOOR_HELD))
VALGRIND = ["valgrind", "--tool=callgrind", "--smc-check=all-non-file"]
# No request to Traefik under callgrind may give up before its answer: Traefik would then write to a closed
# socket, the kernel sends it SIGPIPE, and callgrind 3.19 aborts when Go's signal handler returns ("Assertion
# 'sigNum == vgCallgrind_current_state.sig' failed", threads.c:247). The harness's 1 s readiness probe did that.
PATIENCE = 300


def static_config() -> dict:
    return {"ping": {"entryPoint": "traefik"}, "log": {"level": "ERROR"},
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "experimental": {"localPlugins": {PLUGIN_KEY: {"moduleName": MODULE_NAME},
                                              "empty": {"moduleName": MINIMAL_GUEST_MODULE},
                                              "floor": {"moduleName": run.CALL_FLOOR_TRAEFIK_MODULE}}}}


def install_guests(folder: Path) -> None:
    folder.mkdir()
    install_plugin(folder, MODULE_NAME, HTTP_WASM_DIR.iterdir())
    install_plugin(folder, MINIMAL_GUEST_MODULE, MINIMAL_GUEST_FILES)
    install_plugin(folder, run.CALL_FLOOR_TRAEFIK_MODULE,
                   [run.CALL_FLOOR_TRAEFIK, ROOT / "bench" / "filters" / "call-floor-traefik" / ".traefik.yml"])


class VariantsTraefik(StaticTraefik):
    """StaticTraefik with one more entry point per variant (`entry_points`: name -> port), each serving one
    router: every request is routed the same way, whatever its variant (with routers told apart by Host on one
    entry point, Traefik tries them longest rule first, and a variant's routing cost depended on its host name)."""

    def __init__(self, *args, entry_points: dict[str, int], **kwargs):
        super().__init__(*args, **kwargs)
        self.entry_points = entry_points

    def write_config(self) -> Path:
        config = super().write_config()
        static = json.loads(config.read_text())
        static["entryPoints"].update({name: {"address": f"127.0.0.1:{port}"}
                                      for name, port in self.entry_points.items()})
        config.write_text(json.dumps(static))
        return config

    def _router_answers(self, host: str) -> bool:
        """The harness's readiness probe, with a timeout long enough for Traefik under valgrind (see PATIENCE)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['http']}/", headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=PATIENCE) as r:
                return r.status == 200
        except OSError:
            return False


def dynamic_config(upstream_port: int, middlewares: dict[str, dict], chains: dict[str, list[str]]) -> dict:
    """On the `web` entry point, the plugin on run.HOST (Traefik's readiness probe); on each entry point named in
    `chains`, one router for every request with that middleware chain."""
    routers = {"probe": {"rule": f"Host(`{run.HOST}`)", "entryPoints": ["web"], "service": "up",
                         "middlewares": ["secure-headers"]}}
    for entry_point, chain in chains.items():
        routers[entry_point] = {"rule": "PathPrefix(`/`)", "entryPoints": [entry_point], "service": "up",
                                "middlewares": chain}
    return {"http": {"routers": routers, "middlewares": middlewares,
                     "services": {"up": {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{upstream_port}"}]}}}}}


PLUGIN = {"secure-headers": {"plugin": {PLUGIN_KEY: {"policy": run.IMMICH}}}}


def plugin_headers(workdir: Path, upstream_port: int) -> tuple[dict, dict, dict]:
    """(no middleware, the plugin's held document, the plugin's streamed sub-resource) headers, from a Traefik run
    without valgrind, for the call floors' and the native middleware's configuration (as bench_traefik does)."""
    folder = workdir / "traefik-probe"
    install_guests(folder)
    port = free_port()
    traefik = VariantsTraefik(static_config(), dynamic_config(upstream_port, PLUGIN, {"bare": []}), env=TRAEFIK_ENV,
                              workdir=folder, entry_points={"bare": port})
    try:
        traefik.start(timeout=60, probe_host=run.HOST)
        web = traefik.ports["http"]
        return (run.fetch_headers(port, run.HOST), run.fetch_headers(web, run.HOST, DOCUMENT),
                run.fetch_headers(web, run.HOST, STREAMED))
    finally:
        traefik.stop()


def variants(bare: dict, held: dict, streamed: dict) -> tuple[dict[str, dict], dict[str, tuple[list[str], dict]]]:
    """(the middlewares, each variant's (middleware chain, request headers)) as bench_traefik configures them."""
    sets, removes = run.header_diff(bare, held)
    streamed_sets, _ = run.header_diff(bare, streamed)
    middlewares = {
        **PLUGIN,
        "empty": {"plugin": {"empty": {}}},
        "native": {"headers": {"customResponseHeaders": {**dict(sets), **{name: "" for name in removes}}}},
        "floor-streamed": {"plugin": {"floor": {"calls": json.dumps(
            run.traefik_floor_calls(streamed_sets, held=False))}}},
        "floor-held": {"plugin": {"floor": {"calls": json.dumps(run.traefik_floor_calls(sets, held=True))}}}}
    targets = {NONE: ([], {}), EMPTY: (["empty"], {}), NATIVE: (["native"], {}),
               FLOOR_STREAMED: (["floor-streamed"], STREAMED), OURS_STREAMED: (["secure-headers"], STREAMED),
               FLOOR_HELD: (["floor-held"], {}), OURS_HELD: (["secure-headers"], {})}
    return middlewares, targets


def require_identical(ports: dict[str, int], held: dict, streamed: dict) -> None:
    """Under callgrind, on the very routers measured: the floors and the native middleware answer exactly as the
    plugin does, on the same request."""
    for name, expected in [(OURS_HELD, held), (NATIVE, held), (FLOOR_HELD, held), (OURS_STREAMED, streamed),
                           (FLOOR_STREAMED, streamed)]:
        request = STREAMED if expected is streamed else {}
        got = run.fetch_headers(ports[name], run.HOST, request, timeout=PATIENCE)
        if got != expected:
            raise RuntimeError(f"traefik {name} differs from the plugin:\n{got}\nvs\n{expected}")
    if run.fetch_headers(ports[OURS_HELD], run.HOST, DOCUMENT, timeout=PATIENCE) != held:
        raise RuntimeError("the plugin answers a document otherwise than a request without Fetch Metadata")


def address(function: str) -> int | None:
    """The address callgrind names a function of a stripped object by ("0x...", with "'2" for a recursion
    level), or None."""
    if not function.startswith("0x"):
        return None
    return int(function.split("'")[0], 16)


def anonymous_mappings(pid: int) -> list[tuple[int, int]]:
    """The anonymous mappings of `pid` (valgrind shows every one as rwx: the kernel's view of its own and the
    client's memory alike), to tell which one each piece of anonymous code was run from."""
    ranges = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) == 5 or (len(fields) >= 6 and fields[5].startswith("[anon")):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, end))
    return ranges


def wazero_code(costs: list[ei.Cost], mappings: list[tuple[int, int]]) -> tuple[int, dict[str, int]]:
    """(own cost of the anonymous code, that cost per mapping holding it). Traefik is one static Go binary: the
    only code it runs outside its file is the machine code wazero's compiler generates and maps at run time
    (valgrind's own code is never counted as the client's). One caveat: how much of wazero's host-call
    trampolines callgrind counts here depends on where wazero mapped them; for one build the held path's share was
    14,938 in two runs and 13,896 in two others (the floor's 3,235 and 2,680 with it), totals unchanged."""
    total, per_mapping = 0, {}
    for c in costs:
        if c.callee is None and c.obj == "???":
            total += c.instructions
            at = address(c.function)
            where = next((f"{start:#x}-{end:#x}" for start, end in mappings if at is not None and start <= at < end),
                         "elsewhere")
            per_mapping[where] = per_mapping.get(where, 0) + c.instructions
    return total, per_mapping


# Go's allocator entry (Go 1.26 keeps runtime.mallocgc as the one entry of every heap allocation).
GO_MALLOC = "runtime.mallocgc"
# Go's scheduler, its timers and its syscall bookkeeping: work done per wake-up of a goroutine or thread, not per
# request, so it follows the timing between Traefik, its upstream and the client (which valgrind stretches and
# other processes on the machine move). Between two variants it moved by up to 3,000 instructions per request
# that no middleware asked for; it is counted apart so that the figures can also be read without it.
GO_SCHEDULER = {f"runtime.{name}" for name in (
    "lock2 unlock2 findRunnable stealWork netpoll sysmon retake schedule park_m execute wakep pidleget pidleput "
    "checkdead incidlelocked nanotime1 procyieldAsm osyield futex futexsleep futexwakeup notesleep notewakeup "
    "stopm startm mPark resetspinning runqget runqput runqgrab runqsteal ready goready casgstatus gopark mcall "
    "gogo handoffp acquirep releasep injectglist netpollready netpollunblock netpollBreak usleep "
    "reentersyscall entersyscall exitsyscall exitsyscallfast exitsyscall0 setBlockOnExitSyscall "
    "(*timers).check (*timers).run (*timers).siftDown (*timers).siftUp (*timers).adjust (*timers).deleteMin "
    "(*timer).modify (*timer).maybeAdd (*timer).unlockAndRun (*timer).lock (*timer).unlock "
    "(*timers).lock (*timers).unlock (*timers).wakeTime (*timers).updateMinWhenHeap").split()}


def go_figures(costs: list[ei.Cost], traefik: str) -> tuple[int, int]:
    """(heap allocations, instructions in GO_SCHEDULER) of Traefik's Go code: the calls into runtime.mallocgc,
    and the own cost of the scheduler's functions, found by name in the binary's pclntab (it is stripped)."""
    table = go_symbols.symbols(traefik)
    names: dict[int, str | None] = {}

    def name(function: str | None) -> str | None:
        at = address(function) if function else None
        if at is None:
            return None
        if at not in names:
            names[at] = table.name(at)
        return names[at]

    allocations = sum(c.calls or 0 for c in costs if c.callee and name(c.callee) == GO_MALLOC)
    scheduler = sum(c.instructions for c in costs if c.callee is None and c.obj != "???"
                    and name(c.function) in GO_SCHEDULER)
    return allocations, scheduler


def measure(requests: int, rounds_count: int, processes: int, valgrind: list[str], workdir: Path) -> dict:
    """Every variant's median over the rounds of `processes` Traefik processes, one after the other: a process
    draws its own Go map seeds and its own places for wazero's code, which moved one variant against another by
    up to 2% between processes, more than the rounds within one moved it."""
    upstream_port = free_port()
    upstream = run.envoy_on(run.LOAD_CPU, workdir, "envoy-upstream", [run.listener("upstream", upstream_port, [])])
    try:
        bare, held, streamed = plugin_headers(workdir, upstream_port)
        middlewares, targets = variants(bare, held, streamed)
        rounds: dict[str, list[dict]] = {name: [] for name in targets}
        for process in range(1, processes + 1):
            print(f"traefik {process} of {processes}", flush=True)
            for name, measured in measure_process(requests, rounds_count, valgrind, workdir / f"traefik-{process}",
                                                  upstream_port, middlewares, targets, held, streamed).items():
                rounds[name] += measured
    finally:
        upstream.stop()
    results = {name: ei.median_round(measured) for name, measured in rounds.items()}
    none = results[NONE]
    for value in results.values():
        value["added_over_none"] = value["instructions_per_request"] - none["instructions_per_request"]
        value["added_over_none_outside_scheduler"] = value["added_over_none"] - (
            value["in_go_scheduler_per_request"] - none["in_go_scheduler_per_request"])
    return {"requests": requests, "rounds": rounds_count, "processes": processes, "warm_up": WARM_UP,
            "valgrind": valgrind, "env": TRAEFIK_ENV, "variants": results, "ratios": ratios(results)}


def measure_process(requests: int, rounds_count: int, valgrind: list[str], workdir: Path, upstream_port: int,
                    middlewares: dict, targets: dict, held: dict, streamed: dict) -> dict[str, list[dict]]:
    """One Traefik under callgrind: `rounds_count` rounds over every variant, each variant's figures per round."""
    entry_points = {f"v{i}": free_port() for i in range(len(targets))}
    ports = dict(zip(targets, entry_points.values()))
    chains = {entry_point: chain for entry_point, (chain, _) in zip(entry_points, targets.values())}
    folder = workdir / "traefik"
    workdir.mkdir(parents=True, exist_ok=True)
    install_guests(folder)
    out = workdir / "callgrind.out"
    traefik = VariantsTraefik(static_config(), dynamic_config(upstream_port, middlewares, chains),
                              command_prefix=[*valgrind, f"--callgrind-out-file={out}"], env=TRAEFIK_ENV,
                              workdir=folder, entry_points=entry_points)
    print("  traefik under callgrind: starting", flush=True)
    started = time.monotonic()
    traefik.start(timeout=900, probe_host=run.HOST)
    print(f"  started in {time.monotonic() - started:.0f} s", flush=True)
    rounds: dict[str, list[dict]] = {name: [] for name in targets}
    try:
        pid = traefik.process.pid
        require_identical(ports, held, streamed)
        print("  the native middleware, the call floors and the plugin produce identical headers; measuring",
              flush=True)
        for name, (_, headers) in targets.items():  # every guest compiled and instantiated before the maps are read
            ei.get(ports[name], 2, headers=headers, timeout=PATIENCE)
        mappings = anonymous_mappings(pid)
        (workdir / "maps").write_text(Path(f"/proc/{pid}/maps").read_text())
        dumps = 0
        for round_number in range(1, rounds_count + 1):
            print(f"  round {round_number} of {rounds_count}", flush=True)
            for name, (_, headers) in targets.items():
                ei.get(ports[name], WARM_UP, headers=headers, timeout=PATIENCE)
                subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)
                began = time.monotonic()
                ei.get(ports[name], requests, headers=headers, timeout=PATIENCE)
                subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
                dumps += 1
                dump = Path(f"{out}.{dumps}")
                total, _ = ei.totals(dump)
                costs = ei.cost_lines(dump)
                guest, per_mapping = wazero_code(costs, mappings)
                allocations, scheduler = go_figures(costs, traefik_binary())
                rounds[name].append({
                    "instructions_per_request": total / requests,
                    "in_wasm_guest_per_request": guest / requests,
                    "wasm_guest_per_mapping_per_request": {k: v / requests for k, v in per_mapping.items()},
                    "go_allocations_per_request": allocations / requests,
                    "in_go_scheduler_per_request": scheduler / requests,
                    "seconds": time.monotonic() - began})
                last = rounds[name][-1]
                print(f"    {name}: {last['instructions_per_request']:,.0f} instructions/request "
                      f"({last['in_wasm_guest_per_request']:,.0f} in wazero's code; "
                      f"{last['go_allocations_per_request']:.1f} Go allocations; {last['seconds']:.0f} s)",
                      flush=True)
    finally:
        traefik.stop()
    return rounds


def ratios(v: dict) -> dict:
    """ours added / call floor added, per path; and the same without Go's scheduler."""
    def ratio(ours: str, floor: str, key: str) -> float | None:
        return v[ours][key] / v[floor][key] if v[floor][key] > 0 else None
    return {kind: ratio(ours, floor, "added_over_none") for kind, ours, floor in PATHS} | {
        f"{kind}_outside_scheduler": ratio(ours, floor, "added_over_none_outside_scheduler")
        for kind, ours, floor in PATHS}


def markdown(results: dict) -> str:
    v = results["variants"]
    lines = ["## Traefik: instructions per request (callgrind)", "",
             f"bench/traefik_instructions.py: one Traefik 3.7.15 under valgrind's callgrind (GOMAXPROCS=1, no "
             f"asynchronous preemption, no garbage collection: GOGC=off), one entry point and router per variant; "
             f"per variant and round {results['requests']} requests on one keep-alive connection after "
             f"{results['warm_up']} to warm up, counted over every Traefik thread; {results['rounds']} rounds over "
             f"the variants in turn in each of {results['processes']} Traefik processes, each figure the median of "
             "all its rounds. The native middleware and the call floors produce the "
             "very same headers as the plugin (checked under callgrind, on the routers measured, before measuring).",
             "",
             "| variant | instructions per request | spread over the rounds | added over none | in wazero's compiled "
             "code | in Go's scheduler | added over none, outside Go's scheduler | Go heap allocations |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, value in v.items():
        guest = f"{value['in_wasm_guest_per_request']:,.0f}" if value["in_wasm_guest_per_request"] else ""
        lines.append(f"| {name} | {value['instructions_per_request']:,.0f} | {ei.spread(value)} | "
                     f"{value['added_over_none']:+,.0f} | "
                     f"{guest} | {value['in_go_scheduler_per_request']:,.0f} | "
                     f"{value['added_over_none_outside_scheduler']:+,.0f} | {value['go_allocations_per_request']:.1f} |")
    lines.append("")
    r = results["ratios"]
    for kind, ours, floor in PATHS:
        o, f = v[ours], v[floor]
        outside = ((o["added_over_none_outside_scheduler"] - o["in_wasm_guest_per_request"])
                   - (f["added_over_none_outside_scheduler"] - f["in_wasm_guest_per_request"]))
        ratio = f"{r[kind]:.3f} x" if r[kind] is not None else "no ratio (the call floor added nothing)"
        quiet = (f"{r[kind + '_outside_scheduler']:.3f} x" if r[kind + "_outside_scheduler"] is not None
                 else "no ratio")
        lines.append(f"- {kind}: secure-headers adds {o['added_over_none']:,.0f} instructions per request, {ratio} "
                     f"its call floor's {f['added_over_none']:,.0f} (goal: within 1.05 x); {quiet} outside Go's "
                     f"scheduler. In wazero's compiled code: {o['in_wasm_guest_per_request']:,.0f} against the "
                     f"floor's {f['in_wasm_guest_per_request']:,.0f}; outside it and the scheduler the two differ "
                     f"by {outside:+,.0f}.")
    lines += ["", "wazero's compiled code is the anonymous code callgrind finds (\"???\"): Traefik is one static, "
              "stripped Go binary, and the only code it runs outside that file is the machine code wazero generates "
              "into memory it maps at run time (the guests' functions and wazero's entry and host-call trampolines). "
              "Everything else (Traefik, the http-wasm host functions, wazero's Go side, Go's runtime) is the "
              "binary's; bench/go_symbols.py names its functions from the binary's pclntab. Go's scheduler (its "
              "functions listed in GO_SCHEDULER) runs per wake-up, not per request, and follows the timing "
              "between Traefik, the upstream and the client: it differs by up to a few thousand instructions per "
              "request between variants that do the same work, so both ratios are given.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="requests per variant in each round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every variant in each Traefik process")
    parser.add_argument("--processes", type=int, default=3,
                        help="Traefik processes one after the other; each figure is the median over all their rounds")
    parser.add_argument("--valgrind", default=" ".join(VALGRIND), help="the valgrind command and its options")
    parser.add_argument("--output", type=Path, default=BENCH / "traefik_instructions.json",
                        help="where to write the figures; BENCHMARKS.md is written only with the default")
    parser.add_argument("--workdir", type=Path,
                        help="an empty folder for logs and dumps (default: a new one under .work/, which `make e2e` "
                             "clears)")
    args = parser.parse_args()
    run.require_the_products_stack()
    workdir = args.workdir or work_dir("traefik-instructions")
    workdir.mkdir(parents=True, exist_ok=True)
    results = measure(args.requests, args.rounds, args.processes, args.valgrind.split(), workdir)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    if args.output == BENCH / "traefik_instructions.json":
        include_section(SECTION, "bench/traefik_instructions.py", markdown(results))
    print(markdown(results))
    print(f"logs and dumps in {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
