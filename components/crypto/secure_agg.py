"""Secure aggregation by pairwise cancelling masks (pure: no I/O).

Every party that contributes an update holds a fresh X25519 key pair. Once the public
keys are exchanged, each pair of parties ``(a, b)`` shares a secret only they know;
HKDF-SHA256 turns it (with the job's context and both names) into a 256-bit key, and
AES-256-CTR under that key is the pseudo-random generator of the pair's masks, with
the round number as the counter's upper half, so no mask is ever reused.

An update is a float vector encoded in fixed point (``FRACTION_BITS`` fractional bits)
as 64-bit words, with arithmetic modulo 2**64. The party sorted first in a pair adds
the pair's mask, the other subtracts it, so the masks cancel exactly in the sum of all
parties' vectors and the aggregator learns the sum and nothing else; any single
masked vector is uniformly distributed whatever the update was.

Range: the decoded sum must stay below ``2**(63 - FRACTION_BITS)`` (about 5.5e11) in
magnitude; :func:`encode` refuses values that could overflow it. Every party must
take part in every round (no drop-outs).
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flow.core.errors import CryptoError

FRACTION_BITS = 24
KEY_BYTES = 32
#: largest |value| * 2**FRACTION_BITS one party may encode: 2**62 leaves room for sums
_LIMIT = float(2 ** 62)
_INFO = b"fedweave secure aggregation v1"


def encode(values: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Floats -> fixed-point words (two's complement in uint64)."""
    x = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise CryptoError("secure aggregation: the update contains NaN or infinity")
    scaled = np.rint(x * 2.0 ** fraction_bits)
    if scaled.size and float(np.max(np.abs(scaled))) >= _LIMIT:
        raise CryptoError(f"secure aggregation: value {float(np.max(np.abs(x))):.3g} is out of the fixed-point "
                          f"range (|x| < 2**{62 - fraction_bits})")
    return scaled.astype(np.int64).view(np.uint64)


def decode(words: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Fixed-point words (e.g. a sum of encoded vectors) -> floats."""
    return np.asarray(words, dtype=np.uint64).view(np.int64).astype(np.float64) / 2.0 ** fraction_bits


def add_words(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Sum of word vectors modulo 2**64 (the aggregator's whole job)."""
    if not vectors:
        raise CryptoError("secure aggregation: nothing to sum")
    arrays = [np.asarray(v) for v in vectors]
    first = arrays[0]
    for v in arrays:
        if v.dtype != np.uint64 or v.shape != first.shape:
            raise CryptoError(f"secure aggregation: expected uint64 vectors of shape {first.shape}, "
                              f"got {v.dtype} {v.shape}")
    total = np.zeros(first.shape, dtype=np.uint64)
    for v in arrays:
        total += v  # uint64 array arithmetic wraps modulo 2**64
    return total


def prg_words(key: bytes, round_no: int, size: int) -> np.ndarray:
    """``size`` pseudo-random 64-bit words: AES-256-CTR keystream, counter block = round || 0."""
    if len(key) != KEY_BYTES:
        raise CryptoError(f"secure aggregation: PRG key must be {KEY_BYTES} bytes")
    if not 0 <= round_no < 2 ** 64:
        raise CryptoError(f"secure aggregation: round {round_no} out of range")
    nonce = round_no.to_bytes(8, "big") + bytes(8)
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    stream = enc.update(bytes(8 * size)) + enc.finalize()
    return np.frombuffer(stream, dtype="<u8").astype(np.uint64)


class SecureAggregator:
    """One party's side: its key pair, the pair keys it shares with the others, its masks.

    ``name`` identifies the party among the contributors (e.g. ``"host:10000"``);
    ``context`` binds the pair keys to one job and component, so keys leaked elsewhere
    cannot reproduce these masks.
    """

    def __init__(self, name: str, context: bytes = b"", secret: bytes | None = None):
        self.name = name
        self.context = context
        self._key = X25519PrivateKey.from_private_bytes(secret if secret is not None else os.urandom(KEY_BYTES))
        self._pair_keys: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return f"SecureAggregator({self.name!r}, peers={sorted(self._pair_keys)})"

    @property
    def public_key(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    @property
    def peers(self) -> list[str]:
        return sorted(self._pair_keys)

    def agree(self, public_keys: Mapping[str, bytes]) -> None:
        """Derive a pair key with every other contributor from their public keys
        (``public_keys`` lists every contributor, this party included)."""
        if public_keys.get(self.name) != self.public_key:
            raise CryptoError(f"secure aggregation: the key list does not carry {self.name}'s own public key")
        if len(public_keys) < 2:
            raise CryptoError("secure aggregation needs at least two contributors")
        self._pair_keys = {}
        for peer, raw in public_keys.items():
            if peer == self.name:
                continue
            if not isinstance(raw, (bytes, bytearray)) or len(raw) != KEY_BYTES:
                raise CryptoError(f"secure aggregation: malformed public key of {peer}")
            try:
                shared = self._key.exchange(X25519PublicKey.from_public_bytes(bytes(raw)))
            except ValueError:  # a low-order point: the shared value would be all zero
                raise CryptoError(f"secure aggregation: public key of {peer} is a low-order point") from None
            low, high = sorted((self.name, peer))
            info = b"|".join([_INFO, self.context, low.encode(), high.encode()])
            self._pair_keys[peer] = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None,
                                         info=info).derive(shared)

    def mask_words(self, size: int, round_no: int) -> np.ndarray:
        """This party's total mask for a round: the sum of its signed pair masks."""
        if not self._pair_keys:
            raise CryptoError("secure aggregation: no pair keys yet (call agree first)")
        total = np.zeros(size, dtype=np.uint64)
        for peer, key in self._pair_keys.items():
            words = prg_words(key, round_no, size)
            if self.name < peer:
                total += words
            else:
                total -= words
        return total

    def mask(self, values: np.ndarray, round_no: int, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
        """The masked fixed-point encoding of ``values`` to send to the aggregator."""
        words = encode(values, fraction_bits)
        return words + self.mask_words(words.size, round_no)
