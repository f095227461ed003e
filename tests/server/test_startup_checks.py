"""`flow server start` checks its configuration before it listens: one line naming the
setting and its fix, exit 2, nothing served. And `flow --version`."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flow.core.errors import ValidationError
from flow.core.settings import ServiceConf, load_service_conf
from flow.server import preflight

ROOT = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_urlsafe(32)
PARTIES = ("9999", "10000")


def _home(tmp_path: Path, *, federation: dict | None = None, server: dict | None = None,
          route_table: bool = True, peer: dict | None = None) -> Path:
    """A cluster party's home (9999): its service conf and, unless told, its route table."""
    from federation.auth import KeyStore, RouteTable

    home = tmp_path / "org_9999"
    home.mkdir(exist_ok=True)
    fed = federation if federation is not None else {"rabbitmq": {"url": "amqps://broker.example:5671/"}}
    engine = next((k for k in ("rabbitmq", "pulsar") if k in fed), "rabbitmq")
    (home / "service_conf.yaml").write_text(yaml.safe_dump({
        "mode": "cluster", "home": str(home), "default_engines": {"federation": engine}, "federation": fed,
        "route_table": "route_table.yaml", "server": {"token": TOKEN, "party_id": "9999", **(server or {})}}))
    if route_table:
        parties = {p: {"public_key": KeyStore(home).load_or_create(p).public_key_b64} for p in PARTIES}
        parties["10000"].update(peer or {})
        RouteTable.from_dict({"parties": parties}).dump(home / "route_table.yaml")
    return home


def _problems(home: Path) -> list[str]:
    try:
        preflight.check(load_service_conf(home / "service_conf.yaml"))
    except ValidationError as exc:
        return exc.problems
    return []


def _start(home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, FLOW_HOME=str(home))
    env.pop("FEDWEAVE_SERVICE_CONF", None)
    return subprocess.run([sys.executable, "-m", "flow.cli.main", "server", "start", "--port", "0"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_cluster_server_without_its_route_table_refuses_to_start_in_one_line(tmp_path: Path):
    home = _home(tmp_path, route_table=False)
    res = _start(home)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "route_table: cannot read route table" in lines[0], res.stderr
    assert str(home / "route_table.yaml") in lines[0]
    assert "listening" not in res.stderr and "Traceback" not in res.stderr
    assert json.loads(res.stdout)["retcode"] == 2
    assert not (home / "server.json").exists()


def test_a_plain_text_broker_is_refused_naming_the_setting_that_accepts_it(tmp_path: Path):
    home = _home(tmp_path, federation={"rabbitmq": {"url": "amqp://guest:guest@127.0.0.1:5672/"}})
    res = _start(home)
    assert res.returncode == 2, res.stderr
    [line] = res.stderr.strip().splitlines()
    assert "federation.rabbitmq: amqp://127.0.0.1:5672/%2F has no TLS (use an amqps:// url, or ssl: true)" in line
    assert "unless federation.allow_insecure_transport is true" in line and "listening" not in res.stderr

    insecure = _home(tmp_path, federation={"rabbitmq": {"url": "amqp://127.0.0.1:5672/"},
                                           "allow_insecure_transport": True})
    assert _problems(insecure) == []


@pytest.mark.parametrize("rabbit, peer, refused", [
    ({"host": "127.0.0.1"}, None, "federation.rabbitmq: amqp://127.0.0.1:5672/%2F has no TLS"),
    ({"host": "broker.example", "ssl": True}, None, None),
    ({"url": "amqps://broker.example/"}, {"rabbitmq": {"url": "amqp://peer.example/"}},
     "route table: parties.10000.rabbitmq: amqp://peer.example:5672/%2F has no TLS"),
    ({"url": "amqps://broker.example/"}, {"rabbitmq": {"host": "peer.example", "ssl": True}}, None),
])
def test_rabbitmq_brokers_are_reached_over_tls(tmp_path: Path, rabbit, peer, refused):
    problems = _problems(_home(tmp_path, federation={"rabbitmq": rabbit}, peer=peer))
    if refused is None:
        assert problems == []
    else:
        assert len(problems) == 1 and refused in problems[0], problems


@pytest.mark.parametrize("pulsar, peer, refused", [
    ({"service_url": "pulsar://127.0.0.1:6650"}, None,
     "federation.pulsar.service_url: pulsar://127.0.0.1:6650 has no TLS (use pulsar+ssl://host:6651)"),
    ({"service_url": "pulsar+ssl://broker.example:6651"}, None, None),
    ({"service_url": "pulsar+ssl://broker.example:6651", "tls_allow_insecure_connection": True}, None,
     "federation.pulsar.tls_allow_insecure_connection: true accepts any broker certificate"),
    ({"service_url": "pulsar+ssl://broker.example:6651"}, {"pulsar": {"url": "pulsar://peer.example:6650"}},
     "route table: parties.10000.pulsar.url: pulsar://peer.example:6650 has no TLS"),
])
def test_pulsar_clusters_are_reached_over_verified_tls(tmp_path: Path, pulsar, peer, refused):
    problems = _problems(_home(tmp_path, federation={"pulsar": pulsar}, peer=peer))
    if refused is None:
        assert problems == []
    else:
        assert len(problems) == 1 and refused in problems[0] and "allow_insecure_transport" in problems[0], problems


@pytest.mark.parametrize("token, refused", [
    ("cluster-token", "server.token: the API token has 13 characters, fewer than 32 random bytes (43 characters)"),
    (secrets.token_urlsafe(32), None),
    (secrets.token_hex(21), "server.token: the API token has 42 hex digits, fewer than 32 random bytes (64 hex"),
    (secrets.token_hex(32), None),
    ("xy" * 30, "server.token: the API token repeats 2 characters, it is not random"),
], ids=["short", "urlsafe-32", "hex-21", "hex-32", "repeated"])  # fixed ids: the tokens differ per collection
def test_a_cluster_server_token_has_32_random_bytes(tmp_path: Path, token, refused):
    problems = _problems(_home(tmp_path, server={"token": token}))
    if refused is None:
        assert problems == []
    else:
        assert len(problems) == 1 and refused in problems[0], problems
        assert "secrets.token_urlsafe(32)" in problems[0]


def test_a_short_token_file_is_refused_and_a_generated_one_is_not_needed_yet(tmp_path: Path):
    home = _home(tmp_path, server={"token": ""})
    assert _problems(home) == []  # no token file yet: start writes a random one
    (home / "server_token").write_text("short\n")
    [problem] = _problems(home)
    assert problem.startswith(f"{home / 'server_token'}: the API token has 5 characters"), problem

    res = _start(home)
    assert res.returncode == 2 and res.stderr.strip().splitlines() == [problem], res.stderr


def test_every_problem_is_told_at_once_and_standalone_is_not_checked(tmp_path: Path):
    home = _home(tmp_path, route_table=False, server={"token": "short", "party_id": ""},
                 federation={"pulsar": {"service_url": "pulsar://127.0.0.1:6650"}})
    problems = _problems(home)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "server.party_id is required when mode is 'cluster' (set it to this party's id",
        "route_table", "federation.pulsar.service_url", "server.token"], problems
    standalone = ServiceConf(home=str(home), server={"token": "short"},
                             federation={"rabbitmq": {"url": "amqp://127.0.0.1/"}})
    preflight.check(standalone)  # a standalone server reaches no broker of another organisation


def test_a_bad_key_file_is_refused(tmp_path: Path):
    home = _home(tmp_path)
    (home / "keys" / "9999.key").write_text("not a key")
    [problem] = _problems(home)
    assert "9999.key: not an unencrypted PEM private key" in problem, problem


def test_without_the_server_extra_start_names_the_install_command(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    import flow.cli.server  # noqa: F401 - registers `flow server`
    from flow.cli.main import cli

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` raises ModuleNotFoundError
    res = CliRunner(env={"FLOW_HOME": str(tmp_path), "FEDWEAVE_SERVICE_CONF": None}).invoke(
        cli, ["server", "start", "--port", "0"])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().splitlines() == [
        "error: flow server start needs the server extra (uvicorn is not installed): pip install 'fedweave[server]'"]
    assert not (tmp_path / "server.json").exists()


def test_flow_version_prints_the_package_version():
    from importlib.metadata import version

    res = subprocess.run([sys.executable, "-m", "flow.cli.main", "--version"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"fedweave {version('fedweave')}", res
