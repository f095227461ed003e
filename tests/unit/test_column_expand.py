"""ColumnExpand on raw tables: the appended columns against plain tuple concatenation, one
fill value for all columns, FATE's default 1e-8, raw lines, a stored model, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Dataset, Inputs
from components.feature.column_expand import ColumnExpand, ColumnExpandParams
from flow.core.errors import ComponentError
from tests.unit.test_feature_harness import GUEST, HOST, dataset, run_parties


@pytest.fixture
def session():
    s = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def raw(session, n: int = 7) -> tuple[Dataset, dict[str, tuple]]:
    rng = np.random.default_rng(3)
    rows = {f"r{i}": (int(rng.integers(0, 2)), float(rng.normal()), float(rng.normal())) for i in range(n)}
    meta = TableMeta(namespace="unit", name="raw", columns=["y", "x0", "x1"], dtypes=["int64", "double", "double"],
                     label_column="y", count=n)
    return Dataset(session.parallelize(list(rows.items())), meta), rows


def _run(tmp_path, session, params: dict, data: Dataset, model: dict | None = None, party=GUEST):
    inputs = Inputs(data={"data": data}, model=[model] if model else [])
    return run_parties(tmp_path, ColumnExpand, {party: (session, params, inputs)})[party][0]


def test_appends_one_value_per_column(tmp_path, session):
    data, rows = raw(session)
    params = {"append_header": ["x_0", "x_1", "x_2", "x_3"], "method": "manual", "fill_value": [0, 0.2, 0.5, "a"]}
    out = _run(tmp_path, session, params, data)
    ds = out.data[0]
    assert ds.meta.columns == ["y", "x0", "x1", "x_0", "x_1", "x_2", "x_3"] and ds.meta.label_column == "y"
    assert ds.meta.dtypes == ["int64", "double", "double", "double", "double", "double", "string"]
    assert dict(ds.table.collect()) == {k: v + (0.0, 0.2, 0.5, "a") for k, v in rows.items()}
    assert out.model["append_header"] == params["append_header"] and out.model["fill_value"] == [0, 0.2, 0.5, "a"]
    # a predict job: the stored model's columns, whatever the params say
    again = _run(tmp_path / "p", session, {}, data, model=out.model)
    assert dict(again.data[0].table.collect()) == dict(ds.table.collect())


def test_single_value_default_and_no_header(tmp_path, session):
    data, rows = raw(session)
    one = _run(tmp_path, session, {"append_header": ["a", "b"], "fill_value": 3}, data).data[0]
    assert dict(one.table.collect()) == {k: v + (3.0, 3.0) for k, v in rows.items()}
    default = _run(tmp_path / "d", session, {"append_header": "c"}, data, party=HOST).data[0]
    assert dict(default.table.collect()) == {k: v + (1e-8,) for k, v in rows.items()}
    assert _run(tmp_path / "n", session, {}, data).data[0] is data


def test_raw_lines_get_the_text_appended(tmp_path, session):
    lines = {"a": ("1,0.5,2",), "b": ("0,1.5,3",)}
    meta = TableMeta(namespace="unit", name="lines", columns=["line"], dtypes=["string"],
                     extra={"kind": "lines", "header": "y,x0,x1"})
    data = Dataset(session.parallelize(list(lines.items())), meta)
    out = _run(tmp_path, session, {"append_header": ["x2", "x3"], "fill_value": [7, 0.25]}, data).data[0]
    assert dict(out.table.collect()) == {k: (v[0] + ",7,0.25",) for k, v in lines.items()}
    assert out.meta.extra["header"] == "y,x0,x1,x2,x3"
    bare = Dataset(data.table, meta.model_copy(update={"extra": {"kind": "lines"}}))
    with pytest.raises(ComponentError, match="not supported: ColumnExpand on table unit/lines"):
        _run(tmp_path / "b", session, {"append_header": ["x2"]}, bare)


def test_refusals(tmp_path, session):
    data, _ = raw(session)
    with pytest.raises(ComponentError, match=r"append_header \['x0'\] already columns"):
        _run(tmp_path, session, {"append_header": ["x0"]}, data)
    inst = dataset(session, np.ones((2, 2)), ["a", "b"])
    with pytest.raises(ComponentError, match="takes raw data"):
        _run(tmp_path / "i", session, {"append_header": ["c"]}, inst)
    with pytest.raises(ValidationError, match="fill_value is a list of 1 values; append_header must name"):
        ColumnExpandParams(append_header=["a", "b"], fill_value=[1])
    with pytest.raises(ValidationError, match="not supported: ColumnExpand method 'random'"):
        ColumnExpandParams(append_header=["a"], method="random")
    with pytest.raises(ValidationError):
        ColumnExpandParams(append_header=["a"], fill_value=True)
