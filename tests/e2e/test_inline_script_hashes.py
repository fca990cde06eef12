"""`inline_script_hashes` in a real browser: a CSP without 'unsafe-inline' whose script-src carries the hashes of
the document's own inline scripts, computed by the filter per response. Traefik holds the document and reads it;
Envoy with allow_on_headers_stop_iteration holds the document's headers while it reads the body in the same
stream; Envoy without it (`envoy-fetch`, as Istio and Envoy Gateway configure it) fetches the document itself and
answers from that fetch. All three must deliver the body byte for byte."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from chromium import Chromium, chromium_through
from conftest import DOCUMENT, ENVOY_FETCH, settled_proxy
from secure_headers_harness.http_client import request
from test_reports_and_observe import counter_moved

# The `host` tests run on the Envoy dynamic module too (conftest.py): it hashes in-stream, as Traefik does; and on
# the Wasm build's fetch path (Envoy without allow_on_headers_stop_iteration).
ENVOY_DYNAMIC_TOO = True
ENVOY_FETCH_TOO = True
POLICY = json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                "inline_script_hashes": {"max_scripts": 2}}]})


def hashing_proxy(proxy_for, host: str, policy: str = POLICY):
    return settled_proxy(proxy_for, host, policy)


@pytest.fixture
def browser(proxy_for, host):
    proxy = hashing_proxy(proxy_for, host)
    with chromium_through(proxy) as chromium:
        yield proxy, chromium


def test_the_documents_own_inline_scripts_run_and_nothing_else_does(browser):
    proxy, chromium = browser
    page = chromium.open("http://immich.test/browser/hashed?v=first", wait_for="window.results.bootstrap")
    page.click("#handler")
    time.sleep(0.5)
    results = page.evaluate("window.results")
    assert results == {"theme": "first", "bootstrap": True}, "both inline scripts ran, nothing injected ran"
    blocked = {v["directive"] for v in Chromium.violations(page)}
    assert blocked == {"script-src-elem", "script-src-attr"}, Chromium.violations(page)
    csp = proxy.get("/browser/hashed?v=first", headers={"Sec-Fetch-Dest": "document"}).one("content-security-policy")
    assert "'sha256-" in csp and "script-src 'self' 'unsafe-inline'" not in csp, csp
    counter_moved(proxy, "inline_scripts.documents_hashed")


def test_a_script_whose_text_changes_between_requests_still_runs(browser):
    _, chromium = browser
    for version in ("one", "two"):
        page = chromium.open(f"http://immich.test/browser/hashed?v={version}", wait_for="window.results.bootstrap")
        assert page.evaluate("window.results.theme") == version
        # The injected script and the onclick attribute (refused when the parser sets it), nothing else.
        assert {v["directive"] for v in Chromium.violations(page)} == {"script-src-elem", "script-src-attr"}


def test_a_document_over_the_script_cap_gets_the_static_csp(browser):
    proxy, chromium = browser
    page = chromium.open("http://immich.test/browser/many-scripts")
    assert page.evaluate("window.results") == {"one": True, "two": True, "three": True}
    assert Chromium.violations(page) == [], "the static CSP allows them ('unsafe-inline')"
    counter_moved(proxy, "inline_scripts.fallback.too_many_scripts")


def test_the_body_arrives_unchanged(proxy_for, upstream, host):
    proxy = hashing_proxy(proxy_for, host)
    for path in ("/browser/hashed?v=x", "/browser/immich", "/"):
        direct = request(upstream.port, path)
        through = proxy.get(path, headers=DOCUMENT)
        assert through.status == 200, path
        assert through.body == direct.body, path
        assert "'sha256-" in through.one("content-security-policy"), path


def test_a_conditional_request_still_gets_the_body_and_its_hashes(proxy_for, upstream, host):
    """A 304 has no body to hash, and the browser would pair its cached body with another CSP: the filter asks
    the upstream without validators (the upstream here answers If-None-Match with 304)."""
    assert request(upstream.port, "/browser/hashed?v=etag", headers={"If-None-Match": '"etag"'}).status == 304
    proxy = hashing_proxy(proxy_for, host)
    reply = proxy.get("/browser/hashed?v=etag", headers={**DOCUMENT, "If-None-Match": '"etag"'})
    assert reply.status == 200
    assert reply.body == request(upstream.port, "/browser/hashed?v=etag").body
    assert "'sha256-" in reply.one("content-security-policy")


def test_a_document_over_the_size_cap_gets_the_static_csp_and_its_body(proxy_for, upstream, host):
    small = json.dumps({"rules": [{"match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                   "inline_script_hashes": {"max_body_bytes": 1024}}]})
    proxy = hashing_proxy(proxy_for, host, small)
    direct = request(upstream.port, "/browser/immich")
    assert len(direct.body) > 1024
    reply = proxy.get("/browser/immich", headers=DOCUMENT)
    assert reply.body == direct.body
    assert "script-src 'self' 'unsafe-inline'" in reply.one("content-security-policy")
    counter_moved(proxy, "inline_scripts.fallback.too_large")


def test_requests_that_are_not_documents_are_never_read(proxy_for, upstream, host):
    """Media (with Range), JSON and a WebSocket-free API call pass as they would without the option."""
    proxy = hashing_proxy(proxy_for, host)
    asset = "/api/assets/a1/video/playback"
    ranged = proxy.get(asset, headers={"Range": "bytes=0-99", "Accept": "*/*"})
    assert ranged.status == 206 and ranged.body == request(upstream.port, asset, headers={"Range": "bytes=0-99"}).body
    ping = proxy.get("/api/server/ping", headers={"Accept": "application/json"})
    assert ping.status == 200 and json.loads(ping.body) == {"res": "pong"}
    assert "'sha256-" not in (ping.one("content-security-policy") or "")


def test_envoy_sends_the_request_on_when_its_own_fetch_fails(proxy_for, upstream):
    """Envoy's fetch path only (Traefik and Envoy in-stream read the response they hold and never fetch): the
    upstream drops the filter's fetch, so the browser's request goes to the upstream as usual and gets the static
    CSP, counted."""
    proxy = hashing_proxy(proxy_for, ENVOY_FETCH)
    reply = proxy.get("/browser/drop-first?key=envoy&v=dropped", headers=DOCUMENT)
    assert reply.status == 200
    assert reply.body == request(upstream.port, "/browser/hashed?v=dropped").body
    assert "script-src 'self' 'unsafe-inline'" in reply.one("content-security-policy")
    counter_moved(proxy, "inline_scripts.fallback.fetch_failed")


def test_the_upstream_gets_the_browsers_request_whole_and_uncompressed(proxy_for, host):
    """What the upstream sees of a hashed document's request (the upstream echoes its request headers): cookies
    and the rest pass, compression and validators do not."""
    proxy = hashing_proxy(proxy_for, host)
    reply = proxy.get("/echo-headers", headers={**DOCUMENT, "Cookie": "session=abc", "Accept-Encoding": "gzip, br",
                                                "If-None-Match": '"v1"', "If-Modified-Since": "Mon, 23 Nov 2026"})
    seen = json.loads(reply.body)
    assert seen["cookie"] == "session=abc"
    assert seen["accept-encoding"] == "identity"
    assert "if-none-match" not in seen and "if-modified-since" not in seen, seen


def test_an_http_2_client_gets_the_hashed_document(proxy_for, upstream, host):
    proxy = hashing_proxy(proxy_for, host)
    out = subprocess.run(["curl", "-sS", "-i", "--http2-prior-knowledge", "-H", "Host: immich.test",
                          "-H", "Sec-Fetch-Dest: document", "-H", "Cookie: a=1",
                          f"http://127.0.0.1:{proxy.server.ports['http']}/browser/hashed?v=h2"],
                         capture_output=True, timeout=30, check=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.lower().startswith(b"http/2 200"), head
    assert b"'sha256-" in head
    assert body == request(upstream.port, "/browser/hashed?v=h2").body
