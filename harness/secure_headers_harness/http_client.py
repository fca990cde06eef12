"""A small HTTP/1.1 client for the demo and the tests that keeps header values as the exact bytes sent."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass

from .paths import CERTS


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, bytes]]
    body: bytes

    def values(self, name: str) -> list[bytes]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def one(self, name: str) -> str | None:
        """The single value of `name` (None when absent); fails when the header appears twice."""
        values = self.values(name)
        assert len(values) <= 1, f"{name} appears {len(values)} times: {values}"
        return values[0].decode("latin-1") if values else None


def request(port: int, path: str, *, method: str = "GET", host: str = "immich.test", https: bool = False,
            headers: dict[str, str] | None = None, body: bytes | None = None) -> Reply:
    """One HTTP/1.1 exchange; header values come back as the raw bytes on the wire."""
    if https:
        context = ssl.create_default_context(cafile=str(CERTS / "ca.crt"))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        body = response.read()
        # http.client decodes header lines as latin-1, so encoding back gives the exact bytes.
        raw = [(n, v.encode("latin-1")) for n, v in response.getheaders()]
        return Reply(response.status, raw, body)
    finally:
        conn.close()
