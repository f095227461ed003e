"""Intersection: ECDH private set intersection over Curve25519.

guest                                   host
  a·H(x) for its ids          ───────▶
                              ◀───────   b·a·H(x) (same order), b·H(y) for its ids
  a·b·H(y); match against b·a·H(x)
  positions of the shared ids  ───────▶  (only with sync_intersect_ids)

Each side learns only the shared ids (the host learns nothing unless ids are synced).
With several hosts the guest intersects with each and keeps ids shared by all.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Outputs, Params, keys_in
from components.crypto.ecdh import EcdhCipher
from flow.errors import ComponentError

POINT = 32


class IntersectionParams(Params):
    intersect_method: Literal["ecdh", "rsa", "raw"] = "ecdh"
    sync_intersect_ids: bool = True
    only_output_key: bool = False
    join_role: str = "guest"
    ecdh_params: dict[str, Any] | None = None
    rsa_params: dict[str, Any] | None = None
    intersect_cache_param: dict[str, Any] | None = None
    run_cache: bool = False
    sync_cardinality: bool = False
    run_preprocess: bool = False


def _to_array(points: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(points), dtype=np.uint8).reshape(len(points), POINT)


def _from_array(arr: np.ndarray) -> list[bytes]:
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    return [row.tobytes() for row in arr]


def _keys(part):
    return [k for k, _ in part]


class Intersection(Component):
    module = "Intersection"
    params_model = IntersectionParams
    roles = ("guest", "host")

    def _source(self, ctx: Context, params: IntersectionParams, inputs: Inputs) -> Dataset:
        if params.intersect_method != "ecdh":
            raise ComponentError(f"{ctx.component}: intersect_method '{params.intersect_method}' is not "
                                 "available yet; use 'ecdh'")
        return inputs.require(ctx.component)

    def _output(self, ctx: Context, source: Dataset, shared: set, total: int) -> Outputs:
        table = source.table.filter(keys_in(frozenset(shared)))
        meta = source.meta.model_copy(update={"count": len(shared)})
        ctx.tracker.log_metric("intersection", "intersect_count", len(shared))
        ctx.tracker.log_metric("intersection", "intersect_rate", len(shared) / total if total else 0.0)
        ctx.logger.info("intersection: %d of %d ids shared", len(shared), total)
        return Outputs(data=[Dataset(table, meta)])

    def guest(self, ctx: Context, params: IntersectionParams, inputs: Inputs) -> Outputs:
        source = self._source(ctx, params, inputs)
        ids = [k for part in source.table.apply_partitions(_keys) for k in part]
        cipher = EcdhCipher()
        hosts = ctx.role_parties("host")
        ctx.federation.remote(_to_array(cipher.encrypt_ids(ids)), "guest_ids", ctx.tag(), hosts)
        doubled = ctx.federation.get("guest_ids_doubled", ctx.tag(), hosts)
        host_points = ctx.federation.get("host_ids", ctx.tag(), hosts)
        shared = set(ids)
        host_positions = []
        for mine, theirs in zip(doubled, host_points):
            if len(mine) != len(ids):
                raise ComponentError(f"{ctx.component}: a host returned {len(mine)} points for {len(ids)} ids")
            theirs_doubled = cipher.reencrypt(_from_array(theirs))
            index = {p: j for j, p in enumerate(theirs_doubled)}
            matched = {i: index[p] for i, p in enumerate(_from_array(mine)) if p in index}
            shared &= {ids[i] for i in matched}
            host_positions.append(matched)
        if params.sync_intersect_ids:
            keep = {i for i, k in enumerate(ids) if k in shared}
            for host, matched in zip(hosts, host_positions):
                positions = np.asarray(sorted(j for i, j in matched.items() if i in keep), dtype=np.int64)
                ctx.federation.remote(positions, "intersect_positions", ctx.tag(), [host])
        return self._output(ctx, source, shared, len(ids))

    def host(self, ctx: Context, params: IntersectionParams, inputs: Inputs) -> Outputs:
        source = self._source(ctx, params, inputs)
        ids = [k for part in source.table.apply_partitions(_keys) for k in part]
        cipher = EcdhCipher()
        guest = ctx.role_parties("guest")
        (guest_points,) = ctx.federation.get("guest_ids", ctx.tag(), guest)
        ctx.federation.remote(_to_array(cipher.reencrypt(_from_array(guest_points))),
                              "guest_ids_doubled", ctx.tag(), guest)
        ctx.federation.remote(_to_array(cipher.encrypt_ids(ids)), "host_ids", ctx.tag(), guest)
        if not params.sync_intersect_ids:
            return Outputs(data=[Dataset(source.table, source.meta)])
        (positions,) = ctx.federation.get("intersect_positions", ctx.tag(), guest)
        if len(positions) and (positions.min() < 0 or positions.max() >= len(ids)):
            raise ComponentError(f"{ctx.component}: guest sent intersection positions out of range")
        return self._output(ctx, source, {ids[int(j)] for j in positions}, len(ids))
