"""OneHotEncoder against scikit-learn's encoder, FeatureImputation against numpy, both
fitted on one party and reapplied from their stored (JSON round-tripped) models."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.preprocessing import OneHotEncoder as SkOneHot

from backends.computing.local import LocalSession
from components.base import Inputs
from components.feature.imputation import FeatureImputation
from components.feature.onehot import OneHotEncoder
from flow.core.errors import ComponentError
from flow.models.format import dump_model, load_model_text
from tests.unit.test_feature_harness import GUEST, HOST, dataset, rows_of, run_parties


@pytest.fixture(scope="module")
def session():
    with LocalSession(partitions=3, workers=1) as s:
        yield s


def run_one(tmp_path, session, component, params, x, names, y=None, model=None, party=GUEST):
    inputs = Inputs(data={"data": dataset(session, x, names, y)}, model=[model] if model else [])
    out, tracker = run_parties(tmp_path, component, {party: (session, params, inputs)})[party]
    return out, tracker


def test_onehot_matches_sklearn_and_handles_unseen(tmp_path, session):
    rng = np.random.default_rng(0)
    x = np.c_[rng.integers(0, 3, 60), rng.normal(size=60), rng.choice([0.5, 2.0, 7.0], 60)]
    out, _ = run_one(tmp_path, session, OneHotEncoder, {"transform_col_indexes": [0], "transform_col_names": ["c"]},
                     x, ["a", "b", "c"], party=HOST)
    ref = SkOneHot(handle_unknown="ignore", sparse_output=False).fit(x[:, [0, 2]])
    assert out.data[0].meta.feature_columns == ["a_0", "a_1", "a_2", "b", "c_0.5", "c_2", "c_7"]
    ids, got, _ = rows_of(out.data[0])
    order = [int(i[2:]) for i in ids]
    enc = ref.transform(x[order][:, [0, 2]])
    np.testing.assert_array_equal(got, np.c_[enc[:, :3], x[order, 1], enc[:, 3:]])
    # a stored model: unseen values (5 in a, 1.5 in c) give all-zero dummies, like handle_unknown="ignore"
    new = np.array([[5.0, 0.1, 2.0], [1.0, 0.2, 1.5]])
    out2, _ = run_one(tmp_path / "b", session, OneHotEncoder, {}, new, ["a", "b", "c"],
                      model=load_model_text(dump_model(out.model)))
    _, got2, _ = rows_of(out2.data[0])
    np.testing.assert_array_equal(got2, np.c_[ref.transform(new[:, [0, 2]])[:, :3], new[:, 1],
                                              ref.transform(new[:, [0, 2]])[:, 3:]])


def test_onehot_refuses_continuous_columns(tmp_path, session):
    x = np.c_[np.arange(1100.0)]
    with pytest.raises(ComponentError, match=r"columns \['a'\] have more than 1024 distinct values"):
        run_one(tmp_path, session, OneHotEncoder, {}, x, ["a"])


@pytest.mark.parametrize("method", ["min", "max", "mean", "median"])
def test_imputation_matches_numpy(tmp_path, session, method):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)).round(2)
    x[rng.choice(50, 6, replace=False), 0] = np.nan
    x[rng.choice(50, 4, replace=False), 1] = -999.0  # a designated missing marker
    out, tracker = run_one(tmp_path, session, FeatureImputation,
                           {"missing_fill_method": method, "missing_impute": [-999, "NA"],
                            "col_missing_fill_method": {"c": "designated"}, "default_value": 7.5},
                           x, ["a", "b", "c"], y=np.zeros(50))
    clean = np.where(x == -999.0, np.nan, x)
    ref = {"min": np.nanmin, "max": np.nanmax, "mean": np.nanmean, "median": np.nanmedian}[method](clean, axis=0)
    fills = out.model["fill_values"]
    np.testing.assert_allclose([fills["a"], fills["b"]], ref[:2], rtol=1e-12)
    assert fills["c"] == 7.5  # per-column method overrides the common one
    assert tracker.metrics[("imputation", "missing_count")] == {"a": 6, "b": 4, "c": 0}
    ids, got, labels = rows_of(out.data[0])
    order = [int(i[2:]) for i in ids]
    expected = np.where(np.isnan(clean), [fills["a"], fills["b"], fills["c"]], clean)[order]
    np.testing.assert_allclose(got, expected)
    assert (labels == 0).all()


def test_imputation_designated_defaults_and_stored_model(tmp_path, session):
    x = np.array([[np.nan, 1.0], [2.0, np.nan], [-1.0, 3.0]])
    out, _ = run_one(tmp_path, session, FeatureImputation, {"default_value": {"a": 9, "b": -4}}, x, ["a", "b"])
    _, got, _ = rows_of(out.data[0])
    np.testing.assert_array_equal(got, [[9.0, 1.0], [2.0, -4.0], [-1.0, 3.0]])
    new = np.array([[np.nan, np.nan]])
    out2, _ = run_one(tmp_path / "b", session, FeatureImputation, {"missing_fill_method": "max"}, new, ["a", "b"],
                      model=load_model_text(dump_model(out.model)))
    np.testing.assert_array_equal(rows_of(out2.data[0])[1], [[9.0, -4.0]])  # the stored fills, not refitted
    with pytest.raises(ComponentError, match="default_value has 3 values for 2 columns"):
        run_one(tmp_path / "c", session, FeatureImputation, {"default_value": [1, 2, 3]}, x, ["a", "b"])
