"""Computing backends on HeteroLR, and Hive storage, in one run: local process pool vs Spark.

Part 1, HeteroLR seconds per epoch on a synthetic set of N rows x (20 guest + 80 host)
features on the local backend and on Spark (``local[2]`` by default), same data, same
run, one backend after the other on each batch. A whole epoch at 200,000 rows takes
longer than a bench run should on a small machine, so by default the epoch is cut into
mini-batches (HeteroLR's ``batch_size``, 50,000: 4 an epoch) and ``--batches`` of them
(2) are timed:
seconds per epoch = mean seconds per batch x batches per epoch (``--batches 0`` times
them all; ``--batch-rows 0`` is full batch). A batch is the work of every role in the
HeteroLR component, done with the component's own worker functions
(components/linear/hetero_lr.py) on one machine:

* host: ``wx_h = X_h w_h`` and its Paillier encryption (re-randomised), one per row;
* guest: ``[[4d]] = [[wx_h]] + wx_g - 2y`` (re-randomised), then ``X_g^T [[4d]]`` plus
  the intercept and loss columns (``encrypted_dot`` per partition);
* host: ``X_h^T [[4d]]``;
* arbiter: decrypt both gradients.

Not included: the federation transfers between parties (two N-ciphertext tables a
epoch; bench/federation.py measures those) and PSI. Both gradients are decrypted and
checked against numpy on the same data.

Part 2, a Hive -> Table -> Hive round trip of M rows (id + double, bigint, string) on
the Spark Thrift Server of tests/hive_server.py (or ``--hive HOST:PORT``): a table is
written once (timed as "write, setup"), read into a Table (HiveServer2 fetch, one
query per partition), and that Table written back as a new Hive table. Write method:
``--hive-write load`` (default: each partition as a local Parquet file, LOAD DATA LOCAL
INPATH) or ``insert`` (INSERT ... SELECT from JSON batches over Thrift).

    python bench/compute.py [--rows 200000] [--batch-rows 50000] [--batches 2] [--key-bits 1024] [--partitions 4]
                            [--master local[2]] [--hive-rows 1000000] [--hive-write load|insert]
                            [--hive HOST:PORT] [--skip-lr] [--skip-hive]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

# run as a script, this folder comes first on sys.path, and bench/federation.py would hide
# the federation package: the repository root goes first instead
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or os.getcwd()).resolve() != ROOT / "bench"]

import numpy as np  # noqa: E402

from backends.computing.local import LocalSession  # noqa: E402
from backends.computing.spark import SparkComputing  # noqa: E402
from components.base import Instance, keys_in  # noqa: E402
from components.crypto import generate_keypair  # noqa: E402
from components.linear.hetero_lr import (  # noqa: E402
    _enc_dot,
    _encrypt,
    _fore4,
    _guest_columns,
    _guest_row,
    _linear,
    _pair_features,
    _sum_vectors,
)

STEPS = ("host_encrypt", "guest_fore", "guest_grad", "host_grad", "decrypt")


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


# ---------------------------------------------------------------- part 1: HeteroLR epochs


def synthetic(rows: int, guest_f: int, host_f: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, guest_f + host_f))
    w = rng.normal(size=guest_f + host_f) / 10
    y = (rng.uniform(size=rows) < 1 / (1 + np.exp(-(x @ w)))).astype(float)
    return x[:, :guest_f], x[:, guest_f:], y


def epoch(guest, host, w_g: np.ndarray, b: float, w_h: np.ndarray, keys) -> tuple[dict[str, float], list, list]:
    """One full-batch HeteroLR epoch's compute; seconds per step, decrypted gradients."""
    public, private = keys
    times: dict[str, float] = {}
    times["host_encrypt"], enc_h = _timed(lambda: host.map_values(_linear(w_h, 0.0)).map_values(_encrypt(public)))

    def fore():
        rows = guest.map_values(_guest_row(w_g, b))
        return rows, enc_h.join(rows, _fore4)

    times["guest_fore"], (rows, fore4) = _timed(fore)
    times["guest_grad"], enc_g = _timed(
        lambda: _sum_vectors(fore4.join(rows, _guest_columns).apply_partitions(_enc_dot)))
    times["host_grad"], enc_hg = _timed(
        lambda: _sum_vectors(fore4.join(host, _pair_features).apply_partitions(_enc_dot)))
    times["decrypt"], plain = _timed(lambda: (private.decrypt_many(enc_g), private.decrypt_many(enc_hg)))
    times["epoch"] = sum(times[s] for s in STEPS)
    return times, plain[0], plain[1]


def check(x_g, x_h, y, w_g, b, w_h, guest_plain, host_plain, name: str) -> float:
    """Largest error of the decrypted gradients against numpy, per row (the gradient's scale)."""
    wx_g = x_g @ w_g + b
    d4 = x_h @ w_h + wx_g - 2 * (2 * y - 1)
    coef = 0.25 * wx_g - 0.5 * (2 * y - 1)
    want_g = np.concatenate([x_g.T @ d4, [d4.sum(), coef @ d4]])
    want_h = x_h.T @ d4
    error = max(float(np.max(np.abs(np.array(guest_plain) - want_g))),
                float(np.max(np.abs(np.array(host_plain) - want_h))))
    per_row = error / len(y)
    assert per_row < 1e-6, f"{name}: decrypted gradients off by {error} ({per_row} per row)"
    return per_row


def hetero_lr(args) -> None:
    rows = args.rows
    x_g, x_h, y = synthetic(rows, args.guest_features, args.host_features)
    ids = [f"r{i}" for i in range(rows)]
    rng = np.random.default_rng(5)
    w_g, w_h, b = rng.normal(size=args.guest_features) / 10, rng.normal(size=args.host_features) / 10, 0.1
    size = args.batch_rows if 0 < args.batch_rows < rows else rows
    order = rng.permutation(rows)  # what HeteroLR's shuffled mini-batches are
    batches = [np.sort(order[i:i + size]) for i in range(0, rows, size)]
    timed = batches[:args.batches] if args.batches > 0 else batches
    keys = generate_keypair(args.key_bits)
    print(f"HeteroLR: {rows:,} rows x ({args.guest_features} guest + {args.host_features} host) features, "
          f"batch_size {size:,} ({len(batches)} batches an epoch), {args.key_bits}-bit Paillier, {args.partitions} "
          f"partitions, {len(os.sched_getaffinity(0))} cores usable, load {os.getloadavg()[0]:.1f}")
    if len(timed) < len(batches):
        print(f"  timing {len(timed)} of the {len(batches)} batches on each backend (a whole epoch would take too "
              f"long here); seconds per epoch = mean seconds per batch x {len(batches)}")
    sample = [(f"r{i}", keys[0].encrypt(float(v)).obfuscate()) for i, v in enumerate(rng.normal(size=2000))]
    pickling, _ = _timed(lambda: pickle.loads(pickle.dumps(sample, protocol=pickle.HIGHEST_PROTOCOL)))
    print(f"  pickle + unpickle of {size:,} ciphertexts (one batch's [[wx_h]]; how every backend moves them "
          f"between processes): {pickling * size / len(sample):.2f}s")
    sessions = {"local": LocalSession(partitions=args.partitions, workers=args.workers, inline_below=0),
                f"spark {args.master}": SparkComputing(partitions=args.partitions, master=args.master,
                                                       conf={"spark.driver.memory": args.driver_memory})}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in sessions}
    try:
        tables = {}
        for name, session in sessions.items():
            warm, small = _timed(
                lambda session=session: session.parallelize([(k, 1.0) for k in ids[:1000]]).map_values(abs))
            op = float(np.median([_timed(lambda small=small: small.map_values(abs))[0] for _ in range(5)]))
            load, (guest, host) = _timed(lambda session=session: (
                session.parallelize(((k, Instance(x_g[i], y[i])) for i, k in enumerate(ids)), args.partitions),
                session.parallelize(((k, Instance(x_h[i])) for i, k in enumerate(ids)), args.partitions)))
            cut, tables[name] = _timed(lambda guest=guest, host=host: [
                (guest.filter(keys_in(frozenset(ids[i] for i in batch))),
                 host.filter(keys_in(frozenset(ids[i] for i in batch)))) for batch in timed])
            print(f"[{name}] start {warm:.1f}s; one operation on a 1,000-row table (its fixed cost) {op:.3f}s; "
                  f"guest + host tables into the backend {load:.1f}s, cut into batches {cut:.1f}s (not in the epoch)")
        for j, batch in enumerate(timed):  # interleaved, so both backends see the same load from other processes
            for name in sessions:
                times, g_plain, h_plain = epoch(*tables[name][j], w_g, b, w_h, keys)
                err = check(x_g[batch], x_h[batch], y[batch], w_g, b, w_h, g_plain, h_plain, name)
                for step, seconds in times.items():
                    results[name].setdefault(step, []).append(seconds)
                print(f"[{name}] batch {j + 1}: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items())
                      + f"; gradient error {err:.1e} per row")
    finally:
        for session in sessions.values():
            session.stop()
    local, spark = sessions
    scale = len(batches)
    print(f"\nHeteroLR seconds per epoch: {rows:,} rows, {len(batches)} batch(es) of {size:,}"
          + (f", mean of {len(timed)} timed batch(es) x {scale}" if len(timed) < scale else "")
          + f"; federation transfers not included; load now {os.getloadavg()[0]:.1f}")
    print(f"{'step':<14}{'local s':>10}{'spark s':>10}{'spark/local':>13}")
    for step in (*STEPS, "epoch"):
        lo, sp = (float(np.mean(results[name][step])) * scale for name in (local, spark))
        print(f"{step:<14}{lo:>10.1f}{sp:>10.1f}{sp / lo:>13.2f}")


# ---------------------------------------------------------------- part 2: Hive round trip


def hive_round_trip(args) -> None:
    from backends.storage.api import TableMeta
    from backends.storage.hive import HiveEngine

    n, server, staging = args.hive_rows, None, None
    if args.hive:
        host, _, port = args.hive.rpartition(":")
    else:
        from tests.hive_server import HiveServer

        started, server = _timed(lambda: HiveServer(heap=args.hive_heap).start())
        host, port = server.host, server.port
        print(f"\nSpark Thrift Server (HiveServer2) started in {started:.0f}s, heap {args.hive_heap}")
    method = {"load": "LOAD DATA LOCAL INPATH of one local Parquet file per partition",
              "insert": "INSERT ... SELECT explode(from_json(..)) batches over Thrift"}[args.hive_write]
    if args.hive_write == "load":
        staging = tempfile.mkdtemp(prefix="fedweave-bench-staging-")
    engine = HiveEngine(host, int(port), database=f"fwbench_{uuid.uuid4().hex[:10]}", staging_dir=staging)
    try:
        with LocalSession(partitions=args.partitions, workers=args.workers) as s:
            columns = ["a", "b", "c"]
            table = s.parallelize(((f"u{i}", (i * 0.25, i, f"n{i % 97}")) for i in range(n)), args.partitions)
            start = time.perf_counter()
            engine.write(table, TableMeta(namespace="bench", name="source", columns=columns))
            setup = time.perf_counter() - start
            del table  # only what is read back stays in memory
            read, back = _timed(lambda: engine.read(engine.meta("bench", "source"), s))
            assert back.count() == n
            write, stored = _timed(
                lambda: engine.write(back, TableMeta(namespace="bench", name="copy", columns=columns)))
            total, sums = engine._run(f"SELECT COUNT(*), SUM(b) FROM `{engine.database}`.`{stored.address['table']}`",
                                      "check the copy")[0]
            assert (total, int(sums)) == (n, n * (n - 1) // 2), (total, sums)
        print(f"\nHive -> Table -> Hive round trip, {n:,} rows (id + double, bigint, string), "
              f"{args.partitions} partitions; write method: {method}")
        print(f"  write, setup (Table -> Hive)    {setup:8.1f} s  {n / setup:>10,.0f} rows/s")
        print(f"  read  (Hive -> Table)           {read:8.1f} s  {n / read:>10,.0f} rows/s  (HiveServer2 fetch)")
        print(f"  write (Table -> Hive)           {write:8.1f} s  {n / write:>10,.0f} rows/s")
        print(f"  round trip (read + write)       {read + write:8.1f} s  (count and SUM(b) of the copy checked)")
    finally:
        engine._run(f"DROP DATABASE IF EXISTS `{engine.database}` CASCADE", "drop the bench database")
        engine.close()
        if staging:
            shutil.rmtree(staging, ignore_errors=True)
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="HeteroLR rows")
    parser.add_argument("--guest-features", type=int, default=20)
    parser.add_argument("--host-features", type=int, default=80)
    parser.add_argument("--batch-rows", type=int, default=50_000, help="HeteroLR batch_size (0: full batch)")
    parser.add_argument("--batches", type=int, default=2, help="batches timed on each backend (0: a whole epoch)")
    parser.add_argument("--key-bits", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--driver-memory", default="4g", help="Spark driver memory (local[N]: executors too)")
    parser.add_argument("--workers", type=int, default=2, help="local backend pool size")
    parser.add_argument("--hive-rows", type=int, default=1_000_000)
    parser.add_argument("--hive-write", choices=("load", "insert"), default="load")
    parser.add_argument("--hive", default=None, help="HOST:PORT of a HiveServer2 (default: start one)")
    parser.add_argument("--hive-heap", default="2g", help="heap of the Thrift server started here")
    parser.add_argument("--skip-lr", action="store_true")
    parser.add_argument("--skip-hive", action="store_true")
    args = parser.parse_args()
    if not args.skip_lr:
        hetero_lr(args)
    if not args.skip_hive:
        hive_round_trip(args)


if __name__ == "__main__":
    main()
