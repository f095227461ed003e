"""A real `flow server start` on 127.0.0.1 and the CLI pointed at it with `flow init`:
the same job gives the same model as standalone, logs stream while a job runs, the
server's job detector fails a job whose processes were killed, and schedules,
privileges and the audit log are run by the server."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from .conftest import EXAMPLES, ROOT, InProcessCLI, load_example, with_lr_params, write_job

pytestmark = pytest.mark.e2e

TOKEN = "e2e-server-token"
FINAL = ("success", "failed", "canceled", "timeout")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A flow server of its own home on a free port; yields (home, port)."""
    home = tmp_path_factory.mktemp("server_home")
    (home / "service_conf.yaml").write_text(yaml.safe_dump({"server": {"token": TOKEN, "detect_interval": 0.5,
                                                                             "schedule_interval": 0.5}}))
    env = dict(os.environ, FLOW_HOME=str(home))
    env.pop("FEDWEAVE_SERVICE_CONF", None)
    log = open(home / "server.err", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flow.cli.main", "server", "start", "--port", "0"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    info = home / "server.json"
    end = time.monotonic() + 60
    while not info.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.1)
    assert info.exists(), f"the server did not start: {(home / 'server.err').read_text()}"
    yield home, json.loads(info.read_text())["port"]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    log.close()
    assert proc.returncode == 0 and json.loads(out)["data"]["stopped"] is True
    assert not info.exists()  # a stopped server leaves no address behind


@pytest.fixture(scope="module")
def client(server, tmp_path_factory) -> InProcessCLI:
    """A CLI home that holds nothing but `flow init`'s pointer to the server, which holds
    the breast tables (uploaded through it)."""
    home = tmp_path_factory.mktemp("client_home")
    cli = InProcessCLI(home)
    res = cli.ok("init", "--ip", "127.0.0.1", "--port", server[1], "--token", TOKEN)
    assert res["reachable"] is True
    cli.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    cli.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    return cli


def _store(home: Path):
    from flow.store import Store

    return Store.for_home(home)


@pytest.fixture(scope="module")
def server_job(client, tmp_path_factory) -> tuple[dict, Path, Path]:
    """The hetero LR example trained through the server (4 iterations, 512-bit key): its
    detail as `job submit --wait` printed it, and its conf and dsl files."""
    conf, dsl = load_example("hetero_lr")
    c, d = write_job(tmp_path_factory.mktemp("server_job"),
                     with_lr_params(conf, max_iter=4, encrypt_param={"key_length": 512, "allow_short_key": True}), dsl)
    return client.ok("job", "submit", "-c", c, "-d", d, "--wait"), c, d


def test_a_job_submitted_through_the_server_trains_the_standalone_model(breast, client, server, server_job,
                                                                        tmp_path):
    detail, c, d = server_job
    reference = breast.ok("job", "submit", "-c", c, "-d", d)  # the same files standalone (no flow init there)
    job_id = detail["job_id"]
    assert detail["status"] == "success" and {t["status"] for t in detail["tasks"]} == {"success"}
    assert breast.wait(reference["job_id"])["status"] == "success"

    for role, pid in (("guest", "9999"), ("host", "10000")):
        mine = client.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", pid, "-cpn", "hetero_lr_0")
        ref = breast.ok("tracking", "output-model", "-j", reference["job_id"], "-r", role, "-p", pid,
                        "-cpn", "hetero_lr_0")
        np.testing.assert_allclose(mine["model"]["weights"], ref["model"]["weights"], atol=1e-8)
    mine = client.ok("tracking", "metrics", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "evaluation_0")
    ref = breast.ok("tracking", "metrics", "-j", reference["job_id"], "-r", "guest", "-p", "9999",
                    "-cpn", "evaluation_0")
    assert mine["evaluation"].keys() == ref["evaluation"].keys()
    for name in ("auc", "ks", "accuracy"):
        assert mine["evaluation"][name] == pytest.approx(ref["evaluation"][name], abs=1e-9)

    # output tables come over as CSV into the client's folder
    out = client.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999", "-cpn", "hetero_lr_0",
                    "-o", tmp_path / "out", "--limit", "3")
    written = Path(out[0]["file"]).read_text().splitlines()
    assert len(out[0]["rows"]) == 3 and len(written) == out[0]["count"] + 1
    # the server holds the data and the job; the client's home only its pointer
    server_home = server[0]
    assert (server_home / "data" / "experiment" / "breast_hetero_guest").exists()
    assert sorted(p.name for p in client.home.iterdir()) == ["cli.yaml"]
    assert not (breast.home / "cli.yaml").exists()
    assert job_id in [j["job_id"] for j in client.ok("job", "list")]
    logs = client("job", "logs", "-j", job_id, "-cpn", "hetero_lr_0", "-r", "guest")
    from flow.runtime.logs import read_logs

    assert logs.code == 0 and logs.out["raw"].splitlines() == list(read_logs(server_home, job_id, "guest", None,
                                                                             "hetero_lr_0"))
    assert "[guest 9999 hetero_lr_0]" in logs.out["raw"] and "success" in logs.out["raw"]
    status = client.ok("server", "status")
    assert status["server"]["port"] == server[1] and status["transport"]["engine"] == "standalone"
    assert status["store"]["url"].startswith("sqlite") and status["engines"]["default"]["computing"] == "local"
    assert status["server"]["detector"]["sweeps"] >= 1 and status["server"]["schedules"]["alive"] is True


def test_models_are_the_servers_and_archives_travel_over_http(client, server, server_job, tmp_path):
    """`flow model` after `flow init` works on the server's model store: the job trained there
    is listed and deployed (predict files written here), exported (the archive's bytes come
    here) and imported back (the archive goes up) as in standalone mode."""
    from federation.api import Party
    from flow.governance.trail import home_logs
    from flow.models.store import ModelStore, sha256

    job_id, server_home = server_job[0]["job_id"], server[0]
    store = ModelStore(server_home)
    listed = client.ok("model", "list")
    assert listed == json.loads(json.dumps(store.list()))
    (mine,) = [m for m in listed if m["model_version"] == job_id]
    mid = mine["model_id"]
    assert sorted(mine["parties"]) == ["arbiter:10000", "guest:9999", "host:10000"]

    deployed = client.ok("model", "deploy", "-j", job_id, "-o", tmp_path / "deploy")
    predict_dsl = json.loads((EXAMPLES / "hetero_lr_predict" / "dsl.json").read_text())
    assert deployed["predict_dsl"] == predict_dsl  # as standalone deploys the same training DSL
    assert json.loads((tmp_path / "deploy" / "predict_dsl.json").read_text()) == predict_dsl
    assert store.deployment(mid, job_id)["cpn_list"] == deployed["cpn_list"] == list(predict_dsl["components"])
    assert client.ok("model", "list", "--model-id", mid)[0]["deployed"]["cpn_list"] == deployed["cpn_list"]

    archive = tmp_path / "out" / "guest.zip"
    exported = client.ok("model", "export", "-j", job_id, "-r", "guest", "-p", "9999", "-o", archive)
    assert exported["file"] == str(archive) and exported["sha256"] == sha256(archive.read_bytes())
    assert exported["parties"] == ["guest:9999"] and exported["model_version"] == job_id
    with zipfile.ZipFile(archive) as zf:
        assert json.loads(zf.read("manifest.json"))["parties"] == ["guest:9999"]
    audited = [e["details"] for log in home_logs(server_home) for e in log.entries(job=job_id, kind="model.export")]
    assert [a["sha256"] for a in audited] == [exported["sha256"]]  # the server's log, not the client's
    assert sorted(p.name for p in client.home.iterdir()) == ["cli.yaml"]
    bad = client("model", "export", "-j", job_id, "-r", "guest", "-o", tmp_path / "x.zip")
    assert bad.code != 0 and "--party-id" in bad.out["retmsg"] and not (tmp_path / "x.zip").exists()

    guest = Party("guest", "9999")
    before = json.dumps(store.load_component(mid, job_id, guest, "hetero_lr_0"), default=list)
    again = client("model", "import", "-f", archive)
    assert again.code != 0 and "--force" in again.out["retmsg"]
    shutil.rmtree(store.part_dir(mid, job_id, guest))  # the server loses its guest part ...
    imported = client.ok("model", "import", "-f", archive, "--require-signed")  # ... and gets it back
    assert imported["parties"] == ["guest:9999"] and imported["file"] == str(archive)  # from the client's file
    assert imported["signed_by"] == ["9999"]  # checked on the server against the guest's own key
    assert json.dumps(store.load_component(mid, job_id, guest, "hetero_lr_0"), default=list) == before
    assert client.ok("model", "list", "--model-id", mid)[0]["components"] == mine["components"]


def _follow(job_id: str, port: int, lines: queue.Queue) -> None:
    """What `flow job logs -f` does in client mode, line by line into ``lines``."""
    from flow.ops.remote import RemoteOps

    try:
        for line in RemoteOps("127.0.0.1", port, TOKEN).job_logs(job_id, follow=True):
            lines.put(line)
    finally:
        lines.put(None)


def test_logs_stream_while_running_and_the_detector_fails_a_job_whose_processes_were_killed(client, server, tmp_path):
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, max_iter=500, tol=1e-12, encrypt_param={"key_length": 512, "allow_short_key": True})
    c, d = write_job(tmp_path, conf, dsl)
    job_id = client.ok("job", "submit", "-c", c, "-d", d)["job_id"]

    lines: queue.Queue = queue.Queue()
    follow = threading.Thread(target=_follow, args=(job_id, server[1], lines), daemon=True)
    follow.start()
    seen: list[str] = []
    while not any("[arbiter 10000 hetero_lr_0]" in s and "iteration" in s for s in seen[-1:]):
        line = lines.get(timeout=300)
        assert line is not None, f"logs -f ended before training: {seen[-5:]}"
        seen.append(line)
    store = _store(server[0])
    assert store.job(job_id)["status"] == "running"  # lines arrived while the job runs: streamed

    job = store.job(job_id)
    victims = [job["supervisor_pid"]] + [r["pid"] for r in store.party_runs(job_id) if r["pid"]]
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 120
    while store.job(job_id)["status"] not in FINAL and time.monotonic() < end:
        time.sleep(0.2)
    job = store.job(job_id)
    assert job["status"] == "failed" and "found by the job detector" in job["reason"], job["reason"]
    assert f"pid {victims[0]}" in job["reason"]
    assert not [t for t in store.tasks(job_id) if t["status"] in ("running", "waiting")]

    follow.join(timeout=60)
    assert not follow.is_alive()  # logs -f ends with the job
    while (line := lines.get(timeout=5)) is not None:
        seen.append(line)
    assert any("[guest 9999 reader_0]" in line for line in seen)
    detail = client.ok("job", "query", "-j", job_id)
    assert detail["status"] == "failed" and detail["reason"] == job["reason"]
    store.close()


def test_a_wrong_token_is_refused_and_reset_returns_to_standalone(server, tmp_path):
    cli = InProcessCLI(tmp_path / "other")
    cli.home.mkdir()
    res = cli.ok("init", "--ip", "127.0.0.1", "--port", server[1], "--token", "not-the-token")
    assert res["reachable"] is False and "unauthorized" in res["problem"]
    res = cli("job", "list")
    assert res.code == 2 and "unauthorized" in res.err
    cli.ok("init", "--reset")
    assert cli.ok("job", "list") == []  # standalone again: this home's own empty store


def test_privileges_and_the_audit_log_are_the_servers(client, server):
    grant = client.ok("privilege", "grant", "--party", "guest:10001", "--namespace", "experiment",
                      "--name", "breast_hetero_host")
    assert grant["party"] == "guest:10001"
    listed = client.ok("privilege", "list", "--party", "10001")
    assert [(g["party_id"], g["namespace"], g["name"]) for g in listed] == [
        ("10001", "experiment", "breast_hetero_host")]
    from flow.governance.privileges import list_privileges

    store = _store(server[0])
    assert [g["granted"].isoformat() for g in list_privileges(store, party_id="10001")] == [
        listed[0]["granted"]]  # kept in the server's store
    store.close()
    res = client("privilege", "revoke", "--party", "guest:10001", "--namespace", "experiment", "--name", "nope")
    assert res.code != 0 and "holds no grant on experiment/nope" in res.err
    client.ok("privilege", "revoke", "--party", "guest:10001", "--namespace", "experiment",
              "--name", "breast_hetero_host")
    assert client.ok("privilege", "list", "--party", "10001") == []

    entries = client.ok("audit", "list", "--kind", "privilege")
    assert [e["kind"] for e in entries] == ["privilege.grant", "privilege.revoke"]
    assert {e["actor"] for e in entries} == {"admin"}  # the user who asked the server (its token's), not its process
    assert client.ok("audit", "list", "--kind", "data.upload", "-l", "1")[0]["details"]["name"] in (
        "breast_hetero_guest", "breast_hetero_host")
    verified = client.ok("audit", "verify")
    assert verified and all(r["ok"] and r["entries"] >= 1 for r in verified)
    assert sorted(p.name for p in client.home.iterdir()) == ["cli.yaml"]  # nothing of it on the client


def test_a_schedule_added_through_the_server_fires_from_its_loop(client, server, tmp_path):
    """run-now while the first job runs queues a firing (overlap=queue); only the server's
    schedule loop can start it, once the first job has ended."""
    conf, dsl = load_example("hetero_lr")
    dsl["components"] = {k: v for k, v in dsl["components"].items() if k in ("reader_0", "data_transform_0")}
    conf["component_parameters"]["common"] = {}
    conf["component_parameters"]["role"]["host"]["0"].pop("evaluation_0")
    (tmp_path / "sched_job").mkdir()
    c, d = write_job(tmp_path / "sched_job", conf, dsl)
    added = client.ok("schedule", "add", "--cron", "0 3 1 1 *", "-c", c, "-d", d, "--name", "nightly",
                      "--overlap", "queue")  # its slot is far away: only run-now fires it here
    assert added["name"] == "nightly" and added["paused"] is False and added["next_fire"].endswith("03:00:00+00:00")
    c.unlink(), d.unlink()  # the server fires its own copy
    assert json.loads((server[0] / "schedules" / "nightly" / "dsl.json").read_text()) == dsl
    res = client("schedule", "add", "--cron", "61 * * * *", "-c", EXAMPLES / "hetero_lr" / "conf.json",
                 "-d", EXAMPLES / "hetero_lr" / "dsl.json", "--name", "bad")
    assert res.code != 0 and "61" in res.err

    first = client.ok("schedule", "run-now", "nightly")["job_id"]
    queued = client.ok("schedule", "run-now", "nightly")  # the first job has just started: queued
    assert queued["job_id"] is None and queued["queued"] is True
    end = time.monotonic() + 120
    while not (history := client.ok("schedule", "history", "nightly"))[-1]["job_id"]:
        assert time.monotonic() < end, history
        time.sleep(0.5)
    second = history[-1]["job_id"]
    history = client.ok("schedule", "history", "nightly")
    assert [f["job_id"] for f in history] == [first, second] and first != second
    for job_id in (first, second):
        detail = client.wait(job_id)
        assert detail["status"] == "success", detail
        assert {(t["role"], t["component"]) for t in detail["tasks"]} >= {("guest", "data_transform_0"),
                                                                          ("host", "data_transform_0")}
    [listed] = client.ok("schedule", "list")
    assert listed["name"] == "nightly" and listed["last_job"]["job_id"] == second
    client.ok("schedule", "pause", "nightly")
    assert client.ok("schedule", "list")[0]["next_fire"] is None
    assert client.ok("schedule", "resume", "nightly")["next_fire"] == added["next_fire"]
    assert client.ok("schedule", "remove", "nightly")["removed"] is True
    assert client.ok("schedule", "list") == [] and not (server[0] / "schedules" / "nightly").exists()
