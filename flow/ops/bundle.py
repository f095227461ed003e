"""``flow cluster generate``: one party's bundle from the consortium file.

The bundle holds what that party's server needs and nothing of another party's secrets:

    home/service_conf.yaml   mode cluster, its engines, its own broker (and credentials)
    home/route_table.yaml    every party's public key and where it receives
    home/server_token        a random API token (0600)
    home/keys/<id>.key       its private key (0600), when the bundle made or was given it
    compose.yaml             docker compose: server, bundled broker, Spark, as chosen
    k8s/                     Kubernetes manifests (kustomize: kubectl apply -k k8s/)
    README.md                the next commands

It is written to a temporary folder beside ``out`` and renamed into place, so an error
leaves nothing half-written and ``out`` as it was.
"""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from pathlib import Path
from typing import Any, Collection

import yaml

from federation.auth import KeyStore, PartyKeys, RouteTable, key_fingerprint
from flow.core.errors import ConfigError, ValidationError
from flow.core.settings import ServiceConf
from flow.ops.bundle_readme import readme
from flow.ops.cluster_conf import (
    ClusterSpec,
    HdfsStorage,
    HiveStorage,
    LocalComputing,
    PartySpec,
    RabbitFederation,
)
from flow.ops.manifests import (
    AMQP_PORT,
    BROKER_HOST,
    BUNDLED_VHOST,
    HOME,
    SPARK_MASTER,
    SPARK_PORT,
    Rendered,
    broker_user,
    compose,
    k8s_resources,
    kustomization,
)
from flow.ops.party import HEADER


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def route_entry(party: PartySpec, public_key: str) -> dict[str, Any]:
    """How others reach ``party``: no credentials, only addresses (the table is shared)."""
    entry: dict[str, Any] = {"public_key": public_key, "organisation": party.organisation,
                             "server": f"http://{party.address.host}:{party.address.port}"}
    fed = party.engines.federation
    if isinstance(fed, RabbitFederation):
        if fed.broker == "bundled":
            entry["rabbitmq"] = {"host": party.address.host, "port": fed.broker_port, "vhost": BUNDLED_VHOST}
        else:
            entry["rabbitmq"] = {"host": fed.broker.host, "port": fed.broker.port, "vhost": fed.broker.vhost,
                                 **({"ssl": True} if fed.broker.ssl else {})}
    else:
        entry["pulsar"] = {"url": fed.broker.url, "tenant": fed.broker.tenant, "namespace": fed.broker.namespace}
    return entry


def service_conf(party: PartySpec, broker_password: str | None) -> dict[str, Any]:
    """This party's service_conf.yaml, in the format flow.core.settings reads."""
    eng = party.engines
    fed = eng.federation
    computing: dict[str, Any] = {"partitions": eng.computing.partitions, "engines": {}}
    if isinstance(eng.computing, LocalComputing):
        computing["workers"] = eng.computing.workers
    else:
        computing["engines"]["spark"] = {"master": eng.computing.master or f"spark://{SPARK_MASTER}:{SPARK_PORT}"}
    federation: dict[str, Any] = {"allow_insecure_transport": fed.allow_insecure}
    if isinstance(fed, RabbitFederation):
        if fed.broker == "bundled":
            federation["rabbitmq"] = {"host": BROKER_HOST, "port": AMQP_PORT, "vhost": BUNDLED_VHOST,
                                      "user": broker_user(party.id), "password": broker_password}
        else:
            b = fed.broker
            federation["rabbitmq"] = {"host": b.host, "port": b.port, "vhost": b.vhost, "ssl": b.ssl,
                                      **({"user": b.user} if b.user else {}),
                                      **({"password": b.password} if b.password else {})}
    else:
        pb = fed.broker
        federation["pulsar"] = {"service_url": pb.url, "tenant": pb.tenant, "namespace": pb.namespace}
    storage: dict[str, Any] = {}
    if isinstance(eng.storage, (HdfsStorage, HiveStorage)):
        storage[eng.storage.engine] = eng.storage.model_dump(exclude={"engine"}, exclude_none=True)
    return {
        "mode": "cluster", "home": HOME,
        "default_engines": {"computing": eng.computing.engine, "storage": eng.storage.engine,
                            "federation": fed.engine},
        "computing": computing, "federation": federation, "storage": storage,
        "route_table": "route_table.yaml",
        "server": {"host": "0.0.0.0", "port": party.address.port, "token": "",  # noqa: S104 - in a container
                   "token_file": "server_token", "party_id": party.id},
    }


def own_key(spec: ClusterSpec, party: PartySpec, keys: KeyStore, source: str) -> tuple[PartyKeys, str]:
    """This party's private key and where it came from: the home's key store when it holds
    the key the consortium file lists (or any key, when the file lists none), else a new one."""
    held = keys.load(party.id) if keys.path(party.id).exists() else None
    if party.public_key is None:
        return (held, "home") if held else (PartyKeys.generate(party.id), "new")
    if held and held.public_key_b64 == party.public_key:
        return held, "home"
    why = (f"the key in {keys.path(party.id)} is another one ({key_fingerprint(held)})" if held
           else f"{keys.path(party.id)} does not exist")
    raise ValidationError([f"{source}: party {party.id}: public_key: the bundle needs this party's private key "
                           f"({key_fingerprint(party.public_key)}) but {why}: run generate with FLOW_HOME where "
                           "`flow party show` prints that key, or leave public_key out to make a new key"])


def generate(spec: ClusterSpec, party_id: str, out: Path, keys: KeyStore, force: bool = False,
             source: str = "cluster.yaml") -> dict[str, Any]:
    party = spec.party(party_id)
    missing = [p.id for p in spec.parties if p.id != party.id and p.public_key is None]
    if missing:
        raise ValidationError([f"{source}: party {pid}: public_key: required to generate party {party.id}'s "
                               f"bundle (party {pid} runs `flow party init --party-id {pid}` and hands over the "
                               "public key it prints)" for pid in missing])
    if out.exists() and not out.is_dir():
        raise ConfigError(f"-o {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ConfigError(f"-o {out}: not empty; give --force to replace it")
    mine, key_source = own_key(spec, party, keys, source)
    password = secrets.token_urlsafe(24) if _bundled(party) else None
    conf = service_conf(party, password)
    ServiceConf(**conf)  # the loader's own model: a bundle the server would refuse is never written
    table = {"parties": {p.id: route_entry(p, mine.public_key_b64 if p.id == party.id else str(p.public_key))
                         for p in spec.parties}}
    RouteTable.from_dict(table, source="route_table.yaml")
    has_password = bool(conf["federation"].get("rabbitmq", {}).get("password"))
    conf_text = "# generated by `flow cluster generate`: this party's flow service (see conf/service_conf.yaml)\n" \
                + _dump(conf)
    config = {"route_table.yaml": HEADER + "\n" + _dump(table)}
    secret = {"server_token": secrets.token_urlsafe(32) + "\n", f"keys/{party.id}.key": mine.to_pem().decode()}
    (secret if has_password else config)["service_conf.yaml"] = conf_text
    rendered = Rendered(party, spec, config, secret, broker_password=password)
    manifests = k8s_resources(rendered)

    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
    try:
        _write(tmp / "home", {**config, **secret}, private=set(secret))
        for name, doc in manifests.items():
            _write(tmp / "k8s", {name: _dump(doc)})
        _write(tmp / "k8s", {"kustomization.yaml": _dump(kustomization(rendered, list(manifests)))})
        _write(tmp, {"compose.yaml": _dump(compose(rendered)),
                     "README.md": readme(rendered, key_source, spec, mine.public_key_b64)})
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"party_id": party.id, "organisation": party.organisation, "out": str(out),
            "public_key": mine.public_key_b64, "fingerprint": key_fingerprint(mine),
            "private_key": {"home": "copied from this home's key store", "new": "made for this bundle"}[key_source],
            "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()),
            "next": f"read {out / 'README.md'}"}


def _bundled(party: PartySpec) -> bool:
    fed = party.engines.federation
    return isinstance(fed, RabbitFederation) and fed.broker == "bundled"


def _write(folder: Path, files: dict[str, str], private: Collection[str] = ()) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if name in private else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)


def _swap(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out``; an ``out`` that was there is removed only once the new one is in place."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.{uuid.uuid4().hex}.old"
        os.rename(out, old)
    try:
        os.rename(tmp, out)
    except OSError:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

