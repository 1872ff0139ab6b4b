"""Which objects each node may read: upstream's node authorizer graph (plugin/pkg/auth/authorizer/node/graph.go).

A pod bound to a node links the node to what the pod references: its secrets (image pull secrets,
volumes, env), config maps, persistent volume claims and service account. A persistent volume bound
to a claim links that claim to the volume and the volume to the secrets the kubelet uses to mount it.
`reachable(node, vertex)` says whether such a chain leads from the object to the node.

The graph follows the apiserver's watch cache for pods and persistent volumes: before each question
it applies the events that reached the cache since the last one (a write has reached the cache
before its response is sent, so a request sees every write that returned before it started). Mirror
pods link only to their node: a node must not gain access to objects by creating a pod.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ...api.pod_references import pod_configmap_names, pod_secret_names
from ..watchcache import ResourceCache

SECRET, CONFIGMAP, PVC, PV, SERVICE_ACCOUNT, POD = "secret", "configmap", "pvc", "pv", "serviceaccount", "pod"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"

Vertex = tuple[str, str, str]  # (type, namespace, name); cluster-scoped objects have namespace ""


def pod_references(pod: dict) -> set[Vertex]:
    """Every secret, config map, claim and service account a pod names (in its namespace)."""
    namespace = pod["metadata"].get("namespace", "")
    spec = pod.get("spec") or {}
    claims: list[str] = []
    for volume in spec.get("volumes") or ():
        claim = volume.get("persistentVolumeClaim")
        if isinstance(claim, dict):
            claims.append(claim.get("claimName") or "")
        elif isinstance(volume.get("ephemeral"), dict):
            # The claim a generic ephemeral volume gets: <pod name>-<volume name> (upstream VolumeClaimName).
            claims.append(f"{pod['metadata'].get('name', '')}-{volume.get('name', '')}")
    refs = {(SECRET, namespace, n) for n in pod_secret_names(pod)}
    refs.update((CONFIGMAP, namespace, n) for n in pod_configmap_names(pod))
    refs.update((PVC, namespace, n) for n in claims if n)
    if spec.get("serviceAccountName"):
        refs.add((SERVICE_ACCOUNT, namespace, spec["serviceAccountName"]))
    return refs


def volume_secrets(pv: dict, claim_namespace: str) -> set[Vertex]:
    """The secrets a kubelet reads to mount a persistent volume (upstream VisitPVSecretNames, kubelet-visible
    ones): a reference without a namespace is in the bound claim's namespace."""
    spec = pv.get("spec") or {}
    found: set[Vertex] = set()

    def add(ref: object, namespace_key: str = "namespace") -> None:
        if isinstance(ref, dict) and ref.get("name"):
            found.add((SECRET, ref.get(namespace_key) or claim_namespace, ref["name"]))

    azure = spec.get("azureFile")
    if isinstance(azure, dict) and azure.get("secretName"):
        found.add((SECRET, azure.get("secretNamespace") or claim_namespace, azure["secretName"]))
    for plugin in ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos"):
        source = spec.get(plugin)
        if isinstance(source, dict):
            add(source.get("secretRef"))
    csi = spec.get("csi")
    if isinstance(csi, dict):
        for key in ("nodePublishSecretRef", "nodeStageSecretRef", "nodeExpandSecretRef"):
            add(csi.get(key))
    return found


@dataclass
class _PodEntry:
    node: str
    refs: frozenset[Vertex]


@dataclass
class _VolumeEntry:
    claim: Vertex
    secrets: frozenset[Vertex]


class _Feed:
    """Follows one resource's watch-cache history from where the graph last read it."""

    def __init__(self, cache: ResourceCache):
        self.cache = cache
        self.seen = -1

    def latest(self) -> int:
        history = self.cache.history
        return max(self.cache.oldest_rv, history[-1].rv if history else 0)

    def behind(self) -> bool:
        history = self.cache.history
        return bool(history) and history[-1].rv > self.seen

    def new_events(self) -> list | None:
        """Events after `seen`, oldest first; None when some of them already left the history."""
        if self.seen < self.cache.oldest_rv:
            return None
        out = []
        for event in reversed(self.cache.history):
            if event.rv <= self.seen:
                break
            out.append(event)
        out.reverse()
        return out


class NodeGraph:
    def __init__(self, pods: ResourceCache, volumes: ResourceCache):
        self._pod_feed = _Feed(pods)
        self._volume_feed = _Feed(volumes)
        self._pods: dict[tuple[str, str], _PodEntry] = {}
        self._volumes: dict[str, _VolumeEntry] = {}
        # How many pods on each node reference a vertex: a pod's edges end at its node, so one lookup answers.
        self._referenced_on: dict[Vertex, Counter[str]] = {}
        self._volumes_of_secret: dict[Vertex, set[str]] = {}

    # ---- following the watch cache ----------------------------------------------------

    def refresh(self) -> None:
        for feed, apply, rebuild in ((self._pod_feed, self._apply_pod, self._rebuild_pods),
                                     (self._volume_feed, self._apply_volume, self._rebuild_volumes)):
            if feed.seen >= 0 and not feed.behind():
                continue
            events = feed.new_events() if feed.seen >= 0 else None
            if events is None:
                rebuild()
            else:
                for event in events:
                    apply(event.type, event.cur.obj, event.prev.obj if event.prev is not None else None)
            feed.seen = feed.latest()

    def _rebuild_pods(self) -> None:
        for key in list(self._pods):
            self._remove_pod(key)
        for cached in self._pod_feed.cache.objects.values():
            self._set_pod(cached.obj)

    def _rebuild_volumes(self) -> None:
        for name in list(self._volumes):
            self._remove_volume(name)
        for cached in self._volume_feed.cache.objects.values():
            self._set_volume(cached.obj)

    def _apply_pod(self, type_: str, pod: dict, old: dict | None) -> None:
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta.get("name", ""))
        if type_ == "DELETED":
            self._remove_pod(key)
            return
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if not node:
            return  # not bound yet: links nothing
        if old is not None and key in self._pods and self._pods[key].node == node and (
                old["metadata"].get("uid") == meta.get("uid")) and (
                (old.get("spec") or {}).get("ephemeralContainers") == (pod.get("spec") or {}).get(
                    "ephemeralContainers")):
            return  # a bound pod's references change only when an ephemeral container is added
        self._set_pod(pod)

    def _set_pod(self, pod: dict) -> None:
        meta = pod["metadata"]
        key = (meta.get("namespace", ""), meta.get("name", ""))
        self._remove_pod(key)
        node = (pod.get("spec") or {}).get("nodeName") or ""
        if not node:
            return
        mirror = MIRROR_POD_ANNOTATION in (meta.get("annotations") or {})
        refs = frozenset() if mirror else frozenset(pod_references(pod))
        self._pods[key] = _PodEntry(node, refs)
        for vertex in refs:
            self._referenced_on.setdefault(vertex, Counter())[node] += 1

    def _remove_pod(self, key: tuple[str, str]) -> None:
        entry = self._pods.pop(key, None)
        if entry is None:
            return
        for vertex in entry.refs:
            counts = self._referenced_on[vertex]
            counts[entry.node] -= 1
            if counts[entry.node] <= 0:
                del counts[entry.node]
            if not counts:
                del self._referenced_on[vertex]

    def _apply_volume(self, type_: str, pv: dict, old: dict | None) -> None:
        if type_ == "DELETED":
            self._remove_volume(pv["metadata"]["name"])
        else:
            self._set_volume(pv)

    def _set_volume(self, pv: dict) -> None:
        name = pv["metadata"]["name"]
        self._remove_volume(name)
        ref = (pv.get("spec") or {}).get("claimRef")
        if not isinstance(ref, dict) or not ref.get("name"):
            return  # unbound: no claim leads to it
        claim = (PVC, ref.get("namespace") or "", ref["name"])
        secrets = frozenset(volume_secrets(pv, claim[1]))
        self._volumes[name] = _VolumeEntry(claim, secrets)
        for secret in secrets:
            self._volumes_of_secret.setdefault(secret, set()).add(name)

    def _remove_volume(self, name: str) -> None:
        entry = self._volumes.pop(name, None)
        if entry is None:
            return
        for secret in entry.secrets:
            self._volumes_of_secret[secret].discard(name)
            if not self._volumes_of_secret[secret]:
                del self._volumes_of_secret[secret]

    # ---- questions -------------------------------------------------------------------

    def reachable(self, node: str, vertex: Vertex) -> bool:
        """Whether a chain of references leads from the object to the node (upstream hasPathFrom)."""
        self.refresh()
        kind, namespace, name = vertex
        if kind == POD:
            entry = self._pods.get((namespace, name))
            return entry is not None and entry.node == node
        if kind == PV:
            return self._volume_reachable(node, name)
        if self._referenced(node, vertex):
            return True
        if kind == SECRET:
            return any(self._volume_reachable(node, pv) for pv in self._volumes_of_secret.get(vertex, ()))
        return False

    def _referenced(self, node: str, vertex: Vertex) -> bool:
        counts = self._referenced_on.get(vertex)
        return bool(counts) and counts.get(node, 0) > 0

    def _volume_reachable(self, node: str, pv: str) -> bool:
        entry = self._volumes.get(pv)
        return entry is not None and self._referenced(node, entry.claim)
