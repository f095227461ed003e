"""Regenerate diabetes_hetero_{guest,host}.csv from scikit-learn's diabetes data (regression).

442 patients, 10 measurements, the target a disease progression score one year later.
The target is z-scored (as FATE's own regression examples use a standardised target);
the features are kept as measured, for FeatureScale to scale in the pipeline. The guest
holds the target and age, sex, bmi, bp; the host the six blood serum measurements s1–s6.
Both hold all ids, the host's rows in another order.
Run: python examples/data/make_diabetes_hetero.py
"""

from __future__ import annotations

from make_breast_hetero import write_vertical  # type: ignore[import-not-found]  # sibling script
from sklearn.datasets import load_diabetes

GUEST_FEATURES = 4


def main() -> None:
    data = load_diabetes(scaled=False)
    x, y, names = data.data, data.target, list(data.feature_names)
    y = (y - y.mean()) / y.std()
    write_vertical("diabetes_hetero", names[:GUEST_FEATURES], names[GUEST_FEATURES:], x, [f"{v:.6f}" for v in y],
                   seed=13, value=lambda v: f"{v:.6g}")  # the data set's own precision


if __name__ == "__main__":
    main()
