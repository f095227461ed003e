"""Generate poisson_hetero_{guest,host}.csv: counts with an exposure, split vertically.

400 rows, 7 standard-normal features: the guest holds the count y, the exposure (a
duration in [0.5, 2]) and x0–x2, the host x3–x6. y ~ Poisson(exposure · exp(b + x·w))
with b = 0.3 and w = (0.4, -0.3, 0.2, 0.25, 0.0, -0.15, 0.1), fixed seed; HeteroPoisson
names ``exposure`` in ``exposure_colname`` and should recover b and w roughly.
Run: python examples/data/make_poisson_hetero.py
"""

from __future__ import annotations

import numpy as np
from make_breast_hetero import fmt, write_vertical  # type: ignore[import-not-found]  # sibling script

ROWS, SEED = 400, 2024
WEIGHTS = np.array([0.4, -0.3, 0.2, 0.25, 0.0, -0.15, 0.1])
INTERCEPT = 0.3


def main() -> None:
    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(ROWS, len(WEIGHTS)))
    exposure = rng.uniform(0.5, 2.0, ROWS)
    y = rng.poisson(exposure * np.exp(INTERCEPT + x @ WEIGHTS))
    columns = np.column_stack([exposure, x])  # the guest's columns first: exposure, x0-x2
    write_vertical("poisson_hetero", ["exposure", "x0", "x1", "x2"], ["x3", "x4", "x5", "x6"], columns,
                   [int(v) for v in y], seed=11, value=fmt)


if __name__ == "__main__":
    main()
