"""A HiveServer2 for tests: the Spark Thrift Server shipped in pyspark's jars.

Why Spark's: it speaks the HiveServer2 Thrift protocol and is a pip install away,
while a real Hive needs Hadoop and a download. It is slow to start (half a minute or
more), so one server serves the whole test process: :func:`shared_server` starts it on
first use and stops it when the process exits. It binds 127.0.0.1 on a free port, keeps
its warehouse, Derby metastore and log under one temp folder, and runs with a small
heap and two local cores. Nothing is downloaded: everything comes from pyspark/jars.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"
START_TIMEOUT_S = 240.0


class HiveServerUnavailable(RuntimeError):
    """The server cannot be started here (no pyspark, no java, or it died at start)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the test process dies, so a killed
    pytest never leaves a JVM behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spark_home() -> Path:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise HiveServerUnavailable("pyspark is not installed")
    home = Path(spec.origin).parent
    if not (home / "jars").is_dir() or not list((home / "jars").glob("spark-hive-thriftserver_*.jar")):
        raise HiveServerUnavailable(f"{home}/jars has no spark-hive-thriftserver jar")
    return home


class HiveServer:
    """One Spark Thrift Server process and its private folder."""

    def __init__(self, heap: str = "1g", cores: int = 2):
        self.heap, self.cores = heap, cores
        self.host = "127.0.0.1"
        self.port = 0
        self.home: Path | None = None
        self.process: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        assert self.home is not None
        return self.home / "server.log"

    def command(self) -> list[str]:
        assert self.home is not None
        spark = spark_home()
        metastore = f"jdbc:derby:;databaseName={self.home / 'metastore_db'};create=true"
        conf = {
            "spark.master": f"local[{self.cores}]",
            "spark.driver.memory": self.heap,
            "spark.driver.host": self.host,
            "spark.driver.bindAddress": self.host,
            "spark.ui.enabled": "false",
            "spark.log.level": "WARN",
            "spark.sql.shuffle.partitions": "2",
            "spark.sql.warehouse.dir": str(self.home / "warehouse"),
            "spark.sql.thriftServer.incrementalCollect": "true",
            # keep no history: a multi-row INSERT's plan is as big as its SQL, and the
            # listeners would keep hundreds of them
            "spark.sql.ui.retainedExecutions": "5",
            "spark.sql.thriftServer.ui.retainedStatements": "5",
            "spark.sql.thriftServer.ui.retainedSessions": "5",
            "spark.ui.retainedJobs": "5",
            "spark.ui.retainedStages": "5",
            "spark.sql.maxPlanStringLength": "10000",
            "spark.hadoop.javax.jdo.option.ConnectionURL": metastore,
            "spark.driver.extraJavaOptions": f"-Dderby.system.home={self.home} -XX:+UseSerialGC",
        }
        hive = {
            "hive.server2.thrift.bind.host": self.host,
            "hive.server2.thrift.port": str(self.port),
            "hive.server2.transport.mode": "binary",
            "hive.server2.authentication": "NONE",
        }
        cmd = [str(spark / "bin" / "spark-submit"), "--class", THRIFT_SERVER_CLASS, "--name", "fedweave-test-hive"]
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        cmd.append("spark-internal")
        for key, value in hive.items():
            cmd += ["--hiveconf", f"{key}={value}"]
        return cmd

    def start(self, timeout: float = START_TIMEOUT_S) -> "HiveServer":
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise HiveServerUnavailable("no java on PATH (and no JAVA_HOME)")
        self.home = Path(tempfile.mkdtemp(prefix="fedweave-hive-"))
        self.port = free_port()
        env = dict(os.environ, SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP=self.host,
                   SPARK_LOG_DIR=str(self.home), SPARK_CONF_DIR=str(self.home / "conf"))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.home, env=env, start_new_session=True, preexec_fn=_die_with_parent,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        """The Thrift port opens only once the session catalog is up: wait for it, then
        for a first query to succeed."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise HiveServerUnavailable(f"the Spark Thrift Server exited at start; see {self._log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=1):
                if self._query_ok():
                    return
            time.sleep(0.5)
        raise HiveServerUnavailable(f"the Spark Thrift Server did not answer in {timeout:.0f} s; {self._log_tail()}")

    def _query_ok(self) -> bool:
        try:
            from pyhive import hive
        except ImportError as exc:
            raise HiveServerUnavailable(f"pyhive is not installed: {exc}") from exc
        try:
            with contextlib.closing(hive.connect(host=self.host, port=self.port, username="fedweave")) as conn:
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
                return cursor.fetchall() == [(1,)]
        except Exception:  # not up yet: thrift or transport errors of any kind
            return False

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return f"log {self.log}:\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        """Terminate the JVM (its whole process group), then remove its folder."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self.home is not None and not os.environ.get("FEDWEAVE_KEEP_HIVE_HOME"):
            shutil.rmtree(self.home, ignore_errors=True)


_shared: HiveServer | None = None
_failed: str | None = None
_lock = threading.Lock()


def shared_server() -> HiveServer:
    """The one server of this process, started on first call and stopped at exit.
    A failed start is remembered, so later tests fail (or skip) at once."""
    global _shared, _failed
    with _lock:
        if _failed is not None:
            raise HiveServerUnavailable(_failed)
        if _shared is None:
            try:
                _shared = HiveServer().start()
            except HiveServerUnavailable as exc:
                _failed = str(exc)
                raise
            atexit.register(stop_shared_server)
        return _shared


def stop_shared_server() -> None:
    global _shared
    with _lock:
        server, _shared = _shared, None
    if server is not None:
        server.stop()
