"""This party's identity and the parties it knows: ``flow party ...``.

The private key lives where the runtime reads it (``<home>/keys/<id>.key``,
:class:`federation.auth.KeyStore`); peers and their addresses live in the route table
(``service_conf.route_table``, read by :meth:`federation.auth.RouteTable.load`). Every
change is validated with that loader and written atomically (temporary file, then
rename), so a reader never sees half a table and a refused change leaves it untouched.

A rotated key is announced by a signature of the new public key made with the old one:
a peer that still trusts the old key can accept the new one without another channel.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import uuid
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from federation.auth import KeyStore, PartyKeys, RouteTable, key_fingerprint
from flow.core.errors import ConfigError
from flow.core.ids import check_id
from flow.core.settings import ServiceConf

HEADER = ("# Route table: every party this one talks to, the Ed25519 public key that proves a\n"
          "# message comes from it (base64 of the raw 32 bytes) and where it receives.\n"
          "# Edited by `flow party ...` (see conf/route_table.yaml for the format).\n")
_BROKER = re.compile(r"(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d{1,5})(?:/(?P<vhost>.*))?")


def check_party_id(party_id: Any, where: str = "party id") -> str:
    """The one party-id rule (:mod:`flow.core.ids`), naming ``where`` when it is broken."""
    return check_id("party_id", party_id, where)


def decode_public_key(value: str, where: str = "--public-key") -> bytes:
    """The raw 32 bytes of a base64 Ed25519 public key, or ConfigError in one line."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: not valid base64 (expected the base64 of a raw 32-byte Ed25519 "
                          "public key, as `flow party show` prints it)") from None
    if len(raw) != 32:
        raise ConfigError(f"{where}: an Ed25519 public key is 32 bytes, this one is {len(raw)} "
                          "(expected the base64 of the raw key, as `flow party show` prints it)")
    return raw


def rotation_message(party_id: str, new_public_key: str) -> bytes:
    """What the old key signs: the party and its new key, under a label no other signature uses."""
    return b"fedweave key rotation\x00" + party_id.encode() + b"\x00" + decode_public_key(new_public_key)


def parse_rabbitmq(value: str) -> dict[str, Any]:
    """``HOST:PORT[/VHOST]`` as a route-table ``rabbitmq`` entry (credentials never go there)."""
    m = _BROKER.fullmatch(value.strip())
    if not m or not 1 <= int(m["port"]) <= 65535:
        raise ConfigError(f"--rabbitmq: '{value[:80]}' is not HOST:PORT[/VHOST] (e.g. mq.bank.example:5671/fedweave)")
    entry: dict[str, Any] = {"host": m["host"].strip("[]"), "port": int(m["port"])}
    if m["vhost"]:
        entry["vhost"] = m["vhost"]
    return entry


def parse_url(value: str, option: str, schemes: tuple[str, ...]) -> str:
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes or not rest or "@" in rest.split("/")[0]:
        raise ConfigError(f"{option}: '{value[:80]}' is not a {' or '.join(s + '://HOST:PORT' for s in schemes)} "
                          "url without credentials")
    return value


class PartyBook:
    """This home's key store and route table."""

    def __init__(self, conf: ServiceConf):
        self.home = conf.home_path
        self.keys = KeyStore(self.home)
        self.path = conf.route_table_path
        self.own_hint = str(conf.server.party_id or "")
        self.standalone = conf.mode == "standalone"

    # -- reading -------------------------------------------------------------------------------
    def table(self) -> RouteTable:
        return RouteTable.load(self.path) if self.path.is_file() else RouteTable()

    def own_id(self, party_id: str | None = None) -> str:
        """This party: the one asked for, else ``server.party_id``, else the only key in the home."""
        if party_id:
            return check_party_id(party_id, "--party-id")
        if self.own_hint:
            return check_party_id(self.own_hint, "server.party_id")
        ids = self.keys.party_ids()
        if len(ids) == 1:
            return ids[0]
        found = f"keys for {', '.join(ids)} in {self.keys.dir}" if ids else f"no key in {self.keys.dir}"
        raise ConfigError(f"which party is this one? {found}: pass --party-id (or run `flow party init "
                          "--party-id ID`, or set server.party_id in service_conf.yaml)")

    def _entry(self, table: RouteTable, pid: str) -> dict[str, Any]:
        route = table.parties.get(pid)
        return route.model_dump(exclude_none=True) if route else {}

    def describe(self, pid: str, entry: dict[str, Any], own: bool = False) -> dict[str, Any]:
        key = entry.get("public_key")
        return {"party_id": pid, "own": own, "public_key": key, "fingerprint": key_fingerprint(key) if key else None,
                **{k: v for k, v in entry.items() if k != "public_key"}}

    def show(self, party_id: str | None = None) -> dict[str, Any]:
        pid = self.own_id(party_id)
        keys = self.keys.load(pid)
        entry = self._entry(self.table(), pid)
        listed = entry.get("public_key")
        return {**self.describe(pid, {**entry, "public_key": keys.public_key_b64}, own=True),
                "key_file": str(self.keys.path(pid)), "route_table": str(self.path),
                "in_route_table": listed == keys.public_key_b64 if listed else False}

    def entries(self) -> list[dict[str, Any]]:
        own = set(self.keys.party_ids())
        return [self.describe(pid, self._entry(self.table(), pid), own=pid in own)
                for pid in sorted(self.table().parties)]

    # -- changing ------------------------------------------------------------------------------
    def init(self, party_id: str, routes: dict[str, Any]) -> dict[str, Any]:
        """Create this party's key if absent and list it (with ``routes``) in the route table."""
        pid = check_party_id(party_id, "--party-id")
        created = not self.keys.path(pid).exists()
        keys = self.keys.load_or_create(pid)
        table = self.table()
        self.write(table, pid, {**self._entry(table, pid), **routes, "public_key": keys.public_key_b64})
        out = {**self.show(pid), "created": created}
        if self.standalone:
            out["note"] = (f"{self.path} now lists the parties this home trusts: a job run here verifies "
                           "every party against it, so list each party of a job (flow party add)")
        return out

    def add(self, party_id: str, public_key: str, routes: dict[str, Any],
            rotated_from: str | None = None, signature: str | None = None, replace: bool = False) -> dict[str, Any]:
        pid = check_party_id(party_id)
        decode_public_key(public_key)
        table = self.table()
        entry = self._entry(table, pid)
        listed = entry.get("public_key")
        if pid in self.keys.party_ids() and self.keys.load(pid).public_key_b64 != public_key:
            raise ConfigError(f"party {pid} is this party (its key is {self.keys.path(pid)}): "
                              "its key changes with `flow party rotate-key`, not `flow party add`")
        if rotated_from is not None:
            self._check_rotation(pid, public_key, rotated_from, signature, listed)
        elif listed and listed != public_key and not replace:
            raise ConfigError(f"party {pid} is listed with another key (fingerprint {key_fingerprint(listed)}): "
                              "give --rotated-from OLD --signature SIG as printed by its `flow party rotate-key`, "
                              "or --replace if its new key reached you by a channel you trust")
        self.write(table, pid, {**entry, **routes, "public_key": public_key})
        return {**self.describe(pid, self._entry(self.table(), pid)), "replaced": listed
                if listed and listed != public_key else None}

    def _check_rotation(self, pid: str, new: str, old: str, signature: str | None, listed: str | None) -> None:
        decode_public_key(old, "--rotated-from")
        if listed != old:
            now = f"its listed key is {key_fingerprint(listed)}" if listed else "it has no key listed"
            raise ConfigError(f"--rotated-from: party {pid} is not listed with that key ({now}): "
                              "a rotation is accepted only from the key this table trusts")
        if not signature:
            raise ConfigError("--signature: required with --rotated-from (printed by the party's "
                              "`flow party rotate-key`)")
        try:
            sig = base64.b64decode(signature, validate=True)
            Ed25519PublicKey.from_public_bytes(decode_public_key(old)).verify(sig, rotation_message(pid, new))
        except (binascii.Error, ValueError, InvalidSignature):
            raise ConfigError(f"--signature: not party {pid}'s old key ({key_fingerprint(old)}) signing the new key "
                              f"({key_fingerprint(new)}); nothing was changed") from None

    def remove(self, party_id: str) -> dict[str, Any]:
        pid = check_party_id(party_id)
        table = self.table()
        if pid not in table.parties:
            raise ConfigError(f"party {pid} is not in the route table {self.path}")
        if pid in self.keys.party_ids():
            raise ConfigError(f"party {pid} is this party: removing it would stop every job of it here")
        removed = self.describe(pid, self._entry(table, pid))
        self.write(table, pid, None)
        return {"removed": removed, "route_table": str(self.path)}

    def rotate(self, party_id: str | None = None) -> dict[str, Any]:
        """A new key for this party; the old one is kept under keys/retired/ and signs the new."""
        pid = self.own_id(party_id)
        old = self.keys.load(pid)
        new = PartyKeys.generate(pid)
        signature = base64.b64encode(old.sign(rotation_message(pid, new.public_key_b64))).decode()
        path = self.keys.path(pid)
        retired = path.parent / "retired" / f"{pid}.{key_fingerprint(old)}.key"
        retired.parent.mkdir(mode=0o700, exist_ok=True)
        _write_atomic(retired, old.to_pem(), 0o600)
        _write_atomic(path, new.to_pem(), 0o600)
        table = self.table()
        if pid in table.parties:
            self.write(table, pid, {**self._entry(table, pid), "public_key": new.public_key_b64})
        return {"party_id": pid, "public_key": new.public_key_b64, "fingerprint": key_fingerprint(new),
                "previous_public_key": old.public_key_b64, "previous_fingerprint": key_fingerprint(old),
                "signature": signature, "retired_key_file": str(retired),
                "peers_run": f"flow party add {pid} --public-key {new.public_key_b64} "
                             f"--rotated-from {old.public_key_b64} --signature {signature}",
                "note": "restart this party's flow server to sign with the new key"}

    def write(self, table: RouteTable, pid: str, entry: dict[str, Any] | None) -> None:
        """The table with ``pid``'s entry set (or removed, for None), checked by the route-table
        loader before it replaces the file."""
        data = table.model_dump(exclude_none=True)
        parties = dict(data.get("parties", {}))
        if entry is None:
            parties.pop(pid, None)
        else:
            parties[pid] = {"public_key": entry.get("public_key"),
                            **{k: v for k, v in entry.items() if k != "public_key"}}
        data["parties"] = parties
        write_route_table(self.path, data)


def write_route_table(path: Path, data: dict[str, Any]) -> RouteTable:
    """Validate ``data`` as a route table and write it to ``path`` atomically."""
    RouteTable.from_dict(data, source=str(path))
    text = HEADER + "\n" + yaml.safe_dump(data, sort_keys=False)
    _write_atomic(path, text.encode(), 0o644, check=RouteTable.load)
    return RouteTable.load(path)


def _write_atomic(path: Path, data: bytes, mode: int, check: Any = None) -> None:
    """``data`` into ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
