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
from components.psi._cache import (
    cached_hex,
    check_cache_id,
    check_guest_cache_id,
    from_hex,
    new_cache_id,
    send_cache_ids,
    to_hex,
)
from components.psi._protocol import PsiProtocol, array_to_rows, match, rows_to_array
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError


class CommutativeProtocol(PsiProtocol):
    """ECDH or DH: subclasses give the cipher (``encrypt_ids``/``reencrypt``) and its width."""

    #: name used in messages ("ECDH point", "DH value")
    what: str = "value"

    @abstractmethod
    def _cipher(self, secret: str | None = None) -> Any:
        """The cipher of ``secret`` (hex, as :meth:`_new_secret` makes it); a fresh one if None."""

    @abstractmethod
    def _new_secret(self) -> str:
        """A fresh secret, hex: what a party keeps in its intersection cache."""

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
        cipher = self._cipher()
        self._answer(ctx, cipher, guest, shuffle)
        ctx.federation.remote(rows_to_array(self._encrypt(ctx, cipher, ids), self._width()), "host_ids",
                              ctx.tag(), guest)

    def _answer(self, ctx: Context, cipher: Any, guest: list[Party], shuffle: bool = False) -> None:
        """Host: E_b(E_a(x)) of the guest's E_a(x)."""
        width = self._width()
        (guest_points,) = ctx.federation.get("guest_ids", ctx.tag(), guest)
        guest_points = array_to_rows(guest_points, width, ctx.component, "encrypted guest ids")
        doubled = self._reencrypt(ctx, cipher, guest_points, "guest")
        if shuffle:
            secrets.SystemRandom().shuffle(doubled)
        ctx.federation.remote(rows_to_array(doubled, width), "guest_ids_doubled", ctx.tag(), guest)

    # ------------------------------------------------------------ intersection cache

    def _cached_cipher(self, ctx: Context, body: dict[str, Any]) -> Any:
        try:
            return self._cipher(cached_hex(body.get("secret"), ctx.component))
        except (CryptoError, ValueError) as exc:
            raise ComponentError(f"{ctx.component}: input.cache: bad secret: {exc}") from None

    def host_make_cache(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> dict[str, Any]:
        secret, cache_id = self._new_secret(), new_cache_id()
        ctx.federation.remote(cache_id, "cache_id", ctx.tag(), guest)
        points = self._encrypt(ctx, self._cipher(secret), ids)
        ctx.federation.remote(rows_to_array(points, self._width()), "host_ids", ctx.tag(), guest)
        return {"cache_id": cache_id, "secret": secret, "ids": list(ids)}

    def guest_make_cache(self, ctx: Context, hosts: list[Party]) -> dict[str, Any]:
        secret, width = self._new_secret(), self._width()
        cipher = self._cipher(secret)
        cache_ids = ctx.federation.get("cache_id", ctx.tag(), hosts)
        host_points = ctx.federation.get("host_ids", ctx.tag(), hosts)
        entries = {}
        for host, cache_id, theirs in zip(hosts, cache_ids, host_points):
            theirs = array_to_rows(theirs, width, ctx.component, f"encrypted ids of {host}")
            entries[host.party_id] = {"cache_id": check_cache_id(cache_id, ctx.component, str(host)),
                                      "values": to_hex(self._reencrypt(ctx, cipher, theirs, str(host)))}
        return {"secret": secret, "hosts": entries}

    def guest_with_cache(self, ctx: Context, ids: Sequence[Any], hosts: list[Party],
                         body: dict[str, Any]) -> list[dict[int, int]]:
        width = self._width()
        cipher = self._cached_cipher(ctx, body)
        entries = send_cache_ids(ctx, body, hosts)
        ctx.federation.remote(rows_to_array(self._encrypt(ctx, cipher, ids), width), "guest_ids", ctx.tag(), hosts)
        matches = []
        for host, entry, mine in zip(hosts, entries, ctx.federation.get("guest_ids_doubled", ctx.tag(), hosts)):
            mine = array_to_rows(mine, width, ctx.component, f"doubly encrypted guest ids from {host}")
            if len(mine) != len(ids):
                raise ComponentError(f"{ctx.component}: {host} returned {len(mine)} values for {len(ids)} ids")
            matches.append(match(mine, from_hex(entry["values"], width, ctx.component, f"values of {host}")))
        return matches

    def host_with_cache(self, ctx: Context, body: dict[str, Any], guest: list[Party]) -> None:
        check_guest_cache_id(ctx, body, guest)
        self._answer(ctx, self._cached_cipher(ctx, body), guest)
