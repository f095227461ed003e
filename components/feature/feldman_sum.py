"""FeldmanVerifiableSum: per-id sums of columns over all parties, by verifiable secret sharing.

FATE 1.x's module: the guest and every host pick columns of their features (``sum_cols``:
feature indexes, none or empty for all; every party must pick as many), and the guest gets, for
each id all parties hold, the sum over the parties of each picked column, named by the guest's
own headers. No party sees another's values: each value is split into Shamir shares among all
``n`` parties with Feldman commitments (:mod:`components.crypto.feldman`), one share to each
party with everybody's commitments; a party checks what it gets (a bad share fails the job
naming the sender), adds the shares it holds per id and column, and the hosts send those sums
to the guest, which checks them against the products of the commitments and rebuilds the sums.
Hosts output no data, as in FATE.

Values are fixed point with ``q_n`` decimals (FATE's parameter, 0..16, default 6): each value is
rounded half-to-even to ``q_n`` decimals, the sum of those is exact and handed on as float64.
Ids that not every party holds are left out (as FATE's joins do); the ids themselves are sent to
the other parties in the clear, as FATE's tables keyed by id are, so run it after Intersection.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from components.base import Component, Context, Dataset, Inputs, Instance, Outputs, Params, instances_meta
from components.crypto import feldman
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError


class FeldmanVerifiableSumParams(Params):
    sum_cols: list[int] | None = None
    q_n: int = Field(6, ge=0, le=16)


def _deal(n: int, q_n: int, bits: int):
    """Values -> (their shares for parties 1..n, their commitments); picklable for workers."""
    def run(values: list[float]) -> list[tuple[list[int], list[int]]]:
        group = feldman.modp_group(bits)
        return [feldman.share(feldman.encode(v, q_n, group), n, group) for v in values]
    return run


def _name(party: Party) -> str:
    return f"{party.role} {party.party_id}"


class FeldmanVerifiableSum(Component):
    module = "FeldmanVerifiableSum"
    params_model = FeldmanVerifiableSumParams
    roles = ("guest", "host")

    def guest(self, ctx: Context, p: FeldmanVerifiableSumParams, inputs: Inputs) -> Outputs:
        source = inputs.require(ctx.component)
        ids, held, commitments, names = self._exchange(ctx, p, source)
        group, hosts = feldman.modp_group(), ctx.role_parties("host")
        width = group.width
        sums = {0: held}
        for k, (host, message) in enumerate(zip(hosts, ctx.federation.get("sum_shares", ctx.tag(), hosts)), start=1):
            if not isinstance(message, tuple) or len(message) != 2 or list(message[0]) != ids:
                raise ComponentError(f"{ctx.component}: {_name(host)} summed shares of other ids than the guest")
            ys = self._ints(ctx, host, message[1], width, len(held))
            combined = [feldman.combine_commitments([cs[i] for cs in commitments], group) for i in range(len(held))]
            try:
                feldman.check_shares(_name(host), k + 1, ys, combined, group)
            except CryptoError as exc:
                raise ComponentError(f"{ctx.component}: {exc} (its summed shares)") from None
            sums[k] = ys
        weights = feldman.lagrange_weights(list(range(1, len(sums) + 1)), group.q)
        values = [feldman.decode(sum(w * sums[k][i] for k, w in enumerate(weights)) % group.q, p.q_n, group)
                  for i in range(len(held))]
        width_cols = len(names)
        rows = np.asarray(values, dtype=np.float64).reshape(len(ids), width_cols)
        table = ctx.computing.parallelize(((key, Instance(row)) for key, row in zip(ids, rows)),
                                          partitions=source.table.partitions)
        meta = instances_meta(source.meta, names, None)
        ctx.tracker.log_metric("train", "feldman_verifiable_sum", {"ids": len(ids), "columns": names,
                                                                  "parties": 1 + len(hosts)})
        ctx.logger.info("%s: per-id sums of %s over %d parties for %d ids", ctx.component, names, 1 + len(hosts),
                        len(ids))
        return Outputs(data=[Dataset(table, meta)])

    def host(self, ctx: Context, p: FeldmanVerifiableSumParams, inputs: Inputs) -> Outputs:
        source = inputs.require(ctx.component)
        ids, held, _, _ = self._exchange(ctx, p, source)
        width = feldman.modp_group().width
        ctx.federation.remote((ids, feldman.to_bytes(held, width)), "sum_shares", ctx.tag(), ctx.role_parties("guest"))
        ctx.logger.info("%s: sent the guest the summed shares of %d ids", ctx.component, len(ids))
        return Outputs()

    # ------------------------------------------------------------------------------ both roles

    def _exchange(self, ctx: Context, p: FeldmanVerifiableSumParams, source: Dataset
                  ) -> tuple[list[Any], list[int], list[list[list[int]]], list[str]]:
        """Deal this party's shares, check and add up everyone's: (common ids in order, the summed
        share per id and column, each party's commitments per id and column, this party's column names)."""
        parties = ctx.role_parties("guest") + ctx.role_parties("host")
        me = parties.index(ctx.local)
        n, group = len(parties), feldman.modp_group()
        width = group.width
        header = list(source.meta.feature_columns)
        cols = self._columns(ctx, p, header)
        pairs = sorted(source.table.collect(), key=lambda kv: repr(kv[0]))
        own_ids = [k for k, _ in pairs]
        values = [float(inst.features[c]) for _, inst in pairs for c in cols]
        try:
            dealt = ctx.computing.map_batches(values, _deal(n, p.q_n, group.p.bit_length()))
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component} on {_name(ctx.local)}: {exc}") from None
        commits = feldman.to_bytes([c for _, cs in dealt for c in cs], width)
        for j, other in enumerate(parties):
            if j != me:
                shares = feldman.to_bytes([s[j] for s, _ in dealt], width)
                ctx.federation.remote((own_ids, len(cols), shares, commits), "shares", ctx.tag(), [other])
        others = [q for q in parties if q != ctx.local]
        received = dict(zip(others, ctx.federation.get("shares", ctx.tag(), others))) if others else {}
        # per party: {id: (its shares for me per column, its commitments per column)}
        tables: list[dict[Any, tuple[list[int], list[list[int]]]]] = []
        for party in parties:
            if party == ctx.local:
                rows = [([s[me] for s, _ in dealt[i * len(cols):(i + 1) * len(cols)]],
                         [cs for _, cs in dealt[i * len(cols):(i + 1) * len(cols)]]) for i in range(len(own_ids))]
                tables.append(dict(zip(own_ids, rows)))
            else:
                tables.append(self._unpack(ctx, party, received[party], len(cols), n, width))
        common = set(own_ids).intersection(*tables)
        ids = [k for k in own_ids if k in common]
        for j, party in enumerate(parties):
            if j == me:
                continue
            ys = [y for k in ids for y in tables[j][k][0]]
            cs = [c for k in ids for c in tables[j][k][1]]
            labels = [f"id {k}, column {c}" for k in ids for c in range(len(cols))]
            try:
                feldman.check_shares(_name(party), me + 1, ys, cs, group, labels)
            except CryptoError as exc:
                raise ComponentError(f"{ctx.component} on {_name(ctx.local)}: {exc}") from None
        held = [sum(t[k][0][c] for t in tables) % group.q for k in ids for c in range(len(cols))]
        commitments = [[cs for k in ids for cs in t[k][1]] for t in tables]
        dropped = len(own_ids) - len(ids)
        if dropped:
            ctx.logger.warning("%s: %d of this party's ids are not held by every party and are left out",
                               ctx.component, dropped)
        return ids, held, commitments, [header[c] for c in cols]

    @staticmethod
    def _columns(ctx: Context, p: FeldmanVerifiableSumParams, header: list[str]) -> list[int]:
        if not p.sum_cols:
            if not header:
                raise ComponentError(f"{ctx.component} on {_name(ctx.local)}: the input has no feature columns")
            return list(range(len(header)))
        bad = [i for i in p.sum_cols if not 0 <= i < len(header)]
        if bad:
            raise ComponentError(f"{ctx.component} on {_name(ctx.local)}: sum_cols {bad} out of range "
                                 f"0..{len(header) - 1} (feature columns {header})")
        return [i for i in range(len(header)) if i in set(p.sum_cols)]  # FATE keeps the header's order

    def _unpack(self, ctx: Context, sender: Party, message: Any, ncols: int, n: int, width: int
                ) -> dict[Any, tuple[list[int], list[list[int]]]]:
        """A peer's (ids, column count, shares for us, commitments), checked for shape."""
        who = f"{ctx.component}: {_name(sender)}"
        if not isinstance(message, tuple) or len(message) != 4 or not isinstance(message[0], list):
            raise ComponentError(f"{who} sent a malformed share message")
        ids, theirs, shares, commits = message
        if theirs != ncols:
            raise ComponentError(f"{who} sums {theirs} columns but {_name(ctx.local)} sums {ncols}: "
                                 "every party's sum_cols must pick as many columns")
        if len(set(map(repr, ids))) != len(ids):
            raise ComponentError(f"{who} sent an id twice")
        ys = self._ints(ctx, sender, shares, width, len(ids) * ncols)
        cs = self._ints(ctx, sender, commits, width, len(ids) * ncols * n)
        return {k: (ys[i * ncols:(i + 1) * ncols],
                    [cs[(i * ncols + c) * n:(i * ncols + c + 1) * n] for c in range(ncols)])
                for i, k in enumerate(ids)}

    @staticmethod
    def _ints(ctx: Context, sender: Party, array: Any, width: int, count: int) -> list[int]:
        try:
            out = feldman.from_bytes(array, width)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: {_name(sender)} sent {exc}") from None
        if len(out) != count:
            raise ComponentError(f"{ctx.component}: {_name(sender)} sent {len(out)} values, expected {count}")
        return out
