"""The consortium file, ``cluster.yaml``: every party, its engines, image and resources.

One file describes the whole consortium (as KubeFATE's cluster.yaml or NVFlare's
project.yml do); ``flow cluster generate`` turns it into one party's bundle. It holds
public keys only: private keys, tokens and broker passwords of other parties never
appear in it. Every problem is one line naming the party and the field.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticError

from flow.core.errors import ValidationError
from flow.core.ids import PartyId

_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_QUANTITY = re.compile(r"\d+(\.\d+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?")
_DNS = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")
#: a DNS-1123 label: what a party's names (``<consortium>-<party>``) must be on every target
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
#: Spark's memory sizes (512m, 1g): they go into the workers' ``sh -c`` command, so nothing else
_SPARK_MEMORY = re.compile(r"\d+[kmgtKMGT]?")
_ACCOUNT = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def dns_name(*parts: str) -> str:
    """``parts`` joined by ``-`` as Kubernetes and Docker names take them (lower case, ``_`` as
    ``-``): the one rule, so this module can refuse ids that would meet or break a name."""
    return "-".join(parts).lower().replace("_", "-")[:63]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Image(_Strict):
    """The flow server image; the tag is pinned (never ``latest``) so every party runs what was agreed."""

    repository: str = Field("fedweave/fedweave", min_length=1)
    tag: str

    @field_validator("tag")
    @classmethod
    def _pinned(cls, v: str) -> str:
        if not _TAG.fullmatch(v) or v == "latest":
            raise ValueError(f"'{v}' is not a pinned image tag (a version such as 0.1.0, not 'latest')")
        return v


class Address(_Strict):
    """Where the party's flow server (and a bundled broker) is reached by its clients and peers."""

    host: str = Field(min_length=1)
    port: int = Field(9380, ge=1, le=65535)


class LocalComputing(_Strict):
    engine: Literal["local"]
    #: worker processes; 0 = all cores of the server's machine
    workers: int = Field(0, ge=0)
    partitions: int = Field(4, ge=1)


class SparkComputing(_Strict):
    engine: Literal["spark"]
    #: Spark workers run beside the server (replicas) when ``master`` is left out
    workers: int = Field(2, ge=1, le=256)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = "1g"
    partitions: int = Field(4, ge=1)
    #: an existing Spark master (spark://host:7077); none = one is run beside the server
    master: str | None = None

    @field_validator("worker_memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not _SPARK_MEMORY.fullmatch(v):
            raise ValueError(f"{v!r} is not a Spark memory size (a number and k, m, g or t: 512m, 1g)")
        return v


class LocalfsStorage(_Strict):
    engine: Literal["localfs"]


class HdfsStorage(_Strict):
    engine: Literal["hdfs"]
    url: str = Field(min_length=1)
    base: str = "/fedweave"
    user: str | None = None


class HiveStorage(_Strict):
    engine: Literal["hive"]
    host: str = Field(min_length=1)
    port: int = Field(10000, ge=1, le=65535)
    database: str = "fedweave"
    username: str | None = None
    auth: str = "NONE"


class RabbitBroker(_Strict):
    """A broker the party receives on. ``user``/``password`` are this party's own and go into
    its service_conf only, never into a peer's route table."""

    host: str = Field(min_length=1)
    port: int = Field(5672, ge=1, le=65535)
    vhost: str = "/"
    ssl: bool = False
    #: an account name: it goes into the rabbitmqctl lines the peers' bundle READMEs print
    user: str | None = None
    password: str | None = None

    @field_validator("user")
    @classmethod
    def _account(cls, v: str | None) -> str | None:
        if v is not None and not _ACCOUNT.fullmatch(v):
            raise ValueError(f"{v!r} is not a broker account name (1 to 64 letters, digits, _ . @ -)")
        return v


class PulsarBroker(_Strict):
    url: str = Field(pattern=r"^pulsar(\+ssl)?://\S+$")
    tenant: str = "public"
    namespace: str = "default"


class RabbitFederation(_Strict):
    engine: Literal["rabbitmq"]
    #: a broker's address, or ``bundled``: a RabbitMQ run beside the server, on address.host
    broker: Union[Literal["bundled"], RabbitBroker]
    #: published port of a bundled broker
    broker_port: int = Field(5672, ge=1, le=65535)
    #: accept plain AMQP (a broker on a network as trusted as the machine itself)
    allow_insecure: bool = False

    @model_validator(mode="after")
    def _bundled_is_plain(self) -> "RabbitFederation":
        if self.broker == "bundled" and not self.allow_insecure:
            raise ValueError("a bundled broker speaks plain AMQP (no TLS certificates are generated): set "
                             "allow_insecure: true only on a trusted network, or give a TLS broker's address")
        return self


class PulsarFederation(_Strict):
    engine: Literal["pulsar"]
    broker: PulsarBroker
    allow_insecure: bool = False

    @field_validator("broker", mode="before")
    @classmethod
    def _no_bundled(cls, v: Any) -> Any:
        if v == "bundled":
            raise ValueError("not supported: broker: bundled for pulsar (run a Pulsar cluster and give its url)")
        return v


Computing = Annotated[Union[LocalComputing, SparkComputing], Field(discriminator="engine")]
Storage = Annotated[Union[LocalfsStorage, HdfsStorage, HiveStorage], Field(discriminator="engine")]
Federation = Annotated[Union[RabbitFederation, PulsarFederation], Field(discriminator="engine")]


class Engines(_Strict):
    computing: Computing = LocalComputing(engine="local")
    storage: Storage = LocalfsStorage(engine="localfs")
    federation: Federation


class Resources(_Strict):
    """Requests of the flow server's container (Kubernetes quantities); ``gpu`` asks for nvidia.com/gpu."""

    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = Field(0, ge=0, le=64)
    storage: str = "10Gi"

    @field_validator("cpu", "memory", "storage", mode="before")
    @classmethod
    def _quantity(cls, v: Any) -> Any:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not _QUANTITY.fullmatch(v):
            raise ValueError(f"'{v}' is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")
        return v


class PartySpec(_Strict):
    id: PartyId
    organisation: str = Field(min_length=1)
    #: base64 of the raw 32-byte Ed25519 public key (`flow party show`); absent until it has one
    public_key: str | None = None
    address: Address
    engines: Engines
    resources: Resources = Resources()
    image: Image | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _str_id(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("id")
    @classmethod
    def _dns_id(cls, v: str) -> str:

        if not _LABEL.fullmatch(dns_name(v)):
            raise ValueError(f"{v!r} names the party's containers, volumes and namespace as {dns_name(v)!r}, which "
                             "is not a DNS-1123 label (letters, digits, '-' or '_', a letter or digit at each end)")
        return v

    @field_validator("public_key")
    @classmethod
    def _key(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            raw = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("not valid base64 (the raw 32-byte Ed25519 key, as `flow party show` prints it)") from None
        if len(raw) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, this one is {len(raw)}")
        return v


class ClusterSpec(_Strict):
    #: the consortium's name: prefix of the Kubernetes namespace and compose project
    name: str = Field(pattern=_DNS.pattern)
    image: Image
    parties: list[PartySpec] = Field(min_length=2)

    def party(self, party_id: str) -> PartySpec:
        for p in self.parties:
            if p.id == str(party_id):
                return p
        raise ValidationError([f"--party: {party_id} is not a party of consortium '{self.name}' "
                               f"({', '.join(p.id for p in self.parties)})"])

    def image_of(self, party: PartySpec) -> Image:
        return party.image or self.image


def load_cluster(path: str | Path) -> ClusterSpec:
    """The validated consortium file; ValidationError (exit 2), one line per problem."""
    source = str(path)
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError([f"{source}: cannot read the consortium file: {exc.strerror}"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValidationError([f"{source}: not valid YAML: {' '.join(str(exc).split())}"]) from None
    return parse_cluster(raw, source)


def parse_cluster(raw: Any, source: str = "cluster.yaml") -> ClusterSpec:
    if not isinstance(raw, dict):
        raise ValidationError([f"{source}: a consortium file is a mapping (name, image, parties), "
                               f"not {type(raw).__name__}"])
    problems = _duplicates(raw, source)
    try:
        spec = ClusterSpec.model_validate(raw)
    except PydanticError as exc:
        problems += [_line(err, raw, source) for err in _chosen_branch(exc.errors())]
        raise ValidationError(problems) from None
    problems += _one_transport(spec, source) + _long_names(spec, source)
    if problems:
        raise ValidationError(problems)
    return spec


def _chosen_branch(errors: list) -> list:
    """A union of a word and a model (``broker: bundled`` or a mapping) given a mapping fails
    both branches: only the model's errors say what is wrong."""
    def beside_the_model(err: Any) -> bool:
        at = tuple(err["loc"][:-1])
        return (err["type"] == "literal_error" and isinstance(err["input"], dict)
                and any(e is not err and tuple(e["loc"][:len(at)]) == at for e in errors))
    return [err for err in errors if not beside_the_model(err)]


def _label(raw: dict, index: Any) -> str:
    parties = raw.get("parties")
    if isinstance(index, int) and isinstance(parties, list) and index < len(parties):
        item = parties[index]
        if isinstance(item, dict) and item.get("id") is not None:
            return f"party {item['id']}"
    return f"parties[{index}]"


def _line(err: Any, raw: dict, source: str) -> str:
    """``<file>: party <id>: <field>: <message>`` from a pydantic error; union tags that are not
    keys of the file (pydantic's own path steps) are left out of the field."""
    loc = list(err["loc"])
    who = ""
    node: Any = raw
    if len(loc) >= 2 and loc[0] == "parties" and isinstance(loc[1], int):
        who = _label(raw, loc[1]) + ": "
        parties = raw.get("parties")
        node = parties[loc[1]] if isinstance(parties, list) and loc[1] < len(parties) else None
        loc = loc[2:]
    kept: list[str] = []
    for i, step in enumerate(loc):
        if isinstance(node, dict) and step in node:
            node = node[step]
            kept.append(str(step))
        elif isinstance(node, dict) and step == node.get("engine"):
            continue  # pydantic's step into the engine's model
        elif i == len(loc) - 1 or not isinstance(node, dict):
            kept.append(str(step))
            node = None
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "union_tag_invalid":
        kept.append("engine")
        msg = f"unknown engine {err['input'].get('engine')!r} (known: {err['ctx']['expected_tags']})"
    elif err["type"] == "union_tag_not_found":
        kept.append("engine")
        msg = "required: which engine (local|spark, localfs|hdfs|hive, rabbitmq|pulsar)"
    return f"{source}: {who}{'.'.join(kept) or '(top level)'}: {msg}"


def _duplicates(raw: dict, source: str) -> list[str]:
    """Ids equal once normalised (``A_b`` and ``a-b``) would share containers, volumes and a namespace."""

    seen: dict[str, tuple[int, str]] = {}
    out = []
    for i, item in enumerate(raw.get("parties") or [] if isinstance(raw.get("parties"), list) else []):
        if isinstance(item, dict) and item.get("id") is not None:
            pid = str(item["id"])
            key = dns_name(pid)
            if key in seen:
                j, first = seen[key]
                same = "" if first == pid else f": {first} and {pid} both name their services {key!r}"
                out.append(f"{source}: party {pid}: id: duplicate party id (parties[{j}] and parties[{i}]){same}")
            seen.setdefault(key, (i, pid))
    return out


def _long_names(spec: ClusterSpec, source: str) -> list[str]:
    """``<consortium>-<party>`` is a namespace: over 63 characters it would be cut, and two cut
    names could meet."""
    return [f"{source}: party {p.id}: id: '{spec.name}-{p.id}' (the party's namespace) is over 63 characters: "
            "shorten the party id or the consortium's name"
            for p in spec.parties if len(f"{spec.name}-{p.id}") > 63]


def _one_transport(spec: ClusterSpec, source: str) -> list[str]:
    first = spec.parties[0]
    want = first.engines.federation.engine
    return [f"{source}: party {p.id}: engines.federation.engine: {p.engines.federation.engine}, but party "
            f"{first.id} uses {want}: every party of a consortium meets on one transport"
            for p in spec.parties[1:] if p.engines.federation.engine != want]
