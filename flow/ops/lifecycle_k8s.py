"""The ``k8s`` target: a party's bundle on the Kubernetes cluster of the current kubeconfig.

install applies the manifests of the bundle's ``k8s/`` folder (the files its
kustomization lists, in that order) by server-side apply, so a second install or an
install over a half-made one converges instead of failing on what exists. The server's
home is the StatefulSet's PersistentVolumeClaim: an upgrade (a new image on the same
StatefulSet) and a ``delete --keep-data`` (everything but the namespace and its claims)
keep the store, keys, tables, models and job history. Readiness is the cluster's own: the
rollout done and the server pod Ready (its readiness probe is ``/readyz``), so this
machine need not reach the server to install it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator

import yaml

from flow.ops.lifecycle_api import DeployError, Deployment, Target, register, require_sdk
from flow.ops.manifests import COMPONENT, CONSORTIUM, PARTY, VERSION

FIELD_MANAGER = "fedweave"
DELETE_WAIT_S = 300
APPLY = "application/apply-patch+yaml"
SERVER = "fedweave-server"
WORKERS = "spark-worker"
#: run in the server's pod: its jobs in the given states, as JSON (the pod's own API, its own token)
JOBS = ("import json, os, sys; from flow.ops.remote import RemoteOps; "
        "ops = RemoteOps('127.0.0.1', int(sys.argv[1]), open(os.path.join(os.environ['FLOW_HOME'], "
        "'server_token')).read().strip(), timeout=10); "
        "print(json.dumps([j['job_id'] for s in sys.argv[2:] for j in ops.job_list(limit=1000, status=s)]))")
#: the images of these workloads are the party's image (the broker's is pinned apart)
OWN_IMAGE = ("server", "spark-master", WORKERS)


@dataclass(frozen=True)
class Kind:
    """How the client reaches one kind: its API class and the suffix of its methods
    (``create_``/``patch_``/``read_``/``delete_`` + suffix)."""

    api: str
    suffix: str
    namespaced: bool = True


#: every kind the manifests render; a kind missing here is refused before anything is applied
KINDS: dict[str, Kind] = {
    "Namespace": Kind("CoreV1Api", "namespace", namespaced=False),
    "ConfigMap": Kind("CoreV1Api", "namespaced_config_map"),
    "Secret": Kind("CoreV1Api", "namespaced_secret"),
    "PersistentVolumeClaim": Kind("CoreV1Api", "namespaced_persistent_volume_claim"),
    "Service": Kind("CoreV1Api", "namespaced_service"),
    "StatefulSet": Kind("AppsV1Api", "namespaced_stateful_set"),
    "Deployment": Kind("AppsV1Api", "namespaced_deployment"),
    "NetworkPolicy": Kind("NetworkingV1Api", "namespaced_network_policy"),
}
#: kept by ``delete --keep-data``: the namespace holds the claims, the claims the data
KEPT = ("Namespace", "PersistentVolumeClaim")


@dataclass(frozen=True)
class Call:
    """One object to apply: which API method, on what."""

    kind: str
    name: str
    namespace: str | None
    body: dict[str, Any]

    @property
    def how(self) -> Kind:
        return KINDS[self.kind]


def manifests(dep: Deployment) -> list[dict[str, Any]]:
    """The bundle's manifests in the kustomization's order, with what kustomize would add
    (the consortium label) and the image of this deployment (``--image``/``--version``)."""
    folder = dep.bundle / "k8s"
    try:
        listed = yaml.safe_load((folder / "kustomization.yaml").read_text(encoding="utf-8"))["resources"]
    except (OSError, KeyError, TypeError) as exc:
        raise DeployError(f"party {dep.party.id}: {folder}/kustomization.yaml: not a bundle's k8s folder ({exc}); "
                          f"write the bundle with `flow cluster generate --party {dep.party.id}`") from None
    docs = []
    for name in listed:
        doc = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
        doc.setdefault("metadata", {}).setdefault("labels", {})[CONSORTIUM] = dep.spec.name
        _set_image(doc, dep)
        docs.append(doc)
    return docs


def _set_image(doc: dict[str, Any], dep: Deployment) -> None:
    if doc.get("kind") not in ("StatefulSet", "Deployment"):
        return
    component = doc["metadata"]["labels"].get(COMPONENT)
    if component not in OWN_IMAGE:
        return
    doc["metadata"]["labels"][VERSION] = dep.version
    template = doc["spec"]["template"]
    template["metadata"].setdefault("labels", {})[VERSION] = dep.version
    for container in template["spec"]["containers"]:
        container["image"] = dep.image


def plan(dep: Deployment) -> list[Call]:
    """The API calls install makes, without a cluster: one per manifest, every kind known."""
    calls = []
    for doc in manifests(dep):
        kind, meta = doc.get("kind"), doc.get("metadata", {})
        if kind not in KINDS:
            raise DeployError(f"party {dep.party.id}: the bundle has a {kind} ({meta.get('name')}) that "
                              f"--target k8s cannot apply (it applies {', '.join(KINDS)})")
        calls.append(Call(kind, meta["name"], meta.get("namespace") if KINDS[kind].namespaced else None, doc))
    return calls


@register("k8s")
class KubernetesTarget(Target):
    options = ("kubeconfig", "context")

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        k8s = require_sdk("kubernetes", "k8s", "k8s")
        self.k8s = k8s
        try:
            k8s.config.load_kube_config(config_file=kubeconfig, context=context)
        except (k8s.config.ConfigException, OSError, TypeError) as exc:
            raise DeployError(f"no usable kubeconfig ({kubeconfig or 'KUBECONFIG or ~/.kube/config'}"
                              f"{f', context {context}' if context else ''}): {exc}; give --kubeconfig "
                              "and --context of the cluster to install on") from None
        client = k8s.client.ApiClient()
        self.host = client.configuration.host
        self.apis = {name: getattr(k8s.client, name)(client) for name in {k.api for k in KINDS.values()}}
        self.core = self.apis["CoreV1Api"]

    @staticmethod
    def namespace(dep: Deployment) -> str:
        return dep.name  # dns_name: at most 63 characters

    @contextlib.contextmanager
    def _api(self, dep: Deployment, doing: str) -> Iterator[None]:
        """Every error of the API as one line naming the party and what to do."""
        import urllib3

        try:
            yield
        except self.k8s.client.ApiException as exc:
            if exc.status in (401, 403):
                raise DeployError(f"party {dep.party.id}: {doing}: forbidden by the cluster at {self.host} "
                                  f"({exc.reason}); ask for rights on namespace {self.namespace(dep)} or "
                                  "use another --context") from None
            raise DeployError(f"party {dep.party.id}: {doing}: {exc.status} {exc.reason}: "
                              f"{_message(exc.body)}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DeployError(f"party {dep.party.id}: {doing}: the Kubernetes API at {self.host} does not answer "
                              f"({type(exc).__name__}); check the kubeconfig's cluster or give --context") from None

    def _call(self, call: Call, verb: str, **kwargs: Any) -> Any:
        method = getattr(self.apis[call.how.api], f"{verb}_{call.how.suffix}")
        args = (call.name, call.namespace) if call.how.namespaced else (call.name,)
        return method(*args, **kwargs)

    def _exists(self, dep: Deployment) -> bool:
        with self._api(dep, "reading its namespace"):
            try:
                self.core.read_namespace(self.namespace(dep))
            except self.k8s.client.ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    # the interface ----------------------------------------------------------
    def endpoint(self, dep: Deployment) -> str:
        return f"http://{dep.party.address.host}:{dep.port}"

    def install(self, dep: Deployment) -> dict[str, Any]:
        calls = plan(dep)
        applied = []
        for call in calls:
            with self._api(dep, f"applying {call.kind} {call.name}"):
                self._call(call, "patch", body=call.body, field_manager=FIELD_MANAGER, force=True,
                           _content_type=APPLY)
            applied.append(f"{call.kind}/{call.name}")
        return {"namespace": self.namespace(dep), "applied": applied, "image": dep.image, "cluster": self.host}

    def ready(self, dep: Deployment) -> str:
        """"ready" once the server's rollout is done and its pod Ready, else what it waits on."""
        with self._api(dep, "reading the server"):
            try:
                sts = self.apis["AppsV1Api"].read_namespaced_stateful_set(SERVER, self.namespace(dep))
            except self.k8s.client.ApiException as exc:
                if exc.status == 404:
                    return "no server StatefulSet"
                raise
            st, want = sts.status, sts.spec.replicas or 0
            if st is None:
                return "rolling out (no status yet)"
            if (st.observed_generation or 0) < (sts.metadata.generation or 0) or st.update_revision != \
                    st.current_revision or (st.updated_replicas or 0) < want:
                return f"rolling out ({st.updated_replicas or 0}/{want} updated)"
            if (st.ready_replicas or 0) < want:
                pods = self._pods(dep, "server")
                return "; ".join(f"{p['name']}: {p['state']}" for p in pods) or "no server pod yet"
        return "ready"

    def describe(self, dep: Deployment) -> list[dict[str, Any]]:
        if not self._exists(dep):
            return []
        ns, out = self.namespace(dep), []
        selector = f"{PARTY}={dep.party.id}"
        apps = self.apis["AppsV1Api"]
        with self._api(dep, "listing its workloads"):
            workloads = [*apps.list_namespaced_stateful_set(ns, label_selector=selector).items,
                         *apps.list_namespaced_deployment(ns, label_selector=selector).items]
            services = {s.metadata.labels.get(COMPONENT): s for s in
                        self.core.list_namespaced_service(ns, label_selector=selector).items}
        for w in sorted(workloads, key=lambda w: w.metadata.name):
            labels = w.metadata.labels or {}
            component, want, ready = labels.get(COMPONENT), w.spec.replicas or 0, w.status.ready_replicas or 0
            out.append({"name": w.metadata.name, "kind": w.kind or type(w).__name__.removeprefix("V1"),
                        "component": component, "state": "running" if want and ready == want else
                        ("scaled to 0" if not want else "starting"), "replicas": f"{ready}/{want}",
                        "image": w.spec.template.spec.containers[0].image, "version": labels.get(VERSION),
                        "endpoints": _endpoints(services.get(component)),
                        "pods": self._pods(dep, component or "")})
        return out

    def logs(self, dep: Deployment, component: str, follow: bool, since: datetime | None,
             tail: int | None) -> Iterator[str]:
        pods = self._pods(dep, component)
        if not pods:
            raise DeployError(f"party {dep.party.id} has no {component} pod in namespace {self.namespace(dep)}: "
                              "is it installed? (`flow cluster describe --target k8s`)")
        kwargs: dict[str, Any] = {"container": component}  # the manifests name containers by component
        if since is not None:
            kwargs["since_seconds"] = max(1, int((datetime.now(timezone.utc) - since).total_seconds()))
        if tail is not None:
            kwargs["tail_lines"] = tail
        args = (pods[0]["name"], self.namespace(dep))
        with self._api(dep, f"reading the log of {pods[0]['name']}"):
            if follow:
                watch = self.k8s.watch.Watch()
                yield from watch.stream(self.core.read_namespaced_pod_log, *args, **kwargs)
                return
            text = self.core.read_namespaced_pod_log(*args, **kwargs)
        yield from text.splitlines()

    def upgrade(self, dep: Deployment) -> dict[str, Any]:
        apps, ns = self.apis["AppsV1Api"], self.namespace(dep)
        with self._api(dep, "upgrading the server"):
            before = apps.read_namespaced_stateful_set(SERVER, ns).spec.template.spec.containers[0].image
            labels = {VERSION: dep.version}
            apps.patch_namespaced_stateful_set(SERVER, ns, {
                "metadata": {"labels": labels},
                "spec": {"template": {"metadata": {"labels": labels},
                                      "spec": {"containers": [{"name": "server", "image": dep.image}]}}}})
        return {"from": before, "to": dep.image, "statefulset": f"{ns}/{SERVER}"}

    def jobs(self, dep: Deployment, states: tuple[str, ...]) -> list[str]:
        """Asked inside the server's pod (pods/exec), so the server need not be reachable
        from this machine for an upgrade to know whether jobs run."""
        import json

        from kubernetes.stream import stream

        pods = self._pods(dep, "server")
        if not pods:
            raise DeployError(f"party {dep.party.id}: no server pod to ask which jobs run: `flow cluster describe`")
        with self._api(dep, f"asking {pods[0]['name']} which jobs run"):
            out = stream(self.core.connect_get_namespaced_pod_exec, pods[0]["name"], self.namespace(dep),
                         container="server", command=["python3", "-c", JOBS, str(dep.port), *states],
                         stdout=True, stderr=True, stdin=False, tty=False)
        try:
            return [str(j) for j in json.loads(str(out).strip().splitlines()[-1])]
        except (ValueError, IndexError):
            raise DeployError(f"party {dep.party.id}: cannot ask its server which jobs run ({str(out)[-300:]}); "
                              "an upgrade needs that answer") from None

    def scale(self, dep: Deployment, workers: int) -> dict[str, Any]:
        apps, ns = self.apis["AppsV1Api"], self.namespace(dep)
        with self._api(dep, f"scaling {WORKERS}"):
            before = apps.read_namespaced_deployment(WORKERS, ns).spec.replicas
            apps.patch_namespaced_deployment_scale(WORKERS, ns, {"spec": {"replicas": workers}})
        return {"deployment": f"{ns}/{WORKERS}", "from": before, "to": workers}

    def delete(self, dep: Deployment, keep_data: bool) -> dict[str, Any]:
        if not self._exists(dep):
            return {"namespace": self.namespace(dep), "removed": [], "kept": []}
        calls = plan(dep)
        removed, kept = [], []
        for call in reversed(calls):
            if call.kind in KEPT:
                continue
            with self._api(dep, f"deleting {call.kind} {call.name}"):
                try:
                    self._call(call, "delete", propagation_policy="Foreground")
                except self.k8s.client.ApiException as exc:
                    if exc.status != 404:  # already gone is fine
                        raise
                    continue
            removed.append(f"{call.kind}/{call.name}")
        self._wait_gone(dep, [c for c in calls if c.kind not in KEPT])
        ns = self.namespace(dep)
        with self._api(dep, "listing its volume claims"):
            claims = [c.metadata.name for c in self.core.list_namespaced_persistent_volume_claim(ns).items]
        if keep_data:
            kept = [f"PersistentVolumeClaim/{c}" for c in claims] + [f"Namespace/{ns}"]
        else:
            with self._api(dep, f"deleting namespace {ns}"):
                self.core.delete_namespace(ns)  # its claims, and their volumes, with it
            self._wait_gone(dep, [c for c in calls if c.kind == "Namespace"])
            removed += [f"PersistentVolumeClaim/{c}" for c in claims] + [f"Namespace/{ns}"]
        return {"namespace": ns, "removed": removed, "kept": kept}

    # helpers ------------------------------------------------------------------
    def _wait_gone(self, dep: Deployment, calls: list[Call]) -> None:
        """Until each object reads 404: an install right after a delete would otherwise
        meet objects still terminating."""
        end = time.monotonic() + DELETE_WAIT_S
        for call in calls:
            while True:
                with self._api(dep, f"waiting for {call.kind} {call.name} to go"):
                    try:
                        self._call(call, "read")
                    except self.k8s.client.ApiException as exc:
                        if exc.status == 404:
                            break
                        raise
                if time.monotonic() > end:
                    raise DeployError(f"party {dep.party.id}: {call.kind} {call.name} still there "
                                      f"{DELETE_WAIT_S}s after its delete: `kubectl describe` tells what holds it")
                time.sleep(2)

    def _pods(self, dep: Deployment, component: str) -> list[dict[str, Any]]:
        with self._api(dep, f"listing its {component} pods"):
            pods = self.core.list_namespaced_pod(self.namespace(dep),
                                                 label_selector=f"{PARTY}={dep.party.id},{COMPONENT}={component}")
        return [_pod(p) for p in sorted(pods.items, key=lambda p: p.metadata.name)]


def _pod(p: Any) -> dict[str, Any]:
    """A pod's name, phase or what its first container waits on (ImagePullBackOff...)."""
    statuses = p.status.container_statuses or []
    waiting = next((s.state.waiting.reason for s in statuses if s.state and s.state.waiting), None)
    return {"name": p.metadata.name, "state": waiting or p.status.phase, "node": p.spec.node_name,
            "ready": bool(statuses) and all(s.ready for s in statuses),
            "restarts": sum(s.restart_count or 0 for s in statuses), "ip": p.status.pod_ip}


def _endpoints(svc: Any) -> list[str]:
    if svc is None:
        return []
    hosts = [svc.spec.cluster_ip] + [i.ip or i.hostname for i in
                                     ((svc.status.load_balancer and svc.status.load_balancer.ingress) or [])]
    return [f"{h}:{p.port}" for h in hosts if h for p in svc.spec.ports or []]


def _message(body: Any) -> str:
    try:
        return str(yaml.safe_load(body).get("message", body))
    except (yaml.YAMLError, AttributeError):
        return str(body)[:300]
