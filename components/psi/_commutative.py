"""The two commutative-encryption PSI methods, ECDH and DH, share one exchange.

guest                                   host
  E_a(x) for its ids          ───────▶
                              ◀───────   E_b(E_a(x)) (same order), E_b(y) for its ids
  E_a(E_b(y)); match against E_b(E_a(x))

The guest sends the same E_a(x) to every host; each host answers with its own secret.

Cardinality only (FATE 1.x ``cardinality_only`` with ``cardinality_method`` ecdh or dh):
the host shuffles E_b(E_a(x)) before answering, so the guest can count how many of its
doubly encrypted ids meet the host's but not tell which: it learns |X ∩ Y| and nothing
else about the host's set, and the host learns nothing (unless ``sync_cardinality``
tells it the count).
"""

from __future__ import annotations

import secrets
from abc import abstractmethod
from typing import Any, Sequence

from components.base import Context
from components.psi._protocol import PsiProtocol, array_to_rows, match, rows_to_array
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError


class CommutativeProtocol(PsiProtocol):
    """ECDH or DH: subclasses give the cipher (``encrypt_ids``/``reencrypt``) and its width."""

    #: name used in messages ("ECDH point", "DH value")
    what: str = "value"

    @abstractmethod
    def _cipher(self) -> Any:
        """A fresh cipher with a new secret."""

    @abstractmethod
    def _width(self) -> int:
        """Bytes per encrypted id."""

    def _salted(self, ids: Sequence[Any]) -> list:
        """Ids as the cipher hashes them: FATE appends nothing; ``salt`` is prefixed (str or bytes)."""
        salt = getattr(self.params, "salt", "")
        if not salt:
            return list(ids)
        raw = salt.encode("utf-8")
        return [salt + i if isinstance(i, str) else raw + bytes(i) if isinstance(i, (bytes, bytearray)) else i
                for i in ids]

    def _encrypt(self, ctx: Context, cipher: Any, ids: Sequence[Any]) -> list[bytes]:
        try:
            return ctx.computing.map_batches(self._salted(ids), cipher.encrypt_ids) if ids else []
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: {exc}") from None

    def _reencrypt(self, ctx: Context, cipher: Any, rows: list[bytes], whose: str) -> list[bytes]:
        try:
            return ctx.computing.map_batches(rows, cipher.reencrypt) if rows else []
        except CryptoError as exc:
            raise ComponentError(f"{ctx.component}: {whose}: {exc}") from None

    def _exchange(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[tuple[list[bytes], list[bytes]]]:
        """Per host: (E_b(E_a(x)) as the host returned them, E_a(E_b(y)))."""
        width = self._width()
        cipher = self._cipher()
        ctx.federation.remote(rows_to_array(self._encrypt(ctx, cipher, ids), width), "guest_ids", ctx.tag(), hosts)
        doubled = ctx.federation.get("guest_ids_doubled", ctx.tag(), hosts)
        host_points = ctx.federation.get("host_ids", ctx.tag(), hosts)
        out = []
        for host, mine, theirs in zip(hosts, doubled, host_points):
            mine = array_to_rows(mine, width, ctx.component, f"doubly encrypted guest ids from {host}")
            if len(mine) != len(ids):
                raise ComponentError(f"{ctx.component}: {host} returned {len(mine)} values for {len(ids)} ids")
            theirs = array_to_rows(theirs, width, ctx.component, f"encrypted ids of {host}")
            out.append((mine, self._reencrypt(ctx, cipher, theirs, str(host))))
        return out

    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        return [match(mine, theirs) for mine, theirs in self._exchange(ctx, ids, hosts)]

    def guest_cardinality(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[int]:
        """Per host, |X ∩ Y| (the host shuffled its answer: which ids matched stays hidden)."""
        return [len(set(mine) & set(theirs)) for mine, theirs in self._exchange(ctx, ids, hosts)]

    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party], shuffle: bool = False) -> None:
        width = self._width()
        cipher = self._cipher()
        (guest_points,) = ctx.federation.get("guest_ids", ctx.tag(), guest)
        guest_points = array_to_rows(guest_points, width, ctx.component, "encrypted guest ids")
        doubled = self._reencrypt(ctx, cipher, guest_points, "guest")
        if shuffle:
            secrets.SystemRandom().shuffle(doubled)
        ctx.federation.remote(rows_to_array(doubled, width), "guest_ids_doubled", ctx.tag(), guest)
        ctx.federation.remote(rows_to_array(self._encrypt(ctx, cipher, ids), width), "host_ids", ctx.tag(), guest)
