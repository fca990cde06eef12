"""The compose files for Docker users parse (no engine runs on these machines, so they are validated, not run)."""

import shutil
import subprocess

import pytest
import yaml
from secure_headers_harness.paths import ROOT


@pytest.mark.parametrize("folder, service, image, module", [
    ("envoy-test", "envoy", "envoyproxy/envoy:v1.40", "secure_headers.wasm"),
    ("traefik-test", "traefik", "traefik:v3.7", "dist/http-wasm"),
])
def test_compose_file_is_valid_and_mounts_the_module(folder, service, image, module):
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose (Debian package) is missing: `make tools` installs it"
    result = subprocess.run([docker_compose, "-f", str(ROOT / folder / "docker-compose.yml"), "config"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services[service]["image"].startswith(image)
    mounts = " ".join(str(v) for v in services[service].get("volumes", []))
    assert module in mounts
