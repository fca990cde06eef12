"""The shape Pangolin gives Traefik, fed to real Traefik: an HTTP provider (a small local server, as Pangolin's
API is) serving a router per resource whose middlewares are badger (here a forwardAuth to an always-200 server),
then `traefik.additional_middlewares` (`secure-headers@file`, `secure-headers-streamed@file`), then the resource's
own response headers; and the file provider (Pangolin's dynamic_config.yml) holding the README's middleware and
its generated companion. An app with an exception keeps its own headers; Immich gets the preset."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from secure_headers_harness.http_client import request
from readme_examples import example, middleware_options
from secure_headers_harness.traefik import Traefik

ADDITIONAL_MIDDLEWARES = ["secure-headers@file", "secure-headers-streamed@file"]
LEGACY_CSP = "frame-ancestors https://sso.example.com; default-src 'self' 'unsafe-inline'"


class Served:
    """A tiny HTTP server in a thread answering every request with `reply(path)`; counts requests."""

    def __init__(self, reply):
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                served.requests += 1
                status, body = reply(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def pangolin_config(upstream_port: int, badger_port: int) -> dict:
    """Routers as Pangolin generates them for three resources (names shortened)."""
    def resource(i: int, host: str, headers: dict[str, str] | None) -> dict:
        middlewares = ["badger", *ADDITIONAL_MIDDLEWARES] + ([f"{i}-headers"] if headers else [])
        return {"rule": f"Host(`{host}`)", "service": f"{i}-service", "middlewares": middlewares}

    resources = [(1, "photos.example.com", {"Cache-Control": "no-cache", "X-Pangolin-Resource": "immich"}),
                 (2, "legacy.example.com", {"Content-Security-Policy": LEGACY_CSP}),
                 (3, "wiki.example.com", None)]
    http = {"routers": {}, "services": {}, "middlewares": {
        "badger": {"forwardAuth": {"address": f"http://127.0.0.1:{badger_port}/auth"}}}}
    for i, host, headers in resources:
        http["routers"][f"{i}-router"] = resource(i, host, headers)
        http["services"][f"{i}-service"] = {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{upstream_port}"}]}}
        if headers:
            http["middlewares"][f"{i}-headers"] = {"headers": {"customResponseHeaders": headers}}
    return {"http": http}


@pytest.fixture(scope="module")
def pangolin(built_modules, upstream):
    badger = Served(lambda path: (200, b"{}"))
    api = Served(lambda path: (200, json.dumps(pangolin_config(upstream.port, badger.port)).encode()))
    policy = json.dumps(middleware_options(example("pangolin-dynamic")))
    traefik = Traefik(policy, upstream.port, options_form="keys", companion_hosts=[], providers={
        "http": {"endpoint": f"http://127.0.0.1:{api.port}/api/v1/traefik-config", "pollInterval": "5s"}})
    try:
        with traefik:
            traefik.wait_for_router("photos.example.com")
            yield traefik, badger
    finally:
        api.close()
        badger.close()


def get(pangolin, host: str, path: str, **headers):
    traefik, _ = pangolin
    reply = request(traefik.ports["https"], path, https=True, host=host, headers=headers)
    assert reply.status in (200, 206), (host, path, reply.status)
    for name in ("x-powered-by", "server"):
        assert reply.one(name) is None, (host, path, name)
    assert reply.one("x-content-type-options") == "nosniff", (host, path)
    return reply


def test_every_resource_router_runs_badger_then_the_plugin(pangolin):
    traefik, badger = pangolin
    before = badger.requests
    get(pangolin, "photos.example.com", "/")
    assert badger.requests == before + 1, "the badger stand-in was asked first"
    log = traefik.log()
    assert "routerName=1-router@http" in log and "middlewareName=secure-headers@file" in log


def test_immich_gets_the_preset_and_keeps_pangolins_own_headers(pangolin):
    for headers in ({"Sec-Fetch-Dest": "document"}, {}, {"Accept": "*/*"}):
        page = get(pangolin, "photos.example.com", "/", **headers)
        assert "frame-ancestors 'self'" in page.one("content-security-policy")
        assert page.one("x-frame-options") == "SAMEORIGIN"
        assert page.one("strict-transport-security") == "max-age=31536000"
        assert page.one("cache-control") == "no-cache", "Pangolin's per-resource value: keep_upstream keeps it"
        assert page.one("x-pangolin-resource") == "immich"
    video = get(pangolin, "photos.example.com", "/api/assets/abc/video/playback", Range="bytes=0-99")
    assert video.status == 206 and video.one("x-frame-options") == "SAMEORIGIN"


def test_the_exception_keeps_its_own_csp_and_no_frame_options(pangolin):
    for path, headers in (("/", {"Sec-Fetch-Dest": "document"}), ("/auth/login", {}),
                          ("/api/server/ping", {}), ("/_app/immutable/app.js", {"Sec-Fetch-Dest": "script"})):
        reply = get(pangolin, "legacy.example.com", path, **headers)
        assert reply.one("content-security-policy") == LEGACY_CSP, path
        assert reply.one("x-frame-options") is None, path
        assert reply.one("strict-transport-security") == "max-age=31536000", path


def test_a_resource_no_rule_names_gets_the_last_rule(pangolin):
    page = get(pangolin, "wiki.example.com", "/")
    assert page.one("content-security-policy") == "frame-ancestors 'self'"
    assert page.one("strict-transport-security") == "max-age=86400"
    assert page.one("referrer-policy") == "no-referrer"
