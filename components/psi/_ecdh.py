"""ECDH PSI over Curve25519 (``intersect_method: "ecdh"``, the default).

guest                                   host
  a·H(x) for its ids          ───────▶
                              ◀───────   b·a·H(x) (same order), b·H(y) for its ids
  a·b·H(y); match against b·a·H(x)

The guest sends the same a·H(x) to every host; each host answers with its own secret.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from components.base import Context
from components.crypto.ecdh import POINT_BYTES, EcdhCipher
from components.psi._protocol import MethodParams, PsiProtocol, array_to_rows, match, rows_to_array
from federation.api import Party
from flow.core.errors import ComponentError


class EcdhParams(MethodParams):
    """FATE 1.x ``ecdh_params``; ``salt`` is prefixed to every id before hashing."""

    salt: str = ""
    hash_method: Literal["sha256"] = "sha256"
    curve: Literal["curve25519"] = "curve25519"


class EcdhProtocol(PsiProtocol):
    params_field = "ecdh_params"
    params_model = EcdhParams

    def _salted(self, ids: Sequence[Any]) -> list:
        """Ids as the cipher hashes them (str or bytes; anything else is refused there)."""
        salt = self.params.salt
        if not salt:
            return list(ids)
        raw = salt.encode("utf-8")
        return [salt + i if isinstance(i, str) else raw + bytes(i) if isinstance(i, (bytes, bytearray)) else i
                for i in ids]

    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        cipher = EcdhCipher()
        ctx.federation.remote(rows_to_array(cipher.encrypt_ids(self._salted(ids)), POINT_BYTES),
                              "guest_ids", ctx.tag(), hosts)
        doubled = ctx.federation.get("guest_ids_doubled", ctx.tag(), hosts)
        host_points = ctx.federation.get("host_ids", ctx.tag(), hosts)
        matches = []
        for mine, theirs in zip(doubled, host_points):
            mine = array_to_rows(mine, POINT_BYTES, ctx.component, "doubly encrypted guest ids")
            if len(mine) != len(ids):
                raise ComponentError(f"{ctx.component}: a host returned {len(mine)} points for {len(ids)} ids")
            theirs = array_to_rows(theirs, POINT_BYTES, ctx.component, "encrypted host ids")
            matches.append(match(mine, cipher.reencrypt(theirs)))
        return matches

    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> None:
        cipher = EcdhCipher()
        (guest_points,) = ctx.federation.get("guest_ids", ctx.tag(), guest)
        guest_points = array_to_rows(guest_points, POINT_BYTES, ctx.component, "encrypted guest ids")
        ctx.federation.remote(rows_to_array(cipher.reencrypt(guest_points), POINT_BYTES),
                              "guest_ids_doubled", ctx.tag(), guest)
        ctx.federation.remote(rows_to_array(cipher.encrypt_ids(self._salted(ids)), POINT_BYTES),
                              "host_ids", ctx.tag(), guest)
