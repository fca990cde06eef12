"""`inline_script_hashes.strict_dynamic` in headless Chromium through Envoy and Traefik: 'strict-dynamic' beside the
document's hashes. Scripts a hashed script inserts run from any origin, scripts the markup loads do not, and a
document without inline scripts keeps its own. Each blocking claim has a control: the same page under the hashed
CSP without 'strict-dynamic' (fresh.immich.test), whose script-src lists the second origin, runs it."""

from __future__ import annotations

import json

import pytest
from chromium import Chromium, chromium_through
from conftest import DOCUMENT, settled_proxy
from secure_headers_harness import paths
from secure_headers_harness.browser_pages import STEPS, STRICT_STEPS

# The second origin (the Cast sender's, www.gstatic.com, in Immich) is listed, as the immich preset lists
# gstatic: without 'strict-dynamic' a <script src> from it runs.
SCRIPT_SRC = ["'self'", "'unsafe-inline'", "'wasm-unsafe-eval'", "https://www.gstatic.com", "http://other.test"]


def rule(name: str, host: str, strict: bool) -> dict:
    return {"name": name, "match": {"hosts": [host]}, "presets": ["immich"],
            "content_security_policy": {"directives": {"script-src": SCRIPT_SRC}},
            "inline_script_hashes": {"max_scripts": 2, "strict_dynamic": strict}}


POLICY = json.dumps({"rules": [rule("strict", "immich.test", True), rule("hashed", "fresh.immich.test", False)]})
STRICT = "http://immich.test"
HASHED = "http://fresh.immich.test"
ALL_STEPS = f"{json.dumps(STRICT_STEPS)}.every(step => window.results && window.results[step] !== undefined)"


@pytest.fixture
def browser(proxy_for, host):
    proxy = settled_proxy(proxy_for, host, POLICY)
    with chromium_through(proxy) as chromium:
        yield proxy, chromium


def visit(chromium: Chromium, url: str, wait_for: str | None = None, settle_ms: int = 0):
    """(page, the CSP the browser got with the document)."""
    page = chromium.context.new_page()
    response = page.goto(url, wait_until="load")
    if wait_for:
        Chromium.wait(page, wait_for)
    page.wait_for_timeout(settle_ms)
    return page, response.headers.get("content-security-policy", "")


def script_src(csp: str) -> str:
    return next(d for d in csp.split("; ") if d.startswith("script-src "))


def blocked(page) -> list[str]:
    return [v["blocked"] for v in Chromium.violations(page)]


def test_an_immich_shaped_app_runs_whole_with_no_violation(browser):
    _, chromium = browser
    page, csp = visit(chromium, f"{STRICT}/browser/strict-app", wait_for=ALL_STEPS, settle_ms=300)
    assert " 'strict-dynamic' 'sha256-" in script_src(csp), csp
    assert "'unsafe-inline'" not in script_src(csp)
    results = page.evaluate("window.results")
    assert results == {step: True for step in STRICT_STEPS}, results
    assert Chromium.violations(page) == []


def test_a_parser_inserted_script_from_the_second_origin_is_blocked(browser):
    _, chromium = browser
    page, _ = visit(chromium, f"{STRICT}/browser/strict-app?parser=1", wait_for=ALL_STEPS, settle_ms=300)
    assert page.evaluate("window.results.parser") is None
    assert page.evaluate("window.results.cast") is True, "the same origin, inserted by a hashed script, runs"
    assert blocked(page) == ["http://other.test/browser/strict/parser.js"], Chromium.violations(page)
    control, csp = visit(chromium, f"{HASHED}/browser/strict-app?parser=1", wait_for=ALL_STEPS, settle_ms=300)
    assert "'strict-dynamic'" not in csp and "'sha256-" in csp, csp
    assert control.evaluate("window.results.parser") is True, "control: the host list allows it"
    assert Chromium.violations(control) == []


def test_modulepreload_is_what_lets_the_bootstraps_import_run(browser):
    """Chromium 156: an import() from an inline script inherits its parser-inserted state, so 'strict-dynamic'
    blocks it, unless a <link rel=modulepreload> (not parser-inserted, so allowed) already fetched the module."""
    _, chromium = browser
    page, _ = visit(chromium, f"{STRICT}/browser/strict-app?preload=0",
                    wait_for="window.results && window.results.start !== undefined", settle_ms=300)
    assert str(page.evaluate("window.results.start")).startswith("failed"), page.evaluate("window.results")
    assert blocked(page) == ["http://immich.test/browser/strict/start.js"], Chromium.violations(page)
    control, _ = visit(chromium, f"{HASHED}/browser/strict-app?preload=0", wait_for=ALL_STEPS, settle_ms=300)
    assert control.evaluate("window.results") == {step: True for step in STRICT_STEPS}
    assert Chromium.violations(control) == []


def test_a_document_without_inline_scripts_keeps_its_own_script(browser):
    _, chromium = browser
    page, csp = visit(chromium, f"{STRICT}/browser/strict-plain", wait_for="window.results && window.results.plain")
    without_unsafe_inline = " ".join(s for s in SCRIPT_SRC if s != "'unsafe-inline'")
    assert script_src(csp) == f"script-src {without_unsafe_inline}", csp
    assert Chromium.violations(page) == []


def immich_strict_policy(upstream) -> str:
    """The immich-strict preset with the test's tile server (a second origin on loopback) in connect-src."""
    tiles = f"http://127.0.0.1:{upstream.port}"
    preset = json.loads((paths.PRESETS / "immich.json").read_text())
    connect = preset["content_security_policy"]["directives"]["connect-src"] + [tiles]
    return json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich-strict"],
                                  "content_security_policy": {"directives": {"connect-src": connect}}}]})


@pytest.mark.parametrize("host", ["envoy", "traefik", "envoy-dynamic"])
def test_the_immich_pages_run_whole_under_immich_strict(proxy_for, upstream, host):
    """Everything the immich preset's browser test does (WebAssembly, a blob: worker, blob: image and media, the
    Socket.IO WebSocket, a fetch to the tile server) and the Immich-like SPA document (a modulepreload and an
    inline module that import()s it), under 'strict-dynamic'."""
    proxy = settled_proxy(proxy_for, host, immich_strict_policy(upstream))
    with Chromium(proxy.server.ports["http"], proxy.server.ports["https"]) as chromium:
        tiles = f"http://127.0.0.1:{upstream.port}"
        page, csp = visit(chromium, f"http://immich.test/browser/immich?tiles={tiles}",
                          wait_for=f"{json.dumps(STEPS)}.every(step => window.results[step] !== undefined)")
        assert " 'strict-dynamic' 'sha256-" in script_src(csp), csp
        assert page.evaluate("window.results") == {step: True for step in STEPS}
        assert Chromium.violations(page) == []
        spa, csp = visit(chromium, "http://immich.test/", settle_ms=500)
        assert " 'strict-dynamic' 'sha256-" in script_src(csp), csp
        assert spa.evaluate("document.documentElement.dataset.theme") == "dark"
        loaded = spa.evaluate("performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)")
        assert "/_app/immutable/app.js" in loaded, loaded
        assert Chromium.violations(spa) == []
        assert not [line for line in chromium.console if "Content Security Policy" in line], chromium.console
