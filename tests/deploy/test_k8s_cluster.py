"""One party installed on a real Kubernetes cluster with ``--target k8s``: install → describe
→ logs → upgrade → delete --keep-data → install again on the same claim.

No cluster runs on the project's machines, so this runs only when
``FEDWEAVE_TEST_KUBECONFIG`` names a kubeconfig (its current context, or
``FEDWEAVE_TEST_KUBE_CONTEXT``), and skips otherwise, in CI too. The cluster must be able to
pull ``FEDWEAVE_TEST_K8S_IMAGE`` (REPOSITORY:TAG, the project's image, ``make image``) and
the tag ``FEDWEAVE_TEST_K8S_UPGRADE_TAG`` of the same repository, and the bundled broker's
image (``RABBITMQ_IMAGE`` of flow/ops/manifests.py, ``make broker-image``, then pushed or
loaded where the nodes find it). Everything lives in a namespace of its own, removed at the end.
"""

from __future__ import annotations

import os
import uuid

import pytest
import yaml

from tests.e2e.conftest import FlowCLI

pytestmark = pytest.mark.e2e

KUBECONFIG = os.environ.get("FEDWEAVE_TEST_KUBECONFIG")
CONTEXT = os.environ.get("FEDWEAVE_TEST_KUBE_CONTEXT")
IMAGE = os.environ.get("FEDWEAVE_TEST_K8S_IMAGE", "")
UPGRADE_TAG = os.environ.get("FEDWEAVE_TEST_K8S_UPGRADE_TAG", "")
PEER_KEY = "J+ittBoeRn3eeOSmLUlo+r4MbapHjxRiHpdRtnzFNDo="  # a peer that is never installed

if not KUBECONFIG:
    pytest.skip("FEDWEAVE_TEST_KUBECONFIG is not set: no Kubernetes cluster to install on", allow_module_level=True)


@pytest.fixture(scope="module")
def party(tmp_path_factory):
    """The consortium file of a party with a bundled broker, its organisation's CLI, and
    the target options; the party deleted with its data at the end."""
    if ":" not in IMAGE or not UPGRADE_TAG:
        pytest.fail("FEDWEAVE_TEST_KUBECONFIG is set: FEDWEAVE_TEST_K8S_IMAGE (REPOSITORY:TAG) and "
                    "FEDWEAVE_TEST_K8S_UPGRADE_TAG (a second tag of it) must be too")
    root = tmp_path_factory.mktemp("k8s")
    org = FlowCLI(root / "org")
    (root / "org").mkdir()
    repository, _, tag = IMAGE.rpartition(":")
    spec = {"name": f"fwk8s-{uuid.uuid4().hex[:6]}", "image": {"repository": repository, "tag": tag}, "parties": [
        {"id": 9999, "organisation": "guest org", "address": {"host": "fedweave-server", "port": 9380},
         "engines": {"federation": {"engine": "rabbitmq", "broker": "bundled", "allow_insecure": True}}},
        {"id": 10000, "organisation": "host org", "address": {"host": "host.example", "port": 9380},
         "public_key": PEER_KEY,
         "engines": {"federation": {"engine": "rabbitmq", "broker": {"host": "host.example"},
                                    "allow_insecure": True}}}]}
    path = root / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    opts = ["-f", path, "--party", "9999", "--target", "k8s", "--kubeconfig", KUBECONFIG,
            *(["--context", CONTEXT] if CONTEXT else [])]
    yield {"org": org, "opts": opts, "path": path, "namespace": f"{spec['name']}-9999"}
    org("cluster", "delete", *opts, timeout=300)


def _claim_uid(kubeconfig: str, namespace: str) -> str:
    from kubernetes import client, config

    config.load_kube_config(config_file=kubeconfig, context=CONTEXT)
    claim = client.CoreV1Api().read_namespaced_persistent_volume_claim("home-fedweave-server-0", namespace)
    return str(claim.metadata.uid)


def test_install_describe_logs_upgrade_and_delete_keeping_the_data(party):
    org, opts = party["org"], party["opts"]
    out = org.ok("cluster", "install", *opts, "--wait", "600", timeout=900)
    assert out["ready"] is True and out["bundle_was"] == "generated", out
    assert "StatefulSet/fedweave-server" in out["applied"] and "StatefulSet/rabbitmq" in out["applied"]
    print(f"{out['seconds_to_ready']} s from install to ready on {out['cluster']}")

    seen = org.ok("cluster", "describe", *opts)
    assert seen["installed"] is True and seen["ready"] is True
    server = next(s for s in seen["services"] if s["component"] == "server")
    assert (server["state"], server["replicas"], server["image"]) == ("running", "1/1", IMAGE)
    assert server["endpoints"] and server["pods"][0]["ready"] is True

    logs = org("cluster", "logs", "--file", party["path"], *opts[2:], "--tail", "50")
    assert logs.code == 0 and logs.out.get("raw", "").strip(), logs.err

    claim = _claim_uid(KUBECONFIG, party["namespace"])
    repository = IMAGE.rpartition(":")[0]
    up = org.ok("cluster", "upgrade", *opts, "--version", UPGRADE_TAG, "--wait", "600", timeout=900)
    assert (up["from"], up["to"], up["ready"], up["drained_jobs"]) == (IMAGE, f"{repository}:{UPGRADE_TAG}",
                                                                       True, [])
    after = next(s for s in org.ok("cluster", "describe", *opts)["services"] if s["component"] == "server")
    assert (after["image"], after["version"]) == (f"{repository}:{UPGRADE_TAG}", UPGRADE_TAG)

    gone = org.ok("cluster", "delete", *opts, "--keep-data", timeout=300)
    assert "PersistentVolumeClaim/home-fedweave-server-0" in gone["kept"]
    assert "StatefulSet/fedweave-server" in gone["removed"]
    again = org.ok("cluster", "install", *opts, "--wait", "600", timeout=900)
    assert again["ready"] is True and again["bundle_was"] == "found"
    assert _claim_uid(KUBECONFIG, party["namespace"]) == claim  # the same home, so the same store and keys


def test_scale_refuses_a_party_without_spark_workers_naming_it(party):
    res = party["org"]("cluster", "scale", *party["opts"], "--spark-workers", "2")
    assert res.code != 0 and "party 9999: its computing engine (local) runs no Spark workers" in res.err
