"""Regenerate breast_homo_{guest,host1,host2}.csv from scikit-learn's breast cancer data.

Horizontal split: every party holds the label and all 30 features (z-scored, as in the
data set FATE users know as breast_homo) of its own rows. The 569 rows are shuffled
and dealt out 200 / 185 / 184 to the guest and two hosts; ids stay unique overall.
Run: python examples/data/make_breast_homo.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from sklearn.datasets import load_breast_cancer

HERE = Path(__file__).resolve().parent
SHARES = {"breast_homo_guest.csv": 200, "breast_homo_host1.csv": 185, "breast_homo_host2.csv": 184}


def main() -> None:
    data = load_breast_cancer()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    y = data.target
    order = np.random.default_rng(11).permutation(len(y))
    header = ["id", "y"] + [f"x{i}" for i in range(x.shape[1])]
    start = 0
    for name, count in SHARES.items():
        with (HERE / name).open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(header)
            for i in order[start:start + count]:
                out.writerow([str(i), int(y[i])] + [f"{v:.6f}" for v in x[i]])
        start += count
    assert start == len(y)


if __name__ == "__main__":
    main()
