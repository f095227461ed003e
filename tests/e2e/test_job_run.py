"""`flow job run`: each party's share started on its own, as an external scheduler would."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from .conftest import ROOT, load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e

PARTIES = [("guest", "9999"), ("host", "10000"), ("arbiter", "10000")]


def run_parties(flow, conf: Path, dsl: Path, job_id: str, homes: dict[str, Path] | None = None,
                extra_env: dict[str, str] | None = None) -> list[tuple[int, str]]:
    """Start every party's `flow job run` at once; (exit code, stderr tail) per party."""
    procs = []
    for role, pid in PARTIES:
        env = dict(flow.env, FLOW_HOME=str((homes or {}).get(pid, flow.home)), **(extra_env or {}))
        err = conf.parent / f"{job_id}_{role}.err"
        with open(err, "w") as fh:  # files, not pipes: a full pipe would block a chatty party
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "flow.cli.main", "job", "run", "-c", conf, "-d", dsl, "-j", job_id,
                 "-r", role, "-p", pid], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh), err))
    return [(p.wait(timeout=600), err.read_text()[-3000:]) for p, err in procs]


def test_three_separately_started_parties_train_the_same_model(breast, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=5, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl)
    reference = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert reference["status"] == "success"
    results = run_parties(breast, c, d, "run_by_party_1")
    assert [code for code, _ in results] == [0, 0, 0], [err for _, err in results]
    for role, pid in (("guest", "9999"), ("host", "10000")):
        mine = breast.ok("tracking", "output-model", "-j", "run_by_party_1", "-r", role, "-p", pid,
                         "-cpn", "hetero_lr_0")["model"]
        ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                        "-cpn", "hetero_lr_0")["model"]
        np.testing.assert_allclose(mine["weights"], ref["weights"], atol=1e-8)
    # each party removed its own channels when its share ended
    assert not (breast.home / "federation" / "run_by_party_1").exists()


def test_a_party_not_in_the_job_is_refused(breast, tmp_path: Path):
    conf, dsl = load_example("hetero_lr")
    c, d = write_job(tmp_path, conf, dsl)
    res = breast("job", "run", "-c", c, "-d", d, "-j", "x1", "-r", "host", "-p", "10001")
    assert res.code == 2 and "host:10001" in res.out["retmsg"]


def _org_home(root: Path, party_id: str, federation: dict) -> Path:
    """One organisation's own home: its service conf, its keys, nothing shared."""
    import yaml

    home = root / f"org_{party_id}"
    home.mkdir()
    conf = {"default_engines": {"federation": federation["engine"]},
            "federation": {federation["engine"]: federation["settings"]},
            "route_table": "route_table.yaml"}
    (home / "service_conf.yaml").write_text(yaml.safe_dump(conf))
    return home


def _exchange_public_keys(homes: dict[str, Path]) -> None:
    """What organisations do out of band: each hands the others its public key."""
    from federation.auth import KeyStore, RouteTable

    table = RouteTable.from_dict({"parties": {
        pid: {"public_key": KeyStore(home).load_or_create(pid).public_key_b64} for pid, home in homes.items()}})
    for home in homes.values():
        table.dump(home / "route_table.yaml")


BROKERS = {
    "rabbitmq": lambda: {"engine": "rabbitmq", "settings": {"host": "127.0.0.1", "port": 5672, "user": "guest",
                                                             "password": "guest", "vhost": "/"}},
}


@pytest.fixture
def broker_settings(request, tmp_path: Path):
    """The federation section for one broker; Pulsar gets a pulsar-lite broker of its own."""
    if request.param == "pulsar":
        from tests.pulsar_broker import PulsarLiteBroker, require_broker

        require_broker()
        with PulsarLiteBroker(tmp_path / "pulsar-lite") as broker:
            yield {"engine": "pulsar", "settings": {"service_url": broker.url}, "restart": broker.restart}
        return
    yield BROKERS[request.param]()


@pytest.mark.parametrize("broker_settings", ["rabbitmq", "pulsar"], indirect=True)
def test_parties_sharing_nothing_but_the_broker_train_the_standalone_model(breast, tmp_path: Path, broker_settings):
    from .conftest import EXAMPLES

    broker = broker_settings["engine"]

    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=5, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl)
    reference = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert reference["status"] == "success"

    homes = {pid: _org_home(tmp_path, pid, broker_settings) for pid in ("9999", "10000")}
    _exchange_public_keys(homes)
    guest, host = type(breast)(homes["9999"]), type(breast)(homes["10000"])
    guest.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    host.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    job_id = f"apart_{broker}_{tmp_path.name[-12:]}".replace("-", "_")
    results = run_parties(breast, c, d, job_id, homes=homes)
    assert [code for code, _ in results] == [0, 0, 0], [err for _, err in results]

    for role, pid, cli in (("guest", "9999", guest), ("host", "10000", host)):
        mine = cli.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid, "-cpn", "hetero_lr_0")
        ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                        "-cpn", "hetero_lr_0")
        np.testing.assert_allclose(mine["model"]["weights"], ref["model"]["weights"], atol=1e-8)
    # each organisation holds only its own tables and model parts
    assert not (homes["9999"] / "data" / "experiment" / "breast_hetero_host").exists()
    assert not (homes["10000"] / "data" / "experiment" / "breast_hetero_guest").exists()
    assert not (homes["9999"] / "models" / job_id / "host").exists()
    assert not (homes["10000"] / "models" / job_id / "guest").exists()
    assert not (homes["9999"] / "federation").exists() and not (homes["10000"] / "federation").exists()
    if broker == "rabbitmq":  # every party deleted the queues it reads once its share ended
        assert _rabbitmq_queues_of(job_id) == []


def _rabbitmq_queues_of(job_id: str) -> list[str]:
    out = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    return [name for name in out.split() if name.endswith(f".{job_id}")]


def _restart_rabbitmq(outage_s: float = 3.0) -> None:
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120)
    try:
        time.sleep(outage_s)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120)


def _restart_broker_when_training(home: Path, job_id: str, done: list, restart) -> None:
    """Restart the broker once the host's HeteroLR is a few iterations in."""
    from flow.store import Store

    store, end = Store.for_home(home), time.monotonic() + 300
    while time.monotonic() < end:
        try:
            tasks = store.tasks(job_id, "host", "10000")
        except Exception:  # noqa: BLE001 - the job may not be recorded yet
            tasks = []
        if any(t["component"] == "hetero_lr_0" and t["progress"] >= 30 for t in tasks):
            break
        time.sleep(0.1)
    else:
        return
    restart()
    done.append(time.monotonic())


@pytest.mark.parametrize("broker_settings", ["rabbitmq", "pulsar"], indirect=True)
def test_broker_restart_mid_training_loses_nothing(breast, tmp_path: Path, broker_settings):
    """The broker goes away in the middle of HeteroLR; the job still succeeds with the
    model of an undisturbed run: nothing lost, nothing applied twice."""
    import threading

    from .conftest import EXAMPLES

    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=10, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl)
    reference = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    homes = {pid: _org_home(tmp_path, pid, broker_settings) for pid in ("9999", "10000")}
    _exchange_public_keys(homes)
    type(breast)(homes["9999"]).upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    host = type(breast)(homes["10000"])
    host.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    job_id = f"restart_{tmp_path.name[-12:]}".replace("-", "_")
    restarted: list = []
    restart = broker_settings.get("restart", _restart_rabbitmq)
    disturb = threading.Thread(target=_restart_broker_when_training, args=(homes["10000"], job_id, restarted, restart))
    disturb.start()
    try:
        results = run_parties(breast, c, d, job_id, homes=homes)
    finally:
        disturb.join()
    assert restarted, "the broker was never restarted during training"
    assert [code for code, _ in results] == [0, 0, 0], [err for _, err in results]
    mine = host.ok("tracking", "output-model", "-j", job_id, "-r", "host", "-p", "10000", "-cpn", "hetero_lr_0")
    ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", "host", "-p", "10000",
                    "-cpn", "hetero_lr_0")
    np.testing.assert_allclose(mine["model"]["weights"], ref["model"]["weights"], atol=1e-8)
    assert mine["model"]["iters"] == ref["model"]["iters"] == 10
