"""The party's model store: the models of every successful training job, kept per party
under FATE's model id and version, for ``flow model`` (deploy, list, export, import) and
for predict jobs.

A training job's models are copied here when a party's share of the job succeeds, so a
predict job, an export or a deployment never depend on the job's own folders. Layout,
under ``$FLOW_HOME/model_store/<model_id>/<model_version>/``::

  model.json                    the training job: job id, DSL, conf, parties (the same on every party)
  deploy.json                   the latest deployment: component list and predict DSL
  <role>/<party_id>/part.json   the components this party holds a model of, each with its sha256
  <role>/<party_id>/<cpn>.json  one component's model part, as the job tracked it

The model id is FATE's: roles sorted, ``role-partyid[_partyid...]`` joined by ``#``, then
``#model`` (``arbiter-10000#guest-9999#host-10000#model``); the version is the job id.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from federation.api import Party
from flow.core.errors import StoreError
from flow.core.ids import is_valid, problem
from flow.core.paths import is_inside, safe_join
from flow.models.deploy import derive_predict_dsl
from flow.models.format import load_model_text

if TYPE_CHECKING:
    from flow.dsl import JobPlan
    from flow.store import Store

#: what each name of the store's layout is, as an identifier (flow.core.ids)
_KINDS = {"model_id": "model_id", "model_version": "model_version", "role": "role", "party_id": "party_id",
          "component": "component"}


class ModelNotFound(StoreError):
    """No such model, version, party part or component in this party's model store."""

    exit_code = 2


class ModelCorrupt(StoreError):
    """A stored or imported model does not match its recorded checksums or layout."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def gen_model_id(roles: dict[str, list[str]]) -> str:
    """FATE's model id of a job's parties: ``arbiter-10000#guest-9999#host-10000#model``."""
    keys = [f"{role}-{'_'.join(str(p) for p in ids)}" for role, ids in sorted(roles.items()) if ids]
    return "#".join(keys + ["model"])


def check_name(value: str, what: str) -> str:
    """``value`` if it is a valid ``what`` (model_id, model_version, role, party_id or
    component: the folder and file names of the store); ModelNotFound naming it otherwise."""
    reason = problem(_KINDS.get(what, "model_id"), value, what)
    if reason is not None:
        raise ModelNotFound(reason)
    return value


def is_predict_job(plan: JobPlan, job_parameters: dict[str, Any]) -> bool:
    """A job that runs deployed models (``pipeline.<component>`` inputs or job_type predict)."""
    return job_parameters.get("job_type") == "predict" or any(
        plan.dag.inputs(c).external_model for c in plan.dag.components)


def write_atomic(path: Path, text: str) -> None:
    """Atomic: several party processes of one home may write the same file at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=1)  # key order kept: a DSL's component order matters


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ModelStore:
    """One home's model store (every role this home plays in each job)."""

    def __init__(self, home: Path):
        self.root = Path(home) / "model_store"

    # ------------------------------------------------------------ paths
    def version_dir(self, model_id: str, model_version: str) -> Path:
        version = str(model_version)
        return safe_join(self.root, check_name(model_id, "model_id"), check_name(version, "model_version"),
                         fields=("model_id", "model_version"))

    def part_dir(self, model_id: str, model_version: str, party: Party) -> Path:
        return safe_join(self.version_dir(model_id, model_version), check_name(party.role, "role"),
                         check_name(party.party_id, "party_id"), fields=("role", "party_id"))

    # ------------------------------------------------------------ write
    def save_party(self, plan: JobPlan, job_id: str, party: Party, parts: dict[str, tuple[str, str]]) -> dict:
        """Keep ``party``'s model parts of training job ``job_id``: {component: (module, model JSON)}."""
        roles = {r: [p.party_id for p in ps] for r, ps in plan.parties.items()}
        model_id, version = gen_model_id(roles), job_id
        vdir = self.version_dir(model_id, version)
        meta = {"model_id": model_id, "model_version": version, "job_id": job_id, "roles": roles,
                "initiator": {"role": plan.initiator.role, "party_id": plan.initiator.party_id},
                "train_dsl": plan.raw_dsl, "train_conf": plan.raw_conf,
                "modules": {c: plan.module(c).module for c in plan.dag.components}}
        pdir = self.part_dir(model_id, version, party)
        files = {}
        for cpn, (module, text) in parts.items():
            write_atomic(safe_join(pdir, f"{check_name(cpn, 'component')}.json", fields=("component",)), text)
            files[cpn] = {"module": module, "sha256": sha256(text.encode())}
        part = {"role": party.role, "party_id": party.party_id, "saved": _now(), "components": files}
        write_atomic(pdir / "part.json", _json(part))
        if not (vdir / "model.json").exists():
            write_atomic(vdir / "model.json", _json({**meta, "created": _now()}))
        return {"model_id": model_id, "model_version": version}

    # ------------------------------------------------------------ read
    def versions(self, model_id: str | None = None) -> Iterator[tuple[str, str]]:
        if not self.root.is_dir():
            return
        ids = [check_name(model_id, "model_id")] if model_id else sorted(p.name for p in self.root.iterdir())
        for mid in ids:
            base = self.root / mid
            if is_valid("model_id", mid) and base.is_dir() and is_inside(self.root, base):
                for v in sorted(p.name for p in base.iterdir()):
                    if is_valid("model_version", v) and (base / v / "model.json").is_file():
                        yield mid, v

    def find(self, job_id: str | None = None, model_id: str | None = None,
             model_version: str | None = None) -> tuple[str, str]:
        """(model_id, model_version) of a training job, or the one named; ModelNotFound otherwise."""
        if job_id:
            found = [mv for mv in self.versions() if mv[1] == job_id]
            if not found:
                raise ModelNotFound(f"job {job_id} left no model in this home's model store (only a training "
                                    "job that succeeded does); 'flow model list' shows the models kept here")
            return found[0]
        if not model_id or not model_version:
            raise ModelNotFound("name the model: -j JOB_ID, or both --model-id and --model-version")
        if not (self.version_dir(model_id, model_version) / "model.json").is_file():
            known = sorted({v for _, v in self.versions(model_id)}) if (self.root / model_id).is_dir() else []
            hint = f" (versions kept: {', '.join(known)})" if known else " ('flow model list' shows the models)"
            raise ModelNotFound(f"no model {model_id} version {model_version} in this home's model store{hint}")
        return model_id, str(model_version)

    def meta(self, model_id: str, model_version: str) -> dict[str, Any]:
        path = self.version_dir(model_id, model_version) / "model.json"
        if not path.is_file():
            self.find(model_id=model_id, model_version=model_version)  # raises the clear message
        return json.loads(path.read_text())

    def parts(self, model_id: str, model_version: str) -> dict[Party, dict[str, Any]]:
        """Every party part this home holds of a version: Party -> part.json."""
        vdir = self.version_dir(model_id, model_version)
        out = {}
        for path in sorted(vdir.glob("*/*/part.json")):
            info = json.loads(path.read_text())
            out[Party(info["role"], str(info["party_id"]))] = info
        return out

    def deployment(self, model_id: str, model_version: str) -> dict[str, Any] | None:
        path = self.version_dir(model_id, model_version) / "deploy.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def load_component(self, model_id: str, model_version: str, party: Party, component: str,
                       module: str | None = None) -> dict[str, Any]:
        """One component's model part for ``party``, checked against its recorded sha256."""
        self.find(model_id=model_id, model_version=model_version)
        pdir = self.part_dir(model_id, model_version, party)
        if not (pdir / "part.json").is_file():
            raise ModelNotFound(f"model {model_id} version {model_version} has no part for {party} in this "
                                "home (each party keeps its own part; 'flow model import' adds an exported one)")
        entry = json.loads((pdir / "part.json").read_text())["components"].get(component)
        if entry is None:
            raise ModelNotFound(f"model {model_id} version {model_version} holds no model of component "
                                f"'{component}' for {party}")
        if module and entry["module"] != module:
            raise ModelNotFound(f"component '{component}' of model {model_id} version {model_version} is a "
                                f"{entry['module']}, not a {module}")
        text = safe_join(pdir, f"{check_name(component, 'component')}.json", fields=("component",)).read_bytes()
        if sha256(text) != entry["sha256"]:
            raise ModelCorrupt(f"model {model_id} version {model_version}: the stored model of '{component}' "
                               f"for {party} does not match its sha256; import the model again")
        return load_model_text(text.decode())

    def describe(self, model_id: str, model_version: str) -> dict[str, Any]:
        meta = self.meta(model_id, model_version)
        parts = self.parts(model_id, model_version)
        deployed = self.deployment(model_id, model_version)
        return {"model_id": model_id, "model_version": model_version, "job_id": meta.get("job_id"),
                "created": meta.get("created"), "roles": meta.get("roles"),
                "parties": [str(p) for p in parts],
                "components": {str(p): {c: e["module"] for c, e in info["components"].items()}
                               for p, info in parts.items()},
                "deployed": None if deployed is None else {k: deployed[k] for k in ("cpn_list", "deployed_at")}}

    def list(self, model_id: str | None = None) -> list[dict[str, Any]]:
        return [self.describe(m, v) for m, v in self.versions(model_id)]

    # ------------------------------------------------------------ deploy
    def deploy(self, model_id: str, model_version: str, cpn_list: list[str] | None = None) -> dict[str, Any]:
        """Derive the predict DSL (and a predict conf to start from) and record the deployment."""
        meta = self.meta(model_id, model_version)
        held = {c for info in self.parts(model_id, model_version).values() for c in info["components"]}
        dsl, chosen = derive_predict_dsl(meta["train_dsl"], held, cpn_list)
        conf = predict_conf(meta["train_conf"], chosen, model_id, model_version)
        record = {"model_id": model_id, "model_version": model_version, "cpn_list": chosen,
                  "deployed_at": _now(), "predict_dsl": dsl, "predict_conf": conf}
        path = self.version_dir(model_id, model_version) / "deploy.json"
        write_atomic(path, _json(record))
        return {**record, "deploy_path": str(path)}


def predict_conf(train_conf: dict[str, Any], components: list[str], model_id: str,
                 model_version: str) -> dict[str, Any]:
    """The training conf turned into a predict conf: the same parties, job_type predict with
    the model's id and version, parameters of the deployed components only (change the
    Reader tables to the new data)."""
    keep = set(components)
    common = {k: v for k, v in ((train_conf.get("job_parameters") or {}).get("common") or {}).items()
              if k not in ("model_id", "model_version", "job_type")}
    params = train_conf.get("component_parameters") or {}
    roles_params: dict[str, Any] = {}
    for role, by_key in (params.get("role") or {}).items():
        for key, block in (by_key or {}).items():
            kept = {c: p for c, p in (block or {}).items() if c in keep}
            if kept:
                roles_params.setdefault(role, {})[key] = kept
    conf = {k: v for k, v in train_conf.items() if k not in ("job_parameters", "component_parameters")}
    job_params = dict(train_conf.get("job_parameters") or {})
    job_params["common"] = {**common, "job_type": "predict", "model_id": model_id, "model_version": model_version}
    conf["job_parameters"] = job_params
    conf["component_parameters"] = {
        "common": {c: p for c, p in (params.get("common") or {}).items() if c in keep},
        "role": roles_params,
    }
    return conf


def save_job_models(home: Path, store: Store, plan: JobPlan, job_id: str, party: Party) -> dict | None:
    """After ``party``'s share of a training job succeeded: keep its model parts."""
    if is_predict_job(plan, plan.job_parameters(party)):
        return None
    parts = {}
    for cpn in plan.party_components(party):
        refs = store.outputs(job_id, party.role, party.party_id, cpn, "model")
        if refs:
            parts[cpn] = (plan.module(cpn).module, Path(refs[0]["ref"]["path"]).read_text())
    if not parts:
        return None
    return ModelStore(home).save_party(plan, job_id, party, parts)


def deployed_model(home: Path, job_parameters: dict[str, Any], party: Party, ref: str,
                   module: str | None = None) -> dict[str, Any]:
    """The model a predict job's ``pipeline.<component>[.model]`` input names, for ``party``;
    it must be a model of ``module`` (the consuming component's)."""
    model_id, version = job_parameters.get("model_id"), job_parameters.get("model_version")
    if not model_id or not version:
        raise ModelNotFound(f"input 'pipeline.{ref}' needs job_parameters model_id and model_version")
    component = ref.split(".")[0]
    return ModelStore(home).load_component(model_id, str(version), party, component, module)


def check_predict_model(home: Path, plan: JobPlan) -> None:
    """Refuse a predict job whose model version this home does not hold (before it is recorded)."""
    params = plan.job_parameters(plan.initiator)
    if is_predict_job(plan, params):
        ModelStore(home).find(model_id=params.get("model_id"), model_version=params.get("model_version"))


def model_info(plan: JobPlan, job_id: str) -> dict[str, str]:
    """FATE's ``model_info`` of a submitted job: the model it will keep (training) or runs (predict)."""
    params = plan.job_parameters(plan.initiator)
    if is_predict_job(plan, params):
        return {"model_id": str(params.get("model_id")), "model_version": str(params.get("model_version"))}
    return {"model_id": gen_model_id({r: [p.party_id for p in ps] for r, ps in plan.parties.items()}),
            "model_version": job_id}
