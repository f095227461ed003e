"""Regenerate wine_hetero_{guest,host}.csv from scikit-learn's wine data (three classes).

The guest holds the label (0, 1, 2) and the first 5 of the 13 features, the host the
other 8. Values are kept as measured: trees do not need scaled features. Both hold all
178 ids, the host's rows in another order, so the intersection has work to do.
Run: python examples/data/make_wine_hetero.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

from make_breast_hetero import write  # type: ignore[import-not-found]  # sibling script

HERE = Path(__file__).resolve().parent
GUEST_FEATURES = 5


def main() -> None:
    data = load_wine()
    x, y = data.data, data.target
    ids = np.arange(len(y))
    fmt = lambda v: f"{v:.6g}"  # noqa: E731 - the data set's own precision
    write(
        HERE / "wine_hetero_guest.csv",
        ["id", "y"] + [f"x{i}" for i in range(GUEST_FEATURES)],
        ([str(i), int(y[i])] + [fmt(v) for v in x[i, :GUEST_FEATURES]] for i in ids),
    )
    order = np.random.default_rng(11).permutation(ids)
    write(
        HERE / "wine_hetero_host.csv",
        ["id"] + [f"x{i}" for i in range(x.shape[1] - GUEST_FEATURES)],
        ([str(i)] + [fmt(v) for v in x[i, GUEST_FEATURES:]] for i in order),
    )


if __name__ == "__main__":
    main()
