"""OT-based PSI (``intersect_method: "kkrt"``): the OPRF of :mod:`components.mpc.kkrt`.

guest (OPRF receiver)                              host (OPRF sender)
  cuckoo-places its ids; base-OT setup A, seed ───▶
                                               ◀─── base-OT reply B, code key, its id count
  OT-extension matrix U (512 × ⌈bins/8⌉ bits)  ───▶
                                               ◀─── PRF values of its ids, 3 per id, in id order
  matches them against its own outputs

No public-key operation but 512 base OTs per host: the rest is AES and hashing over numpy
arrays, so 1,000,000 ids per side take seconds where ECDH's four million X25519 ladders
take minutes on two cores. As with ECDH, the guest learns which of its ids each host
holds and where (the values come in the host's id order); a host learns only the guest's
id count. Semi-honest security, as every PSI method here. A fedweave method: FATE has no
OT-based PSI, and there is no intersection cache or cardinality-only mode for it.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from components.base import Context
from components.mpc import kkrt
from components.psi._protocol import MethodParams, PsiProtocol
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError


class KkrtParams(MethodParams):
    """No settings: the code width, hash count and statistical security are fixed (mpc.kkrt)."""


def _field(message: Any, name: str, kind: type) -> Any:
    value = message.get(name) if isinstance(message, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise CryptoError(f"malformed OPRF message: '{name}' should be {kind.__name__}")
    return value


def _digests(ctx: Context, ids: Sequence[Any]) -> np.ndarray:
    try:
        return kkrt.digests(ids)
    except CryptoError as exc:
        raise ComponentError(f"{ctx.component}: {exc}") from None


class KkrtProtocol(PsiProtocol):
    params_field = "kkrt_params"
    params_model = KkrtParams

    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        digests = _digests(ctx, ids)
        try:
            placement = kkrt.place(digests)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: {exc}") from None
        receivers = [kkrt.KkrtReceiver(digests, placement) for _ in hosts]
        for host, receiver in zip(hosts, receivers):
            a_bytes, seed, bins = receiver.start()
            ctx.federation.remote({"a": a_bytes, "seed": seed, "bins": bins}, "kkrt_setup", ctx.tag(), [host])
        counts = []
        for host, receiver, reply in zip(hosts, receivers, ctx.federation.get("kkrt_reply", ctx.tag(), hosts)):
            try:
                count = _field(reply, "count", int)
                matrix = receiver.extend(_field(reply, "b", np.ndarray), _field(reply, "key", bytes))
            except CryptoError as exc:
                raise ComponentError(f"{ctx.component}: {host}: {exc}") from None
            ctx.federation.remote(matrix, "kkrt_matrix", ctx.tag(), [host])
            counts.append(count)
        # this side's PRF outputs while the hosts compute theirs
        outputs = [receiver.outputs(count) for receiver, count in zip(receivers, counts)]
        matches = []
        for host, receiver, mine, count, values in zip(hosts, receivers, outputs, counts,
                                                       ctx.federation.get("kkrt_values", ctx.tag(), hosts)):
            try:
                if getattr(values, "ndim", 0) != 3 or values.shape[1] != count:
                    raise CryptoError(f"malformed OPRF values: expected {count} per hash function "
                                      f"(the id count it announced), got shape {getattr(values, 'shape', None)}")
                matches.append(receiver.match(values, mine))
            except CryptoError as exc:
                raise ComponentError(f"{ctx.component}: {host}: {exc}") from None
        return matches

    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> None:
        sender = kkrt.KkrtSender(_digests(ctx, ids))
        (setup,) = ctx.federation.get("kkrt_setup", ctx.tag(), guest)
        try:
            points, key = sender.respond(_field(setup, "a", bytes), _field(setup, "seed", bytes),
                                         _field(setup, "bins", int))
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: guest: {exc}") from None
        ctx.federation.remote({"b": points, "key": key, "count": len(ids)}, "kkrt_reply", ctx.tag(), guest)
        (matrix,) = ctx.federation.get("kkrt_matrix", ctx.tag(), guest)
        try:
            values = sender.values(matrix)
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: guest: {exc}") from None
        ctx.federation.remote(values, "kkrt_values", ctx.tag(), guest)
