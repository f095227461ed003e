"""HomoFeatureBinning and HomoOneHotEncoder in a horizontal pipeline through the CLI:
Reader -> DataTransform -> HomoFeatureBinning -> HomoOneHotEncoder -> HomoLR, on the
breast_homo shares, checked against the pooled rows."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import numpy as np
import pytest

from .conftest import EXAMPLES, load_example, write_job

pytestmark = pytest.mark.e2e

SHARES = ("guest", "host1", "host2")
PARTIES = (("guest", "9999"), ("host", "10000"), ("host", "10001"))
BIN_NUM = 5
ONEHOT = [0, 1, 2]


def read_share(share: str) -> tuple[list[str], np.ndarray]:
    with (EXAMPLES / "data" / f"breast_homo_{share}.csv").open() as fh:
        rows = list(csv.reader(fh))
    return rows[0][2:], np.array([[float(v) for v in r[2:]] for r in rows[1:]])


def pipeline() -> tuple[dict, dict]:
    conf, dsl = load_example("homo_lr")
    conf, dsl = copy.deepcopy(conf), copy.deepcopy(dsl)
    common = conf["component_parameters"]["common"]
    common["homo_lr_0"]["max_iter"] = 2
    common["homo_binning_0"] = {"method": "recursive_query", "bin_num": BIN_NUM,
                                "transform_param": {"transform_cols": -1, "transform_type": "bin_num"}}
    common["homo_onehot_0"] = {"transform_col_indexes": ONEHOT, "need_alignment": True}
    comps = dsl["components"]
    comps["homo_binning_0"] = {"module": "HomoFeatureBinning",
                               "input": {"data": {"data": ["data_transform_0.data"]}},
                               "output": {"data": ["data"], "model": ["model"]}}
    comps["homo_onehot_0"] = {"module": "HomoOneHotEncoder", "input": {"data": {"data": ["homo_binning_0.data"]}},
                              "output": {"data": ["data"], "model": ["model"]}}
    comps["homo_lr_0"]["input"]["data"]["train_data"] = ["homo_onehot_0.data"]
    return conf, dsl


def test_homo_binning_and_onehot_feed_homo_lr(flow, tmp_path: Path):
    for share in SHARES:
        flow.upload(EXAMPLES / "data" / f"breast_homo_{share}.csv", f"breast_homo_{share}", label="y")
    conf, dsl = pipeline()
    c, d = write_job(tmp_path, conf, dsl)
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    job_id = job["job_id"]

    names, *_ = read_share("guest")
    xs = [read_share(s)[1] for s in SHARES]
    q = np.arange(1, BIN_NUM + 1) / BIN_NUM
    pooled = [np.unique(np.quantile(col, q, method="inverted_cdf")) for col in np.vstack(xs).T]
    for role, pid in PARTIES:
        model = flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                        "-cpn", "homo_binning_0")["model"]
        for name, sp in zip(names, pooled):
            assert np.array_equal(model["binning_result"][name]["split_points"], sp), (role, pid, name)

    # the one-hot categories are the union over the parties of the bin indexes they hold
    bins = [np.stack([np.minimum(np.searchsorted(sp, x[:, j]), len(sp) - 1) for j, sp in enumerate(pooled)], 1)
            for x in xs]
    union = {names[j]: sorted({float(v) for b in bins for v in b[:, j]}) for j in ONEHOT}
    headers = []
    for role, pid in PARTIES:
        model = flow.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid,
                        "-cpn", "homo_onehot_0")["model"]
        assert model["categories"] == union
        headers.append(model["new_header"])
    assert headers[0] == headers[1] == headers[2]
    lr = flow.ok("tracking", "output-model", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "homo_lr_0")["model"]
    assert lr["header"] == headers[0] and lr["iters"] == 2
