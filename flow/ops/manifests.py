"""One party's Kubernetes manifests and docker compose file, built as plain dicts.

Built from Python rather than text templates so that every value is quoted by the YAML
writer (a party id, a password or a host never breaks the file) and the result is
checked against the Kubernetes schemas in the tests (kubernetes-validate). The bundle's
``k8s/`` folder is a kustomize overlay of its own (``kustomize build k8s/`` or
``kubectl apply -k k8s/``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flow.ops.cluster_conf import ClusterSpec, PartySpec, RabbitFederation, SparkComputing, dns_name

HOME = "/var/lib/fedweave"
#: the bundled broker: Debian's rabbitmq-server at this version, in the image `make broker-image`
#: builds (deploy/rabbitmq/; the Makefile reads both lines); a tag has no '+', so '-' stands for it
RABBITMQ_VERSION = "3.10.8-1.1+deb12u1"
RABBITMQ_IMAGE = "fedweave/rabbitmq:3.10.8-1.1-deb12u1"
#: the broker image's user (deploy/rabbitmq/Dockerfile): Kubernetes runs it as non-root by number
RABBITMQ_UID = 10002
AMQP_PORT = 5672
BROKER_HOST = "rabbitmq"  # the broker's name in compose and in Kubernetes (a Service)
SPARK_MASTER = "spark-master"
SPARK_PORT = 7077
#: the master's web UI, whose /json/ tells its workers and applications
SPARK_WEBUI_PORT = 8080
#: the workers' scratch folder in the image's user's home: it may not write under pyspark's own folder
SPARK_ENV = {"SPARK_WORKER_DIR": f"{HOME}/spark-worker"}
BUNDLED_VHOST = "fedweave"
SPARK_CLASS = ('exec "$(python -c \'import os, pyspark; print(os.path.dirname(pyspark.__file__))\')'
                '/bin/spark-class" ')
PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
CONSORTIUM = "fedweave.io/consortium"
PARTY = "fedweave.io/party"
VERSION = "fedweave.io/version"


@dataclass
class Rendered:
    """What the manifests need beyond the spec: the files the server's home gets and which
    of them are secret."""

    party: PartySpec
    cluster: ClusterSpec
    config: dict[str, str]  # file name -> text (ConfigMap)
    secret: dict[str, str]  # file name -> text (Secret, mode 0600)
    broker_password: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def image(self) -> str:
        img = self.cluster.image_of(self.party)
        return f"{img.repository}:{img.tag}"

    @property
    def bundled_broker(self) -> bool:
        fed = self.party.engines.federation
        return isinstance(fed, RabbitFederation) and fed.broker == "bundled"

    @property
    def spark_workers(self) -> int:
        comp = self.party.engines.computing
        return comp.workers if isinstance(comp, SparkComputing) and comp.master is None else 0


def broker_user(party_id: str) -> str:
    """This party's own user on its bundled broker (peers get theirs: the bundle's README)."""
    return f"fw_{party_id}"


def broker_env(user: str, password: str, port: int = AMQP_PORT, node: str | None = None) -> dict[str, str]:
    """The bundled broker's variables (deploy/rabbitmq/entrypoint.sh), alike on every target:
    its first user, password and vhost, its AMQP port and, where brokers share a host's
    network, a node name of its own."""
    env = {"RABBITMQ_DEFAULT_USER": user, "RABBITMQ_DEFAULT_PASS": password,
           "RABBITMQ_DEFAULT_VHOST": BUNDLED_VHOST, "RABBITMQ_NODE_PORT": str(port)}
    if node:
        env["RABBITMQ_NODENAME"] = node
    return env


def _rabbit(r: Rendered) -> RabbitFederation:
    fed = r.party.engines.federation
    if not isinstance(fed, RabbitFederation):
        raise TypeError(f"party {r.party.id} does not use RabbitMQ")
    return fed


def _spark(r: Rendered) -> SparkComputing:
    comp = r.party.engines.computing
    if not isinstance(comp, SparkComputing):
        raise TypeError(f"party {r.party.id} does not use Spark")
    return comp


def namespace(r: Rendered) -> str:
    return dns_name(r.cluster.name, r.party.id)


def _labels(r: Rendered, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "fedweave", COMPONENT: component, PART_OF: "fedweave",
            PARTY: r.party.id}


def _meta(r: Rendered, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": namespace(r), "labels": _labels(r, component)}


def _select(r: Rendered, component: str) -> dict[str, Any]:
    return {"matchLabels": {COMPONENT: component, PARTY: r.party.id}}


def _server_resources(r: Rendered) -> dict[str, Any]:
    res = r.party.resources
    requests: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    out: dict[str, Any] = {"requests": requests, "limits": {"memory": res.memory}}
    if res.gpu:  # extended resources are asked for in limits (and requests equal them)
        requests["nvidia.com/gpu"] = res.gpu
        out["limits"]["nvidia.com/gpu"] = res.gpu
    return out


def _file_mounts(r: Rendered) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"name": "home", "mountPath": HOME}]
    for name in r.config:
        mounts.append({"name": "config", "mountPath": f"{HOME}/{name}", "subPath": name, "readOnly": True})
    for name in r.secret:
        mounts.append({"name": "secret", "mountPath": f"{HOME}/{name}", "subPath": name.replace("/", "__"),
                       "readOnly": True})
    return mounts


def server_statefulset(r: Rendered) -> dict[str, Any]:
    port = r.party.address.port
    probe = {"periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3}
    container = {
        "name": "server", "image": r.image, "imagePullPolicy": "IfNotPresent",
        "command": ["flow", "server", "start"], "args": ["--host", "0.0.0.0", "--port", str(port)],  # noqa: S104
        "env": [{"name": "FLOW_HOME", "value": HOME}],
        "ports": [{"name": "http", "containerPort": port}],
        "volumeMounts": _file_mounts(r),
        "resources": _server_resources(r),
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 10, **probe},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "initialDelaySeconds": 5, **probe},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    volumes = [{"name": "config", "configMap": {"name": "fedweave-config"}},
               {"name": "secret", "secret": {"secretName": "fedweave-secret", "defaultMode": 0o600}}]
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(r, "fedweave-server", "server"),
        "spec": {
            "serviceName": "fedweave-server", "replicas": 1, "selector": _select(r, "server"),
            "template": {"metadata": {"labels": _labels(r, "server")},
                         "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
                                  "containers": [container], "volumes": volumes}},
            "volumeClaimTemplates": [{"metadata": {"name": "home"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": r.party.resources.storage}}}}],
        },
    }


def _service(r: Rendered, name: str, component: str, ports: list[tuple[str, int, int]],
             kind: str = "ClusterIP") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(r, name, component),
            "spec": {"type": kind, "selector": _select(r, component)["matchLabels"],
                     "ports": [{"name": n, "port": p, "targetPort": t} for n, p, t in ports]}}


def rabbitmq(r: Rendered) -> list[dict[str, Any]]:
    fed = _rabbit(r)
    password = {"secretKeyRef": {"name": "fedweave-secret", "key": "rabbitmq_password"}}  # not in the manifest
    env: list[dict[str, Any]] = [{"name": k, "valueFrom": password} if k == "RABBITMQ_DEFAULT_PASS" else
                                 {"name": k, "value": v} for k, v in broker_env(broker_user(r.party.id), "").items()]
    container = {
        "name": "rabbitmq", "image": RABBITMQ_IMAGE, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "amqp", "containerPort": AMQP_PORT}], "env": env,
        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/rabbitmq"}],
        "readinessProbe": {"tcpSocket": {"port": "amqp"}, "periodSeconds": 10},
        "livenessProbe": {"exec": {"command": ["rabbitmq-diagnostics", "-q", "ping"]},
                          "initialDelaySeconds": 30, "periodSeconds": 30, "timeoutSeconds": 10},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": RABBITMQ_UID, "runAsGroup": RABBITMQ_UID,
                               "fsGroup": RABBITMQ_UID},
           "containers": [container]}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(r, BROKER_HOST, "rabbitmq"),
           "spec": {"serviceName": BROKER_HOST, "replicas": 1, "selector": _select(r, "rabbitmq"),
                    "template": {"metadata": {"labels": _labels(r, "rabbitmq")}, "spec": pod},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}]}}
    # peers publish to this party's inbound queues here: reachable from outside the cluster
    svc = _service(r, BROKER_HOST, "rabbitmq", [("amqp", fed.broker_port, AMQP_PORT)], kind="LoadBalancer")
    return [sts, svc]


def spark_master_cmd(host: str) -> str:
    """The Spark master's ``spark-class`` arguments, on every target."""
    return f"org.apache.spark.deploy.master.Master --host {host} --port {SPARK_PORT} --webui-port {SPARK_WEBUI_PORT}"


def spark_worker_cmd(comp: SparkComputing, master_host: str, options: str = "") -> str:
    """A Spark worker's ``spark-class`` arguments: the consortium file's cores and memory."""
    return (f"org.apache.spark.deploy.worker.Worker --cores {comp.worker_cores} --memory {comp.worker_memory} "
            f"{options}spark://{master_host}:{SPARK_PORT}")


def spark(r: Rendered) -> list[dict[str, Any]]:
    comp = _spark(r)

    def deployment(name: str, component: str, replicas: int, cmd: str, res: dict[str, Any]) -> dict[str, Any]:
        container = {"name": component, "image": r.image, "command": ["sh", "-c", SPARK_CLASS + cmd],
                     "env": [{"name": k, "value": v} for k, v in SPARK_ENV.items()], "resources": res,
                     "ports": [{"containerPort": SPARK_PORT if component == SPARK_MASTER else 7078}]}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(r, name, component),
                "spec": {"replicas": replicas, "selector": _select(r, component),
                         "template": {"metadata": {"labels": _labels(r, component)},
                                      "spec": {"containers": [container]}}}}

    master = deployment(SPARK_MASTER, SPARK_MASTER, 1, spark_master_cmd("0.0.0.0"),  # noqa: S104 - its pod's
                        {"requests": {"cpu": "500m", "memory": "1Gi"}})
    worker = deployment("spark-worker", "spark-worker", comp.workers,
                        spark_worker_cmd(comp, SPARK_MASTER, "--port 7078 "),
                        {"requests": {"cpu": str(comp.worker_cores), "memory": _k8s_memory(comp.worker_memory)}})
    return [master, _service(r, SPARK_MASTER, SPARK_MASTER, [("spark", SPARK_PORT, SPARK_PORT)]), worker]


def _k8s_memory(spark_memory: str) -> str:
    """Spark's 1g / 512m as a Kubernetes quantity."""
    unit = {"g": "Gi", "m": "Mi", "k": "Ki", "t": "Ti"}.get(spark_memory[-1:].lower())
    return spark_memory[:-1] + unit if unit else spark_memory


def network_policies(r: Rendered) -> list[dict[str, Any]]:
    """Deny every inbound connection but: the server's clients (pods labelled
    fedweave.io/client=true) and Spark (executors talk back to the driver in the server) to
    the server; peers to a bundled broker's AMQP port; the server and Spark to Spark."""
    def policy(name: str, selector: dict[str, Any], ingress: list[dict[str, Any]]) -> dict[str, Any]:
        return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": _meta(r, name, "policy"),
                "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress}}

    spark_pods = {"podSelector": {"matchExpressions": [
        {"key": COMPONENT, "operator": "In", "values": [SPARK_MASTER, "spark-worker"]}]}}
    server_from = [{"from": [{"podSelector": {"matchLabels": {"fedweave.io/client": "true"}}}],
                   "ports": [{"protocol": "TCP", "port": r.party.address.port}]}]
    out = [policy("default-deny-ingress", {}, []),
           policy("server-clients", _select(r, "server"), server_from)]
    if r.spark_workers:
        out[1]["spec"]["ingress"].append({"from": [spark_pods]})
        out.append(policy("spark", spark_pods["podSelector"], [{"from": [
            spark_pods, {"podSelector": _select(r, "server")}]}]))
    if r.bundled_broker:
        out.append(policy("broker-peers", _select(r, "rabbitmq"), [{"ports": [{"protocol": "TCP",
                                                                                "port": AMQP_PORT}]}]))
    return out


def k8s_resources(r: Rendered) -> dict[str, dict[str, Any]]:
    """file name -> manifest, in the order they are applied."""
    ns = namespace(r)
    secret = {k.replace("/", "__"): v for k, v in r.secret.items()}
    if r.broker_password:
        secret["rabbitmq_password"] = r.broker_password
    out: dict[str, dict[str, Any]] = {
        "namespace.yaml": {"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": ns, "labels": _labels(r, "namespace")}},
        "configmap.yaml": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(r, "fedweave-config", "server"),
                           "data": dict(r.config)},
        "secret.yaml": {"apiVersion": "v1", "kind": "Secret", "metadata": _meta(r, "fedweave-secret", "server"),
                        "type": "Opaque", "stringData": secret},
        "server.yaml": server_statefulset(r),
        "server-service.yaml": _service(r, "fedweave-server", "server",
                                        [("http", r.party.address.port, r.party.address.port)]),
    }
    if r.bundled_broker:
        out["rabbitmq.yaml"], out["rabbitmq-service.yaml"] = rabbitmq(r)
    if r.spark_workers:
        out["spark-master.yaml"], out["spark-master-service.yaml"], out["spark-workers.yaml"] = spark(r)
    for i, pol in enumerate(network_policies(r)):
        out[f"networkpolicy-{i}-{pol['metadata']['name']}.yaml"] = pol
    return out


def kustomization(r: Rendered, files: list[str]) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": namespace(r),
            "labels": [{"pairs": {CONSORTIUM: r.cluster.name}}], "resources": files}


def compose(r: Rendered) -> dict[str, Any]:
    """docker compose file: the server (its home a named volume, its config files bound in
    read-only), a bundled broker and Spark master and workers when the party has them."""
    port = r.party.address.port
    binds = [f"./home/{name}:{HOME}/{name}:ro" for name in [*r.config, *r.secret]]
    server: dict[str, Any] = {
        "image": r.image, "restart": "unless-stopped",
        "entrypoint": ["flow", "server", "start", "--host", "0.0.0.0", "--port", str(port)],  # noqa: S104
        "environment": {"FLOW_HOME": HOME}, "ports": [f"{port}:{port}"],
        "volumes": [f"home:{HOME}", *binds],
        "healthcheck": {"test": ["CMD", "python", "-c",
                                 f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/healthz')"],
                        "interval": "10s", "timeout": "5s", "retries": 3},
    }
    if r.party.resources.gpu:
        server["deploy"] = {"resources": {"reservations": {"devices": [
            {"driver": "nvidia", "count": r.party.resources.gpu, "capabilities": ["gpu"]}]}}}
    services: dict[str, Any] = {"server": server}
    volumes: dict[str, Any] = {"home": {}}
    if r.bundled_broker:
        fed = _rabbit(r)
        services[BROKER_HOST] = {
            "image": RABBITMQ_IMAGE, "restart": "unless-stopped", "ports": [f"{fed.broker_port}:{AMQP_PORT}"],
            "environment": broker_env(broker_user(r.party.id), r.broker_password or ""),
            "volumes": ["rabbitmq:/var/lib/rabbitmq"],
            "healthcheck": {"test": ["CMD", "rabbitmq-diagnostics", "-q", "ping"], "interval": "10s"}}
        server["depends_on"] = {BROKER_HOST: {"condition": "service_healthy"}}
        volumes["rabbitmq"] = {}
    if r.spark_workers:
        comp = _spark(r)
        services[SPARK_MASTER] = {"image": r.image, "environment": dict(SPARK_ENV), "healthcheck": {"disable": True},
                                  "entrypoint": ["sh", "-c", SPARK_CLASS + spark_master_cmd("0.0.0.0")]}  # noqa: S104
        services["spark-worker"] = {
            "image": r.image, "depends_on": [SPARK_MASTER], "deploy": {"replicas": comp.workers},
            "environment": dict(SPARK_ENV), "healthcheck": {"disable": True},  # the image's is the server's
            "entrypoint": ["sh", "-c", SPARK_CLASS + spark_worker_cmd(comp, SPARK_MASTER)]}
    return {"name": namespace(r), "services": services, "volumes": volumes}
