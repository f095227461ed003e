"""The Spark backend on a real standalone cluster, not only ``local[2]``.

A master and one worker are started here from pyspark's own ``bin/spark-class`` on
127.0.0.1 (nothing listens beyond loopback). The executors run a Python that has numpy,
gmpy2 and pyspark but NOT fedweave: it is the venv's interpreter with ``-S`` (no .pth
files, so the editable install is invisible) and only site-packages on its path. fedweave
reaches them only as the zip the backend ships with ``addPyFile``, which is what this tests.
A hetero LR job (guest, host, arbiter all on the cluster) must give the weights of the
same job on the local backend. Without Java or pyspark: a skip, a failure in CI.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import service_unavailable
from tests.contract import backend_spark
from tests.e2e.conftest import BREAST, FlowCLI, load_example, upload_here, with_lr_params, write_job

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"Spark daemon exited {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"Spark daemon did not listen on {port}: {log.read_text()[-2000:]}")


def _worker_registered(master_log: Path, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if "Registering worker" in master_log.read_text(errors="replace"):
            return
        time.sleep(0.3)
    raise AssertionError(f"no worker registered: {master_log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """``spark://127.0.0.1:PORT`` of a master with one worker (4 cores, 3 GB), and the
    executors' fedweave-less Python."""
    if not backend_spark.available():
        service_unavailable("Spark (pyspark and a Java runtime)")
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    work = tmp_path_factory.mktemp("spark_standalone")
    python = work / "python-without-fedweave"
    site = sysconfig.get_paths()["purelib"]
    python.write_text(f'#!/bin/sh\nPYTHONPATH="${{PYTHONPATH}}:{site}" exec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, SPARK_HOME=str(spark_home), SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1",
               SPARK_WORKER_DIR=str(work / "worker"), PYSPARK_PYTHON=str(python))
    env.pop("PYTHONPATH", None)
    port = _free_port()
    spark_class = str(spark_home / "bin" / "spark-class")
    logs = {name: work / f"{name}.log" for name in ("master", "worker")}
    procs: list[subprocess.Popen] = []
    try:
        with logs["master"].open("wb") as out:
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                 "--webui-port", str(_free_port())], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True))
        _wait_port(port, procs[0], logs["master"])
        master = f"spark://127.0.0.1:{port}"
        with logs["worker"].open("wb") as out:
            procs.append(subprocess.Popen(
                [spark_class, "org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1",
                 "--cores", "4", "--memory", "3g", "--webui-port", str(_free_port()),
                 "--work-dir", str(work / "worker")], env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True))
        _worker_registered(logs["master"])
        yield {"master": master, "python": str(python), "logs": logs}
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in reversed(procs):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _spark_conf(standalone: dict, **extra: str) -> dict:
    """One core and a small executor per party's application: three run at once on the worker."""
    return {"master": standalone["master"], "startup_timeout": 180,
            "conf": {"spark.pyspark.python": standalone["python"], "spark.cores.max": "1",
                     "spark.executor.cores": "1", "spark.executor.memory": "512m", "spark.driver.memory": "512m",
                     "spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1", **extra}}


def test_tables_on_the_standalone_cluster(standalone, tmp_path):
    """Executors import fedweave only from the shipped zip (without it, the executor's own
    ModuleNotFoundError is the message); a worker's failure keeps its type and text."""
    script = f"""
import json
import backends.computing._spark_context as context
from backends.computing.spark import SparkComputing
from flow.core.errors import ComputingError
result = {{}}
shipped, context.SHIPPED = context.SHIPPED, ("flow/__init__.py",)  # what a cluster got before: no fedweave
try:
    SparkComputing(partitions=3, **{_spark_conf(standalone)!r}).parallelize([("a", 1)])
except ComputingError as exc:
    result["unshipped"] = str(exc)
context.SHIPPED = shipped
context._ZIP.clear()
s = SparkComputing(partitions=3, **{_spark_conf(standalone)!r})
t = s.parallelize([(f"k{{i}}", i) for i in range(50)], 3)
result["sum"] = t.map_values(lambda v: v * 2).reduce(lambda a, b: a + b)
try:
    t.map_values(lambda v: 1 / (v - v))
except ComputingError as exc:
    result["error"] = str(exc)
s.stop()
print("RESULT=" + json.dumps(result))
"""
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT=")]
    assert proc.returncode == 0 and lines, proc.stderr[-4000:]
    got = json.loads(lines[-1][len("RESULT="):])
    assert "No module named 'backends'" in got["unshipped"], got["unshipped"]  # Spark's own words, kept
    assert got["sum"] == 2 * sum(range(50))
    assert "ZeroDivisionError" in got["error"]


def _uploaded(home: Path) -> FlowCLI:
    """The breast tables in two partitions, not four: still split, and each Spark stage of the
    job then runs half the tasks on the application's one core."""
    home.mkdir()
    upload_here(home, BREAST, partitions=2)
    cli = FlowCLI(home)
    cli.env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return cli


def test_hetero_lr_on_the_standalone_cluster_matches_local(standalone, tmp_path: Path):
    breast = _uploaded(tmp_path / "local_home")
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=2, encrypt_param={"key_length": 512, "allow_short_key": True})
    conf["job_parameters"]["common"]["computing_partitions"] = 2  # as the tables (_uploaded)
    c, d = write_job(tmp_path, conf, dsl, tag="local")
    local_job = breast.ok("job", "submit", "-c", c, "-d", d)["job_id"]  # runs while the cluster's starts

    home = tmp_path / "spark_home"
    cluster = _uploaded(home)
    (home / "service_conf.yaml").write_text(yaml.safe_dump({
        "default_engines": {"computing": "spark"},
        "computing": {"engines": {"spark": _spark_conf(standalone)}},
    }))
    c, d = write_job(tmp_path, conf, dsl, tag="spark")
    seen = len(standalone["logs"]["master"].read_text(errors="replace"))
    job = cluster.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=1200)
    assert job["status"] == "success", job.get("reason")
    reference = breast.wait(local_job)
    assert reference["status"] == "success", reference.get("reason")
    # the guest and the host each ran as an application of the cluster (the arbiter computes no Table)
    assert standalone["logs"]["master"].read_text(errors="replace")[seen:].count("Registered app fedweave") == 2
    for role, pid in (("guest", "9999"), ("host", "10000")):
        got = cluster.ok("tracking", "output-model", "-j", job["job_id"], "-r", role, "-p", pid,
                         "-cpn", "hetero_lr_0")["model"]
        ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                        "-cpn", "hetero_lr_0")["model"]
        assert len(got["weights"]) == len(ref["weights"]) > 0
        np.testing.assert_allclose(got["weights"], ref["weights"], rtol=0, atol=1e-8, err_msg=role)
        if "intercept" in ref:
            assert abs(float(got["intercept"]) - float(ref["intercept"])) <= 1e-8, role

