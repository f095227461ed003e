"""The model store as operations: what ``flow model`` runs in standalone mode, and what a
flow server runs for the same requests (on the server's home). Every method returns the
JSON-able data the CLI prints and writes the home's audit entry, so both modes record the
same actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from federation.api import Party
from federation.auth import KeyStore, RouteTable, standalone_route_table
from flow.core.errors import FedweaveError
from flow.core.ids import identifiers
from flow.core.settings import ServiceConf
from flow.governance.trail import record as audit_record
from flow.models.archive import export_model, import_model
from flow.models.store import ModelStore


class ModelOps:
    """Mixed into an operations class that has ``conf`` (ServiceConf)."""

    conf: ServiceConf

    def model_store(self) -> ModelStore:
        return ModelStore(self.conf.home_path)

    @identifiers(model_id="model_id")
    def model_list(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Every model version kept in this home, with its parties, components and deployment."""
        return self.model_store().list(model_id)

    @identifiers(job_id="job_id", model_id="model_id", model_version="model_version", cpn_list="component")
    def model_deploy(self, job_id: str | None = None, model_id: str | None = None,
                     model_version: str | None = None, cpn_list: list[str] | None = None) -> dict[str, Any]:
        """The predict DSL and a predict conf to start from; the deployment is recorded in this home."""
        store = self.model_store()
        mid, version = store.find(job_id, model_id, model_version)
        result = store.deploy(mid, version, cpn_list)
        audit_record(self.conf, "model.deploy", job=version, model_id=mid, cpn_list=result["cpn_list"])
        return result

    @identifiers(job_id="job_id", model_id="model_id", model_version="model_version", role="role",
                 party_id="party_id")
    def model_export(self, output_path: Path, job_id: str | None = None, model_id: str | None = None,
                     model_version: str | None = None, role: str | None = None,
                     party_id: str | None = None) -> dict[str, Any]:
        """Write a version's parts held here (only ``role:party_id``'s when given) to one archive."""
        if (role is None) != (party_id is None):
            raise FedweaveError("give --role and --party-id together, or neither")
        store = self.model_store()
        mid, version = store.find(job_id, model_id, model_version)
        result = export_model(store, mid, version, Path(output_path), Party(role, party_id) if role else None,
                              keys=KeyStore(self.conf.home_path))
        audit_record(self.conf, "model.export", job=version, model_id=mid, parties=result["parties"],
                     file=result["file"], sha256=result["sha256"])
        return result

    def model_import(self, file: Path, force: bool = False, require_signed: bool = False) -> dict[str, Any]:
        """Add an exported archive to this home after checking every file's sha256 and every
        signature this home has a public key for."""
        result = import_model(self.model_store(), Path(file), force, self._known_keys(), require_signed)
        audit_record(self.conf, "model.import", job=result["model_version"], model_id=result["model_id"],
                     parties=result["parties"], file=result["file"], signed_by=result["signed_by"])
        return result

    def _known_keys(self) -> RouteTable:
        """The public keys archive signatures are checked against: the route table's where
        there is one (keys handed over between organisations), else this machine's."""
        path = self.conf.route_table_path
        if path is not None and Path(path).is_file():
            return RouteTable.load(path)
        return standalone_route_table(self.conf.home_path, KeyStore(self.conf.home_path).party_ids())
