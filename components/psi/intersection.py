"""Intersection: private set intersection of the guest's ids with every host's.

The method is chosen by ``intersect_method`` from :data:`PROTOCOLS` ("ecdh", the default,
over Curve25519; "rsa", blind signatures; "raw", ids in the clear). Each method runs
between the guest and each host and tells the guest which of its ids each host shares;
the guest keeps the ids that every host shares. With ``sync_intersect_ids`` the guest
then sends each host the positions of that final set among the host's own ids, so all
parties output the same rows; without it a host learns nothing and outputs its data as is.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from components.base import Component, Context, Dataset, Inputs, Outputs, Params, keys_in
from components.psi._ecdh import EcdhParams, EcdhProtocol
from components.psi._protocol import PsiProtocol
from components.psi._raw import RawParams, RawProtocol
from components.psi._rsa import RsaParams, RsaProtocol
from flow.core.errors import ComponentError

#: intersect_method -> the protocol that runs it
PROTOCOLS: dict[str, type[PsiProtocol]] = {"ecdh": EcdhProtocol, "rsa": RsaProtocol, "raw": RawProtocol}


class IntersectionParams(Params):
    intersect_method: Literal["ecdh", "rsa", "raw"] = "ecdh"
    sync_intersect_ids: bool = True
    only_output_key: bool = False
    join_role: Literal["guest", "host"] = "guest"
    ecdh_params: EcdhParams | None = None
    rsa_params: RsaParams | None = None
    raw_params: RawParams | None = None
    intersect_cache_param: dict[str, Any] | None = None
    run_cache: bool = False
    sync_cardinality: bool = False
    run_preprocess: bool = False


def _keys(part):
    return [k for k, _ in part]


class Intersection(Component):
    module = "Intersection"
    params_model = IntersectionParams
    roles = ("guest", "host")
    output_cache = True

    @staticmethod
    def _protocol(params: IntersectionParams) -> PsiProtocol:
        cls = PROTOCOLS[params.intersect_method]
        return cls(getattr(params, cls.params_field), params.join_role)

    @staticmethod
    def _ids(ctx: Context, inputs: Inputs) -> tuple[Dataset, list]:
        source = inputs.require(ctx.component)
        return source, [k for part in source.table.apply_partitions(_keys) for k in part]

    def _output(self, ctx: Context, source: Dataset, shared: set, total: int) -> Outputs:
        table = source.table.filter(keys_in(frozenset(shared)))
        meta = source.meta.model_copy(update={"count": len(shared)})
        ctx.tracker.log_metric("intersection", "intersect_count", len(shared))
        ctx.tracker.log_metric("intersection", "intersect_rate", len(shared) / total if total else 0.0)
        ctx.logger.info("intersection: %d of %d ids shared", len(shared), total)
        return Outputs(data=[Dataset(table, meta)])

    def guest(self, ctx: Context, params: IntersectionParams, inputs: Inputs) -> Outputs:
        source, ids = self._ids(ctx, inputs)
        hosts = ctx.role_parties("host")
        if not hosts:
            raise ComponentError(f"{ctx.component}: Intersection needs at least one host in the job's roles")
        matches = self._protocol(params).guest(ctx, ids, hosts)
        keep = set(range(len(ids)))
        for matched in matches:
            keep.intersection_update(matched)
        if params.sync_intersect_ids:
            for host, matched in zip(hosts, matches):
                positions = np.asarray(sorted(matched[i] for i in keep), dtype=np.int64)
                ctx.federation.remote(positions, "intersect_positions", ctx.tag(), [host])
        return self._output(ctx, source, {ids[i] for i in keep}, len(ids))

    def host(self, ctx: Context, params: IntersectionParams, inputs: Inputs) -> Outputs:
        source, ids = self._ids(ctx, inputs)
        self._protocol(params).host(ctx, ids, ctx.role_parties("guest"))
        if not params.sync_intersect_ids:
            return Outputs(data=[Dataset(source.table, source.meta)])
        (positions,) = ctx.federation.get("intersect_positions", ctx.tag(), ctx.role_parties("guest"))
        positions = np.asarray(positions)
        if positions.ndim != 1 or (len(positions) and (positions.min() < 0 or positions.max() >= len(ids))):
            raise ComponentError(f"{ctx.component}: guest sent intersection positions out of range")
        return self._output(ctx, source, {ids[int(j)] for j in positions}, len(ids))
