"""A party that runs its own Spark (``computing: {engine: spark}`` without a ``master``)
installed as containers of the local Docker engine, from the image with the spark extra on
the base with a Java runtime: install runs the master and the consortium file's worker beside
the server, ``flow cluster scale --spark-workers N`` adds and removes workers (the master's
``/json/`` counts them ALIVE), and a job through the party's server runs as an application
of that master, its executors on the workers."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
import yaml

from flow.ops.manifests import SPARK_WEBUI_PORT
from tests.conftest import service_unavailable
from tests.e2e.conftest import EXAMPLES, FlowCLI, write_job
from tests.hive_server import free_port

from .conftest import REPOSITORY, SPARK_TAG

pytestmark = pytest.mark.e2e

PARTY = "9999"
PEER_KEY = "J+ittBoeRn3eeOSmLUlo+r4MbapHjxRiHpdRtnzFNDo="  # a peer that is never installed
NAME = "e2espark"


@pytest.fixture(scope="module")
def spark_party(spark_image, tmp_path_factory):
    """The consortium file of a party with its own Spark (one worker), meeting on this
    machine's RabbitMQ; the party deleted with its data at the end."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        service_unavailable("RabbitMQ on 127.0.0.1:5672")
    root = tmp_path_factory.mktemp("spark")
    (root / "org").mkdir()
    org = FlowCLI(root / "org")
    port = free_port()
    fed = {"engine": "rabbitmq", "allow_insecure": True,
           "broker": {"host": "127.0.0.1", "port": 5672, "user": "guest", "password": "guest"}}
    spec = {"name": NAME, "image": {"repository": REPOSITORY, "tag": SPARK_TAG}, "parties": [
        {"id": int(PARTY), "organisation": "spark org", "address": {"host": "127.0.0.1", "port": port},
         "engines": {"computing": {"engine": "spark", "workers": 1, "worker_memory": "1g"}, "federation": fed}},
        {"id": 10000, "organisation": "peer org", "address": {"host": "127.0.0.1", "port": 9},
         "public_key": PEER_KEY, "engines": {"federation": fed}}]}
    path = root / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    opts = ["-f", path, "--party", PARTY]
    yield {"org": org, "opts": opts, "path": path, "port": port, "root": root}
    org("cluster", "delete", *opts, timeout=300)


def _master() -> dict:
    return httpx.get(f"http://127.0.0.1:{SPARK_WEBUI_PORT}/json/", timeout=5).json()


def _alive_workers(n: int, timeout: float = 180) -> dict:
    """The master's status once exactly ``n`` workers are ALIVE."""
    end, last = time.monotonic() + timeout, None
    while time.monotonic() < end:
        try:
            last = _master()
        except (httpx.HTTPError, ValueError):
            last = None
        if last is not None and sum(w["state"] == "ALIVE" for w in last["workers"]) == n:
            return last
        time.sleep(1)
    raise AssertionError(f"not {n} ALIVE workers after {timeout:.0f}s: {last}")


def test_install_runs_spark_beside_the_server_and_scale_sets_the_alive_workers(spark_party, docker_client):
    org, opts = spark_party["org"], spark_party["opts"]
    out = org.ok("cluster", "install", *opts, timeout=900)
    assert out["ready"] is True, out
    assert out["containers"] == [f"{NAME}-{PARTY}-spark-master", f"{NAME}-{PARTY}-spark-worker-0",
                                 f"{NAME}-{PARTY}-server"]
    print(f"party {PARTY} with Spark: {out['seconds_to_ready']} s from install to ready")
    _alive_workers(1)
    up = org.ok("cluster", "scale", *opts, "--spark-workers", "2")
    assert (up["from"], up["to"]) == (1, 2)
    _alive_workers(2)
    down = org.ok("cluster", "scale", *opts, "--spark-workers", "1")
    assert (down["from"], down["to"]) == (2, 1)
    _alive_workers(1)
    mine = docker_client.containers.list(all=True, filters={"label": f"fedweave.io/consortium={NAME}"})
    names = {c.name for c in mine}
    assert names == {f"{NAME}-{PARTY}-server", f"{NAME}-{PARTY}-spark-master", f"{NAME}-{PARTY}-spark-worker-0"}


def test_a_job_through_the_partys_server_runs_on_its_spark_master(spark_party):
    cli = FlowCLI(spark_party["root"] / "client")
    (spark_party["root"] / "client").mkdir()
    token = (spark_party["path"].parent / f"bundle-{PARTY}" / "home" / "server_token").read_text().strip()
    assert cli.ok("init", "--ip", "127.0.0.1", "--port", spark_party["port"], "--token", token)["reachable"]
    cli.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    before = _apps()
    guest = {"role": "guest", "party_id": int(PARTY)}
    conf = {"dsl_version": 2, "initiator": guest, "role": {"guest": [int(PARTY)]},
            "job_parameters": {"common": {"computing_engine": "spark", "computing_partitions": 2, "timeout": 600}},
            "component_parameters": {
                "common": {"feature_scale_0": {"method": "standard_scale"}},
                "role": {"guest": {"0": {
                    "reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_guest"}},
                    "data_transform_0": {"with_label": True, "label_name": "y", "output_format": "dense"}}}}}}
    dsl = {"components": {
        "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
        "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                             "output": {"data": ["data"], "model": ["model"]}},
        "feature_scale_0": {"module": "FeatureScale", "input": {"data": {"data": ["data_transform_0.data"]}},
                            "output": {"data": ["data"], "model": ["model"]}}}}
    c, d = write_job(spark_party["root"], conf, dsl, "spark")
    done = cli.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=900)
    assert done["status"] == "success", done
    assert _apps() > before  # the party's Spark application(s) ran on this master, executors on its worker


def _apps() -> int:
    status = _master()
    return len(status["activeapps"]) + len(status["completedapps"])
