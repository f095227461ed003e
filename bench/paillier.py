"""Throughput of components.crypto.paillier beside raw gmpy2, measured in the same run.

    python bench/paillier.py [--key-length 1024] [--n 2000] [--repeat 3]

For each operation it prints ops/second of the layer, of raw gmpy2 computing the same
modular exponentiations ("raw"), and of the textbook formula where the layer uses a
different one ("textbook": r^n obfuscation, non-CRT decryption, one powmod per matrix
entry). ratio = layer / raw: above 1 the layer is faster, below 1 its overhead shows.
Inputs are obfuscated (full 2n-bit) ciphertexts, as the hot path sees them.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gmpy2  # noqa: E402
import numpy as np  # noqa: E402
from gmpy2 import mpz, powmod  # noqa: E402

from components.crypto.paillier import DEFAULT_PRECISION, _obfuscator_for, generate_keypair  # noqa: E402
from components.crypto.vector import encrypted_dot  # noqa: E402


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(cases: list[tuple[str, int, list[Callable[[], object] | None]]], repeat: int) -> list[list[float | None]]:
    """Best-of-``repeat`` ops/s per case and variant; variants of a case run back to back
    in every round, so a busy machine slows layer and baseline alike."""
    best: list[list[float]] = [[float("inf")] * len(fns) for _, _, fns in cases]
    for _ in range(repeat):
        for (_, _, fns), row in zip(cases, best):
            for i, fn in enumerate(fns):
                if fn is not None:
                    row[i] = min(row[i], _timed(fn))
    return [[ops / t if fn is not None else None for fn, t in zip(fns, row)]
            for (_, ops, fns), row in zip(cases, best)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-length", type=int, default=1024)
    parser.add_argument("--n", type=int, default=2000, help="operations per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per figure (best is kept)")
    args = parser.parse_args(argv)
    n, rep = args.n, args.repeat
    rng = np.random.default_rng(7)

    t0 = time.perf_counter()
    pk, sk = generate_keypair(args.key_length)
    keygen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pk.encrypt(0.0).obfuscate()  # builds the fixed-base obfuscation table once
    table_s = time.perf_counter() - t0

    N, N2 = pk._n, pk._n2
    p, q = sk._p, sk._q
    lam = (p - 1) * (q - 1)
    mu = gmpy2.invert(lam, N)
    h_n = _obfuscator_for(pk.n).h_n
    half_bits = 8 * _obfuscator_for(pk.n).nbytes

    values = rng.normal(size=n) * 10
    ms = [pk.encode(float(v), DEFAULT_PRECISION) for v in values]
    enc = [c.obfuscate() for c in pk.encrypt_many(values)]
    raw = [c._c for c in enc]
    scalars = rng.normal(size=n)
    ks = [pk.encode(float(s), DEFAULT_PRECISION) for s in scalars]

    def raw_crt(c: mpz) -> mpz:  # the same two half-size exponentiations the layer does
        mp = (powmod(c, p - 1, sk._p2) - 1) // p * sk._hp % p
        mq = (powmod(c, q - 1, sk._q2) - 1) // q * sk._hq % q
        return mq + q * ((mp - mq) * sk._q_inv % p)

    dot_rows, dot_cols = 569, 20
    X = rng.normal(size=(dot_rows, dot_cols))
    d_enc = [c.obfuscate() for c in pk.encrypt_many(rng.normal(size=dot_rows))]
    d_raw = [c._c for c in d_enc]
    K = np.rint(np.ldexp(X, DEFAULT_PRECISION)).astype(np.int64)

    def raw_dot() -> list[mpz]:
        out = []
        for j in range(dot_cols):
            acc = mpz(1)
            for c, k in zip(d_raw, K[:, j].tolist()):
                acc = acc * powmod(c, k, N2) % N2
            out.append(acc)
        return out

    layer_dot = [x.ciphertext for x in encrypted_dot(d_enc, X)]
    assert [sk.raw_decrypt(x) for x in layer_dot] == [sk.raw_decrypt(x) for x in raw_dot()], "dot mismatch"
    dot_ops = dot_rows * dot_cols

    cases = [
        ("encrypt (+obfuscate)", n, [
            lambda: [pk.encrypt(float(v)).ciphertext for v in values],
            lambda: [(1 + m % N * N) * powmod(h_n, mpz(secrets.randbits(half_bits)), N2) % N2 for m in ms],
            lambda: [(1 + m % N * N) * powmod(mpz(secrets.randbelow(pk.n)), N, N2) % N2 for m in ms]]),
        ("decrypt", n, [
            lambda: [sk.decrypt(c) for c in enc],
            lambda: [raw_crt(c) for c in raw],
            lambda: [(powmod(c, lam, N2) - 1) // N * mu % N for c in raw]]),
        ("add (cipher+cipher)", n - 1, [
            lambda: [a + b for a, b in zip(enc, enc[1:])],
            lambda: [a * b % N2 for a, b in zip(raw, raw[1:])], None]),
        ("add (cipher+plain)", n, [
            lambda: [a + v for a, v in zip(enc, values)],
            lambda: [a * (1 + m % N * N) % N2 for a, m in zip(raw, ms)], None]),
        ("scalar multiply", n, [
            lambda: [a * float(s) for a, s in zip(enc, scalars)],
            lambda: [powmod(a, k, N2) for a, k in zip(raw, ks)], None]),
        (f"encrypted_dot {dot_rows}x{dot_cols} (per entry)", dot_ops, [
            lambda: encrypted_dot(d_enc, X), None, raw_dot]),
    ]
    rows = [(name, *rates) for (name, _, _), rates in zip(cases, measure(cases, rep))]

    print(f"Paillier {args.key_length}-bit, n={n}, best of {rep}; keygen {keygen_s:.2f} s, "
          f"obfuscation table {table_s * 1000:.0f} ms (once per key and process)")
    header = f"{'operation':<34} {'layer ops/s':>12} {'raw ops/s':>12} {'ratio':>7} {'textbook ops/s':>15} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, layer, same, textbook in rows:
        def cell(base: float | None, width: int) -> str:
            return f"{base:>{width}.0f}" if base else f"{'-':>{width}}"

        def ratio(base: float | None, layer: float = layer) -> str:
            return f"{layer / base:>7.2f}" if base else f"{'-':>7}"

        print(f"{name:<34} {layer:>12.0f} {cell(same, 12)} {ratio(same)} {cell(textbook, 15)} {ratio(textbook)}")


if __name__ == "__main__":
    main()
