"""HeteroKmeans end to end through the CLI on breast_hetero: the same clusters, centroids and
within-cluster sums of squares as a plain numpy k-means on the joined features from the same start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from components.cluster.hetero_kmeans import initial_rows
from tests.unit.test_hetero_kmeans import plain_kmeans

from .conftest import joined, write_job
from .test_data_split import outputs

pytestmark = pytest.mark.e2e

DSL = {"components": {
    "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
    "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                         "output": {"data": ["data"], "model": ["model"]}},
    "intersection_0": {"module": "Intersection", "input": {"data": {"data": ["data_transform_0.data"]}},
                       "output": {"data": ["data"]}},
    "hetero_kmeans_0": {"module": "HeteroKmeans", "input": {"data": {"train_data": ["intersection_0.data"]}},
                        "output": {"data": ["data"], "model": ["model"]}},
}}


def conf(k: int, max_iter: int, seed: int) -> dict:
    return {
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000], "arbiter": [10000]},
        "job_parameters": {"common": {"computing_partitions": 2, "timeout": 300}},
        "component_parameters": {"common": {
            "hetero_kmeans_0": {"k": k, "max_iter": max_iter, "tol": 0.001, "random_stat": seed},
        }, "role": {
            "guest": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_guest"}},
                            "data_transform_0": {"with_label": True, "label_name": "y"}}},
            "host": {"0": {"reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_host"}},
                           "data_transform_0": {"with_label": False}}},
        }},
    }


def test_hetero_kmeans_job_equals_numpy_kmeans_from_the_same_start(breast, tmp_path: Path):
    c, d = write_job(tmp_path, conf(2, 5, 11), DSL)
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]

    ids, x, y, g_names, _ = joined("breast_hetero")
    assign, centroids, wcss = plain_kmeans(x, initial_rows(len(ids), 2, 11), 5, 0.001)

    ((header, rows),) = outputs(breast, job_id, "guest", "9999", "hetero_kmeans_0", tmp_path / "g")
    assert header[1:] == ["y", "predicted_cluster_index"]
    got = {r[0]: (float(r[1]), int(float(r[2]))) for r in rows}
    assert sorted(got) == ids
    assert [got[i][1] for i in ids] == assign.tolist()
    assert [got[i][0] for i in ids] == y.tolist()
    ((_, host_rows),) = outputs(breast, job_id, "host", "10000", "hetero_kmeans_0", tmp_path / "h")
    assert sorted((r[0], int(float(r[-1]))) for r in host_rows) == sorted(zip(ids, assign.tolist()))

    models = breast.models(job_id, "hetero_kmeans_0")
    g = len(g_names)
    np.testing.assert_allclose(models["guest"]["centroids"], centroids[:, :g], atol=1e-6)
    np.testing.assert_allclose(models["host"]["centroids"], centroids[:, g:], atol=1e-6)

    metrics = breast.ok("tracking", "metrics", "-j", job_id, "-r", "arbiter", "-p", "10000",
                        "-cpn", "hetero_kmeans_0")["train"]
    np.testing.assert_allclose(metrics["within_cluster_sum_of_squares"], wcss, rtol=1e-6)
