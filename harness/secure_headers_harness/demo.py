"""`make demo` (Envoy) and `make demo-traefik`: the Immich-like upstream behind the real proxy with the demo
policy (policies/immich.json: the immich preset), on localhost:8000 (http) and localhost:8443 (https). Prints each
sample response's headers before (straight from the upstream) and after (through the proxy), then keeps serving
until Ctrl-C when run from a terminal."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time

from .envoy import DOCKER_PORTS, Envoy
from .http_client import request
from .paths import CERTS, CLI, DEMO_POLICY, ROOT
from .traefik import Traefik
from .upstream import Upstream

POLICY = DEMO_POLICY.read_text()
# The SPA page is requested as a browser navigation (Traefik holds only those for the full policy).
NAVIGATION = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}

SAMPLES = [
    ("SPA page", "/auth/login", NAVIGATION),
    ("media, Range", "/api/assets/demo/original", {"Range": "bytes=0-99"}),
    ("favicon.ico", "/favicon.ico", {}),
]
SKIP = {"date", "content-length", "connection", "keep-alive"}


def show(title: str, host: str, before, after) -> None:
    print(f"\n=== {title}: {before.status} direct, {after.status} through {host}")
    names = []
    for name, _ in before.headers + after.headers:
        if name.lower() not in SKIP and name.lower() not in names:
            names.append(name.lower())
    for name in names:
        old, new = before.one(name), after.one(name)
        mark = "  " if old == new else ("+ " if old is None else ("- " if new is None else "~ "))
        print(f"{mark}{name}: {new if new is not None else old}")


def taken_port(ports: dict[str, int]) -> str | None:
    """The first port some other process holds, named, so the demo never talks to someone else's proxy."""
    for name, port in ports.items():
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return f"{name} port {port}"
    return None


def check_the_demo(https_port: int) -> None:
    """What an operator runs after each rollout step (README, "Rolling out"): `secure-headers check`."""
    urls = [f"https://localhost:{https_port}{path}" for path in ("/auth/login", "/favicon.ico")]
    args = [str(CLI), "check", *urls, "--ca", str(CERTS / "ca.crt"), "--policy", str(DEMO_POLICY)]
    print(f"\n$ secure-headers check {' '.join(urls)} --ca {(CERTS / 'ca.crt').relative_to(ROOT)} "
          f"--policy {DEMO_POLICY.relative_to(ROOT)}", flush=True)
    subprocess.run(args, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", choices=["envoy", "traefik"], default="envoy")
    host = parser.parse_args().host
    needed = {"upstream": DOCKER_PORTS["upstream"], "http": DOCKER_PORTS["http"], "https": DOCKER_PORTS["https"],
              **({"admin": DOCKER_PORTS["admin"]} if host == "envoy" else {"ping": 9080})}
    taken = taken_port(needed)
    if taken:
        print(f"demo: {taken} is already in use by another process; stop it and run the demo again",
              file=sys.stderr)
        return 1
    with Upstream(port=DOCKER_PORTS["upstream"]) as upstream:
        ports = {"http": DOCKER_PORTS["http"], "https": DOCKER_PORTS["https"]}
        if host == "envoy":
            proxy = Envoy(POLICY, upstream.port, ports={**ports, "admin": DOCKER_PORTS["admin"]})
        else:
            proxy = Traefik(POLICY, upstream.port, ports={**ports, "ping": 9080})
        with proxy:
            print(f"{host} with the policy of policies/immich.json: {' '.join(POLICY.split())}")
            print("legend: + added by the filter, - removed, ~ changed, unmarked passed through")
            for title, path, headers in SAMPLES:
                before = request(upstream.port, path, host="localhost", headers=headers)
                after = request(proxy.ports["https"], path, https=True, host="localhost", headers=headers)
                show(f"{title} {path} (https)", host, before, after)
            print(f"\n{host} serves http://localhost:{ports['http']} and https://localhost:{ports['https']} "
                  f"(test CA: {(CERTS / 'ca.crt').relative_to(ROOT)})")
            check_the_demo(ports["https"])
            if sys.stdin.isatty():
                print("Ctrl-C stops the demo.")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
