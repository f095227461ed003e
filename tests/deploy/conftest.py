"""The Docker engine and the images the deployment tests run (tests/services_docker.sh
starts the engine and builds the base images; a missing one fails in CI, skips elsewhere).
The images are built by the Makefile, as a user builds them; each build's seconds are printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flow.ops.manifests import RABBITMQ_IMAGE
from tests.conftest import service_unavailable

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("FEDWEAVE_BASE_IMAGE", "fedweave-base:bookworm")
#: the base with a Java runtime the Spark workers' image is built on
SPARK_BASE_IMAGE = os.environ.get("FEDWEAVE_SPARK_BASE_IMAGE", "fedweave-base:bookworm-jre")
#: the tests' own tags (another checkout's run on the same engine may set its own)
REPOSITORY = os.environ.get("FEDWEAVE_TEST_REPOSITORY", "fedweave-test/fedweave")
TAGS = ("e2e-1", "e2e-2")
SPARK_TAG = "e2e-spark"


def make(target: str, *args: str) -> None:
    """``make -s target args`` with this interpreter's venv; its seconds printed."""
    venv = Path(sys.executable).parent.parent
    t0 = time.monotonic()
    proc = subprocess.run(["make", "-s", target, *args, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, f"make {target} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    print(f"\nmake {target} {' '.join(args)}: {time.monotonic() - t0:.0f} s")


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
    make("image", f"IMAGE={ref}", f"BASE_IMAGE={BASE_IMAGE}")
    built = docker_client.images.get(ref)
    built.tag(REPOSITORY, TAGS[1])
    yield built
    for tag in TAGS:
        docker_client.images.remove(f"{REPOSITORY}:{tag}")  # and its untagged parents


@pytest.fixture(scope="session")
def broker_image(docker_client):
    """The bundled broker's image, `make broker-image` (its root filesystem made once by
    debootstrap and cached; an unchanged build is the engine's cache). Kept: it is the
    project's own tag, not a test's."""
    make("broker-image")
    return docker_client.images.get(RABBITMQ_IMAGE)


@pytest.fixture(scope="session")
def spark_image(docker_client):
    """The project's image with the spark extra on the base with a Java runtime: what a
    party's Spark master and workers run."""
    import docker

    try:
        docker_client.images.get(SPARK_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        service_unavailable(f"the base image {SPARK_BASE_IMAGE} (tests/services_docker.sh builds it)")
    ref = f"{REPOSITORY}:{SPARK_TAG}"
    make("image", f"IMAGE={ref}", f"BASE_IMAGE={SPARK_BASE_IMAGE}", "IMAGE_EXTRAS=server,rabbitmq,postgresql,spark")
    built = docker_client.images.get(ref)
    print(f"image {ref}: {built.attrs['Size'] / 2**20:.0f} MiB")
    yield built
    docker_client.images.remove(ref)  # and its untagged parents

