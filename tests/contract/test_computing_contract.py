"""The computing contract: every Table operation against a plain-Python reference.

Runs once per entry of conftest.COMPUTING. After each operation the result is also
checked for the partitioning invariant (every key sits in partition_of(key, n)) and
for one value per key. The last section covers what only the local backend has (its
process pool and inline threshold).
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gmpy2
import numpy as np
import pytest

import backends.computing.local as local
from backends.computing import create_session
from backends.computing.api import Table, partition_of
from backends.computing.local import LocalSession
from flow.core.errors import ComputingError

DATA = {f"k{i}": i for i in range(60)}
OTHER = {f"k{i}": i * 10 for i in range(40, 100)}


@dataclass(frozen=True)
class Point:
    x: float
    label: str


class BoomError(Exception):
    """An exception type the backend cannot know about."""


def contents(table: Table) -> dict:
    """The table as a dict, after checking placement and key uniqueness."""
    pairs = []
    for i, part in enumerate(table.iter_partitions()):
        for key, value in part:
            assert partition_of(key, table.partitions) == i, f"{key!r} is in partition {i}"
            pairs.append((key, value))
    assert sorted(pairs, key=repr) == sorted(table.collect(), key=repr)
    result = dict(pairs)
    assert len(result) == len(pairs) == table.count(), "duplicate keys"
    return result


@pytest.fixture
def table(session):
    return session.parallelize(DATA.items(), 3)


@pytest.fixture
def empty(session):
    return session.parallelize([], 3)


# ---------------------------------------------------------------- making tables


def test_parallelize_collect_count(session, table):
    assert table.partitions == 3
    assert table.count() == len(DATA)
    assert contents(table) == DATA


def _square(x: int) -> int:
    return x * x


def _batch_with_size(batch: list) -> list:
    return [(x, len(batch)) for x in batch]


def _one_short(batch: list) -> list:
    return batch[1:]


def test_map_list_and_map_batches_keep_input_order(session):
    items = list(range(500, 0, -1))  # keys 0..499, values in the reverse order
    assert session.map_list(items, _square) == [x * x for x in items]
    assert session.map_list([], _square) == []
    assert session.map_list(items[:3], _square, rows_each=100_000) == [x * x for x in items[:3]]  # a hint only
    batched = session.map_batches(items, _batch_with_size)
    assert [x for x, _ in batched] == items
    batches = round(sum(1 / n for _, n in batched))  # each batch's items count 1/n each
    assert 2 <= batches <= session.default_partitions  # really split, one batch per partition
    parts = session.default_partitions
    for n in (parts, 2 * parts):  # as many items as partitions (a block per worker task): all busy
        assert [size for _, size in session.map_batches(list(range(n)), _batch_with_size)] == [n // parts] * n
    with pytest.raises(Exception, match=r"gave \d+ results for \d+ items"):
        session.map_batches(list(range(5)), _one_short)


def test_parallelize_uses_default_partitions(session):
    t = session.parallelize(DATA.items())
    assert t.partitions == session.default_partitions
    assert contents(t) == DATA


def test_parallelize_keeps_one_value_per_key(session):
    t = session.parallelize([("a", 1), ("b", 2), ("a", 3)], 2)
    assert contents(t) == {"a": 3, "b": 2}


def test_parallelize_accepts_non_string_keys(session):
    pairs = {7: "seven", (1, 2): "tuple", b"raw": "bytes", 2.5: "float"}
    assert contents(session.parallelize(pairs.items(), 4)) == pairs


def test_from_partitions_round_trip(session, table):
    again = session.from_partitions(table.iter_partitions(), table.partitions)
    assert again.partitions == table.partitions
    assert contents(again) == DATA


def test_iter_partitions_cover_the_table(table):
    parts = list(table.iter_partitions())
    assert len(parts) == table.partitions
    assert sum(len(p) for p in parts) == len(DATA)
    assert all(parts), "60 keys over 3 partitions leave none empty"


def test_operations_leave_their_input_unchanged(table):
    table.map_values(lambda v: -v).filter(lambda k, v: v > 0).map(lambda k, v: (v, k))
    assert contents(table) == DATA


# ---------------------------------------------------------------- element-wise


def test_map_values(table):
    out = table.map_values(lambda v: v * v + 1)
    assert out.partitions == table.partitions
    assert contents(out) == {k: v * v + 1 for k, v in DATA.items()}


def test_closures_capture_variables(table):
    offset = 7
    weights = np.arange(3.0)
    lookup = {k: len(k) for k in DATA}

    def scale(v):
        return float(weights @ np.array([v, v, offset]))

    out = table.map_values(scale).map_partitions(lambda part: [(k, v + lookup[k]) for k, v in part])
    assert contents(out) == {k: float(v + 2 * offset) + len(k) for k, v in DATA.items()}


def test_map_partitions(table):
    out = table.map_partitions(lambda part: [(k, (v, len(part))) for k, v in part])
    sizes = {k: len(p) for p in table.iter_partitions() for k, _ in p}
    assert contents(out) == {k: (v, sizes[k]) for k, v in DATA.items()}


def test_map_partitions_accepts_a_generator_function(table):
    def odd_doubled(part):
        for k, v in part:
            if v % 2:
                yield k, v * 2

    assert contents(table.map_partitions(odd_doubled)) == {k: v * 2 for k, v in DATA.items() if v % 2}


def test_apply_partitions_one_result_per_partition_in_order(table):
    got = table.apply_partitions(lambda part: (len(part), sum(v for _, v in part)))
    expected = [(len(p), sum(v for _, v in p)) for p in table.iter_partitions()]
    assert got == expected
    assert sum(s for _, s in got) == sum(DATA.values())


def test_map_rekeys_and_repartitions(table):
    out = table.map(lambda k, v: (f"r{v * 3}", k))
    assert out.partitions == table.partitions
    assert contents(out) == {f"r{v * 3}": k for k, v in DATA.items()}


def test_map_key_collisions_keep_one_value_per_key(table):
    out = table.map(lambda k, v: (v % 5, v))
    got = contents(out)
    assert set(got) == {v % 5 for v in DATA.values()}
    assert all(v % 5 == key for key, v in got.items())


def test_filter(table):
    out = table.filter(lambda k, v: v % 3 == 0 and k.endswith(("0", "3", "6", "9")))
    assert contents(out) == {k: v for k, v in DATA.items() if v % 3 == 0 and k[-1] in "0369"}


# ---------------------------------------------------------------- two tables


@pytest.mark.parametrize("left_parts, right_parts", [(3, 3), (3, 5), (5, 3), (1, 4)])
def test_join(session, left_parts, right_parts):
    left = session.parallelize(DATA.items(), left_parts)
    right = session.parallelize(OTHER.items(), right_parts)
    out = left.join(right, lambda a, b: (a, b))
    assert contents(out) == {k: (DATA[k], OTHER[k]) for k in DATA.keys() & OTHER.keys()}
    flipped = right.join(left, lambda a, b: a - b)
    assert contents(flipped) == {k: OTHER[k] - DATA[k] for k in DATA.keys() & OTHER.keys()}


def test_join_of_disjoint_tables_is_empty(session, table):
    other = session.parallelize([("zz", 1)], 2)
    assert contents(table.join(other, lambda a, b: a)) == {}


@pytest.mark.parametrize("left_parts, right_parts", [(3, 3), (2, 5), (5, 2)])
def test_union_left_wins_by_default(session, left_parts, right_parts):
    left = session.parallelize(DATA.items(), left_parts)
    right = session.parallelize(OTHER.items(), right_parts)
    assert contents(left.union(right)) == {**OTHER, **DATA}
    assert contents(right.union(left)) == {**DATA, **OTHER}


@pytest.mark.parametrize("left_parts, right_parts", [(3, 3), (4, 1)])
def test_union_with_merge_function(session, left_parts, right_parts):
    left = session.parallelize(DATA.items(), left_parts)
    right = session.parallelize(OTHER.items(), right_parts)
    out = left.union(right, lambda a, b: f"{a}|{b}")
    expected = {**DATA, **OTHER}
    expected.update({k: f"{DATA[k]}|{OTHER[k]}" for k in DATA.keys() & OTHER.keys()})
    assert contents(out) == expected


# ---------------------------------------------------------------- to the caller


def test_reduce(table):
    assert table.reduce(lambda a, b: a + b) == sum(DATA.values())
    assert table.reduce(max) == max(DATA.values())


def test_reduce_numpy_arrays(session):
    vectors = {f"v{i}": np.arange(4.0) * i for i in range(25)}
    total = session.parallelize(vectors.items(), 3).reduce(np.add)
    np.testing.assert_allclose(total, functools.reduce(np.add, vectors.values()))


def test_reduce_of_one_pair(session):
    assert session.parallelize([("only", 41)], 3).reduce(lambda a, b: a + b) == 41


def test_first_is_first_of_first_non_empty_partition(session, table):
    expected = next(p[0] for p in table.iter_partitions() if p)
    assert table.first() == expected
    assert DATA[expected[0]] == expected[1]
    lone = session.parallelize([("solo", 5)], 4)
    assert lone.first() == ("solo", 5)


def test_empty_table(session, empty, table):
    assert empty.count() == 0 and list(empty.collect()) == []
    assert contents(empty.map_values(lambda v: v)) == {}
    assert contents(empty.map(lambda k, v: (v, k))) == {}
    assert contents(empty.filter(lambda k, v: True)) == {}
    assert contents(empty.map_partitions(lambda part: part)) == {}
    assert empty.apply_partitions(len) == [0, 0, 0]
    assert contents(empty.join(table, lambda a, b: b)) == {}
    assert contents(table.join(empty, lambda a, b: a)) == {}
    assert contents(empty.union(table)) == DATA
    assert contents(empty.sample(1.0, seed=3)) == {}
    with pytest.raises(ComputingError):
        empty.reduce(lambda a, b: a + b)
    with pytest.raises(ComputingError):
        empty.first()


# ---------------------------------------------------------------- sample


def test_sample_is_deterministic_per_seed(session):
    data = {f"s{i}": i for i in range(1000)}
    t3 = session.parallelize(data.items(), 3)
    t5 = session.parallelize(data.items(), 5)
    a = contents(t3.sample(0.3, seed=11))
    assert a == contents(t3.sample(0.3, seed=11))
    assert a == contents(t5.sample(0.3, seed=11)), "the same seed keeps the same keys"
    assert a != contents(t3.sample(0.3, seed=12))
    assert all(data[k] == v for k, v in a.items())
    assert 200 < len(a) < 400


def test_sample_extremes(table):
    assert contents(table.sample(0.0, seed=1)) == {}
    assert contents(table.sample(1.0, seed=1)) == DATA


@pytest.mark.parametrize("fraction", [-0.1, 1.5, "half"])
def test_sample_refuses_bad_fraction(table, fraction):
    with pytest.raises(ComputingError):
        table.sample(fraction, seed=1)


# ---------------------------------------------------------------- values


def test_values_of_any_picklable_type(session):
    n = gmpy2.mpz(2) ** 521 - 1
    rows = {f"r{i}": (np.full(3, float(i)), gmpy2.mpz(i) + n, Point(i / 2, f"p{i}")) for i in range(20)}
    t = session.parallelize(rows.items(), 3)
    out = contents(t.map_values(lambda v: (v[0] * 2, (v[1] * v[1]) % n, Point(v[2].x + 1, v[2].label.upper()))))
    assert set(out) == set(rows)
    for k, (arr, big, point) in out.items():
        i = int(k[1:])
        np.testing.assert_array_equal(arr, np.full(3, 2.0 * i))
        assert big == (i * i) % n and isinstance(big, type(n))
        assert point == Point(i / 2 + 1, f"P{i}")
    joined = contents(t.join(t, lambda a, b: a[1] + b[1]))
    assert joined == {k: 2 * v[1] for k, v in rows.items()}


# ---------------------------------------------------------------- errors


def _boom(*_):
    raise BoomError("boom-42")


FAILING_OPS = {
    "map_values": lambda t, o: t.map_values(lambda v: int("x") if v == 13 else v),
    "map_partitions": lambda t, o: t.map_partitions(_boom),
    "apply_partitions": lambda t, o: t.apply_partitions(lambda part: 1 / 0),
    "map": lambda t, o: t.map(lambda k, v: {}[k]),
    "filter": lambda t, o: t.filter(_boom),
    "join": lambda t, o: t.join(o, lambda a, b: a + "x"),
    "union": lambda t, o: t.union(o, _boom),
    "reduce": lambda t, o: t.reduce(lambda a, b: [][a]),
}
EXPECTED_ERRORS = {
    "map_values": ("ValueError", "invalid literal"),
    "map_partitions": ("BoomError", "boom-42"),
    "apply_partitions": ("ZeroDivisionError", "division by zero"),
    "map": ("KeyError", "k"),
    "filter": ("BoomError", "boom-42"),
    "join": ("TypeError", "unsupported operand"),
    "union": ("BoomError", "boom-42"),
    "reduce": ("IndexError", "list index out of range"),
}


@pytest.mark.parametrize("op", sorted(FAILING_OPS))
def test_worker_exception_becomes_computing_error(session, table, op):
    other = session.parallelize(OTHER.items(), 3)
    with pytest.raises(ComputingError) as info:
        FAILING_OPS[op](table, other)
    type_name, message = EXPECTED_ERRORS[op]
    assert type_name in str(info.value) and message in str(info.value)
    assert contents(table.map_values(lambda v: v)) == DATA, "the session still works"


def test_unpicklable_function_is_refused(table):
    lock = threading.Lock()

    def locked(v):
        with lock:
            return v

    with pytest.raises(ComputingError):
        table.map_values(locked)


def test_table_inside_a_function_is_refused(table):
    with pytest.raises(ComputingError):
        table.map_values(lambda v: table.count())


def test_stop_ends_the_session(make_session):
    s = make_session()
    t = s.parallelize(DATA.items(), 2)
    assert contents(t.map_values(lambda v: v + 1)) == {k: v + 1 for k, v in DATA.items()}
    s.stop()
    with pytest.raises(ComputingError):
        t.map_values(lambda v: v)
    s.stop()  # a second stop is harmless


def test_session_is_a_context_manager(make_session):
    with make_session() as s:
        t = s.parallelize(DATA.items(), 2)
        assert t.reduce(lambda a, b: a + b) == sum(DATA.values())
    with pytest.raises(ComputingError):
        s.parallelize(DATA.items(), 2)


# ---------------------------------------------------------------- local backend only


@pytest.fixture(scope="module")
def pool_session():
    with LocalSession(partitions=4, workers=2) as s:
        yield s


def test_large_input_of_costly_rows_runs_on_the_pool(pool_session):
    """A first row slower than PROBE_SLOW_S: the rest goes to the workers, no more probing."""
    t = pool_session.parallelize((i, i) for i in range(2 * local.INLINE_BELOW))
    pids = dict(t.map_values(lambda v: _slow_pid(v, 2 * local.PROBE_SLOW_S)).collect())
    assert list(pids.values()).count(os.getpid()) == 1, "one probe row ran in the driver"
    assert set(pids.values()) - {os.getpid()} <= set(pool_session._executor._processes)


def test_large_input_of_cheap_rows_runs_in_the_driver(pool_session):
    """Rows that cost less to compute than to pickle (small arrays, as parsed features are):
    no pool could win, the driver runs them, with the pool's results."""
    pool_session._pool()
    n = 20 * local.INLINE_BELOW
    t = pool_session.parallelize((i, np.full(4, float(i))) for i in range(n))
    here = {os.getpid()}
    assert {p for _, (v, p) in t.map_values(lambda v: (v, os.getpid())).collect()} == here
    moved = dict(t.map(lambda k, v: (k + 1, (v * 2, os.getpid()))).collect())
    assert sorted(moved) == list(range(1, n + 1)) and all((v == 2 * (k - 1)).all() for k, (v, _) in moved.items())
    assert {p for v, p in moved.values()} == here
    assert sorted(dict(t.filter(lambda k, v: k % 3 == 0 and os.getpid() in here).collect())) == list(range(0, n, 3))


def test_rows_below_the_cheap_floor_stay_in_the_driver_whatever_they_ship(pool_session, monkeypatch):
    """Rows that ship for nothing (ints) but cost less than CHEAP_ROW_S to compute."""
    pool_session._pool()
    monkeypatch.setattr(local, "CHEAP_ROW_S", 1.0)
    t = pool_session.parallelize((i, i) for i in range(2 * local.INLINE_BELOW))
    assert {p for _, p in t.map_values(lambda v: os.getpid()).collect()} == {os.getpid()}
    monkeypatch.setattr(local, "CHEAP_ROW_S", 0.0)
    slow = t.map_values(lambda v: _slow_pid(v, local.PROBE_SLOW_S / 4))  # compute far above shipping
    assert set(dict(slow.collect()).values()) - {os.getpid()}


def test_inline_below_zero_keeps_cheap_rows_on_the_pool():
    with LocalSession(partitions=2, workers=1, inline_below=0) as s:
        t = s.parallelize((i, i) for i in range(5000))
        assert os.getpid() not in {p for _, p in t.map_values(lambda v: os.getpid()).collect()}


def test_small_input_runs_inline(pool_session, monkeypatch):
    monkeypatch.setattr(local, "INLINE_BUDGET_S", 3600.0)
    t = pool_session.parallelize((i, i) for i in range(20))
    assert set(dict(t.map_values(lambda v: os.getpid()).collect()).values()) == {os.getpid()}


def _slow_pid(v, pause: float = 0.01):
    time.sleep(pause)
    return os.getpid()


def test_slow_small_input_moves_to_the_pool(pool_session):
    # 40 rows at 10 ms: ~0.4 s projected, over the budget of a session whose pool runs
    pool_session._pool()
    t = pool_session.parallelize((i, i) for i in range(40))
    pids = set(dict(t.map_values(_slow_pid).collect()).values())
    assert os.getpid() in pids, "the first partition ran inline"
    assert len(pids) > 1, "the rest went to the pool"


def test_items_weighed_as_many_rows_go_straight_to_the_pool(pool_session):
    """A few items each standing for a block of rows: none runs in the driver first (which
    would serialise it before the others); unweighed, the first one does."""
    pool_session._pool()
    weighed = pool_session.map_list(list(range(4)), _slow_pid, rows_each=local.INLINE_BELOW)
    assert os.getpid() not in weighed
    assert os.getpid() in pool_session.map_list(list(range(4)), _slow_pid)


def test_no_pool_is_started_for_a_fraction_of_a_second():
    # 8 rows at 8 ms: over INLINE_BUDGET_S, far under the price of starting the pool
    with LocalSession(partitions=4, workers=2) as s:
        t = s.parallelize((i, i) for i in range(8))
        assert set(dict(t.map_values(lambda v: _slow_pid(v, 0.008)).collect()).values()) == {os.getpid()}
        assert s._executor is None, "a pool was started for less work than starting it costs"


def test_slow_small_input_starts_the_pool_past_its_price():
    with LocalSession(partitions=4, workers=2) as s:
        t = s.parallelize((i, i) for i in range(4 * round(local.POOL_START_BUDGET_S / 0.01)))
        pids = set(dict(t.map_values(_slow_pid).collect()).values())
        assert os.getpid() in pids and len(pids) > 1


def test_worker_death_is_reported_and_survived():
    with LocalSession(partitions=2, workers=1, inline_below=0) as s:
        t = s.parallelize(DATA.items())
        with pytest.raises(ComputingError, match="died"):
            t.map_values(lambda v: os._exit(3))
        assert contents(t.map_values(lambda v: v * 2)) == {k: v * 2 for k, v in DATA.items()}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc")
def test_workers_exit_when_their_driver_is_killed(tmp_path):
    script = (
        "import os, signal, sys\n"
        "from backends.computing.local import LocalSession\n"
        "if __name__ == '__main__':\n"
        "    s = LocalSession(partitions=2, workers=2, inline_below=0)\n"
        "    pids = dict(s.parallelize((i, i) for i in range(10)).map_values(lambda v: os.getpid()).collect())\n"
        "    open(sys.argv[1], 'w').write(' '.join(map(str, set(pids.values()))))\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    (tmp_path / "driver.py").write_text(script)
    root = Path(local.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    # no pipes: orphaned workers would hold them open
    subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "pids")], env=env, timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [int(p) for p in (tmp_path / "pids").read_text().split()]
    assert workers
    deadline = time.monotonic() + 30 * local.PARENT_POLL_S
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "orphaned workers are still running"


def test_stop_shuts_the_workers_down():
    s = LocalSession(partitions=2, workers=2, inline_below=0)
    s.parallelize(DATA.items()).map_values(lambda v: v)
    procs = list(s._executor._processes.values())
    assert procs and all(p.is_alive() for p in procs)
    s.stop()
    assert s._executor is None
    assert not any(p.is_alive() for p in procs)


def test_map_partitions_that_changes_keys_is_repartitioned(pool_session):
    t = pool_session.parallelize(DATA.items(), 4)
    out = t.map_partitions(lambda part: [(f"new-{k}", v) for k, v in part])
    assert contents(out) == {f"new-{k}": v for k, v in DATA.items()}


def test_from_partitions_regroups_what_is_not_grouped(pool_session):
    lumped = [list(DATA.items()), [], []]
    assert contents(pool_session.from_partitions(lumped, 3)) == DATA
    assert contents(pool_session.from_partitions([list(DATA.items())], 4)) == DATA


@pytest.mark.parametrize(
    "kwargs",
    [{"partitions": 0}, {"workers": -1}, {"partitions": 2.5}, {"inline_below": -1}, {"start_method": "fork"}],
)
def test_bad_session_arguments(kwargs):
    with pytest.raises(ComputingError):
        LocalSession(**kwargs)


def test_bad_parallelize_input(pool_session):
    with pytest.raises(ComputingError):
        pool_session.parallelize([("a", 1, 2)])
    with pytest.raises(ComputingError):
        pool_session.parallelize([([1], 2)])


def test_registry_builds_local_sessions():
    with create_session("local", partitions=2, workers=1) as s:
        assert isinstance(s, LocalSession) and s.default_partitions == 2 and s.workers == 1


def test_keys_are_every_key_once(session, table, empty):
    assert sorted(table.keys()) == sorted(k for k, _ in table.collect())
    assert len(table.keys()) == table.count()
    assert table.filter(lambda k, v: False).keys() == [] and list(empty.keys()) == []
