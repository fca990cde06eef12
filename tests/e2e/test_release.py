"""`make dist`: the release folder, its OCI images in a real registry, and the Kubernetes examples pinned to it.

The registry is Debian's docker-registry (the CNCF distribution registry), started on a loopback port with its
own config; the client is Debian's skopeo. The images are checked against the rules Istio's and Envoy Gateway's
image fetchers apply (pkg/wasm/imagefetcher.go, internal/wasm/imagefetcher.go): the "oci" variant has exactly
two layers, one of them `application/vnd.module.wasm.content.layer.v1+wasm` holding the raw module; the
"compat" variant's last layer is a tar+gzip holding plugin.wasm.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from secure_headers_harness import paths
from conftest import ENVOY_MODULE, PLUGIN_DIR, Envoy
from secure_headers_harness.paths import ROOT, work_dir
from secure_headers_harness.processes import free_port, terminate

VERSION = paths.VERSION
RELEASE = ROOT / "dist" / "release" / f"secure-headers-{VERSION}"
WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
WASM_CONFIG = "application/vnd.module.wasm.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
TAR_GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(scope="module")
def release() -> dict:
    if not (RELEASE / "release.json").exists():
        pytest.fail(f"{RELEASE} is missing: run `make dist` (make e2e does it)")
    return json.loads((RELEASE / "release.json").read_text())


def make_release(dist: Path) -> Path:
    """release/make_release.py run over `dist` as `make dist` runs it; the release folder it writes."""
    subprocess.run([sys.executable, str(ROOT / "release" / "make_release.py"), "--dist", str(dist)], check=True,
                   capture_output=True)
    return dist / "release" / f"secure-headers-{VERSION}"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_folder_holds_both_builds_with_checksums(release):
    assert release["version"] == VERSION
    assert (RELEASE / "proxy-wasm" / "secure_headers.wasm").read_bytes() == ENVOY_MODULE.read_bytes()
    for name in ("secure_headers.wasm", ".traefik.yml"):
        assert (RELEASE / "http-wasm" / name).read_bytes() == (PLUGIN_DIR / name).read_bytes()
    assert release["proxy_wasm"]["sha256"] == sha256_file(ENVOY_MODULE)
    check = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"], cwd=RELEASE,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = {line.split("  ", 1)[1] for line in (RELEASE / "SHA256SUMS").read_text().splitlines()}
    on_disk = {p.relative_to(RELEASE).as_posix() for p in RELEASE.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == on_disk
    # A checksum that fails is caught: the check is not vacuous.
    tampered = work_dir("release-tampered")
    shutil.copytree(RELEASE, tampered / "r")
    (tampered / "r" / "http-wasm" / ".traefik.yml").write_text("tampered\n")
    assert subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=tampered / "r",
                          capture_output=True).returncode != 0


def test_same_modules_give_the_same_digests(release):
    """Reproducible: another run over copies of the same modules writes byte-identical files."""
    digests = []
    for run in range(2):
        dist = work_dir(f"dist-{run}")
        shutil.copytree(ROOT / "dist" / "proxy-wasm", dist / "proxy-wasm")
        shutil.copytree(ROOT / "dist" / "http-wasm", dist / "http-wasm")
        shutil.copytree(ROOT / "dist" / "envoy-dynamic", dist / "envoy-dynamic")
        made = make_release(dist)
        digests.append((made / "SHA256SUMS").read_text())
        assert json.loads((made / "release.json").read_text()) == release
    assert digests[0] == digests[1] == (RELEASE / "SHA256SUMS").read_text()


def layout_blob(digest: str) -> bytes:
    return (RELEASE / "oci" / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes()


def assert_istio_would_extract_the_module(manifest: dict, blob, module: bytes) -> None:
    """What Istio's and Envoy Gateway's fetchers do with a manifest, for the two variants they accept."""
    assert manifest["mediaType"] == OCI_MANIFEST
    layers = manifest["layers"]
    if layers[-1]["mediaType"] == TAR_GZIP_LAYER:  # compat: plugin.wasm inside the last layer
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layers[-1]["digest"])))) as tar:
            member = next(m for m in tar.getmembers() if Path(m.name).name == "plugin.wasm")
            assert tar.extractfile(member).read() == module
    else:  # oci: exactly two layers, the module raw in the one of the Wasm layer type
        assert manifest["config"]["mediaType"] == WASM_CONFIG
        assert len(layers) == 2
        assert sorted(layer["mediaType"] for layer in layers) == sorted([WASM_CONFIG, WASM_LAYER])
        wasm = next(layer for layer in layers if layer["mediaType"] == WASM_LAYER)
        assert blob(wasm["digest"]) == module
    for descriptor in [manifest["config"], *layers]:
        data = blob(descriptor["digest"])
        assert len(data) == descriptor["size"]
        assert f"sha256:{hashlib.sha256(data).hexdigest()}" == descriptor["digest"]


def test_oci_layout_holds_both_variants(release):
    module = ENVOY_MODULE.read_bytes()
    index = json.loads((RELEASE / "oci" / "index.json").read_text())
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert tags == {image["tag"]: image["digest"] for image in release["oci"].values()}
    assert set(tags) == {VERSION, f"{VERSION}-compat"}
    for digest in tags.values():
        assert_istio_would_extract_the_module(json.loads(layout_blob(digest)), layout_blob, module)


class Registry:
    """Debian's docker-registry on a free loopback port, storage in a fresh folder."""

    def __init__(self):
        self.port = free_port()
        self.workdir = work_dir("registry")
        config = {"version": 0.1, "log": {"level": "warn"},
                  "storage": {"filesystem": {"rootdirectory": str(self.workdir / "data")}},
                  "http": {"addr": f"127.0.0.1:{self.port}"}}
        (self.workdir / "config.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.workdir / "registry.log", "w")
        self.process = subprocess.Popen([self.binary(), "serve", str(self.workdir / "config.yml")],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"docker-registry did not start:\n{(self.workdir / 'registry.log').read_text()}")

    @staticmethod
    def binary() -> str:
        found = shutil.which("docker-registry")
        assert found, "docker-registry (Debian package) is missing: `make registry-tools` installs it"
        return found

    def manifest(self, reference: str) -> tuple[str, str, bytes]:
        """(Content-Type, Docker-Content-Digest, raw bytes) of a manifest, as a registry client sees it."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v2/secure-headers/manifests/{reference}",
                                     headers={"Accept": OCI_MANIFEST})
        with urllib.request.urlopen(req) as r:
            return r.headers["Content-Type"], r.headers["Docker-Content-Digest"], r.read()

    def stop(self):
        terminate(self.process)
        self.log.close()


@pytest.fixture
def registry():
    server = Registry()
    yield server
    server.stop()


def skopeo(*args: str) -> None:
    binary = shutil.which("skopeo")
    assert binary, "skopeo (Debian package) is missing: `make registry-tools` installs it"
    result = subprocess.run([binary, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_registry_round_trip_keeps_digests_and_bytes(release, registry):
    module = ENVOY_MODULE.read_bytes()
    for variant, image in release["oci"].items():
        reference = f"127.0.0.1:{registry.port}/secure-headers:{image['tag']}"
        skopeo("copy", "--preserve-digests", "--dest-tls-verify=false",
               f"oci:{RELEASE / 'oci'}:{image['tag']}", f"docker://{reference}")
        content_type, digest, raw = registry.manifest(image["tag"])
        assert (content_type, digest) == (OCI_MANIFEST, image["digest"]), variant
        assert raw == layout_blob(image["digest"]), "the registry serves the manifest byte for byte"

        pulled = work_dir(f"pulled-{variant}")
        skopeo("copy", "--src-tls-verify=false", f"docker://{reference}", f"dir:{pulled / 'image'}")
        manifest_bytes = (pulled / "image" / "manifest.json").read_bytes()
        assert f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}" == image["digest"]
        assert_istio_would_extract_the_module(json.loads(manifest_bytes),
                                              lambda d: (pulled / "image" / d.removeprefix("sha256:")).read_bytes(),
                                              module)
    # Pinned by digest, the same image comes back.
    _, by_digest, _ = registry.manifest(release["oci"]["artifact"]["digest"])
    assert by_digest == release["oci"]["artifact"]["digest"]


KUBERNETES = {
    "istio-wasmplugin.yaml": ("extensions.istio.io/v1alpha1", "WasmPlugin", "oci://registry.example.com/secure-headers@"),
    "envoy-gateway-extension-policy.yaml": ("gateway.envoyproxy.io/v1alpha1", "EnvoyExtensionPolicy",
                                            "registry.example.com/secure-headers@"),
}


def image_url(doc: dict) -> str:
    return doc["spec"]["url"] if doc["kind"] == "WasmPlugin" else doc["spec"]["wasm"][0]["code"]["image"]["url"]


def plugin_policy(doc: dict) -> dict:
    return doc["spec"]["pluginConfig"] if doc["kind"] == "WasmPlugin" else doc["spec"]["wasm"][0]["config"]


@pytest.mark.parametrize("name", KUBERNETES)
def test_kubernetes_example_pins_this_release(release, name):
    api_version, kind, url_prefix = KUBERNETES[name]
    text = (RELEASE / "kubernetes" / name).read_text()
    assert "{{" not in text
    doc = yaml.safe_load(text)
    assert (doc["apiVersion"], doc["kind"]) == (api_version, kind)
    assert image_url(doc) == url_prefix + release["oci"]["artifact"]["digest"]
    assert f"secure-headers {VERSION} " in text


@pytest.mark.parametrize("name", KUBERNETES)
def test_kubernetes_example_in_readme_is_the_template(name):
    """The README shows each template as make dist renders it; only the digest (and version) may differ."""
    template = yaml.safe_load((ROOT / "release" / "kubernetes" / name).read_text())
    kind = KUBERNETES[name][1]
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
              if f"kind: {kind}\n" in b]
    assert len(blocks) == 1, f"README should show one {kind}"
    shown = blocks[0]
    assert re.fullmatch(re.escape(KUBERNETES[name][2]) + r"sha256:[0-9a-f]{64}", image_url(shown))
    for doc in (shown, template):
        (doc["spec"] if kind == "WasmPlugin" else doc["spec"]["wasm"][0]["code"]["image"])["url"] = "pinned"
    assert shown == template


@pytest.mark.parametrize("name", KUBERNETES)
def test_kubernetes_example_policy_loads_in_envoy(name, upstream):
    """The policy in each example, as the JSON text Istio and Envoy Gateway hand the module, loads in Envoy."""
    policy = json.dumps(plugin_policy(yaml.safe_load((ROOT / "release" / "kubernetes" / name).read_text())))
    accepted, log = Envoy(policy, upstream.port).outcome()
    assert accepted, log[-2000:]
