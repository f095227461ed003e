"""Regenerate breast_hetero_{guest,host}.csv from scikit-learn's breast cancer data.

The 30 features are z-scored (as in the data set FATE users know as breast_hetero);
the guest holds the label and the first 10 features, the host the other 20. Both hold
all 569 ids, the host's rows in another order, so the intersection has work to do.
Run: python examples/data/make_breast_hetero.py
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np
from sklearn.datasets import load_breast_cancer

HERE = Path(__file__).resolve().parent


def write(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)


def fmt(v: float) -> str:
    return f"{v:.6f}"  # six decimals keep the files small and exact enough


def breast() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, z-scored features, labels)."""
    data = load_breast_cancer()
    x = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    return np.arange(len(data.target)), x, data.target


def write_guest(path: Path, ids: np.ndarray, x: np.ndarray, y: np.ndarray) -> None:
    """The label and the first 10 features of every id."""
    write(path, ["id", "y"] + [f"x{i}" for i in range(10)],
          ([str(i), int(y[i])] + [fmt(v) for v in x[i, :10]] for i in ids))


def write_vertical(name: str, guest_names: list[str], host_names: list[str], x: np.ndarray, labels: list,
                   seed: int, value: Callable[[float], str] = fmt) -> None:  # fmt: skip
    """<name>_guest.csv: id, y and the first len(guest_names) columns of every row;
    <name>_host.csv: id and the other columns, its rows in another order (``seed``), so
    the intersection has work to do."""
    ids, g = np.arange(len(labels)), len(guest_names)
    write(HERE / f"{name}_guest.csv", ["id", "y"] + guest_names,
          ([str(i), labels[i]] + [value(v) for v in x[i, :g]] for i in ids))
    write(HERE / f"{name}_host.csv", ["id"] + host_names,
          ([str(i)] + [value(v) for v in x[i, g:]] for i in np.random.default_rng(seed).permutation(ids)))


def main() -> None:
    _, x, y = breast()
    write_vertical("breast_hetero", [f"x{i}" for i in range(10)], [f"x{i}" for i in range(20)], x,
                   [int(v) for v in y], seed=7)


if __name__ == "__main__":
    main()
