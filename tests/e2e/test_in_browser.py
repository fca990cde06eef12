"""The protections as a real browser enforces them: Debian's Chromium, headless, through real Envoy and real
Traefik, on pages the test upstream serves (envoy-test/browser_pages.py). Every check has a control that shows
the same page behaving differently without the protection, so none can pass by the page simply failing."""

from __future__ import annotations

import json
import time

import pytest
from chromium import Chromium
from secure_headers_harness import paths
from test_reports_and_observe import counter_moved

# The `host` tests run on the Envoy dynamic module too (conftest.py).
ENVOY_DYNAMIC_TOO = True
HOSTS_RULE = {"name": "immich", "match": {"hosts": ["immich.test", "*.immich.test"]}}


def policy(**settings) -> str:
    top = settings.pop("top", {})
    return json.dumps({**top, "rules": [{**HOSTS_RULE, **settings}]})


@pytest.fixture
def browse(proxy_for, host):
    """browse(policy) -> (proxy, Chromium) whose test names reach that proxy; browsers are closed at the end."""
    opened: list[Chromium] = []

    def start(policy_json: str):
        proxy = proxy_for(host, policy_json)
        chromium = Chromium(proxy.server.ports["http"], proxy.server.ports["https"])
        opened.append(chromium)
        return proxy, chromium

    yield start
    for chromium in opened:
        chromium.close()


def test_anti_clickjacking_keeps_the_page_out_of_a_cross_origin_frame(browse):
    _, chromium = browse(policy(presets=["bundle-a"]))
    same = chromium.open("http://immich.test/browser/embed?src=/browser/framed",
                         wait_for="window.results.framed === true")
    assert same.evaluate("window.results.framed") is True, "control: a same-origin frame renders"
    cross = chromium.open("http://other.test/browser/embed?src=http://immich.test/browser/framed")
    time.sleep(2)
    assert cross.evaluate("window.results.framed") is False, "the page must not render in a cross-origin frame"
    assert any("frame-ancestors" in line for line in chromium.console), chromium.console


def test_nosniff_blocks_a_script_served_as_text_plain(browse):
    _, chromium = browse(policy(presets=["bundle-a"]))
    control = chromium.open("http://other.test/browser/nosniff")
    assert control.evaluate("window.results.plainRan") is True, "control: without nosniff Chromium runs it"
    protected = chromium.open("http://immich.test/browser/nosniff")
    assert protected.evaluate("window.results.plainRan") is False
    assert any("strict MIME type checking" in line for line in chromium.console), chromium.console


def test_a_report_only_violation_reaches_the_collector_and_the_page_still_works(browse):
    proxy, chromium = browse(policy(presets=["bundle-a", "bundle-e"], top={"csp_reports": {}}))
    page = chromium.open("http://immich.test/", wait_for="window.__violations.length > 0")
    violations = Chromium.violations(page)
    assert {v["disposition"] for v in violations} == {"report"}, violations
    assert page.evaluate("document.documentElement.dataset.theme") == "dark", "the inline script still ran"
    counter_moved(proxy, "csp_reports.accepted", timeout=10)
    counter_moved(proxy, "csp_reports.directive.script-src-elem", timeout=10)


def test_an_immich_like_page_loads_under_the_enforced_immich_preset_with_no_violation(browse, upstream):
    tiles = f"http://127.0.0.1:{upstream.port}"
    preset = json.loads((paths.PRESETS / "immich.json").read_text())
    connect = preset["content_security_policy"]["directives"]["connect-src"] + [tiles]
    proxy, chromium = browse(policy(presets=["immich"], content_security_policy={
        "report_only": False, "directives": {"connect-src": connect}}))
    from secure_headers_harness.browser_pages import STEPS

    page = chromium.open(f"http://immich.test/browser/immich?tiles={tiles}",
                         wait_for=f"{json.dumps(STEPS)}.every(step => window.results[step] !== undefined)")
    results = page.evaluate("window.results")
    assert results == {step: True for step in STEPS}, results
    assert Chromium.violations(page) == []
    assert not [line for line in chromium.console if "Content Security Policy" in line], chromium.console
    csp = proxy.get("/browser/immich", headers={"Sec-Fetch-Dest": "document"}).one("content-security-policy")
    assert csp and "'unsafe-eval'" not in csp and "script-src-attr 'none'" in csp, "the enforced preset CSP"


def test_hsts_is_accepted_over_https_and_upgrades_a_later_plain_http_visit(browse):
    _, chromium = browse(policy(presets=["immich"]))
    first = chromium.context.new_page()
    response = first.goto("https://immich.test/browser/framed")
    assert response.status == 200
    assert response.headers.get("strict-transport-security") == "max-age=31536000"
    later = chromium.context.new_page()
    later.goto("http://immich.test/browser/framed")
    assert later.url == "https://immich.test/browser/framed", "the browser upgraded the http visit itself"
    # Control: a name that never got HSTS stays on http, and the https-only rule sends no HSTS there.
    fresh = chromium.context.new_page()
    plain = fresh.goto("http://fresh.immich.test/browser/framed")
    assert fresh.url == "http://fresh.immich.test/browser/framed"
    assert plain.status == 200 and "strict-transport-security" not in plain.headers
