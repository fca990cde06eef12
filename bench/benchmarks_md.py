"""BENCHMARKS.md's sections written by the scripts that run after bench/run.py (which writes the rest): each
between its own markers, replaced in place, or appended the first time; run.py keeps them when it writes the
rest (`included_sections`)."""

from __future__ import annotations

import re
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


def included_sections(text: str) -> list[str]:
    """Every marked section in `text`, markers included, in order: what bench/run.py carries over when it writes
    the file anew, so that a run of it alone loses none of the other scripts' figures."""
    pattern = r"<!-- ([\w-]+): [^>]* -->\n.*?\n<!-- /\1 -->"
    return [found.group(0) for found in re.finditer(pattern, text, flags=re.DOTALL)]
