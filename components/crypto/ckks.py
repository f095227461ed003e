"""CKKS through TenSEAL for the vertical linear models' ``X_hᵀ·[[d]]`` (``method: "ckks"``).

One ciphertext packs 8,192 residuals (SIMD slots), so the host's product costs, per column,
one plaintext multiplication per 8,192 rows and one rotate-and-sum (log2 8192 = 13
rotations), instead of a modular exponentiation per matrix entry.

Parameters (HE standard, Albrecht et al. 2018, table for 128-bit classical security with a
ternary secret): ``poly_modulus_degree`` N = 16384 allows log2(Q) <= 438; the coefficient
modulus here is five 60-bit primes, log2(Q) = 300 (the last is SEAL's special key-switching
prime). The residuals are encoded at scale 2**80; the host's plaintext features are encoded
at the ciphertext's scale, so the product sits at 2**160 without any rescaling (rescaling
would add rounding noise) and 2**240 / 2**160 leaves 2**79 of room for the value and its mask.

Noise flooding. A CKKS decryption returns ``m + e`` with ``e`` a function of the secret key;
handing such results to another party lets it recover the key (Li–Micciancio, EUROCRYPT
2021). So :meth:`KeyHolder.decrypt_flooded` first adds to the ciphertext an encryption of
Gaussian noise with ``sigma = 2**FLOOD_BITS · NOISE_BOUND`` (FLOOD_BITS = 40 statistical
bits), and only then decrypts. ``NOISE_BOUND`` = 2**-46 bounds ``e`` in the value domain
for this circuit: fresh noise ~2**-67 per slot at scale 2**80, times |x| <= 16
(standardised features), summed over up to 2**17 rows; key switching at scale 2**160 adds
far less. The flooding thus costs ~2**-6 absolute on a column sum (1.5e-7 on a gradient
averaged over 100,000 rows). The float decoding afterwards is post-processing of the
flooded value.

Sizes and costs, measured: the public context with its Galois keys is ~138 MB (sent once
per job), [[d]] ~1 MB per 8,192 rows, and the result one ciphertext (~1 MB) per column;
the rotate-and-sum per column dominates the host's time. Packing every column's sum into
one ciphertext (diagonal method with baby-step/giant-step rotations of [[d]]) would cut
both, but TenSEAL's Python vectors expose no rotation.

Wire: contexts and vectors cross as TenSEAL's own ``serialize()`` bytes (protobuf, never
pickle). The key holder sends a public context (public and Galois keys, no secret key);
a receiver loads it with :func:`public_context`, which refuses a context that carries a
secret key or other parameters than these, and builds vectors with
:func:`vectors_from` against that context.
"""

from __future__ import annotations

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
NOISE_BOUND = 2.0 ** -46
FLOOD_SIGMA = 2.0 ** FLOOD_BITS * NOISE_BOUND


def _ts() -> Any:
    """TenSEAL, imported on first use (the ``he`` extra); CryptoError when it is missing."""
    try:
        import tenseal
        import tenseal.sealapi  # noqa: F401 - registers SEAL's types (the parameter check reads them)
    except ImportError:
        raise CryptoError("encrypt_param.method 'ckks' needs TenSEAL: pip install 'fedweave[he]'") from None
    return tenseal


def _new_context() -> Any:
    ts = _ts()
    ctx = ts.context(ts.SCHEME_TYPE.CKKS, POLY_MODULUS_DEGREE, coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES))
    _configure(ctx)
    ctx.generate_galois_keys()
    return ctx


def _configure(ctx: Any) -> None:
    """No automatic rescaling (see the module doc)."""
    ctx.auto_rescale = False
    ctx.global_scale = 2.0 ** SCALE_BITS


class KeyHolder:
    """The party that holds the secret key: makes the context, decrypts with flooding."""

    def __init__(self) -> None:
        self.context = _new_context()

    def public_bytes(self) -> bytes:
        """The context to send: public key and Galois keys (for rotations), never the secret key."""
        return bytes(self.context.serialize(save_public_key=True, save_secret_key=False, save_galois_keys=True,
                                            save_relin_keys=False))

    def decrypt_flooded(self, vector: Any, size: int | None = None) -> np.ndarray:
        """The values of ``vector`` (first ``size`` slots), with flooding noise added to the
        ciphertext before the decryption (see the module doc). Its context must be this key's."""
        n = vector.size() if size is None else size
        noise = np.random.default_rng(secrets.randbits(128)).normal(0.0, FLOOD_SIGMA, n)
        vector.link_context(self.context)
        flooded = vector + _encrypt_like(vector, noise.tolist())
        return np.asarray(flooded.decrypt(), dtype=float)[:n]


def public_context(data: bytes) -> Any:
    """A context received from the key holder, checked: public (no secret key), Galois keys
    present, and exactly this module's parameters (so the sender cannot weaken them)."""
    ts = _ts()
    try:
        ctx = ts.context_from(bytes(data))
    except Exception as exc:  # noqa: BLE001 - TenSEAL raises bare ValueError/RuntimeError on bad bytes
        raise CryptoError(f"invalid CKKS context from the key holder: {exc}") from None
    if ctx.has_secret_key():
        raise CryptoError("the CKKS context received carries a secret key; the key holder must send a public one")
    if not ctx.has_galois_keys():
        raise CryptoError("the CKKS context received has no Galois keys (needed for the rotate-and-sum)")
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
    padded = np.zeros(-(-arr.size // SLOTS) * SLOTS)
    padded[:arr.size] = arr
    return [ts.ckks_vector(ctx, padded[i:i + SLOTS].tolist(), scale=2.0 ** SCALE_BITS)
            for i in range(0, padded.size, SLOTS)]


def dot_plain(chunks: Sequence[Any], X: np.ndarray, mask: np.ndarray | None = None) -> list[Any]:
    """``[[Xᵀ·d + mask]]``: one ciphertext per column of ``X`` (rows = the packed values of
    ``chunks``, in order), the column's sum in slot 0. Column j is ``Σ_c [[d_c]] ⊙ X_c[:, j]``
    accumulated over the chunks first, then one rotate-and-sum."""
    arr = np.asarray(X, dtype=float)
    if not chunks or any(c.size() != SLOTS for c in chunks):
        raise CryptoError(f"dot_plain needs ciphertexts of {SLOTS} slots each (encrypt_vector's)")
    capacity = len(chunks) * SLOTS
    if arr.ndim != 2 or not capacity - SLOTS < arr.shape[0] <= capacity:
        raise CryptoError(f"dot_plain: X must be 2-D with one row per packed value ({len(chunks)} ciphertexts "
                          f"hold {capacity - SLOTS + 1} to {capacity}), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise CryptoError("dot_plain: X has NaN or infinite values")
    padded = np.zeros((capacity, arr.shape[1]))
    padded[:arr.shape[0]] = arr
    out = []
    for j in range(arr.shape[1]):
        acc = chunks[0] * padded[:SLOTS, j].tolist()
        for k, c in enumerate(chunks[1:], 1):
            acc += c * padded[k * SLOTS:(k + 1) * SLOTS, j].tolist()
        total = acc.sum()
        out.append(total if mask is None else total + _encrypt_like(total, [float(mask[j])]))
    return out


def _encrypt_like(vector: Any, values: list[float]) -> Any:
    """``values`` encrypted at ``vector``'s scale (TenSEAL adds plain values at its own scale only)."""
    return _ts().ckks_vector(vector.context(), values, scale=vector.ciphertext()[0].scale)


def to_bytes(vectors: Sequence[Any]) -> list[bytes]:
    """TenSEAL's own serialisation (protobuf) of each vector."""
    return [bytes(v.serialize()) for v in vectors]


def vectors_from(ctx: Any, blobs: Sequence[bytes]) -> list[Any]:
    """Vectors received as bytes, bound to ``ctx`` (CryptoError on malformed bytes)."""
    ts = _ts()
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
