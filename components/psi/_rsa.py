"""RSA blind-signature PSI (``intersect_method: "rsa"``): each host holds its own RSA key.

guest                                         host
                              ◀───────  public key (n, e)
                              ◀───────  F(H(y)^d) for its own ids
  H(x)·r^e for its ids        ───────▶
                              ◀───────  (H(x)·r^e)^d
  F((H(x)·r^e)^d · r⁻¹) = F(H(x)^d); match against the host's values

The host signs its own ids while the guest blinds, so the two costly steps overlap, and
spreads its signatures over the computing session's partitions (the costly part: ~0.2 ms
per signature at 1024 bits).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import Field

from components.base import Context
from components.crypto.rsa_psi import MIN_KEY_BITS, PUBLIC_EXPONENT, RsaBlinder, RsaHash, RsaSigner
from components.psi._cache import (
    cached_hex,
    check_cache_id,
    check_guest_cache_id,
    from_hex,
    new_cache_id,
    send_cache_ids,
    to_hex,
)
from components.psi._protocol import MethodParams, PsiProtocol, array_to_rows, match, rows_to_array
from federation.api import Party
from flow.core.errors import ComponentError, CryptoError

Hash = Literal["md5", "sha1", "sha224", "sha256", "sha384", "sha512"]


class RsaParams(MethodParams):
    """FATE 1.x ``rsa_params``.

    ``split_calculation`` and ``random_base_fraction`` are FATE's speed-ups of the same
    protocol, and ``random_bit`` the size of its blinding factor; they are accepted so
    existing confs run. The intersection is the same without them, and the blinding
    factor is always drawn below the modulus (see :class:`RsaBlinder`).
    """

    salt: str = ""
    hash_method: Hash = "sha256"
    final_hash_method: Hash = "sha256"
    key_length: int = Field(1024, ge=MIN_KEY_BITS)
    random_bit: int = 128
    split_calculation: bool = False
    random_base_fraction: float | None = None


def _to_array(values: Sequence[int], width: int):
    return rows_to_array([int(v).to_bytes(width, "big") for v in values], width)


def _sign_ids(signer: RsaSigner, hashing: RsaHash):
    """Batches for the party's own workers (the signer never leaves this party)."""
    def f(values: list) -> list:
        return signer.sign_ids(values, hashing)
    return f


def _from_array(arr: Any, width: int, component: str, what: str) -> list[int]:
    return [int.from_bytes(row, "big") for row in array_to_rows(arr, width, component, what)]


def _new_key(key_length: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=PUBLIC_EXPONENT, key_size=key_length)


def _key_from_cache(body: dict[str, Any], component: str) -> RsaSigner:
    """The host's cached key, from its primes (the rest of the CRT key follows from them)."""
    try:
        p, q, e = (int(cached_hex(body.get(k), component, "RSA key"), 16) for k in ("p", "q", "e"))
        d = pow(e, -1, (p - 1) * (q - 1))
        numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q),
                                        rsa.rsa_crt_iqmp(p, q), rsa.RSAPublicNumbers(e, p * q))
        return RsaSigner(key=numbers.private_key())
    except (ValueError, TypeError):
        raise ComponentError(f"{component}: input.cache holds no valid RSA key of this host") from None


class RsaProtocol(PsiProtocol):
    params_field = "rsa_params"
    params_model = RsaParams

    def _hashing(self) -> RsaHash:
        return RsaHash(self.params.hash_method, self.params.final_hash_method, self.params.salt)

    def _blinder(self, ctx: Context, host: Party, key: Any, hashing: RsaHash) -> RsaBlinder:
        try:
            return RsaBlinder(tuple(key), hashing)
        except (CryptoError, TypeError, ValueError) as exc:
            raise ComponentError(f"{ctx.component}: {host}: bad RSA public key: {exc}") from None

    def _signed_guest_ids(self, ctx: Context, ids: Sequence[Any], hosts: list[Party], keys: list,
                          hashing: RsaHash) -> list[list[bytes]]:
        """Per host, F(H(x)^d) of the guest's ids: blinded, signed by the host, unblinded."""
        blinders = []
        for host, key in zip(hosts, keys):
            blinder = self._blinder(ctx, host, key, hashing)
            ctx.federation.remote(_to_array(blinder.blind(ids), blinder.width), "guest_blinded", ctx.tag(), [host])
            blinders.append(blinder)
        out = []
        for host, blinder, sig in zip(hosts, blinders, ctx.federation.get("guest_signed", ctx.tag(), hosts)):
            sig = _from_array(sig, blinder.width, ctx.component, f"signatures from {host}")
            try:
                out.append(blinder.unblind(sig))
            except CryptoError as exc:
                raise ComponentError(f"{ctx.component}: {host}: {exc}") from None
        return out

    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        hashing = self._hashing()
        keys = ctx.federation.get("rsa_pubkey", ctx.tag(), hosts)
        signed = self._signed_guest_ids(ctx, ids, hosts, keys, hashing)
        host_values = ctx.federation.get("host_signed_ids", ctx.tag(), hosts)
        matches = []
        for host, mine, theirs in zip(hosts, signed, host_values):
            theirs = array_to_rows(theirs, hashing.digest_size, ctx.component, f"signed ids of {host}")
            matches.append(match(mine, theirs))
        return matches

    def _sign_own(self, ctx: Context, signer: RsaSigner, ids: Sequence[Any], guest: list[Party]) -> None:
        hashing = self._hashing()
        ctx.federation.remote(list(signer.public_key), "rsa_pubkey", ctx.tag(), guest)
        own = ctx.computing.map_batches(list(ids), _sign_ids(signer, hashing))
        ctx.federation.remote(rows_to_array(own, hashing.digest_size), "host_signed_ids", ctx.tag(), guest)

    def _sign_guest(self, ctx: Context, signer: RsaSigner, guest: list[Party]) -> None:
        (blinded,) = ctx.federation.get("guest_blinded", ctx.tag(), guest)
        blinded = _from_array(blinded, signer.width, ctx.component, "blinded guest ids")
        if any(not 0 < v < signer.n for v in blinded):
            raise ComponentError(f"{ctx.component}: malformed blinded guest ids: a value is outside 1..n-1")
        signed = ctx.computing.map_batches(blinded, signer.sign_blinded)
        ctx.federation.remote(_to_array(signed, signer.width), "guest_signed", ctx.tag(), guest)

    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> None:
        signer = RsaSigner(self.params.key_length)
        self._sign_own(ctx, signer, ids, guest)
        self._sign_guest(ctx, signer, guest)

    # ------------------------------------------------------------ intersection cache

    def host_make_cache(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> dict[str, Any]:
        key, cache_id = _new_key(self.params.key_length), new_cache_id()
        ctx.federation.remote(cache_id, "cache_id", ctx.tag(), guest)
        self._sign_own(ctx, RsaSigner(key=key), ids, guest)
        numbers = key.private_numbers()
        return {"cache_id": cache_id, "p": format(numbers.p, "x"), "q": format(numbers.q, "x"),
                "e": format(numbers.public_numbers.e, "x"), "ids": list(ids)}

    def guest_make_cache(self, ctx: Context, hosts: list[Party]) -> dict[str, Any]:
        hashing = self._hashing()
        keys = ctx.federation.get("rsa_pubkey", ctx.tag(), hosts)
        cache_ids = ctx.federation.get("cache_id", ctx.tag(), hosts)
        host_values = ctx.federation.get("host_signed_ids", ctx.tag(), hosts)
        entries = {}
        for host, key, cache_id, theirs in zip(hosts, keys, cache_ids, host_values):
            blinder = self._blinder(ctx, host, key, hashing)
            theirs = array_to_rows(theirs, hashing.digest_size, ctx.component, f"signed ids of {host}")
            entries[host.party_id] = {"cache_id": check_cache_id(cache_id, ctx.component, str(host)),
                                      "n": format(int(blinder.n), "x"), "e": format(int(blinder.e), "x"),
                                      "values": to_hex(theirs)}
        return {"hosts": entries}

    def guest_with_cache(self, ctx: Context, ids: Sequence[Any], hosts: list[Party],
                         body: dict[str, Any]) -> list[dict[int, int]]:
        hashing = self._hashing()
        entries = send_cache_ids(ctx, body, hosts)
        keys = [tuple(int(cached_hex(e.get(k), ctx.component, f"RSA public key of {host}"), 16) for k in ("n", "e"))
                for host, e in zip(hosts, entries)]
        signed = self._signed_guest_ids(ctx, ids, hosts, keys, hashing)
        return [match(mine, from_hex(entry["values"], hashing.digest_size, ctx.component, f"values of {host}"))
                for host, entry, mine in zip(hosts, entries, signed)]

    def host_with_cache(self, ctx: Context, body: dict[str, Any], guest: list[Party]) -> None:
        check_guest_cache_id(ctx, body, guest)
        self._sign_guest(ctx, _key_from_cache(body, ctx.component), guest)
