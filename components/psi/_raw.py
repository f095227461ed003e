"""Raw intersection (``intersect_method: "raw"``): ids, optionally hashed, go in the clear.

Not private: the party that is not ``join_role`` sends its (hashed) ids to the one that
is, which matches them. Kept for FATE 1.x confs and for ids that are not sensitive.
With ``join_role: "host"`` each host returns the matched (guest index, host position) pairs.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal, Sequence

import numpy as np

from components.base import Context
from components.psi._protocol import MethodParams, PsiProtocol, match
from federation.api import Party
from flow.core.errors import ComponentError


class RawParams(MethodParams):
    """FATE 1.x ``raw_params``; ``base64`` only changes how digests are written, so it is accepted as is."""

    use_hash: bool = False
    salt: str = ""
    hash_method: Literal["none", "md5", "sha1", "sha224", "sha256", "sha384", "sha512"] = "none"
    base64: bool = False
    join_role: Literal["guest", "host"] = "guest"


def _check_ids(values: Any, component: str, what: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ComponentError(f"{component}: malformed {what}: expected a list of strings")
    return values


class RawProtocol(PsiProtocol):
    params_field = "raw_params"
    params_model = RawParams

    def __init__(self, params: RawParams | None, join_role: str = "guest"):
        # the top-level join_role (older FATE confs) applies when raw_params is not given
        super().__init__(params if params is not None else RawParams(join_role=join_role), join_role)
        self.join_role = self.params.join_role

    def _encode(self, ids: Sequence[Any]) -> list[str]:
        p = self.params
        if not p.use_hash or p.hash_method == "none":
            return [str(i) for i in ids]
        h = getattr(hashlib, p.hash_method)
        return [h((p.salt + str(i)).encode("utf-8")).hexdigest() for i in ids]

    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        mine = self._encode(ids)
        if self.join_role == "guest":
            theirs = ctx.federation.get("host_raw_ids", ctx.tag(), hosts)
            return [match(mine, _check_ids(t, ctx.component, f"ids of {h}")) for h, t in zip(hosts, theirs)]
        ctx.federation.remote(mine, "guest_raw_ids", ctx.tag(), hosts)
        matches = []
        for host, pairs in zip(hosts, ctx.federation.get("raw_matches", ctx.tag(), hosts)):
            pairs = np.asarray(pairs)
            if pairs.size and (pairs.ndim != 2 or pairs.shape[1] != 2 or pairs[:, 0].min() < 0
                               or pairs[:, 0].max() >= len(ids)):
                raise ComponentError(f"{ctx.component}: {host} sent malformed raw matches")
            matches.append({int(i): int(j) for i, j in pairs.reshape(-1, 2)})
        return matches

    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> None:
        mine = self._encode(ids)
        if self.join_role == "guest":
            ctx.federation.remote(mine, "host_raw_ids", ctx.tag(), guest)
            return
        (theirs,) = ctx.federation.get("guest_raw_ids", ctx.tag(), guest)
        found = match(_check_ids(theirs, ctx.component, "guest ids"), mine)
        ctx.federation.remote(np.array(sorted(found.items()), dtype=np.int64).reshape(-1, 2),
                              "raw_matches", ctx.tag(), guest)
