"""What a careless or hostile upstream sends, through both hosts with the demo policy: the response is always
delivered, and the documented headers are applied or deliberately left alone. Where a host itself refuses
something (before the filter sees it), the test says so."""

from __future__ import annotations

import socket
import subprocess

import pytest
from conftest import DOCUMENT
from test_policy import DEMO_POLICY


@pytest.fixture
def demo(proxy_for, host):
    return proxy_for(host, DEMO_POLICY)


def curl(proxy, path: str, *options: str) -> tuple[str, list[tuple[str, str]]]:
    """(status line, headers) of the final response, read with curl (Python's client stops at 100 headers and
    64 KiB lines)."""
    out = subprocess.run(["curl", "-sS", "-D", "-", "-o", "/dev/null", *options, "-H", "Host: immich.test",
                          "-H", "Sec-Fetch-Dest: document", f"http://127.0.0.1:{proxy.server.ports['http']}{path}"],
                         capture_output=True, timeout=30, check=True).stdout.decode("latin-1")
    blocks = [b for b in out.split("\r\n\r\n") if b.strip()]
    lines = blocks[-1].split("\r\n")
    return lines[0], [tuple(part.strip() for part in line.split(":", 1)) for line in lines[1:]]


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name]


def test_two_hundred_upstream_headers(demo, host):
    """Traefik passes 200 headers. Envoy refuses an upstream response with more than 100 headers (its
    max_headers_count default) with its own 502, before any filter sees it; 90 pass."""
    count = 90 if host == "envoy" else 200
    status, headers = curl(demo, f"/hostile?many={count}")
    assert " 200" in status
    assert len([n for n, _ in headers if n.lower().startswith("x-extra-")]) == count
    assert values(headers, "x-content-type-options") == ["nosniff"]
    assert values(headers, "x-powered-by") == []
    if host == "envoy":
        status, headers = curl(demo, "/hostile?many=200")
        assert " 502" in status, "Envoy's own limit"
        assert values(headers, "x-content-type-options") == ["nosniff"], "Envoy's local reply is still covered"


def test_a_64_kib_header_value(demo):
    size = 64 * 1024
    status, headers = curl(demo, f"/hostile?big={size}")
    assert " 200" in status
    assert values(headers, "x-big") == ["b" * size]
    assert values(headers, "x-content-type-options") == ["nosniff"]


def test_duplicate_and_mixed_case_security_headers_end_as_one(demo):
    reply = demo.get("/hostile?dupes=1", https=True, headers=DOCUMENT)
    assert reply.status == 200
    assert reply.values("x-frame-options") == [b"SAMEORIGIN"], "every upstream copy replaced by the policy's"
    assert reply.values("strict-transport-security") == [b"max-age=31536000"]
    assert reply.values("x-content-type-options") == [b"nosniff"]


def test_missing_content_type_gets_headers_but_no_invented_type(demo):
    reply = demo.get("/hostile?untyped=1", headers=DOCUMENT)
    assert reply.status == 200
    assert reply.one("x-content-type-options") == "nosniff"
    assert reply.one("content-security-policy") is not None
    # Cache-Control: the upstream's no-store stays either way; no Content-Type is made up for a page.
    assert reply.one("content-type") in (None, "text/plain; charset=utf-8")


def test_a_103_early_hints_before_the_answer(demo):
    """A 1xx is never touched; the final response gets the policy."""
    status, headers = curl(demo, "/hostile?hints=1")
    assert " 200" in status
    assert values(headers, "x-content-type-options") == ["nosniff"]


def test_a_chunked_response(demo):
    reply = demo.get("/api/download/archive?size=300000")
    assert reply.status == 200 and len(reply.body) == 300000
    assert reply.one("x-content-type-options") == "nosniff"


def http10(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\nHost: immich.test\r\nSec-Fetch-Dest: document\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def test_an_http_1_0_client(demo, host):
    """Traefik serves HTTP/1.0 with the policy's headers. Envoy refuses HTTP/1.0 by default (accept_http_10 is
    off in the shipped config) with a 426 its codec writes before any filter runs, so that reply has none."""
    head = http10(demo.server.ports["http"]).partition(b"\r\n\r\n")[0].lower()
    if host == "envoy":
        assert b" 426 " in head.split(b"\r\n")[0], head
        assert b"x-content-type-options" not in head
    else:
        assert b" 200 " in head.split(b"\r\n")[0], head
        assert b"x-content-type-options: nosniff" in head


def test_an_http_2_client(demo):
    out = subprocess.run(["curl", "-sS", "-i", "--http2-prior-knowledge", "-H", "Host: immich.test",
                          "-H", "Sec-Fetch-Dest: document", f"http://127.0.0.1:{demo.server.ports['http']}/"],
                         capture_output=True, timeout=30, check=True).stdout.decode("latin-1").lower()
    assert out.startswith("http/2 200"), out[:200]
    assert "x-content-type-options: nosniff" in out
    assert "x-powered-by" not in out
