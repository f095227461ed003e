"""Party keys, the key store and the route table."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from federation.auth import KeyStore, PartyKeys, RouteTable, standalone_route_table
from flow.core.errors import AuthError, ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_key_is_created_private_and_reloaded(tmp_path):
    store = KeyStore(tmp_path)
    first = store.load_or_create("9999")
    path = tmp_path / "keys" / "9999.key"
    assert path.is_file()
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = store.load_or_create("9999")
    assert again.public_key_b64 == first.public_key_b64
    assert store.load_or_create("10000").public_key_b64 != first.public_key_b64
    assert store.party_ids() == ["10000", "9999"]


def test_racing_creators_all_get_the_same_key(tmp_path):
    store, results, start = KeyStore(tmp_path), [], threading.Barrier(8)

    def create():
        start.wait()
        results.append(store.load_or_create("10000").public_key_b64)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["10000.key"]  # no temp files left


def test_missing_and_corrupt_keys(tmp_path):
    store = KeyStore(tmp_path)
    with pytest.raises(ConfigError, match="no private key for party 7"):
        store.load("7")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "7.key").write_text("not a key")
    with pytest.raises(ConfigError, match="7.key"):
        store.load("7")
    with pytest.raises(ConfigError, match="invalid party id"):
        store.path("../etc")


def test_sign_and_verify(tmp_path):
    table = standalone_route_table(tmp_path, ["9999", 10000])
    keys = KeyStore(tmp_path).load("9999")
    sig = keys.sign(b"hello")
    table.verify("9999", b"hello", sig)
    with pytest.raises(AuthError, match="bad signature"):
        table.verify("9999", b"hellO", sig)
    with pytest.raises(AuthError, match="bad signature"):
        table.verify("10000", b"hello", sig)
    with pytest.raises(AuthError, match="unknown party 6666"):
        table.verify("6666", b"hello", sig)
    with pytest.raises(AuthError, match="bad signature"):
        table.verify("9999", b"hello", PartyKeys.generate("9999").sign(b"hello"))


def test_party_without_key_cannot_be_verified():
    table = RouteTable.from_dict({"parties": {"5": {"rabbitmq": {"host": "mq"}}}})
    with pytest.raises(AuthError, match="party 5 has no public key"):
        table.verify("5", b"x", b"\0" * 64)


def test_route_table_yaml_keeps_open_schema(tmp_path):
    pub = PartyKeys.generate("9999").public_key_b64
    path = tmp_path / "route_table.yaml"
    path.write_text(
        f"parties:\n  9999:\n    public_key: {pub}\n    rabbitmq: {{host: mq.example, port: 5672}}\n"
        "  10000:\nexchange: {host: proxy}\n"
    )
    table = RouteTable.load(path)
    assert set(table.parties) == {"9999", "10000"}
    assert table.route("9999").rabbitmq == {"host": "mq.example", "port": 5672}
    assert table.exchange == {"host": "proxy"}
    table.dump(tmp_path / "copy.yaml")
    copy = RouteTable.load(tmp_path / "copy.yaml")
    assert copy.route("9999").public_key == pub and copy.route("9999").rabbitmq["port"] == 5672


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("parties:\n  9999:\n    public_key: '%%%'\n", r"parties\.9999\.public_key: .*base64"),
        (f"parties:\n  9999:\n    public_key: {base64.b64encode(b'short').decode()}\n", r"parties\.9999.*32 bytes"),
        ("parties: [1, 2]\n", "parties"),
        ("parties: {a: 1\n", "not valid YAML"),
    ],
)
def test_bad_route_tables_name_the_field(tmp_path, text, match):
    path = tmp_path / "rt.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        RouteTable.load(path)
    assert str(path) in str(err.value)


def test_missing_route_table_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read route table"):
        RouteTable.load(tmp_path / "nope.yaml")


def test_standalone_route_table_creates_missing_keys(tmp_path):
    existing = KeyStore(tmp_path).load_or_create("9999")
    table = standalone_route_table(tmp_path, ["9999", "10000"])
    assert table.route("9999").public_key == existing.public_key_b64
    assert table.route("10000").public_key == KeyStore(tmp_path).load("10000").public_key_b64


def test_with_party_adds_a_key():
    keys = PartyKeys.generate("3")
    table = RouteTable().with_party("3", keys.public_key_b64, pulsar={"url": "pulsar://x"})
    table.verify("3", b"m", keys.sign(b"m"))
    assert table.route("3").pulsar == {"url": "pulsar://x"}


def test_example_route_table_loads():
    table = RouteTable.load(REPO / "conf" / "route_table.yaml")
    assert table.parties
    for pid, route in table.parties.items():
        assert route.public_key, f"party {pid} of the example lacks a public key"
        table.public_key(pid)


def test_route_table_for_prefers_the_file_and_names_missing_parties(tmp_path):
    import pytest as _pytest

    from federation.auth import KeyStore, RouteTable, route_table_for
    from flow.core.errors import ConfigError

    home = tmp_path / "home"
    # no file: the keys on this machine, created as needed
    table = route_table_for(home, home / "route_table.yaml", ["9999", "10000"])
    assert set(table.parties) == {"9999", "10000"}
    # a file: only what it lists, and every party of the job must be there
    other = KeyStore(tmp_path / "elsewhere").load_or_create("10000")
    path = tmp_path / "rt.yaml"
    RouteTable.from_dict({"parties": {"10000": {"public_key": other.public_key_b64}}}).dump(path)
    assert route_table_for(home, path, ["10000"]).parties["10000"].public_key == other.public_key_b64
    with _pytest.raises(ConfigError, match=r"rt.yaml: no public key for party 9999"):
        route_table_for(home, path, ["9999", "10000"])
