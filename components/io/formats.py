"""FATE 1.x DataTransform input formats other than dense: one stored line -> tokens.

A line is what FATE's upload keeps after the id: ``label? tok tok ...`` separated by
``delimitor``. ``sparse``/``svmlight`` tokens are ``index:value`` (features are a dense
vector of max index + 1, absent indexes 0); ``tag`` tokens are ``tag`` (one-hot) or, with
``tag_with_value``, ``tag{tag_value_delimitor}value``. Every function here is picklable
for the computing workers (closures over plain values).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from components.base import Instance


def tokens(line: str, delimitor: str, whitespace: bool) -> list[str]:
    """The non-empty tokens of a line; ``whitespace`` also splits on blanks (svmlight)."""
    if whitespace:
        parts = re.split(r"[\s" + re.escape(delimitor) + r"]+", line.strip())
    else:
        parts = line.split(delimitor)
    return [p.strip() for p in parts if p.strip()]


def line_of(row: tuple, delimitor: str) -> str:
    """A stored row as one line: a lines table's one value, or a column table's cells joined."""
    if len(row) == 1 and isinstance(row[0], str):
        return row[0]
    return delimitor.join("" if v is None else str(v) for v in row)


def split_label(toks: list[str], with_label: bool) -> tuple[str | None, list[str]]:
    return (toks[0], toks[1:]) if with_label and toks else (None, toks)


def index_pair(tok: str) -> tuple[int, float]:
    idx, _, val = tok.partition(":")
    return int(idx), float(val)


def max_index(delimitor: str, with_label: bool, whitespace: bool):
    """Per partition: (largest feature index or -1, first problem or None)."""
    def scan(part):
        top = -1
        for key, row in part:
            _, feats = split_label(tokens(line_of(row, delimitor), delimitor, whitespace), with_label)
            for tok in feats:
                try:
                    idx, _ = index_pair(tok)
                except ValueError:
                    return top, (key, tok, "is not index:value")
                if idx < 0:
                    return top, (key, tok, "has a negative index")
                top = max(top, idx)
        return top, None
    return scan


def tag_set(delimitor: str, with_label: bool, with_value: bool, tag_delim: str):
    """Per partition: (the tags seen, first problem or None)."""
    def scan(part):
        seen: set[str] = set()
        for key, row in part:
            _, feats = split_label(tokens(line_of(row, delimitor), delimitor, False), with_label)
            for tok in feats:
                tag, sep, val = tok.partition(tag_delim) if with_value else (tok, "", "")
                if with_value:
                    try:
                        float(val)
                    except ValueError:
                        return seen, (key, tok, f"is not tag{tag_delim}value")
                seen.add(tag.strip())
        return seen, None
    return scan


def _label(text: str | None, label_type: str) -> float | None:
    if text is None:
        return None
    return float(int(float(text))) if label_type == "int" else float(text)


def sparse_instance(delimitor: str, with_label: bool, whitespace: bool, dim: int, label_type: str):
    """A line of index:value tokens -> Instance of ``dim`` features (indexes >= dim dropped)."""
    def convert(row: tuple) -> Instance:
        label, feats = split_label(tokens(line_of(row, delimitor), delimitor, whitespace), with_label)
        x = np.zeros(dim)
        for tok in feats:
            idx, val = index_pair(tok)
            if 0 <= idx < dim:
                x[idx] = val
        return Instance(x, _label(label, label_type))
    return convert


def tag_instance(delimitor: str, with_label: bool, with_value: bool, tag_delim: str,
                 tags: list[str], label_type: str):
    """A line of tags -> Instance over ``tags`` (1.0 or the tag's value; unknown tags dropped)."""
    at = {t: i for i, t in enumerate(tags)}

    def convert(row: tuple) -> Instance:
        label, feats = split_label(tokens(line_of(row, delimitor), delimitor, False), with_label)
        x = np.zeros(len(tags))
        for tok in feats:
            tag, _, val = tok.partition(tag_delim) if with_value else (tok, "", "1")
            i = at.get(tag.strip())
            if i is not None:
                x[i] = float(val)
        return Instance(x, _label(label, label_type))
    return convert


def dense_cells(delimitor: str):
    """A lines-table row -> its cells (dense input uploaded as raw lines)."""
    def split(row: tuple) -> tuple[Any, ...]:
        return tuple(line_of(row, delimitor).split(delimitor))
    return split
