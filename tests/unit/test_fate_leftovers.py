"""FATE leftovers: a conf that sets parameters for a component its DSL lacks is accepted
(FATE 1.x ignores them) and the leftover blocks are named as notices, not problems."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from flow.dsl import plan_from_dicts
from flow.dsl.models import ComponentParametersConf
from flow.dsl.validate import unused_parameter_notices

FIXTURES = Path(__file__).parent / "fixtures" / "hetero_lr"


def _example() -> tuple[dict, dict]:
    return (json.loads((FIXTURES / "conf.json").read_text()), json.loads((FIXTURES / "dsl.json").read_text()))


def test_parameters_for_a_component_not_in_the_dsl_are_ignored() -> None:
    conf, dsl = _example()
    base = plan_from_dicts(copy.deepcopy(conf), dsl)
    conf["component_parameters"].setdefault("common", {})["intersection_1"] = {"intersect_method": "rsa"}
    conf["component_parameters"]["role"]["guest"]["0"]["hetero_lr_1"] = {"max_iter": 3}
    plan = plan_from_dicts(conf, dsl)
    assert set(plan.modules) == set(base.modules)
    assert "intersection_1" not in plan.modules and "hetero_lr_1" not in plan.modules
    leftovers = [n for n in plan.notices() if "which is not in the DSL" in n]  # what validate/submit print
    assert [n.split(":")[0] for n in leftovers] == ["component_parameters.common.intersection_1",
                                                   "component_parameters.role.guest.0.hetero_lr_1"]
    assert not [n for n in base.notices() if "which is not in the DSL" in n]


def test_the_leftover_blocks_are_named_as_notices() -> None:
    conf, dsl = _example()
    cp = conf["component_parameters"]
    cp.setdefault("common", {})["intersection_1"] = {}
    cp["role"]["guest"]["0"]["hetero_lr_1"] = {}
    names = list(dsl["components"])
    notices = unused_parameter_notices(ComponentParametersConf.model_validate(cp), names)
    assert len(notices) == 2
    assert notices[0].startswith("component_parameters.common.intersection_1: parameters for component "
                                 "'intersection_1', which is not in the DSL, are ignored")
    assert notices[1].startswith("component_parameters.role.guest.0.hetero_lr_1:")
    assert "did you mean 'hetero_lr_0'" in notices[1]
    assert unused_parameter_notices(ComponentParametersConf.model_validate(_example()[0]["component_parameters"]),
                                    names) == []
