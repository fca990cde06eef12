"""One expectation table, run through real Envoy and real Traefik: bundles, presets and scoping on the kinds of
response Immich sends. Where Traefik streams a response (with the companion headers middleware the README
prescribes) it lacks what the policy decides from the response; those tests assert that limit explicitly."""

from __future__ import annotations

import base64
import json
import os
import socket

import pytest
from conftest import DOCUMENT
from secure_headers_harness import envoy as envoy_host, paths, traefik as traefik_host
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import DEMO_POLICY as POLICY_FILE

DEMO_POLICY = POLICY_FILE.read_text()
# The `host` tests run on the Envoy dynamic module too (conftest.py).
ENVOY_DYNAMIC_TOO = True
BUNDLES = ["bundle-a", "bundle-b", "bundle-c", "bundle-d", "bundle-e"]

# What each bundle adds, checked over https on the SPA page.
BUNDLE_HEADERS = {
    "bundle-a": {"x-content-type-options": "nosniff", "x-frame-options": "SAMEORIGIN",
                 "content-security-policy": "frame-ancestors 'self'"},
    "bundle-b": {"strict-transport-security": "max-age=86400"},
    "bundle-c": {"referrer-policy": "no-referrer"},
    "bundle-d": {"cross-origin-resource-policy": "same-origin"},
    "bundle-e": {"content-security-policy-report-only":
                 "default-src 'self'; base-uri 'self'; object-src 'none'; form-action 'self'"},
}


@pytest.fixture
def demo(proxy_for, host):
    """The policy both demos ship (policies/immich.json): the immich preset on Immich's host names only."""
    return proxy_for(host, DEMO_POLICY)


def test_both_hosts_ship_the_same_policy_file():
    policy = json.loads(DEMO_POLICY)
    assert json.loads(envoy_host.committed_policy()) == policy
    assert json.loads(envoy_host.committed_policy(paths.ENVOY_DYNAMIC_YAML)) == policy
    assert json.loads(traefik_host.committed_policy()) == policy


@pytest.mark.parametrize("count", range(1, len(BUNDLES) + 1))
def test_bundles_roll_out_one_at_a_time(proxy_for, host, count):
    proxy = proxy_for(host, json.dumps({"presets": BUNDLES[:count]}))
    page = proxy.get("/", https=True, headers=DOCUMENT)
    assert page.status == 200
    expected = {name: value for bundle in BUNDLES[:count] for name, value in BUNDLE_HEADERS[bundle].items()}
    for name, value in expected.items():
        assert page.one(name) == value, name
    for bundle in BUNDLES[count:]:
        for name in BUNDLE_HEADERS[bundle]:
            if name not in expected:
                assert page.one(name) is None, f"{name} arrived before {bundle}"
    assert page.one("x-powered-by") is None
    if count >= 3:
        assert "camera=()" in page.one("permissions-policy")


def test_spa_html_gets_the_immich_policy(demo):
    page = demo.get("/auth/login", headers={**DOCUMENT, "X-Upstream-Extra": "Server=Express/4.21"})
    assert page.status == 200
    csp = page.one("content-security-policy")
    assert "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval' https://www.gstatic.com" in csp
    assert "frame-ancestors 'self'" in csp
    assert page.one("x-frame-options") == "SAMEORIGIN"
    assert page.one("x-content-type-options") == "nosniff"
    assert page.one("referrer-policy") == "no-referrer"
    assert "geolocation=(self)" in page.one("permissions-policy")
    assert page.one("cache-control") == "no-store", "the upstream's own value stays"
    assert page.one("x-powered-by") is None
    assert page.one("server") is None
    assert page.one("x-envoy-upstream-service-time") is None, "timing of the upstream stays inside"
    assert b"<script" in page.body


def test_hsts_only_over_https(demo):
    assert demo.get("/", https=True, headers=DOCUMENT).one("strict-transport-security") == "max-age=31536000"
    assert demo.get("/", headers=DOCUMENT).one("strict-transport-security") is None


def test_a_second_router_or_virtual_host_stays_untouched(demo, upstream):
    through = demo.get("/", host="other.test", headers=DOCUMENT)
    direct = request(upstream.port, "/", host="other.test", headers=DOCUMENT)
    assert through.status == 200
    assert through.one("x-powered-by") == "Express"
    for name in ("content-security-policy", "x-frame-options", "x-content-type-options", "permissions-policy"):
        assert through.one(name) is None, name
    assert through.body == direct.body


def test_media_range_206_keeps_upstream_caching(demo, upstream):
    path = "/api/assets/abc/original?size=100000"
    direct = request(upstream.port, path, headers={"Range": "bytes=1000-1999"})
    reply = demo.get(path, https=True, headers={"Range": "bytes=1000-1999"})
    assert reply.status == 206
    assert reply.body == direct.body and len(reply.body) == 1000
    assert reply.body == bytes(i % 251 for i in range(1000, 2000))
    for name in ("content-range", "etag", "cache-control", "content-disposition", "accept-ranges", "content-type"):
        assert reply.values(name) == direct.values(name), name
    assert reply.one("cross-origin-resource-policy") == "cross-origin", "Cast receivers load media cross-origin"
    assert reply.one("x-content-type-options") == "nosniff"
    assert reply.one("strict-transport-security") == "max-age=31536000"
    assert reply.one("x-powered-by") is None, "Traefik: the companion middleware removes it"
    if demo.streamed_lacks_response_decisions:
        assert reply.one("content-security-policy") is None, "keep_upstream headers need the upstream's headers"
    else:
        assert reply.one("content-security-policy") is not None


def test_304_gets_headers_but_no_content_type(demo, upstream):
    etag = request(upstream.port, "/api/assets/abc/thumbnail").one("etag")
    reply = demo.get("/api/assets/abc/thumbnail", headers={"If-None-Match": etag})
    assert reply.status == 304
    assert reply.body == b""
    assert reply.one("content-type") is None
    assert reply.one("etag") == etag
    assert reply.one("x-content-type-options") == "nosniff"


def test_json_redirects_and_discovery(demo):
    ping = demo.get("/api/server/ping")
    assert (ping.status, json.loads(ping.body)) == (200, {"res": "pong"})
    assert ping.one("x-content-type-options") == "nosniff"
    assert ping.one("cache-control") is None, "the immich preset defaults Cache-Control for HTML only"

    discovery = demo.get("/.well-known/immich")
    assert discovery.status == 200 and json.loads(discovery.body)["api"]["endpoint"] == "/api"

    redirect = demo.get("/redirect", headers=DOCUMENT)
    assert redirect.status == 302 and redirect.one("location") == "/auth/login"
    assert redirect.one("x-frame-options") == "SAMEORIGIN"
    assert redirect.one("x-powered-by") is None

    oauth = demo.get("/api/oauth/mobile-redirect", headers=DOCUMENT)
    assert oauth.one("location") == "app.immich:///oauth-callback?code=abc"


def test_error_replies_are_covered(demo):
    """An upstream 404, and on Envoy its own local reply (Traefik has no local replies inside a router)."""
    missing = demo.get("/no-such-page", headers=DOCUMENT)
    assert missing.status == 404 and missing.one("x-content-type-options") == "nosniff"
    assert missing.one("x-powered-by") is None
    if demo.is_envoy:
        local = demo.get("/local-404")
        assert (local.status, local.body) == (404, b"not here")
        assert local.one("content-security-policy") is not None


def test_head_gets_the_same_headers_as_get(demo):
    for headers in (DOCUMENT, {}):
        get = demo.get("/", https=True, headers=headers)
        head = demo.get("/", https=True, method="HEAD", headers=headers)
        assert head.status == 200 and head.body == b""
        varying = {"date", "content-length"}
        assert {(n.lower(), v) for n, v in head.headers if n.lower() not in varying} == \
               {(n.lower(), v) for n, v in get.headers if n.lower() not in varying}


@pytest.mark.parametrize("path", ["/favicon.ico", "/favicon-wrong.ico"])
def test_favicon_content_type_is_repaired(demo, upstream, path):
    direct = request(upstream.port, path)
    reply = demo.get(path)  # an <img>-style fetch: Traefik holds it because the policy repairs `.ico`
    assert direct.one("content-type") in (None, "text/html; charset=utf-8")
    assert reply.one("content-type") == "image/x-icon"
    assert reply.body == direct.body


def test_an_upstream_csp_is_kept_not_doubled(demo):
    reply = demo.get("/", https=True, headers={**DOCUMENT, "X-Upstream-Helmet": "on"})
    assert reply.one("content-security-policy") == \
        "default-src 'self'; script-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'"
    assert reply.one("strict-transport-security") == "max-age=31536000"
    assert reply.one("x-frame-options") == "SAMEORIGIN"


def test_streamed_response_with_upstream_security_headers(demo):
    """A streamed response (/api/) from an upstream that sends its own HSTS and X-Frame-Options (Immich with
    helmet): Envoy replaces them; Traefik's companion headers middleware replaces them as the response is
    written, so the browser sees one value each."""
    reply = demo.get("/api/server/ping", https=True, headers={"X-Upstream-Helmet": "on"})
    assert reply.values("content-security-policy") == [
        b"default-src 'self'; script-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'"]
    assert reply.values("strict-transport-security") == [b"max-age=31536000"]
    assert reply.values("x-frame-options") == [b"SAMEORIGIN"]


def test_keep_upstream_avoids_duplicates_on_streamed_responses(proxy_for, host):
    policy = json.dumps({"presets": ["immich"], "keep_upstream": [
        "content-security-policy", "cache-control", "strict-transport-security", "x-frame-options"]})
    reply = proxy_for(host, policy).get("/api/server/ping", https=True, headers={"X-Upstream-Helmet": "on"})
    assert reply.values("strict-transport-security") == [b"max-age=15552000; includeSubDomains"]
    assert reply.values("x-frame-options") == [b"DENY"]
    assert reply.one("x-content-type-options") == "nosniff"


def test_non_utf8_upstream_header_passes_and_policy_applies(demo, upstream):
    direct = request(upstream.port, "/odd-header")
    reply = demo.get("/odd-header", headers=DOCUMENT)
    assert reply.status == 200
    assert reply.values("x-odd-bytes") == direct.values("x-odd-bytes") == [b"\xff\xfe\x80ok"]
    assert reply.one("x-content-type-options") == "nosniff"


def test_strict_preset_removes_the_owasp_list(proxy_for, host):
    extra = {**DOCUMENT, "X-Upstream-Extra": "X-AspNet-Version=4.0.30319"}
    reply = proxy_for(host, '{"presets": ["strict"]}').get("/", https=True, headers=extra)
    assert reply.one("x-aspnet-version") is None
    assert reply.one("x-powered-by") is None
    assert reply.one("cross-origin-embedder-policy") == "require-corp"
    assert reply.one("strict-transport-security") == "max-age=63072000; includeSubDomains"
    assert reply.one("content-security-policy").endswith("upgrade-insecure-requests")
    assert reply.one("cache-control") == "no-store", "the upstream's value is kept unless asked"


def test_websocket_upgrade_passes_untouched(demo):
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", demo.server.ports["http"]), timeout=10) as sock:
        sock.sendall((
            "GET /api/socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: immich.test\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        status_line, _, rest = head.partition(b"\r\n")
        assert b" 101 " in status_line, head
        assert b"x-content-type-options" not in rest.lower(), "a 101 passes untouched"
        payload = b"42[\"ping\"]"
        mask = os.urandom(4)
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
        frame = head.partition(b"\r\n\r\n")[2]
        while len(frame) < 2 + len(payload):
            frame += sock.recv(4096)
        assert frame[0] == 0x81 and frame[2:2 + len(payload)] == payload


@pytest.mark.parametrize("value", ["", "v" * 32768], ids=["empty", "32KiB"])
def test_empty_and_large_upstream_values_pass(demo, value):
    reply = demo.get("/", https=True, headers={**DOCUMENT, "X-Upstream-Extra": f"X-Large={value}"})
    assert reply.status == 200
    assert reply.values("x-large") == [value.encode()]
    assert reply.one("x-content-type-options") == "nosniff"


def test_two_plugins_in_one_vm_keep_their_own_policies(upstream, built_modules):
    """Envoy runs plugins with the same vm_config in one VM; each listener must keep its own policy."""
    with envoy_host.Envoy('{"presets": ["bundle-a"]}', upstream.port,
                          https_policy='{"presets": ["bundle-d"], "remove": []}') as envoy:
        plain = request(envoy.ports["http"], "/")
        secure = request(envoy.ports["https"], "/", https=True)
    assert plain.one("x-frame-options") == "SAMEORIGIN" and plain.one("cross-origin-resource-policy") is None
    assert secure.one("cross-origin-resource-policy") == "same-origin" and secure.one("x-frame-options") is None
    assert secure.one("x-powered-by") == "Express"
