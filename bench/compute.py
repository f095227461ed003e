"""Computing backends on the HeteroLR hot path: local process pool vs Spark, same data, same run.

One epoch is what a HeteroLR party computes per full batch: encrypt (and re-randomise)
one value per row with a Paillier key on the workers, join the ciphertexts with the
feature rows, and run the encrypted ``X^T · [[d]]`` per partition
(``encrypted_dot`` via ``apply_partitions``), summed in the driver. Also timed: a table
round trip (parallelize the feature rows, collect them back). The results of both
backends are decrypted and checked against the plaintext product.

    python bench/compute.py [--rows 200000] [--features 20] [--key-bits 1024]
                            [--partitions 4] [--master local[2]] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from backends.computing.local import LocalSession
from backends.computing.spark import SparkComputing
from components.crypto import encrypted_dot, generate_keypair


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _dot(part):
    """The partition's encrypted X^T d and the CPU seconds its arithmetic took (the rest of
    the step is moving and unpickling the partition, or waiting for a core)."""
    if not part:
        return None
    start = time.process_time()
    out = encrypted_dot([c for _, (c, _) in part], np.stack([x for _, (_, x) in part]))
    return out, time.process_time() - start


def _pair(c, x):
    return c, x


def epoch(session, d_table, x_table, public) -> tuple[dict[str, float], list]:
    """One HeteroLR-style epoch; seconds per step and the encrypted X^T d."""
    times = {}
    times["encrypt"], enc = _timed(lambda: d_table.map_values(lambda v: public.encrypt(v).obfuscate()))
    times["join"], joined = _timed(lambda: enc.join(x_table, _pair))
    times["dot"], parts = _timed(lambda: [p for p in joined.apply_partitions(_dot) if p is not None])
    total = [sum(col[1:], col[0]) for col in zip(*[dot for dot, _ in parts])]
    times["epoch"] = sum(times.values())
    times["dot_math_cpu"] = sum(seconds for _, seconds in parts)
    return times, total


def setup(name: str, session, args, d_rows, x_rows) -> tuple:
    warm, _ = _timed(lambda: session.parallelize(d_rows[:1000]).map_values(abs).count())
    print(f"[{name}] first operation (starts the workers / the JVM) {warm:.2f}s")
    trip, back = _timed(lambda: dict(session.parallelize(x_rows, args.partitions).collect()))
    assert len(back) == len(x_rows)
    print(f"[{name}] table round trip (parallelize + collect {len(x_rows)} rows x {args.features} floats): {trip:.2f}s")
    return trip, session.parallelize(d_rows, args.partitions), session.parallelize(x_rows, args.partitions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--key-bits", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--workers", type=int, default=2, help="local backend pool size")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    rng = np.random.default_rng(11)
    d_rows = [(f"id{i}", float(v)) for i, v in enumerate(rng.normal(0, 0.5, args.rows))]
    x = rng.normal(size=(args.rows, args.features))
    x_rows = [(k, x[i]) for i, (k, _) in enumerate(d_rows)]
    keys = generate_keypair(args.key_bits)
    print(f"{args.rows} rows x {args.features} features, {args.key_bits}-bit Paillier, "
          f"{args.partitions} partitions, {len(os.sched_getaffinity(0))} cores usable, load {os.getloadavg()[0]:.1f}")

    public, private = keys
    want = x.T @ np.array([v for _, v in d_rows])
    sessions = {"local": LocalSession(partitions=args.partitions, workers=args.workers, inline_below=0),
                "spark": SparkComputing(partitions=args.partitions, master=args.master)}
    try:
        tables = {name: setup(f"{name}", s, args, d_rows, x_rows) for name, s in sessions.items()}
        results = {name: {"round_trip": [t[0]]} for name, t in tables.items()}
        for e in range(args.epochs):  # interleaved, so both backends see the same load from other processes
            for name, session in sessions.items():
                times, total = epoch(session, tables[name][1], tables[name][2], public)
                for step, seconds in times.items():
                    results[name].setdefault(step, []).append(seconds)
                print(f"[{name}] epoch {e + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in times.items()))
                error = float(np.max(np.abs(private.decrypt_many(total) - want)))
                assert error < 1e-5, f"{name}: decrypted X^T d is off by {error}"
    finally:
        for session in sessions.values():
            session.stop()
    print(f"\nmean of {args.epochs} epochs; decrypted X^T d checked against numpy on both backends; "
          "dot_math_cpu: CPU seconds of the encrypted_dot arithmetic, summed over partitions")
    print(f"{'step':<12}{'local s':>10}{'spark s':>10}{'spark/local':>13}")
    for step in ("encrypt", "join", "dot", "dot_math_cpu", "epoch", "round_trip"):
        lo, sp = (float(np.mean(results[name][step])) for name in ("local", "spark"))
        print(f"{step:<12}{lo:>10.2f}{sp:>10.2f}{sp / lo:>13.2f}")


if __name__ == "__main__":
    main()
