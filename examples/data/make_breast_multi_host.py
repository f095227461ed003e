"""Regenerate breast_multi_host_{guest,host1,host2}.csv from scikit-learn's breast cancer data.

The 30 features are z-scored (as in make_breast_hetero.py) and split vertically three
ways: the guest holds the label and features x0..x9, host 10000 x10..x19, host 10001
x20..x29. Each host lacks a few ids (host 10000 every id ≡ 0 mod 50, host 10001 every
id ≡ 25 mod 50) and lists its rows in its own order, so the three-way intersection
(546 ids) differs from each pairwise one.
Run: python examples/data/make_breast_multi_host.py
"""

from __future__ import annotations

import numpy as np
from make_breast_hetero import HERE, breast, fmt, write, write_guest


def main() -> None:
    ids, x, y = breast()
    write_guest(HERE / "breast_multi_host_guest.csv", ids, x, y)
    for name, lo, missing, seed in [("host1", 10, 0, 17), ("host2", 20, 25, 23)]:
        rows = np.random.default_rng(seed).permutation(ids[ids % 50 != missing])
        write(
            HERE / f"breast_multi_host_{name}.csv",
            ["id"] + [f"x{i}" for i in range(lo, lo + 10)],
            ([str(i)] + [fmt(v) for v in x[i, lo:lo + 10]] for i in rows),
        )


if __name__ == "__main__":
    main()
