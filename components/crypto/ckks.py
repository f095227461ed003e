"""CKKS through TenSEAL for the vertical linear models' ``Xᵀ·[[d]]`` (``method: "ckks"``).

One ciphertext packs 8,192 values (SIMD slots). The party holding X multiplies each chunk
of [[d]] by the matching 8,192 rows of a column and adds the chunks up: one ciphertext per
column whose slots hold row-wise partial sums. It masks every slot with a fresh uniform
value and sends the column to the key holder, which decrypts (flooded, below) and returns
the sum of the slots only; the sender removes the sum of its masks. So no rotation is ever
needed (no Galois keys: the public context is ~1.3 MB and made in 0.05 s), a column costs
one plaintext multiplication per 8,192 rows, and the key holder sees masked slots only.

Parameters (HE standard, Albrecht et al. 2018, 128-bit classical security, ternary
secret): ``poly_modulus_degree`` N = 16384 allows log2(Q) <= 438; the coefficient modulus
here is five 60-bit primes, log2(Q) = 300 (the last is SEAL's special prime). [[d]] is
encoded at scale 2**80 and the features at the ciphertext's scale, so products sit at
2**160 without rescaling (which would add rounding noise) and 2**240 / 2**160 leaves 2**79
of room for a slot's value and its mask.

Noise flooding. A CKKS decryption returns ``m + e`` with ``e`` a function of the secret
key; handing such results to another party lets it recover the key (Li–Micciancio,
EUROCRYPT 2021). So before decrypting, :meth:`KeyHolder.slot_sums` adds to the ciphertext
Gaussian noise, encoded at the ciphertext's scale, whose slot sum has
``sigma = 2**FLOOD_BITS · ROW_NOISE · rows`` (FLOOD_BITS = 40 statistical bits; ``rows``
the rows summed into the column).
``ROW_NOISE`` = 2**-62 bounds one row's share of ``e`` in a column sum: fresh encryption
noise <= 2**-67 per slot at scale 2**80 times |x| <= 16, plus the features' encoding
rounding (~2**-74) times |d| <= 2**7. :func:`column_scales` divides a wider column by a
power of two first (the sender multiplies its sum back), so the bound holds for any data.
The flood costs 2**-22 (2.4e-7) on a gradient averaged over its rows. Decoding and summing
the slots afterwards is post-processing of the flooded value.

Wire: contexts and vectors cross as TenSEAL's own ``serialize()`` bytes (protobuf, never
pickle). The key holder sends a public context (the public key only); a receiver loads it
with :func:`public_context`, which refuses a context that carries a secret key or other
parameters than these, and builds vectors with :func:`vectors_from` against it.
"""

from __future__ import annotations

import functools
import math
import secrets
from typing import Any, Sequence

import numpy as np

from flow.core.errors import CryptoError

POLY_MODULUS_DEGREE = 16384
COEFF_MOD_BIT_SIZES = (60, 60, 60, 60, 60)
#: the largest log2(Q) at 128-bit security for this N (HE standard)
MAX_LOG_Q = 438
SCALE_BITS = 80
PRODUCT_SCALE_BITS = 2 * SCALE_BITS
SLOTS = POLY_MODULUS_DEGREE // 2
FLOOD_BITS = 40
#: one row's bound on the decryption error of a column sum, in the value domain (module doc)
ROW_NOISE = 2.0 ** -62
#: the largest |x| a column may have in a product (wider columns are scaled by a power of two)
X_BOUND = 16.0
#: scales of what the key holder decrypts: a lower one would shrink the flooding below the noise
_DECRYPTABLE_SCALES = (2.0 ** SCALE_BITS, 2.0 ** PRODUCT_SCALE_BITS)
#: slots are masked with values uniform in [-MASK_BOUND, MASK_BOUND]
MASK_BOUND = 2.0 ** 20


def _ts() -> Any:
    """TenSEAL, imported on first use (the ``he`` extra); CryptoError when it is missing."""
    try:
        import tenseal
        import tenseal.sealapi  # noqa: F401 - registers SEAL's types (the parameter check reads them)
    except ImportError:
        raise CryptoError("encrypt_param.method 'ckks' needs TenSEAL: pip install 'fedweave[he]'") from None
    return tenseal


def _configure(ctx: Any) -> None:
    """No automatic rescaling (see the module doc)."""
    ctx.auto_rescale = False
    ctx.global_scale = 2.0 ** SCALE_BITS


def flood_sigma(rows: int) -> float:
    """The flooding noise's standard deviation on a sum over ``rows`` rows."""
    return 2.0 ** FLOOD_BITS * ROW_NOISE * max(1, int(rows))


class KeyHolder:
    """The party that holds the secret key: makes the context, decrypts slot sums with flooding."""

    def __init__(self) -> None:
        ts = _ts()
        self.context = ts.context(ts.SCHEME_TYPE.CKKS, POLY_MODULUS_DEGREE,
                                  coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES))
        _configure(self.context)
        self._seal: tuple | None = None

    def public_bytes(self) -> bytes:
        """The context to send: the public key, never the secret key."""
        return bytes(self.context.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=False,
                                            save_relin_keys=False))

    def slot_sums(self, blobs: Sequence[bytes], rows: int) -> np.ndarray:
        """The sum of the slots of each vector in ``blobs``, each flooded (module doc) for a
        column sum over ``rows`` rows before it is decrypted. SEAL's own encoder and
        decryptor: the noise goes in as a plaintext at the ciphertext's scale, which floods
        as an encrypted one would at a third of the cost."""
        seal = _ts().sealapi
        if self._seal is None:
            data = self.context.seal_context().data
            secret = self.context.secret_key().data
            self._seal = (seal.CKKSEncoder(data), seal.Evaluator(data), seal.Decryptor(data, secret))
        encoder, evaluator, decryptor = self._seal
        per_slot = flood_sigma(rows) / math.sqrt(SLOTS)
        rng = np.random.default_rng(secrets.randbits(128))
        out = []
        for vector in vectors_from(self.context, blobs):
            ct = vector.ciphertext()[0]  # a copy
            if vector.size() != SLOTS or ct.scale not in _DECRYPTABLE_SCALES:
                raise CryptoError(f"a column to decrypt must have {SLOTS} slots at scale 2**{SCALE_BITS} or "
                                  f"2**{PRODUCT_SCALE_BITS} (the flooding is sized for those)")
            noise = seal.Plaintext()
            encoder.encode(rng.normal(0.0, per_slot, SLOTS).tolist(), ct.parms_id(), ct.scale, noise)
            evaluator.add_plain_inplace(ct, noise)
            plain = seal.Plaintext()
            decryptor.decrypt(ct, plain)
            out.append(math.fsum(encoder.decode_double(plain)))
        return np.asarray(out, dtype=float)


@functools.lru_cache(maxsize=4)
def public_context(data: bytes) -> Any:
    """A context received from the key holder, checked: public (no secret key) and exactly
    this module's parameters (so the sender cannot weaken them). Loading one costs ~0.1 s,
    so a process keeps the last few (a worker gets the same bytes every batch)."""
    ts = _ts()
    try:
        ctx = ts.context_from(bytes(data))
    except Exception as exc:  # noqa: BLE001 - TenSEAL raises bare ValueError/RuntimeError on bad bytes
        raise CryptoError(f"invalid CKKS context from the key holder: {exc}") from None
    if ctx.has_secret_key():
        raise CryptoError("the CKKS context received carries a secret key; the key holder must send a public one")
    parms = ctx.seal_context().data.key_context_data().parms()
    got = (parms.poly_modulus_degree(), tuple(q.bit_count() for q in parms.coeff_modulus()))
    if got != (POLY_MODULUS_DEGREE, COEFF_MOD_BIT_SIZES):
        raise CryptoError(f"the CKKS context received has parameters {got}, expected "
                          f"{(POLY_MODULUS_DEGREE, COEFF_MOD_BIT_SIZES)} (128-bit security)")
    _configure(ctx)
    return ctx


def encrypt_vector(ctx: Any, values: np.ndarray) -> list[Any]:
    """``values`` in ciphertexts of :data:`SLOTS` each (the last padded with zeros, so that
    every chunk adds to every other), at scale 2**SCALE_BITS."""
    ts = _ts()
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or not arr.size or not np.isfinite(arr).all():
        raise CryptoError("CKKS encrypts a non-empty 1-D array of finite numbers")
    return [ts.ckks_vector(ctx, chunk.tolist(), scale=2.0 ** SCALE_BITS) for chunk in padded_chunks(arr)]


def padded_chunks(values: np.ndarray) -> list[np.ndarray]:
    """``values`` cut into :data:`SLOTS`-long pieces, the last padded with zeros."""
    padded = np.zeros(-(-len(values) // SLOTS) * SLOTS)
    padded[:len(values)] = values
    return [padded[i:i + SLOTS] for i in range(0, padded.size, SLOTS)]


def add_plain(chunks: Sequence[Any], values: np.ndarray) -> list[Any]:
    """``[[d]] + values``, chunk by chunk (the vectors must be fresh: at scale 2**SCALE_BITS)."""
    pieces = padded_chunks(np.asarray(values, dtype=float))
    if len(pieces) != len(chunks):
        raise CryptoError(f"add_plain: {len(values)} values do not fit {len(chunks)} ciphertexts")
    return [c + p.tolist() for c, p in zip(chunks, pieces)]


def column_scales(X: np.ndarray) -> np.ndarray:
    """Per column, the power of two (>= 1) that brings it within |x| <= :data:`X_BOUND`."""
    top = np.abs(np.asarray(X, dtype=float)).max(axis=0, initial=0.0)
    return np.exp2(np.maximum(0.0, np.ceil(np.log2(np.maximum(top, 1e-300) / X_BOUND))))


def column_products(chunks: Sequence[Any], X: np.ndarray) -> list[Any]:
    """Per column j of ``X`` (rows = the packed values of ``chunks``, in order), one
    ciphertext ``Σ_c [[d_c]] ⊙ X_c[:, j]`` whose slot sum is ``X[:, j]·d``; |X| must be
    within :data:`X_BOUND` (see :func:`column_scales`)."""
    arr = np.asarray(X, dtype=float)
    if not chunks or any(c.size() != SLOTS for c in chunks):
        raise CryptoError(f"column_products needs ciphertexts of {SLOTS} slots each (encrypt_vector's)")
    capacity = len(chunks) * SLOTS
    if arr.ndim != 2 or not capacity - SLOTS < arr.shape[0] <= capacity:
        raise CryptoError(f"column_products: X must be 2-D with one row per packed value ({len(chunks)} "
                          f"ciphertexts hold {capacity - SLOTS + 1} to {capacity}), got shape {arr.shape}")
    if not np.isfinite(arr).all() or np.abs(arr).max(initial=0.0) > X_BOUND:
        raise CryptoError(f"column_products: X must be finite and within |x| <= {X_BOUND:g} (scale it first)")
    padded = np.zeros((capacity, arr.shape[1]))
    padded[:arr.shape[0]] = arr
    out = []
    for j in range(arr.shape[1]):
        acc = chunks[0] * padded[:SLOTS, j].tolist()
        for k, c in enumerate(chunks[1:], 1):
            acc += c * padded[k * SLOTS:(k + 1) * SLOTS, j].tolist()
        out.append(acc)
    return out


def masked(vectors: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Each vector plus fresh uniform masks in every slot, and the masks' sums (what the
    sender subtracts from the key holder's slot sums). The masks ride on one encryption of
    zeros at the vectors' scale (TenSEAL adds plain values at a vector's own scale only):
    an encoding per vector instead of an encryption; the key holder sees value + mask
    either way."""
    rng = np.random.default_rng(secrets.randbits(128))
    zeros: dict[float, Any] = {}  # by scale
    out, sums = [], []
    for v in vectors:
        if v.size() != SLOTS:
            raise CryptoError(f"masked: every vector must have {SLOTS} slots")
        scale = v.ciphertext()[0].scale  # TenSEAL 0.3.18's CKKSVector.scale() is broken
        if scale not in zeros:
            zeros[scale] = _encrypt_like(v, np.zeros(SLOTS))
        mask = rng.uniform(-MASK_BOUND, MASK_BOUND, SLOTS)
        out.append(v + (zeros[scale] + mask.tolist()))
        sums.append(math.fsum(mask))
    return out, np.asarray(sums, dtype=float)


def _encrypt_like(vector: Any, values: np.ndarray) -> Any:
    """``values`` encrypted at ``vector``'s scale (TenSEAL adds plain values at its own scale only)."""
    return _ts().ckks_vector(vector.context(), np.asarray(values, dtype=float).tolist(),
                             scale=vector.ciphertext()[0].scale)


def to_bytes(vectors: Sequence[Any]) -> list[bytes]:
    """TenSEAL's own serialisation (protobuf) of each vector."""
    return [bytes(v.serialize()) for v in vectors]


def vectors_from(ctx: Any, blobs: Sequence[bytes]) -> list[Any]:
    """Vectors received as bytes, bound to ``ctx`` (CryptoError on malformed bytes)."""
    ts = _ts()
    if not isinstance(blobs, (list, tuple)):
        raise CryptoError(f"CKKS vectors must come as a list of bytes, not {type(blobs).__name__}")
    out = []
    for i, blob in enumerate(blobs):
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise CryptoError(f"CKKS vector #{i} is not bytes but {type(blob).__name__}")
        try:
            out.append(ts.ckks_vector_from(ctx, bytes(blob)))
        except Exception as exc:  # noqa: BLE001 - TenSEAL raises bare ValueError/RuntimeError on bad bytes
            raise CryptoError(f"invalid CKKS vector #{i}: {exc}") from None
    return out


def check_parameters() -> None:
    """The documented bounds hold (import-time cheap; the tests call it)."""
    if sum(COEFF_MOD_BIT_SIZES) > MAX_LOG_Q or PRODUCT_SCALE_BITS >= sum(COEFF_MOD_BIT_SIZES[:-1]):
        raise CryptoError("CKKS parameters exceed the 128-bit bound or leave no room for the product")
