"""The ``docker`` target: a party's bundle as containers of the local Docker engine.

The flow server (and a bundled RabbitMQ when the consortium file asks for one) run on
the host network, each on the party's own ports, so parties on one machine meet on
127.0.0.1 and a party's peers reach it at the address in the consortium file. The
server's home is a named volume (``<consortium>-<party>-home``): the store, keys, tables,
models and logs outlive the container, so an upgrade or a delete with ``--keep-data``
loses nothing. The bundle's home files are copied into the volume, owned by the image's
user, before the server starts; nothing else of the host is mounted.
"""

from __future__ import annotations

import io
import tarfile
import time
from datetime import datetime
from typing import Any, Iterator

import yaml

from flow.ops.cluster_conf import RabbitFederation, SparkComputing
from flow.ops.lifecycle_api import DeployError, Deployment, Target, register, require_sdk
from flow.ops.manifests import (
    AMQP_PORT,
    BROKER_HOST,
    COMPONENT,
    CONSORTIUM,
    HOME,
    PARTY,
    RABBITMQ_IMAGE,
    SPARK_CLASS,
    SPARK_ENV,
    SPARK_MASTER,
    VERSION,
    broker_env,
    spark_master_cmd,
    spark_worker_cmd,
)

SERVER, BROKER, WORKER = "server", "rabbitmq", "spark-worker"
#: the image's user when its config names none (the Dockerfile's)
DEFAULT_UID = 10001
STOP_TIMEOUT_S = 30
#: on the host network the server, Spark's master, workers and executors meet on loopback
SPARK_LOCAL = {"SPARK_LOCAL_IP": "127.0.0.1"}
#: how long a bundled broker has to answer its ping before install gives up
BROKER_WAIT_S = 120


@register("docker")
class DockerTarget(Target):
    def __init__(self) -> None:
        docker = require_sdk("docker", "docker", "docker")
        self.errors = docker.errors
        try:
            self.client = docker.from_env()
            self.client.ping()
        except docker.errors.DockerException as exc:
            raise DeployError(f"no Docker engine answers (DOCKER_HOST or /var/run/docker.sock): {exc}") from None

    # names ------------------------------------------------------------------
    @staticmethod
    def container(dep: Deployment, component: str) -> str:
        """``<consortium>-<party>-<component>``: containers and volumes are named alike."""
        return f"{dep.name}-{component}"

    @staticmethod
    def volume(dep: Deployment, component: str = "home") -> str:
        return DockerTarget.container(dep, component)

    def _find(self, dep: Deployment, component: str) -> Any | None:
        try:
            return self.client.containers.get(self.container(dep, component))
        except self.errors.NotFound:
            return None

    def _mine(self, dep: Deployment) -> list[Any]:
        return self.client.containers.list(all=True, filters={"label": [f"{CONSORTIUM}={dep.spec.name}",
                                                                        f"{PARTY}={dep.party.id}"]})

    # the interface -------------------------------------------------------------
    def endpoint(self, dep: Deployment) -> str:
        return f"http://127.0.0.1:{dep.port}"

    def install(self, dep: Deployment) -> dict[str, Any]:
        there = [c.name for c in self._mine(dep)]
        if there:
            raise DeployError(f"party {dep.party.id} is installed already ({', '.join(there)}): "
                              "`flow cluster upgrade` replaces its server, `flow cluster delete` removes it")
        self._image(dep.image)
        spark = _own_spark(dep)
        if spark:
            self._has_pyspark(dep, dep.image)
        if dep.bundled_broker:
            self._image(RABBITMQ_IMAGE)
        started = [self._start_broker(dep)] if dep.bundled_broker else []
        if spark:  # the master and the consortium file's workers, as the bundle's compose file has them
            started += self._spark(dep, dep.image, spark.workers)["containers"]
        started.append(self._start_server(dep))
        return {"containers": started, "volume": self.volume(dep), "image": dep.image}

    def describe(self, dep: Deployment) -> list[dict[str, Any]]:
        out = []
        for c in sorted(self._mine(dep), key=lambda c: c.name):
            state = c.attrs.get("State", {})
            out.append({"name": c.name, "component": c.labels.get(COMPONENT),
                        "state": state.get("Status"), "health": (state.get("Health") or {}).get("Status"),
                        "image": (c.attrs.get("Config") or {}).get("Image"),
                        "version": c.labels.get(VERSION), "started": state.get("StartedAt"),
                        "volumes": [m["Name"] for m in c.attrs.get("Mounts", []) if m.get("Type") == "volume"]})
        return out

    def logs(self, dep: Deployment, component: str, follow: bool, since: datetime | None,
             tail: int | None) -> Iterator[str]:
        # by label: the Spark workers are <party>-spark-worker-<i>, the first one's log is given
        boxes = sorted((c for c in self._mine(dep) if c.labels.get(COMPONENT) == component), key=lambda c: c.name)
        if not boxes:
            raise DeployError(f"party {dep.party.id} has no {component} container ({self.container(dep, component)}): "
                              f"is it installed? (`flow cluster describe`)")
        box = boxes[0]
        kwargs: dict[str, Any] = {"stream": True, "follow": follow, "tail": "all" if tail is None else tail}
        if since is not None:
            kwargs["since"] = since
        rest = ""
        for chunk in box.logs(**kwargs):
            rest += chunk.decode("utf-8", "replace")
            *lines, rest = rest.split("\n")
            yield from lines
        if rest:
            yield rest

    def upgrade(self, dep: Deployment) -> dict[str, Any]:
        old = self._find(dep, SERVER)
        if old is None:
            raise DeployError(f"party {dep.party.id} is not installed on this Docker engine: `flow cluster install`")
        self._image(dep.image)  # before the old server stops
        before = (old.attrs.get("Config") or {}).get("Image")
        old.stop(timeout=STOP_TIMEOUT_S)
        old.remove()
        return {"from": before, "to": dep.image, "container": self._start_server(dep)}

    def delete(self, dep: Deployment, keep_data: bool) -> dict[str, Any]:
        removed = []
        for c in self._mine(dep):
            c.stop(timeout=STOP_TIMEOUT_S)  # SIGTERM: the server ends its work and closes its store
            c.remove(force=True, v=True)  # v: the anonymous volumes of Spark's containers; named ones stay
            removed.append(c.name)
        volumes = [self.volume(dep)] + ([self.volume(dep, BROKER)] if dep.bundled_broker else [])
        gone, kept = [], []
        for name in volumes:
            try:
                vol = self.client.volumes.get(name)
            except self.errors.NotFound:
                continue
            if keep_data:
                kept.append(name)
            else:
                vol.remove(force=True)
                gone.append(name)
        return {"removed_containers": sorted(removed), "removed_volumes": gone, "kept_volumes": kept}

    def scale(self, dep: Deployment, workers: int) -> dict[str, Any]:
        """Worker containers ``<party>-spark-worker-<i>`` (and the master beside the server
        when absent) from the server's image, whichever tag it is at now."""
        server = self._find(dep, SERVER)
        image = ((server.attrs.get("Config") or {}).get("Image") if server else None) or dep.image
        master = self._find(dep, SPARK_MASTER)
        if master is None or (master.attrs.get("Config") or {}).get("Image") != image:  # else proven already
            self._has_pyspark(dep, image)
        out = self._spark(dep, image, workers)
        return {"from": out["from"], "to": workers, "image": image}

    # helpers --------------------------------------------------------------------
    def _has_pyspark(self, dep: Deployment, image: str) -> None:
        box = self.client.containers.run(image, entrypoint=["python3", "-c", "import pyspark"], detach=True,
                                         network_mode="none", healthcheck={"test": ["NONE"]})
        try:
            code = box.wait(timeout=120)["StatusCode"]
        finally:
            box.remove(force=True, v=True)  # v: the image's home volume it was given
        if code != 0:
            raise DeployError(f"party {dep.party.id}: image {image}: the image's extras do not include spark; "
                              "build one with `make image IMAGE_EXTRAS=server,rabbitmq,postgresql,spark` on a base "
                              "with a Java runtime (BASE_IMAGE=fedweave-base:bookworm-jre)")

    def _spark(self, dep: Deployment, image: str, workers: int) -> dict[str, Any]:
        """The master (when absent) and workers ``0..workers-1`` on the host network, the
        workers above removed: what was running, and the containers started."""
        comp = _spark_of(dep)
        running = sorted((c for c in self._mine(dep) if c.labels.get(COMPONENT) == WORKER), key=lambda c: c.name)
        started = []
        if self._find(dep, SPARK_MASTER) is None:
            started.append(self._run_spark(dep, image, SPARK_MASTER, spark_master_cmd("127.0.0.1")))
        names = {c.name for c in running}
        for i in range(workers):
            if self.container(dep, f"{WORKER}-{i}") not in names:
                started.append(self._run_spark(dep, image, f"{WORKER}-{i}",
                                               spark_worker_cmd(comp, "127.0.0.1", "--webui-port 0 ")))
        for c in running:
            if int(c.name.rpartition("-")[2]) >= workers:
                c.stop(timeout=STOP_TIMEOUT_S)
                c.remove(force=True, v=True)
        return {"from": len(running), "containers": started}

    def _run_spark(self, dep: Deployment, image: str, component: str, cmd: str) -> str:
        role = SPARK_MASTER if component == SPARK_MASTER else WORKER
        box = self.client.containers.run(image, detach=True, name=self.container(dep, component),
                                         labels=dep.labels(role), entrypoint=["sh", "-c", SPARK_CLASS + cmd],
                                         network_mode="host", environment={**SPARK_ENV, **SPARK_LOCAL},
                                         healthcheck={"test": ["NONE"]},  # the image's is the server's
                                         restart_policy={"Name": "unless-stopped"})
        return str(box.name)

    def _image(self, ref: str) -> Any:
        """The image, which must be on this engine: nothing is pulled, so an install never
        reaches out to a registry the consortium did not choose."""
        try:
            return self.client.images.get(ref)
        except self.errors.ImageNotFound:
            make = "make broker-image" if ref == RABBITMQ_IMAGE else f"make image IMAGE={ref}"
            raise DeployError(f"image {ref}: not on this Docker engine; build it (`{make}`), "
                              "`docker pull` it from your registry or `docker load` it") from None

    def _home_volume(self, dep: Deployment, component: str = "home") -> str:
        name = self.volume(dep, component)
        try:
            self.client.volumes.get(name)
        except self.errors.NotFound:
            self.client.volumes.create(name, labels={CONSORTIUM: dep.spec.name, PARTY: dep.party.id})
        return name

    def _start_server(self, dep: Deployment) -> str:
        uid, gid = self._user(dep.image)
        box = self.client.containers.create(
            dep.image, name=self.container(dep, SERVER), labels=dep.labels(SERVER),
            command=["--host", "0.0.0.0", "--port", str(dep.port)],  # noqa: S104 - the party's own port
            environment={"FLOW_HOME": HOME, **(SPARK_LOCAL if _own_spark(dep) else {})}, network_mode="host",
            volumes={self._home_volume(dep): {"bind": HOME, "mode": "rw"}},
            extra_hosts={**({BROKER_HOST: "127.0.0.1"} if dep.bundled_broker else {}),
                         **({SPARK_MASTER: "127.0.0.1"} if _own_spark(dep) else {})} or None,
            restart_policy={"Name": "unless-stopped"})
        try:
            box.put_archive(HOME, _tar(host_network_files(dep), uid, gid))
            box.start()
        except self.errors.APIError as exc:
            box.remove(force=True)
            raise DeployError(f"party {dep.party.id}: the flow server's container ({dep.image}) did not start: "
                              f"{exc.explanation or exc}") from None
        return str(box.name)

    def _start_broker(self, dep: Deployment) -> str:
        """The bundled broker (``make broker-image``) on the party's broker port; its node is
        named after the party, as brokers on one host's network share its epmd."""
        conf = yaml.safe_load(dep.home_files()["service_conf.yaml"][0])["federation"]["rabbitmq"]
        fed = dep.party.engines.federation
        port = fed.broker_port if isinstance(fed, RabbitFederation) else AMQP_PORT
        box = self.client.containers.run(
            RABBITMQ_IMAGE, detach=True, name=self.container(dep, BROKER), labels=dep.labels(BROKER),
            network_mode="host", restart_policy={"Name": "unless-stopped"},
            environment=broker_env(conf["user"], conf["password"], port, node=f"{dep.name}@localhost"),
            volumes={self._home_volume(dep, BROKER): {"bind": "/var/lib/rabbitmq", "mode": "rw"}})
        # booted, not only pinged: its first user is made during the boot, and the server's
        # first connection with it must not be refused
        end = time.monotonic() + BROKER_WAIT_S
        while time.monotonic() < end:
            box.reload()
            if box.status != "running":
                raise DeployError(f"the bundled broker {box.name} stopped: `flow cluster logs rabbitmq`")
            if box.exec_run(["rabbitmq-diagnostics", "-q", "-t", "5", "check_running"]).exit_code == 0:
                return str(box.name)
            time.sleep(2)
        raise DeployError(f"party {dep.party.id}: the bundled broker {box.name} had not booted within "
                          f"{BROKER_WAIT_S}s: `flow cluster logs rabbitmq` tells why")

    def _user(self, ref: str) -> tuple[int, int]:
        """uid and gid of the image's user: the owner of the home files put into its volume."""
        user = (self.client.images.get(ref).attrs.get("Config") or {}).get("User") or ""
        uid, _, gid = user.partition(":")
        if not uid.isdigit():
            return DEFAULT_UID, DEFAULT_UID
        return int(uid), int(gid) if gid.isdigit() else int(uid)


def _own_spark(dep: Deployment) -> SparkComputing | None:
    """The party's Spark settings when it runs its own master (no ``master`` given), else None."""
    comp = dep.party.engines.computing
    return comp if isinstance(comp, SparkComputing) and comp.master is None else None


def _spark_of(dep: Deployment) -> SparkComputing:
    comp = dep.party.engines.computing
    if not isinstance(comp, SparkComputing):  # lifecycle.scale and install check it first
        raise DeployError(f"party {dep.party.id}: its computing engine is {comp.engine}, not spark")
    return comp


def host_network_files(dep: Deployment) -> dict[str, tuple[bytes, int]]:
    """The bundle's home files; with a bundled broker on the host network the server
    reaches it on its published port (the bundle names the port inside a compose network)."""
    files = dep.home_files()
    fed = dep.party.engines.federation
    if dep.bundled_broker and isinstance(fed, RabbitFederation):
        text, mode = files["service_conf.yaml"]
        conf = yaml.safe_load(text)
        conf["federation"]["rabbitmq"]["port"] = fed.broker_port
        files["service_conf.yaml"] = (yaml.safe_dump(conf, sort_keys=False).encode(), mode)
    return files


def _tar(files: dict[str, tuple[bytes, int]], uid: int, gid: int) -> bytes:
    """A tar of the home files owned by the server's user, folders 0700, secrets kept 0600."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        folders = sorted({str(p) for name in files for p in _parents(name)})
        for folder in folders:
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, 0o700, uid, gid, int(time.time())
            tar.addfile(info)
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _parents(name: str) -> list[str]:
    parts = name.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
