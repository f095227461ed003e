"""Three organisations deployed from one consortium file as containers of the local Docker
engine (guest 9999, host 10000, arbiter 10001), meeting over the host's bundled broker
(`broker: bundled`: the image `make broker-image` builds, on a port of its own, as this
machine's RabbitMQ holds 5672; guest and arbiter get their users there by the lines of the
host bundle's README): the image builds with no network call; `flow cluster install`
runs each party's bundle; hetero_lr submitted to the guest's server trains the standalone
model; logs and metrics tell what happened; an upgrade and a delete --keep-data keep the
job history, the models and the broker's users."""

from __future__ import annotations

import secrets
import shlex
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from flow.ops.manifests import BUNDLED_VHOST, RABBITMQ_IMAGE, RABBITMQ_VERSION
from tests.e2e.conftest import EXAMPLES, FlowCLI, load_example, with_lr_params, write_job
from tests.hive_server import free_port

from .conftest import REPOSITORY, TAGS

pytestmark = pytest.mark.e2e

PARTIES = {"guest": "9999", "host": "10000", "arbiter": "10001"}
HOST = PARTIES["host"]


def test_the_image_is_built_from_local_wheels_runs_as_non_root_and_checks_its_health(image, docker_client):
    cfg = image.attrs["Config"]
    print(f"\nimage {REPOSITORY}:{TAGS[0]}: {image.attrs['Size'] / 2**20:.0f} MiB")
    assert cfg["User"] == "10001:10001"
    assert cfg["Entrypoint"] == ["flow", "server", "start"]
    assert "/healthz" in " ".join(cfg["Healthcheck"]["Test"])
    assert "/var/lib/fedweave" in (cfg.get("Volumes") or {})
    assert cfg["Env"] and "FLOW_HOME=/var/lib/fedweave" in cfg["Env"]
    assert _run(docker_client, image, "id").split()[:2] == ["uid=10001(fedweave)", "gid=10001(fedweave)"]
    assert "cluster" in _run(docker_client, image, "flow", "--help")  # the project's CLI, from the wheels


def test_the_broker_image_runs_the_pinned_rabbitmq_as_non_root_and_refuses_no_password(broker_image, docker_client):
    cfg = broker_image.attrs["Config"]
    print(f"\nimage {RABBITMQ_IMAGE}: {broker_image.attrs['Size'] / 2**20:.0f} MiB")
    assert cfg["User"] == "10002:10002" and cfg["Entrypoint"] == ["fedweave-rabbitmq"]
    assert cfg["Healthcheck"]["Test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]
    assert "/var/lib/rabbitmq" in (cfg.get("Volumes") or {})
    version = cfg["Labels"]["org.opencontainers.image.version"]  # the build checked dpkg's own record
    assert version == RABBITMQ_VERSION and RABBITMQ_IMAGE.endswith(":" + version.replace("+", "-"))
    box = docker_client.containers.run(broker_image.id, network_mode="none", detach=True,
                                       environment={"RABBITMQ_DEFAULT_USER": "u"})
    try:
        assert box.wait(timeout=60)["StatusCode"] == 2
        assert "RABBITMQ_DEFAULT_PASS is not set" in box.logs().decode()
    finally:
        box.remove(v=True)


def _run(client, image, *entrypoint: str) -> str:
    """What a command prints in a container of the image; the container and its volume removed."""
    box = client.containers.run(image.id, entrypoint=list(entrypoint), network_mode="none", detach=True)
    try:
        assert box.wait(timeout=120)["StatusCode"] == 0
        return box.logs().decode()
    finally:
        box.remove(v=True)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))  # noqa: S104 - as the broker will
        except OSError:
            return False
    return True


def _broker_port() -> int:
    """A free port for the bundled broker whose Erlang distribution port (it + 20000) is free too."""
    for _ in range(50):
        port = free_port() % 25000 + 15000
        if _bindable(port) and _bindable(port + 20000):
            return port
    raise AssertionError("no free port pair (P, P + 20000) for the bundled broker")


@pytest.fixture(scope="module")
def consortium(image, broker_image, docker_client, tmp_path_factory):
    """The consortium file and, per party, its organisation's home (its key) and port. The
    host runs the bundled broker; guest and arbiter receive on it too, each as its own user."""
    root = tmp_path_factory.mktemp("consortium")
    orgs = {pid: FlowCLI(_mkdir(root / f"org_{pid}")) for pid in PARTIES.values()}
    ports = {pid: free_port() for pid in PARTIES.values()}
    broker_port = _broker_port()
    peers = {pid: {"user": f"fw_{pid}", "password": secrets.token_urlsafe(18)} for pid in PARTIES.values()
             if pid != HOST}

    def federation(pid: str) -> dict:
        if pid == HOST:
            return {"engine": "rabbitmq", "broker": "bundled", "broker_port": broker_port, "allow_insecure": True}
        return {"engine": "rabbitmq", "allow_insecure": True,
                "broker": {"host": "127.0.0.1", "port": broker_port, "vhost": BUNDLED_VHOST, **peers[pid]}}

    spec = {"name": "e2e", "image": {"repository": REPOSITORY, "tag": TAGS[0]}, "parties": [
        {"id": int(pid), "organisation": f"{role} org", "address": {"host": "127.0.0.1", "port": ports[pid]},
         "public_key": orgs[pid].ok("party", "init", "--party-id", pid)["public_key"],
         "engines": {"federation": federation(pid)}}
        for role, pid in PARTIES.items()]}
    path = root / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    yield {"path": path, "orgs": orgs, "ports": ports, "root": root, "peers": peers, "broker_port": broker_port}
    for pid in sorted(orgs, key=lambda p: p == HOST):  # the broker's party last
        orgs[pid]("cluster", "delete", "-f", path, "--party", pid)


def _mkdir(p: Path) -> Path:
    p.mkdir()
    return p


def _cluster(c: dict, pid: str, *args) -> dict:
    return c["orgs"][pid].ok("cluster", *args, "-f", c["path"], "--party", pid, timeout=900)


def _client(c: dict, pid: str, name: str) -> FlowCLI:
    """A CLI pointed at party ``pid``'s server with its bundle's token."""
    cli = FlowCLI(_mkdir(c["root"] / f"client_{pid}_{name}"))
    token = (c["path"].parent / f"bundle-{pid}" / "home" / "server_token").read_text().strip()
    assert cli.ok("init", "--ip", "127.0.0.1", "--port", c["ports"][pid], "--token", token)["reachable"]
    return cli


def _broker(docker_client):
    return docker_client.containers.get(f"e2e-{HOST}-rabbitmq")


def _add_peer_users(c: dict, docker_client) -> None:
    """Guest's and arbiter's users on the host's broker, by the rabbitmqctl lines of the host
    bundle's README (its placeholder the password each uses on every broker)."""
    lines = [ln for ln in (c["path"].parent / f"bundle-{HOST}" / "README.md").read_text().splitlines()
             if ln.startswith("rabbitmqctl ")]
    assert len(lines) == 3 * len(c["peers"]), lines  # add_user, set_permissions, set_topic_permissions
    for line in lines:
        for pid, cred in c["peers"].items():
            line = line.replace(f"'<password party {pid} uses on every broker>'", cred["password"])
        res = _broker(docker_client).exec_run(shlex.split(line))
        assert res.exit_code == 0, (line, res.output.decode())


@pytest.fixture(scope="module")
def deployed(consortium, docker_client):
    """All three parties installed and ready, the host (and its broker) first; the tables
    uploaded through the servers and the host's granted to the guest."""
    for pid in sorted(PARTIES.values(), key=lambda p: p != HOST):
        out = _cluster(consortium, pid, "install")
        assert out["ready"] is True and out["bundle_was"] == "generated", out
        print(f"party {pid}: {out['seconds_to_ready']} s from install to ready ({', '.join(out['containers'])})")
        if pid == HOST:
            assert out["containers"] == [f"e2e-{HOST}-rabbitmq", f"e2e-{HOST}-server"]
            _add_peer_users(consortium, docker_client)
    clients = {pid: _client(consortium, pid, "first") for pid in PARTIES.values()}
    clients["9999"].upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    clients["10000"].upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    clients["10000"].ok("privilege", "grant", "--party", "9999", "--namespace", "experiment",
                        "--name", "breast_hetero_host")
    return {**consortium, "clients": clients}


def _job(tmp_path: Path, tag: str, **lr) -> tuple[Path, Path]:
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, **{"max_iter": 3, "encrypt_param": {"key_length": 512, "allow_short_key": True}, **lr})
    conf["role"]["arbiter"] = [int(PARTIES["arbiter"])]
    return write_job(tmp_path, conf, dsl, tag)


def _metrics(c: dict, pid: str) -> dict[str, float]:
    """Every sample of the party's /metrics summed by metric name."""
    token = (c["path"].parent / f"bundle-{pid}" / "home" / "server_token").read_text().strip()
    text = httpx.get(f"http://127.0.0.1:{c['ports'][pid]}/metrics", headers={"Authorization": f"Bearer {token}"},
                     timeout=10).text
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
    return out


def _weights(cli: FlowCLI, job_id: str, role: str) -> list[float]:
    return cli.ok("tracking", "output-model", "-j", job_id, "-r", role, "-p", PARTIES[role],
                  "-cpn", "hetero_lr_0")["model"]["weights"]


@pytest.fixture(scope="module")
def trained(deployed, tmp_path_factory):
    """hetero_lr through the guest's server, and the same job standalone alongside."""
    tmp = tmp_path_factory.mktemp("jobs")
    before = {pid: _metrics(deployed, pid) for pid in ("9999", "10000")}
    reference = FlowCLI(_mkdir(tmp / "standalone"))
    reference.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    reference.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    c, d = _job(tmp, "ok")
    ref_id = reference.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    detail = deployed["clients"]["9999"].ok("job", "submit", "-c", c, "-d", d, "--wait", timeout=900)
    assert reference.wait(ref_id)["status"] == "success"
    return {"job_id": detail["job_id"], "detail": detail, "reference": reference, "ref_id": ref_id,
            "before": before, "tmp": tmp}


def test_hetero_lr_through_the_guests_container_trains_the_standalone_model(deployed, trained):
    assert trained["detail"]["status"] == "success", trained["detail"].get("reason")
    for role in ("guest", "host"):
        mine = _weights(deployed["clients"][PARTIES[role]], trained["job_id"], role)
        ref = _weights(trained["reference"], trained["ref_id"], role)
        np.testing.assert_allclose(mine, ref, atol=1e-8)


def test_cluster_logs_show_the_hosts_server_and_metrics_moved(deployed, trained):
    host = deployed["orgs"]["10000"]
    res = host("cluster", "logs", "--file", deployed["path"], "--party", "10000", "--tail", "500")
    assert res.code == 0, res.err
    text = res.out.get("raw", "")
    assert f"listening on http://0.0.0.0:{deployed['ports']['10000']}" in text  # the host's server, its port
    since = host("cluster", "logs", "--file", deployed["path"], "--party", "10000", "--since", "1s", "--tail", "5")
    assert since.code == 0 and len(since.out.get("raw", "").splitlines()) <= 5
    for pid in ("9999", "10000"):
        before, after = trained["before"][pid], _metrics(deployed, pid)
        sent = [k for k in after if k.startswith("fedweave_federation_sent_messages")]
        assert sent and sum(after[k] for k in sent) > sum(before.get(k, 0.0) for k in sent), (pid, after)
        assert after.get("fedweave_jobs", 0) > before.get("fedweave_jobs", 0)
    bad = host("cluster", "logs", "--file", deployed["path"], "--party", "10000", "--since", "yesterday")
    assert bad.code == 2 and "--since yesterday" in bad.err


def test_the_hosts_container_killed_mid_training_fails_the_job_and_rerun_completes_it(
        deployed, trained, docker_client):
    guest, hclient = deployed["clients"]["9999"], deployed["clients"]["10000"]
    c, d = _job(trained["tmp"], "killed", max_iter=10, tol=1e-12)
    job_id = guest.ok("job", "submit", "-c", c, "-d", d)["job_id"]
    end = time.monotonic() + 300
    while time.monotonic() < end:  # until the host is into training
        res = hclient("job", "query", "-j", job_id)
        if res.code == 0 and any(t["component"] == "hetero_lr_0" and t["status"] == "running"
                                 for t in res.data["tasks"]):
            break
        time.sleep(0.5)
    else:
        pytest.fail("the host never started training")
    box = docker_client.containers.get("e2e-10000-server")
    box.kill()  # the host's machine goes down: its server and the job's processes with it
    box.start()
    end = time.monotonic() + 300
    detail = guest.ok("job", "query", "-j", job_id)
    while detail["status"] not in ("failed", "success", "canceled", "timeout") and time.monotonic() < end:
        time.sleep(1)
        detail = guest.ok("job", "query", "-j", job_id)
    assert detail["status"] == "failed" and "party 10000 failed" in detail["reason"], detail
    done = guest.ok("job", "rerun", "-j", job_id, "--wait", timeout=900)
    assert done["status"] == "success", done


def test_describe_names_each_party_s_server_its_image_and_health(deployed):
    out = _cluster(deployed, "10001", "describe")
    assert out["installed"] is True and out["ready"] is True
    [server] = out["services"]
    assert server["component"] == "server" and server["state"] == "running"
    assert server["image"] == f"{REPOSITORY}:{TAGS[0]}" and server["version"] == TAGS[0]
    assert server["volumes"] == ["e2e-10001-home"]


def test_an_upgrade_waits_for_running_jobs_and_keeps_history_and_models(deployed, trained):
    host, path = deployed["orgs"]["10000"], deployed["path"]
    c, d = _job(trained["tmp"], "long", max_iter=15, tol=1e-12)
    long_id = deployed["clients"]["9999"].ok("job", "submit", "-c", c, "-d", d)["job_id"]
    hclient = deployed["clients"]["10000"]
    for _ in range(300):  # until the host has the job (accepted, waiting or running)
        if hclient("job", "query", "-j", long_id).code == 0:
            break
        time.sleep(0.2)
    refused = host("cluster", "upgrade", "-f", path, "--party", "10000", "--version", TAGS[1])
    assert refused.code != 0 and long_id in refused.err and "--drain" in refused.err, refused.err
    done = host.ok("cluster", "upgrade", "-f", path, "--party", "10000", "--version", TAGS[1], "--drain",
                   timeout=900)
    assert done["to"] == f"{REPOSITORY}:{TAGS[1]}" and done["ready"] is True and long_id in done["drained_jobs"]
    print(f"upgrade: {done['seconds']} s (after {done['drain_seconds']} s of draining)")
    assert deployed["clients"]["9999"].wait(long_id)["status"] == "success"

    after = _client(deployed, "10000", "upgraded")
    assert after.ok("job", "query", "-j", trained["job_id"])["status"] == "success"
    np.testing.assert_allclose(_weights(after, trained["job_id"], "host"),
                               _weights(trained["reference"], trained["ref_id"], "host"), atol=1e-8)
    services = {s["component"]: s for s in _cluster(deployed, "10000", "describe")["services"]}
    assert services["server"]["version"] == TAGS[1]
    broker = services["rabbitmq"]  # the broker is not replaced by a server's upgrade
    assert broker["image"] == RABBITMQ_IMAGE and broker["state"] == "running" and broker["health"] == "healthy"


def test_delete_keep_data_then_install_again_keeps_the_job_history(deployed, trained, docker_client):
    host, path = deployed["orgs"]["10000"], deployed["path"]
    gone = host.ok("cluster", "delete", "-f", path, "--party", "10000", "--keep-data")
    assert gone["removed_containers"] == ["e2e-10000-rabbitmq", "e2e-10000-server"]
    assert gone["kept_volumes"] == ["e2e-10000-home", "e2e-10000-rabbitmq"]
    assert _cluster(deployed, "10000", "describe")["installed"] is False
    again = _cluster(deployed, "10000", "install", "--image", f"{REPOSITORY}:{TAGS[1]}")
    assert again["ready"] is True and again["bundle_was"] == "found" and again["image"].endswith(TAGS[1])
    back = _client(deployed, "10000", "reinstalled")
    assert back.ok("job", "query", "-j", trained["job_id"])["status"] == "success"
    assert {t["name"] for t in back.ok("table", "list")} >= {"breast_hetero_host"}
    users = _broker(docker_client).exec_run(["rabbitmqctl", "-q", "list_users"]).output.decode()
    assert {"fw_9999", "fw_10000", "fw_10001"} <= {ln.split()[0] for ln in users.splitlines() if ln.strip()}
    twice = host("cluster", "install", "-f", path, "--party", "10000")
    assert twice.code != 0 and "installed already" in twice.err


def test_lifecycle_refusals_are_one_line(deployed, tmp_path):
    org = deployed["orgs"]["9999"]
    res = org("cluster", "install", "-f", deployed["path"], "--party", "424242")
    assert res.code == 2 and "424242 is not a party of consortium 'e2e'" in res.err
    res = org("cluster", "install", "-f", deployed["path"], "--party", "9999", "--target", "k8s",
              "--kubeconfig", str(tmp_path / "no-such-kubeconfig"))
    assert res.code != 0 and "no usable kubeconfig" in res.err and "--kubeconfig" in res.err
    res = org("cluster", "upgrade", "-f", deployed["path"], "--party", "9999", "--version", "no-such-tag")
    assert res.code != 0 and "no-such-tag" in res.err
    [server] = _cluster(deployed, "9999", "describe")["services"]  # the refused upgrade left it as it was
    assert server["state"] == "running" and server["version"] == TAGS[0]
