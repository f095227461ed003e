"""Predict jobs: train examples/hetero_lr, deploy, predict with examples/hetero_lr_predict;
export the model to one archive and import it into another home."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from federation.api import Party
from flow.core.errors import ValidationError
from flow.governance.trail import home_logs
from flow.models.archive import export_model, import_model
from flow.models.store import ModelCorrupt, ModelNotFound, ModelStore

from .conftest import EXAMPLES, FlowCLI, load_example, with_lr_params, write_job
from .test_hetero_lr import joined_breast

pytestmark = pytest.mark.e2e

MODEL_ID = "arbiter-10000#guest-9999#host-10000#model"


def scores(flow: FlowCLI, job_id: str, out: Path) -> dict[str, float]:
    """The guest's predict_score per id of a job's hetero_lr_0 output."""
    item = flow.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                   "-cpn", "hetero_lr_0", "-o", out)[0]
    with open(item["file"]) as fh:
        return {r["id"]: float(r["predict_score"]) for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[FlowCLI, str, Path, dict[str, float]]:
    """A home with breast_hetero uploaded and examples/hetero_lr trained (512-bit key, 3 iterations),
    with the guest's training predictions."""
    tmp = tmp_path_factory.mktemp("predict")
    home = tmp / "flow_home"
    home.mkdir()
    flow = FlowCLI(home)
    flow.upload(EXAMPLES / "data" / "breast_hetero_guest.csv", "breast_hetero_guest", label="y")
    flow.upload(EXAMPLES / "data" / "breast_hetero_host.csv", "breast_hetero_host")
    conf, dsl = load_example("hetero_lr")
    conf = with_lr_params(conf, encrypt_param={"key_length": 512, "allow_short_key": True}, max_iter=3,
                          learning_rate=0.3)
    c, d = write_job(tmp, conf, dsl, "train")
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    assert job["model_info"] == {"model_id": MODEL_ID, "model_version": job["job_id"]}  # as FATE prints it
    return flow, job["job_id"], tmp, scores(flow, job["job_id"], tmp / "train_out")


def predict_conf(job_id: str, host_table: str = "breast_hetero_host") -> dict:
    conf = json.loads((EXAMPLES / "hetero_lr_predict" / "conf.json").read_text())
    conf["job_parameters"]["common"]["model_version"] = job_id
    conf["component_parameters"]["role"]["host"]["0"]["reader_0"]["table"]["name"] = host_table
    return conf


def example_dsl() -> dict:
    return json.loads((EXAMPLES / "hetero_lr_predict" / "dsl.json").read_text())


def test_deploy_and_predict_reproduce_the_training_predictions(trained):
    flow, job_id, tmp, train = trained
    listed = flow.ok("model", "list")
    assert [(m["model_id"], m["model_version"]) for m in listed] == [(MODEL_ID, job_id)]
    assert sorted(listed[0]["parties"]) == ["arbiter:10000", "guest:9999", "host:10000"]
    assert listed[0]["components"]["guest:9999"] == {
        "data_transform_0": "DataTransform", "feature_scale_0": "FeatureScale", "hetero_lr_0": "HeteroLR"}
    assert listed[0]["deployed"] is None

    deployed = flow.ok("model", "deploy", "-j", job_id, "-o", tmp / "deploy")
    assert deployed["predict_dsl"] == example_dsl()  # Evaluation left out; models from the pipeline
    assert json.loads(Path(deployed["predict_dsl_path"]).read_text()) == example_dsl()
    assert deployed["predict_conf"]["job_parameters"]["common"]["model_version"] == job_id
    store = ModelStore(flow.home)
    assert store.deployment(MODEL_ID, job_id)["cpn_list"] == list(example_dsl()["components"])

    # the example's predict conf on the training tables: the same score for every row
    c, d = write_job(tmp, predict_conf(job_id), example_dsl(), "predict")
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    assert job["model_info"] == {"model_id": MODEL_ID, "model_version": job_id}
    assert ("hetero_lr_0", "arbiter") in {(t["component"], t["role"]) for t in job["tasks"]}
    predicted = scores(flow, job["job_id"], tmp / "predict_out")
    assert predicted.keys() == train.keys() and len(predicted) == 569
    assert max(abs(predicted[k] - train[k]) for k in train) < 1e-9

    # and what a centralised computation gives with the federated weights on the joined rows
    ids, x, _ = joined_breast()
    guest, host = (store.load_component(MODEL_ID, job_id, Party(r, p), "hetero_lr_0")
                   for r, p in (("guest", "9999"), ("host", "10000")))
    central = 1 / (1 + np.exp(-(x @ np.r_[guest["weights"], host["weights"]] + guest["intercept"])))
    assert max(abs(predicted[i] - s) for i, s in zip(ids, central)) < 1e-9
    assert [m for m, _ in store.versions()] == [MODEL_ID]  # a predict job keeps no model of its own


def test_predict_on_new_rows_uses_the_stored_scaling(trained):
    """A new host table with a third of the rows: the intersection runs again, the features are
    scaled with the training job's mean and std (not refitted), so each row scores as in training."""
    flow, job_id, tmp, train = trained
    with open(EXAMPLES / "data" / "breast_hetero_host.csv") as fh:
        lines = fh.readlines()
    subset = tmp / "host_new.csv"
    subset.write_text("".join(lines[:1] + lines[1::3]))
    flow.upload(subset, "breast_hetero_host_new")
    c, d = write_job(tmp, predict_conf(job_id, "breast_hetero_host_new"), example_dsl(), "predict_new")
    job = flow.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    predicted = scores(flow, job["job_id"], tmp / "predict_new_out")
    assert len(predicted) == len(lines[1::3])
    assert max(abs(predicted[k] - train[k]) for k in predicted) < 1e-9


def test_export_import_into_a_fresh_home_and_tampering_refused(trained, tmp_path: Path):
    flow, job_id, _, _ = trained
    archive = tmp_path / "model.zip"
    exported = flow.ok("model", "export", "-j", job_id, "-o", archive)
    assert exported["model_version"] == job_id and len(exported["parties"]) == 3
    audited = [e["details"] for log in home_logs(flow.home) for e in log.entries(job=job_id, kind="model.export")]
    assert [a["sha256"] for a in audited] == [exported["sha256"]]

    fresh = FlowCLI(tmp_path / "fresh_home")
    fresh.home.mkdir()
    imported = fresh.ok("model", "import", "-f", archive)
    assert sorted(imported["parties"]) == ["arbiter:10000", "guest:9999", "host:10000"]
    listed = fresh.ok("model", "list")
    assert [(m["model_id"], m["model_version"]) for m in listed] == [(MODEL_ID, job_id)]
    here, there = ModelStore(flow.home), ModelStore(fresh.home)
    assert listed[0]["components"] == here.describe(MODEL_ID, job_id)["components"]
    for party in here.parts(MODEL_ID, job_id):
        for cpn in here.parts(MODEL_ID, job_id)[party]["components"]:
            a, b = (s.load_component(MODEL_ID, job_id, party, cpn) for s in (here, there))
            assert json.dumps(a, default=list) == json.dumps(b, default=list)
    assert there.deploy(MODEL_ID, job_id)["predict_dsl"] == example_dsl()
    again = fresh("model", "import", "-f", archive)
    assert again.code != 0 and "--force" in again.out["retmsg"]
    assert import_model(there, archive, force=True)["model_version"] == job_id
    guest_only = export_model(here, MODEL_ID, job_id, tmp_path / "guest.zip", Party("guest", "9999"))
    assert guest_only["parties"] == ["guest:9999"]

    # one weight changed inside the archive: refused, naming the member, nothing written
    with zipfile.ZipFile(archive) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    name = "guest/9999/hetero_lr_0.json"
    model = json.loads(members[name])
    model["intercept"] = model["intercept"] + 1.0
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(tampered, "w") as zf:
        for n, blob in members.items():
            zf.writestr(n, json.dumps(model) if n == name else blob)
    other = FlowCLI(tmp_path / "other_home")
    other.home.mkdir()
    res = other("model", "import", "-f", tampered)
    assert res.code != 0 and name in res.out["retmsg"] and "sha256" in res.out["retmsg"], res.out
    assert list(ModelStore(other.home).versions()) == []
    # the manifest's checksum of that member edited to match: its digest gives it away
    manifest = json.loads(members["manifest.json"])
    manifest["files"][name] = "0" * 64
    with zipfile.ZipFile(tampered, "w") as zf:
        for n, blob in members.items():
            zf.writestr(n, json.dumps(manifest) if n == "manifest.json" else blob)
    with pytest.raises(ModelCorrupt, match="digest"):
        import_model(ModelStore(other.home), tampered)
    (tmp_path / "junk.zip").write_text("not a zip")
    with pytest.raises(ModelCorrupt, match="not a model archive"):
        import_model(ModelStore(other.home), tmp_path / "junk.zip")
    # a stored part edited on disk is refused when a job loads it
    stored = there.part_dir(MODEL_ID, job_id, Party("host", "10000")) / "hetero_lr_0.json"
    stored.write_text(stored.read_text().replace("1", "2", 1))
    with pytest.raises(ModelCorrupt, match="does not match its sha256"):
        there.load_component(MODEL_ID, job_id, Party("host", "10000"), "hetero_lr_0")


def test_unknown_models_are_named(trained, tmp_path: Path):
    flow, job_id, _, _ = trained
    res = flow("model", "deploy", "-j", "20990101000000000000")
    assert res.code == 2 and "left no model" in res.out["retmsg"]
    # a predict job naming a version this home does not hold is refused before it starts
    c, d = write_job(tmp_path, predict_conf("20990101000000000000"), example_dsl(), "bad")
    res = flow("job", "submit", "-c", c, "-d", d)
    assert res.code == 2 and f"versions kept: {job_id}" in res.out["retmsg"], res.out
    store = ModelStore(flow.home)
    with pytest.raises(ValidationError, match="no component 'evaluation_9'"):
        store.deploy(MODEL_ID, job_id, ["reader_0", "hetero_lr_0", "evaluation_9"])
    with pytest.raises(ValidationError, match="'feature_scale_0', whose model is not deployed"):
        store.deploy(MODEL_ID, job_id, ["reader_0", "data_transform_0", "hetero_lr_0"])
    with pytest.raises(ModelNotFound, match="no part for host:10001"):
        store.load_component(MODEL_ID, job_id, Party("host", "10001"), "hetero_lr_0")
    with pytest.raises(ModelNotFound, match="is a HeteroLR, not a HomoLR"):
        store.load_component(MODEL_ID, job_id, Party("guest", "9999"), "hetero_lr_0", "HomoLR")


def test_secureboost_predict_job_from_the_deployed_dsl_and_conf(breast, tmp_path: Path):
    """HeteroSecureBoost (no arbiter) through deploy's own predict DSL and predict conf:
    the trees walked across parties again give every row its training score."""
    conf, dsl = load_example("hetero_secureboost")
    params = conf["component_parameters"]["common"]["hetero_secureboost_0"]
    params.update(num_trees=2, encrypt_param={"method": "Paillier", "key_length": 512, "allow_short_key": True})
    params["tree_param"]["max_depth"] = 2
    c, d = write_job(tmp_path, conf, dsl, "train")
    job = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert job["status"] == "success", job
    deployed = breast.ok("model", "deploy", "-j", job["job_id"])
    assert deployed["model_id"] == "guest-9999#host-10000#model" and "evaluation_0" not in deployed["cpn_list"]
    c, d = write_job(tmp_path, deployed["predict_conf"], deployed["predict_dsl"], "predict")
    predicted = breast.ok("job", "submit", "-c", c, "-d", d, "--wait")
    assert predicted["status"] == "success", predicted

    def sbt_scores(job_id: str, out: str) -> dict[str, float]:
        item = breast.ok("tracking", "output-data", "-j", job_id, "-r", "guest", "-p", "9999",
                         "-cpn", "hetero_secureboost_0", "-o", tmp_path / out)[0]
        with open(item["file"]) as fh:
            return {r["id"]: float(r["predict_score"]) for r in csv.DictReader(fh)}

    train, again = sbt_scores(job["job_id"], "train"), sbt_scores(predicted["job_id"], "predict")
    assert again.keys() == train.keys() and len(train) == 569
    assert max(abs(again[k] - train[k]) for k in train) < 1e-9


def test_deploy_rewires_around_training_only_components() -> None:
    """A data split left out of the predict DSL: its consumer reads the split's input instead."""
    from flow.models.deploy import derive_predict_dsl

    train = {"components": {
        "reader_0": {"module": "Reader", "output": {"data": ["data"]}},
        "data_transform_0": {"module": "DataTransform", "input": {"data": {"data": ["reader_0.data"]}},
                             "output": {"data": ["data"], "model": ["model"]}},
        "split_0": {"module": "HeteroDataSplit", "input": {"data": {"data": ["data_transform_0.data"]}},
                    "output": {"data": ["train_data", "validate_data", "test_data"]}},
        "homo_lr_0": {"module": "HomoLR", "input": {"data": {"train_data": ["split_0.train_data"],
                                                            "validate_data": ["split_0.validate_data"]}},
                      "output": {"data": ["data"], "model": ["model"]}},
        "evaluation_0": {"module": "Evaluation", "input": {"data": {"data": ["homo_lr_0.data"]}},
                         "output": {"data": ["data"]}, "need_deploy": True},
    }}
    dsl, chosen = derive_predict_dsl(train, {"data_transform_0", "homo_lr_0"})
    assert chosen == ["reader_0", "data_transform_0", "homo_lr_0", "evaluation_0"]
    # the train input becomes HomoLR's test_data port
    assert dsl["components"]["homo_lr_0"]["input"] == {"data": {"test_data": ["data_transform_0.data"]},
                                                       "model": ["pipeline.homo_lr_0.model"]}
    assert "model" not in dsl["components"]["evaluation_0"]["input"]
    assert len(dsl["components"]) == 4


def _rewrite(archive: Path, out: Path, edit) -> None:
    """Copy ``archive`` to ``out`` with ``edit(members)`` applied to its {name: bytes}."""
    with zipfile.ZipFile(archive) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(members)
    with zipfile.ZipFile(out, "w") as zf:
        for n, blob in members.items():
            zf.writestr(n, blob)


def test_archives_are_signed_and_a_consistent_forgery_is_refused(trained, tmp_path: Path):
    """The checksums alone can be recomputed by whoever edits an archive; the exporting
    parties' signatures cannot."""
    import base64
    import hashlib

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from federation.auth import KeyStore, PartyKeys, RouteTable

    flow, job_id, _, _ = trained
    archive = tmp_path / "model.zip"
    exported = flow.ok("model", "export", "-j", job_id, "-o", archive)
    assert exported["signed_by"] == ["10000", "9999"]  # this home holds both parties' keys

    # a home that knows no key: imported, but nobody vouched for it; --require-signed refuses
    stranger = FlowCLI(tmp_path / "stranger")
    stranger.home.mkdir()
    res = stranger("model", "import", "-f", archive, "--require-signed")
    assert res.code != 0 and "no signature by a key this home knows" in res.out["retmsg"], res.out
    assert list(ModelStore(stranger.home).versions()) == []
    plain = stranger.ok("model", "import", "-f", archive)
    assert plain["signed_by"] == [] and plain["signers_not_known_here"] == ["10000", "9999"]

    # a home whose route table holds both parties' public keys (handed over out of band)
    keys = KeyStore(flow.home)
    partner = FlowCLI(tmp_path / "partner")
    partner.home.mkdir()
    RouteTable.from_dict({"parties": {pid: {"public_key": keys.load(pid).public_key_b64}
                                      for pid in ("9999", "10000")}}).dump(partner.home / "route_table.yaml")
    assert partner.ok("model", "import", "-f", archive, "--require-signed")["signed_by"] == ["10000", "9999"]

    # a weight edited and every checksum recomputed to match: only the signature is wrong
    name = "guest/9999/hetero_lr_0.json"

    def forge(members: dict, signer: PartyKeys | None = None) -> None:
        part = json.loads(members[name])
        part["intercept"] = part["intercept"] + 1.0
        members[name] = json.dumps(part).encode()
        index = json.loads(members["guest/9999/part.json"])
        index["components"]["hetero_lr_0"]["sha256"] = hashlib.sha256(members[name]).hexdigest()
        members["guest/9999/part.json"] = json.dumps(index).encode()
        manifest = json.loads(members["manifest.json"])
        for member in (name, "guest/9999/part.json"):
            manifest["files"][member] = hashlib.sha256(members[member]).hexdigest()
        manifest["digest"] = hashlib.sha256(json.dumps(manifest["files"], sort_keys=True).encode()).hexdigest()
        if signer is not None:  # signed again, by a key that is not the party's
            body = json.dumps({k: v for k, v in manifest.items() if k != "signatures"}, sort_keys=True).encode()
            manifest["signatures"] = {"9999": base64.b64encode(signer.sign(body)).decode()}
        members["manifest.json"] = json.dumps(manifest).encode()

    attacker = PartyKeys("9999", Ed25519PrivateKey.generate())
    for label, edit in (("kept signatures", forge), ("re-signed", lambda m: forge(m, attacker))):
        forged = tmp_path / f"forged_{label.replace(' ', '_')}.zip"
        _rewrite(archive, forged, edit)
        target = FlowCLI(tmp_path / f"target_{label.replace(' ', '_')}")
        target.home.mkdir()
        (target.home / "route_table.yaml").write_text((partner.home / "route_table.yaml").read_text())
        res = target("model", "import", "-f", forged)
        assert res.code != 0 and "does not verify" in res.out["retmsg"], (label, res.out)
        assert list(ModelStore(target.home).versions()) == []

    # signatures stripped: the checksums hold, so only --require-signed can tell
    stripped = tmp_path / "stripped.zip"

    def strip(members: dict) -> None:
        manifest = json.loads(members["manifest.json"])
        manifest.pop("signatures")
        members["manifest.json"] = json.dumps(manifest).encode()

    _rewrite(archive, stripped, strip)
    last = FlowCLI(tmp_path / "last")
    last.home.mkdir()
    (last.home / "route_table.yaml").write_text((partner.home / "route_table.yaml").read_text())
    res = last("model", "import", "-f", stripped, "--require-signed")
    assert res.code != 0 and "9999" in res.out["retmsg"] and "10000" in res.out["retmsg"]
    assert last.ok("model", "import", "-f", stripped)["signed_by"] == []
