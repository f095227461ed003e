"""Where a party's state lives and which engines it uses (``service_conf.yaml``).

Lookup order for the service conf: ``$FEDWEAVE_SERVICE_CONF``, ``$FLOW_HOME/service_conf.yaml``,
the repository's ``conf/service_conf.yaml``, then the built-in defaults below.
``$FLOW_HOME`` overrides the conf's ``home``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from flow.core.errors import ConfigError

REPO_CONF = Path(__file__).resolve().parents[2] / "conf"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseConf(_Section):
    url: str = ""


class EnginesConf(_Section):
    computing: str = "local"
    storage: str = "localfs"
    federation: str = "standalone"


class ComputingConf(_Section):
    partitions: int = Field(4, ge=1)
    workers: int = Field(0, ge=0)
    #: per engine, keyword settings of its session, e.g. {"spark": {"master": "spark://host:7077"}}
    engines: dict[str, dict[str, Any]] = Field(default_factory=dict)


class FederationConf(_Section):
    max_message_size: int = Field(4 * 1024 * 1024, ge=1024)
    receive_timeout: float = Field(600, gt=0)
    #: each transport's own settings (broker address, credentials, TLS), validated by that transport
    rabbitmq: dict[str, Any] = Field(default_factory=dict)
    pulsar: dict[str, Any] = Field(default_factory=dict)
    #: when ``mode`` is not standalone, a flow server refuses to start on a broker reached
    #: without TLS (amqp://, pulsar://) unless this is true (a broker on a trusted network)
    allow_insecure_transport: bool = False


class ServerConf(_Section):
    """This party's flow server (``flow server start``): address, API token, job detector."""

    host: str = "127.0.0.1"
    port: int = Field(9380, ge=0, le=65535)
    #: the API token clients send as ``Authorization: Bearer``; empty = read (or create) ``token_file``
    token: str = ""
    #: relative to home; created with a random token on first start when ``token`` is empty
    token_file: str = "server_token"  # noqa: S105 - a file name, not a secret
    #: seconds between two sweeps of the job detector (jobs whose processes are gone or timed out)
    detect_interval: float = Field(10, gt=0)
    #: seconds between two checks for due cron schedules (``flow schedule``)
    schedule_interval: float = Field(10, gt=0)
    #: this party's id; when ``mode`` is not standalone the server runs the control plane
    #: (job proposals, accept/reject, status, stop, rerun) for it over the federation transport
    party_id: str = ""
    #: seconds a job proposal may wait for a party's answer before the job fails naming the
    #: silent party and what was checked (broker, its queue, messages waiting unconsumed)
    proposal_timeout: float = Field(30, gt=0)


class ServiceConf(_Section):
    mode: str = "standalone"
    home: str = "~/.fedweave"
    database: DatabaseConf = DatabaseConf()
    default_engines: EnginesConf = EnginesConf()
    computing: ComputingConf = ComputingConf()
    federation: FederationConf = FederationConf()
    #: per storage engine, its settings (e.g. {"hive": {"host": ..., "port": ...}, "hdfs": {"url": ...}})
    storage: dict[str, dict[str, Any]] = Field(default_factory=dict)
    route_table: str = "route_table.yaml"
    server: ServerConf = ServerConf()
    #: the file this was read from ("" for built-in defaults)
    source: str = ""

    @property
    def home_path(self) -> Path:
        return Path(os.environ.get("FLOW_HOME") or self.home).expanduser().resolve()

    @property
    def route_table_path(self) -> Path:
        """``route_table`` as a path; relative ones live in the home (not in conf/, whose
        route table is an example)."""
        path = Path(self.route_table).expanduser()
        return path if path.is_absolute() else self.home_path / path

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home_path / 'flow.sqlite'}"


def _candidates() -> list[Path]:
    out = []
    if os.environ.get("FEDWEAVE_SERVICE_CONF"):
        out.append(Path(os.environ["FEDWEAVE_SERVICE_CONF"]))
    if os.environ.get("FLOW_HOME"):
        out.append(Path(os.environ["FLOW_HOME"]).expanduser() / "service_conf.yaml")
    out.append(REPO_CONF / "service_conf.yaml")
    return out


def _shown(path: object) -> str:
    text = str(path).replace("\x00", "\\0")
    return text if len(text) <= 200 else text[:80] + "..."


def _read_conf(p: Path) -> ServiceConf:
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{_shown(p)}: cannot read the service conf: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: a service conf is a YAML mapping (mode, home, default_engines, ...), "
                          f"not a {type(raw).__name__}")
    try:
        return ServiceConf(**{str(k): v for k, v in raw.items()}, source=str(p))
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"{p}: {where}: {first['msg']}") from exc


def load_service_conf(path: str | Path | None = None) -> ServiceConf:
    """The first service conf found (see the module's docstring), or the built-in defaults;
    ConfigError, one line naming the file, for one that cannot be read or is not valid."""
    paths = [Path(path)] if path else _candidates()
    for p in paths:
        try:
            found = p.is_file()
        except (OSError, ValueError) as exc:  # a name the file system refuses (too long, NUL)
            raise ConfigError(f"{_shown(p)}: not a usable service conf path ({exc})") from None
        if found:
            return _read_conf(p)
        if path:
            raise ConfigError(f"{_shown(p)}: service conf not found")
    return ServiceConf()
