"""A Wasm module's sections: what they say about the memory each instance takes (its initial linear memory, the
stack at the bottom of it, the static data above), and a do-nothing guest padded with dead code to another
module's code size (tests/e2e/test_module_size.py, tests/e2e/test_traefik_reloads.py, bench/traefik_scale.py)."""

from __future__ import annotations

from pathlib import Path

MEMORY, GLOBAL, FUNCTION, CODE, DATA = 5, 6, 3, 10, 11


def leb(data: bytes, at: int, signed: bool = False) -> tuple[int, int]:
    """The LEB128 number at `at`, and the offset after it."""
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        shift += 7
        if byte < 0x80:
            if signed and byte & 0x40:
                value -= 1 << shift
            return value, at


def unsigned_leb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sections(data: bytes) -> list[tuple[int, bytes]]:
    """(section id, contents) in order, after the 8-byte header."""
    found, at = [], 8
    while at < len(data):
        size, start = leb(data, at + 1)
        found.append((data[at], data[start:start + size]))
        at = start + size
    return found


def memory_layout(path: Path) -> dict:
    """The module's initial linear memory (its memory section's minimum pages), the stack below it (the first
    global, __stack_pointer, starts at the stack's top), its static data (the data segments) and its code, in
    bytes."""
    layout = {}
    for section, body in sections(path.read_bytes()):
        if section == MEMORY:  # count, limits flags, minimum pages
            _, at = leb(body, 0)
            _, at = leb(body, at)
            layout["initial_memory_bytes"] = leb(body, at)[0] * 65536
        elif section == GLOBAL:  # the first is the stack pointer: type, mutability, i32.const N, end
            layout["stack_bytes"] = leb(body, leb(body, 0)[1] + 3, signed=True)[0]
        elif section == DATA:  # active segments: flags 0, i32.const offset, end, length, bytes
            count, at = leb(body, 0)
            total = 0
            for _ in range(count):
                _, at = leb(body, at)
                _, at = leb(body, at + 1, signed=True)
                length, at = leb(body, at + 1)
                total += length
                at += length
            layout["data_bytes"] = total
        elif section == CODE:
            layout["code_bytes"] = len(body)
    return layout


def padded_guest(guest: Path, code_bytes: int, out: Path, function_bytes: int = 400) -> Path:
    """`guest` plus dead functions (never exported or called, each a run of `i64.const 0; drop`) until its code
    section is about `code_bytes`: a host that decodes and compiles every function pays for them, while the
    guest's memory and behaviour stay the minimal guest's. The new functions take the type of the guest's first
    function, which must return one i64 (the minimal guest's handle_request), as each body does."""
    data = guest.read_bytes()
    parts = sections(data)
    functions = dict(parts)[FUNCTION]
    first_type = leb(functions, leb(functions, 0)[1])[0]
    body = b"\x00" + b"\x42\x00\x1a" * ((function_bytes - 4) // 3) + b"\x42\x00\x0b"  # no locals ... i64.const 0, end
    added = max(0, (code_bytes - len(dict(parts)[CODE])) // (len(body) + 2))
    padded = bytearray(data[:8])
    for section, contents in parts:
        if section in (FUNCTION, CODE):
            count, at = leb(contents, 0)
            extra = unsigned_leb(first_type) if section == FUNCTION else unsigned_leb(len(body)) + body
            contents = unsigned_leb(count + added) + contents[at:] + extra * added
        padded += bytes([section]) + unsigned_leb(len(contents)) + contents
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(padded)
    return out
