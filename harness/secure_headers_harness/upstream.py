"""An upstream that answers like Immich's server does, for the header tests (Python standard library only), and
Upstream, which runs it as a child process on a free loopback port.

It sends what Immich sends (X-Powered-By: Express, no-store SPA HTML, immutable assets, media with Range/206,
strong ETags and private caching, a favicon without Content-Type, the mobile discovery JSON, a Socket.IO
WebSocket) plus a few test switches:
  --helmet or request header `X-Upstream-Helmet: on`  also send the CSP/HSTS/X-Frame-Options helmet would
  request header `X-Upstream-Extra: name=value`        add that response header verbatim
  /hostile?many=200&big=65536&dupes=1&untyped=1&hints=1 odd but legal responses (see hostile())
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:
    from . import browser_pages
    from .processes import free_port, require_free, terminate
except ImportError:  # a lone script: the compose files mount it beside browser_pages.py into a Python image
    import browser_pages

HELMET = [
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self' 'unsafe-inline'; object-src 'none'; frame-ancestors 'none'"),
    ("Strict-Transport-Security", "max-age=15552000; includeSubDomains"),
    ("X-Frame-Options", "DENY"),
]
SPA_HTML = b"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Immich</title>
<link rel="modulepreload" href="/_app/immutable/app.js">
<script>document.documentElement.dataset.theme = localStorage.getItem('theme') || 'dark';</script>
</head>
<body><div id="app"></div>
<script type="module">import('/_app/immutable/app.js');</script>
</body></html>
"""
MEDIA_CACHE = "private, max-age=86400, no-transform, stale-while-revalidate=2592000, stale-if-error=2592000"
ICO = bytes([0, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 0, 32, 0]) + bytes(34)
CHUNK = 64 * 1024
MAX_MEDIA = 1 << 30
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ASSET = re.compile(r"^/api/assets/([^/]+)/(original|thumbnail|video/playback)$")
HLS = re.compile(r"^/api/assets/[^/]+/video/stream/[^/]+\.m3u8$")
# Keys of /browser/drop-first already dropped once.
DROPPED: set[str] = set()


PATTERN = bytes(range(251)) * (CHUNK // 251 + 2)


def media_byte_range(start: int, end: int) -> bytes:
    """Body bytes start..end inclusive of a media file whose byte i is i % 251 (sliced, so GiB stream fast)."""
    out = bytearray()
    while start <= end:
        length = min(end - start + 1, CHUNK)
        offset = start % 251
        out += PATTERN[offset:offset + length]
        start += length
    return bytes(out)


class ImmichLike(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BaseHTTP"
    # Head and body go out in separate writes: without this, Nagle's algorithm and the proxy's delayed ACK add
    # 40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    helmet = False
    verbose = False

    def log_message(self, fmt, *args):  # noqa: D102 - quiet unless asked
        if self.verbose:
            super().log_message(fmt, *args)

    # --- dispatch -------------------------------------------------------------------------------------------

    def do_HEAD(self):
        self.handle_any(head=True)

    def do_GET(self):
        self.handle_any(head=False)

    def handle_any(self, head: bool) -> None:
        self.head = head
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        path = url.path
        if path in ("/", "/auth/login", "/photos") or path.startswith("/share/"):
            self.send(200, SPA_HTML, "text/html; charset=utf-8", [("Cache-Control", "no-store")])
        elif path.startswith("/_app/immutable/") and path.endswith(".js"):
            self.send(200, b"export const app = 1;\n", "text/javascript; charset=utf-8",
                      [("Cache-Control", "public,max-age=31536000,immutable")])
        elif path == "/service-worker.js":
            self.send(200, b"self.addEventListener('fetch', () => {});\n", "text/javascript; charset=utf-8",
                      [("Cache-Control", "public, max-age=0")])
        elif path == "/custom.css":
            self.send(200, b"body {}\n", "text/css; charset=utf-8")
        elif match := ASSET.match(path):
            self.media(match.group(1), match.group(2))
        elif HLS.match(path):
            self.send(200, b"#EXTM3U\n#EXT-X-ENDLIST\n", "application/vnd.apple.mpegurl",
                      [("Cache-Control", "no-cache")])
        elif path == "/api/server/ping":
            self.json(200, {"res": "pong"})
        elif path == "/.well-known/immich":
            self.json(200, {"api": {"endpoint": "/api"}})
        elif path == "/favicon.ico":
            self.send(200, ICO, None)
        elif path == "/favicon-wrong.ico":
            self.send(200, ICO, "text/html; charset=utf-8")
        elif path == "/redirect":
            self.send(302, b"", None, [("Location", "/auth/login")])
        elif path == "/api/oauth/mobile-redirect":
            self.send(303, b"", None, [("Location", "app.immich:///oauth-callback?code=abc")])
        elif path == "/no-content":
            self.send(204, b"", None)
        elif path == "/odd-header":
            self.send(200, b"odd\n", "text/plain", [("X-Odd-Bytes", b"\xff\xfe\x80ok")])
        elif path == "/echo-headers":
            self.json(200, {k.lower(): v for k, v in self.headers.items()})
        elif path.startswith("/api/socket.io"):
            self.websocket()
        elif path == "/api/download/archive":
            self.archive()
        elif path == "/hostile":
            self.hostile()
        elif path == "/browser/drop-first" and self.drop_first_time(self.query.get("key", [""])[0]):
            return
        elif (page := browser_pages.page(path, self.query)) is not None:
            status, body, content_type, headers = page
            etag = dict(headers).get("ETag")
            if etag and self.headers.get("If-None-Match") == etag:
                self.send(304, b"", None, [("ETag", etag)])
            else:
                self.send(status, body, content_type, headers)
        else:
            self.json(404, {"message": "Not Found"})

    def drop_first_time(self, key: str) -> bool:
        """Closes the connection without an answer the first time `key` is asked for (a failed fetch)."""
        if key in DROPPED:
            return False
        DROPPED.add(key)
        self.close_connection = True
        return True

    # --- writing --------------------------------------------------------------------------------------------

    def common_headers(self) -> list[tuple[str, str | bytes]]:
        headers: list[tuple[str, str | bytes]] = [("X-Powered-By", "Express")]
        if self.helmet or self.headers.get("X-Upstream-Helmet", "").lower() == "on":
            headers += HELMET
        extra = self.headers.get("X-Upstream-Extra")
        if extra and "=" in extra:
            name, value = extra.split("=", 1)
            headers.append((name.strip(), value.strip()))
        return headers

    def write_head(self, status: int, headers: list[tuple[str, str | bytes]]) -> None:
        """Status line and headers as raw bytes, so a test can send any byte in a value."""
        reason = self.responses.get(status, ("",))[0]
        lines = [f"HTTP/1.1 {status} {reason}".encode(), f"Date: {self.date_time_string()}".encode()]
        for name, value in self.common_headers() + headers:
            raw = value if isinstance(value, bytes) else value.encode("latin-1")
            lines.append(name.encode("latin-1") + b": " + raw)
        self.wfile.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def send(self, status: int, body: bytes, content_type: str | None,
             headers: list[tuple[str, str | bytes]] | None = None) -> None:
        headers = list(headers or [])
        if content_type:
            headers.append(("Content-Type", content_type))
        if status not in (204, 304):
            headers.append(("Content-Length", str(len(body))))
        self.write_head(status, headers)
        if not self.head and status not in (204, 304):
            self.wfile.write(body)

    def json(self, status: int, value: object) -> None:
        self.send(status, json.dumps(value).encode(), "application/json; charset=utf-8")

    def hostile(self) -> None:
        """An HTML page with what a careless or hostile upstream sends, chosen by query: `many` extra headers,
        one value of `big` bytes, security headers twice in mixed case (`dupes`), no Content-Type (`untyped`),
        a 103 Early Hints before the answer (`hints`)."""
        number = lambda name: min(int(self.query.get(name, ["0"])[0] or 0), 1 << 20)  # noqa: E731
        headers: list[tuple[str, str | bytes]] = [(f"X-Extra-{i}", f"value-{i}") for i in range(number("many"))]
        if number("big"):
            headers.append(("X-Big", "b" * number("big")))
        if number("dupes"):
            headers += [("X-Frame-Options", "DENY"), ("x-frame-options", "ALLOWALL"),
                        ("Strict-Transport-Security", "max-age=1"), ("STRICT-TRANSPORT-SECURITY", "max-age=2"),
                        ("X-Content-Type-Options", "nosniff"), ("x-content-type-options", "sniff-please")]
        if number("hints"):
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </custom.css>; rel=preload; as=style\r\n\r\n")
        self.send(200, SPA_HTML, None if number("untyped") else "text/html; charset=utf-8", headers)

    # --- media, downloads, WebSocket --------------------------------------------------------------------------

    def media(self, asset_id: str, kind: str) -> None:
        size = min(int(self.query.get("size", [1 << 20])[0]), MAX_MEDIA)
        etag = f'"{asset_id}-{size}"'
        content_type = "video/mp4" if kind == "video/playback" else "image/jpeg"
        headers = [("ETag", etag), ("Accept-Ranges", "bytes"), ("Cache-Control", MEDIA_CACHE),
                   ("Content-Disposition", f"inline; filename*=UTF-8''{asset_id}.jpg")]
        if self.headers.get("If-None-Match") == etag:
            self.send(304, b"", None, [("ETag", etag), ("Cache-Control", MEDIA_CACHE)])
            return
        start, end, status = 0, size - 1, 200
        requested = self.headers.get("Range")
        if requested:
            parsed = parse_range(requested, size)
            if parsed is None:
                self.send(416, b"", None, [("Content-Range", f"bytes */{size}")])
                return
            start, end, status = parsed[0], parsed[1], 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        headers += [("Content-Type", content_type), ("Content-Length", str(end - start + 1))]
        self.write_head(status, headers)
        if not self.head:
            for offset in range(start, end + 1, CHUNK):
                self.wfile.write(media_byte_range(offset, min(offset + CHUNK - 1, end)))

    def archive(self) -> None:
        size = min(int(self.query.get("size", [10 << 20])[0]), MAX_MEDIA)
        self.write_head(200, [("Content-Type", "application/zip"), ("Cache-Control", "private"),
                              ("Transfer-Encoding", "chunked")])
        if self.head:
            return
        for offset in range(0, size, CHUNK):
            chunk = media_byte_range(offset, min(offset + CHUNK, size) - 1)
            self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def websocket(self) -> None:
        key = self.headers.get("Sec-WebSocket-Key")
        if self.headers.get("Upgrade", "").lower() != "websocket" or not key:
            self.json(400, {"message": "websocket transport only"})
            return
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.write_head(101, [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)])
        self.wfile.flush()
        self.close_connection = True
        while (frame := read_frame(self.rfile)) is not None:
            opcode, payload = frame
            if opcode == 0x8:
                self.wfile.write(encode_frame(0x8, payload[:2]))
                return
            if opcode in (0x1, 0x2):
                self.wfile.write(encode_frame(opcode, payload))
            elif opcode == 0x9:
                self.wfile.write(encode_frame(0xA, payload))


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=` range as (start, end) inclusive, or None when unsatisfiable."""
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(size - int(last), 0), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    return (start, end) if start <= end < size else None


def read_frame(stream) -> tuple[int, bytes] | None:
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", stream.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", stream.read(8))[0]
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = stream.read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def encode_frame(opcode: int, payload: bytes) -> bytes:
    length = len(payload)
    if length < 126:
        head = bytes([0x80 | opcode, length])
    elif length < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + struct.pack("!H", length)
    else:
        head = bytes([0x80 | opcode, 127]) + struct.pack("!Q", length)
    return head + payload


@dataclass
class Upstream:
    """This server as a child process on a free loopback port."""

    port: int = field(default_factory=lambda: free_port())
    helmet: bool = False
    process: subprocess.Popen | None = None

    def start(self) -> "Upstream":
        require_free(self.port)
        args = [sys.executable, "-m", __spec__.name, "--host", "127.0.0.1", "--port", str(self.port)]
        if self.helmet:
            args.append("--helmet")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline() if self.process.stdout else ""
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"upstream did not start: {line!r}")
        return self

    def stop(self) -> None:
        terminate(self.process)

    def __enter__(self) -> "Upstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--helmet", action="store_true", help="send helmet's headers on every response")
    parser.add_argument("--verbose", action="store_true", help="log each request")
    args = parser.parse_args()
    ImmichLike.helmet, ImmichLike.verbose = args.helmet, args.verbose
    server = ThreadingHTTPServer((args.host, args.port), ImmichLike)
    server.daemon_threads = True
    print(f"upstream listening on {args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
