"""One epoch of the host's ``X_hᵀ·[[d]]`` under each ``encrypt_param.method``, in the same run.

    python bench/he_methods.py [--rows 100000] [--cols 80] [--key-length 1024] [--methods paillier,ou,ckks]

Per method: the guest's encryption of the residuals d, the host's encrypted product with
its plaintext features, masked (the figure that matters: ``product``), the key holder's
decryption of the masked result (CKKS: flooded slot sums), and the bytes of [[d]] and of the result on the wire.
``ratio`` = Paillier's product time / the method's. One process, one core: HeteroLR
splits the product over the computing backend's workers, for every method alike.
CKKS needs TenSEAL (the ``he`` extra); its row is skipped without it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from components.crypto import schemes  # noqa: E402
from components.crypto.vector import encrypted_dot  # noqa: E402
from federation import codec  # noqa: E402
from flow.core.errors import CryptoError  # noqa: E402

DOT_PRECISION = 24  # as HeteroLR's (components/linear/hetero_rows.py)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def additive(method: str, d: np.ndarray, X: np.ndarray, mask: np.ndarray, key_length: int) -> dict[str, Any]:
    """Paillier or OU: per-row ciphertexts, the multi-exponentiation product, CRT decryption."""
    pub, priv = schemes.scheme(method).generate(key_length)
    enc, t_enc = _timed(lambda: [c.obfuscate() for c in pub.encrypt_many(d)])
    sent = codec.encode(enc)
    prod, t_dot = _timed(lambda: [c + float(r) for c, r in zip(encrypted_dot(enc, X, DOT_PRECISION), mask)])
    back = codec.encode(prod)
    plain, t_dec = _timed(lambda: priv.decrypt_many(codec.decode(back)))
    return {"encrypt": t_enc, "product": t_dot, "decrypt": t_dec, "d_bytes": len(sent), "out_bytes": len(back),
            "error": float(np.abs(plain - mask - X.T @ d).max())}


def ckks_run(d: np.ndarray, X: np.ndarray, mask: np.ndarray) -> dict[str, Any]:
    """CKKS: d packed 8,192 to a ciphertext, per column one plaintext product per chunk and
    masked slots; the key holder returns flooded slot sums (HeteroLR's ``ckks`` path)."""
    from components.crypto import ckks

    holder = ckks.KeyHolder()
    public = ckks.public_context(holder.public_bytes())
    enc, t_enc = _timed(lambda: ckks.encrypt_vector(public, d))
    sent = ckks.to_bytes(enc)
    received = ckks.vectors_from(public, sent)
    scales = ckks.column_scales(X)
    (columns, masks), t_dot = _timed(lambda: ckks.masked(ckks.column_products(received, X / scales)))
    back = ckks.to_bytes(columns)
    plain, t_dec = _timed(lambda: holder.slot_sums(back, len(d)))
    return {"encrypt": t_enc, "product": t_dot, "decrypt": t_dec, "d_bytes": sum(map(len, sent)),
            "out_bytes": sum(map(len, back)), "error": float(np.abs((plain - masks) * scales - X.T @ d).max())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cols", type=int, default=80)
    parser.add_argument("--key-length", type=int, default=1024, help="bits of n for paillier and ou")
    parser.add_argument("--methods", default="paillier,ou,ckks")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(3)
    d = rng.normal(size=args.rows) * 0.5  # residuals: wx/4 - y/2 scale
    X = rng.normal(size=(args.rows, args.cols))  # standardised features
    mask = rng.uniform(-2.0 ** 20, 2.0 ** 20, args.cols)
    print(f"X_h^T·[[d]] on {args.rows} x {args.cols}, key_length {args.key_length} (paillier, ou), one core")
    print(f"{'method':9} {'encrypt s':>10} {'product s':>10} {'decrypt s':>10} {'[[d]] MB':>9} {'out MB':>8} "
          f"{'max error':>10} {'ratio':>6}")
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "paillier": lambda: additive("paillier", d, X, mask, args.key_length),
        "ou": lambda: additive("ou", d, X, mask, args.key_length),
        "ckks": lambda: ckks_run(d, X, mask),
    }
    base = None
    for method in args.methods.split(","):
        try:
            r = runners[method]()
        except (ImportError, CryptoError) as exc:  # CKKS without TenSEAL
            print(f"{method:9} skipped: {exc}")
            continue
        base = r["product"] if method == "paillier" else base
        ratio = f"{base / r['product']:6.1f}" if base else "     -"
        print(f"{method:9} {r['encrypt']:10.2f} {r['product']:10.2f} {r['decrypt']:10.2f} {r['d_bytes'] / 1e6:9.1f} "
              f"{r['out_bytes'] / 1e6:8.1f} {r['error']:10.2e} {ratio}", flush=True)


if __name__ == "__main__":
    main()
