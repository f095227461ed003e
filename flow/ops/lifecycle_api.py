"""What ``flow cluster install|describe|logs|upgrade|delete`` ask of a deployment target.

A target (Docker on this machine, a Kubernetes cluster) runs one party's bundle, the
folder ``flow cluster generate`` wrote; :mod:`flow.ops.lifecycle` does what is the same
on every target (finding the bundle, waiting for ``/readyz``, refusing an upgrade while
jobs run) and each target only starts, replaces, reads and removes its services. Targets
are found by name in :data:`TARGETS`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator

from flow.core.errors import ConfigError, FedweaveError
from flow.ops.cluster_conf import ClusterSpec, PartySpec, RabbitFederation, dns_name
from flow.ops.manifests import COMPONENT, CONSORTIUM, PART_OF, PARTY, VERSION

SINCE = re.compile(r"(\d+)([smhd])")


class DeployError(FedweaveError):
    """A deployment target refused or failed: no engine, no image, not installed, jobs running."""


@dataclass(frozen=True)
class Deployment:
    """One party of a consortium as a target runs it: its bundle and the image to run."""

    spec: ClusterSpec
    party: PartySpec
    bundle: Path
    image: str  # repository:tag

    @property
    def name(self) -> str:
        """Prefix of every container, volume or namespace of this party."""
        return dns_name(self.spec.name, self.party.id)

    @property
    def port(self) -> int:
        return self.party.address.port

    @property
    def version(self) -> str:
        return self.image.rpartition(":")[2]

    @property
    def bundled_broker(self) -> bool:
        fed = self.party.engines.federation
        return isinstance(fed, RabbitFederation) and fed.broker == "bundled"

    def labels(self, component: str) -> dict[str, str]:
        return {CONSORTIUM: self.spec.name, PARTY: self.party.id, PART_OF: "fedweave",
                COMPONENT: component, VERSION: self.version}

    def home_files(self) -> dict[str, tuple[bytes, int]]:
        """The bundle's ``home/`` files (path inside the home -> content, mode): what the
        server's home gets on install and again on upgrade."""
        home = self.bundle / "home"
        if not (home / "service_conf.yaml").is_file():
            raise ConfigError(f"{home}: not a bundle's home (no service_conf.yaml): write the bundle with "
                              f"`flow cluster generate -f CLUSTER.yaml --party {self.party.id} -o {self.bundle}`")
        return {str(p.relative_to(home)): (p.read_bytes(), p.stat().st_mode & 0o777)
                for p in sorted(home.rglob("*")) if p.is_file()}

    def token(self) -> str:
        return (self.bundle / "home" / "server_token").read_text(encoding="utf-8").strip()


class Target(ABC):
    """One kind of place a party's services run."""

    #: the ``--target`` value
    name: ClassVar[str]
    #: the options its constructor takes (``--kubeconfig``, ``--context``)
    options: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def endpoint(self, dep: Deployment) -> str:
        """The flow server's URL as reached from this machine."""

    @abstractmethod
    def install(self, dep: Deployment) -> dict[str, Any]:
        """Start the party's services from its bundle (its home's data kept if it is there)."""

    @abstractmethod
    def describe(self, dep: Deployment) -> list[dict[str, Any]]:
        """Each service: name, component, state, health, image, version; empty when not installed."""

    @abstractmethod
    def logs(self, dep: Deployment, component: str, follow: bool, since: datetime | None,
             tail: int | None) -> Iterator[str]:
        """The service's output lines."""

    @abstractmethod
    def upgrade(self, dep: Deployment) -> dict[str, Any]:
        """Replace the flow server by one of ``dep.image`` on the same home."""

    @abstractmethod
    def delete(self, dep: Deployment, keep_data: bool) -> dict[str, Any]:
        """Remove the party's services, and its data unless ``keep_data``."""

    def ready(self, dep: Deployment) -> str | None:
        """"ready", or what the server waits on, as the target itself sees it; None: ask
        the server's ``/readyz`` at :meth:`endpoint`."""
        return None

    def jobs(self, dep: Deployment, states: tuple[str, ...]) -> list[str] | None:
        """Ids of the party's jobs in ``states`` asked from beside the server; None: ask
        its API at :meth:`endpoint` from this machine."""
        return None

    def scale(self, dep: Deployment, workers: int) -> dict[str, Any]:
        """Run ``workers`` Spark workers beside the party's server."""
        raise DeployError(f"party {dep.party.id}: --target {self.name} cannot scale Spark workers")


TARGETS: dict[str, type[Target]] = {}


def require_sdk(module: str, extra: str, target: str) -> Any:
    """The client library a target drives (imported only when that target is used), or one
    line saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DeployError(f"--target {target} needs the Python package {module!r}: "
                          f"pip install 'fedweave[{extra}]'") from None


def register(name: str) -> Callable[[type[Target]], type[Target]]:
    def add(cls: type[Target]) -> type[Target]:
        cls.name = name
        TARGETS[name] = cls
        return cls
    return add


def target(name: str, **options: str | None) -> Target:
    """The target called ``name``, given those of ``options`` that are set (each one it
    does not take is refused: ``--kubeconfig`` means nothing to docker)."""
    if name not in TARGETS:
        raise ConfigError(f"--target {name}: unknown (known: {', '.join(sorted(TARGETS))})")
    cls = TARGETS[name]
    given = {k: v for k, v in options.items() if v is not None}
    for option in given:
        if option not in cls.options:
            users = sorted(n for n, c in TARGETS.items() if option in c.options)
            raise ConfigError(f"--{option}: only for --target {'|'.join(users) or 'none'}, not {name}")
    return cls(**given)


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``--since``: a duration back from now (30s, 10m, 2h, 1d) or an ISO 8601 time."""
    if not text:
        return None
    now = now or datetime.now(timezone.utc)
    m = SINCE.fullmatch(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return now - timedelta(**{unit: int(m.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text}: not a duration (30s, 10m, 2h, 1d) nor an ISO time") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
