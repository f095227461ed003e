"""The Spark computing backend against a real local Spark (local[2]).

The contract suite (tests/contract/test_computing_contract.py -k spark) covers each
operation against a plain-Python reference; these tests cover what is Spark's own:
results identical to the local backend down to partition contents and order, the
Paillier hot path, worker failures, the cache, the settings, and the context's life
(start, sharing, stop, an unreachable or silent master). Tests that must own the
process's one SparkContext run in a subprocess.
"""

from __future__ import annotations

import gc
import json
import operator
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import backends.computing.spark as spark_backend
from backends.computing import create_session, partition_of
from backends.computing.local import LocalSession
from backends.computing.spark import SparkComputing
from components.crypto import encrypted_dot, generate_keypair
from flow.core.errors import ComputingError
from tests.contract import backend_spark

ROOT = Path(__file__).resolve().parents[2]
ROWS = {f"id{i}": i for i in range(300)}
OTHER = {f"id{i}": -i for i in range(200, 420)}


@pytest.fixture(scope="module")
def spark():
    """Shares the context with the contract suite's session when both run in one process."""
    with backend_spark.session() as s:
        yield s


@pytest.fixture(scope="module")
def local():
    with LocalSession(partitions=3, workers=1) as s:
        yield s


def _pipeline(session) -> dict:
    t = session.parallelize(ROWS.items(), 4)
    o = session.parallelize(OTHER.items(), 3)
    tables = {
        "parallelize": t,
        "map_values": t.map_values(lambda v: v * 3),
        "map_collisions": t.map(lambda k, v: (v % 7, (k, v))),
        "map_partitions_same_keys": t.map_partitions(lambda part: [(k, v + len(part)) for k, v in part]),
        "map_partitions_new_keys": t.map_partitions(lambda part: [(f"x{k}", v) for k, v in part[::2]]),
        "join_3_4": o.join(t, lambda a, b: (a, b)),
        "join_4_3": t.join(o, lambda a, b: a + b),
        "union_merge": t.union(o, lambda a, b: a - b),
        "union_left": o.union(t),
        "filter": t.filter(lambda k, v: v % 3 == 1),
        "sample": t.sample(0.4, seed=5),
        "from_partitions": session.from_partitions(t.iter_partitions(), 4),
    }
    out = {name: [table.partitions, list(table.iter_partitions()), sorted(table.collect())]
           for name, table in tables.items()}
    out["apply_partitions"] = t.apply_partitions(lambda part: [k for k, _ in part])
    out["reduce"] = t.reduce(operator.add)
    out["first"] = [t.first(), tables["join_3_4"].first()]
    out["count"] = [table.count() for table in tables.values()]
    return out


@pytest.mark.parametrize("driver_cache_rows", [spark_backend.DRIVER_CACHE_ROWS, 0])
def test_same_partitions_and_order_as_the_local_backend(spark, local, monkeypatch, driver_cache_rows):
    """0: every fetch is a Spark job (the path of tables too big to keep in the driver)."""
    monkeypatch.setattr(spark_backend, "DRIVER_CACHE_ROWS", driver_cache_rows)
    got, expected = _pipeline(spark), _pipeline(local)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == expected[name], name


def test_encrypted_dot_on_executors_matches_local(spark, local):
    public, private = generate_keypair(256)
    rng = np.random.default_rng(3)
    d = {f"r{i}": float(v) for i, v in enumerate(rng.normal(size=120))}
    x = {k: rng.normal(size=3) for k in d}

    def partials(session) -> np.ndarray:
        enc = session.parallelize(d.items(), 3).map_values(public.encrypt)
        joined = enc.join(session.parallelize(x.items(), 3), lambda c, row: (c, row))
        parts = joined.apply_partitions(
            lambda part: (encrypted_dot([c for _, (c, _) in part], np.stack([r for _, (_, r) in part]))
                          if part else None))
        total = [sum(col[1:], col[0]) for col in zip(*[p for p in parts if p is not None])]
        return private.decrypt_many(total)

    plain = sum(x[k] * d[k] for k in d)
    np.testing.assert_allclose(partials(spark), plain, rtol=1e-6)
    np.testing.assert_allclose(partials(spark), partials(local), rtol=1e-9)


def _explode(v):
    raise LookupError(f"no row {v}")


def test_worker_failure_carries_type_message_and_traceback(spark):
    t = spark.parallelize(ROWS.items(), 3)
    with pytest.raises(ComputingError, match=r"map_values failed on partition \d: LookupError: no row \d+") as info:
        t.map_values(_explode)
    assert "_explode" in info.value.worker_traceback
    apart = next(k for k in ROWS if partition_of(k, 3) != partition_of("id0", 3))
    mixed = spark.parallelize([("id0", 2), (apart, (3,))], 3)  # each partition's fold is fine, the final one not
    with pytest.raises(ComputingError, match="reduce failed in the driver: TypeError"):
        mixed.reduce(operator.add)


def test_worker_crash_is_reported_and_survived(spark):
    t = spark.parallelize(ROWS.items(), 3)
    with pytest.raises(ComputingError, match="died"):
        t.map_values(lambda v: os._exit(3))
    assert dict(t.map_values(lambda v: v + 1).collect()) == {k: v + 1 for k, v in ROWS.items()}


def test_tables_drop_their_cache(spark):
    sc = spark.spark.sparkContext
    cached = lambda: set(sc._jsc.getPersistentRDDs().keys())  # noqa: E731
    t = spark.parallelize(ROWS.items(), 3).map_values(lambda v: v)
    rdd_id = t.rdd.id()
    assert rdd_id in cached()
    del t
    gc.collect()
    assert rdd_id not in cached()
    other = backend_spark.session()  # shares the context; its stop drops only its own tables
    mine, theirs = spark.parallelize(ROWS.items()).map_values(str), other.parallelize(ROWS.items()).map_values(str)
    other.stop()
    assert theirs.rdd.id() not in cached() and mine.rdd.id() in cached()
    assert mine.count() == len(ROWS)


def test_other_settings_in_the_same_process_are_refused(spark):
    spark.parallelize([("a", 1)]).count()  # the context is up
    clash = SparkComputing(partitions=2, master="local[1]", conf={"spark.executor.memory": "2g"})
    with pytest.raises(ComputingError, match=r"one context per process.*spark\.master='local\[2\]'"):
        clash.parallelize([("a", 1)])
    clash.stop()


def test_settings_from_conf_and_spark_run():
    s = create_session("spark", partitions=2, workers=5, master="local[1]", conf={"spark.executor.memory": "2g"},
                       spark_run={"num-executors": 3, "executor_cores": 2, "executor-memory": "4g",
                                  "conf": {"spark.speculation": True}})
    assert isinstance(s, SparkComputing) and s.default_partitions == 2
    conf = s.conf
    assert (conf["spark.master"], conf["spark.executor.instances"], conf["spark.executor.cores"]) == (
        "local[1]", "3", "2")
    assert conf["spark.executor.memory"] == "4g", "the job's spark_run wins over the service conf"
    assert conf["spark.speculation"] == "true" and conf["spark.driver.host"] == "127.0.0.1"
    assert SparkComputing(master="spark://h:7077").conf.get("spark.driver.host") is None
    assert SparkComputing(master="local[3]").default_partitions == 3
    s.stop()


@pytest.mark.parametrize("kwargs, named", [
    ({"spark_run": {"executor-memroy": "1g"}}, "did you mean 'executor-memory'"),
    ({"conf": {"driver.memory": "1g"}}, "driver.memory"),
    ({"conf": {"spark.executor.memory": None}}, "spark.executor.memory"),
    ({"spark_run": ["num-executors"]}, "spark_run"),
    ({"partitions": 0}, "partitions"),
    ({"master": ""}, "master"),
    ({"startup_timeout": -1}, "startup_timeout"),
    ({"log_level": "LOUD"}, "log_level"),
])
def test_bad_settings_are_refused_by_name(kwargs, named):
    with pytest.raises(ComputingError, match=named.replace(".", r"\.")):
        SparkComputing(**kwargs)


# ---------------------------------------------------------------- the context's life, in a fresh process


def _in_subprocess(*parts: str, timeout: float = 240) -> dict:
    """Run the code ``parts`` (which set ``result``) in a fresh interpreter; return result."""
    body = "\n".join(textwrap.dedent(part) for part in parts)
    script = f"import json, os, socket, subprocess, threading, time\n{body}\nprint('RESULT=' + json.dumps(result))\n"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT="):])


_JVMS = """
def jvms():
    out = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(os.getpid())], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if "java" in line]
"""


def test_unreachable_master_is_an_error_naming_it():
    if not backend_spark.available():
        backend_spark.session()  # skips (fails in CI)
    got = _in_subprocess("""
        from backends.computing.spark import SparkComputing
        from flow.core.errors import ComputingError
        start = time.monotonic()
        try:
            SparkComputing(master="spark://127.0.0.1:1").parallelize([("a", 1)])
            result = {"error": None}
        except ComputingError as exc:
            result = {"error": str(exc), "seconds": time.monotonic() - start}
    """, timeout=120)
    assert got["error"] and "spark://127.0.0.1:1" in got["error"] and "unreachable" in got["error"]


def test_silent_master_times_out_and_leaves_no_jvm():
    """A port that accepts and never answers: the start gives up after startup_timeout."""
    if not backend_spark.available():
        backend_spark.session()
    got = _in_subprocess(_JVMS, """
        from backends.computing.spark import SparkComputing
        from flow.core.errors import ComputingError
        server = socket.create_server(("127.0.0.1", 0))
        held = []
        threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(100)], daemon=True).start()
        master = f"spark://127.0.0.1:{server.getsockname()[1]}"
        try:
            SparkComputing(master=master, startup_timeout=5).parallelize([("a", 1)])
            result = {"error": None}
        except ComputingError as exc:
            result = {"error": str(exc), "master": master, "jvms": jvms()}
    """)
    assert got["error"] and got["master"] in got["error"] and "within 5s" in got["error"]
    assert got["jvms"] == []


def test_sessions_share_one_context_and_the_last_stop_ends_the_jvm():
    if not backend_spark.available():
        backend_spark.session()
    got = _in_subprocess(_JVMS, """
        from backends.computing.spark import SparkComputing
        from flow.core.errors import ComputingError
        a = SparkComputing(partitions=2, master="local[2]")
        b = SparkComputing(partitions=2, master="local[2]")
        ta = a.parallelize([("x", 1), ("y", 2)])
        result = {"shared": a.spark is b.spark, "jvms_up": len(jvms())}
        a.stop()
        result["b_after_a"] = dict(b.parallelize([("x", 1)]).map_values(lambda v: v + 1).collect())
        try:
            ta.map_values(lambda v: v)
        except ComputingError as exc:
            result["stopped_error"] = str(exc)
        b.stop()
        result["jvms_after"] = len(jvms())
        with SparkComputing(partitions=2, master="local[1]") as c:
            result["restart"] = c.parallelize([("z", 3)]).reduce(lambda p, q: p + q)
        result["jvms_end"] = len(jvms())
    """)
    assert got["shared"] and got["jvms_up"] == 1
    assert got["b_after_a"] == {"x": 2} and "stopped" in got["stopped_error"]
    assert got["jvms_after"] == 0 and got["jvms_end"] == 0
    assert got["restart"] == 3
