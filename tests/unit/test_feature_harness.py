"""Running one component's guest and host shares in threads over the real standalone
transport (so every exchanged value goes through the wire codec), for the feature tests."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from backends.computing.api import Session
from backends.storage.api import TableMeta
from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, instances_meta
from federation.api import Party
from federation.standalone import StandaloneFederation

GUEST, HOST = Party("guest", "9999"), Party("host", "10000")


class Tracker:
    def __init__(self):
        self.metrics: dict[tuple[str, str], Any] = {}

    def log_metric(self, namespace: str, name: str, value: Any) -> None:
        self.metrics[(namespace, name)] = value

    def progress(self, done: int, total: int, message: str = "") -> None:
        pass


def dataset(session: Session, x: np.ndarray, names: list[str], y: np.ndarray | None = None,
            ids: list[str] | None = None, name: str = "t") -> Dataset:
    ids = ids or [f"id{i:05d}" for i in range(len(x))]
    rows = [(k, Instance(np.asarray(r, dtype=float), None if y is None else float(y[i])))
            for i, (k, r) in enumerate(zip(ids, x))]
    meta = instances_meta(TableMeta(namespace="unit", name=name), names, None if y is None else "y")
    return Dataset(session.parallelize(rows), meta)


def rows_of(ds: Dataset) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(ids sorted, X, y) of an Instance dataset."""
    rows = sorted(ds.table.collect(), key=lambda kv: kv[0])
    y = None if rows[0][1].label is None else np.array([inst.label for _, inst in rows])
    return [k for k, _ in rows], np.stack([inst.features for _, inst in rows]), y


def run_parties(tmp: Path, component: type[Component], jobs: dict[Party, tuple[Session, Any, Inputs]],
                name: str = "cpn_0") -> dict[Party, tuple[Outputs, Tracker]]:
    """Run every party's share at once (one thread each); re-raise the first failure."""
    parties: dict[str, list[Party]] = {}
    for party in jobs:
        parties.setdefault(party.role, []).append(party)
    ids = sorted({p.party_id for p in jobs})
    results: dict[Party, Any] = {}

    def one(party: Party) -> None:
        session, params, inputs = jobs[party]
        fed = StandaloneFederation("unitjob", party, tmp / "fed", parties=ids, session=session, default_timeout=60)
        tracker = Tracker()
        ctx = Context(job_id="unitjob", component=name, local=party, parties=parties, computing=session,
                      federation=fed, storage=None, tracker=tracker,
                      logger=logging.getLogger(f"unit.{party.role}"))
        try:
            results[party] = (component().run(ctx, component.params_model(**params), inputs), tracker)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            results[party] = exc
        finally:
            fed.close()

    threads = [threading.Thread(target=one, args=(p,)) for p in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for res in results.values():
        if isinstance(res, BaseException):
            raise res
    return results


def test_harness_moves_values_between_parties(tmp_path):
    """The harness itself: a guest and a host exchange a table and a ciphertext vector."""
    from backends.computing.local import LocalSession
    from components.crypto.paillier import generate_keypair

    class Echo(Component):
        module = "Echo"

        def guest(self, ctx, params, inputs):
            pub, priv = generate_keypair(256)
            ctx.federation.remote([pub.encrypt(2.5)], "x", ctx.tag(), ctx.role_parties("host"))
            (back,) = ctx.federation.get("y", ctx.tag(), ctx.role_parties("host"))
            return Outputs(model={"value": priv.decrypt(back[0])})

        def host(self, ctx, params, inputs):
            (enc,) = ctx.federation.get("x", ctx.tag(), ctx.role_parties("guest"))
            ctx.federation.remote([enc[0] * 2], "y", ctx.tag(), ctx.role_parties("guest"))
            return Outputs()

    with LocalSession(partitions=2, workers=1) as s:
        out = run_parties(tmp_path, Echo, {GUEST: (s, {}, Inputs()), HOST: (s, {}, Inputs())})
    assert out[GUEST][0].model == {"value": 5.0}
