"""What a task leaves behind: metrics, output tables, models, logs, progress.

Outputs are persisted as soon as a task succeeds so that a rerun can reuse them and
``flow tracking`` can show them; each party only ever writes its own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from backends.computing.api import Session
from backends.storage.api import StorageEngine, TableMeta
from components.base import SAMPLE_WEIGHT, Dataset, instance_to_row, row_to_instance
from federation.api import Party
from flow.core.paths import safe_join
from flow.models.format import dump_model, load_model_text, to_plain
from flow.store import Store

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def output_namespace(job_id: str) -> str:
    return f"output_{job_id}"


def output_name(component: str, party: Party, index: int) -> str:
    return f"{component}.{party.role}.{party.party_id}.{index}"


def log_path(home: Path, job_id: str, party: Party, component: str) -> Path:
    return safe_join(home / "logs", job_id, party.role, party.party_id, f"{component}.log",
                     fields=("job_id", "role", "party_id", "component"))


def component_logger(home: Path, job_id: str, party: Party, component: str) -> logging.Logger:
    path = log_path(home, job_id, party, component)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(f"fedweave.job.{job_id}.{party.role}.{party.party_id}.{component}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, logging.FileHandler) and h.baseFilename == str(path) for h in logger.handlers):
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
    return logger


class TaskTracker:
    """The tracker a component gets: metrics and progress go to the store."""

    def __init__(self, store: Store, job_id: str, party: Party, component: str):
        self.store, self.job_id, self.party, self.component = store, job_id, party, component
        self._last_progress = -1

    def log_metric(self, namespace: str, name: str, value: Any) -> None:
        value = to_plain(value)
        self.store.add_metric(self.job_id, self.party.role, self.party.party_id,
                              self.component, namespace, name, value)

    def progress(self, done: int, total: int, message: str = "") -> None:
        pct = int(100 * done / total) if total else 100
        if pct != self._last_progress:
            self._last_progress = pct
            self.store.update_task(self.job_id, self.component, self.party.role,
                                   self.party.party_id, progress=pct)


class OutputKeeper:
    """Persists and reloads a task's outputs (tables in the party's storage, models as JSON)."""

    def __init__(self, store: Store, storage: StorageEngine, home: Path, job_id: str, party: Party):
        self.store, self.storage, self.home, self.job_id, self.party = store, storage, home, job_id, party

    def model_path(self, component: str) -> Path:
        return safe_join(self.home / "models", self.job_id, self.party.role, self.party.party_id,
                         f"{component}.json", fields=("job_id", "role", "party_id", "component"))

    def save(self, component: str, data: list[Dataset], model: dict[str, Any] | None) -> None:
        for i, ds in enumerate(data):
            meta = ds.meta.model_copy(update={
                "namespace": output_namespace(self.job_id),
                "name": output_name(component, self.party, i),
                "engine": self.storage.engine,
            })
            table = ds.table
            if meta.extra.get("kind") == "instances":
                weight = meta.extra.get(SAMPLE_WEIGHT)  # SampleWeight's weights: a last stored column
                table = table.map_values(instance_to_row(meta.label_column is not None, bool(weight)))
                if weight:
                    meta = meta.model_copy(update={"columns": [*meta.columns, weight],
                                                   "dtypes": [*meta.dtypes, "double"] if meta.dtypes else []})
            stored = self.storage.write(table, meta)
            self.store.put_output(self.job_id, self.party.role, self.party.party_id, component, "data", i,
                                  {"namespace": stored.namespace, "name": stored.name, "engine": stored.engine})
        if model is not None:
            path = self.model_path(component)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(dump_model(model))
            tmp.replace(path)
            self.store.put_output(self.job_id, self.party.role, self.party.party_id, component, "model", 0,
                                  {"path": str(path)})

    def save_cache(self, component: str, cache: dict[str, Any]) -> None:
        """An intersection cache (key material): a file only this user can read, in this
        party's own folder; it is never part of a model, an archive or a reply to a peer."""
        path = safe_join(self.home / "caches", self.job_id, self.party.role, self.party.party_id,
                         f"{component}.json", fields=("job_id", "role", "party_id", "component"))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(dump_model(cache))
        tmp.replace(path)
        self.store.put_output(self.job_id, self.party.role, self.party.party_id, component, "cache", 0,
                              {"path": str(path)})

    def load_cache(self, component: str) -> dict[str, Any] | None:
        refs = self.store.outputs(self.job_id, self.party.role, self.party.party_id, component, "cache")
        return load_model_text(Path(refs[0]["ref"]["path"]).read_text()) if refs else None

    def load(self, component: str, session: Session) -> tuple[list[Dataset], dict[str, Any] | None]:
        data = []
        for ref in self.store.outputs(self.job_id, self.party.role, self.party.party_id, component, "data"):
            meta = self.storage.meta(ref["ref"]["namespace"], ref["ref"]["name"])
            table = self.storage.read(meta, session)
            if meta.extra.get("kind") == "instances":
                weight = meta.extra.get(SAMPLE_WEIGHT)
                table = table.map_values(row_to_instance(meta.label_column is not None, bool(weight)))
                if weight:
                    meta = meta.model_copy(update={"columns": meta.columns[:-1], "dtypes": meta.dtypes[:-1]})
            data.append(Dataset(table, meta))
        models = self.store.outputs(self.job_id, self.party.role, self.party.party_id, component, "model")
        model = load_model_text(Path(models[0]["ref"]["path"]).read_text()) if models else None
        return data, model


def read_output_meta(storage: StorageEngine, ref: dict[str, Any]) -> TableMeta:
    return storage.meta(ref["namespace"], ref["name"])
