"""Intersection: private set intersection of the guest's ids with every host's.

The method is chosen by ``intersect_method`` from :data:`PROTOCOLS` ("ecdh", the default,
over Curve25519; "dh", over an RFC 3526 prime group; "rsa", blind signatures; "raw", ids
in the clear; "kkrt", fedweave's OT-based PSI, for large sets). Each method runs
between the guest and each host and tells the guest which of its ids each host shares;
the guest keeps the ids that every host shares. With ``sync_intersect_ids`` the guest
then sends each host the positions of that final set among the host's own ids, so all
parties output the same rows; without it a host learns nothing and outputs its data as is.

``cardinality_only`` (FATE 1.x) reveals only how many ids the guest shares with each host,
by ``cardinality_method``: with "ecdh" or "dh" the host shuffles its answer, so the guest
learns the count and not which ids; with "rsa" the guest counts its matched ids (FATE's
RSA cardinality checks each of the guest's ids against a Bloom filter of the host's, so
there too the guest can tell its own matched ids; fedweave's count is exact where FATE's
is an estimate). No data is output; the count is the ``intersection`` metric
``intersect_count`` (one host) or ``cardinality_<party id>`` per host, and
``sync_cardinality`` sends each host its own count.

``run_cache`` (rsa, dh, ecdh) makes FATE 1.x's intersection cache instead of an intersection:
the hosts' costly half, once, with keys each party keeps in its own store; a later
Intersection with ``input.cache`` intersects the guest's ids against it with the same keys
(see :mod:`components.psi._cache`).

``run_preprocess`` / ``intersect_preprocess_params`` (FATE's Bloom-filter pre-filter of
the host's ids) are accepted and checked as FATE checks them: a pre-filter only skips
work, the intersection is the same without it, and no filter is sent.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from components.base import Component, Context, Dataset, Inputs, Outputs, Params, keys_in
from components.psi._cache import cached_ids, make_cache, read_cache
from components.psi._commutative import CommutativeProtocol
from components.psi._dh import DhParams, DhProtocol
from components.psi._ecdh import EcdhParams, EcdhProtocol
from components.psi._kkrt import KkrtParams, KkrtProtocol
from components.psi._protocol import MethodParams, PsiProtocol
from components.psi._raw import RawParams, RawProtocol
from components.psi._rsa import RsaParams, RsaProtocol
from flow.core.errors import ComponentError

#: intersect_method -> the protocol that runs it
PROTOCOLS: dict[str, type[PsiProtocol]] = {"ecdh": EcdhProtocol, "dh": DhProtocol, "rsa": RsaProtocol,
                                           "raw": RawProtocol, "kkrt": KkrtProtocol}

_HASHES = Literal["md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sm3"]


class PreprocessParams(MethodParams):
    """FATE 1.x ``intersect_preprocess_params``, checked as FATE checks them."""

    false_positive_rate: float = Field(1e-3, gt=0, le=0.5)
    encrypt_method: Literal["rsa"] = "rsa"
    hash_method: _HASHES = "sha256"
    preprocess_method: _HASHES = "sha256"
    preprocess_salt: str = ""
    random_state: int | None = Field(None, ge=0)
    filter_owner: Literal["guest", "host"] = "guest"


class IntersectionParams(Params):
    #: FATE's Bloom-filter pre-filter: same intersection without it (see the module docstring)
    inert = frozenset({"run_preprocess", "intersect_preprocess_params"})

    intersect_method: Literal["ecdh", "dh", "rsa", "raw", "kkrt"] = "ecdh"
    sync_intersect_ids: bool = True
    only_output_key: bool = False
    join_role: Literal["guest", "host"] = "guest"
    ecdh_params: EcdhParams | None = None
    dh_params: DhParams | None = None
    rsa_params: RsaParams | None = None
    raw_params: RawParams | None = None
    kkrt_params: KkrtParams | None = None
    intersect_cache_param: dict[str, Any] | None = None
    run_cache: bool = False
    cardinality_only: bool = False
    cardinality_method: Literal["ecdh", "dh", "rsa"] = "ecdh"
    sync_cardinality: bool = False
    run_preprocess: bool = False
    intersect_preprocess_params: PreprocessParams | None = None

    @model_validator(mode="after")
    def _fate_checks(self) -> IntersectionParams:
        """FATE 1.x's own cross-checks of these settings (IntersectParam.check)."""
        def refuse(text: str) -> PydanticCustomError:
            return PydanticCustomError("fate_check", text)
        if self.cardinality_only:
            if self.cardinality_method == "rsa" and self.rsa_params is not None and self.rsa_params.split_calculation:
                raise refuse("cardinality_only with cardinality_method rsa needs rsa_params.split_calculation false")
            if self.run_preprocess:
                raise refuse("cardinality_only cannot run preprocessing (run_preprocess)")
            if self.run_cache:
                raise refuse("cardinality_only cannot run_cache")
        if self.run_cache and self.intersect_method in ("raw", "kkrt"):
            raise PydanticCustomError("not_supported", "not supported: run_cache with intersect_method {method} "
                                      "(FATE caches rsa, dh and ecdh intersections)",
                                      {"method": self.intersect_method})
        if self.run_preprocess:
            fpr = (self.intersect_preprocess_params or PreprocessParams()).false_positive_rate
            if fpr < 0.01:
                raise refuse(f"run_preprocess needs intersect_preprocess_params.false_positive_rate >= 0.01 "
                             f"(got {fpr})")
        return self

    def method(self) -> str:
        """The protocol that runs: ``cardinality_method`` in cardinality-only mode."""
        return self.cardinality_method if self.cardinality_only else self.intersect_method


class Intersection(Component):
    module = "Intersection"
    params_model = IntersectionParams
    roles = ("guest", "host")
    output_cache = True
    accepts_cache = True

    @staticmethod
    def _protocol(params: IntersectionParams) -> PsiProtocol:
        cls = PROTOCOLS[params.method()]
        return cls(getattr(params, cls.params_field), params.join_role)

    @staticmethod
    def _cached(ctx: Context, params: IntersectionParams, inputs: Inputs) -> tuple[PsiProtocol, dict[str, Any]]:
        """input.cache: the cache's method with the cache's settings (as FATE), and this party's part."""
        if params.cardinality_only:
            raise ComponentError(f"{ctx.component}: cardinality_only cannot take input.cache")
        method_params, body = read_cache(inputs.cache, ctx.component, ctx.role, params.method())
        cls = PROTOCOLS[params.method()]
        try:
            settings = cls.params_model.model_validate(method_params)
        except ValueError as exc:
            raise ComponentError(f"{ctx.component}: input.cache: bad {cls.params_field}: {exc}") from None
        if (getattr(params, cls.params_field) or cls.params_model()) != settings:
            ctx.logger.warning("%s: the cache's settings are used, as in FATE: %s", cls.params_field,
                               settings.model_dump())
        return cls(settings), body

    def _make_cache(self, ctx: Context, params: IntersectionParams, ids: list) -> Outputs:
        """run_cache: this party's cache of the hosts' half, instead of an intersection (as FATE)."""
        protocol = self._protocol(params)
        if ctx.role == "guest":
            body = protocol.guest_make_cache(ctx, ctx.role_parties("host"))
        else:
            body = protocol.host_make_cache(ctx, ids, ctx.role_parties("guest"))
        ctx.logger.info("intersection cache made (%s); no intersection is output, as in FATE", params.method())
        return Outputs(cache=make_cache(ctx.role, params.method(), protocol.params.model_dump(), body))

    @staticmethod
    def _ids(ctx: Context, inputs: Inputs) -> tuple[Dataset, list]:
        source = inputs.require(ctx.component)
        return source, source.table.keys()

    def _output(self, ctx: Context, source: Dataset, shared: set, total: int) -> Outputs:
        table = source.table.filter(keys_in(frozenset(shared)))
        meta = source.meta.model_copy(update={"count": len(shared)})
        ctx.tracker.log_metric("intersection", "intersect_count", len(shared))
        ctx.tracker.log_metric("intersection", "intersect_rate", len(shared) / total if total else 0.0)
        ctx.logger.info("intersection: %d of %d ids shared", len(shared), total)
        return Outputs(data=[Dataset(table, meta)])

    def _guest_cardinality(self, ctx: Context, params: IntersectionParams, ids: list, hosts: list) -> Outputs:
        protocol = self._protocol(params)
        if isinstance(protocol, CommutativeProtocol):
            counts = protocol.guest_cardinality(ctx, ids, hosts)
        else:  # rsa: the guest counts its own matches (as FATE's Bloom filter lets it)
            counts = [len(m) for m in protocol.guest(ctx, ids, hosts)]
        for host, count in zip(hosts, counts):
            if len(hosts) == 1:
                ctx.tracker.log_metric("intersection", "intersect_count", count)
                ctx.tracker.log_metric("intersection", "intersect_rate", count / len(ids) if ids else 0.0)
            ctx.tracker.log_metric("intersection", f"cardinality_{host.party_id}", count)
            ctx.logger.info("intersection cardinality with %s: %d of %d guest ids", host, count, len(ids))
            if params.sync_cardinality:
                ctx.federation.remote(int(count), "cardinality", ctx.tag(), [host])
        return Outputs()

    def _host_cardinality(self, ctx: Context, params: IntersectionParams, ids: list) -> Outputs:
        protocol = self._protocol(params)
        guest = ctx.role_parties("guest")
        if isinstance(protocol, CommutativeProtocol):
            protocol.host(ctx, ids, guest, shuffle=True)
        else:
            protocol.host(ctx, ids, guest)
        if params.sync_cardinality:
            (count,) = ctx.federation.get("cardinality", ctx.tag(), guest)
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= len(ids):
                raise ComponentError(f"{ctx.component}: guest sent a malformed cardinality")
            ctx.tracker.log_metric("intersection", "intersect_count", count)
            ctx.tracker.log_metric("intersection", "intersect_rate", count / len(ids) if ids else 0.0)
            ctx.logger.info("intersection cardinality: %d of %d ids", count, len(ids))
        return Outputs()

    def guest(self, ctx: Context, params: IntersectionParams, inputs: Inputs) -> Outputs:
        source, ids = self._ids(ctx, inputs)
        hosts = ctx.role_parties("host")
        if not hosts:
            raise ComponentError(f"{ctx.component}: Intersection needs at least one host in the job's roles")
        if inputs.cache:
            protocol, body = self._cached(ctx, params, inputs)
            matches = protocol.guest_with_cache(ctx, ids, hosts, body)
        elif params.cardinality_only:
            return self._guest_cardinality(ctx, params, ids, hosts)
        elif params.run_cache:
            return self._make_cache(ctx, params, ids)
        else:
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
        guest = ctx.role_parties("guest")
        matched_ids = ids  # the ids the guest's positions refer to
        if inputs.cache:
            protocol, body = self._cached(ctx, params, inputs)
            matched_ids = cached_ids(body, ctx.component)
            protocol.host_with_cache(ctx, body, guest)
        elif params.cardinality_only:
            return self._host_cardinality(ctx, params, ids)
        elif params.run_cache:
            return self._make_cache(ctx, params, ids)
        else:
            self._protocol(params).host(ctx, ids, guest)
        if not params.sync_intersect_ids:
            return Outputs(data=[Dataset(source.table, source.meta)])
        (positions,) = ctx.federation.get("intersect_positions", ctx.tag(), guest)
        positions = np.asarray(positions)
        if positions.ndim != 1 or (len(positions) and (positions.min() < 0 or positions.max() >= len(matched_ids))):
            raise ComponentError(f"{ctx.component}: guest sent intersection positions out of range")
        shared = {matched_ids[int(j)] for j in positions} & set(ids)  # a cached id may have left the data
        return self._output(ctx, source, shared, len(ids))
