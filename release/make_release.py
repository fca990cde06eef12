"""`make dist`: the release folder, from the modules `make build` wrote.

    dist/release/secure-headers-<version>/
      proxy-wasm/secure_headers.wasm      the Envoy module (vm_config.code.local or .remote)
      http-wasm/                          the Traefik plugin folder (secure_headers.wasm, .traefik.yml)
      envoy-dynamic/libsecure_headers.so  the native Envoy dynamic module (linux x86_64; LD_LIBRARY_PATH)
      oci/                                an OCI image layout holding two images of the Envoy module:
                                            tag <version>         the Wasm OCI artifact ("oci" variant)
                                            tag <version>-compat  a one-layer image with plugin.wasm ("compat")
      kubernetes/                         Istio WasmPlugin and Envoy Gateway EnvoyExtensionPolicy, with this
                                          release's tag and digest filled in (templates in release/kubernetes/)
      release.json                        version, file digests, OCI tags and manifest digests
      SHA256SUMS                          every file above (`sha256sum -c SHA256SUMS`)

Everything is a function of the input bytes: no timestamps, fixed tar headers, gzip without a name or mtime, so
the same modules give the same digests on any machine. Push the OCI images with any OCI client, for example
`skopeo copy oci:oci:<version> docker://registry.example.com/secure-headers:<version>` from the release folder.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import tarfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "kubernetes"

# The media types Istio's and Envoy Gateway's image fetchers accept (pkg/wasm/imagefetcher.go and
# internal/wasm/imagefetcher.go). Their "oci" variant needs exactly two layers, one of them the raw module;
# the other is the runtime config, which is also the manifest's config.
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
# Their "compat" variant: the last layer a gzipped tar holding plugin.wasm.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_TAR_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
PLUGIN_FILE = "plugin.wasm"
ROOT_ID = "secure_headers"
IMAGE_NAME = "secure-headers"


def crate_version() -> str:
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


class OciLayout:
    """An OCI image layout directory (image-spec v1.1 "image-layout"): oci-layout, index.json, blobs/sha256/."""

    def __init__(self, path: Path):
        self.path = path
        self.blobs = path / "blobs" / "sha256"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.manifests: list[dict] = []

    def blob(self, media_type: str, data: bytes, annotations: dict | None = None) -> dict:
        digest = sha256_hex(data)
        (self.blobs / digest).write_bytes(data)
        descriptor = {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}
        if annotations:
            descriptor["annotations"] = annotations
        return descriptor

    def image(self, tag: str, config: dict, layers: list[dict], annotations: dict) -> str:
        """Writes one image manifest, tagged in index.json; returns its digest."""
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": layers,
                    "annotations": annotations}
        descriptor = self.blob(OCI_MANIFEST, canonical_json(manifest),
                               {"org.opencontainers.image.ref.name": tag})
        self.manifests.append(descriptor)
        return descriptor["digest"]

    def close(self) -> None:
        (self.path / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.manifests}
        (self.path / "index.json").write_bytes(canonical_json(index))


def plugin_tar_gz(module: bytes) -> tuple[bytes, bytes]:
    """(the uncompressed tar, its gzip) with plugin.wasm as the only member, every header field fixed."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size, info.mode, info.mtime = len(module), 0o644, 0
        tar.addfile(info, io.BytesIO(module))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(raw.getvalue())
    return raw.getvalue(), packed.getvalue()


def write_oci_images(layout: OciLayout, module: bytes, version: str) -> dict[str, dict]:
    annotations = {"org.opencontainers.image.title": IMAGE_NAME, "org.opencontainers.image.version": version}

    runtime_config = canonical_json({"type": "envoy_proxy", "config": {"rootIds": [ROOT_ID]}})
    config = layout.blob(WASM_CONFIG, runtime_config)
    wasm_layer = layout.blob(WASM_LAYER, module, {"org.opencontainers.image.title": PLUGIN_FILE})
    artifact = layout.image(version, config, [config, wasm_layer], annotations)

    tar, tar_gz = plugin_tar_gz(module)
    image_config = layout.blob(OCI_IMAGE_CONFIG, canonical_json({
        "architecture": "wasm", "os": "wasip1", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha256_hex(tar)}"]},
    }))
    compat = layout.image(f"{version}-compat", image_config, [layout.blob(OCI_TAR_GZIP_LAYER, tar_gz)], annotations)
    layout.close()
    return {"artifact": {"tag": version, "digest": artifact},
            "compat": {"tag": f"{version}-compat", "digest": compat}}


def render_kubernetes(out: Path, version: str, digest: str) -> None:
    """The templates with this release's version and the OCI artifact's manifest digest (`sha256:...`)."""
    out.mkdir()
    for template in sorted(TEMPLATES.glob("*.yaml")):
        text = template.read_text().replace("{{version}}", version).replace("{{digest}}", digest)
        (out / template.name).write_text(text)


def write_checksums(release: Path) -> None:
    files = sorted(p for p in release.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    lines = [f"{sha256_hex(p.read_bytes())}  {p.relative_to(release).as_posix()}\n" for p in files]
    (release / "SHA256SUMS").write_text("".join(lines))


def make_release(dist: Path) -> Path:
    version = crate_version()
    release = dist / "release" / f"{IMAGE_NAME}-{version}"
    if release.exists():
        shutil.rmtree(release)
    release.mkdir(parents=True)
    shutil.copytree(dist / "proxy-wasm", release / "proxy-wasm")
    shutil.copytree(dist / "http-wasm", release / "http-wasm")
    shutil.copytree(dist / "envoy-dynamic", release / "envoy-dynamic")
    native_module = (release / "envoy-dynamic" / "libsecure_headers.so").read_bytes()
    proxy_module = (release / "proxy-wasm" / "secure_headers.wasm").read_bytes()
    http_module = (release / "http-wasm" / "secure_headers.wasm").read_bytes()

    oci = write_oci_images(OciLayout(release / "oci"), proxy_module, version)
    render_kubernetes(release / "kubernetes", version, oci["artifact"]["digest"])
    summary = {
        "version": version,
        "proxy_wasm": {"path": "proxy-wasm/secure_headers.wasm", "sha256": sha256_hex(proxy_module),
                       "bytes": len(proxy_module)},
        "http_wasm": {"path": "http-wasm/secure_headers.wasm", "sha256": sha256_hex(http_module),
                      "bytes": len(http_module)},
        "envoy_dynamic": {"path": "envoy-dynamic/libsecure_headers.so", "sha256": sha256_hex(native_module),
                          "bytes": len(native_module)},
        "oci": oci,
    }
    (release / "release.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_checksums(release)
    return release


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="where `make build` wrote the modules")
    release = make_release(parser.parse_args().dist)
    summary = json.loads((release / "release.json").read_text())
    print(f"release {release.relative_to(ROOT) if release.is_relative_to(ROOT) else release}")
    for name in ("proxy_wasm", "http_wasm", "envoy_dynamic"):
        print(f"  {summary[name]['path']}: sha256 {summary[name]['sha256']} ({summary[name]['bytes']:,} bytes)")
    for variant, image in summary["oci"].items():
        print(f"  oci:{image['tag']} ({variant}): {image['digest']}")


if __name__ == "__main__":
    main()
