"""The seed's own check: the ZAP baseline's passive header rules (zap_rules.py) over every kind of response the
Immich-like upstream sends, through real Envoy and real Traefik with the demo policy (policies/immich.json; on
Traefik with the generated companion middleware), in each request style a browser, a scanner or curl uses, over
https and http. No finding may remain on either host, and both hosts' final headers agree."""

from __future__ import annotations

import pytest
from secure_headers_harness.http_client import request
from test_policy import DEMO_POLICY
from zap_rules import scan

# (what, path, the Sec-Fetch-Dest and Accept a browser sends for it, extra request headers)
URLS = [
    ("page", "/", "document", "text/html,application/xhtml+xml", {}),
    ("login page", "/auth/login", "document", "text/html,application/xhtml+xml", {}),
    ("script asset", "/_app/immutable/app.js", "script", "*/*", {}),
    ("stylesheet", "/custom.css", "style", "text/css,*/*;q=0.1", {}),
    ("service worker", "/service-worker.js", "serviceworker", "*/*", {}),
    ("discovery", "/.well-known/immich", "empty", "application/json", {}),
    ("API", "/api/server/ping", "empty", "application/json", {}),
    ("thumbnail", "/api/assets/abc/thumbnail", "image", "image/avif,image/webp,*/*", {}),
    ("video (Range)", "/api/assets/abc/video/playback", "video", "*/*", {"Range": "bytes=0-1023"}),
    ("favicon", "/favicon.ico", "image", "image/avif,image/webp,*/*", {}),
]
STYLES = ["browser", "accept-any", "no-accept", "head"]
# Header lines that say nothing about the policy and may differ between two proxies.
TRANSPORT = {"date", "content-length", "transfer-encoding", "connection", "keep-alive"}


def style_request(style: str, dest: str, accept: str, extra: dict[str, str]) -> tuple[str, dict[str, str]]:
    if style == "browser":
        return "GET", {"Sec-Fetch-Dest": dest, "Sec-Fetch-Mode": "navigate" if dest == "document" else "no-cors",
                       "Accept": accept, **extra}
    if style == "accept-any":
        return "GET", {"Accept": "*/*", **extra}
    return ("HEAD" if style == "head" else "GET"), dict(extra)


def scan_all(get) -> dict[tuple[str, str, str], tuple[list, dict]]:
    """(url, style, scheme) -> (findings, final headers without transport lines)."""
    results = {}
    for what, path, dest, accept, extra in URLS:
        for style in STYLES:
            method, headers = style_request(style, dest, accept, extra)
            for scheme in ("https", "http"):
                reply = get(path, method=method, headers=headers, https=scheme == "https")
                assert reply.status in (200, 206), (what, style, scheme, reply.status)
                final = {}
                for name, value in reply.headers:
                    if name.lower() not in TRANSPORT:
                        final.setdefault(name.lower(), []).append(value)
                results[(what, style, scheme)] = (scan(reply.status, reply.headers, scheme == "https"), final)
    return results


def traefik_streams(what: str, style: str, scheme: str) -> bool:
    _, path, dest, _, extra = next(u for u in URLS if u[0] == what)
    sub_resource = style == "browser" and dest in ("script", "style", "image", "video")
    repaired = path.endswith(".ico")  # held: the policy repairs its Content-Type
    return path.startswith("/api/") or "Range" in extra or (sub_resource and not repaired)


@pytest.fixture(scope="module")
def scans(proxy_for):
    return {host: scan_all(proxy_for(host, DEMO_POLICY).get) for host in ("envoy", "traefik")}


@pytest.mark.parametrize("host", ["envoy", "traefik"])
def test_no_seed_finding_remains(scans, host):
    remaining = [f"{key}: {finding}" for key, (findings, _) in scans[host].items() for finding in findings]
    assert not remaining, "\n".join(remaining)
    for key, (_, final) in scans[host].items():
        for name, values in final.items():
            assert len(values) == 1, f"{host} {key}: {name} arrives {len(values)} times"


def test_both_hosts_final_headers_agree(scans):
    """One table for both hosts. The one difference is asserted, not skipped: what Traefik streams (/api/, the
    immich preset's streaming_paths; a Range request; a browser's fetch of a script, style, image or video)
    lacks the CSP that keep_upstream writes only when the upstream sends none, which needs the response
    (README, "Traefik"). No browser applies a CSP to those responses."""
    differences = []
    for key, (_, envoy) in scans["envoy"].items():
        traefik = dict(scans["traefik"][key][1])
        if traefik_streams(*key):
            assert "content-security-policy" in envoy, key
            assert "content-security-policy" not in traefik, f"{key}: Traefik streamed it, or should it?"
            envoy = {n: v for n, v in envoy.items() if n != "content-security-policy"}
        if envoy != traefik:
            names = sorted(set(envoy) | set(traefik))
            differences += [f"{key} {n}: envoy {envoy.get(n)} traefik {traefik.get(n)}"
                            for n in names if envoy.get(n) != traefik.get(n)]
    assert not differences, "\n".join(differences)


def test_the_rules_find_the_seeds_findings_on_the_bare_upstream(upstream):
    """The same scan straight at the upstream (plain http) finds what the seed reported, so the rules can fail."""
    results = scan_all(lambda path, https, **kw: request(upstream.port, path, **kw))
    found = {(key[0], finding.rule) for key, (findings, _) in results.items() if key[2] == "http"
             for finding in findings}
    for expected in [("page", 10038), ("page", 10020), ("page", 10021), ("page", 10037), ("page", 10063),
                     ("script asset", 10063), ("API", 10037), ("thumbnail", 10021)]:
        assert expected in found, expected
