"""Load time of the Wasm modules in each host: what starting a host with N instances of a module costs per instance
(the module compiled, instantiated and configured), and what a 100-rule policy adds, side by side with a guest that
does nothing. bench/run.py calls `measure`; `--before` adds another build of the modules (an older commit's) to
compare.

Envoy: one process (one worker) with N listeners, each its own `vm_id`, so each listener gets VMs of its own; the
time from launch until the admin endpoint says LIVE. Traefik: one process with N routers, each its own middleware
(Traefik compiles and instantiates the module per middleware); the time from launch until a router answers. Per
instance: (that time - the same with the empty guest) / N, the median over the rounds. Envoy's configure time is
also read from the module's own log line (the policy parse inside the VM).
"""

from __future__ import annotations

import json
import re
import statistics
import time
import urllib.request
from pathlib import Path

from secure_headers_harness.envoy import StaticEnvoy
from secure_headers_harness.processes import free_port
from secure_headers_harness.traefik import MODULE_NAME, PLUGIN_KEY, StaticTraefik, install_plugin, traefik_binary

INSTANCES = 24
POLL_SECONDS = 0.005


def _wait(ready, process, timeout: float = 120) -> float:
    """Seconds until `ready()` holds, polled every 5 ms."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.process.poll() is not None:
            raise RuntimeError(f"{process.name} exited:\n{process.log()[-3000:]}")
        if ready():
            return time.monotonic() - started
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{process.name} not ready within {timeout}s:\n{process.log()[-3000:]}")


def _answers(url: str, host: str | None = None, body: bytes | None = None) -> bool:
    """True once `url` answers 200 (with `body`, when given)."""
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=1) as r:
            return r.status == 200 and (body is None or r.read().strip() == body)
    except OSError:
        return False


def envoy_load_seconds(folder: Path, filters: list[dict], pinned: list[str]) -> tuple[float, str]:
    """Launch-to-LIVE time of an Envoy whose listeners carry `filters` (one filter list per listener)."""
    from run import listener  # the bench's own listener shape (run.py imports this module)
    folder.mkdir(parents=True)
    envoy = StaticEnvoy([listener(f"l{i}", free_port(), chain) for i, chain in enumerate(filters)],
                        command_prefix=pinned, workdir=folder)
    envoy.launch()
    try:
        seconds = _wait(lambda: _answers(f"{envoy.admin}/ready", body=b"LIVE"), envoy)
        return seconds, envoy.log()
    finally:
        envoy.stop()


def traefik_load_seconds(folder: Path, plugins: dict[str, tuple[str, list[Path]]], middlewares: dict[str, dict],
                         upstream_port: int, pinned: list[str]) -> float:
    """Launch-to-answer time of a Traefik with one router per middleware in `middlewares`."""
    folder.mkdir(parents=True)
    for module, files in plugins.values():
        install_plugin(folder, module, files)
    static = {"ping": {"entryPoint": "traefik"}, "log": {"level": "ERROR"},
              "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
              "experimental": {"localPlugins": {key: {"moduleName": module} for key, (module, _) in plugins.items()}}}
    routers = {name: {"rule": f"Host(`{name}.test`)", "service": "up", "middlewares": [name]} for name in middlewares}
    dynamic = {"http": {"routers": routers, "middlewares": middlewares, "services": {"up": {"loadBalancer": {
        "servers": [{"url": f"http://127.0.0.1:{upstream_port}"}]}}}}}
    traefik = StaticTraefik(static, dynamic, command_prefix=pinned, env={"GOMAXPROCS": "1"}, workdir=folder)
    traefik.spawn([traefik_binary(), f"--configFile={traefik.write_config()}"])
    last = list(middlewares)[-1]
    try:
        return _wait(lambda: _answers(f"http://127.0.0.1:{traefik.ports['http']}/", f"{last}.test"), traefik)
    finally:
        traefik.stop()


def measure(builds: dict[str, tuple[Path, Path]], empty: tuple[Path, tuple[str, Path]], policies: dict[str, str],
            workdir: Path, rounds: int, pinned: list[str], upstream_port: int) -> dict:
    """Per build (label: Envoy module, Traefik plugin folder) and policy (label: JSON): the load time per instance
    in each host over the empty guest, in ms; Envoy's logged configure time too."""
    from run import wasm_filter  # the bench's own Wasm filter shape (run.py imports this module)
    empty_envoy, (empty_module, empty_folder_files) = empty
    samples: dict[str, list[float]] = {}
    configure: dict[str, list[float]] = {}

    def sample(key: str, seconds: float) -> None:
        samples.setdefault(key, []).append(seconds)

    for round_index in range(rounds):
        tag = f"r{round_index}"
        slug = {name: re.sub(r"\W+", "-", name) for name in [*builds, *policies]}
        chains = [[wasm_filter(f"empty{i}", empty_envoy, "{}")] for i in range(INSTANCES)]
        sample("envoy/empty", envoy_load_seconds(workdir / f"{tag}-envoy-empty", chains, pinned)[0])
        empty_plugin = {"empty": (empty_module, empty_folder_files)}
        sample("traefik/empty", traefik_load_seconds(
            workdir / f"{tag}-traefik-empty", empty_plugin,
            {f"m{i}": {"plugin": {"empty": {}}} for i in range(INSTANCES)}, upstream_port, pinned))
        for build, (proxy_wasm, plugin_dir) in builds.items():
            for policy_name, policy in policies.items():
                chains = [[wasm_filter(f"v{i}", proxy_wasm, policy)] for i in range(INSTANCES)]
                seconds, log = envoy_load_seconds(workdir / f"{tag}-envoy-{slug[build]}-{slug[policy_name]}", chains, pinned)
                sample(f"envoy/{build}/{policy_name}", seconds)
                configure.setdefault(f"{build}/{policy_name}", []).extend(
                    float(ms) for ms in re.findall(r"policy loaded \(\d+ rule\(s\), ([\d.]+) ms\)", log))
                plugins = {PLUGIN_KEY: (MODULE_NAME, list(plugin_dir.iterdir()))}
                sample(f"traefik/{build}/{policy_name}", traefik_load_seconds(
                    workdir / f"{tag}-traefik-{slug[build]}-{slug[policy_name]}", plugins,
                    {f"m{i}": {"plugin": {PLUGIN_KEY: {"policy": policy}}} for i in range(INSTANCES)},
                    upstream_port, pinned))
        print(f"  load round {round_index + 1}/{rounds} done", flush=True)
    median = {key: statistics.median(values) for key, values in samples.items()}
    rows = []
    for build, (proxy_wasm, plugin_dir) in builds.items():
        row = {"build": build, "proxy_wasm_bytes": proxy_wasm.stat().st_size,
               "http_wasm_bytes": (plugin_dir / "secure_headers.wasm").stat().st_size}
        for host in ("envoy", "traefik"):
            for policy_name in policies:
                extra = median[f"{host}/{build}/{policy_name}"] - median[f"{host}/empty"]
                row[f"{host}_{policy_name}_ms_per_instance"] = extra / INSTANCES * 1000
        for policy_name in policies:
            logged = configure.get(f"{build}/{policy_name}", [])
            row[f"envoy_{policy_name}_configure_ms"] = statistics.median(logged) if logged else None
        rows.append(row)
    return {"instances": INSTANCES, "rounds": rounds, "rows": rows,
            "samples_s": samples, "configure_ms": configure}


def markdown(load: dict) -> list[str]:
    policies = [key[len("envoy_"):-len("_ms_per_instance")] for key in load["rows"][0]
                if key.startswith("envoy_") and key.endswith("_ms_per_instance")]
    head = " | ".join(f"{host} load per instance, {p} (ms)" for host in ("Envoy", "Traefik") for p in policies)
    out = ["## Load time", "",
           f"Each host started with {load['instances']} instances of the module (Envoy: one listener and VM each; "
           f"Traefik: one router and middleware each), timed from launch until it serves, minus the same with the "
           f"empty guest, divided by {load['instances']}: the module compiled, instantiated and configured, per "
           f"instance. Median of {load['rounds']} rounds. \"configure\" is Envoy's in-VM policy parse from the "
           "module's own log line.", "",
           f"| build | proxy-wasm bytes | http-wasm bytes | {head} | "
           + " | ".join(f"Envoy configure, {p} (ms)" for p in policies) + " |",
           "|---|---|---|" + "---|" * (2 * len(policies) + len(policies))]
    for row in load["rows"]:
        cells = [f"{row[f'{host}_{p}_ms_per_instance']:.2f}" for host in ("envoy", "traefik") for p in policies]
        cells += [f"{row[f'envoy_{p}_configure_ms']:.3f}" if row[f"envoy_{p}_configure_ms"] is not None else "n/a"
                  for p in policies]
        out.append(f"| {row['build']} | {row['proxy_wasm_bytes']:,} | {row['http_wasm_bytes']:,} | "
                   + " | ".join(cells) + " |")
    return out + [""]


def main() -> int:
    """`python bench/startup.py [--before PROXY_WASM HTTP_WASM_DIR] [--rounds N]`: the load table alone."""
    import argparse
    import run
    from secure_headers_harness.paths import work_dir
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=9, help="run.py's rounds; the load is measured a third as often")
    parser.add_argument("--before", nargs=2, metavar=("PROXY_WASM", "HTTP_WASM_DIR"), type=Path)
    args = parser.parse_args()
    workdir = work_dir("bench-load")
    load = run.bench_load(args, workdir)
    print("\n".join(markdown(load)))
    (workdir / "load.json").write_text(json.dumps(load, indent=1) + "\n")
    print(f"wrote {workdir / 'load.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
