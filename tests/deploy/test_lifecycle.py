"""The parts of `flow cluster install|logs|...` that need no Docker engine: --since, the
home files put into a server's volume, the target registry and its refusals."""

from __future__ import annotations

import io
import tarfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from flow.core.errors import ConfigError
from flow.ops.lifecycle import deployment
from flow.ops.lifecycle_api import TARGETS, DeployError, parse_since, target
from flow.ops.lifecycle_docker import _tar, host_network_files

KEY = "J+ittBoeRn3eeOSmLUlo+r4MbapHjxRiHpdRtnzFNDo="


def test_since_takes_a_duration_back_from_now_or_an_iso_time():
    now = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("2026-01-01T08:00:00", now) == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    assert parse_since(None, now) is None
    with pytest.raises(ConfigError, match="--since 10 minutes: not a duration"):
        parse_since("10 minutes", now)


def test_home_files_go_into_the_volume_owned_by_the_servers_user_with_their_modes():
    data = _tar({"service_conf.yaml": (b"mode: cluster\n", 0o644), "keys/9999.key": (b"PEM", 0o600),
                 "server_token": (b"t\n", 0o600)}, 10001, 10002)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"keys", "keys/9999.key", "service_conf.yaml", "server_token"}
        assert members["keys"].isdir() and members["keys"].mode == 0o700
        assert members["keys/9999.key"].mode == 0o600 and members["service_conf.yaml"].mode == 0o644
        assert {(m.uid, m.gid) for m in members.values()} == {(10001, 10002)}
        assert tar.extractfile("keys/9999.key").read() == b"PEM"


def _cluster(tmp_path: Path) -> Path:
    party = {"organisation": "o", "public_key": KEY,
             "engines": {"federation": {"engine": "rabbitmq", "broker": {"host": "127.0.0.1"},
                                        "allow_insecure": True}}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"name": "demo", "image": {"repository": "r/fw", "tag": "1.0"}, "parties": [
        {**party, "id": 9999, "address": {"host": "127.0.0.1", "port": 9380}},
        {**party, "id": 10000, "address": {"host": "127.0.0.1", "port": 9381}, "image": {"tag": "1.1"}}]}))
    return path


def test_a_deployment_names_its_image_bundle_and_labels_from_the_consortium_file(tmp_path):
    path = _cluster(tmp_path)
    dep = deployment(path, "9999")
    assert (dep.image, dep.name, dep.port) == ("r/fw:1.0", "demo-9999", 9380)
    assert dep.bundle == tmp_path / "bundle-9999"
    assert deployment(path, "10000").image == "fedweave/fedweave:1.1"  # the party's own image wins
    assert deployment(path, "9999", version="2.0").image == "r/fw:2.0"
    assert deployment(path, "9999", image="other/img:3").labels("server")["fedweave.io/version"] == "3"
    with pytest.raises(ConfigError, match="not a bundle's home"):
        dep.home_files()


def test_unknown_and_unbuilt_targets_are_one_clear_line():
    assert {"docker", "k8s"} <= set(TARGETS)
    with pytest.raises(ConfigError, match="--target nomad: unknown"):
        target("nomad")
    with pytest.raises(DeployError, match="kubectl apply -k"):
        target("k8s")


def test_a_bundled_broker_on_the_host_network_is_reached_on_its_published_port(tmp_path):
    from federation.auth import KeyStore
    from flow.ops.bundle import generate
    from flow.ops.cluster_conf import load_cluster

    path = _cluster(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["parties"][0]["public_key"] = None
    raw["parties"][0]["engines"] = {"federation": {"engine": "rabbitmq", "broker": "bundled", "broker_port": 5673,
                                                   "allow_insecure": True}}
    path.write_text(yaml.safe_dump(raw))
    dep = deployment(path, "9999")
    made = generate(load_cluster(path), "9999", dep.bundle, KeyStore(tmp_path / "home"))
    files = host_network_files(dep)
    conf = yaml.safe_load(files["service_conf.yaml"][0])["federation"]["rabbitmq"]
    assert (conf["host"], conf["port"], conf["user"]) == ("rabbitmq", 5673, "fw_9999")
    assert files["service_conf.yaml"][1] == 0o600 and files["keys/9999.key"][1] == 0o600
    raw["parties"][0]["public_key"], raw["parties"][1]["public_key"] = made["public_key"], None
    path.write_text(yaml.safe_dump(raw))
    plain = deployment(path, "10000")  # a party with its own broker: the files as the bundle has them
    generate(load_cluster(path), "10000", plain.bundle, KeyStore(tmp_path / "home10000"))
    raw_conf = (plain.bundle / "home" / "service_conf.yaml").read_bytes()
    assert host_network_files(plain)["service_conf.yaml"][0] == raw_conf
