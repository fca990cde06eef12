"""Traefik's Wasm runtime and the bulk-memory instructions (README, "Traefik's Wasm runtime and bulk memory").

Traefik 3.7 runs guests on wazero v1.8.0, which breaks when a guest grows its memory, calls the host and then runs
memory.copy or memory.fill: the first hashed document bigger than the guest's free heap crashed the plugin instance
("out of bounds memory access"), or Traefik itself ("fatal error: unsafe.Slice: len out of range"). Rust's
allocator grows memory and its memcpy is memory.copy, so any allocation in a request could meet it. The Traefik
builds are therefore lowered to plain loads and stores by Binaryen (Makefile, WASM_OPT_PASSES_http-wasm); the Envoy
build, on V8, keeps the instructions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from secure_headers_harness.http_client import request
from secure_headers_harness.paths import HTTP_WASM_DIR, PROXY_WASM, ROOT, work_dir
from secure_headers_harness.served import serve_in_thread
from secure_headers_harness.traefik import Traefik

BINARYEN = ROOT / "tools" / "binaryen" / "node_modules" / "binaryen" / "bin"
GUEST = Path(__file__).with_name("guests") / "grow_call_fill.wat"
TRAP_HTTP_WASM = ROOT / "dist" / "trap-http-wasm" / "secure_headers.wasm"
POLICY = json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                "inline_script_hashes": {}}]})
DOCUMENT = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}


def binaryen(tool: str, *args: str) -> str:
    return subprocess.run(["node", str(BINARYEN / tool), *args], check=True, capture_output=True, text=True).stdout


def bulk_memory_instructions(module: Path) -> int:
    """memory.copy and memory.fill in the module, as Binaryen's disassembler prints them."""
    text = binaryen("wasm-dis", str(module))
    return text.count("memory.copy") + text.count("memory.fill")


def guest_folder(wat: str, name: str) -> Path:
    """A plugin folder whose module is `wat` (assembled by Binaryen), under the plugin's manifest."""
    folder = work_dir(name)
    source = folder / "guest.wat"
    source.write_text(wat)
    binaryen("wasm-as", "--enable-bulk-memory", str(source), "-o", str(folder / "secure_headers.wasm"))
    shutil.copy(HTTP_WASM_DIR / ".traefik.yml", folder)
    return folder


def test_traefik_dies_on_memory_fill_after_a_grow_and_a_host_call(built_modules, upstream):
    """What the host cannot do, asserted: if this starts passing, Traefik's wazero was fixed (see the module's
    docstring) and the lowering can be reconsidered."""
    crashing = Traefik(POLICY, upstream.port, plugin_dir=guest_folder(GUEST.read_text(), "bulk-fill"),
                       companion=False)
    # Corrupted memory fails in more than one way. Usually Traefik dies with Go's "fatal error" (exit status 2);
    # under load it has also died with nothing more in its log, or stayed up without the router ever answering.
    # What holds every time: the guest is never served.
    with pytest.raises(RuntimeError, match="exited|not answering") as failed:
        crashing.start(timeout=15)
    crashing.stop()
    code, log = crashing.process.returncode, crashing.log()
    if "exited" in str(failed.value):
        assert code != 0, log[-2000:]
        assert "fatal error" in log or code < 0 or code == 2, f"exit {code}: {log[-2000:]}"


def test_the_same_guest_with_a_plain_store_is_served(built_modules, upstream):
    """The control: the same grow and host call, then an i32.store instead of memory.fill."""
    wat = GUEST.read_text().replace("(memory.fill (i32.const 1024) (i32.const 1) (i32.const 4096))",
                                    "(i32.store (i32.const 1024) (i32.const 1))")
    assert "(memory.fill" not in wat and "(i32.store" in wat
    with Traefik(POLICY, upstream.port, plugin_dir=guest_folder(wat, "bulk-store"), companion=False) as served:
        assert request(served.ports["http"], "/api/server/ping", host="immich.test").status == 200


@pytest.mark.parametrize("module, expected", [(HTTP_WASM_DIR / "secure_headers.wasm", "none"),
                                              (TRAP_HTTP_WASM, "none"), (PROXY_WASM, "some")])
def test_only_the_envoy_build_keeps_bulk_memory(built_modules, module, expected):
    if not module.exists():
        pytest.fail(f"{module} is missing: run `make e2e`")
    found = bulk_memory_instructions(module)
    assert (found == 0) == (expected == "none"), f"{module}: {found} memory.copy/memory.fill"


class Documents(BaseHTTPRequestHandler):
    """/doc/N: an HTML document of about N KiB with two inline scripts (text between them); anything else (the
    harness's readiness probe) a small JSON answer."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/doc/"):
            filler = "<p>" + "x" * 1000 + "</p>\n"
            body = ("<!doctype html><html><head><script>window.a = 1;</script></head><body>"
                    + filler * int(self.path.removeprefix("/doc/")) + "<script>window.b = 2;</script></body></html>")
            content_type = "text/html; charset=utf-8"
        else:
            body, content_type = '{"res":"pong"}', "application/json"
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_documents_that_grow_the_plugin_memory_are_hashed(built_modules):
    """A fresh instance, then documents of growing size: each grows the guest's memory before it is hashed (the
    first of them crashed the instance before the lowering), and each arrives whole with its two hashes."""
    documents = serve_in_thread(Documents)
    try:
        with Traefik(POLICY, documents.server_address[1]) as traefik:
            for kib in (3, 40, 300, 900):
                direct = request(documents.server_address[1], f"/doc/{kib}")
                through = request(traefik.ports["http"], f"/doc/{kib}", host="immich.test", headers=DOCUMENT)
                assert through.status == 200 and through.body == direct.body, kib
                assert through.one("content-security-policy").count("'sha256-") == 2, kib
            assert "wasm error" not in traefik.log()
    finally:
        documents.shutdown()
