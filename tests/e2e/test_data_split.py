"""DataSplit and Union end to end: the same stratified split on both parties of a vertical
job, and unions checked against a plain concatenation of the same rows."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, write_job

pytestmark = pytest.mark.e2e

SPLIT_DSL = {"components": {
    "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
    "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                         "output": {"data": ["data"]}},
    "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["data_transform_0.data"]}},
                       "output": {"data": ["data"]}},
    "data_split_0": {"module": "DataSplit", "input": {"data": {"data": ["intersection_0.data"]}},
                     "output": {"data": ["train_data", "validate_data", "test_data"]}},
    "union_0": {"module": "Union", "input": {"data": {"data": [
        "data_split_0.test_data", "data_split_0.train_data", "data_split_0.validate_data"]}},
        "output": {"data": ["data"]}},
}}


def split_conf() -> dict:
    return {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000]},
        "job_parameters": {"common": {"computing_partitions": 2, "timeout": 300}},
        "component_parameters": {"common": {
            "intersection_0": {"intersect_method": "ecdh"},
            "data_split_0": {"train_size": 0.6, "validate_size": 0.2, "test_size": 0.2, "stratified": True,
                             "random_state": 7},
        }, "role": {
            "guest": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_guest"}},
                            "data_transform_0": {"with_label": True, "label_name": "y"}}},
            "host": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_host"}}}},
        }},
    }


def read_csv(path: str | Path) -> tuple[list[str], list[list[str]]]:
    with open(path) as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def outputs(flow, job_id: str, role: str, party: str, cpn: str, where: Path) -> list[tuple[list[str], list]]:
    items = flow.ok("tracking", "output-data", "-j", job_id, "-r", role, "-p", party, "-cpn", cpn, "-o", where)
    return [read_csv(item["file"]) for item in sorted(items, key=lambda i: i["index"])]


def test_same_stratified_split_on_every_party(breast, tmp_path: Path):
    c, d = write_job(tmp_path, split_conf(), SPLIT_DSL)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    guest = outputs(breast, job["job_id"], "guest", "9999", "data_split_0", tmp_path / "g")
    host = outputs(breast, job["job_id"], "host", "10000", "data_split_0", tmp_path / "h")

    _, source = read_csv(EXAMPLES / "data" / "breast_hetero_guest.csv")
    label = {r[0]: r[1] for r in source}
    n, n_pos = len(label), sum(1 for v in label.values() if float(v) == 1)
    parts = [{r[0] for r in rows} for _, rows in guest]
    # the requested sizes, disjoint parts covering every row, the same ids on both parties
    assert [len(p) for p in parts] == [round(0.6 * n), round(0.2 * n), n - round(0.6 * n) - round(0.2 * n)]
    assert set().union(*parts) == set(label) and sum(map(len, parts)) == n
    assert [{r[0] for r in rows} for _, rows in host] == parts
    assert all(len(rows) == len({r[0] for r in rows}) for _, rows in guest + host)
    # stratified: each part holds the overall share of positives, to within one row
    for part in parts:
        pos = sum(1 for i in part if float(label[i]) == 1)
        assert abs(pos - len(part) * n_pos / n) < 1.0 + 1e-9, (pos, len(part) * n_pos / n)
    # the host's rows are its own features, untouched
    _, host_source = read_csv(EXAMPLES / "data" / "breast_hetero_host.csv")
    host_rows = {r[0]: np.array(r[1:], dtype=float) for r in host_source}
    for _, rows in host:
        for r in rows:
            np.testing.assert_allclose(np.array(r[1:], dtype=float), host_rows[r[0]], atol=1e-9)

    # Union of (test, train, validate) on the guest = the concatenation of the three parts
    (header, union_rows), = outputs(breast, job["job_id"], "guest", "9999", "union_0", tmp_path / "u")
    concat = np.vstack([np.array(sorted(rows, key=lambda r: r[0]), dtype=object) for _, rows in
                        (guest[2], guest[0], guest[1])])
    assert header == guest[0][0]
    got = np.array(sorted(union_rows, key=lambda r: r[0]), dtype=object)
    want = concat[np.argsort(concat[:, 0], kind="stable")]
    assert got.shape == want.shape and (got == want).all()


def run_union(tables: dict[str, tuple[list[str], list[list]]], **params):
    """Union run in this process on raw tables {name: (header, rows)}, inputs in that order."""
    from backends.computing.local import LocalSession
    from backends.storage.api import TableMeta
    from components.base import Context, Dataset, Inputs
    from components.io.union import Union, UnionParams
    from federation.api import Party

    class Tracker:
        def log_metric(self, *a) -> None:
            pass

    session = LocalSession(partitions=3, workers=1, inline_below=10 ** 6)
    sources = [Dataset(session.parallelize([(r[0], tuple(r[1:])) for r in rows]),
                       TableMeta(namespace="u", name=name, columns=header[1:], label_column="y",
                                 dtypes=["double"] * (len(header) - 1)))
               for name, (header, rows) in tables.items()]
    ctx = Context(job_id="j", component="union_0", local=Party("guest", "9999"), parties={}, computing=session,
                  federation=None, storage=None, tracker=Tracker(), logger=logging.getLogger("union"))
    out = Union().run(ctx, UnionParams(**params), Inputs(all_data={"data": sources}, data={"data": sources[-1]}))
    (result,) = out.data
    return result.meta.columns, {k: list(v) for k, v in result.table.collect()}


def test_union_against_concatenation():
    from flow.core.errors import ComponentError

    rng = np.random.default_rng(5)
    a = [[str(i), float(i % 2), *np.round(rng.normal(size=2), 4)] for i in range(50)]
    b = [[str(i), float(i % 2), *np.round(rng.normal(size=2), 4)] for i in range(40, 80)]
    c = [[str(i), float(i % 2), *np.round(rng.normal(size=2), 4)] for i in range(100, 110)]
    same, other = ["id", "y", "x0", "x1"], ["id", "y", "x0", "x2"]
    as_dict = lambda rows: {r[0]: list(r[1:]) for r in rows}  # noqa: E731

    # concatenated; where ids repeat, the first table's row is kept
    columns, rows = run_union({"table_a": (same, a), "table_b": (same, b)})
    assert columns == same[1:] and rows == {**as_dict(b), **as_dict(a)} and len(rows) == 80
    # keep_duplicate: later rows stay, under <id>_<table name>
    _, rows = run_union({"table_a": (same, a), "table_b": (same, b)}, keep_duplicate=True)
    dup = {r[0] for r in a} & {r[0] for r in b}
    assert rows == {**as_dict(a), **{(k if k not in dup else f"{k}_table_b"): v for k, v in as_dict(b).items()}}
    assert len(rows) == len(a) + len(b)
    # allow_missing: every column of any input, None where a table lacks one
    columns, rows = run_union({"table_a": (same, a), "table_c": (other, c)}, allow_missing=True)
    assert columns == ["y", "x0", "x1", "x2"]
    assert rows == {**{r[0]: [r[1], r[2], r[3], None] for r in a}, **{r[0]: [r[1], r[2], None, r[3]] for r in c}}
    # empty inputs are skipped
    _, rows = run_union({"empty": (same, []), "table_c": (other, c)})
    assert rows == as_dict(c)
    # without allow_missing, differing columns stop the task with a message naming them
    with pytest.raises(ComponentError, match=r"table_c does not match input table_a .*x1.*x2.*allow_missing"):
        run_union({"table_a": (same, a), "table_c": (other, c)})
    with pytest.raises(ComponentError, match="other order"):
        run_union({"table_a": (same, a), "swapped": (["id", "y", "x1", "x0"], b)})


# ---------------------------------------------------------------- the split rules, without a job


def test_sizes_follow_fate_rules():
    from components.feature.data_split import DataSplitParams, resolve_sizes
    from flow.core.errors import ComponentError

    def sizes(**kw):
        return resolve_sizes(DataSplitParams(**kw), 100, "data_split_0")

    assert sizes() == (80, 20, 0)
    assert sizes(train_size=0.6, validate_size=0.2) == (60, 20, 20)
    assert sizes(test_size=30) == (70, 0, 30)
    assert sizes(train_size=0.7, validate_size=0, test_size=0.3) == (70, 0, 30)
    assert sizes(train_size=50, test_size=10) == (50, 40, 10)  # validate takes what is left
    for bad, message in (({"train_size": 0.9, "test_size": 0.2}, "more than"),
                         ({"train_size": 0.5, "test_size": 10}, "mix fractions"),
                         ({"train_size": 0.5, "validate_size": 0.1, "test_size": 0.1}, "add up to"),
                         ({"test_size": 1.5}, "outside")):
        with pytest.raises(ComponentError, match=message):
            sizes(**bad)


def test_split_points_stratify_a_continuous_label():
    from components.feature.data_split import split_ids

    rng = np.random.default_rng(2)
    label = rng.exponential(size=300)
    bins = np.searchsorted([0.5, 2.0], label, side="right")
    ids = [f"r{i}" for i in range(300)]
    train, validate, test = split_ids(ids, list(bins), (150, 90, 60), True, 1)
    assert (len(train), len(validate), len(test)) == (150, 90, 60)
    for part in (train, validate, test):
        got = np.bincount([bins[int(i[1:])] for i in part], minlength=3)
        want = np.bincount(bins, minlength=3) * len(part) / 300
        assert np.all(np.abs(got - want) < 2), (got, want)
    # the same seed draws the same split; another seed another one
    assert split_ids(ids, list(bins), (150, 90, 60), True, 1)[0] == train
    assert split_ids(ids, list(bins), (150, 90, 60), True, 2)[0] != train


def test_a_host_with_other_ids_is_told_to_intersect_first():
    from backends.computing.local import LocalSession
    from backends.storage.api import TableMeta
    from components.base import Context, Dataset, Inputs
    from components.feature.data_split import DataSplit, DataSplitParams
    from federation.api import Party
    from flow.core.errors import ComponentError

    class Guest:
        def get(self, name, tag, parties, timeout=None):
            return [[["1", "2"], ["3"], []]]

    session = LocalSession(partitions=1, workers=1, inline_below=10 ** 6)
    table = session.parallelize([(k, (0.0,)) for k in ("1", "2", "4")])
    ctx = Context(job_id="j", component="data_split_0", local=Party("host", "10000"),
                  parties={"guest": [Party("guest", "9999")], "host": [Party("host", "10000")]}, computing=session,
                  federation=Guest(), storage=None, tracker=None, logger=logging.getLogger("split"))
    data = Dataset(table, TableMeta(namespace="t", name="h", columns=["x0"]))
    with pytest.raises(ComponentError, match=r"3 ids are not the guest's 3 \(2 in common\).*Intersection"):
        DataSplit().host(ctx, DataSplitParams(), Inputs(data={"data": data}))
