"""FATE's own example files as FATE users have them (../shared/fate-examples, unchanged):
upload confs whose id column is not called ``id``, Intersection's FATE 1.x ``cache``
output and input, and FATE modules fedweave lacks refused as "not supported", not as typos."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fate_examples import fate_examples, upload


@pytest.fixture(scope="module")
def fate() -> Path:
    return fate_examples()


def test_an_upload_conf_takes_the_first_column_as_the_id_whatever_its_name(flow, tmp_path: Path):
    upload(flow, "hetero_secureboost", {"motor_hetero_guest"}, tmp_path)
    info = flow.ok("table", "info", "--namespace", "experiment", "--name", "motor_hetero_guest")
    assert info["id_column"] == "idx" and info["count"] == 800
    assert "idx" not in info["columns"] and info["columns"][0] == "motor_speed"


def test_a_headerless_upload_is_stored_as_lines(flow, tmp_path: Path):
    upload(flow, "union", {"tag_value_1"}, tmp_path)  # tag_value_1000_140.csv with head 0
    info = flow.ok("table", "info", "--namespace", "experiment", "--name", "tag_value_1")
    assert info["count"] == 1000 and info["columns"] == ["line"]  # FATE's layout: id -> the rest of the line


def test_intersections_cache_output_without_run_cache_validates_with_a_notice(flow, fate: Path, tmp_path: Path):
    binning = fate / "dsl" / "hetero_feature_binning"
    upload(flow, "hetero_feature_binning", {"default_credit_hetero_guest", "default_credit_hetero_host"}, tmp_path)
    dsl = json.loads((binning / "hetero_binning_large_bin_dsl.json").read_text())
    assert dsl["components"]["intersection_0"]["output"]["cache"] == ["cache"]  # FATE's file, as shipped
    summary = flow.ok("job", "validate", "-c", binning / "hetero_binning_large_bin_conf.json",
                      "-d", binning / "hetero_binning_large_bin_dsl.json")
    assert any(n.startswith("intersection_0.output.cache: ") and "run_cache is not set, so no intersection "
               "cache is made" in n for n in summary["notices"])
    # with run_cache the cache is made: no notice
    conf = json.loads((binning / "hetero_binning_large_bin_conf.json").read_text())
    conf["component_parameters"]["common"]["intersection_0"]["run_cache"] = True
    (tmp_path / "conf.json").write_text(json.dumps(conf))
    summary = flow.ok("job", "validate", "-c", tmp_path / "conf.json",
                      "-d", binning / "hetero_binning_large_bin_dsl.json")
    assert not any(n.startswith("intersection_0.output.cache") for n in summary["notices"])


def _dsl_with(fate: Path, tmp_path: Path, change) -> tuple[Path, Path]:
    binning = fate / "dsl" / "hetero_feature_binning"
    dsl = json.loads((binning / "hetero_binning_large_bin_dsl.json").read_text())
    change(dsl)
    path = tmp_path / "dsl.json"
    path.write_text(json.dumps(dsl))
    return binning / "hetero_binning_large_bin_conf.json", path


def test_a_misplaced_cache_input_is_refused_a_module_fedweave_lacks_is_not_supported_and_a_typo_unknown(
        flow, fate: Path, tmp_path: Path):
    def cache_input(dsl: dict) -> None:  # only an Intersection takes an intersection cache
        dsl["components"]["hetero_feature_binning_0"]["input"]["cache"] = ["intersection_0.cache"]

    def missing_cache(dsl: dict) -> None:  # an Intersection's cache input must name a cache output
        dsl["components"]["intersection_0"]["input"]["cache"] = ["data_transform_0.cache"]

    def cache_loader(dsl: dict) -> None:  # FATE's CacheLoader (a cache of an earlier job)
        dsl["components"]["hetero_feature_binning_0"]["module"] = "CacheLoader"

    def fate_module(dsl: dict) -> None:
        dsl["components"]["hetero_feature_binning_0"]["module"] = "HeteroFTL"

    def typo(dsl: dict) -> None:
        dsl["components"]["hetero_feature_binning_0"]["module"] = "HeteroFeatureBining"

    for change, expected in ((cache_input, "input.cache: module HeteroFeatureBinning has no input.cache"),
                             (missing_cache, "input.cache[0]: component 'data_transform_0' has no cache output "
                              "'cache' (its cache outputs: none)"),
                             (cache_loader, "module: not supported: module CacheLoader"),
                             (fate_module, "module: not supported: module HeteroFTL"),
                             (typo, "unknown module 'HeteroFeatureBining' (did you mean 'HeteroFeatureBinning'?)")):
        conf, dsl = _dsl_with(fate, tmp_path, change)
        res = flow("job", "validate", "-c", conf, "-d", dsl)
        assert res.code == 2, res
        assert any(expected in line for line in res.err.splitlines()), (expected, res.err)
