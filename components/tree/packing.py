"""Fixed-point packing of gradients and hessians into the plaintexts of an additive scheme
(Paillier, or OU whose plaintexts are a third of the key: fewer sums to a ciphertext).

Two levels of packing, both exact integer arithmetic inside one plaintext:

* **per sample** (guest): ``m = G' << (hb + cb) | H << cb | 1`` with ``G' = g + offset``
  made non-negative. Adding ciphertexts adds the three fields at once, so one
  homomorphic addition on a host sums g, h and the sample count; the field widths
  leave room for the sum over every sample, so no field ever carries into the next.
* **per histogram bin** (host, ``cipher_compress``): a host's cumulative bin sums are
  themselves packed ``slots`` to a ciphertext by Horner's rule
  (``acc = acc · 2**slot_bits + s``, a scalar power on the ciphertext), so the guest
  decrypts one ciphertext per ``slots`` candidate splits instead of one per split.

Several *samples* per ciphertext is not used: a host must add each sample's values into
the bin of that sample's feature value, so a ciphertext that held several samples would
have to be split again, which Paillier cannot do. Packing the sums after the histogram
is built gives the same saving where it matters (the guest's decryptions, which cost
far more than a host's additions, and the bytes sent back).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from components.crypto.paillier import AdditivePrivateKey, AdditivePublicKey, EncryptedNumber
from flow.core.errors import ComponentError

#: significant bits kept of each g and h (relative to the largest |value|). The host's sums
#: only decide which split wins (leaf weights come from the guest's exact sums), and 40
#: bits (~1e-12 relative) keep that decision while packing 9 sums per 1024-bit key, not 7.
VALUE_BITS = 40


@dataclass(frozen=True)
class GHPacker:
    """The layout of one packed (g, h, count) plaintext; the guest keeps ``offset``."""

    offset: float
    precision: int
    g_bits: int
    h_bits: int
    count_bits: int

    @classmethod
    def fit(cls, g: np.ndarray, h: np.ndarray, max_count: int) -> GHPacker:
        """A layout for these values whose fields hold sums of up to ``max_count`` samples."""
        if h.size and float(h.min()) < 0:
            raise ComponentError("hessians must not be negative to be packed")
        offset = float(np.abs(g).max()) if g.size else 0.0
        top = max(2.0 * offset, float(h.max()) if h.size else 0.0)
        precision = VALUE_BITS - (math.frexp(top)[1] if top > 0 else 0)
        precision = max(0, min(precision, 200))
        n_bits = max(1, int(max_count)).bit_length()
        g_max = _fixed(np.array([2.0 * offset]), precision)[0]
        h_max = _fixed(np.array([top]), precision)[0]
        return cls(offset, precision, int(g_max).bit_length() + n_bits, int(h_max).bit_length() + n_bits,
                   n_bits + 1)

    @property
    def slot_bits(self) -> int:
        return self.g_bits + self.h_bits + self.count_bits

    def slots(self, key: AdditivePublicKey) -> int:
        """How many packed sums fit in one plaintext of this key (at least 1, or an error)."""
        room = key.max_int.bit_length() - 1
        if room < self.slot_bits:
            raise ComponentError(f"a {key.n.bit_length()}-bit {key.scheme} key cannot hold one packed gradient "
                                 f"({self.slot_bits} bits); use a larger encrypt_param.key_length")
        return room // self.slot_bits

    def pack(self, g: np.ndarray, h: np.ndarray) -> list[int]:
        """One plaintext integer per sample."""
        gi = _fixed(g + self.offset, self.precision)
        hi = _fixed(h, self.precision)
        gs, hs = self.h_bits + self.count_bits, self.count_bits
        return [(a << gs) | (b << hs) | 1 for a, b in zip(gi, hi)]

    def unpack(self, m: int) -> tuple[float, float, int]:
        """A packed sum -> (Σg, Σh, count)."""
        count = m & ((1 << self.count_bits) - 1)
        h_int = (m >> self.count_bits) & ((1 << self.h_bits) - 1)
        g_int = m >> (self.count_bits + self.h_bits)
        scale = 2.0 ** -self.precision
        return g_int * scale - self.offset * count, h_int * scale, count

    def unpack_slots(self, m: int, n: int) -> list[tuple[float, float, int]]:
        """A plaintext of ``n`` packed sums (first sum in the highest slot) -> their values."""
        mask = (1 << self.slot_bits) - 1
        return [self.unpack((m >> (self.slot_bits * (n - 1 - j))) & mask) for j in range(n)]

    def to_json(self) -> dict:
        """What a host needs to pack bins (never the offset)."""
        return {"slot_bits": self.slot_bits}


def _fixed(values: np.ndarray, precision: int) -> list[int]:
    """Exact ``round(v · 2**precision)`` of non-negative floats as Python ints."""
    out = []
    for v in np.asarray(values, dtype=np.float64).tolist():
        mant, exp = math.frexp(v)
        m = int(mant * (1 << 53))  # exact: 53-bit mantissa
        shift = exp - 53 + precision
        out.append(m << shift if shift >= 0 else (m + (1 << (-shift - 1))) >> -shift)
    return out


def encrypt_packed(key: AdditivePublicKey, plain: Sequence[int]) -> list[EncryptedNumber]:
    """Encrypt packed integers exactly (exponent 0); randomness is added when first sent."""
    return key.encrypt_many(np.array(list(plain), dtype=object)) if plain else []


def pack_ciphers(values: Sequence[EncryptedNumber], slot_bits: int, slots: int) -> list[EncryptedNumber]:
    """Host side: groups of ``slots`` ciphertexts -> one each, ``Σ_j c_j · 2**(slot_bits·(k-1-j))``."""
    out = []
    shift = 1 << slot_bits
    for start in range(0, len(values), slots):
        group = values[start:start + slots]
        acc = group[0]
        for c in group[1:]:
            acc = acc.multiply(shift) + c
        out.append(acc)
    return out


def unpack_candidates(packer: GHPacker, plain: Sequence[int], total: int, slots: int) -> np.ndarray:
    """Guest side: ``total`` (Σg, Σh, count) rows from plaintexts packed ``slots`` to one."""
    rows: list[tuple[float, float, int]] = []
    for i, m in enumerate(plain):
        rows += packer.unpack_slots(int(m), min(slots, total - i * slots))
    if len(rows) != total:
        raise ComponentError(f"a host sent {len(rows)} split candidates, {total} announced")
    return np.array(rows, dtype=np.float64).reshape(total, 3)


def decrypt_packed(key: AdditivePrivateKey, packer: GHPacker, ciphers: Sequence[EncryptedNumber],
                   total: int, slots: int) -> np.ndarray:
    """:func:`unpack_candidates` of the decryptions of ``ciphers`` (in this process)."""
    return unpack_candidates(packer, [key.raw_decrypt(c.ciphertext) for c in ciphers], total, slots)
