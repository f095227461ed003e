"""Every operation a user can ask for, declared once.

A command reaches an operation one of two ways: :class:`flow.ops.local.LocalOps` runs it in
this process (standalone mode, and inside the flow server), :class:`flow.ops.remote.RemoteOps`
asks a flow server for it over HTTP (after ``flow init --ip --port``). Both declare
:class:`Ops`, so a method one of them lacks, or takes other parameters, is an error before
any command runs, and the CLI is written against this protocol alone. :data:`ROUTES` names the
HTTP route of each operation: RemoteOps builds its requests from it, and
``tests/contract/test_ops_contract.py`` checks that the server offers every one.
:data:`ROLES` names the least role a person needs for each operation; the flow server
refuses every route of an operation it does not name.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator, Literal, Protocol, get_args
from urllib.parse import quote

from flow.dsl import JobPlan

#: the flow server's API prefix; every route below is under it
API_PREFIX = "/v1"

_TASK = "/tracking/{job_id}/{role}/{party_id}/{component}"

#: operation -> (HTTP method, path under API_PREFIX) of the flow server route that runs it
ROUTES: dict[str, tuple[str, str]] = {
    "job_submit": ("POST", "/jobs"),
    "job_query": ("GET", "/jobs/{job_id}"),
    "job_list": ("GET", "/jobs"),
    "job_stop": ("POST", "/jobs/{job_id}/stop"),
    "job_rerun": ("POST", "/jobs/{job_id}/rerun"),
    "job_logs": ("GET", "/jobs/{job_id}/logs"),
    "data_upload": ("POST", "/data/upload"),
    "data_download": ("GET", "/data/download"),
    "table_info": ("GET", "/tables/{namespace}/{name}"),
    "table_bind": ("POST", "/tables/bind"),
    "table_list": ("GET", "/tables"),
    "table_delete": ("DELETE", "/tables/{namespace}/{name}"),
    "tracking_metrics": ("GET", _TASK + "/metrics"),
    "tracking_output_data": ("GET", _TASK + "/output-data"),
    "tracking_output_model": ("GET", _TASK + "/output-model"),
    "component_list": ("GET", "/jobs/{job_id}/components"),
    "component_parameters": ("GET", _TASK + "/parameters"),
    "schedule_add": ("POST", "/schedules"),
    "schedule_list": ("GET", "/schedules"),
    "schedule_pause": ("POST", "/schedules/{name}/pause"),
    "schedule_resume": ("POST", "/schedules/{name}/resume"),
    "schedule_remove": ("DELETE", "/schedules/{name}"),
    "schedule_run_now": ("POST", "/schedules/{name}/run-now"),
    "schedule_history": ("GET", "/schedules/{name}/history"),
    "privilege_grant": ("POST", "/privileges/grant"),
    "privilege_revoke": ("POST", "/privileges/revoke"),
    "privilege_list": ("GET", "/privileges"),
    "audit_list": ("GET", "/audit"),
    "audit_verify": ("GET", "/audit/verify"),
    "audit_summary": ("GET", "/audit/summary"),
    "model_list": ("GET", "/models"),
    "model_deploy": ("POST", "/models/deploy"),
    "model_export": ("GET", "/models/export"),
    "model_import": ("POST", "/models/import"),
    "server_status": ("GET", "/server/status"),
    "user_add": ("POST", "/users"),
    "user_list": ("GET", "/users"),
    "user_remove": ("DELETE", "/users/{name}"),
    "user_rotate": ("POST", "/users/{name}/rotate"),
}

#: what a person may do on a flow server, least first; each role may do all the one before may
Role = Literal["viewer", "operator", "admin"]
ROLE_ORDER: tuple[Role, ...] = get_args(Role)

#: operation -> the least role that may ask a flow server for it. A viewer reads jobs, their
#: logs, metrics and models, the table list and schedules; an operator also changes them
#: (submit, stop, rerun, upload, bind and delete tables, schedules, deploy) and reads the data
#: itself (downloads, output rows, model archives) and the grants; an admin also grants and
#: revokes privileges, manages users, imports models and reads the audit log.
ROLES: dict[str, Role] = {
    "job_submit": "operator",
    "job_query": "viewer",
    "job_list": "viewer",
    "job_stop": "operator",
    "job_rerun": "operator",
    "job_logs": "viewer",
    "data_upload": "operator",
    "data_download": "operator",
    "table_info": "viewer",
    "table_bind": "operator",
    "table_list": "viewer",
    "table_delete": "operator",
    "tracking_metrics": "viewer",
    "tracking_output_data": "operator",
    "tracking_output_model": "viewer",
    "component_list": "viewer",
    "component_parameters": "viewer",
    "schedule_add": "operator",
    "schedule_list": "viewer",
    "schedule_pause": "operator",
    "schedule_resume": "operator",
    "schedule_remove": "operator",
    "schedule_run_now": "operator",
    "schedule_history": "viewer",
    "privilege_grant": "admin",
    "privilege_revoke": "admin",
    "privilege_list": "operator",
    "audit_list": "admin",
    "audit_verify": "admin",
    "audit_summary": "admin",
    "model_list": "viewer",
    "model_deploy": "operator",
    "model_export": "operator",
    "model_import": "admin",
    "server_status": "viewer",
    "user_add": "admin",
    "user_list": "admin",
    "user_remove": "admin",
    "user_rotate": "admin",
}


def role_allows(role: str, op: str) -> bool:
    """Whether ``role`` may ask for ``op``; an operation or role not named is refused."""
    need = ROLES.get(op)
    if need is None or role not in ROLE_ORDER:
        return False
    return ROLE_ORDER.index(role) >= ROLE_ORDER.index(need)


def route(op: str, **path: str) -> tuple[str, str]:
    """The method and path (under API_PREFIX) of ``op``, its path parameters filled in and
    quoted, so a name with ``/`` or spaces stays one path segment."""
    method, template = ROUTES[op]
    return method, template.format(**{k: quote(str(v), safe="") for k, v in path.items()})


class Ops(Protocol):
    """The operations behind the ``flow`` commands; each returns the JSON-able data the CLI prints."""

    #: True where the operations run on a flow server (commands that only make sense here check it)
    remote: bool

    # jobs ---------------------------------------------------------------
    @abstractmethod
    def job_submit(self, plan: JobPlan, conf_path: str, dsl_path: str,
                   description: str | None = None) -> dict[str, Any]:
        """Start a validated job; its id, parties and model info (the paths name the files in messages;
        ``description``: what the job is, FATE's notes, shown by query and list)."""

    @abstractmethod
    def job_query(self, job_id: str) -> dict[str, Any]:
        """The job, its status and every party's tasks, with failure reasons."""

    @abstractmethod
    def job_list(self, limit: int = 20, status: str | None = None, role: str | None = None,
                 party_id: str | None = None, initiator: str | None = None, since: str | None = None,
                 until: str | None = None, description: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` jobs, newest first, of those matching every filter given: status,
        a party's role and/or id, the initiator (``ROLE:ID`` or ``ID``), created in
        [``since``, ``until``) (ISO times), description holding the text."""

    @abstractmethod
    def job_stop(self, job_id: str) -> dict[str, Any]:
        """Cancel every party's processes of a job."""

    @abstractmethod
    def job_rerun(self, job_id: str, component: str | None = None) -> dict[str, Any]:
        """Rerun a finished job from ``component`` (default: the first failed one), reusing what came before."""

    @abstractmethod
    def job_logs(self, job_id: str, role: str | None = None, party_id: str | None = None,
                 component: str | None = None, follow: bool = False) -> Iterator[str]:
        """Log lines prefixed ``[role party component]``; with ``follow`` until the job ends."""

    # data and tables ----------------------------------------------------
    @abstractmethod
    def data_upload(self, file: Path, namespace: str, name: str, id_column: str = "id",
                    label_column: str | None = None, partitions: int | None = None,
                    engine: str | None = None, drop: bool = False, head: bool = True) -> dict[str, Any]:
        """Store the CSV ``file`` (on this machine) as table ``namespace/name``; an existing
        table of that name is replaced only with ``drop`` (FATE's upload conf ``"drop": 1``).
        ``head=False`` (FATE's ``"head": 0``): the file has no header row; it is stored as
        FATE stores it, id (first token) -> rest of the line."""

    @abstractmethod
    def data_download(self, namespace: str, name: str, output: Path, engine: str | None = None) -> dict[str, Any]:
        """Write a table as CSV to ``output`` (on this machine); the file and its row count."""

    @abstractmethod
    def table_info(self, namespace: str, name: str, engine: str | None = None) -> dict[str, Any]:
        """A table's engine, address, schema, count and checksum."""

    @abstractmethod
    def table_bind(self, namespace: str, name: str, engine: str, address: dict[str, Any],
                   id_column: str = "id", label_column: str | None = None) -> dict[str, Any]:
        """Register an existing table of another engine (Hive table, HDFS path) under a name."""

    @abstractmethod
    def table_list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """The stored tables (of one namespace when given)."""

    @abstractmethod
    def table_delete(self, namespace: str, name: str) -> dict[str, Any]:
        """Remove a table."""

    # tracking -----------------------------------------------------------
    @abstractmethod
    def tracking_metrics(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, dict]:
        """The metrics a task logged, by namespace and name."""

    @abstractmethod
    def tracking_output_data(self, job_id: str, role: str, party_id: str, component: str,
                             output_path: Path | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """A task's output tables with their first ``limit`` rows; also written as CSV under ``output_path``."""

    @abstractmethod
    def tracking_output_model(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, Any]:
        """The model part a task left, readable."""

    @abstractmethod
    def component_list(self, job_id: str) -> dict[str, Any]:
        """A job's components (name, module, stage, upstreams) and its DSL (``flow component list``)."""

    @abstractmethod
    def component_parameters(self, job_id: str, role: str, party_id: str, component: str) -> dict[str, Any]:
        """The effective parameters of a task: the conf's layers merged and parsed by the module's
        params model for that party, defaults filled (``flow component parameters``)."""

    # schedules ----------------------------------------------------------
    @abstractmethod
    def schedule_add(self, cron: str, conf: Any, dsl: Any, *, name: str, timezone: str = "UTC",
                     overlap: str = "skip", promote_if: str | None = None, paused: bool = False,
                     conf_file: str = "conf.json", dsl_file: str = "dsl.json") -> dict[str, Any]:
        """Add a cron schedule firing the job of ``conf``/``dsl`` (the files' JSON; a copy is kept)."""

    @abstractmethod
    def schedule_list(self) -> list[dict[str, Any]]:
        """Every schedule with its next firing, last job and deployed job."""

    @abstractmethod
    def schedule_pause(self, name: str) -> dict[str, Any]:
        """Stop a schedule firing."""

    @abstractmethod
    def schedule_resume(self, name: str) -> dict[str, Any]:
        """Fire a paused schedule again from its next slot."""

    @abstractmethod
    def schedule_remove(self, name: str) -> dict[str, Any]:
        """Delete a schedule and its history (its jobs stay)."""

    @abstractmethod
    def schedule_run_now(self, name: str, force: bool = False) -> dict[str, Any]:
        """Submit a schedule's job now, outside its slots."""

    @abstractmethod
    def schedule_history(self, name: str, limit: int = 50) -> list[dict[str, Any]]:
        """A schedule's firings, oldest first."""

    # privileges and audit -----------------------------------------------
    @abstractmethod
    def privilege_grant(self, party: str, namespace: str, name: str) -> dict[str, Any]:
        """Let ``party``'s jobs read ``namespace/name`` (``*``: every table of the namespace)."""

    @abstractmethod
    def privilege_revoke(self, party: str, namespace: str, name: str) -> dict[str, Any]:
        """Take back a grant."""

    @abstractmethod
    def privilege_list(self, party: str | None = None, namespace: str | None = None,
                       name: str | None = None) -> list[dict[str, Any]]:
        """The grants held, by party and table."""

    @abstractmethod
    def audit_list(self, job: str | None = None, since: str | datetime | None = None, kind: str | None = None,
                   party: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Audit entries oldest first, merged across the home's logs; ``limit``: the newest N."""

    @abstractmethod
    def audit_verify(self, party: str | None = None) -> list[dict[str, Any]]:
        """Each audit log's hash chain checked, with the first bad entry and why."""

    @abstractmethod
    def audit_summary(self, job: str | None = None, party: str | None = None) -> list[dict[str, Any]]:
        """Federation traffic totalled from the ``federation.sent/received`` entries: objects and
        bytes per (party, direction, peer, variable)."""

    # models -------------------------------------------------------------
    @abstractmethod
    def model_list(self, model_id: str | None = None) -> list[dict[str, Any]]:
        """Every model version kept, with its parties, components and deployment."""

    @abstractmethod
    def model_deploy(self, job_id: str | None = None, model_id: str | None = None,
                     model_version: str | None = None, cpn_list: list[str] | None = None) -> dict[str, Any]:
        """Record a deployment; the predict DSL and a predict conf to start from."""

    @abstractmethod
    def model_export(self, output_path: Path, job_id: str | None = None, model_id: str | None = None,
                     model_version: str | None = None, role: str | None = None,
                     party_id: str | None = None) -> dict[str, Any]:
        """Write a model version's parts (``role:party_id``'s only, when given) to one archive here."""

    @abstractmethod
    def model_import(self, file: Path, force: bool = False, require_signed: bool = False) -> dict[str, Any]:
        """Add an exported archive (on this machine) after checking its hashes and signatures."""

    # server -------------------------------------------------------------
    @abstractmethod
    def server_status(self) -> dict[str, Any]:
        """The server (if any), transport, store and engines these operations run against."""

    # users ----------------------------------------------------------------
    @abstractmethod
    def user_add(self, name: str, role: str) -> dict[str, Any]:
        """Let ``name`` use the flow server as ``role``; the answer holds its token, shown this once."""

    @abstractmethod
    def user_list(self) -> list[dict[str, Any]]:
        """Every user: name, role, created, last used (never a token)."""

    @abstractmethod
    def user_remove(self, name: str) -> dict[str, Any]:
        """Take a user away; its token stops working at once."""

    @abstractmethod
    def user_rotate(self, name: str) -> dict[str, Any]:
        """Give a user a new token (shown this once); the old one stops working."""


def operations() -> list[str]:
    """The names of the operations, in declaration order."""
    return [name for name, value in vars(Ops).items() if getattr(value, "__isabstractmethod__", False)]
