"""What deploying one party on the local Docker engine costs: seconds from `flow cluster
install` to ready, the image's size and seconds for an upgrade, beside `docker run` of
the bare base image in the same run.

    python bench/deploy.py --image fedweave/fedweave:0.1.0 [--base-image fedweave-base:bookworm]
                           [--upgrade-to TAG] [--repeat 3]

The image must be on the engine (`make image`); ``--upgrade-to`` names a second tag of
the same repository (default: the image tagged ``bench-next``, the same image under
another tag, so the figure is the lifecycle's own cost). The party is a one-party
consortium on a free port with this machine's RabbitMQ as broker; everything it made is
deleted at the end. Best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from federation.auth import PartyKeys  # noqa: E402
from flow.ops import lifecycle  # noqa: E402
from flow.ops.lifecycle_api import target  # noqa: E402

PARTY, PEER = "59999", "60000"  # ids no test uses: its control queues on the shared broker are its own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consortium(folder: Path, repository: str, tag: str) -> Path:
    broker = {"host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest"}
    fed = {"engine": "rabbitmq", "broker": broker, "allow_insecure": True}
    peer_key = PartyKeys.generate(PEER).public_key_b64  # a peer that never runs: only its key is needed
    path = folder / "cluster.yaml"
    path.write_text(yaml.safe_dump({"name": "bench", "image": {"repository": repository, "tag": tag}, "parties": [
        {"id": int(PARTY), "organisation": "bench", "address": {"host": "127.0.0.1", "port": free_port()},
         "engines": {"federation": fed}},
        {"id": int(PEER), "organisation": "peer", "public_key": peer_key,
         "address": {"host": "127.0.0.1", "port": free_port()}, "engines": {"federation": fed}}]}))
    return path


def bare_run(client, base_image: str) -> float:
    start = time.perf_counter()
    client.containers.run(base_image, ["python3", "-c", "pass"], network_mode="host", remove=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", required=True, help="REPOSITORY:TAG of the fedweave image")
    ap.add_argument("--base-image", default=os.environ.get("FEDWEAVE_BASE_IMAGE", "fedweave-base:bookworm"))
    ap.add_argument("--upgrade-to", default="bench-next", help="tag of the same repository to upgrade to")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    repository, _, tag = args.image.rpartition(":")
    tgt = target("docker")
    client = tgt.client  # type: ignore[attr-defined]
    img = client.images.get(args.image)
    made_tag = args.upgrade_to == "bench-next"
    if made_tag:
        img.tag(repository, "bench-next")
    installs, upgrades, bare = [], [], []
    try:
        for _ in range(args.repeat):
            bare.append(bare_run(client, args.base_image))
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                path = consortium(folder, repository, tag)
                dep = lifecycle.deployment(path, PARTY)
                try:
                    start = time.perf_counter()
                    lifecycle.install(tgt, dep, path, folder / "home", wait_s=300)
                    installs.append(time.perf_counter() - start)
                    up = lifecycle.deployment(path, PARTY, version=args.upgrade_to)
                    start = time.perf_counter()
                    lifecycle.upgrade(tgt, up, drain=False, wait_s=300)
                    upgrades.append(time.perf_counter() - start)
                finally:
                    tgt.delete(dep, keep_data=False)  # the bundle and keys go with the temporary folder
    finally:
        if made_tag:
            client.images.remove(f"{repository}:bench-next", noprune=True)
    base_size = client.images.get(args.base_image).attrs["Size"]
    print(f"image {args.image}: {img.attrs['Size'] / 2**20:.0f} MiB (base {args.base_image}: "
          f"{base_size / 2**20:.0f} MiB)")
    print(f"{'what':<40}{'best s':>10}{'all s':>30}")
    for what, xs in (("docker run of the bare base image", bare), ("flow cluster install -> /readyz", installs),
                     (f"flow cluster upgrade -> {args.upgrade_to}", upgrades)):
        print(f"{what:<40}{min(xs):>10.2f}{' '.join(f'{x:.2f}' for x in xs):>30}")


if __name__ == "__main__":
    main()
