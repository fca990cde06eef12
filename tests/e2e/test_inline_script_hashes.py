"""`inline_script_hashes` in a real browser: a CSP without 'unsafe-inline' whose script-src carries the hashes of
the document's own inline scripts, computed by the filter per response. Traefik holds documents, so it can hash
them; Envoy cannot (a Wasm filter there never sees the body of a response whose headers it holds), so Envoy
refuses the option at load time, and that refusal is tested here too."""

from __future__ import annotations

import json
import time

import pytest
from chromium import Chromium
from envoy_runner import Envoy, wasm_log_lines
from http_client import request
from test_reports_and_observe import counter_moved

POLICY = json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                "inline_script_hashes": {"max_scripts": 2}}]})


@pytest.fixture
def traefik_browser(proxy_for):
    proxy = proxy_for("traefik", POLICY)
    chromium = Chromium(proxy.server.ports["http"], proxy.server.ports["https"])
    yield proxy, chromium
    chromium.close()


def test_the_documents_own_inline_scripts_run_and_nothing_else_does(traefik_browser):
    proxy, chromium = traefik_browser
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


def test_a_script_whose_text_changes_between_requests_still_runs(traefik_browser):
    _, chromium = traefik_browser
    for version in ("one", "two"):
        page = chromium.open(f"http://immich.test/browser/hashed?v={version}", wait_for="window.results.bootstrap")
        assert page.evaluate("window.results.theme") == version
        # The injected script and the onclick attribute (refused when the parser sets it), nothing else.
        assert {v["directive"] for v in Chromium.violations(page)} == {"script-src-elem", "script-src-attr"}


def test_a_document_over_the_script_cap_gets_the_static_csp(traefik_browser):
    proxy, chromium = traefik_browser
    page = chromium.open("http://immich.test/browser/many-scripts")
    assert page.evaluate("window.results") == {"one": True, "two": True, "three": True}
    assert Chromium.violations(page) == [], "the static CSP allows them ('unsafe-inline')"
    counter_moved(proxy, "inline_scripts.fallback.too_many_scripts")


def test_the_body_arrives_unchanged(proxy_for, upstream):
    proxy = proxy_for("traefik", POLICY)
    for path in ("/browser/hashed?v=x", "/browser/immich", "/"):
        direct = request(upstream.port, path)
        through = proxy.get(path, headers={"Sec-Fetch-Dest": "document"})
        assert through.body == direct.body, path
        assert "'sha256-" in through.one("content-security-policy"), path


def test_envoy_refuses_the_option_at_load_time(upstream):
    accepted, log = Envoy(POLICY, upstream.port).outcome()
    assert not accepted
    lines = wasm_log_lines(log)
    assert any("invalid policy at rules[0].inline_script_hashes: not available in Envoy" in line
               for line in lines), lines
