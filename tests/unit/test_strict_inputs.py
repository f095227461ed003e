"""Issue 12 §3: inputs that used to be accepted (and quietly did something else) are refused
or handled in full: several Evaluation inputs, promote_if naming its component, storage-aware
validation, strict component parameter types, re-uploads, tasks after a failure."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Context, Dataset, Inputs, Instance, instances_meta
from components.evaluation.evaluation import Evaluation, EvaluationParams
from federation.api import Party
from flow.core.settings import ServiceConf
from flow.ops.governance import StandaloneGovernance
from flow.schedules.loop import evaluation_metrics
from flow.schedules.rules import ScheduleError, check_promote_target, evaluation_sources, judge_promotion
from flow.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "hetero_lr"


# -- 1. Evaluation with several inputs ---------------------------------------------------------


class Tracker:
    def __init__(self):
        self.metrics: dict[str, dict[str, object]] = {}

    def log_metric(self, namespace, name, value):
        self.metrics.setdefault(namespace, {})[name] = value

    def progress(self, done, total, message=""):
        pass


@pytest.fixture(scope="module")
def session():
    with LocalSession(partitions=2, workers=1) as s:
        yield s


def predictions(session, label, score) -> Dataset:
    rows = [(f"id{i}", Instance(np.array([score[i]]), float(label[i]))) for i in range(len(label))]
    meta = instances_meta(TableMeta(namespace="t", name="pred"), ["predict_score"], "label")
    return Dataset(session.parallelize(rows), meta)


def evaluate(session, inputs: Inputs) -> dict:
    tracker = Tracker()
    ctx = Context(job_id="j", component="evaluation_0", local=Party("guest", "9999"), parties={},
                  computing=session, federation=None, storage=None, tracker=tracker,
                  logger=logging.getLogger("test"))
    Evaluation().run(ctx, EvaluationParams(), inputs)
    return tracker.metrics


def test_evaluation_evaluates_every_input_under_its_upstream_component(session):
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    good = predictions(session, y, [0.1, 0.2, 0.9, 0.8, 0.3, 0.7, 0.6, 0.4])  # auc 1
    poor = predictions(session, y, [0.9, 0.2, 0.1, 0.8, 0.3, 0.7, 0.6, 0.4])  # auc < 1
    inputs = Inputs(data={"data": poor}, all_data={"data": [good, poor]},
                    sources={"data": ["hetero_lr_0", "secureboost_0"]})
    metrics = evaluate(session, inputs)
    assert set(metrics) == {"hetero_lr_0", "secureboost_0"}  # nothing under a single "evaluation"
    assert metrics["hetero_lr_0"]["auc"] == pytest.approx(1.0)
    assert metrics["secureboost_0"]["auc"] < 1.0


def test_evaluation_with_one_input_keeps_the_evaluation_namespace(session):
    y = np.array([0, 1, 0, 1])
    one = predictions(session, y, [0.1, 0.9, 0.2, 0.8])
    metrics = evaluate(session, Inputs(data={"data": one}, all_data={"data": [one]},
                                       sources={"data": ["hetero_lr_0"]}))
    assert set(metrics) == {"evaluation"} and metrics["evaluation"]["auc"] == pytest.approx(1.0)


def two_model_job() -> tuple[dict, dict]:
    conf = json.loads((EXAMPLE / "conf.json").read_text())
    dsl = json.loads((EXAMPLE / "dsl.json").read_text())
    dsl["components"]["secureboost_0"] = {
        "module": "HeteroSecureBoost", "input": {"data": {"train_data": ["feature_scale_0.data"]}},
        "output": {"data": ["data"], "model": ["model"]}}
    dsl["components"]["evaluation_0"]["input"]["data"]["data"] = ["hetero_lr_0.data", "secureboost_0.data"]
    return conf, dsl


def test_promote_target_must_name_the_component_when_several_are_evaluated():
    _, dsl = two_model_job()
    evaluated = evaluation_sources(dsl)
    assert evaluated == {"evaluation_0": ["hetero_lr_0", "secureboost_0"]}
    with pytest.raises(ScheduleError, match=r"'auc>=current' is ambiguous .*hetero_lr_0.auc>=current"):
        check_promote_target("auc>=current", evaluated)
    with pytest.raises(ScheduleError, match="ambiguous"):
        check_promote_target("evaluation_0.auc>=current", evaluated)
    with pytest.raises(ScheduleError, match="'hetero_lr_1'.*not a component the job evaluates"):
        check_promote_target("hetero_lr_1.auc>=current", evaluated)
    check_promote_target("hetero_lr_0.auc>=current", evaluated)
    check_promote_target("evaluation_0.secureboost_0.auc>=current", evaluated)
    one = {"evaluation_0": ["hetero_lr_0"]}
    check_promote_target("auc>=current", one)  # a bare metric with one evaluated component
    check_promote_target("hetero_lr_0.auc>=current", one)
    check_promote_target("evaluation_0.auc>=current", one)


@pytest.fixture
def governance(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("FLOW_HOME", raising=False)
    service = ServiceConf(home=str(tmp_path / "home"))
    service.home_path.mkdir()
    store = Store(service.database_url)
    yield StandaloneGovernance(service, store), service, store
    store.close()


def test_schedule_add_refuses_an_ambiguous_promote_if(governance):
    ops, service, _ = governance
    conf, dsl = two_model_job()
    with pytest.raises(ScheduleError, match="promote_if: 'auc>=current' is ambiguous") as info:
        ops.schedule_add("0 2 * * *", conf, dsl, name="both", promote_if="auc>=current")
    assert "\n" not in str(info.value)
    assert not (service.home_path / "schedules" / "both").exists()
    added = ops.schedule_add("0 2 * * *", conf, dsl, name="both", promote_if="hetero_lr_0.auc>=current")
    assert added["promote_if"] == "hetero_lr_0.auc>=current"
    one_conf = json.loads((EXAMPLE / "conf.json").read_text())
    one_dsl = json.loads((EXAMPLE / "dsl.json").read_text())
    assert ops.schedule_add("0 2 * * *", one_conf, one_dsl, name="one", promote_if="auc>=current")


def record_job(store: Store, job_id: str, dsl: dict, metrics: dict[str, dict[str, float]]) -> None:
    store.create_job(job_id, conf={}, dsl=dsl, initiator=("guest", "9999"),
                     parties=[("guest", "9999"), ("host", "10000")],
                     components={("guest", "9999"): [("evaluation_0", "Evaluation")],
                                 ("host", "10000"): []})
    for namespace, values in metrics.items():
        for name, value in values.items():
            store.add_metric(job_id, "guest", "9999", "evaluation_0", namespace, name, value)
    store.update_task(job_id, "evaluation_0", "guest", "9999", status="success")


def test_evaluation_metrics_of_several_inputs_are_per_component(governance):
    _, _, store = governance
    _, dsl = two_model_job()
    record_job(store, "j2", dsl, {"hetero_lr_0": {"auc": 0.9}, "secureboost_0": {"auc": 0.95}})
    metrics = evaluation_metrics(store, "j2")
    assert "auc" not in metrics  # a bare name never picks one of several
    assert metrics["hetero_lr_0"]["auc"] == 0.9 and metrics["secureboost_0"]["auc"] == 0.95
    assert metrics["evaluation_0"]["secureboost_0"]["auc"] == 0.95
    ok, why = judge_promotion("hetero_lr_0.auc>=current", metrics, {"hetero_lr_0": {"auc": 0.8}})
    assert ok and why == "hetero_lr_0.auc 0.9 >= current 0.8"
    ok, _ = judge_promotion("hetero_lr_0.auc>=current", metrics, {"hetero_lr_0": {"auc": 0.92}})
    assert not ok  # compared with hetero_lr_0's, not with secureboost_0's 0.95
    one_dsl = json.loads((EXAMPLE / "dsl.json").read_text())
    record_job(store, "j1", copy.deepcopy(one_dsl), {"evaluation": {"auc": 0.7}})
    metrics = evaluation_metrics(store, "j1")
    assert metrics["auc"] == 0.7 and metrics["hetero_lr_0"]["auc"] == 0.7 and metrics["evaluation_0"]["auc"] == 0.7


# -- 3. component parameters are parsed strictly ----------------------------------------------


def test_wrong_json_types_are_refused_one_line_each(tmp_path: Path):
    from flow.core.errors import ValidationError
    from flow.dsl.loader import plan_from_dicts

    conf = json.loads((EXAMPLE / "conf.json").read_text())
    dsl = json.loads((EXAMPLE / "dsl.json").read_text())
    common = conf["component_parameters"]["common"]["hetero_lr_0"]
    common.update(alpha="0.01", max_iter=20.0, learning_rate=1)  # an int is still a float
    common["encrypt_param"]["key_length"] = "1024"
    conf["component_parameters"]["role"]["guest"]["0"]["data_transform_0"]["with_label"] = "yes"
    with pytest.raises(ValidationError) as info:
        plan_from_dicts(conf, dsl)
    assert sorted(info.value.problems) == sorted([
        "conf.json: component_parameters.role.guest.0.data_transform_0.with_label: Input should be a valid boolean",
        "conf.json: component_parameters.common.hetero_lr_0.alpha: Input should be a valid number",
        "conf.json: component_parameters.common.hetero_lr_0.max_iter: Input should be a valid integer",
        "conf.json: component_parameters.common.hetero_lr_0.encrypt_param.key_length: "
        "Input should be a valid integer"])


# -- 5. tasks after a failed one --------------------------------------------------------------


def test_tasks_that_never_ran_after_a_failure_are_canceled_with_the_reason(governance):
    from flow.dsl.loader import load_job
    from flow.runtime.supervisor import cancel_unrun

    _, _, store = governance
    plan = load_job(EXAMPLE / "conf.json", EXAMPLE / "dsl.json")
    parties = [(p.role, p.party_id) for p in plan.all_parties()]
    store.create_job("jf", conf=plan.raw_conf, dsl=plan.raw_dsl, initiator=("guest", "9999"), parties=parties,
                     components={(p.role, p.party_id): [(c, plan.module(c).module) for c in plan.party_components(p)]
                                 for p in plan.all_parties()})
    for c in ("reader_0", "data_transform_0", "intersection_0"):
        for role, pid in (("guest", "9999"), ("host", "10000")):
            store.update_task("jf", c, role, pid, status="success")
    store.update_task("jf", "feature_scale_0", "guest", "9999", status="failed", reason="boom")
    store.update_task("jf", "feature_scale_0", "host", "10000", status="success")
    cancel_unrun(store, plan, "jf")
    by = {(t["component"], t["role"]): t for t in store.tasks("jf")}
    assert by[("hetero_lr_0", "guest")]["status"] == "canceled"
    assert by[("hetero_lr_0", "guest")]["reason"] == "upstream feature_scale_0 failed"
    assert by[("evaluation_0", "guest")]["reason"] == "upstream feature_scale_0 failed"
    assert by[("hetero_lr_0", "arbiter")]["status"] == "canceled"
    assert not [t for t in store.tasks("jf") if t["status"] == "waiting"]
    assert by[("feature_scale_0", "guest")]["status"] == "failed"  # what failed keeps its own reason
