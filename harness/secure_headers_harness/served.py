"""A tiny JSON server on loopback in a thread: stands in for Pangolin's API (Traefik's HTTP provider) and for
badger (a forwardAuth that always says yes), in tests/e2e/test_pangolin.py and bench/traefik_scale.py."""

from __future__ import annotations

import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class QuietServer(ThreadingHTTPServer):
    """A threaded loopback server that does not print a traceback each time a load generator hangs up."""

    daemon_threads = True
    request_queue_size = 512

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def serve_in_thread(handler: type[BaseHTTPRequestHandler]) -> QuietServer:
    """`handler` on a free loopback port, served from a daemon thread."""
    server = QuietServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Served:
    """Answers every GET with `reply(path)` -> (status, JSON body); counts requests."""

    def __init__(self, reply: Callable[[str], tuple[int, bytes]]):
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                served.requests += 1
                status, body = reply(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.server = serve_in_thread(Handler)
        self.port = self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
