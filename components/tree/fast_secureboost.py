"""HeteroFastSecureBoost: SecureBoost whose trees, or layers, each use one side's features.

FATE's two ``work_mode``s (see components/tree/plan.py):

* ``mix``: whole trees take turns, ``tree_num_per_party`` boosting rounds grown on the
  guest's features, then as many on each host's, and so on. A host takes part only in
  its own trees; the guest's trees send nothing at all.
* ``layered``: every tree's top ``host_depth`` layers split on the hosts' features and the
  ``guest_depth`` layers below on the guest's; ``max_depth`` is their sum.

Apart from who may split where, training, the model and prediction are HeteroSecureBoost's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from components.tree.hetero_secureboost import HeteroSecureBoost
from components.tree.params import HeteroSecureBoostParams
from components.tree.plan import TreePlan


class HeteroFastSecureBoostParams(HeteroSecureBoostParams):
    work_mode: Literal["mix", "layered"] = "mix"
    tree_num_per_party: int = Field(1, ge=1)
    guest_depth: int = Field(2, ge=1, le=32)
    host_depth: int = Field(3, ge=1, le=32)

    @model_validator(mode="after")
    def _layers_fit(self) -> HeteroFastSecureBoostParams:
        if self.work_mode == "layered" and self.guest_depth + self.host_depth > 32:
            raise ValueError("guest_depth + host_depth (the depth of a layered tree) must be at most 32")
        return self

    @property
    def depth(self) -> int:
        """Layered trees are ``host_depth + guest_depth`` deep (FATE ignores max_depth there)."""
        return self.guest_depth + self.host_depth if self.work_mode == "layered" else super().depth


class HeteroFastSecureBoost(HeteroSecureBoost):
    module = "HeteroFastSecureBoost"
    params_model = HeteroFastSecureBoostParams

    @staticmethod
    def plan(p: HeteroSecureBoostParams, hosts: tuple[str, ...], tree_dim: int) -> TreePlan:
        if not isinstance(p, HeteroFastSecureBoostParams):  # run() validates with params_model
            raise TypeError("HeteroFastSecureBoost needs HeteroFastSecureBoostParams")
        return TreePlan(hosts, tree_dim, mode=p.work_mode, guest_only_rounds=p.guest_only_rounds,
                        tree_num_per_party=p.tree_num_per_party, guest_depth=p.guest_depth, host_depth=p.host_depth)
