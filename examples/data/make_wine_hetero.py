"""Regenerate wine_hetero_{guest,host}.csv from scikit-learn's wine data (three classes).

The guest holds the label (0, 1, 2) and the first 5 of the 13 features, the host the
other 8. Values are kept as measured: trees do not need scaled features. Both hold all
178 ids, the host's rows in another order, so the intersection has work to do.
Run: python examples/data/make_wine_hetero.py
"""

from __future__ import annotations

from make_breast_hetero import write_vertical  # type: ignore[import-not-found]  # sibling script
from sklearn.datasets import load_wine

GUEST_FEATURES = 5


def main() -> None:
    data = load_wine()
    x, y = data.data, data.target
    guest, host = [f"x{i}" for i in range(GUEST_FEATURES)], [f"x{i}" for i in range(x.shape[1] - GUEST_FEATURES)]
    write_vertical("wine_hetero", guest, host, x,
                   [int(v) for v in y], seed=11, value=lambda v: f"{v:.6g}")  # the data set's own precision


if __name__ == "__main__":
    main()
