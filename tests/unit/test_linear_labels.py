"""Which labels make one model, which one-vs-rest, and which are refused."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from backends.computing.local import LocalSession
from backends.storage.api import TableMeta
from components.base import Dataset, Instance, instances_meta
from components.linear.hetero_linr import HeteroLinR
from components.linear.hetero_lr import HeteroLR
from flow.core.errors import ComponentError


def labelled(session: LocalSession, labels: list[float]) -> Dataset:
    table = session.parallelize([(str(i), Instance(np.ones(2), y)) for i, y in enumerate(labels)])
    return Dataset(table, instances_meta(TableMeta(namespace="t", name="rows"), ["x0", "x1"], "y"))


@pytest.fixture
def session():
    s = LocalSession(partitions=2, workers=1, inline_below=10 ** 6)
    yield s
    s.stop()


def test_hetero_lr_classes(session):
    ctx = SimpleNamespace(component="hetero_lr_0")
    assert HeteroLR()._classes(ctx, labelled(session, [0.0, 1.0, 1.0])) is None
    assert HeteroLR()._classes(ctx, labelled(session, [2.0, 0.0, 5.0, 2.0])).tolist() == [0.0, 2.0, 5.0]
    with pytest.raises(ComponentError, match="150 distinct labels; one-vs-rest takes at most 100 classes"):
        HeteroLR()._classes(ctx, labelled(session, [float(i) for i in range(150)]))
    assert HeteroLinR()._classes(ctx, labelled(session, [float(i) / 7 for i in range(150)])) is None  # regression
