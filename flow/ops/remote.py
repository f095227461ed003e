"""The CLI's client mode: after ``flow init --ip --port``, commands go to a flow server.

``RemoteOps`` implements :class:`flow.ops.api.Ops` like :class:`flow.ops.local.LocalOps`,
with the same answers; each request goes to the route :data:`flow.ops.api.ROUTES` names.
The server's errors come back as the same FedweaveError (message and exit code), so a
command prints and exits exactly as it would in standalone mode.
"""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Iterator

from flow.core.errors import FedweaveError, StoreError, ValidationError
from flow.dsl import JobPlan
from flow.ops.api import API_PREFIX, Ops, route


class ServerError(FedweaveError):
    """The flow server refused a request or could not be reached."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def _raise_for(resp: Any) -> None:
    """Turn the server's envelope of a failed request into the error the CLI would raise."""
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if resp.status_code == 401:
        raise ServerError(f"flow server refused the request: {body.get('retmsg') or 'unauthorized'} "
                          f"(check the token given to flow init)", exit_code=2)
    if resp.status_code == 403:  # a known user whose role may not do this (flow.ops.api.ROLES)
        raise ServerError(f"flow server refused the request: {body.get('retmsg') or 'forbidden'}", exit_code=2)
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict) and data.get("problems"):
        raise ValidationError(data["problems"])
    message = body.get("retmsg") if isinstance(body, dict) else None
    code = body.get("retcode") if isinstance(body, dict) and isinstance(body.get("retcode"), int) else 1
    raise ServerError(message or f"flow server answered HTTP {resp.status_code}", exit_code=code or 1)


class RemoteOps(Ops):
    """The CLI's operations sent to a flow server over HTTP."""

    remote = True

    def __init__(self, ip: str, port: int, token: str, timeout: float = 600):
        import httpx  # only client mode needs it

        self.base = f"http://{ip}:{port}"
        self._httpx = httpx
        self.http = httpx.Client(base_url=self.base + API_PREFIX, timeout=timeout,
                                 headers={"Authorization": f"Bearer {token}"})

    def _send(self, op: str, path: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """The response to operation ``op`` (its route filled with ``path``), errors raised."""
        method, url = route(op, **(path or {}))
        try:
            resp = self.http.request(method, url, **kwargs)
        except self._httpx.TransportError as exc:
            raise ServerError(f"cannot reach the flow server at {self.base}: {exc}") from exc
        _raise_for(resp)
        return resp

    def _call(self, op: str, path: dict[str, str] | None = None, **kwargs: Any) -> Any:
        """The ``data`` of the server's envelope for operation ``op``."""
        return self._send(op, path, **kwargs).json()["data"]

    def _stream(self, op: str, path: dict[str, str], params: dict[str, Any], lines: bool = True) -> Iterator[Any]:
        """A streamed response as it arrives: text lines, or raw byte chunks."""
        method, url = route(op, **path)
        try:
            with self.http.stream(method, url, params=_clean(params), timeout=None) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    _raise_for(resp)
                yield from (resp.iter_lines() if lines else resp.iter_bytes())
        except self._httpx.TransportError as exc:
            raise ServerError(f"cannot reach the flow server at {self.base}: {exc}") from exc

    # jobs ---------------------------------------------------------------
    def job_submit(self, plan: JobPlan, conf_path: str, dsl_path: str,
                   description: str | None = None) -> dict[str, Any]:
        return self._call("job_submit", json={"conf": plan.raw_conf, "dsl": plan.raw_dsl,
                                              "conf_file": conf_path, "dsl_file": dsl_path,
                                              **({"description": description} if description else {})})

    def job_query(self, job_id: str) -> dict[str, Any]:
        return self._call("job_query", {"job_id": job_id})

    def job_list(self, limit: int = 20, status: str | None = None, role: str | None = None,
                 party_id: str | None = None, initiator: str | None = None, since: str | None = None,
                 until: str | None = None, description: str | None = None) -> list[dict[str, Any]]:
        params = {"limit": limit, "status": status, "role": role, "party_id": party_id, "initiator": initiator,
                  "since": since, "until": until, "description": description}
        return self._call("job_list", params=_clean(params))

    def job_stop(self, job_id: str) -> dict[str, Any]:
        return self._call("job_stop", {"job_id": job_id})

    def job_rerun(self, job_id: str, component: str | None = None) -> dict[str, Any]:
        return self._call("job_rerun", {"job_id": job_id}, json={"component": component})

    def job_logs(self, job_id: str, role: str | None = None, party_id: str | None = None,
                 component: str | None = None, follow: bool = False) -> Iterator[str]:
        self.job_query(job_id)  # JobNotFound before anything is printed
        return self._stream("job_logs", {"job_id": job_id}, {"role": role, "party_id": party_id,
                                                              "component": component, "follow": follow})

    # data and tables ----------------------------------------------------
    def data_upload(self, file: Path, namespace: str, name: str, id_column: str = "id",
                    label_column: str | None = None, partitions: int | None = None,
                    engine: str | None = None, drop: bool = False, head: bool = True) -> dict[str, Any]:
        file = Path(file)
        if not file.is_file():
            raise ServerError(f"CSV file {file} does not exist", exit_code=1)
        params = {"namespace": namespace, "name": name, "id_column": id_column, "label_column": label_column,
                  "partitions": partitions, "engine": engine, "filename": file.name, "drop": drop or None,
                  "head": None if head else False}
        with file.open("rb") as fh:
            return self._call("data_upload", params=_clean(params), content=_chunks(fh),
                              headers={"Content-Type": "text/csv"})

    def data_download(self, namespace: str, name: str, output: Path, engine: str | None = None) -> dict[str, Any]:
        output = Path(output)
        self.table_info(namespace, name, engine)  # a missing table fails before the file is created
        output.parent.mkdir(parents=True, exist_ok=True)
        with output.open("wb") as fh:
            for chunk in self._stream("data_download", {}, {"namespace": namespace, "name": name, "engine": engine},
                                      lines=False):
                fh.write(chunk)
        with output.open(newline="") as fh:
            count = max(0, sum(1 for _ in csv.reader(fh)) - 1)
        return {"file": str(output), "count": count}

    def table_info(self, namespace: str, name: str, engine: str | None = None) -> dict[str, Any]:
        return self._call("table_info", {"namespace": namespace, "name": name}, params=_clean({"engine": engine}))

    def table_bind(self, namespace: str, name: str, engine: str, address: dict[str, Any],
                   id_column: str = "id", label_column: str | None = None) -> dict[str, Any]:
        return self._call("table_bind", json={
            "namespace": namespace, "name": name, "engine": engine, "address": address,
            "id_column": id_column, "label_column": label_column})

    def table_list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return self._call("table_list", params=_clean({"namespace": namespace}))

    def table_delete(self, namespace: str, name: str) -> dict[str, Any]:
        return self._call("table_delete", {"namespace": namespace, "name": name})

    # tracking -----------------------------------------------------------
    def tracking_metrics(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, dict]:
        return self._call("tracking_metrics", _task(job_id, role, party_id, component))

    def tracking_output_data(self, job_id: str, role: str, party_id: str, component: str,
                             output_path: Path | None = None, limit: int = 10) -> list[dict[str, Any]]:
        items = self._call("tracking_output_data", _task(job_id, role, party_id, component), params={"limit": limit})
        if output_path is not None:  # the tables come over as CSV, written here
            for item in items:
                target = Path(output_path) / f"{component}_{item['index']}.csv"
                self.data_download(item["namespace"], item["name"], target)
                item["file"] = str(target)
        return items

    def tracking_output_model(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, Any]:
        return self._call("tracking_output_model", _task(job_id, role, party_id, component))

    def component_list(self, job_id: str) -> dict[str, Any]:
        return self._call("component_list", {"job_id": job_id})

    def component_parameters(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, Any]:
        return self._call("component_parameters", _task(job_id, role, party_id, component))

    # schedules ----------------------------------------------------------
    def schedule_add(self, cron: str, conf: Any, dsl: Any, *, name: str, timezone: str = "UTC",
                     overlap: str = "skip", promote_if: str | None = None, paused: bool = False,
                     conf_file: str = "conf.json", dsl_file: str = "dsl.json") -> dict[str, Any]:
        """The job's files go as JSON: the server keeps its own copy and fires that."""
        return self._call("schedule_add", json={
            "name": name, "cron": cron, "conf": conf, "dsl": dsl, "timezone": timezone, "overlap": overlap,
            "promote_if": promote_if, "paused": paused, "conf_file": conf_file, "dsl_file": dsl_file})

    def schedule_list(self) -> list[dict[str, Any]]:
        return self._call("schedule_list")

    def schedule_pause(self, name: str) -> dict[str, Any]:
        return self._call("schedule_pause", {"name": name})

    def schedule_resume(self, name: str) -> dict[str, Any]:
        return self._call("schedule_resume", {"name": name})

    def schedule_remove(self, name: str) -> dict[str, Any]:
        return self._call("schedule_remove", {"name": name})

    def schedule_run_now(self, name: str, force: bool = False) -> dict[str, Any]:
        return self._call("schedule_run_now", {"name": name}, params={"force": force})

    def schedule_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        return self._call("schedule_history", {"name": name}, params={"limit": limit})

    # privileges and audit -----------------------------------------------
    def privilege_grant(self, party: str, namespace: str, name: str) -> dict[str, Any]:
        return self._call("privilege_grant", json={"party": party, "namespace": namespace, "name": name})

    def privilege_revoke(self, party: str, namespace: str, name: str) -> dict[str, Any]:
        return self._call("privilege_revoke", json={"party": party, "namespace": namespace, "name": name})

    def privilege_list(self, party: str | None = None, namespace: str | None = None,
                       name: str | None = None) -> list[dict[str, Any]]:
        return self._call("privilege_list", params=_clean({"party": party, "namespace": namespace, "name": name}))

    def audit_list(self, job: str | None = None, since: str | datetime | None = None, kind: str | None = None,
                   party: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        when = since.isoformat() if isinstance(since, datetime) else since
        params = {"job": job, "since": when, "kind": kind, "party": party, "limit": limit}
        return self._call("audit_list", params=_clean(params))

    def audit_verify(self, party: str | None = None) -> list[dict[str, Any]]:
        return self._call("audit_verify", params=_clean({"party": party}))

    def audit_summary(self, job: str | None = None, party: str | None = None) -> list[dict[str, Any]]:
        return self._call("audit_summary", params=_clean({"job": job, "party": party}))

    # models -------------------------------------------------------------
    def model_list(self, model_id: str | None = None) -> list[dict[str, Any]]:
        return self._call("model_list", params=_clean({"model_id": model_id}))

    def model_deploy(self, job_id: str | None = None, model_id: str | None = None,
                     model_version: str | None = None, cpn_list: list[str] | None = None) -> dict[str, Any]:
        return self._call("model_deploy", json={"job_id": job_id, "model_id": model_id,
                                                "model_version": model_version, "cpn_list": cpn_list})

    def model_export(self, output_path: Path, job_id: str | None = None, model_id: str | None = None,
                     model_version: str | None = None, role: str | None = None,
                     party_id: str | None = None) -> dict[str, Any]:
        """The server's archive comes back in the body and is written to ``output_path`` here;
        its sha256 is checked against the one the server computed."""
        out = Path(output_path)
        params = {"job_id": job_id, "model_id": model_id, "model_version": model_version, "role": role,
                  "party_id": party_id, "filename": out.name}
        resp = self._send("model_export", params=_clean(params))
        meta = json.loads(resp.headers.get("x-fedweave-export") or "{}")
        if meta.get("sha256") != hashlib.sha256(resp.content).hexdigest():
            raise ServerError(f"the model archive from {self.base} does not match its sha256; export it again")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(resp.content)
        tmp.replace(out)
        return {**meta, "file": str(out)}

    def model_import(self, file: Path, force: bool = False, require_signed: bool = False) -> dict[str, Any]:
        """The archive goes in the request body; the server checks and adds it to its home."""
        file = Path(file)
        if not file.is_file():
            raise StoreError(f"model archive {file}: no such file")
        with file.open("rb") as fh:
            result = self._call("model_import",
                                params={"force": force, "require_signed": require_signed, "filename": file.name},
                                content=_chunks(fh), headers={"Content-Type": "application/zip"})
        return {**result, "file": str(file)}

    # server -------------------------------------------------------------
    def server_status(self) -> dict[str, Any]:
        return {**self._call("server_status"), "client": {"server": self.base}}

    # users ----------------------------------------------------------------
    def user_add(self, name: str, role: str) -> dict[str, Any]:
        return self._call("user_add", json={"name": name, "role": role})

    def user_list(self) -> list[dict[str, Any]]:
        return self._call("user_list")

    def user_remove(self, name: str) -> dict[str, Any]:
        return self._call("user_remove", {"name": name})

    def user_rotate(self, name: str) -> dict[str, Any]:
        return self._call("user_rotate", {"name": name})


def _task(job_id: str, role: str, party_id: str, component: str) -> dict[str, str]:
    return {"job_id": job_id, "role": role, "party_id": party_id, "component": component}


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _chunks(fh: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := fh.read(size):
        yield chunk
