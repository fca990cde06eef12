"""Envoy hashing a document's inline scripts, on both of its paths, against an upstream that counts what it is
asked: in-stream (allow_on_headers_stop_iteration set: the response headers wait while the filter reads the body)
and the fetch path (the option unset, as Istio's WasmPlugin and Envoy Gateway configure Envoy today: the filter
fetches the document itself and answers from that fetch). Either way the upstream is asked once per document,
with the client's own request, and every response shape gets what the rules say with nothing lost or doubled."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from secure_headers_harness.envoy import (Envoy, document_path, with_default_buffer_limit,
                                          without_headers_stop_iteration)
from secure_headers_harness.http_client import request
from secure_headers_harness.paths import ENVOY_DYNAMIC
from secure_headers_harness.processes import free_port

CAP = 4096
POLICY = json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                "inline_script_hashes": {"max_body_bytes": CAP}}]})
DOCUMENT = {"Sec-Fetch-Dest": "document", "Accept": "text/html,application/xhtml+xml"}
SCRIPTS = ("window.first = 1;", "window.second = 2;")
STATIC = "script-src 'self' 'unsafe-inline'"


def page(size: int | None = None) -> bytes:
    """An HTML document with two inline scripts, padded with a comment to exactly `size` bytes."""
    head = f'<!doctype html><html><head><meta charset="utf-8"><script>{SCRIPTS[0]}</script></head><body>'
    tail = f"<script>{SCRIPTS[1]}</script></body></html>"
    body = (head + tail).encode()
    if size is not None:
        padding = size - len(body) - len("<!---->")
        assert padding >= 0
        body = (head + "<!--" + "x" * padding + "-->" + tail).encode()
        assert len(body) == size
    return body


def hashes() -> set[str]:
    return {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in SCRIPTS}


class CountingUpstream(BaseHTTPRequestHandler):
    """/doc, shaped by its query: size=N, status=404|304, chunked=1 (in three chunks, or onechunk=1, or lead=N: N
    bytes, a pause, then the rest in one write),
    gzip=1 (whatever Accept-Encoding says), stall=1 (half the body, a pause, the rest). Every request is recorded with its method and headers."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str]]] = []
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.answer(head=False)

    def do_HEAD(self):
        self.answer(head=True)

    def answer(self, head: bool) -> None:
        with self.lock:
            self.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        status = int(query.get("status", "200"))
        body = page(int(query["size"]) if "size" in query else None)
        headers = [("Content-Type", "text/html; charset=utf-8"), ("ETag", '"v1"'), ("Vary", "Accept-Encoding"),
                   ("Set-Cookie", "session=abc; HttpOnly"), ("Set-Cookie", "theme=dark"), ("X-Powered-By", "Express")]
        if query.get("gzip"):
            body = gzip.compress(body, mtime=0)
            headers.append(("Content-Encoding", "gzip"))
        if status == 304:
            body = b""
        chunked = bool(query.get("chunked")) and status != 304
        headers.append(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body))))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if head or status == 304:
            return
        if chunked:
            third = max(1, len(body) // 3)
            lead = int(query.get("lead", "0"))
            parts = ([body[:lead], body[lead:]] if lead else [body] if query.get("onechunk")
                     else [body[:third], body[third:2 * third], body[2 * third:]])
            for i, part in enumerate(parts):
                if lead and i == 1:
                    # The filter holds the lead; the rest then waits in the socket, so Envoy reads as much of it
                    # at once as its upstream buffer takes (what a loaded machine does to any large chunk).
                    time.sleep(0.3)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif query.get("stall"):
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(1.5)
            try:
                self.wfile.write(body[len(body) // 2:])
            except OSError:
                pass
        else:
            self.wfile.write(body)

    @classmethod
    def asked(cls, tag: str) -> list[tuple[str, str, dict[str, str]]]:
        with cls.lock:
            return [entry for entry in cls.seen if f"tag={tag}" in entry[1]]


@pytest.fixture(scope="module")
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), CountingUpstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


PATHS = {"in-stream": [], "fetch": [without_headers_stop_iteration]}


@pytest.fixture(scope="module", params=list(PATHS))
def envoy(request, upstream):
    server = Envoy(POLICY, upstream, edits=PATHS[request.param]).start()
    # The first held document tells the module which path it is on.
    request_document(server, "/doc?tag=probe")
    deadline = time.monotonic() + 5
    while document_path(server.log()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert document_path(server.log()) == request.param, server.log()[-2000:]
    yield request.param, server
    server.stop()


def request_document(server, path: str, headers: dict[str, str] | None = None, method: str = "GET"):
    return request(server.ports["http"], path, method=method, headers={**DOCUMENT, **(headers or {})})


def counter(server, name: str, prefix: str = "wasmcustom") -> int:
    with urllib.request.urlopen(f"{server.admin}/stats?filter=^{prefix}\\.secure_headers\\.{name}$") as r:
        text = r.read().decode()
    return sum(int(line.rsplit(": ", 1)[1]) for line in text.splitlines() if ": " in line)


def script_src(csp: str) -> set[str]:
    directive = next(d.strip() for d in csp.split(";") if d.strip().startswith("script-src "))
    return set(directive.split()[1:])


def test_the_upstream_is_asked_once_with_the_clients_own_request(envoy):
    path, server = envoy
    tag = f"once-{path}"
    client = {"Cookie": "s=1", "User-Agent": "e2e/1", "X-Client": "yes", "Accept-Encoding": "gzip, br",
              "If-None-Match": '"v1"'}
    reply = request_document(server, f"/doc?tag={tag}", client)
    asked = CountingUpstream.asked(tag)
    assert len(asked) == 1, asked
    method, url, seen = asked[0]
    assert (method, url) == ("GET", f"/doc?tag={tag}")
    sent = {name.lower(): value for name, value in {**DOCUMENT, **client}.items()}
    for name in ("cookie", "user-agent", "x-client", "sec-fetch-dest", "accept"):
        assert seen[name] == sent[name], name
    # The two edits of a hashed document's request: the body as sent, and never a 304.
    assert seen["accept-encoding"] == "identity"
    assert "if-none-match" not in seen
    assert reply.status == 200 and reply.body == page()
    assert script_src(reply.one("content-security-policy")) >= hashes()
    assert "'unsafe-inline'" not in script_src(reply.one("content-security-policy"))
    assert [v.decode() for v in reply.values("set-cookie")] == ["session=abc; HttpOnly", "theme=dark"]
    assert (reply.one("etag"), reply.one("vary")) == ('"v1"', "Accept-Encoding")
    assert reply.values("x-powered-by") == [], "the rule's removals applied"
    assert len(reply.values("content-security-policy")) == 1


# (query, status, hashed, fallback counter): what each response shape must get.
SHAPES = {
    "content-length": ("", 200, True, None),
    "chunked": ("&chunked=1", 200, True, None),
    "at-the-cap": (f"&size={CAP}", 200, True, None),
    "over-the-cap": (f"&size={CAP + 1}", 200, False, "too_large"),
    "over-the-cap-chunked": (f"&size={CAP + 1}&chunked=1", 200, False, "too_large"),
    "gzip-ignoring-accept-encoding": ("&gzip=1", 200, False, "compressed"),
    "not-found-page": ("&status=404", 404, False, None),
    "not-modified": ("&status=304", 304, False, None),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_response_shape_gets_what_the_rules_say(envoy, shape):
    path, server = envoy
    query, status, hashed, fallback = SHAPES[shape]
    tag = f"{shape}-{path}"
    before = counter(server, f"inline_scripts.fallback.{fallback}") if fallback else 0
    reply = request_document(server, f"/doc?tag={tag}{query}")
    assert len(CountingUpstream.asked(tag)) == 1, "asked once"
    assert reply.status == status
    expected = b"" if status == 304 else page(int(query.split("size=")[1].split("&")[0]) if "size=" in query else None)
    if "gzip" in query:
        expected = gzip.compress(expected, mtime=0)
        assert reply.one("content-encoding") == "gzip"
    assert reply.body == expected, "the body as the upstream sent it"
    csp = reply.one("content-security-policy")
    assert len(reply.values("content-security-policy")) == 1
    if hashed:
        assert script_src(csp) >= hashes() and "'unsafe-inline'" not in script_src(csp), csp
    else:
        assert STATIC in csp, csp
    assert reply.one("x-content-type-options") == "nosniff", "the rest of the policy"
    assert [v.decode() for v in reply.values("set-cookie")] == ["session=abc; HttpOnly", "theme=dark"]
    if fallback:
        deadline = time.monotonic() + 5
        while counter(server, f"inline_scripts.fallback.{fallback}") <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counter(server, f"inline_scripts.fallback.{fallback}") == before + 1


def test_in_stream_every_client_gets_the_hashed_csp(envoy):
    """curl and scanners send no Fetch Metadata and `Accept: */*`: in-stream costs no second request, so their GET
    is hashed like a browser's. A HEAD has no body to hash: the static CSP and the rest of the policy."""
    path, server = envoy
    if path == "fetch":
        reply = request(server.ports["http"], "/doc?tag=curl-fetch", headers={"Accept": "*/*"})
        assert STATIC in reply.one("content-security-policy"), "the fetch path fetches navigations only"
        return
    reply = request(server.ports["http"], "/doc?tag=curl", headers={"Accept": "*/*"})
    assert reply.body == page() and script_src(reply.one("content-security-policy")) >= hashes()
    head = request(server.ports["http"], "/doc?tag=head", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert STATIC in head.one("content-security-policy") and head.one("x-frame-options")


def test_a_client_that_leaves_mid_body_loses_nothing_for_the_next(envoy):
    path, server = envoy
    tag = f"leaves-{path}"
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=5) as s:
        s.sendall(f"GET /doc?tag={tag}&stall=1&size=3000 HTTP/1.1\r\nHost: immich.test\r\n"
                  "Sec-Fetch-Dest: document\r\n\r\n".encode())
        time.sleep(0.3)
    time.sleep(1.6)
    assert len(CountingUpstream.asked(tag)) == 1
    after = request_document(server, f"/doc?tag=after-{path}")
    assert after.status == 200 and after.body == page()
    assert script_src(after.one("content-security-policy")) >= hashes()
    assert server.process.poll() is None, "Envoy is still up"


@pytest.mark.parametrize("path", list(PATHS))
def test_the_first_held_document_tells_the_path_and_loses_nothing(upstream, path):
    """Without the option the first held document waits for a body that never reaches the filter (200 ms), then
    goes on with the static CSP, counted; with it, the first document is already hashed in-stream."""
    server = Envoy(POLICY, upstream, edits=PATHS[path]).start()
    try:
        tag = f"first-{path}"
        reply = request_document(server, f"/doc?tag={tag}")
        assert reply.status == 200 and reply.body == page()
        assert len(CountingUpstream.asked(tag)) == 1
        lines = [line for line in server.log().splitlines() if "inline_script_hashes:" in line]
        assert any("allow_on_headers_stop_iteration: true, else fetched a second time" in line for line in lines)
        assert document_path(server.log()) == path, lines
        csp = reply.one("content-security-policy")
        if path == "in-stream":
            assert script_src(csp) >= hashes()
            assert any("in-stream (a held document's body reached the filter" in line for line in lines)
        else:
            assert STATIC in csp
            assert counter(server, "inline_scripts.fallback.not_held") == 1
            assert any("fetch path (a held document's body did not reach the filter in 200 ms" in line
                       for line in lines)
            second = request_document(server, f"/doc?tag={tag}-2")
            assert script_src(second.one("content-security-policy")) >= hashes(), "then the fetch path hashes"
    finally:
        server.stop()


LARGE_CAP = json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                   "inline_script_hashes": {"max_body_bytes": 4 << 20}}]})
# (query, hashed): a rule whose cap (4 MiB) is above Envoy's buffer limit (1 MiB by default; envoy.yaml's listeners
# 2 MiB). In-stream the filter holds at most 960 KiB of a declared length and 256 KiB of a chunked body: past that
# Envoy itself would answer 500.
BEYOND_THE_BUFFER = {
    "declared, under the limit": ("size=900000", True),
    "declared, over the limit": ("size=2000000", False),
    "chunked, small": ("size=200000&chunked=1", True),
    "chunked, in three reads": ("size=2000000&chunked=1", False),
    "chunked, in one read": ("size=2000000&chunked=1&onechunk=1", False),
    "chunked, held, then 1.9 MB at once": ("size=2000000&chunked=1&lead=10000", False),
    "chunked, 5 MB": ("size=5000000&chunked=1", False),
}


@pytest.mark.parametrize("build", ["wasm", "native module"])
def test_a_cap_above_envoys_buffer_limit_never_turns_a_document_into_a_500(upstream, build):
    native = {"native_module": ENVOY_DYNAMIC} if build == "native module" else {}
    server = Envoy(LARGE_CAP, upstream, **native).start()
    try:
        for shape, (query, hashed) in BEYOND_THE_BUFFER.items():
            reply = request_document(server, f"/doc?tag=beyond-{build[:4]}-{len(shape)}-{shape[:8]}&{query}")
            size = int(query.split("size=")[1].split("&")[0])
            assert reply.status == 200, (shape, reply.status, reply.body[:100])
            assert reply.body == page(size), shape
            csp = reply.one("content-security-policy")
            assert (script_src(csp) >= hashes()) if hashed else (STATIC in csp), (shape, csp)
        prefix = "dynamicmodulescustom" if native else "wasmcustom"
        too_large = counter(server, "inline_scripts.fallback.too_large", prefix)
        assert too_large == sum(not h for _, h in BEYOND_THE_BUFFER.values())
    finally:
        server.stop()


@pytest.mark.parametrize("build", ["wasm", "native module"])
def test_with_envoys_default_buffer_limit_a_large_read_of_a_held_chunked_document_is_envoys_own_500(upstream, build):
    """What the listeners' 2 MiB in envoy.yaml is for. Envoy adds each read to a held body and checks its limit
    before the filter sees the read, and one read from the upstream can be as large as the cluster's buffer limit
    (1 MiB): with the listener at that same default, no amount a filter holds of a chunked body is safe. The host
    cannot be asked its limit, so the README tells operators to set it; this asserts the host's behaviour, so the
    test says when Envoy changes it."""
    native = {"native_module": ENVOY_DYNAMIC} if build == "native module" else {}
    server = Envoy(LARGE_CAP, upstream, edits=[with_default_buffer_limit], **native).start()
    try:
        query = BEYOND_THE_BUFFER["chunked, held, then 1.9 MB at once"][0]
        reply = request_document(server, f"/doc?tag=default-limit-{build[:4]}&{query}")
        assert (reply.status, reply.body) == (500, b"Internal Server Error")
        assert request_document(server, f"/doc?tag=default-limit-{build[:4]}-small&size=200000").status == 200
    finally:
        server.stop()
