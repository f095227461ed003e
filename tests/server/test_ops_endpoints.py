"""The flow server's operations endpoints: /healthz and /readyz without a token, /metrics
with one, readiness naming what is down without its secrets, and counters that a real job
(run by its own processes, as always) moves: jobs by state, bytes and messages per peer,
task durations, Paillier operations."""

from __future__ import annotations

import re
import socket
import warnings
from pathlib import Path

import pytest

from flow.core.settings import ServiceConf
from flow.server.ops_routes import _clean

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytest.importorskip("prometheus_client")

TOKEN = "s3cret-token-for-ops"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FLOW_HOME", str(home))
    return home


def _client(conf: ServiceConf) -> TestClient:
    from flow.server.app import create_app

    return TestClient(create_app(conf, TOKEN, detect=False))


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Prometheus text format -> {(name, labels): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        assert m, line
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(found: dict, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in found.items() if n == name and want <= ls)


def test_healthz_and_readyz_need_no_token_metrics_does(home: Path):
    with _client(ServiceConf()) as client:
        assert client.get("/healthz").json()["status"] == "ok"
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert {k: v["ok"] for k, v in ready.json()["checks"].items()} == {
            "store": True, "transport": True, "storage": True}
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        got = client.get("/metrics", headers=AUTH)
        assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain")
        found = samples(got.text)
        assert total(found, "fedweave_jobs", state="running") == 0.0
        assert {dict(ls)["state"] for n, ls in found if n == "fedweave_jobs"} >= {"waiting", "running", "success"}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed


def test_readyz_names_what_is_down_without_its_secret(home: Path):
    conf = ServiceConf(default_engines={"federation": "rabbitmq"},
                       federation={"rabbitmq": {"host": "127.0.0.1", "port": _closed_port(), "user": "fed",
                                                "password": "hunter2-not-shown"}})
    with _client(conf) as client:
        ready = client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["store"]["ok"] and checks["storage"]["ok"]
    assert not checks["transport"]["ok"] and "ConnectionRefusedError" in checks["transport"]["error"]
    assert "hunter2" not in ready.text


def test_credentials_in_urls_are_cut_from_reasons():
    assert _clean("cannot reach amqp://fed:pw@host:5672/x\nand more") == "cannot reach amqp://***@host:5672/x and more"


def test_counters_move_after_a_real_job(home: Path, tmp_path: Path):
    from tests.e2e.conftest import EXAMPLES, FlowCLI, load_example, with_lr_params, write_job

    home.mkdir()
    flow = FlowCLI(home)
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    with _client(ServiceConf()) as client:
        before = samples(client.get("/metrics", headers=AUTH).text)
        conf, dsl = load_example("hetero_lr")
        conf = with_lr_params(conf, max_iter=1, encrypt_param={"key_length": 512, "allow_short_key": True})
        c, d = write_job(tmp_path, conf, dsl)
        job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
        assert job["status"] == "success", job.get("reason")
        after = samples(client.get("/metrics", headers=AUTH).text)

    assert total(before, "fedweave_jobs", state="success") == 0 and total(after, "fedweave_jobs", state="success") == 1
    sent = {peer: total(after, "fedweave_federation_sent_bytes_total", peer_role=role, peer=peer.split("-")[1])
            for peer, role in (("guest-9999", "guest"), ("host-10000", "host"), ("arbiter-10000", "arbiter"))}
    assert all(v > 0 for v in sent.values()), sent
    # every message sent in a successful standalone job was received once, by processes of this home
    for what in ("bytes", "messages"):
        out = total(after, f"fedweave_federation_sent_{what}_total", transport="standalone")
        came = total(after, f"fedweave_federation_received_{what}_total", transport="standalone")
        assert out == came > 0, what
    assert total(after, "fedweave_federation_receive_wait_seconds_count", peer_role="guest") > 0
    # each party's task of each component is timed once
    assert total(after, "fedweave_task_duration_seconds_count", module="HeteroLR", role="guest") == 1
    assert total(after, "fedweave_task_duration_seconds_count", module="HeteroLR") == 3  # guest, host, arbiter
    assert total(after, "fedweave_paillier_operations_total", operation="encrypt") > 0
    assert total(after, "fedweave_paillier_operations_total", operation="decrypt") > 0
    assert total(after, "fedweave_store_statement_seconds_count", process="party") > 0
    # every series the shipped Grafana dashboard draws is one the server exports
    dashboard = (Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "fedweave.json").read_text()
    drawn = set(re.findall(r"fedweave_\w+", dashboard)) - {"fedweave_party"}
    exported = {name for name, _ in after}
    assert drawn and drawn <= exported, drawn - exported


def test_compacting_ended_processes_keeps_every_sum(tmp_path: Path):
    """Counts of processes that ended fold into one file per kind; the scraped sums stay."""
    import subprocess
    import sys

    from flow.runtime import metrics
    from flow.server.ops_routes import exposition
    from flow.store import Store

    script = ("import sys; from pathlib import Path; from flow.runtime import metrics; "
              "h = metrics.enable(Path(sys.argv[1]), 'party'); h.sent('standalone', 'host-10000', 100, 2); "
              "h.waited('standalone', 'host-10000', 0.3); h.paillier('encrypt', 7); h.flush()")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    folder = metrics.metrics_dir(tmp_path)
    conf = ServiceConf(home=str(tmp_path))
    store = Store(conf.database_url)
    before = samples(exposition(conf, store)[0].decode())
    assert total(before, "fedweave_federation_sent_bytes_total", peer="10000") == 300
    assert len(list(folder.glob("counter_*.db"))) == 3
    assert metrics.compact(folder) == 6  # three counter and three histogram files
    assert sorted(p.name for p in folder.iterdir()) == ["counter_0.db", "histogram_0.db"]
    assert samples(exposition(conf, store)[0].decode()) == before
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, timeout=120)
    metrics.compact(folder)  # folds into the existing file
    again = samples(exposition(conf, store)[0].decode())
    assert total(again, "fedweave_paillier_operations_total", operation="encrypt") == 28
    assert total(again, "fedweave_federation_receive_wait_seconds_count", peer_role="host") == 4
