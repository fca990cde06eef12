"""Browser truth for the inline-script scan: headless Chromium loads every document of tests/inline_script_table.json
through each proxy. Each document's scripts call `ran(name)` (defined by the browser's init script, so the
documents need no script of their own). A document the filter hashes gets a CSP whose script-src lists only the
filter's hashes: every script the table says runs must run and raise no violation, and nothing else may run. A
document the filter refuses gets the static CSP ('unsafe-inline'): what runs there is Chromium's own parse,
which must match the table's `runs` too (so the table, and the Rust tests built on it, say what Chromium does).
Each document is served with its row's Content-Type (UTF-8 HTML unless the row, an encoding case, says otherwise)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

import pytest
from chromium import Chromium, chromium_through
from conftest import DOCUMENT, settled_proxy
from secure_headers_harness.paths import INLINE_SCRIPT_TABLE
from test_reports_and_observe import counter_moved

TABLE = json.loads(INLINE_SCRIPT_TABLE.read_text())
POLICY = json.dumps({"rules": [{"name": "table", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                "inline_script_hashes": {"max_scripts": 64}}]})
STATIC = "script-src 'self' 'unsafe-inline'"


def source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def names(texts: list[str]) -> set[str]:
    """The `ran(...)` names in the script texts that run."""
    return {m for text in texts for m in re.findall(r"""ran\(['"](\w+)['"]\)""", text)}


# The table also runs on the Wasm build's fetch path (Envoy without allow_on_headers_stop_iteration).
ENVOY_FETCH_TOO = True


@pytest.fixture
def proxied_browser(proxy_for, host):
    proxy = settled_proxy(proxy_for, host, POLICY)
    with chromium_through(proxy) as chromium:
        yield proxy, chromium


def test_chromium_runs_exactly_the_table_scripts_through_the_filters_csp(proxied_browser):
    proxy, chromium = proxied_browser
    failures = []
    for case in TABLE:
        path = f"/browser/table/{case['name']}"
        csp = proxy.get(path, headers=DOCUMENT).one("content-security-policy")
        hashed = case["fallback"] is None
        script_src = next(d for d in csp.split("; ") if d.startswith("script-src "))
        if hashed:
            listed = set(re.findall(r"'sha256-[^']+'", script_src))
            if listed != {source(t) for t in case["runs"]} or "'unsafe-inline'" in script_src:
                failures.append(f"{case['name']}: script-src {script_src}")
        elif STATIC not in csp:
            failures.append(f"{case['name']}: expected the static CSP, got {script_src}")
        page = chromium.open(f"http://immich.test{path}")
        time.sleep(0.05)  # module scripts run before load; give late violation events a moment
        ran = set(page.evaluate("window.__ran"))
        blocked = [v for v in Chromium.violations(page) if v["directive"] == "script-src-elem"]
        page.close()
        if ran != names(case["runs"]):
            failures.append(f"{case['name']}: ran {sorted(ran)}, the table says {sorted(names(case['runs']))}")
        # `reported`: scripts Chromium checks against CSP before it decides not to run them.
        if hashed and len(blocked) != case.get("reported", 0):
            failures.append(f"{case['name']}: blocked {blocked}")
    assert not failures, "\n".join(failures)
    counter_moved(proxy, "inline_scripts.fallback.markup")
    counter_moved(proxy, "inline_scripts.fallback.foreign_content")
    counter_moved(proxy, "inline_scripts.fallback.encoding")


def test_an_encoding_only_a_meta_declares(proxied_browser):
    """No charset in the Content-Type: a <meta charset=utf-8> found by the prescan makes the document hashable;
    any other label (ISO-2022-JP turns markup into other characters) gets the static CSP, counted."""
    proxy, chromium = proxied_browser
    utf8 = proxy.get("/browser/meta-charset?label=utf-8", headers=DOCUMENT).one("content-security-policy")
    assert source("ran('meta')") in utf8 and STATIC not in utf8, utf8
    page = chromium.open("http://immich.test/browser/meta-charset?label=utf-8")
    assert page.evaluate("window.__ran") == ["meta"] and Chromium.violations(page) == []
    other = proxy.get("/browser/meta-charset?label=iso-2022-jp", headers=DOCUMENT).one("content-security-policy")
    assert STATIC in other, other
    counter_moved(proxy, "inline_scripts.fallback.encoding")
