"""The child processes the harness starts: free loopback ports, binaries from the venv, resident memory, and the
lifecycle every proxy shares (ProxyProcess)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

from .paths import work_dir


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port free now and not handed out before by this process: the kernel offers a port that was just
    closed again, so two calls before either port is bound could get the same one (the load-time bench's 24
    listeners did: Envoy refused the duplicate address)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def require_free(port: int) -> None:
    """A clear error when a fixed port (the demo's) is taken, instead of a child process dying silently."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise RuntimeError(f"port {port} is in use (is another demo still running?)") from None


def venv_binary(name: str, package: str) -> str:
    """`name` from the project virtualenv (the one running this file), else from PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"no {name} binary: run `make venv` (installs {package} into .venv)")
    return found


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def terminate(process: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL if the child is still there after 10 s."""
    if process and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(kw_only=True)
class ProxyProcess:
    """Lifecycle shared by the Envoy and Traefik launchers: a work folder holding the log, an optional command
    prefix (`taskset -c 0`: the bench pins a proxy to a CPU) and environment, and a `start()` of the subclass's."""

    name: ClassVar[str]
    workdir: Path | None = None  # default: a fresh folder under .work/ named after the proxy
    command_prefix: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # added to this process's environment
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        if self.workdir is None:
            self.workdir = work_dir(self.name)
        self.log_path = self.workdir / f"{self.name}.log"

    def start(self):
        raise NotImplementedError

    def spawn(self, args: list[str]) -> subprocess.Popen:
        """Runs `args` behind the command prefix, output to the log; a relaunch of the same object (the bench
        restarts Traefik on a new configuration) appends to the log the first launch wrote."""
        mode = "w" if self.process is None else "a"
        env = {**os.environ, **self.env} if self.env else None
        with open(self.log_path, mode) as log:
            self.process = subprocess.Popen([*self.command_prefix, *args], cwd=self.workdir, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        return self.process

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Polls `ready` until it holds; fails with the log when the process exits or `timeout` passes (`what`:
        "ready", say, for "envoy not ready within 30s")."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not {what} within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        terminate(self.process)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
