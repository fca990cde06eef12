"""BENCHMARKS.md's sections written by the scripts that run after bench/run.py (which writes the rest): each
between its own markers, replaced in place, or appended the first time."""

from __future__ import annotations

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def include_section(name: str, script: str, section: str) -> None:
    start, end = f"<!-- {name}: {script} -->", f"<!-- /{name} -->"
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else ""
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    BENCHMARKS.write_text(text)
