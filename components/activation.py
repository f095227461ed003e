"""The logistic function, shared by the linear models and the boosting objectives."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    """``1 / (1 + e^-x)`` written with tanh, so no input overflows (a plain float gives a
    numpy float)."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))
