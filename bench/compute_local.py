"""Local computing backend: process pool vs a plain loop in the driver, same data, same run.

Two workloads: a CPU-heavy one (modular exponentiation with 2048-bit numbers, the shape
of Paillier encryption) where the pool should win by about the number of cores, and a
trivial one (v + 1) where inter-process transfer dominates and the pool loses; the
second is why small inputs run inline.

    python bench/compute_local.py [--rows 4000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import random
import time

import gmpy2

from backends.computing.local import LocalSession


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000, help="rows of the heavy workload")
    parser.add_argument("--light-rows", type=int, default=200_000, help="rows of the trivial workload")
    parser.add_argument("--workers", type=int, default=None, help="pool size (default: all cores)")
    args = parser.parse_args()

    rng = random.Random(7)
    modulus = gmpy2.next_prime(gmpy2.mpz(rng.getrandbits(2048)))
    exponent = gmpy2.mpz(rng.getrandbits(2048))
    heavy = [(f"h{i}", gmpy2.mpz(rng.getrandbits(2000))) for i in range(args.rows)]
    light = [(f"l{i}", i) for i in range(args.light_rows)]

    def powmod(v):
        return gmpy2.powmod(v, exponent, modulus)

    with LocalSession(workers=args.workers) as session:
        print(f"cores usable: {len(os.sched_getaffinity(0))}, workers: {session.workers}, "
              f"partitions: {session.default_partitions}")
        heavy_t = session.parallelize(heavy)
        light_t = session.parallelize(light)
        warm, _ = _timed(lambda: session.parallelize(heavy[:4000]).map_values(lambda v: v).count())
        print(f"pool start (first operation): {warm:.3f}s")

        base, ref = _timed(lambda: {k: powmod(v) for k, v in heavy})
        pool, out = _timed(lambda: dict(heavy_t.map_values(powmod).collect()))
        assert out == ref
        print(f"heavy  {args.rows} powmod-2048: driver loop {base:.3f}s, pool {pool:.3f}s, "
              f"speed-up x{base / pool:.2f}")

        base, ref = _timed(lambda: {k: v + 1 for k, v in light})
        pool, out = _timed(lambda: dict(light_t.map_values(lambda v: v + 1).collect()))
        assert out == ref
        print(f"light  {args.light_rows} v+1:          driver loop {base:.3f}s, pool {pool:.3f}s, "
              f"speed-up x{base / pool:.2f}")


if __name__ == "__main__":
    main()
