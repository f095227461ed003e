"""The parts of `flow cluster install|logs|scale|...` that need no Docker engine and no
Kubernetes cluster: --since, the home files put into a server's volume, the objects the
k8s target applies for a bundle, the target registry and its refusals (against a
kubeconfig whose API does not answer, HTTP servers on loopback that forbid everything or
answer the object paths the way the API server does)."""

from __future__ import annotations

import http.server
import io
import json
import subprocess
import tarfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from flow.core.errors import ConfigError
from flow.ops import lifecycle
from flow.ops.lifecycle import deployment
from flow.ops.lifecycle_api import TARGETS, DeployError, parse_since, target
from flow.ops.lifecycle_docker import _tar, host_network_files
from flow.ops.lifecycle_k8s import KINDS, plan
from flow.ops.manifests import RABBITMQ_IMAGE, RABBITMQ_UID, RABBITMQ_VERSION

KEY = "J+ittBoeRn3eeOSmLUlo+r4MbapHjxRiHpdRtnzFNDo="


def test_since_takes_a_duration_back_from_now_or_an_iso_time():
    now = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("1d", now) == now - timedelta(days=1)
    assert parse_since("2026-01-01T08:00:00", now) == datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    assert parse_since(None, now) is None
    with pytest.raises(ConfigError, match="--since 10 minutes: not a duration"):
        parse_since("10 minutes", now)


def test_home_files_go_into_the_volume_owned_by_the_servers_user_with_their_modes():
    data = _tar({"service_conf.yaml": (b"mode: cluster\n", 0o644), "keys/9999.key": (b"PEM", 0o600),
                 "server_token": (b"t\n", 0o600)}, 10001, 10002)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"keys", "keys/9999.key", "service_conf.yaml", "server_token"}
        assert members["keys"].isdir() and members["keys"].mode == 0o700
        assert members["keys/9999.key"].mode == 0o600 and members["service_conf.yaml"].mode == 0o644
        assert {(m.uid, m.gid) for m in members.values()} == {(10001, 10002)}
        assert tar.extractfile("keys/9999.key").read() == b"PEM"


def _cluster(tmp_path: Path) -> Path:
    party = {"organisation": "o", "public_key": KEY,
             "engines": {"federation": {"engine": "rabbitmq", "broker": {"host": "127.0.0.1"},
                                        "allow_insecure": True}}}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({"name": "demo", "image": {"repository": "r/fw", "tag": "1.0"}, "parties": [
        {**party, "id": 9999, "address": {"host": "127.0.0.1", "port": 9380}},
        {**party, "id": 10000, "address": {"host": "127.0.0.1", "port": 9381}, "image": {"tag": "1.1"}}]}))
    return path


def test_a_deployment_names_its_image_bundle_and_labels_from_the_consortium_file(tmp_path):
    path = _cluster(tmp_path)
    dep = deployment(path, "9999")
    assert (dep.image, dep.name, dep.port) == ("r/fw:1.0", "demo-9999", 9380)
    assert dep.bundle == tmp_path / "bundle-9999"
    assert deployment(path, "10000").image == "fedweave/fedweave:1.1"  # the party's own image wins
    assert deployment(path, "9999", version="2.0").image == "r/fw:2.0"
    assert deployment(path, "9999", image="other/img:3").labels("server")["fedweave.io/version"] == "3"
    with pytest.raises(ConfigError, match="not a bundle's home"):
        dep.home_files()


@pytest.mark.parametrize("given, line", [
    ({"version": "latest"}, "--version latest: 'latest' is not a pinned image tag"),
    ({"image": "other/img:latest"}, "--image other/img:latest: 'latest' is not a pinned image tag"),
    ({"image": "other/img"}, "--image other/img: no tag; give REPOSITORY:TAG"),
    ({"image": "registry:5000/img"}, "--image registry:5000/img: no tag; give REPOSITORY:TAG"),
])
def test_an_upgrade_or_install_image_is_checked_as_the_consortium_files_is(tmp_path, given, line):
    with pytest.raises(ConfigError) as err:
        deployment(_cluster(tmp_path), "9999", **given)
    assert str(err.value).startswith(line) and "\n" not in str(err.value), err.value
    assert deployment(_cluster(tmp_path), "9999", image="registry:5000/img:2.1").image == "registry:5000/img:2.1"


def test_unknown_targets_and_options_of_another_target_are_one_clear_line(tmp_path):
    assert {"docker", "k8s"} <= set(TARGETS)
    with pytest.raises(ConfigError, match="--target nomad: unknown"):
        target("nomad")
    with pytest.raises(ConfigError, match="--kubeconfig: only for --target k8s, not docker"):
        target("docker", kubeconfig="x")
    with pytest.raises(DeployError, match="no usable kubeconfig .*missing.*give --kubeconfig"):
        target("k8s", kubeconfig=str(tmp_path / "missing"))


def test_a_bundled_broker_on_the_host_network_is_reached_on_its_published_port(tmp_path):
    from federation.auth import KeyStore
    from flow.ops.bundle import generate
    from flow.ops.cluster_conf import load_cluster

    path = _cluster(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["parties"][0]["public_key"] = None
    raw["parties"][0]["engines"] = {"federation": {"engine": "rabbitmq", "broker": "bundled", "broker_port": 5673,
                                                   "allow_insecure": True}}
    path.write_text(yaml.safe_dump(raw))
    dep = deployment(path, "9999")
    made = generate(load_cluster(path), "9999", dep.bundle, KeyStore(tmp_path / "home"))
    files = host_network_files(dep)
    conf = yaml.safe_load(files["service_conf.yaml"][0])["federation"]["rabbitmq"]
    assert (conf["host"], conf["port"], conf["user"]) == ("rabbitmq", 5673, "fw_9999")
    assert files["service_conf.yaml"][1] == 0o600 and files["keys/9999.key"][1] == 0o600
    raw["parties"][0]["public_key"], raw["parties"][1]["public_key"] = made["public_key"], None
    path.write_text(yaml.safe_dump(raw))
    plain = deployment(path, "10000")  # a party with its own broker: the files as the bundle has them
    generate(load_cluster(path), "10000", plain.bundle, KeyStore(tmp_path / "home10000"))
    raw_conf = (plain.bundle / "home" / "service_conf.yaml").read_bytes()
    assert host_network_files(plain)["service_conf.yaml"][0] == raw_conf


def _bundle(tmp_path: Path, **engines: object):
    """A party with the given engines and its bundle written."""
    from federation.auth import KeyStore
    from flow.ops.bundle import generate
    from flow.ops.cluster_conf import load_cluster

    tmp_path.mkdir(parents=True, exist_ok=True)
    path = _cluster(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["parties"][0]["public_key"] = None
    raw["parties"][0]["engines"].update(engines)
    path.write_text(yaml.safe_dump(raw))
    dep = deployment(path, "9999", image="r/fw:2.0")
    generate(load_cluster(path), "9999", dep.bundle, KeyStore(tmp_path / "home"))
    return path, dep


def test_install_on_k8s_applies_every_rendered_manifest_in_order_with_the_deployments_image(tmp_path):
    import kubernetes_validate

    from tests.e2e.test_cluster_generate import K8S_VERSION

    _, dep = _bundle(tmp_path, computing={"engine": "spark", "workers": 3},
                     federation={"engine": "rabbitmq", "broker": "bundled", "allow_insecure": True})
    files = yaml.safe_load((dep.bundle / "k8s" / "kustomization.yaml").read_text())["resources"]
    calls = plan(dep)
    for call in calls:  # the bundled broker's and Spark's objects too
        kubernetes_validate.validate(call.body, K8S_VERSION, strict=True)
    assert len(calls) == len(files) and {c.kind for c in calls} <= set(KINDS)
    assert {"Namespace", "ConfigMap", "Secret", "StatefulSet", "Deployment", "Service",
            "NetworkPolicy"} <= {c.kind for c in calls}
    assert [c.kind for c in calls[:3]] == ["Namespace", "ConfigMap", "Secret"]  # before what mounts them
    assert calls[0].namespace is None and {c.namespace for c in calls[1:]} == {"demo-9999"}
    for call in calls:
        assert call.body["metadata"]["labels"]["fedweave.io/consortium"] == "demo"
    images = {c.name: [k["image"] for k in c.body["spec"]["template"]["spec"]["containers"]]
              for c in calls if c.kind in ("StatefulSet", "Deployment")}
    assert images["fedweave-server"] == images["spark-worker"] == images["spark-master"] == ["r/fw:2.0"]
    assert images["rabbitmq"] == [RABBITMQ_IMAGE]  # the broker keeps its pinned image (make broker-image)
    broker = next(c for c in calls if c.name == "rabbitmq" and c.kind == "StatefulSet").body["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in broker["containers"][0]["env"]}
    compose = yaml.safe_load((dep.bundle / "compose.yaml").read_text())["services"]["rabbitmq"]
    assert compose["image"] == RABBITMQ_IMAGE and set(env) == set(compose["environment"])  # one contract
    assert env["RABBITMQ_DEFAULT_PASS"] == {"secretKeyRef": {"name": "fedweave-secret", "key": "rabbitmq_password"}}
    assert broker["securityContext"]["runAsUser"] == RABBITMQ_UID and broker["securityContext"]["runAsNonRoot"]
    workers = next(c for c in calls if c.name == "spark-worker")
    assert workers.body["spec"]["replicas"] == 3
    assert workers.body["spec"]["template"]["metadata"]["labels"]["fedweave.io/version"] == "2.0"


def test_a_bundle_with_a_kind_the_k8s_target_cannot_apply_is_refused_before_anything_is_applied(tmp_path):
    _, dep = _bundle(tmp_path)
    folder = dep.bundle / "k8s"
    kust = yaml.safe_load((folder / "kustomization.yaml").read_text())
    (folder / "ingress.yaml").write_text(yaml.safe_dump({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                                                          "metadata": {"name": "web", "namespace": "demo-9999"}}))
    kust["resources"].append("ingress.yaml")
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kust))
    with pytest.raises(DeployError, match="a Ingress \\(web\\) that --target k8s cannot apply"):
        plan(dep)
    (folder / "kustomization.yaml").unlink()
    with pytest.raises(DeployError, match="party 9999: .*kustomization.yaml: not a bundle's k8s folder"):
        plan(dep)


def _kubeconfig(tmp_path: Path, server: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": "not-a-real-token"}}],
        "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}))
    return str(path)


class _Forbid(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the handler's name
        body = b'{"kind": "Status", "message": "namespaces is forbidden", "reason": "Forbidden", "code": 403}'
        self.send_response(403, "Forbidden")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_an_api_that_does_not_answer_or_forbids_is_one_line_naming_the_party(tmp_path):
    path, dep = _bundle(tmp_path)
    tgt = target("k8s", kubeconfig=_kubeconfig(tmp_path, "http://127.0.0.1:9"))  # discard port: refused
    with pytest.raises(DeployError, match="party 9999: .*the Kubernetes API at http://127.0.0.1:9 does not answer"):
        lifecycle.describe(tgt, dep)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Forbid)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tgt = target("k8s", kubeconfig=_kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_port}"))
        with pytest.raises(DeployError, match="party 9999: .*forbidden by the cluster .*rights on namespace "
                                              "demo-9999"):
            lifecycle.describe(tgt, dep)
    finally:
        server.shutdown()


def test_scale_is_refused_for_a_party_without_spark_workers_of_its_own(tmp_path):
    path, dep = _bundle(tmp_path)
    tgt = target("k8s", kubeconfig=_kubeconfig(tmp_path, "http://127.0.0.1:9"))
    with pytest.raises(DeployError, match="party 9999: its computing engine \\(local\\) runs no Spark workers"):
        lifecycle.scale(tgt, dep, 2)
    _, there = _bundle(tmp_path / "b", computing={"engine": "spark", "master": "spark://spark.example:7077"})
    with pytest.raises(DeployError, match="spark with master spark://spark.example:7077"):
        lifecycle.scale(tgt, there, 2)


def test_cluster_scale_takes_a_worker_count_and_refuses_a_negative_one(tmp_path):
    from click.testing import CliRunner

    import flow.cli.cluster  # noqa: F401 - registers the group
    from flow.cli.main import cli

    path, _ = _bundle(tmp_path)
    runner = CliRunner(env={"FLOW_HOME": str(tmp_path / "home"), "FEDWEAVE_SERVICE_CONF": None})
    res = runner.invoke(cli, ["cluster", "scale", "-f", str(path), "--party", "9999", "--spark-workers", "-1"])
    assert res.exit_code == 2 and "-1 is not in the range" in res.output
    res = runner.invoke(cli, ["cluster", "scale", "-f", str(path), "--party", "9999", "--spark-workers", "2",
                              "--target", "k8s", "--kubeconfig", _kubeconfig(tmp_path, "http://127.0.0.1:9")])
    assert res.exit_code != 0 and "party 9999: its computing engine (local) runs no Spark workers" in res.output


PLURAL = {"Namespace": "namespaces", "ConfigMap": "configmaps", "Secret": "secrets", "Service": "services",
          "PersistentVolumeClaim": "persistentvolumeclaims", "StatefulSet": "statefulsets",
          "Deployment": "deployments", "NetworkPolicy": "networkpolicies"}


class _Api(http.server.BaseHTTPRequestHandler):
    """A stand-in for the API server's object paths: what is applied is kept by path and
    read back, deleted, scaled; every request recorded (method, path, query, content type, body)."""

    objects: dict[str, dict] = {}
    seen: list[tuple[str, str, str, str, object]] = []

    def _answer(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        ctype = self.headers.get("Content-Type", "")
        self.seen.append((self.command, path, query, ctype, body))
        if self.command == "PATCH" and path.endswith("/scale"):
            self.objects[path[:-6]]["spec"]["replicas"] = body["spec"]["replicas"]
            return self._answer(200, body)
        if self.command == "PATCH" and ctype != "application/apply-patch+yaml":  # recorded, not merged
            return self._answer(200, self.objects[path])
        if self.command == "PATCH":
            self.objects[path] = body
            return self._answer(200, body)
        if self.command == "GET" and path.endswith("/persistentvolumeclaims"):
            return self._answer(200, {"items": [{"metadata": {"name": "home-fedweave-server-0"}}]})
        if path not in self.objects:
            return self._answer(404, {"kind": "Status", "reason": "NotFound", "code": 404})
        return self._answer(200, self.objects.pop(path) if self.command == "DELETE" else self.objects[path])

    do_GET = do_PATCH = do_DELETE = _handle  # noqa: N815 - the handler's names

    def log_message(self, *args: object) -> None:
        pass


def test_k8s_install_ready_upgrade_scale_and_delete_send_each_object_to_its_api_path(tmp_path):
    _, dep = _bundle(tmp_path, computing={"engine": "spark", "workers": 2},
                     federation={"engine": "rabbitmq", "broker": "bundled", "allow_insecure": True})
    server = http.server.HTTPServer(("127.0.0.1", 0), _Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tgt = target("k8s", kubeconfig=_kubeconfig(tmp_path, f"http://127.0.0.1:{server.server_port}"))
        assert tgt.describe(dep) == []  # no namespace: not installed
        _Api.seen.clear()
        out = tgt.install(dep)
        calls = plan(dep)
        assert out["applied"] == [f"{c.kind}/{c.name}" for c in calls]
        for call, (method, path, query, ctype, body) in zip(calls, _Api.seen, strict=True):
            group = call.body["apiVersion"]
            base = f"/api/{group}" if "/" not in group else f"/apis/{group}"
            where = f"/namespaces/{call.namespace}" if call.namespace else ""
            assert (method, path) == ("PATCH", f"{base}{where}/{PLURAL[call.kind]}/{call.name}")
            assert ctype == "application/apply-patch+yaml" and body == call.body
            assert {"fieldManager=fedweave", "force=true"} <= set(query.split("&")), query

        sts = "/apis/apps/v1/namespaces/demo-9999/statefulsets/fedweave-server"
        assert tgt.ready(dep) == "rolling out (no status yet)"
        _Api.objects[sts]["status"] = {"replicas": 1, "observedGeneration": 1, "currentRevision": "a",
                                          "updateRevision": "b", "updatedReplicas": 0}
        assert tgt.ready(dep) == "rolling out (0/1 updated)"
        _Api.objects[sts]["status"].update(updateRevision="a", updatedReplicas=1, readyReplicas=1)
        assert tgt.ready(dep) == "ready"

        up = tgt.upgrade(deployment(tmp_path / "cluster.yaml", "9999", version="3.0"))
        assert (up["from"], up["to"]) == ("r/fw:2.0", "r/fw:3.0")
        method, path, _, ctype, body = _Api.seen[-1]
        assert (method, path, ctype) == ("PATCH", sts, "application/strategic-merge-patch+json")
        template = body["spec"]["template"]
        assert template["spec"]["containers"] == [{"name": "server", "image": "r/fw:3.0"}]
        assert template["metadata"]["labels"]["fedweave.io/version"] == "3.0"

        workers = "/apis/apps/v1/namespaces/demo-9999/deployments/spark-worker"
        assert tgt.scale(dep, 5) == {"deployment": "demo-9999/spark-worker", "from": 2, "to": 5}
        assert _Api.objects[workers]["spec"]["replicas"] == 5

        _Api.seen.clear()
        gone = tgt.delete(dep, keep_data=True)
        assert gone["kept"] == ["PersistentVolumeClaim/home-fedweave-server-0", "Namespace/demo-9999"]
        assert sorted(gone["removed"]) == sorted(f"{c.kind}/{c.name}" for c in calls if c.kind != "Namespace")
        assert [p for m, p, *_ in _Api.seen if m == "DELETE"][0].endswith("/networkpolicies/" + calls[-1].name)
        assert set(_Api.objects) == {"/api/v1/namespaces/demo-9999"}  # only the namespace (and its claims) stay
    finally:
        server.shutdown()


def test_docker_scale_refuses_an_image_without_spark(tmp_path, docker_client):
    from tests.deploy.conftest import BASE_IMAGE

    path, _ = _bundle(tmp_path, computing={"engine": "spark", "workers": 2})
    dep = deployment(path, "9999", image=BASE_IMAGE)  # python3, and no pyspark
    with pytest.raises(DeployError, match=f"party 9999: image {BASE_IMAGE}: the image's extras do not include spark"):
        target("docker").scale(dep, 3)
    assert not docker_client.containers.list(all=True, filters={"label": ["fedweave.io/consortium=demo",
                                                                             "fedweave.io/party=9999"]})


def test_the_broker_image_tag_is_the_pinned_debian_version_and_the_makefile_builds_that_tag():
    """The Makefile reads both lines of flow/ops/manifests.py; a tag has no '+'."""
    assert RABBITMQ_IMAGE.rpartition(":")[2] == RABBITMQ_VERSION.replace("+", "-")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(["make", "-n", "-s", "broker-image"], cwd=root, capture_output=True, text=True, check=True)
    assert f"rabbitmq-server={RABBITMQ_VERSION}" in out.stdout and f"-t {RABBITMQ_IMAGE} deploy/rabbitmq" in out.stdout
