"""Throughput of components.mpc.ot beside raw X25519 scalar multiplications, in the same run.

    python bench/ot.py [--extension 100000] [--base 256] [--n 16] [--repeat 3]

Prints, best of ``repeat``: raw X25519 multiplications per second (``cryptography``'s
ladder, the unit base OT cost is made of), base OTs per second (Chou-Orlandi, both sides in
one process: per OT two ladders on each side plus the Edwards additions), OTs per second by
IKNP extension (128 base OTs included; 16-byte messages) and 1-out-of-n transfers per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from components.mpc import ot  # noqa: E402


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extension", type=int, default=100_000)
    ap.add_argument("--base", type=int, default=256)
    ap.add_argument("--n", type=int, default=16, help="messages per 1-out-of-n transfer")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)

    key = X25519PrivateKey.generate()
    peers = [X25519PrivateKey.generate().public_key() for _ in range(args.base)]
    raw = best(lambda: [key.exchange(p) for p in peers], args.repeat)

    def base() -> None:
        choices = rng.integers(0, 2, args.base)
        sender, receiver = ot.BaseSender(args.base), ot.BaseReceiver(choices)
        sender.keys(receiver.respond(sender.setup()))
        receiver.keys()

    def extension() -> None:
        m = args.extension
        choices = rng.integers(0, 2, m).astype(bool)
        x = rng.integers(0, 256, (2, m, 16), dtype=np.uint8)
        receiver, sender = ot.ExtensionReceiver(choices), ot.ExtensionSender(m)
        u = receiver.extend(sender.respond(receiver.start()))
        receiver.receive(sender.transfer(u, x[0], x[1]))

    count_n = max(1, args.extension // 100)

    def one_of_n() -> None:
        messages = rng.integers(0, 256, (count_n, args.n, 16), dtype=np.uint8)
        sender = ot.OneOfNSender(messages)
        receiver = ot.OneOfNReceiver(rng.integers(0, args.n, count_n), args.n)
        y, c = sender.transfer(receiver.extend(sender.respond(receiver.start())))
        receiver.receive(y, c)

    rows = [("raw X25519 multiplications", args.base, raw),
            ("base OTs (Chou-Orlandi)", args.base, best(base, args.repeat)),
            ("OTs by IKNP extension", args.extension, best(extension, args.repeat)),
            (f"1-out-of-{args.n} transfers", count_n, best(one_of_n, args.repeat))]
    print(f"{'operation':32s} {'count':>8s} {'seconds':>9s} {'per second':>12s}")
    for name, count, seconds in rows:
        print(f"{name:32s} {count:8d} {seconds:9.3f} {count / seconds:12.0f}")


if __name__ == "__main__":
    main()
