"""The CSP report collector and observe mode through real Envoy and real Traefik. Envoy shows counters as
`wasmcustom.secure_headers.*` stats; Traefik (http-wasm has no metrics ABI) logs each counter when it reaches
1, 2, 4, 8... per plugin instance, so the Traefik checks read those lines."""

from __future__ import annotations

import json
import re
import time
import urllib.request

import pytest
from conftest import ENVOY_DYNAMIC_HOST, DOCUMENT

HOSTS_RULE = {"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"]}
COLLECTING = json.dumps({"csp_reports": {"max_body_bytes": 4096}, "rules": [HOSTS_RULE]})
OBSERVING = json.dumps({"rules": [dict(HOSTS_RULE, mode="observe")]})
PATH = "/.well-known/csp-report"
REPORT = json.dumps({"csp-report": {
    "document-uri": "http://immich.test/photos?key=SECRET", "effective-directive": "img-src",
    "violated-directive": "img-src", "blocked-uri": "https://evil.example/x.png", "disposition": "report",
    "original-policy": "img-src 'self'"}}).encode()


def post(proxy, body: bytes, content_type: str = "application/csp-report", path: str = PATH, **headers):
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **headers}
    return proxy.get(path, method="POST", headers=headers, body=body)


def counter_moved(proxy, name: str, at_least: int = 1, timeout: float = 5) -> None:
    """Waits until the counter `name` reaches `at_least` (Envoy) or is logged (Traefik, per instance)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        if proxy.is_envoy:
            # Envoy's prefix for a Wasm module's counters, or for a dynamic module's.
            prefix = "dynamicmodulescustom" if proxy.name == ENVOY_DYNAMIC_HOST else "wasmcustom"
            url = f"{proxy.server.admin}/stats?filter=^{prefix}\\.secure_headers\\.{re.escape(name)}$"
            with urllib.request.urlopen(url) as r:
                seen = r.read().decode()
            values = [int(v) for v in re.findall(r": (\d+)", seen)]
            if values and sum(values) >= at_least:
                return
        else:
            seen = "\n".join(line for line in proxy.server.log().splitlines() if f"secure-headers: {name} = " in line)
            if seen:
                return
        time.sleep(0.1)
    raise AssertionError(f"{name} did not reach {at_least} on {proxy.name}: {seen!r}")


@pytest.fixture
def collecting(proxy_for, host):
    return proxy_for(host, COLLECTING)


def upstream_requests(proxy) -> int | None:
    """Requests Envoy sent to the upstream cluster (Traefik keeps no such count: its plugin answers without
    calling the next handler at all)."""
    if proxy.name != "envoy":
        return None
    with urllib.request.urlopen(f"{proxy.server.admin}/stats?filter=^cluster\\.immich\\.upstream_rq_total$") as r:
        return int(r.read().decode().rsplit(":", 1)[1])


def test_a_report_is_answered_by_the_filter_counted_and_logged(collecting):
    before = upstream_requests(collecting)
    reply = post(collecting, REPORT)
    assert reply.status == 204, reply
    assert reply.body == b""
    # The upstream answers this path with a JSON 404 and X-Powered-By; neither is here.
    assert reply.one("x-powered-by") is None and reply.one("content-type") is None
    counter_moved(collecting, "csp_reports.accepted")
    counter_moved(collecting, "csp_reports.directive.img-src")
    counter_moved(collecting, "csp_reports.blocked.https___evil_example")
    lines = [l for l in collecting.server.log().splitlines() if "csp-report directive=img-src" in l]
    assert lines and "blocked=https://evil.example document=/photos disposition=report" in lines[-1], lines
    assert "SECRET" not in collecting.server.log()
    for _ in range(10):
        assert post(collecting, REPORT).status == 204
    assert upstream_requests(collecting) == before, "a report never reaches the upstream"


def test_a_reporting_api_batch_is_accepted(collecting):
    batch = json.dumps([{"type": "csp-violation", "age": 0, "url": "http://immich.test/",
                         "body": {"documentURL": "http://immich.test/", "effectiveDirective": "script-src-elem",
                                  "blockedURL": "inline", "disposition": "enforce"}}]).encode()
    assert post(collecting, batch, "application/reports+json").status == 204
    counter_moved(collecting, "csp_reports.directive.script-src-elem")


@pytest.mark.parametrize("case, status, counter", [
    ("get", 405, "csp_reports.rejected.method"),
    ("text/plain", 415, "csp_reports.rejected.media_type"),
    ("declared too large", 413, "csp_reports.rejected.too_large"),
    ("chunked too large", 413, "csp_reports.rejected.too_large"),
    ("not json", 400, "csp_reports.rejected.malformed"),
    ("wrong shape", 400, "csp_reports.rejected.malformed"),
])
def test_hostile_or_wrong_requests_are_refused_and_counted(collecting, case, status, counter):
    big = b"x" * 5000
    if case == "get":
        reply = collecting.get(PATH)
        assert reply.one("allow") == "POST"
    elif case == "text/plain":
        reply = post(collecting, REPORT, "text/plain")
    elif case == "declared too large":
        reply = post(collecting, big)
    elif case == "chunked too large":
        chunks = b"".join(b"%x\r\n%s\r\n" % (1000, big[:1000]) for _ in range(5)) + b"0\r\n\r\n"
        reply = collecting.get(PATH, method="POST", body=chunks, headers={
            "Content-Type": "application/csp-report", "Transfer-Encoding": "chunked"})
    elif case == "not json":
        reply = post(collecting, b"<script>alert(1)</script>")
    else:
        reply = post(collecting, b'{"csp-report": "\\r\\nSet-Cookie: a=b"}')
    assert reply.status == status, reply
    assert reply.one("set-cookie") is None
    assert b"alert" not in reply.body and b"Set-Cookie" not in reply.body
    counter_moved(collecting, counter)
    # The route keeps serving.
    assert collecting.get("/", headers=DOCUMENT).status == 200


@pytest.mark.parametrize("shape, body", [
    ("127 nested lists", b"[" * 127 + b"]" * 127),
    ("127 nested objects", b'{"a":' * 127 + b"1" + b"}" * 127),
    ("3000 unclosed lists", b"[" * 3000),
])
def test_deeply_nested_reports_are_refused_without_harm(collecting, shape, body):
    """The collector parses what any client posts. serde_json stops at 128 levels; up to there its parser recurses
    on the Wasm modules' 64 KiB stack, which must hold (a trap would take the VM down): the report is refused as
    malformed, and the next report and the route are served."""
    reply = post(collecting, body)
    assert reply.status == 400, (shape, reply)
    counter_moved(collecting, "csp_reports.rejected.malformed")
    assert post(collecting, REPORT).status == 204
    assert collecting.get("/", headers=DOCUMENT).status == 200


def test_the_policy_points_the_csp_at_the_collector(collecting):
    csp = collecting.get("/", headers=DOCUMENT).one("content-security-policy")
    assert csp and csp.endswith("; report-uri /.well-known/csp-report"), csp


@pytest.fixture
def observing(proxy_for, host):
    return proxy_for(host, OBSERVING)


def test_observe_mode_changes_nothing_and_counts_what_it_would_change(observing, upstream, proxy_for, host):
    page = observing.get("/", headers=DOCUMENT)
    assert page.status == 200
    for name in ("content-security-policy", "x-frame-options", "permissions-policy", "x-content-type-options"):
        assert page.one(name) is None, name
    assert page.one("x-powered-by") == "Express", "observed, not removed"
    counter_moved(observing, "observe.would_add.content-security-policy")
    counter_moved(observing, "observe.would_remove.x-powered-by")


def test_observe_mode_on_streamed_responses(proxy_for, host):
    """Envoy observes every response. Traefik lets a plugin read response headers only from a response it
    buffered (reading a streamed one panics inside Traefik), so on Traefik only held responses (documents) are
    observed and a streamed /api/ response is neither changed nor counted."""
    policy = json.dumps({"rules": [dict(HOSTS_RULE, name="api-observer", mode="observe")]})
    proxy = proxy_for(host, policy)
    reply = proxy.get("/api/server/ping")
    assert reply.status == 200 and reply.one("x-content-type-options") is None
    assert reply.one("x-powered-by") == "Express"
    if host == "envoy":
        counter_moved(proxy, "observe.would_add.x-content-type-options")
        counter_moved(proxy, "observe.would_remove.x-powered-by")
    else:
        time.sleep(1)
        assert "observe." not in proxy.server.log()
        assert proxy.get("/", headers=DOCUMENT).status == 200
        counter_moved(proxy, "observe.would_add.x-content-type-options")
