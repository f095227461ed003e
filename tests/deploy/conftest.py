"""The Docker engine and the images the deployment tests run (tests/services_docker.sh
starts the engine and builds the base image; a missing one fails in CI, skips elsewhere)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("FEDWEAVE_BASE_IMAGE", "fedweave-base:bookworm")
REPOSITORY = "fedweave-test/fedweave"
TAGS = ("e2e-1", "e2e-2")


@pytest.fixture(scope="session")
def docker_client():
    try:
        import docker
    except ImportError:
        service_unavailable("the Docker SDK for Python (pip install 'fedweave[docker]')")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        service_unavailable(f"a Docker engine ({exc}; tests/services_docker.sh starts one)")
    try:
        client.images.get(BASE_IMAGE)
    except docker.errors.ImageNotFound:
        service_unavailable(f"the base image {BASE_IMAGE} (tests/services_docker.sh builds it)")
    yield client
    client.close()


@pytest.fixture(scope="session")
def image(docker_client):
    """The project's image built by `make image` on the local base image, as TAGS[0], and
    the same image tagged TAGS[1] (the version an upgrade goes to)."""
    ref = f"{REPOSITORY}:{TAGS[0]}"
    venv = Path(sys.executable).parent.parent
    proc = subprocess.run(["make", "-s", "image", f"IMAGE={ref}", f"BASE_IMAGE={BASE_IMAGE}", f"VENV={venv}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"make image failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    built = docker_client.images.get(ref)
    built.tag(REPOSITORY, TAGS[1])
    yield built
    for tag in TAGS:
        docker_client.images.remove(f"{REPOSITORY}:{tag}", noprune=True)
