"""FATE 1.x's intersection cache (``run_cache`` on one Intersection, ``input.cache`` on a later one).

The costly half of a method depends only on the host's ids: RSA's signatures ``F(H(y)^d)``,
DH/ECDH's doubly encrypted ``E_g(E_h(y))``. An Intersection with ``run_cache`` computes it
once, with fresh keys, and each party keeps its part in its own store (never sent on):

- host: a random cache id, its secret (RSA primes; DH/ECDH exponent) and its ids in the
  order of the guest's values;
- guest, per host: that cache id and the host's values (RSA: with the host's public key),
  and for DH/ECDH its own secret.

An Intersection with ``input.cache`` then runs only the guest's half: the guest encrypts
(or blinds) its ids with the cached keys, each host answers with its cached secret, and the
guest matches against the cached values. Only the cache id crosses, so that a host refuses
a guest holding a cache of another run. As in FATE, ``intersect_method`` must be the
cache's and the method's settings (hash, salt, key size) are taken from the cache.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Sequence

from components.base import Context
from federation.api import Party
from flow.core.errors import ComponentError

FORMAT = "fedweave-intersect-cache/1"
_CACHE_ID = re.compile(r"^[0-9a-f]{32}$")


def new_cache_id() -> str:
    return secrets.token_hex(16)


def check_cache_id(value: Any, component: str, who: str) -> str:
    if not isinstance(value, str) or not _CACHE_ID.match(value):
        raise ComponentError(f"{component}: malformed intersection cache id from {who}")
    return value


def make_cache(role: str, method: str, params: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able cache one party keeps (``params``: the method's settings block)."""
    return {"format": FORMAT, "role": role, "intersect_method": method, "params": params, "body": body}


def read_cache(caches: Sequence[dict[str, Any]], component: str, role: str,
               method: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(method params, body) of the one cache in ``input.cache``, or one clear error."""
    if len(caches) != 1:
        raise ComponentError(f"{component}: input.cache gives {len(caches)} caches; an Intersection takes one "
                             "(the cache output of an Intersection with run_cache true)")
    (cache,) = caches
    if not isinstance(cache, dict) or cache.get("format") != FORMAT or not isinstance(cache.get("body"), dict) \
            or not isinstance(cache.get("params"), dict):
        raise ComponentError(f"{component}: input.cache is not an intersection cache")
    if cache.get("role") != role:
        raise ComponentError(f"{component}: input.cache was made by the {cache.get('role')}, not this {role}")
    if cache.get("intersect_method") != method:
        raise ComponentError(f"{component}: intersect_method '{method}' does not match the cache's "
                             f"'{cache.get('intersect_method')}' (as in FATE, they must be the same)")
    return cache["params"], cache["body"]


def host_entry(body: dict[str, Any], host: Party, component: str) -> dict[str, Any]:
    """The guest's cached part for one host; a host of this job missing from it is an error."""
    entry = body.get("hosts", {}).get(host.party_id) if isinstance(body.get("hosts"), dict) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("values"), list):
        raise ComponentError(f"{component}: input.cache holds nothing for {host}: the cache must come from an "
                             "Intersection with the same hosts")
    return entry


def send_cache_ids(ctx: Context, body: dict[str, Any], hosts: list[Party]) -> list[dict[str, Any]]:
    """Guest: tell each host which cache this is, and go on only if every host holds the same
    run's cache (before any id is sent); returns the cached part of each host."""
    entries = [host_entry(body, host, ctx.component) for host in hosts]
    for host, entry in zip(hosts, entries):
        ctx.federation.remote(entry["cache_id"], "cache_id", ctx.tag(), [host])
    for host, same in zip(hosts, ctx.federation.get("cache_id_match", ctx.tag(), hosts)):
        if same is not True:
            raise ComponentError(f"{ctx.component}: {host} holds an intersection cache of another run (cache ids "
                                 "differ); both must come from the same Intersection")
    return entries


def check_guest_cache_id(ctx: Context, body: dict[str, Any], guest: list[Party]) -> None:
    """Host: the guest's cache must be of the same run as this host's; the guest is told either way."""
    (theirs,) = ctx.federation.get("cache_id", ctx.tag(), guest)
    theirs = check_cache_id(theirs, ctx.component, "the guest")
    same = secrets.compare_digest(theirs, str(body.get("cache_id", "")))
    ctx.federation.remote(same, "cache_id_match", ctx.tag(), guest)
    if not same:
        raise ComponentError(f"{ctx.component}: the guest's intersection cache is not of the same run as this "
                             "host's (cache ids differ); both must come from the same Intersection")


def cached_ids(body: dict[str, Any], component: str) -> list:
    """Host: its ids as cached, in the order of the values the guest holds."""
    ids = body.get("ids")
    if not isinstance(ids, list):
        raise ComponentError(f"{component}: input.cache holds no ids of this host")
    return ids


def to_hex(rows: Sequence[bytes]) -> list[str]:
    return [bytes(r).hex() for r in rows]


def from_hex(values: Any, width: int, component: str, what: str) -> list[bytes]:
    try:
        rows: list[bytes] | None = [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        rows = None
    if rows is None or any(len(r) != width for r in rows):
        raise ComponentError(f"{component}: input.cache: malformed {what}")
    return rows


def cached_hex(value: Any, component: str, what: str = "secret") -> str:
    """A hex field of this party's cache (a secret, a key number), checked before use."""
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]+", value):
        raise ComponentError(f"{component}: input.cache holds no valid {what} of this party")
    return value
