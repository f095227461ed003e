"""Regenerate diabetes_hetero_{guest,host}.csv from scikit-learn's diabetes data (regression).

442 patients, 10 measurements, the target a disease progression score one year later.
The target is z-scored (as FATE's own regression examples use a standardised target);
the features are kept as measured, for FeatureScale to scale in the pipeline. The guest
holds the target and age, sex, bmi, bp; the host the six blood serum measurements s1–s6.
Both hold all ids, the host's rows in another order.
Run: python examples/data/make_diabetes_hetero.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_diabetes

from make_breast_hetero import write  # type: ignore[import-not-found]  # sibling script

HERE = Path(__file__).resolve().parent
GUEST_FEATURES = 4


def main() -> None:
    data = load_diabetes(scaled=False)
    x, y, names = data.data, data.target, list(data.feature_names)
    y = (y - y.mean()) / y.std()
    ids = np.arange(len(y))
    fmt = lambda v: f"{v:.6g}"  # noqa: E731 - the data set's own precision
    write(
        HERE / "diabetes_hetero_guest.csv",
        ["id", "y"] + names[:GUEST_FEATURES],
        ([str(i), f"{y[i]:.6f}"] + [fmt(v) for v in x[i, :GUEST_FEATURES]] for i in ids),
    )
    order = np.random.default_rng(13).permutation(ids)
    write(
        HERE / "diabetes_hetero_host.csv",
        ["id"] + names[GUEST_FEATURES:],
        ([str(i)] + [fmt(v) for v in x[i, GUEST_FEATURES:]] for i in order),
    )


if __name__ == "__main__":
    main()
