"""LabelTransform against plain dict lookups: the automatic encoder (sorted labels -> 0..n-1),
a given encoder, its inversion on prediction output with the stored model, unknown labels,
a host handing its data on, and the parameter checks."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import SAMPLE_WEIGHT, Dataset, Inputs, Instance, instances_meta
from components.feature.label_transform import LabelTransform, LabelTransformParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties


@pytest.fixture
def session():
    s = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def _run(tmp_path, session, params: dict, data: Dataset, model: dict | None = None, party=GUEST):
    inputs = Inputs(data={"data": data}, model=[model] if model else [])
    return run_parties(tmp_path, LabelTransform, {party: (session, params, inputs)})[party]


def _labels(ds: Dataset) -> dict[str, float | None]:
    return {k: inst.label for k, inst in ds.table.collect()}


def _data(session, labels):
    x = np.arange(len(labels) * 2, dtype=float).reshape(-1, 2)
    return dataset(session, x, ["a", "b"], np.asarray(labels, dtype=float))


def test_automatic_encoder_is_sorted_labels(tmp_path, session):
    labels = [7, 3, 5, 3, 7, 7, 9]
    data = _data(session, labels)
    (out, tracker) = _run(tmp_path, session, {}, data)
    codes = {v: i for i, v in enumerate(sorted(set(labels)))}
    assert _labels(out.data[0]) == {f"id{i:05d}": float(codes[v]) for i, v in enumerate(labels)}
    assert out.model["label_encoder"] == {"3": "0", "5": "1", "7": "2", "9": "3"}
    assert tracker.metrics[("train", "label_encoder")] == out.model["label_encoder"]
    # features untouched
    got = {k: inst.features.tolist() for k, inst in out.data[0].table.collect()}
    assert got == {k: inst.features.tolist() for k, inst in data.table.collect()}


def test_given_encoder_keeps_weights_and_refuses_unknown_labels(tmp_path, session):
    labels = [0, 1, 1, 0, 1]
    data = _data(session, labels)
    rows = [(k, Instance(inst.features, inst.label, 0.5 + inst.label)) for k, inst in data.table.collect()]
    weighted = Dataset(session.parallelize(rows), data.meta.model_copy(
        update={"extra": {**data.meta.extra, SAMPLE_WEIGHT: "weight"}}))
    out, _ = _run(tmp_path, session, {"label_encoder": {"0": 1, "1": 0}, "label_list": [0, 1]}, weighted)
    enc = {0: 1.0, 1: 0.0}
    assert _labels(out.data[0]) == {f"id{i:05d}": enc[v] for i, v in enumerate(labels)}
    assert {k: inst.weight for k, inst in out.data[0].table.collect()} == {k: inst.weight for k, inst in rows}
    assert out.data[0].meta.extra[SAMPLE_WEIGHT] == "weight"
    with pytest.raises(ComponentError, match=r"label\(s\) \['2'\] not found in the label encoder"):
        _run(tmp_path / "u", session, {"label_encoder": {"0": 1, "1": 0}}, _data(session, [0, 1, 2]))
    with pytest.raises(ComponentError, match="has no labels"):
        _run(tmp_path / "n", session, {}, dataset(session, np.ones((2, 1)), ["a"]))


def _predictions(session, y, result, classes=None):
    cols = ["predict_result", "predict_score"] + ([f"predict_detail_{c}" for c in classes] if classes else [])
    rows = []
    for i, (yi, ri) in enumerate(zip(y, result)):
        detail = [0.1 * (j + 1) for j in range(len(classes))] if classes else []
        rows.append((f"id{i:05d}", Instance(np.asarray([ri, 0.6] + detail, dtype=float), float(yi))))
    meta = instances_meta(TableMeta(namespace="unit", name="pred"), cols, "label", type="train")
    return Dataset(session.parallelize(rows), meta)


def test_stored_model_inverts_predictions(tmp_path, session):
    train, _ = _run(tmp_path, session, {"label_encoder": {"2": 0, "4": 1, "8": 2}}, _data(session, [2, 4, 8, 4]))
    y, result = [0, 1, 2, 2], [0, 2, 2, 1]
    pred = _predictions(session, y, result, classes=[0, 1, 2])
    out, _ = _run(tmp_path / "p", session, {}, pred, model=train.model)
    back = {0: 2.0, 1: 4.0, 2: 8.0}
    rows = dict(out.data[0].table.collect())
    assert {k: inst.label for k, inst in rows.items()} == {f"id{i:05d}": back[v] for i, v in enumerate(y)}
    assert {k: inst.features[0] for k, inst in rows.items()} == {f"id{i:05d}": back[v] for i, v in enumerate(result)}
    assert out.data[0].meta.feature_columns == ["predict_result", "predict_score", "predict_detail_2",
                                                "predict_detail_4", "predict_detail_8"]
    # the same stored model on plain data encodes forwards (a predict job's first LabelTransform)
    fwd, _ = _run(tmp_path / "f", session, {}, _data(session, [8, 2]), model=train.model)
    assert sorted(_labels(fwd.data[0]).values()) == [0.0, 2.0]
    with pytest.raises(ComponentError, match=r"predicted label\(s\) \['5'\]"):
        _run(tmp_path / "x", session, {}, _predictions(session, [0], [5]), model=train.model)


def test_host_hands_data_on(tmp_path, session):
    data = dataset(session, np.ones((3, 2)), ["a", "b"])
    out, _ = _run(tmp_path, session, {}, data, party=HOST)
    assert out.data[0] is data


def test_params():
    with pytest.raises(ValidationError, match="not supported: LabelTransform label_encoder key 'Yes'"):
        LabelTransformParams(label_encoder={"Yes": 1, "No": 0})
    with pytest.raises(ValidationError, match="label_list length should match"):
        LabelTransformParams(label_encoder={"0": 1, "1": 0}, label_list=[0])
    assert LabelTransformParams(label_encoder={"0": 1}, label_list=[0]).label_encoder == {"0": 1}
