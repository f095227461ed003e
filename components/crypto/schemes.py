"""Additive schemes by ``encrypt_param.method``: a registry, not an if/elif chain.

Each entry gives what a protocol needs to run a scheme without knowing it: the key
holder's key-pair generator, and how a receiver rebuilds the public key from the modulus
``n`` the key holder sends (both Paillier's and OU's public keys derive from ``n``
alone). Their ciphertexts are one type, :class:`~components.crypto.paillier.EncryptedNumber`,
whose key carries the scheme's arithmetic; the wire codec tells them apart by tag
(components/crypto/paillier_wire.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from components.crypto import ou, paillier
from flow.core.errors import CryptoError


@dataclass(frozen=True)
class Scheme:
    """One additively homomorphic scheme."""

    name: str
    #: key_length (bits of n) -> (public key, private key)
    generate: Callable[[int], tuple[Any, Any]]
    #: n -> the public key (what a receiver builds from the modulus it was sent)
    public_key: Callable[[int], paillier.AdditivePublicKey]


SCHEMES: dict[str, Scheme] = {
    "paillier": Scheme("paillier", paillier.generate_keypair, paillier.PaillierPublicKey),
    "ou": Scheme("ou", ou.generate_keypair, ou.OUPublicKey),
}


def scheme(method: str) -> Scheme:
    """The scheme of an ``encrypt_param.method`` (any letter case)."""
    found = SCHEMES.get(str(method).lower())
    if found is None:
        raise CryptoError(f"no additive encryption scheme named '{method}'; one of {', '.join(SCHEMES)}")
    return found


def public_message(method: str, public_key: paillier.AdditivePublicKey) -> tuple[str, int]:
    """What the key holder sends: (scheme name, n), plain values for the wire."""
    return scheme(method).name, int(public_key.n)


def public_key_from(message: Any) -> paillier.AdditivePublicKey:
    """The public key of a :func:`public_message` received from a peer (CryptoError if malformed)."""
    if not (isinstance(message, (tuple, list)) and len(message) == 2 and isinstance(message[0], str)
            and isinstance(message[1], int) and not isinstance(message[1], bool)):
        raise CryptoError("a public-key message must be (scheme name, modulus n)")
    return scheme(message[0]).public_key(message[1])
