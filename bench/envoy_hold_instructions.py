"""Issue 20: how much of the in-stream hashed document path's cost Envoy itself forces, in instructions per request
counted by valgrind's callgrind (bench/envoy_instructions.py's method and functions).

Every variant proxies document navigations (Sec-Fetch-Dest: document) to a real upstream serving bench/run.py's
10 KiB page (an Envoy pinned to the load CPU, as in bench_envoy). The floors:

- call floor: bench/filters/call-floor-envoy, writing the very headers secure-headers' in-stream path writes on
  this page (its hashed CSP included) at the response headers: one read of each header map, one call per write.
- request-edits floor: the call floor configured with the request edits the in-stream path makes
  (DOCUMENT_REQUEST_EDITS: accept-encoding replaced, if-none-match and if-modified-since removed).
- hold floor: the call floor with the request edits and "hold": true: the same calls, but the response headers
  paused, the body paused until its end (Envoy buffers it), read once whole into the guest, then the writes and
  Continue. Exactly the host calls the in-stream hashed path needs, with no scan, hash or comparison.

So "hold floor - call floor" is what holding the headers, buffering the body, the body callbacks, copying the
body into the guest and the request edits cost the host and the ABI alone, and "hold floor - request-edits floor"
the same without the request edits. The hashing cost of secure-headers is its hashed variant minus its variant
without hashing on the same page; the fetch path's is measured the same way (its first held document is the
probe that teaches the filter the path; it is sent before the warm-up).

Writes bench/envoy_hold_instructions.json and its section of BENCHMARKS.md; `make bench` runs it. Alone: `.venv/bin/python bench/envoy_hold_instructions.py
[--requests N]` (the bench filters built first: `cargo build --release --target wasm32-wasip1 --manifest-path
bench/filters/call-floor-envoy/Cargo.toml --target-dir target/bench`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import envoy_instructions as ei
import run
from benchmarks_md import include_section
from secure_headers_harness.envoy import DOCUMENT_PATH_LINES, StaticEnvoy, envoy_executable
from secure_headers_harness.processes import free_port

BENCH = Path(__file__).resolve().parent
DOCUMENT = {"Sec-Fetch-Dest": "document"}
# src/inline_script_hashes/hashed_csp.rs, DOCUMENT_REQUEST_EDITS: what the in-stream path does to the request.
REQUEST_EDITS = {"request_replace": [["accept-encoding", "identity"]],
                 "request_remove": ["if-none-match", "if-modified-since"]}
# Set by the proxying Envoy's router per response, with a value that varies: left out of every comparison.
VARYING = {"x-envoy-upstream-service-time"}

NONE_PAGE = "none, 10 KiB page"
OURS_PAGE = "secure-headers (immich), no hashing, 10 KiB page"
IN_STREAM = "secure-headers + hashing, in-stream, unchanged page"
IN_STREAM_CHANGING = "secure-headers + hashing, in-stream, page changing per request"
FETCH_PATH = "secure-headers + hashing, fetch path, unchanged page"
FETCH_PATH_CHANGING = "secure-headers + hashing, fetch path, page changing per request"
CALL_FLOOR = "call floor (no hold), 10 KiB page"
EDITS_FLOOR = "request-edits floor (call floor + request edits, no hold), 10 KiB page"
HOLD_FLOOR = "hold floor (request edits + headers held, body buffered and read once), 10 KiB page"
HASHED = (IN_STREAM, IN_STREAM_CHANGING, FETCH_PATH, FETCH_PATH_CHANGING)
CHANGING = {IN_STREAM_CHANGING, FETCH_PATH_CHANGING}
FETCHING = {FETCH_PATH, FETCH_PATH_CHANGING}


def headers_of(port: int) -> dict[str, str]:
    """The final headers of one document navigation, less those that vary per response."""
    got = run.fetch_headers(port, run.HOST, DOCUMENT)
    return {k: v for k, v in got.items() if k not in VARYING}


def get_documents(port: int, count: int) -> None:
    """`count` document navigations on one keep-alive connection, every answer a 200 with the whole 10 KiB page."""
    ei.get(port, count, headers=DOCUMENT, timeout=300, body_bytes=len(run.PAGE_10K))


def floor_writes(workdir: Path, page_port: int, ours: Path) -> tuple[dict, dict[str, str]]:
    """What secure-headers' in-stream hashed path writes on the 10 KiB page (measured on an Envoy outside
    callgrind): the call floor's configuration for those writes, and the page's headers without a filter."""
    ports = {name: free_port() for name in ("none", "hashed")}
    probe = run.envoy_on(run.PROXY_CPU, workdir, "envoy-probe",
                         [run.listener("none", ports["none"], [], cluster="page"),
                          run.listener("hashed", ports["hashed"],
                                       [run.wasm_filter("probehash", ours, run.HASHING)], cluster="page")],
                         [run.static_cluster("page", page_port)])
    try:
        before = headers_of(ports["none"])
        headers_of(ports["hashed"])  # the probe that teaches the filter its path: the static CSP
        after = headers_of(ports["hashed"])
        REFERENCE.update(after)
    finally:
        probe.stop()
    if after.get("content-security-policy", "").count("'sha256-") != 2:
        raise RuntimeError(f"the probe Envoy did not hash the page: {after}")
    sets, removes = run.header_diff(before, after)
    _, floor = run.naive_and_floor_configs(sets, removes, before)
    print(f"in-stream path on the page: sets {len(sets)} headers, removes {removes}", flush=True)
    return json.loads(floor), before


def shared_vm(wasm: dict, vm_id: str) -> dict:
    """The Wasm filter run in the VM of `vm_id` (a plugin of its own, with its own root context)."""
    wasm["typed_config"]["config"]["vm_config"]["vm_id"] = vm_id
    return wasm


def plan(floor: dict, ours: Path) -> dict[str, list[dict]]:
    return {NONE_PAGE: [],
            OURS_PAGE: [run.wasm_filter("ourspage", ours, run.IMMICH)],
            IN_STREAM: [run.wasm_filter("ourshash", ours, run.HASHING)],
            IN_STREAM_CHANGING: [run.wasm_filter("ourshashchanging", ours, run.HASHING)],
            FETCH_PATH: [run.wasm_filter("ourshashfetch", ours, run.HASHING, in_stream=False)],
            FETCH_PATH_CHANGING: [run.wasm_filter("ourshashfetchchanging", ours, run.HASHING, in_stream=False)],
            CALL_FLOOR: [run.wasm_filter("callfloor", run.CALL_FLOOR_ENVOY, json.dumps(floor))],
            EDITS_FLOOR: [shared_vm(run.wasm_filter("editsfloor", run.CALL_FLOOR_ENVOY,
                                                    json.dumps({**floor, **REQUEST_EDITS, "hold": False})),
                                    "holdfloor")],
            HOLD_FLOOR: [run.wasm_filter("holdfloor", run.CALL_FLOOR_ENVOY,
                                         json.dumps({**floor, **REQUEST_EDITS, "hold": True}))]}


def verify(ports: dict[str, int], envoy: StaticEnvoy) -> dict:
    """Before measuring, on the Envoy measured: every hashed variant's CSP has the page's two hashes (after its
    first, probing document), changes per request where the page does, and each hashing plugin learned the path it
    should; the floors' final headers equal those of the in-stream variant measured outside callgrind (the floor's
    writes come from there), which the in-stream variant here equals; secure-headers without hashing differs from
    it in the CSP alone."""
    csps = {}
    hashed = [name for name in HASHED if name in ports]
    for name in hashed:
        csps[name] = [headers_of(ports[name]).get("content-security-policy", "") for _ in range(3)]
        if any(csp.count("'sha256-") != 2 for csp in csps[name][1:]):
            raise RuntimeError(f"{name} did not hash the page's two scripts: {csps[name]}")
        if (name in CHANGING) != (csps[name][1] != csps[name][2]):
            raise RuntimeError(f"{name}: the page should {'' if name in CHANGING else 'not '}change: {csps[name]}")
    want = {"in-stream": sum(name not in FETCHING for name in hashed), "fetch": sum(name in FETCHING for name in hashed)}
    # The fetch path's probe waits PROBE_WAIT (200 ms) for a body that never comes; the log line follows.
    deadline = time.monotonic() + 60
    while True:
        log = envoy.log_path.read_text()
        learned = {path: log.count(line) for path, line in DOCUMENT_PATH_LINES.items()}
        if learned == want or time.monotonic() > deadline:
            break
        time.sleep(1)
    if learned != want:
        raise RuntimeError(f"the hashing plugins learned {learned}, not {want}")
    reference = ours_reference(ports)
    for name in (CALL_FLOOR, EDITS_FLOOR, HOLD_FLOOR):
        if name in ports:
            got = headers_of(ports[name])
            if got != reference:
                raise RuntimeError(f"{name} does not produce the in-stream path's headers:\n{got}\nvs\n{reference}")
    plain = headers_of(ports[OURS_PAGE])
    differ = sorted(k for k in set(plain) | set(reference) if plain.get(k) != reference.get(k))
    if differ != ["content-security-policy"]:
        raise RuntimeError(f"{OURS_PAGE} differs from the in-stream path in {differ}")
    print(f"verified {list(ports)}: hashed variants carry the page's two sha256 hashes (changing where the page "
          "does) and learned their path; the floors' final headers equal the in-stream path's; without hashing "
          "only the CSP differs", flush=True)
    return {"csps": csps, "csp_without_hashing": plain["content-security-policy"], "learned_paths": learned}


REFERENCE: dict[str, str] = {}


def ours_reference(ports: dict[str, int]) -> dict[str, str]:
    """The in-stream path's final headers on the unchanged page: from the in-stream variant when this Envoy has
    it (it must then equal the probe Envoy's), else the probe Envoy's."""
    if IN_STREAM in ports:
        here = headers_of(ports[IN_STREAM])
        if here != REFERENCE:
            raise RuntimeError(f"the in-stream variant's headers differ from the probe's:\n{here}\nvs\n{REFERENCE}")
    return REFERENCE


def guest_calls(costs: list[ei.Cost]) -> dict[str, int]:
    """Calls out of the compiled guest (callgrind's call records whose caller is Wasm code above
    ei.JIT_CODE_FLOOR and whose callee is not): how many, and what they cost inclusive (Envoy's host functions and
    V8's wrappers, with any call back into the guest's allocator), so the guest's own code, its host calls and
    the rest of Envoy can be told apart."""
    def jit(name: str) -> bool:
        return name.startswith("0x") and int(name, 16) >= ei.JIT_CODE_FLOOR
    out = [c for c in costs if c.callee and c.obj == "???" and jit(c.function) and not jit(c.callee)]
    return {"calls": sum(c.calls or 0 for c in out), "instructions": sum(c.instructions for c in out)}


# Two Envoys, one after the other, each with four Wasm VMs as bench/envoy_instructions.py's has: V8 reserves a
# large address space per Wasm instance (three per VM here: two on the main thread, one on the worker), and under
# valgrind a fifth VM fails ("Failed to create new Wasm instance"). The request-edits and hold floors
# share one VM (same vm_config, a root context each, as Envoy runs plugins of one vm_id). Each Envoy has its own
# "none" and secure-headers without hashing, so every figure is a difference within one process.
GROUPS = {"in-stream": [NONE_PAGE, OURS_PAGE, IN_STREAM, CALL_FLOOR, EDITS_FLOOR, HOLD_FLOOR],
          "changing+fetch": [NONE_PAGE, OURS_PAGE, IN_STREAM_CHANGING, FETCH_PATH, FETCH_PATH_CHANGING]}


def measure_group(workdir: Path, group: str, variants: dict[str, list[dict]], requests: int,
                  page_port: int, other_page_port: int) -> tuple[dict, dict]:
    """One Envoy under callgrind with a listener per variant: (results per variant, the checks made)."""
    ports = {name: free_port() for name in variants}
    out = workdir / f"callgrind-{group}.out"
    folder = workdir / f"envoy-{group}"
    folder.mkdir()
    envoy = StaticEnvoy([run.listener(f"p{i}", ports[name], filters, cluster="pages" if name in CHANGING else "page")
                         for i, (name, filters) in enumerate(variants.items())],
                        [run.static_cluster("page", page_port), run.static_cluster("pages", page_port, other_page_port)],
                        command_prefix=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"],
                        executable=envoy_executable(), workdir=folder,
                        env={"LD_LIBRARY_PATH": str(run.ENVOY_DYNAMIC.parent)}, stats_flush_on_admin=True)
    print(f"envoy under callgrind ({group}: {len(variants)} listeners): starting (a minute or more)", flush=True)
    envoy.start(timeout=1800)
    results = {}
    try:
        for port in ports.values():  # the first document of each (slow under callgrind; urllib waits 5 s)
            get_documents(port, 1)
        checks = verify(ports, envoy)
        for index, (name, port) in enumerate(ports.items(), start=1):
            get_documents(port, ei.WARM_UP)
            subprocess.run(["callgrind_control", "--zero", str(envoy.process.pid)], check=True, capture_output=True)
            get_documents(port, requests)
            subprocess.run(["callgrind_control", "--dump", str(envoy.process.pid)], check=True, capture_output=True)
            dump = Path(f"{out}.{index}")
            total, _ = ei.totals(dump)
            costs = ei.cost_lines(dump)
            calls = guest_calls(costs)
            results[name] = {"instructions_per_request": total / requests,
                             "in_wasm_guest_per_request": ei.guest_code(costs) / requests,
                             "guest_calls_out_per_request": calls["calls"] / requests,
                             "guest_calls_out_instructions_per_request": calls["instructions"] / requests}
            print(f"  {name}: {total / requests:,.0f} instructions/request, "
                  f"{results[name]['in_wasm_guest_per_request']:,.0f} in the guest", flush=True)
    finally:
        envoy.stop()
    none = results[NONE_PAGE]["instructions_per_request"]
    for value in results.values():
        value["added_over_none"] = value["instructions_per_request"] - none
        value["outside_guest_per_request"] = value["instructions_per_request"] - value["in_wasm_guest_per_request"]
    return results, checks


def measure(requests: int) -> dict:
    # Not under .work/: `make e2e` clears it, and this runs for minutes.
    workdir = Path(tempfile.mkdtemp(prefix="hold-instructions-"))
    # A copy of the module as it is now: dist/ may be rebuilt while this runs.
    ours = workdir / "secure_headers.wasm"
    shutil.copyfile(run.OURS, ours)
    module_sha256 = hashlib.sha256(ours.read_bytes()).hexdigest()
    print(f"secure-headers module: {run.OURS} (sha256 {module_sha256})", flush=True)
    page_port, other_page_port = free_port(), free_port()
    page_upstream = run.envoy_on(run.LOAD_CPU, workdir, "envoy-page",
                                 [run.listener("page", page_port, [], body=run.PAGE_10K),
                                  run.listener("other", other_page_port, [], body=run.PAGE_10K_OTHER)])
    groups, checks = {}, {}
    try:
        floor, _ = floor_writes(workdir, page_port, ours)
        variants = plan(floor, ours)
        for group, names in GROUPS.items():
            groups[group], checks[group] = measure_group(workdir, group, {name: variants[name] for name in names},
                                                         requests, page_port, other_page_port)
    finally:
        page_upstream.stop()
    return {"requests": requests, "warm_up": ei.WARM_UP, "module_sha256": module_sha256, "floor_config": floor,
            "checks": checks, "groups": groups, "figures": figures(groups)}


def figures(groups: dict) -> dict:
    """The issue's figures, each a difference within one Envoy: what hashing adds on each path, what the host's
    hold costs alone, and their ratios to the fetch path's hashing cost."""
    s, f = ({name: value["instructions_per_request"] for name, value in groups[g].items()} for g in GROUPS)
    sg = {name: value["in_wasm_guest_per_request"] for name, value in groups["in-stream"].items()}
    a = s[IN_STREAM] - s[OURS_PAGE]
    a_changing = f[IN_STREAM_CHANGING] - f[OURS_PAGE]
    a_guest = sg[IN_STREAM] - sg[OURS_PAGE]
    b = s[HOLD_FLOOR] - s[CALL_FLOOR]
    edits = s[EDITS_FLOOR] - s[CALL_FLOOR]
    fetch = f[FETCH_PATH] - f[OURS_PAGE]
    fetch_changing = f[FETCH_PATH_CHANGING] - f[OURS_PAGE]

    def ratio(x: float, y: float) -> float | None:
        return x / y if y > 0 else None
    return {
        "a_in_stream_unchanged_minus_no_hashing": a,
        "a_in_the_guest": a_guest,
        "a_outside_the_guest": a - a_guest,
        "a_changing_in_stream_changing_minus_no_hashing": a_changing,
        "b_hold_floor_minus_call_floor": b,
        "b_request_edits_part": edits,
        "b_hold_buffer_read_part": b - edits,
        "a_minus_b_(beyond_the_host's_share)": a - b,
        "c_fetch_path_unchanged_minus_no_hashing": fetch,
        "c_fetch_path_changing_minus_no_hashing": fetch_changing,
        "ratio_a_over_fetch_unchanged": ratio(a, fetch),
        "ratio_a_over_fetch_changing": ratio(a, fetch_changing),
        "ratio_a_changing_over_fetch_changing": ratio(a_changing, fetch_changing),
        "ratio_b_over_fetch_unchanged": ratio(b, fetch),
        "ratio_b_over_fetch_changing": ratio(b, fetch_changing),
        "none_in_stream_envoy_vs_fetch_envoy": s[NONE_PAGE] - f[NONE_PAGE],
        "no_hashing_added_in_stream_envoy_vs_fetch_envoy":
            (s[OURS_PAGE] - s[NONE_PAGE]) - (f[OURS_PAGE] - f[NONE_PAGE]),
    }


def report(results: dict) -> str:
    lines = [f"{results['requests']} requests per variant after {results['warm_up']} to warm up", "",
             "| envoy | variant | instructions/request | added over none | in the Wasm guest | outside the guest "
             "| calls out of the guest | their instructions (inclusive) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for group, v in results["groups"].items():
        for name, value in v.items():
            lines.append(f"| {group} | {name} | {value['instructions_per_request']:,.0f} | "
                         f"{value['added_over_none']:+,.0f} | {value['in_wasm_guest_per_request']:,.0f} | "
                         f"{value['outside_guest_per_request']:,.0f} | {value['guest_calls_out_per_request']:.1f} | "
                         f"{value['guest_calls_out_instructions_per_request']:,.0f} |")
    lines += [""] + [f"- {key}: {value:,.3f}" if isinstance(value, float) and abs(value) < 10
                     else f"- {key}: {value:,.0f}" if value is not None else f"- {key}: n/a"
                     for key, value in results["figures"].items()]
    return "\n".join(lines)


SECTION = "envoy-hold-instructions"
DEFAULT_OUTPUT = BENCH / "envoy_hold_instructions.json"
GOAL = 0.25


def markdown(results: dict) -> str:
    """BENCHMARKS.md's section: the table, then issue 20's ratios against its goal."""
    f = results["figures"]
    ratio = f["ratio_a_over_fetch_changing"]
    return "\n".join([
        "## Envoy: the in-stream hashed document, instructions per request (callgrind)", "",
        "bench/envoy_hold_instructions.py: document navigations to a real upstream serving the 10 KiB page with two "
        "inline scripts; two Envoys under callgrind (one holds at most four Wasm VMs), each figure a difference "
        "within one of them. The hold floor (bench/filters/call-floor-envoy with \"hold\": true) makes exactly the "
        "host calls of the in-stream path (request edits, headers held, body buffered and read once, the same writes) with no scan, "
        "hash or comparison.", "", report(results), "",
        f"Hashing the page in-stream adds {f['a_in_stream_unchanged_minus_no_hashing']:,.0f} instructions over the "
        f"same filter without hashing when the page is the one before (compared, not scanned), and "
        f"{f['a_changing_in_stream_changing_minus_no_hashing']:,.0f} when every page differs; on the fetch path, "
        f"where every document was fetched and scanned, {f['c_fetch_path_changing_minus_no_hashing']:,.0f}. "
        f"In-stream costs {ratio:.2f} x the fetch path's hashing (goal: at most {GOAL} x), of which the host's "
        f"share (hold floor - call floor: {f['b_hold_floor_minus_call_floor']:,.0f}) is "
        f"{f['ratio_b_over_fetch_changing']:.3f} x.", ""])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--runs", type=int, default=1, help="whole measurements one after the other")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="the JSON to write (BENCHMARKS.md is written only with the default)")
    args = parser.parse_args()
    run.require_the_products_stack()
    runs = []
    for _ in range(args.runs):
        runs.append(measure(args.requests))
        # Written after each run, so a later failure keeps the earlier figures.
        args.output.write_text(json.dumps({"runs": runs}, indent=1) + "\n")
        print(report(runs[-1]), flush=True)
    if args.output == DEFAULT_OUTPUT:
        include_section(SECTION, "bench/envoy_hold_instructions.py", markdown(runs[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
