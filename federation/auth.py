"""Party identities: Ed25519 keys that sign what a party sends, and the route table
that says which public key (and, for brokers, which address) belongs to which party.

A receiver trusts a message only if the key listed for its claimed sender in the
route table verifies the signature; the route table is the one place trust is set.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
import uuid
from pathlib import Path
from typing import Any, Iterable

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from flow.core.errors import AuthError, ConfigError

log = logging.getLogger(__name__)

KEY_DIR = "keys"


def _b64_public(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def key_fingerprint(key: Ed25519PublicKey | PartyKeys | str) -> str:
    """A short name of a public key for messages and logs: the first 16 hex digits of the
    sha256 of its raw 32 bytes. ``key`` may be the route table's base64 or a party's keys."""
    if isinstance(key, PartyKeys):
        key = key.public_key
    raw = base64.b64decode(key) if isinstance(key, str) else key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


class PartyKeys:
    """A party's private key; it signs every message the party sends."""

    def __init__(self, party_id: str, private_key: Ed25519PrivateKey):
        self.party_id = str(party_id)
        self._key = private_key

    @classmethod
    def generate(cls, party_id: str) -> "PartyKeys":
        """A fresh key held in memory only (tests, ephemeral parties)."""
        return cls(party_id, Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def public_key_b64(self) -> str:
        """What goes into the other parties' route tables."""
        return _b64_public(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(bytes(data))

    def to_pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


class KeyStore:
    """Private keys under ``<home>/keys/<party_id>.key`` (PEM, mode 0600)."""

    def __init__(self, home: str | os.PathLike[str]):
        self.dir = Path(home) / KEY_DIR

    def path(self, party_id: str) -> Path:
        pid = str(party_id)
        if not pid or "/" in pid or "\\" in pid or pid.startswith("."):
            raise ConfigError(f"invalid party id '{pid}' for a key file name")
        return self.dir / f"{pid}.key"

    def party_ids(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.key")) if self.dir.is_dir() else []

    def load(self, party_id: str) -> PartyKeys:
        path = self.path(party_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"no private key for party {party_id}: {path} does not exist") from None
        if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
            log.warning("private key %s is readable by other users; chmod 600 it", path)
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"{path}: not an Ed25519 key")
        return PartyKeys(party_id, key)

    def load_or_create(self, party_id: str) -> PartyKeys:
        """The party's key, created on first use. Safe when several processes race to
        create it: the first hard link wins and everyone loads the winner."""
        path = self.path(party_id)
        if not path.exists():
            self._create(path, PartyKeys.generate(party_id))
        return self.load(party_id)

    def _create(self, path: Path, keys: PartyKeys) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.dir / f".{path.name}.{uuid.uuid4().hex}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(keys.to_pem())
                fh.flush()
                os.fsync(fh.fileno())
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)


class PartyRoute(BaseModel):
    """One party's entry. Transports read their own fields (e.g. ``rabbitmq: {host, port}``,
    ``pulsar: {url, tenant}``), so any extra field is kept."""

    model_config = ConfigDict(extra="allow")

    #: base64 of the raw 32-byte Ed25519 public key
    public_key: str | None = None

    @field_validator("public_key")
    @classmethod
    def _check_key(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
        return v


class RouteTable(BaseModel):
    """Parties by party id; loaded from ``conf/route_table.yaml``."""

    model_config = ConfigDict(extra="allow")

    parties: dict[str, PartyRoute] = Field(default_factory=dict)
    _keys: dict[str, Ed25519PublicKey] = PrivateAttr(default_factory=dict)

    @field_validator("parties", mode="before")
    @classmethod
    def _str_ids(cls, v: Any) -> Any:
        return {str(k): ({} if r is None else r) for k, r in v.items()} if isinstance(v, dict) else v

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "RouteTable":
        """Read a YAML route table; ConfigError names the file and the bad field."""
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read route table {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "route table") -> "RouteTable":
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise ConfigError(f"{source}: {where}: {err['msg']}") from None

    def dump(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(yaml.safe_dump(self.model_dump(exclude_none=True), sort_keys=False))

    def route(self, party_id: str) -> PartyRoute:
        try:
            return self.parties[str(party_id)]
        except KeyError:
            raise AuthError(f"unknown party {party_id}: not in the route table") from None

    def public_key(self, party_id: str) -> Ed25519PublicKey:
        pid = str(party_id)
        key = self._keys.get(pid)
        if key is None:
            b64 = self.route(pid).public_key
            if b64 is None:
                raise AuthError(f"party {pid} has no public key in the route table")
            key = self._keys[pid] = Ed25519PublicKey.from_public_bytes(base64.b64decode(b64))
        return key

    def verify(self, party_id: str, data: bytes, signature: bytes) -> None:
        """Raise AuthError unless ``signature`` is ``party_id``'s signature of ``data``."""
        try:
            self.public_key(party_id).verify(bytes(signature), bytes(data))
        except InvalidSignature:
            raise AuthError(f"bad signature: not signed by party {party_id}'s key") from None

    def with_party(self, party_id: str, public_key_b64: str, **fields: Any) -> "RouteTable":
        """A copy with one party added or replaced."""
        parties = {k: v.model_dump(exclude_none=True) for k, v in self.parties.items()}
        parties[str(party_id)] = {**parties.get(str(party_id), {}), **fields, "public_key": public_key_b64}
        return RouteTable.from_dict({**self.model_dump(exclude={"parties"}), "parties": parties})


def standalone_route_table(home: str | os.PathLike[str], party_ids: Iterable[str]) -> RouteTable:
    """All parties on this machine: create any missing key under ``home`` and list them all."""
    store = KeyStore(home)
    parties = {str(p): {"public_key": store.load_or_create(str(p)).public_key_b64} for p in party_ids}
    return RouteTable.from_dict({"parties": parties})


def route_table_for(home: str | os.PathLike[str], path: str | os.PathLike[str] | None,
                    party_ids: Iterable[str]) -> RouteTable:
    """The route table a party verifies messages against: the file at ``path`` when it
    exists (a deployment, where each party's public key was handed over out of band),
    else the keys on this machine (standalone). Every party of the job must be in it."""
    ids = [str(p) for p in party_ids]
    if path is None or not Path(path).is_file():
        return standalone_route_table(home, ids)
    table = RouteTable.load(path)
    missing = [p for p in ids if p not in table.parties or table.parties[p].public_key is None]
    if missing:
        raise ConfigError(f"{path}: no public key for part{'ies' if len(missing) > 1 else 'y'} "
                          f"{', '.join(missing)} of this job")
    return table
