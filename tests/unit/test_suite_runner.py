"""SuiteRunner's fate_test habits that need no job: task order after deps, and a predict
conf given its training job's deployed model and parties."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flow.core.errors import ConfigError
from flow.ops.suite import SuiteFile, SuiteRunner


class DeployOnly:
    """The one operation ``_with_model`` asks for."""

    def __init__(self) -> None:
        self.deployed: list[str] = []

    def model_deploy(self, job_id: str, **_: Any) -> dict[str, Any]:
        self.deployed.append(job_id)
        return {"predict_conf": {"job_parameters": {"common": {"model_id": "guest-9999#host-9998#model",
                                                               "model_version": job_id}}}}


def test_a_predict_conf_gets_the_deployed_model_and_the_training_parties():
    ops = DeployOnly()
    runner = SuiteRunner(ops)  # type: ignore[arg-type]
    predict = {"initiator": {"role": "guest", "party_id": 9999},
               "role": {"guest": [9999], "host": [10000]},
               "job_parameters": {"common": {"model_id": "guest-10000#host-9999#model", "model_version": "1"}}}
    conf = runner._with_model(predict, "202612060001", {"guest": [9999], "host": [9998], "arbiter": [9998]})
    assert ops.deployed == ["202612060001"]
    assert conf["job_parameters"]["common"] == {"model_id": "guest-9999#host-9998#model",
                                                "model_version": "202612060001"}
    assert conf["role"] == {"guest": [9999], "host": [9998]}  # no arbiter added: the predict conf has none
    assert predict["role"]["host"] == [10000]  # the shipped conf is not changed in place


def test_tasks_run_after_the_task_they_depend_on_and_a_missing_deps_is_named():
    suite = SuiteFile.model_validate({"tasks": {"predict": {"conf": "p", "dsl": "p", "deps": "train"},
                                                "train": {"conf": "t", "dsl": "t"},
                                                "other": {"conf": "o", "dsl": "o"}}})
    assert SuiteRunner._order(Path("s.json"), suite) == ["train", "predict", "other"]
    suite.tasks["predict"].deps = "trian"
    with pytest.raises(ConfigError, match="tasks.predict.deps: no task 'trian'"):
        SuiteRunner._order(Path("s.json"), suite)
