"""HeteroLinR: vertical linear regression (FATE's HeteroLinR) on squared error.

The protocol is HeteroLR's (a Paillier-holding arbiter, masked gradients, each party
keeps its own weights); only the loss differs: [[d]] = [[wx_h]] + wx_g - y, the gradient
is X^T d / n and the loss (1/2n) Σ d², both exact rather than a Taylor expansion.
Outputs carry the predicted value as ``predict_result`` and ``predict_score``, which is
what Evaluation's ``regression`` type reads.
"""

from __future__ import annotations

from pydantic import Field

from components.linear.family import SQUARED_ERROR
from components.linear.hetero_lr import HeteroLR, HeteroLRParams
from components.linear.params import OptimizerName


class HeteroLinRParams(HeteroLRParams):
    """HeteroLR's parameters with FATE's HeteroLinR defaults (plain SGD, 20 iterations)."""

    optimizer: OptimizerName = "sgd"
    max_iter: int = Field(20, ge=1)


class HeteroLinR(HeteroLR):
    module = "HeteroLinR"
    params_model = HeteroLinRParams
    loss = SQUARED_ERROR
