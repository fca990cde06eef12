"""Instructions per request inside Envoy, counted by valgrind's callgrind: nearly the same count for the same
binary and requests whatever else the machine does (within about 5% between runs: header_mutation 18,438 and
19,257, the native module 28,023 and 28,066), where CPU time on these shared machines put the native module at
1.24 x and 1.61 x header_mutation in two quiet runs of one day.

One Envoy (one worker) under callgrind, one listener per variant (bench/run.py's listeners, filters and
policies). Per variant: 50 requests to warm up, the counters zeroed, N requests on one keep-alive connection,
the counters dumped; instructions per request are the dump's total over N (Envoy's main thread included, which
is idle but for its timers). "Added" is over the listener without filters. The native module's own share is
what callgrind attributes to libsecure_headers.so; a Wasm guest's own share is its compiled code (see
`guest_code`), which tells the guest's logic apart from the host calls it makes.

Each figure is the median over rounds that interleave the variants (`median_round`).

Writes bench/envoy_instructions.json and its section of BENCHMARKS.md. `make bench` runs it (a few minutes);
alone: `.venv/bin/python bench/envoy_instructions.py [--requests N] [--rounds R]`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import subprocess
from pathlib import Path
from typing import NamedTuple

import run
from benchmarks_md import include_section
from secure_headers_harness.envoy import StaticEnvoy, envoy_executable
from secure_headers_harness.paths import work_dir
from secure_headers_harness.processes import free_port

BENCH = Path(__file__).resolve().parent
WARM_UP = 50
NONE = "none"
HEADER_MUTATION = "native header_mutation"
NATIVE_MODULE = "secure-headers native module (immich)"
FLOOR = "call floor proxy-wasm (the host calls only)"
OURS = "secure-headers (immich)"
SECTION = "envoy-instructions"


def plan(workdir: Path) -> dict[str, list[dict]]:
    """The variants, each producing what bench/run.py's same-named variant does."""
    sets, removes, before = run.immich_preset_writes(workdir)
    naive, floor = run.naive_and_floor_configs(sets, removes, before)
    return {NONE: [],
            HEADER_MUTATION: [run.native_filter(sets, removes)],
            NATIVE_MODULE: [run.dynamic_module_filter(run.IMMICH)],
            run.NATIVE_IDLE: [run.dynamic_module_filter(run.NO_RULE_MATCHES)],
            "empty proxy-wasm": [run.wasm_filter("empty", run.EMPTY, "{}")],
            "naive rust proxy-wasm": [run.wasm_filter("naive", run.NAIVE, naive)],
            FLOOR: [run.wasm_filter("floor", run.CALL_FLOOR_ENVOY, floor)],
            OURS: [run.wasm_filter("ours", run.OURS, run.IMMICH)]}


def get(port: int, count: int, host: str = run.HOST, headers: dict[str, str] | None = None, timeout: float = 120,
        body_bytes: int | None = None) -> None:
    """`count` GETs on one keep-alive connection; every answer must be 200 (with `body_bytes` of body, if given)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        for _ in range(count):
            connection.request("GET", "/", headers={"Host": host, **(headers or {})})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body_bytes is not None and len(body) != body_bytes:
                raise RuntimeError(f"port {port} ({host}) answered {response.status} with {len(body)} bytes")
    finally:
        connection.close()


def totals(dump: Path) -> tuple[int, int]:
    """(all instructions, those in libsecure_headers.so) of one callgrind dump."""
    annotated = subprocess.run(["callgrind_annotate", "--threshold=100", str(dump)],
                               capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"^([\d,]+) \S* *PROGRAM TOTALS", annotated, re.M).group(1).replace(",", ""))
    module = sum(int(m.group(1).replace(",", "")) for m in
                 re.finditer(r"^\s*([\d,]+) .*\[\S*libsecure_headers\.so\]$", annotated, re.M))
    return total, module


# V8 puts the code it compiles from a Wasm module in anonymous memory far above Envoy's binary, which callgrind
# names "???" with a bare address; V8's own builtins are "???" too, but at addresses inside the binary's range.
JIT_CODE_FLOOR = 1 << 32
CALLBACK_PREFIX = "envoy_dynamic_module_callback_"


class Cost(NamedTuple):
    """One cost line of a callgrind dump: a function's own instructions (callee None), or what one of its calls
    cost, inclusive (callee and the number of calls)."""
    obj: str
    function: str
    callee: str | None
    calls: int | None
    instructions: int


def cost_lines(dump: Path) -> list[Cost]:
    """Every cost line of the dump, with the object and function it belongs to (callgrind's compressed names:
    ob/cob share one table, fn/cfn another)."""
    objects: dict[str, str] = {}
    functions: dict[str, str] = {}
    obj = function = ""
    callee, calls = None, None
    costs = []
    for line in dump.read_text(errors="replace").splitlines():
        record = re.match(r"^(ob|fn|cob|cfn)=\((\d+)\)(?: (.*))?$", line)
        if record:
            kind, key, name = record.groups()
            table = objects if kind in ("ob", "cob") else functions
            if name:
                table[key] = name
            if kind == "ob":
                obj = objects.get(key, key)
            elif kind == "fn":
                function = functions.get(key, key)
            elif kind == "cfn":
                callee = functions.get(key, key)
            continue
        count = re.match(r"^calls=(\d+)", line)
        if count:
            calls = int(count.group(1))
            continue
        parts = line.split()
        if len(parts) >= 2 and (line[:1].isdigit() or line[:1] in "+-*"):
            costs.append(Cost(obj, function, callee if calls is not None else None, calls, int(parts[1])))
            calls = None
    return costs


def guest_code(costs: list[Cost]) -> int:
    """Instructions spent in the compiled Wasm guest itself: the own cost of the anonymous code above
    JIT_CODE_FLOOR."""
    return sum(c.instructions for c in costs if c.callee is None and c.obj == "???"
               and c.function.startswith("0x") and int(c.function, 16) >= JIT_CODE_FLOOR)


def abi_calls(costs: list[Cost]) -> dict[str, dict[str, int]]:
    """Per dynamic-module callback Envoy exports (`envoy_dynamic_module_callback_*`): how often the module called
    it and the instructions those calls cost, inclusive, read from the dump's call records."""
    found: dict[str, dict[str, int]] = {}
    for c in costs:
        if c.callee and c.callee.startswith(CALLBACK_PREFIX):
            entry = found.setdefault(c.callee.removeprefix(CALLBACK_PREFIX), {"calls": 0, "instructions": 0})
            entry["calls"] += c.calls or 0
            entry["instructions"] += c.instructions
    return found


def median_round(measured: list[dict]) -> dict:
    """One variant's figures over its rounds: the median of each number, the rest (per-call tables) from the
    round with the median total, and every round's total kept beside them. Rounds interleave the variants, so
    that a stretch of the machine's timing (timers, the Go scheduler in Traefik) lands on all of them alike."""
    middle = sorted(measured, key=lambda r: r["instructions_per_request"])[len(measured) // 2]
    figures = {key: statistics.median(r[key] for r in measured)
               for key, value in middle.items() if isinstance(value, (int, float))}
    return middle | figures | {"rounds_instructions_per_request": [r["instructions_per_request"] for r in measured]}


def spread(figures: dict) -> str:
    """The lowest and highest total of a variant's rounds, for the table."""
    totals = figures["rounds_instructions_per_request"]
    return f"{min(totals):,.0f}-{max(totals):,.0f}"


def measure(requests: int, rounds_count: int, workdir: Path) -> dict:
    variants = plan(workdir)
    ports = {name: free_port() for name in variants}
    out = workdir / "callgrind.out"
    folder = workdir / "envoy"
    folder.mkdir()
    envoy = StaticEnvoy([run.listener(f"l{i}", ports[name], filters) for i, (name, filters) in enumerate(variants.items())],
                        command_prefix=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"],
                        executable=envoy_executable(), workdir=folder,
                        env={"LD_LIBRARY_PATH": str(run.ENVOY_DYNAMIC.parent)}, stats_flush_on_admin=True)
    print("envoy under callgrind: starting (about a minute)", flush=True)
    envoy.start(timeout=900)
    control = ["callgrind_control"]
    rounds: dict[str, list[dict]] = {name: [] for name in ports}
    dumps = 0
    try:
        for round_number in range(1, rounds_count + 1):
            print(f"  round {round_number} of {rounds_count}", flush=True)
            for name, port in ports.items():
                get(port, WARM_UP)
                subprocess.run([*control, "--zero", str(envoy.process.pid)], check=True, capture_output=True)
                get(port, requests)
                subprocess.run([*control, "--dump", str(envoy.process.pid)], check=True, capture_output=True)
                dumps += 1
                dump = Path(f"{out}.{dumps}")
                total, module = totals(dump)
                costs = cost_lines(dump)
                rounds[name].append({
                    "instructions_per_request": total / requests, "in_module_per_request": module / requests,
                    "in_wasm_guest_per_request": guest_code(costs) / requests,
                    "abi_calls_per_request": {callback: {key: value / requests for key, value in c.items()}
                                              for callback, c in abi_calls(costs).items()}})
                print(f"    {name}: {total / requests:,.0f} instructions/request", flush=True)
    finally:
        envoy.stop()
    results = {name: median_round(measured) for name, measured in rounds.items()}
    none = results[NONE]["instructions_per_request"]
    for value in results.values():
        value["added_over_none"] = value["instructions_per_request"] - none
    return {"requests": requests, "rounds": rounds_count, "variants": results}


def markdown(results: dict) -> str:
    v = results["variants"]
    native = v[HEADER_MUTATION]["added_over_none"]
    lines = ["## Envoy: instructions per request (callgrind)", "",
             f"bench/envoy_instructions.py: one Envoy 1.40 (one worker) under valgrind's callgrind; per variant and "
             f"round {results['requests']} requests on one keep-alive connection after {WARM_UP} to warm up, "
             f"{results['rounds']} rounds over the variants in turn, each figure the median of its rounds. Instruction "
             "counts repeat within about 5% from run to run, unlike CPU time on a shared machine; they are not time (cache misses "
             "and the JIT's code quality count once per instruction), so read them beside the CPU table above.", "",
             "| variant | instructions per request | spread over the rounds | added over none | x native header_mutation "
             "| in libsecure_headers.so | in the Wasm guest's compiled code |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, value in v.items():
        ratio = f"{value['added_over_none'] / native:.2f}" if name != NONE and native > 0 else ""
        own = f"{value['in_module_per_request']:,.0f}" if value["in_module_per_request"] else ""
        guest = f"{value['in_wasm_guest_per_request']:,.0f}" if value["in_wasm_guest_per_request"] else ""
        lines.append(f"| {name} | {value['instructions_per_request']:,.0f} | {spread(value)} | "
                     f"{value['added_over_none']:+,.0f} | "
                     f"{ratio} | {own} | {guest} |")
    ours, floor = v[OURS], v[FLOOR]
    lines += ["", f"secure-headers adds {ours['added_over_none']:,.0f} instructions per request, "
              f"{ours['added_over_none'] / floor['added_over_none']:.3f} x the call floor's "
              f"{floor['added_over_none']:,.0f} (goal: within 1.05 x). The difference is the guest's own code: "
              f"{ours['in_wasm_guest_per_request']:,.0f} instructions in secure-headers' compiled Wasm against "
              f"{floor['in_wasm_guest_per_request']:,.0f} in the floor's; what Envoy and V8 spend outside it differs "
              f"by {(ours['instructions_per_request'] - ours['in_wasm_guest_per_request']) - (floor['instructions_per_request'] - floor['in_wasm_guest_per_request']):+,.0f}. "
              "(Compiled Wasm is the anonymous code callgrind finds above 4 GiB; V8's builtins, also anonymous, sit "
              "lower and count as Envoy's.)"]
    module, idle = v[NATIVE_MODULE], v[run.NATIVE_IDLE]
    lines += ["", "The native module's calls into Envoy per request (Envoy's instructions for them, inclusive):", "",
              "| variant | callback | calls | instructions per call | instructions |", "|---|---|---:|---:|---:|"]
    for name in (NATIVE_MODULE, run.NATIVE_IDLE):
        for callback, c in sorted(v[name]["abi_calls_per_request"].items()):
            per_call = c["instructions"] / c["calls"] if c["calls"] else 0
            lines.append(f"| {name} | `{callback}` | {c['calls']:.0f} | {per_call:,.0f} | {c['instructions']:,.0f} |")
    lines += ["", f"The native module's own code runs {module['in_module_per_request']:,.0f} instructions per request "
              f"({idle['in_module_per_request']:,.0f} with nothing to do); the rest of what it adds is Envoy's: its "
              f"dynamic-module filter made, called and destroyed per stream, and the header reads and writes the "
              f"module asks for. With nothing to do the module adds {idle['added_over_none']:,.0f}, "
              f"{idle['added_over_none'] / native:.2f} x native header_mutation.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per variant in each round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over every variant; medians are reported")
    parser.add_argument("--output", type=Path, default=BENCH / "envoy_instructions.json",
                        help="where to write the figures; BENCHMARKS.md is written only with the default")
    parser.add_argument("--workdir", type=Path,
                        help="an empty folder for the dumps (default: a new one under .work/, which `make e2e` clears)")
    args = parser.parse_args()
    run.require_the_products_stack()
    workdir = args.workdir or work_dir("instructions")
    workdir.mkdir(parents=True, exist_ok=True)
    results = measure(args.requests, args.rounds, workdir)
    args.output.write_text(json.dumps(results, indent=1) + "\n")
    if args.output == BENCH / "envoy_instructions.json":
        include_section(SECTION, "bench/envoy_instructions.py", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
