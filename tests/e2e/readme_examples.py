"""The README's configuration examples, read from the README itself (each follows an `<!-- example: NAME ... -->`
marker), so that what the README shows is what the tests load."""

from __future__ import annotations

import re
import textwrap

import yaml
from secure_headers_harness.paths import ROOT

README = ROOT / "README.md"


def example(name: str) -> dict:
    text = README.read_text()
    match = re.search(rf"<!-- example: {re.escape(name)}\b.*?-->\s*```yaml\n(.*?)```", text, re.S)
    if match is None:
        raise AssertionError(f"README has no example {name!r}")
    return yaml.safe_load(textwrap.dedent(match.group(1)))


def middleware_options(dynamic: dict, name: str = "secure-headers") -> dict:
    """The plugin's options of one middleware in a dynamic configuration."""
    return dynamic["http"]["middlewares"][name]["plugin"]["secureheaders"]
