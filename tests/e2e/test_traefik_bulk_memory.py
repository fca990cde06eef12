"""Traefik's Wasm runtime and the bulk-memory instructions (README, "Traefik's Wasm runtime and bulk memory").

Traefik 3.7.15 runs guests on wazero v1.8.0 and is built with Go 1.26. wazero's amd64 compiler turns memory.copy
and memory.fill into calls to Go's runtime.memmove and counts on memmove to keep RDX, a register wazero's code keeps
values in across calls (internal/engine/wazevo/backend/isa/amd64/abi.go: RDX is callee-saved; machine.go
lowerCall releases only XMM0-15 around memmove). Since Go 1.24 memmove's REP MOVSQ path writes RDX (the address of
the last word); Go takes that path for a forward copy of 2 KiB or more to a 16-byte aligned address when
runtime.memmoveBits has repmovsPreferred, which Go sets on Intel CPUs with ERMS and FSRM. wazero v1.9.0 fixed it
(#2378, "reserve dx when calling memmove to support go 1.24"). So on such a CPU a guest loses whatever sat in RDX:
memory.fill's loop bound (the loop then copies on through Go's heap until it faults: "fatal error: fault", or
"unsafe.Slice: len out of range" from the traceback), or the module context pointer (a fault in compiled code);
on other CPUs (AMD's, Intel's without FSRM) nothing happens. That is why the crash came and went between machines.
Rust's memcpy is memory.copy, so the Traefik builds are lowered to plain loads and stores by Binaryen (Makefile,
WASM_OPT_PASSES_http-wasm); the Envoy build, on V8, keeps the instructions.

guests/grow_call_copy.wat shows the loss without crashing: a loop counter that wazero keeps in RDX across one
memory.copy, checked afterwards and reported in a response header. Which path memmove takes is read from the
running Traefik (runtime.memmoveBits), and a second Traefik is given the Intel path by setting that bit in its
memory before it serves anything, so that the fault is shown on every machine.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from secure_headers_harness.http_client import request
from secure_headers_harness.paths import HTTP_WASM_DIR, PROXY_WASM, ROOT, work_dir
from secure_headers_harness.served import serve_in_thread
from secure_headers_harness.traefik import Traefik, traefik_binary

BINARYEN = ROOT / "tools" / "binaryen" / "node_modules" / "binaryen" / "bin"
GUEST = Path(__file__).with_name("guests") / "grow_call_copy.wat"
TRAP_HTTP_WASM = ROOT / "dist" / "trap-http-wasm" / "secure_headers.wasm"
POLICY = json.dumps({"rules": [{"name": "immich", "match": {"hosts": ["immich.test"]}, "presets": ["immich"],
                                "inline_script_hashes": {}}]})
DOCUMENT = {"Sec-Fetch-Dest": "document", "Accept": "text/html"}
AVX_SUPPORTED, REPMOVS_PREFERRED = 1, 2  # runtime.memmoveBits (Go's runtime/cpuflags_amd64.go)


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


def elf_sections(binary: Path) -> dict[str, tuple[int, int, int]]:
    """name -> (address, file offset, size) of a 64-bit little-endian ELF's sections."""
    data = binary.read_bytes()
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx][4]
    return {data[names + h[0]:data.index(b"\0", names + h[0])].decode(): (h[3], h[4], h[5]) for h in headers}


def memmove_bits_address(binary: Path) -> int:
    """Where the (static, non-PIE) Traefik binary keeps runtime.memmoveBits: the operand of memmove's
    `MOVB runtime·memmoveBits(SB), AL` (8a 05 rel32), memmove found by name in .gopclntab (Go 1.20+ layout:
    pcHeader, then functab {entryoff, funcoff} pairs; Go 1.26 leaves the text start to the runtime)."""
    data = binary.read_bytes()
    sections = elf_sections(binary)
    _, offset, size = sections[".gopclntab"]
    tab = data[offset:offset + size]
    assert struct.unpack_from("<I", tab)[0] == 0xFFFFFFF1, "not a Go 1.20+ pclntab"
    nfunc, _, text_start, funcname_off, _, _, _, pcln_off = struct.unpack_from("<qQQQQQQQ", tab, 8)
    text_start = text_start or sections[".text"][0]
    for i in range(nfunc):
        entry_off, func_off = struct.unpack_from("<II", tab, pcln_off + 8 * i)
        name_at = funcname_off + struct.unpack_from("<i", tab, pcln_off + func_off + 4)[0]
        if tab[name_at:tab.index(b"\0", name_at)] == b"runtime.memmove":
            entry = text_start + entry_off
            break
    else:
        raise AssertionError(f"{binary}: no runtime.memmove")
    text_address, text_offset, _ = sections[".text"]
    code = data[text_offset + entry - text_address:text_offset + entry - text_address + 256]
    at = code.index(b"\x8a\x05")
    return entry + at + 6 + struct.unpack_from("<i", code, at + 2)[0]


def memmove_bits(pid: int, address: int, set_bits: int = 0) -> int:
    """runtime.memmoveBits of the running process (after OR-ing `set_bits` into it)."""
    with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
        mem.seek(address)
        bits = mem.read(1)[0]
        if set_bits:
            mem.seek(address)
            mem.write(bytes([bits | set_bits]))
            mem.seek(address)
            bits = mem.read(1)[0]
    return bits


class TraefikOnIntelMemmove(Traefik):
    """Traefik whose Go runtime takes memmove's REP MOVSQ path, as it does on an Intel CPU with ERMS and FSRM:
    repmovsPreferred is set in runtime.memmoveBits once the binary is executing and before anything is served (Go's
    init only ORs its own bits in). REP MOVSQ runs on any x86-64 CPU; only Go's choice of it is forced."""

    def spawn(self, args: list[str]):
        process = super().spawn(args)
        binary = os.path.realpath(args[0])
        deadline = time.monotonic() + 10
        while os.path.realpath(f"/proc/{process.pid}/exe") != binary:  # still the fork, before exec
            assert time.monotonic() < deadline and process.poll() is None, "traefik did not start"
            time.sleep(0.01)
        memmove_bits(process.pid, memmove_bits_address(Path(binary)), REPMOVS_PREFERRED)
        return process


def guest_report(traefik: Traefik) -> tuple[str | None, str | None]:
    """The guest's two headers on a request through the plugin: (registers, copy)."""
    reply = request(traefik.ports["http"], "/api/server/ping", host="immich.test")
    assert reply.status == 200, reply
    return reply.one("x-guest-registers"), reply.one("x-guest-copy")


def with_plain_stores(wat: str) -> str:
    """The same guest with the copy's two checked words moved by i32.load/i32.store instead of memory.copy."""
    copy = "(memory.copy (i32.const 8192) (i32.const 1024) (local.get $size))"
    stores = ("(i32.store (i32.const 8192) (i32.load (i32.const 1024)))\n"
              "     (i32.store (i32.add (i32.const 8188) (local.get $size))"
              " (i32.load (i32.add (i32.const 1020) (local.get $size))))")
    assert wat.count(copy) == 1
    plain = wat.replace(copy, stores)
    module = plain.split("(module", 1)[1]
    assert "memory.copy" not in module and "memory.fill" not in module
    return plain


@pytest.fixture(scope="module")
def memmove_address() -> int:
    return memmove_bits_address(Path(os.path.realpath(traefik_binary())))


def test_traefik_loses_a_register_across_memory_copy_where_go_prefers_rep_movs(built_modules, upstream,
                                                                               memmove_address):
    """What the host cannot do, asserted on every machine: with Go's REP MOVSQ memmove (Intel, ERMS and FSRM; forced
    here), a value the guest kept across memory.copy is lost, while the copied bytes land. If this starts failing
    because the value is kept, Traefik's wazero was fixed (v1.9.0+) and the lowering can be reconsidered."""
    with TraefikOnIntelMemmove(POLICY, upstream.port, plugin_dir=guest_folder(GUEST.read_text(), "bulk-copy-rep"),
                               companion=False) as traefik:
        bits = memmove_bits(traefik.process.pid, memmove_address)
        assert bits & REPMOVS_PREFERRED, bits
        assert guest_report(traefik) == ("lost", "landed"), traefik.log()[-2000:]
        assert guest_report(traefik) == ("lost", "landed"), "a second request, on a grown instance"


def test_traefik_keeps_the_register_as_its_go_runtime_chose_on_this_cpu(built_modules, upstream, memmove_address):
    """Unforced: the loss happens exactly when Go chose the REP MOVSQ path on this CPU (read from the running
    process), so the same module works on one machine and breaks on the next."""
    with Traefik(POLICY, upstream.port, plugin_dir=guest_folder(GUEST.read_text(), "bulk-copy"),
                 companion=False) as traefik:
        bits = memmove_bits(traefik.process.pid, memmove_address)
        expected = "lost" if bits & REPMOVS_PREFERRED else "kept"
        for _ in range(2):  # the second on an instance whose memory grew again
            assert guest_report(traefik) == (expected, "landed"), f"memmoveBits {bits}: {traefik.log()[-2000:]}"


def test_the_same_guest_with_plain_stores_keeps_its_registers(built_modules, upstream):
    """The control, on the forced REP MOVSQ path too: the same grow, host call and loop with loads and stores
    instead of memory.copy keep every value, and the words land."""
    wat = with_plain_stores(GUEST.read_text())
    with TraefikOnIntelMemmove(POLICY, upstream.port, plugin_dir=guest_folder(wat, "bulk-store"),
                               companion=False) as traefik:
        for _ in range(2):
            assert guest_report(traefik) == ("kept", "landed"), traefik.log()[-2000:]


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
