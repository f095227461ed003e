"""The process's one SparkContext: settings, a bounded start, sharing, and the end of its JVM.

Spark allows one SparkContext per process: sessions with the same settings share it, and
the last release ends it and its JVM. It starts on first use, bounded by a timeout (an
unreachable master is a ComputingError, not a hang). Settings are layered: defaults <
master/app name < the service's conf < the job's ``spark_run`` (FATE's names). On a
cluster master the context ships fedweave's code to the executors (:func:`code_zip`), and a
failed start reports Spark's own error text, read before its JVM is ended.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.util
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Mapping

from backends.computing._spark_tasks import _narrow, _summary, _whole
from backends.computing.local import _cores
from flow.core.errors import ComputingError
from flow.core.registry import did_you_mean

STARTUP_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 5.0
LOG_LEVELS = ("ALL", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")
#: settings every session starts from: a small driver, no UI, quiet console
DEFAULTS = {
    "spark.master": "local[*]",
    "spark.app.name": "fedweave",
    "spark.driver.memory": "1g",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
}
#: added for local masters only (executors on a cluster must reach the driver)
LOCAL_DEFAULTS = {"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1"}
#: ``spark_run`` (a job parameter, FATE's names) -> Spark setting
SPARK_RUN = {
    "master": "spark.master",
    "app-name": "spark.app.name",
    "num-executors": "spark.executor.instances",
    "executor-cores": "spark.executor.cores",
    "executor-memory": "spark.executor.memory",
    "driver-memory": "spark.driver.memory",
    "driver-cores": "spark.driver.cores",
    "total-executor-cores": "spark.cores.max",
}
#: their failures come back as ComputingError; Spark would also print each one in full
_NOISY_LOGGERS = ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager")
_LOCAL_MASTER = re.compile(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?")


class _Spark:
    """The running SparkSession and the sessions using it."""

    def __init__(self, spark: Any, conf: dict[str, str], owned: bool):
        self.spark, self.sc, self.conf, self.owned, self.users = spark, spark.sparkContext, conf, owned, 0


_LOCK = threading.Lock()
_ACTIVE: _Spark | None = None


def local_cores(master: str) -> int | None:
    m = _LOCAL_MASTER.fullmatch(master)
    if not m:
        return None
    return _cores() if m.group(1) == "*" else int(m.group(1) or 1)


def _probe_master(master: str) -> None:
    """A standalone master nobody listens on fails at once instead of after Spark's retries."""
    if not master.startswith("spark://"):
        return
    errors = []
    for address in master[len("spark://"):].split(","):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host, int(port)), CONNECT_TIMEOUT_S).close()
            return
        except (OSError, ValueError) as exc:
            errors.append(f"{address}: {exc}")
    raise ComputingError(f"Spark master {master} is unreachable ({'; '.join(errors)})")


#: fedweave's packages the executors import (what task functions and their pickles refer to)
SHIPPED = ("backends", "federation", "components", "flow/__init__.py", "flow/core")
_ZIP_LOCK = threading.Lock()
_ZIP: list[str] = []


def code_zip() -> str:
    """fedweave's code as one zip (made once per process, in a temporary folder removed at
    exit), for ``addPyFile``: executors on a cluster import it from there, so their Python
    needs fedweave's dependencies (numpy, gmpy2, cloudpickle, pydantic) but not fedweave."""
    with _ZIP_LOCK:
        if _ZIP:
            return _ZIP[0]
        root = Path(__file__).resolve().parents[2]  # the folder holding backends/, flow/, ...
        folder = Path(tempfile.mkdtemp(prefix="fedweave-spark-"))
        atexit.register(shutil.rmtree, folder, True)
        target = folder / "fedweave_code.zip"
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
            for item in SHIPPED:
                path = root / item
                files = [path] if path.is_file() else sorted(path.rglob("*.py"))
                for file in files:
                    if "__pycache__" not in file.parts:
                        zf.write(file, file.relative_to(root).as_posix())
        _ZIP.append(str(target))
        return _ZIP[0]


def spark_error(exc: BaseException) -> str:
    """What Spark said, read while its JVM still runs (a Py4J error's text comes from the JVM)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - the JVM is gone: the type is all there is
        return type(exc).__name__
    return _summary(text) or type(exc).__name__


def _boot(conf: dict[str, str], log_level: str, box: dict) -> None:
    try:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        box["owned"] = owned = SparkContext._active_spark_context is None
        builder = SparkSession.builder
        for k, v in conf.items():
            builder = builder.config(k, v)
        box["spark"] = spark = builder.getOrCreate()
        sc = spark.sparkContext
        if local_cores(conf["spark.master"]) is not None:
            sc.pythonExec = sys.executable
            paths = [os.getcwd() if p == "" else p for p in sys.path if p == "" or os.path.exists(p)]
            sc.environment["PYTHONPATH"] = os.pathsep.join(paths)
        else:  # executors on other machines: fedweave's code travels with the job
            if "spark.pyspark.python" in conf:
                sc.pythonExec = conf["spark.pyspark.python"]
            sc.addPyFile(code_zip())
        sc.setLogLevel(log_level)
        log4j = sc._jvm.org.apache.logging.log4j
        for name in _NOISY_LOGGERS:
            log4j.core.config.Configurator.setLevel(name, log4j.Level.OFF)
        # one tiny task: executors exist, run this Python and import fedweave
        sc.parallelize([[("probe", 1)]], 1).flatMap(_whole).mapPartitionsWithIndex(
            functools.partial(_narrow, "sample", None, (1.0, 0))).collect()
        box["ready"] = _Spark(spark, conf, owned)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
        box["message"] = spark_error(exc)  # now: once the JVM is ended its text is lost
        box["error"] = exc


def _end_jvm() -> None:
    """Stop the JVM pyspark launched (it otherwise lives as long as this process)."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    if proc is None:  # a JVM we did not launch (spark-submit): not ours to end
        return
    for close in (gateway.shutdown, proc.stdin.close):
        with contextlib.suppress(Exception):  # best effort on the way down
            close()
    try:
        proc.wait(timeout=20)
    except Exception:  # noqa: BLE001
        proc.kill()
        proc.wait()
    from pyspark.sql import SparkSession, SQLContext

    SparkContext._gateway = SparkContext._jvm = SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = SparkSession._activeSession = SQLContext._instantiatedContext = None


def _start(conf: dict[str, str], log_level: str, timeout: float) -> _Spark:
    master = conf["spark.master"]
    if importlib.util.find_spec("pyspark") is None:
        raise ComputingError("the spark computing engine needs pyspark (pip install pyspark) and a Java runtime")
    _probe_master(master)
    from pyspark import SparkConf, SparkContext

    try:  # the JVM first, here: a local process, so a timeout below can always end it
        SparkContext._ensure_initialized(conf=SparkConf().setAll(list(conf.items())))
    except Exception as exc:  # noqa: BLE001 - no Java, or it died at once
        raise ComputingError(f"cannot start the Spark JVM (is Java installed?): {_summary(str(exc))}") from exc
    box: dict = {}
    thread = threading.Thread(target=_boot, args=(conf, log_level, box), name="fedweave-spark-start", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        if "spark" in box:
            box["spark"].sparkContext.cancelAllJobs()
        if box.get("owned", True):
            _end_jvm()  # the start thread's calls now fail and it ends
        thread.join(CONNECT_TIMEOUT_S)
        raise ComputingError(f"Spark master {master} did not run a task within {timeout:g}s "
                             "(no reachable master, or no worker with free cores and memory)")
    if "error" in box:
        exc = box["error"]
        if box.get("owned", True):
            try:
                box["spark"].stop() if "spark" in box else None
            finally:
                _end_jvm()
        raise ComputingError(f"cannot start Spark on master {master}: {box.get('message') or type(exc).__name__}") \
            from exc
    return box["ready"]


def acquire(conf: dict[str, str], log_level: str, timeout: float) -> _Spark:
    global _ACTIVE
    with _LOCK:
        if _ACTIVE is None:
            _ACTIVE = _start(conf, log_level, timeout)
        elif _ACTIVE.conf != conf:
            differ = sorted(k for k in conf.keys() | _ACTIVE.conf.keys()
                            if k != "spark.app.name" and conf.get(k) != _ACTIVE.conf.get(k))
            if differ:
                raise ComputingError(
                    "Spark runs one context per process and the running one has other settings: "
                    + ", ".join(f"{k}={_ACTIVE.conf.get(k)!r} (asked {conf.get(k)!r})" for k in differ))
        _ACTIVE.users += 1
        return _ACTIVE


def release(spark: _Spark) -> None:
    global _ACTIVE
    with _LOCK:
        spark.users -= 1
        if spark.users > 0 or _ACTIVE is not spark:
            return
        _ACTIVE = None
        if spark.owned:
            try:
                spark.spark.stop()
            finally:
                _end_jvm()


def settings(master: str | None, app_name: str, conf: Mapping | None, spark_run: Mapping | None) -> dict[str, str]:
    """Defaults < master/app_name < conf (service) < spark_run (job)."""
    out = dict(DEFAULTS, **{"spark.app.name": app_name})
    if master is not None:
        out["spark.master"] = master
    if conf is not None and not isinstance(conf, Mapping):
        raise ComputingError(f"Spark conf must be a mapping of spark.* settings, got {type(conf).__name__}")
    if spark_run is not None and not isinstance(spark_run, Mapping):
        raise ComputingError(f"spark_run must be a mapping, got {type(spark_run).__name__}")
    run = dict(spark_run or {})
    extra = run.pop("conf", None) or {}
    if not isinstance(extra, Mapping):
        raise ComputingError(f"spark_run conf must be a mapping of spark.* settings, got {type(extra).__name__}")
    for key, value in [*(conf or {}).items(), *extra.items(), *run.items()]:
        name = key.replace("_", "-").lower() if isinstance(key, str) else key
        if isinstance(key, str) and key.startswith("spark."):
            name = key
        elif name in SPARK_RUN:
            name = SPARK_RUN[name]
        else:
            raise ComputingError(f"unknown Spark setting {key!r}{did_you_mean(str(key), [*SPARK_RUN, 'conf'])}; "
                                 "use spark.* names or one of: " + ", ".join([*SPARK_RUN, "conf"]))
        if value is None or isinstance(value, (dict, list, tuple, set)):
            raise ComputingError(f"Spark setting {key!r} must be a string, number or boolean, got {value!r}")
        out[name] = str(value).lower() if isinstance(value, bool) else str(value)
    if not out["spark.master"].strip():
        raise ComputingError("Spark master must not be empty")
    if local_cores(out["spark.master"]) is not None:
        out = {**LOCAL_DEFAULTS, **out}
    return out

