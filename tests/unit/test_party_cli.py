"""`flow party ...`: this party's key and its route table, edited through the CLI and read
back with the loaders the runtime uses (KeyStore, RouteTable)."""

from __future__ import annotations

import base64
import json
import stat

import pytest
from click.testing import CliRunner

from federation.auth import KeyStore, PartyKeys, RouteTable, key_fingerprint


@pytest.fixture
def flow(tmp_path):
    import flow.cli.party  # noqa: F401 - registers the group
    from flow.cli.main import cli

    def run(*args: str) -> tuple[int, dict, str]:
        res = CliRunner(env={"FLOW_HOME": str(tmp_path), "FEDWEAVE_SERVICE_CONF": None}).invoke(
            cli, list(args), catch_exceptions=False)
        return res.exit_code, json.loads(res.stdout) if res.stdout.strip() else {}, res.stderr

    run.home = tmp_path  # type: ignore[attr-defined]
    return run


def ok(flow, *args: str) -> dict:
    code, out, err = flow(*args)
    assert code == 0, err
    return out["data"]


def peer_key() -> str:
    return PartyKeys.generate("x").public_key_b64


def test_init_makes_the_key_the_runtime_reads_and_lists_it(flow):
    data = ok(flow, "party", "init", "--party-id", "9999", "--rabbitmq", "mq.bank.example:5671/fedweave")
    keys = KeyStore(flow.home).load("9999")
    assert data["public_key"] == keys.public_key_b64
    assert len(base64.b64decode(data["public_key"])) == 32
    assert data["fingerprint"] == key_fingerprint(keys) and data["created"] is True
    assert stat.S_IMODE((flow.home / "keys" / "9999.key").stat().st_mode) == 0o600
    table = RouteTable.load(flow.home / "route_table.yaml")
    assert table.parties["9999"].public_key == keys.public_key_b64
    assert table.parties["9999"].model_extra["rabbitmq"] == {"host": "mq.bank.example", "port": 5671,
                                                             "vhost": "fedweave"}
    again = ok(flow, "party", "init", "--party-id", "9999")  # the key is kept, not replaced
    assert again["public_key"] == data["public_key"] and again["created"] is False
    assert ok(flow, "party", "show")["public_key"] == data["public_key"]  # the only key in the home


def test_add_list_remove_a_peer(flow):
    ok(flow, "party", "init", "--party-id", "9999")
    key = peer_key()
    ok(flow, "party", "add", "10000", "--public-key", key, "--rabbitmq", "10.1.2.3:5672",
       "--pulsar", "pulsar+ssl://pulsar.retail.example:6651", "--server", "https://fw.retail.example:9380")
    table = RouteTable.load(flow.home / "route_table.yaml")
    assert table.parties["10000"].public_key == key
    extra = table.parties["10000"].model_extra
    assert extra["rabbitmq"] == {"host": "10.1.2.3", "port": 5672}
    assert extra["pulsar"] == {"url": "pulsar+ssl://pulsar.retail.example:6651"}
    listed = {p["party_id"]: p for p in ok(flow, "party", "list")}
    assert set(listed) == {"9999", "10000"} and listed["9999"]["own"] and not listed["10000"]["own"]
    assert listed["10000"]["fingerprint"] == key_fingerprint(key)
    ok(flow, "party", "remove", "10000")
    assert set(RouteTable.load(flow.home / "route_table.yaml").parties) == {"9999"}
    code, _, err = flow("party", "remove", "10000")
    assert code == 2 and "not in the route table" in err


@pytest.mark.parametrize("bad, says", [
    ("not base64!", "not valid base64"),
    (base64.b64encode(b"x" * 31).decode(), "32 bytes, this one is 31"),
    (base64.b64encode(b"x" * 33).decode(), "32 bytes, this one is 33"),
])
def test_a_malformed_key_is_one_line_exit_2_and_nothing_written(flow, bad, says):
    ok(flow, "party", "init", "--party-id", "9999")
    before = (flow.home / "route_table.yaml").read_bytes()
    code, out, err = flow("party", "add", "10000", "--public-key", bad)
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    assert (flow.home / "route_table.yaml").read_bytes() == before
    assert not [p for p in flow.home.iterdir() if p.name.endswith(".tmp")]


def test_a_bad_address_is_refused_before_anything_is_written(flow):
    code, _, err = flow("party", "add", "10000", "--public-key", peer_key(), "--rabbitmq", "no-port")
    assert code == 2 and "--rabbitmq" in err
    code, _, err = flow("party", "add", "10000", "--public-key", peer_key(), "--pulsar", "pulsar://u:p@host:6650")
    assert code == 2 and "--pulsar" in err
    assert not (flow.home / "route_table.yaml").exists()


def test_a_listed_key_is_not_silently_replaced(flow):
    first = peer_key()
    ok(flow, "party", "add", "10000", "--public-key", first)
    code, _, err = flow("party", "add", "10000", "--public-key", peer_key())
    assert code == 2 and "listed with another key" in err
    assert RouteTable.load(flow.home / "route_table.yaml").parties["10000"].public_key == first


def test_a_rotated_key_is_accepted_by_a_peer_only_with_the_old_keys_signature(tmp_path, flow):
    """Party 9999 rotates; its peer (another home) takes the new key with the printed command."""
    ok(flow, "party", "init", "--party-id", "9999")
    old = ok(flow, "party", "show")["public_key"]
    peer = tmp_path / "peer"
    peer.mkdir()

    def at_peer(*args: str) -> tuple[int, dict, str]:
        from flow.cli.main import cli

        res = CliRunner(env={"FLOW_HOME": str(peer), "FEDWEAVE_SERVICE_CONF": None}).invoke(
            cli, list(args), catch_exceptions=False)
        return res.exit_code, json.loads(res.stdout) if res.stdout.strip() else {}, res.stderr

    assert at_peer("party", "add", "9999", "--public-key", old)[0] == 0
    rotated = ok(flow, "party", "rotate-key")
    new = rotated["public_key"]
    assert rotated["previous_public_key"] == old and new != old
    assert KeyStore(flow.home).load("9999").public_key_b64 == new  # the runtime signs with the new key
    assert RouteTable.load(flow.home / "route_table.yaml").parties["9999"].public_key == new
    assert (flow.home / "keys" / "retired" / f"9999.{key_fingerprint(old)}.key").is_file()

    forged = base64.b64encode(PartyKeys.generate("9999").sign(b"anything")).decode()
    code, _, err = at_peer("party", "add", "9999", "--public-key", new, "--rotated-from", old,
                           "--signature", forged)
    assert code == 2 and "--signature" in err
    code, _, err = at_peer("party", "add", "9999", "--public-key", new, "--rotated-from", new,
                           "--signature", rotated["signature"])
    assert code == 2 and "not listed with that key" in err
    assert RouteTable.load(peer / "route_table.yaml").parties["9999"].public_key == old

    args = rotated["peers_run"].split()[1:]  # the command it printed, as the peer runs it
    code, out, err = at_peer(*args)
    assert code == 0, err
    table = RouteTable.load(peer / "route_table.yaml")
    assert table.parties["9999"].public_key == new
    msg = b"a message signed after the rotation"
    table.verify("9999", msg, KeyStore(flow.home).load("9999").sign(msg))


def test_show_without_a_party_asks_which_one(flow):
    code, _, err = flow("party", "show")
    assert code == 2 and "--party-id" in err
