"""Where the repository's files are: host configuration, builds, certificates, and fresh work folders.

Every path the harness, the tests and the bench scripts use is defined here once; when the build moves a binary or
a module, this is the one line to change. The harness is installed editable, so this file stays in the repository
and the root is the nearest folder above it holding Cargo.toml; SECURE_HEADERS_ROOT overrides that."""

from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path


def _repository_root() -> Path:
    if os.environ.get("SECURE_HEADERS_ROOT"):
        return Path(os.environ["SECURE_HEADERS_ROOT"]).resolve()
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "Cargo.toml").is_file():
            return folder
    raise RuntimeError(f"no Cargo.toml above {here}: set SECURE_HEADERS_ROOT to the secure-headers repository")


ROOT = _repository_root()
# The version every build carries: the workspace's (Cargo.toml, [workspace.package]).
VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]

# Host configuration, written for Docker; the harness rewrites addresses, ports and file paths.
ENVOY_TEST = ROOT / "envoy-test"
ENVOY_YAML = ENVOY_TEST / "envoy.yaml"
ENVOY_DYNAMIC_YAML = ENVOY_TEST / "envoy-dynamic.yaml"  # the same topology with the native dynamic module
DRHEADER_RULES = ENVOY_TEST / "drheader-rules.yml"
CERTS = ENVOY_TEST / "certs"  # made by `make certs` (envoy-test/make_certs.sh); Traefik uses them too
TRAEFIK_TEST = ROOT / "traefik-test"
TRAEFIK_STATIC = TRAEFIK_TEST / "traefik.yml"
TRAEFIK_DYNAMIC = TRAEFIK_TEST / "dynamic.yml"
DEMO_POLICY = ROOT / "policies" / "immich.json"
PRESETS = ROOT / "src" / "config" / "presets"  # the built-in presets, as the engine embeds them
# Tables the Rust tests share: inline-script documents (the upstream serves each under /browser/table/), bad policies.
INLINE_SCRIPT_TABLE = ROOT / "tests" / "inline_script_table.json"
BAD_POLICY_TABLE = ROOT / "tests" / "bad_policies.json"

# What the Makefile builds.
CLI = ROOT / "target" / "debug" / "secure-headers"  # `make cli`: the workspace's native build
PROXY_WASM = ROOT / "dist" / "proxy-wasm" / "secure_headers.wasm"  # the Envoy module
HTTP_WASM_DIR = ROOT / "dist" / "http-wasm"  # the Traefik plugin folder (secure_headers.wasm, .traefik.yml)
ALLOC_COUNT_WASM = ROOT / "dist" / "alloc-count" / "secure_headers.wasm"  # the Envoy module counting its heap
TRAP_PROXY_WASM = ROOT / "dist" / "trap-proxy-wasm" / "secure_headers.wasm"  # trap on a magic header
TRAP_HTTP_WASM = ROOT / "dist" / "trap-http-wasm" / "secure_headers.wasm"
# The Envoy dynamic module (native; Envoy loads lib<name>.so from LD_LIBRARY_PATH), and its test builds that panic
# on the magic header and count heap allocations per hook.
ENVOY_DYNAMIC = ROOT / "dist" / "envoy-dynamic" / "libsecure_headers.so"
TRAP_ENVOY_DYNAMIC = ROOT / "dist" / "trap-envoy-dynamic" / "libsecure_headers.so"
ALLOC_COUNT_ENVOY_DYNAMIC = ROOT / "dist" / "alloc-count-envoy-dynamic" / "libsecure_headers.so"
BENCH_FILTERS = ROOT / "target" / "bench" / "wasm32-wasip1" / "release"  # `make bench`'s comparison filters

WORK = ROOT / ".work"


def work_dir(prefix: str) -> Path:
    """A fresh folder under the project's .work/ (cleared by `make e2e`, kept after a run for its logs)."""
    WORK.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=WORK))
