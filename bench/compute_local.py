"""Local computing backend: process pool vs a plain loop in the driver, same data, same run.

Two workloads: a CPU-heavy one (modular exponentiation with 2048-bit numbers, the shape
of Paillier encryption) where the pool should win by about the number of cores, and a
trivial one (v + 1) where inter-process transfer dominates and the pool loses; the
second is why small inputs run inline, and why the backend's probe keeps cheap rows of a
large input in the driver (the trivial workload runs three ways: a plain loop, the
session as it decides, and a session forced onto its pool with ``inline_below=0``).

    python bench/compute_local.py [--rows 4000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import random
import time

import gmpy2

from backends.computing.local import INLINE_BELOW, LocalSession


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _mapped(table, f) -> tuple[float, dict]:
    """Seconds of ``table.map_values(f)`` collected, and what it gave."""
    start = time.perf_counter()
    out = dict(table.map_values(f).collect())
    return time.perf_counter() - start, out


def _plus_one(v: int) -> int:
    return v + 1


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

    base_heavy, ref_heavy = _timed(lambda: {k: powmod(v) for k, v in heavy})
    base_light, ref_light = _timed(lambda: {k: v + 1 for k, v in light})
    timings: dict[str, tuple[float, float]] = {}
    for label, inline_below in (("pool forced", 0), ("backend's choice", INLINE_BELOW)):
        with LocalSession(workers=args.workers, inline_below=inline_below) as session:
            if not timings:
                print(f"cores usable: {len(os.sched_getaffinity(0))}, workers: {session.workers}, "
                      f"partitions: {session.default_partitions}")
                warm, _ = _timed(lambda: session.parallelize(heavy[:8]).map_values(lambda v: v).count())
                print(f"pool start (first operation on the pool): {warm:.3f}s")
            else:  # the pool up, as above: rows slow enough that the probe sends them there
                session.parallelize(heavy[:INLINE_BELOW]).map_values(powmod).count()
            heavy_s, out = _mapped(session.parallelize(heavy), powmod)
            assert out == ref_heavy
            light_s, out = _mapped(session.parallelize(light), _plus_one)
            assert out == ref_light
            timings[label] = (heavy_s, light_s)
    for i, (what, base) in enumerate(((f"heavy  {args.rows} powmod-2048", base_heavy),
                                      (f"light  {args.light_rows} v+1", base_light))):
        forced, chosen = timings["pool forced"][i], timings["backend's choice"][i]
        print(f"{what}: driver loop {base:.3f}s, pool forced {forced:.3f}s (x{base / forced:.2f} the loop), "
              f"backend's choice {chosen:.3f}s (x{base / chosen:.2f} the loop)")


if __name__ == "__main__":
    main()
