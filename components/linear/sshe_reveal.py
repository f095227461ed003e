"""``reveal_strategy: encrypted_reveal_in_host``: a host's weights end training encrypted under
the guest's Paillier key and stay so in its model; the host never sees them in the clear.

A stored weight is the ciphertext of its fixed-point ring element ``W = w·2^f mod 2^K`` (plus
``2^K`` when the guest's and the host's shares wrapped). To score a row the host computes
``[[Σ_j x_j·W_j]]`` with ``x_j`` rounded to ``f`` fractional bits, and sends it; the guest
decrypts only that partial score, reduces it mod ``2^K`` (which drops the wraps: each is
``2^K`` times an integer) and reads it with ``2f`` fractional bits. The guest keeps its key
in its own model for predict jobs.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from components.crypto.paillier import EncryptedNumber, PaillierPrivateKey, PaillierPublicKey
from components.crypto.vector import encrypted_dot
from components.mpc import FixedPoint
from flow.core.errors import ComponentError


def host_model(weights: np.ndarray) -> dict[str, Any]:
    """The host's model fields for encrypted weights (one row per one-vs-rest model)."""
    arr = np.asarray(weights, dtype=object)
    return {"encrypted_weights": np.vectorize(lambda c: hex(c.ciphertext), otypes=[object])(arr).tolist(),
            "guest_public_key": hex(arr.flat[0].public_key.n)}


def load_host(component: str, model: dict[str, Any]) -> np.ndarray:
    try:
        key = PaillierPublicKey(int(model["guest_public_key"], 16))
        arr = np.asarray(model["encrypted_weights"], dtype=object)
        return np.vectorize(lambda h: EncryptedNumber(key, int(h, 16), 0), otypes=[object])(arr)
    except (KeyError, TypeError, ValueError) as exc:
        raise ComponentError(f"{component}: the host's model holds no readable encrypted weights ({exc})") from exc


def host_scores(weights: np.ndarray, fp: FixedPoint) -> Callable[[list], list]:
    """A partition of Instances → ``[[x·W]]`` per row (one ciphertext, or a list of one per model),
    for ``map_partitions``: the partition's rows are one shared-base multi-exponentiation over the
    weights' ciphertexts (:func:`encrypted_dot`), not one exponentiation per feature and row."""
    enc = [[EncryptedNumber(c.public_key, c.ciphertext, 0) for c in row]  # raw ring elements, as stored
           for row in np.atleast_2d(np.asarray(weights, dtype=object))]
    single = np.asarray(weights).ndim == 1

    def f(part: list) -> list:
        if not part:
            return []
        X = np.array([np.asarray(inst.features, dtype=float) for _, inst in part]).reshape(len(part), -1)
        per_model = [[c.obfuscate() for c in _raw_dot(row, X.T, fp.precision_bits)] for row in enc]
        return [(k, per_model[0][i] if single else [m[i] for m in per_model]) for i, (k, _) in enumerate(part)]
    return f


def _raw_dot(weights: list, XT: np.ndarray, precision_bits: int) -> list:
    """``[[Σ_j W_j·round(x_j·2^f)]]`` per column of ``XT``, as ciphertexts of exponent 0: the guest
    reads the raw plaintext, so the fixed-point exponent encrypted_dot attaches is dropped."""
    return [EncryptedNumber(c.public_key, c.ciphertext, 0)
            for c in encrypted_dot(weights, XT, precision_bits=precision_bits)]


def guest_key_record(key: PaillierPrivateKey) -> dict[str, str]:
    return {"n": hex(key.public_key.n), "p": hex(int(key._p)), "q": hex(int(key._q))}


def load_guest_key(component: str, record: Any) -> PaillierPrivateKey:
    try:
        return PaillierPrivateKey(PaillierPublicKey(int(record["n"], 16)), int(record["p"], 16), int(record["q"], 16))
    except (KeyError, TypeError, ValueError) as exc:
        raise ComponentError(f"{component}: the guest's model holds no readable Paillier key for the hosts' "
                             f"encrypted weights ({exc})") from exc


def guest_decrypt(key: PaillierPrivateKey, fp: FixedPoint) -> Callable[[Any], Any]:
    """A host's ``[[x·W]]`` (or a list of them) → the partial score(s) as floats."""
    n, m, half = key.public_key.n, fp.modulus, fp.modulus >> 1

    def one(c: Any) -> float:
        if not isinstance(c, EncryptedNumber) or c.public_key != key.public_key:
            raise ComponentError("a host's encrypted score is not a ciphertext under the guest's key")
        v = key.raw_decrypt(c.ciphertext)
        v = (v - n if v > n // 2 else v) % m
        return float(v - m if v >= half else v) / 2.0 ** (2 * fp.precision_bits)

    def f(v: Any) -> Any:
        return np.array([one(c) for c in v]) if isinstance(v, list) else one(v)
    return f
