"""FATE's DataTransform line formats (tag, sparse, svmlight) and the raw-lines upload layout."""

from __future__ import annotations

import numpy as np
import pytest

from backends.storage.lines_import import looks_like_lines
from components.io import formats
from components.io.data_transform import DataTransformParams


@pytest.mark.parametrize("header, lines", [
    ("1,2019010533:1,2019011092:3", True),        # tag:value (tag_value_1000_140.csv)
    ("1,1,0:-0.01,1:-0.002", True),               # label then idx:value (svmlight_guest.csv)
    ("1,0:-0.009,1:0.007", True),                 # idx:value (svmlight_host.csv)
    ("sid,label,x1,x2", False), ("id,y", False), ("id", False), ("id,a:b,c", False),
])
def test_lines_detected_from_first_row(header: str, lines: bool):
    assert looks_like_lines(header) is lines


def test_sparse_line_with_label_to_dense_vector():
    scan = formats.max_index(",", True, False)
    rows = [("1", ("1,0:-0.5,3:2",)), ("2", ("0,1:1.5",))]
    assert scan(rows) == (3, None)
    convert = formats.sparse_instance(",", True, False, 4, "int")
    inst = convert(rows[0][1])
    assert inst.label == 1.0 and np.array_equal(inst.features, [-0.5, 0, 0, 2])


def test_svmlight_splits_on_blanks_too():
    convert = formats.sparse_instance(",", True, True, 3, "float")
    inst = convert(("2.5 0:1 2:3",))
    assert inst.label == 2.5 and np.array_equal(inst.features, [1, 0, 3])


def test_bad_sparse_token_is_reported():
    assert formats.max_index(",", False, False)([("k", ("0:1,zz",))]) == (0, ("k", "zz", "is not index:value"))


def test_tags_one_hot_and_with_value():
    seen, problem = formats.tag_set(",", False, True, ":")([("1", ("a:1,b:3",)), ("2", ("c:2",))])
    assert problem is None and seen == {"a", "b", "c"}
    inst = formats.tag_instance(",", False, True, ":", ["a", "b", "c"], "int")(("b:3,zz:9",))
    assert np.array_equal(inst.features, [0, 3, 0]) and inst.label is None
    onehot = formats.tag_instance(",", False, False, ":", ["a", "b"], "int")(("b",))
    assert np.array_equal(onehot.features, [0, 1])


def test_column_table_row_is_rejoined():
    assert formats.line_of(("0:1", "2:3"), ",") == "0:1,2:3"


def test_sparse_output_accepted_with_notice():
    params = DataTransformParams(input_format="tag", output_format="sparse", tag_with_value=True)
    assert "output_format" in params.notices()
    assert DataTransformParams().notices() == {}
