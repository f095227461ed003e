"""HeteroSSHELinR: vertical linear regression on secret shares (FATE's HeteroSSHELinR).

HeteroSSHELR's protocol (components/linear/sshe_lr.py) on squared error: the error is
``e = z - y`` and the loss ``(1/2n) Σ e²``, both exact. Outputs carry the predicted value
as ``predict_result`` and ``predict_score``, as HeteroLinR's.
"""

from __future__ import annotations

from components.linear.family import SQUARED_ERROR
from components.linear.sshe_lr import HeteroSSHELR
from components.linear.sshe_params import HeteroSSHELinRParams


class HeteroSSHELinR(HeteroSSHELR):
    module = "HeteroSSHELinR"
    params_model = HeteroSSHELinRParams
    loss = SQUARED_ERROR
