"""The compose file for Docker users parses (no engine runs on these machines, so it is validated, not run)."""

import shutil
import subprocess
from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "envoy-test" / "docker-compose.yml"


def test_compose_file_is_valid_and_mounts_the_module():
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose (Debian package) is missing: `make tools` installs it"
    result = subprocess.run([docker_compose, "-f", str(COMPOSE), "config"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert services["envoy"]["image"].startswith("envoyproxy/envoy:v1.40")
    mounts = " ".join(str(v) for v in services["envoy"].get("volumes", []))
    assert "secure_headers.wasm" in mounts and "envoy.yaml" in mounts
