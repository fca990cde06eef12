"""`make demo`: the Immich-like upstream behind real Envoy with envoy.yaml's policy (the immich preset),
on localhost:8000 (http) and localhost:8443 (https). Prints each sample response's headers before (straight
from the upstream) and after (through Envoy), then keeps serving until Ctrl-C when run from a terminal."""

from __future__ import annotations

import sys
import time

from envoy_runner import DOCKER_PORTS, Envoy, Upstream, committed_policy
from http_client import request

SAMPLES = [
    ("SPA page", "/auth/login", {}),
    ("media, Range", "/api/assets/demo/original", {"Range": "bytes=0-99"}),
    ("favicon.ico", "/favicon.ico", {}),
]
SKIP = {"date", "content-length", "connection", "keep-alive"}


def show(title: str, before, after) -> None:
    print(f"\n=== {title}: {before.status} direct, {after.status} through Envoy")
    names = []
    for name, _ in before.headers + after.headers:
        if name.lower() not in SKIP and name.lower() not in names:
            names.append(name.lower())
    for name in names:
        old, new = before.one(name), after.one(name)
        mark = "  " if old == new else ("+ " if old is None else ("- " if new is None else "~ "))
        print(f"{mark}{name}: {new if new is not None else old}")


def main() -> int:
    ports = {k: DOCKER_PORTS[k] for k in ("http", "https", "admin")}
    with Upstream(port=DOCKER_PORTS["upstream"]) as upstream, \
            Envoy(committed_policy(), upstream.port, ports=ports) as envoy:
        print(f"policy (from envoy-test/envoy.yaml): {committed_policy().strip()}")
        print("legend: + added by the filter, - removed, ~ changed, unmarked passed through")
        for title, path, headers in SAMPLES:
            before = request(upstream.port, path, host="localhost", headers=headers)
            after = request(envoy.ports["https"], path, https=True, host="localhost", headers=headers)
            show(f"{title} {path} (https)", before, after)
        print(f"\nEnvoy serves http://localhost:{ports['http']} and https://localhost:{ports['https']} "
              f"(test CA: envoy-test/certs/ca.crt); admin on http://localhost:{ports['admin']}")
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
