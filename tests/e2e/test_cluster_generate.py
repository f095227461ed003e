"""From one consortium file to three running parties: `flow party init` at two of them,
`flow cluster generate` for all three (the third gets a new key from its bundle), the
bundles checked with the project's own loaders and the Kubernetes schemas, then three
`flow server start` processes on those bundles, meeting over RabbitMQ on 127.0.0.1,
train examples/hetero_lr to the standalone weights."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import service_unavailable

from .conftest import EXAMPLES, ROOT, load_example, with_lr_params, write_job
from .test_server import InProcessCLI
from .test_server_cluster import RABBIT, _existing_queues, _rabbit_up

pytestmark = pytest.mark.e2e

#: ids of their own, so that this consortium's control queues are not another test's
PARTIES = {"guest": "19999", "host": "20000", "arbiter": "20001"}
#: the Kubernetes version the manifests are checked against (kubernetes-validate's schemas)
K8S_VERSION = "1.30.0"


def _consortium(keys: dict[str, str | None]) -> dict:
    return {"name": "e2e", "image": {"repository": "fedweave/fedweave", "tag": "0.1.0"}, "parties": [
        {"id": pid, "organisation": f"org of the {role}", "public_key": keys.get(pid),
         "address": {"host": "127.0.0.1", "port": 19380 + i},
         "engines": {"computing": {"engine": "local", "workers": 2},
                     "federation": {"engine": "rabbitmq", "allow_insecure": True,  # a test broker on loopback
                                    "broker": {k: RABBIT[k] for k in ("host", "port", "vhost", "user", "password")}}},
         "resources": {"cpu": "2", "memory": "4Gi", "gpu": 1 if role == "guest" else 0}}
        for i, (role, pid) in enumerate(PARTIES.items())]}


def _start(home: Path) -> subprocess.Popen:
    import os

    env = dict(os.environ, FLOW_HOME=str(home))
    env.pop("FEDWEAVE_SERVICE_CONF", None)
    with open(home.parent / "server.err", "w") as err:
        return subprocess.Popen([sys.executable, "-m", "flow.cli.main", "server", "start", "--host", "127.0.0.1",
                                 "--port", "0"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)


def _generate(tmp_path: Path) -> dict[str, Path]:
    """Each party's bundle, made the way the README says; {party id: bundle folder}."""
    inits = {}
    for role in ("guest", "host"):  # these two made their keys first, with `flow party init`
        pid = PARTIES[role]
        home = tmp_path / f"keys_{pid}"
        home.mkdir()
        inits[pid] = (home, InProcessCLI(home).ok("party", "init", "--party-id", pid)["public_key"])
    keys: dict[str, str | None] = {pid: key for pid, (_, key) in inits.items()}
    path = tmp_path / "cluster.yaml"
    arbiter = PARTIES["arbiter"]
    path.write_text(yaml.safe_dump(_consortium(keys)))
    bundles = {arbiter: tmp_path / f"bundle_{arbiter}"}  # no key yet: its bundle makes one
    made = InProcessCLI(tmp_path / "arbiter_cwd").ok("cluster", "generate", "-f", path, "--party", arbiter,
                                                      "-o", bundles[arbiter])
    assert made["private_key"] == "made for this bundle"
    keys[arbiter] = made["public_key"]
    path.write_text(yaml.safe_dump(_consortium(keys)))  # the consortium now lists every key
    for pid, (home, key) in inits.items():
        bundles[pid] = tmp_path / f"bundle_{pid}"
        out = InProcessCLI(home).ok("cluster", "generate", "-f", path, "--party", pid, "-o", bundles[pid])
        assert out["public_key"] == key and out["private_key"] == "copied from this home's key store"
    return bundles


def _check_bundles(bundles: dict[str, Path]) -> None:
    from federation.auth import KeyStore, RouteTable
    from flow.core.settings import load_service_conf

    pems = {pid: (b / "home" / "keys" / f"{pid}.key").read_text() for pid, b in bundles.items()}
    publics = {pid: KeyStore(b / "home").load(pid).public_key_b64 for pid, b in bundles.items()}
    for pid, bundle in bundles.items():
        conf = load_service_conf(bundle / "home" / "service_conf.yaml")
        assert (conf.mode, conf.server.party_id, conf.default_engines.federation) == ("cluster", pid, "rabbitmq")
        table = RouteTable.load(bundle / "home" / "route_table.yaml")
        assert {p: r.public_key for p, r in table.parties.items()} == publics
        for route in table.parties.values():
            assert route.model_extra["rabbitmq"] == {"host": "127.0.0.1", "port": 5672, "vhost": "/"}
        texts = [f.read_text() for f in bundle.rglob("*") if f.is_file()]
        for other, pem in pems.items():  # another party's private key is nowhere in this bundle
            body = "".join(pem.strip().splitlines()[1:-1])
            assert (other == pid) == any(body in t.replace("\n", "") for t in texts), (pid, other)
        assert [k.name for k in (bundle / "home" / "keys").iterdir()] == [f"{pid}.key"]


def _check_manifests(bundles: dict[str, Path]) -> None:
    import kubernetes_validate

    for pid, bundle in bundles.items():
        kustomization = yaml.safe_load((bundle / "k8s" / "kustomization.yaml").read_text())
        docs = {name: yaml.safe_load((bundle / "k8s" / name).read_text()) for name in kustomization["resources"]}
        for doc in docs.values():
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises naming the bad field
        kinds = {doc["kind"] for doc in docs.values()}
        assert {"Namespace", "ConfigMap", "Secret", "StatefulSet", "Service", "NetworkPolicy"} <= kinds
        server = docs["server.yaml"]
        container = server["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "fedweave/fedweave:0.1.0"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert server["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "home"
        gpu = container["resources"]["limits"].get("nvidia.com/gpu")
        assert gpu == (1 if pid == PARTIES["guest"] else None)
        secret = docs["secret.yaml"]["stringData"]
        assert secret["server_token"] == (bundle / "home" / "server_token").read_text()
        assert set(docs["configmap.yaml"]["data"]) | set(secret) >= {"service_conf.yaml", "route_table.yaml"}


def _delete_control_queues() -> None:
    import pika

    from federation._rabbitmq_conf import CONTROL, queue_name
    from federation.api import Party
    from flow.server.control import CONTROL_JOB, ROLE

    pids = list(PARTIES.values())
    names = [queue_name(CONTROL_JOB, Party(ROLE, dst), src, role) for dst in pids for src in pids
             for role in (ROLE, CONTROL)]
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        RABBIT["host"], RABBIT["port"], RABBIT["vhost"], pika.PlainCredentials(RABBIT["user"], RABBIT["password"])))
    try:
        for name in _existing_queues(names):
            conn.channel().queue_delete(name)
    finally:
        conn.close()


def _job(tmp_path: Path) -> tuple[Path, Path]:
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=2, encrypt_param={"key_length": 512, "allow_short_key": True})
    conf["initiator"]["party_id"] = int(PARTIES["guest"])
    conf["role"] = {role: [int(pid)] for role, pid in PARTIES.items()}
    return write_job(tmp_path, conf, dsl, "consortium")


def test_three_parties_from_one_consortium_file_run_hetero_lr(breast, tmp_path):
    bundles = _generate(tmp_path)
    _check_bundles(bundles)
    _check_manifests(bundles)
    if not _rabbit_up():
        service_unavailable("RabbitMQ on 127.0.0.1:5672")

    homes = {pid: b / "home" for pid, b in bundles.items()}
    guest, host = InProcessCLI(homes[PARTIES["guest"]]), InProcessCLI(homes[PARTIES["host"]])
    guest.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    host.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    host.ok("privilege", "grant", "--party", PARTIES["guest"], "--namespace", "experiment",
            "--name", "breast_hetero_host")
    procs = {pid: _start(home) for pid, home in homes.items()}
    try:
        end = time.monotonic() + 90
        while not all((h / "server.json").exists() for h in homes.values()) and time.monotonic() < end:
            assert all(p.poll() is None for p in procs.values()), [
                (b / "server.err").read_text() for b in bundles.values()]
            time.sleep(0.2)
        port = json.loads((homes[PARTIES["guest"]] / "server.json").read_text())["port"]
        token = (homes[PARTIES["guest"]] / "server_token").read_text().strip()
        (tmp_path / "client").mkdir()
        client = InProcessCLI(tmp_path / "client")
        assert client.ok("init", "--ip", "127.0.0.1", "--port", port, "--token", token)["reachable"] is True

        c, d = _job(tmp_path)
        reference = breast.ok("job", "submit", "-c", c, "-d", d)  # the same job standalone, alongside
        detail = client.ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=400)
        assert detail["status"] == "success", detail["reason"]
        assert breast.wait(reference["job_id"])["status"] == "success"
        for role in ("guest", "host"):  # each party's share, kept at that party only, is the standalone one
            pid = PARTIES[role]
            mine = InProcessCLI(homes[pid]).ok("tracking", "output-model", "-j", detail["job_id"], "-r", role,
                                               "-p", pid, "-cpn", "hetero_lr_0")["model"]
            ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                            "-cpn", "hetero_lr_0")["model"]
            assert mine["iters"] == 2
            np.testing.assert_allclose(mine["weights"], ref["weights"], atol=1e-8)
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        for p in procs.values():
            p.wait(timeout=30)
        _delete_control_queues()
