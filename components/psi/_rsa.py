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

from pydantic import Field

from components.base import Context
from components.crypto.rsa_psi import MIN_KEY_BITS, RsaBlinder, RsaHash, RsaSigner
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


class RsaProtocol(PsiProtocol):
    params_field = "rsa_params"
    params_model = RsaParams

    def _hashing(self) -> RsaHash:
        return RsaHash(self.params.hash_method, self.params.final_hash_method, self.params.salt)

    def guest(self, ctx: Context, ids: Sequence[Any], hosts: list[Party]) -> list[dict[int, int]]:
        hashing = self._hashing()
        keys = ctx.federation.get("rsa_pubkey", ctx.tag(), hosts)
        blinders = []
        for host, key in zip(hosts, keys):
            try:
                blinder = RsaBlinder(tuple(key), hashing)
            except (CryptoError, TypeError, ValueError) as exc:
                raise ComponentError(f"{ctx.component}: {host}: bad RSA public key: {exc}") from None
            ctx.federation.remote(_to_array(blinder.blind(ids), blinder.width), "guest_blinded", ctx.tag(), [host])
            blinders.append(blinder)
        signed = ctx.federation.get("guest_signed", ctx.tag(), hosts)
        host_values = ctx.federation.get("host_signed_ids", ctx.tag(), hosts)
        matches = []
        for host, blinder, sig, theirs in zip(hosts, blinders, signed, host_values):
            sig = _from_array(sig, blinder.width, ctx.component, f"signatures from {host}")
            theirs = array_to_rows(theirs, hashing.digest_size, ctx.component, f"signed ids of {host}")
            try:
                mine = blinder.unblind(sig)
            except CryptoError as exc:
                raise ComponentError(f"{ctx.component}: {host}: {exc}") from None
            matches.append(match(mine, theirs))
        return matches

    def host(self, ctx: Context, ids: Sequence[Any], guest: list[Party]) -> None:
        hashing = self._hashing()
        signer = RsaSigner(self.params.key_length)
        ctx.federation.remote(list(signer.public_key), "rsa_pubkey", ctx.tag(), guest)
        own = ctx.computing.map_batches(list(ids), _sign_ids(signer, hashing))
        ctx.federation.remote(rows_to_array(own, hashing.digest_size), "host_signed_ids", ctx.tag(), guest)
        (blinded,) = ctx.federation.get("guest_blinded", ctx.tag(), guest)
        blinded = _from_array(blinded, signer.width, ctx.component, "blinded guest ids")
        if any(not 0 < v < signer.n for v in blinded):
            raise ComponentError(f"{ctx.component}: malformed blinded guest ids: a value is outside 1..n-1")
        signed = ctx.computing.map_batches(blinded, signer.sign_blinded)
        ctx.federation.remote(_to_array(signed, signer.width), "guest_signed", ctx.tag(), guest)
