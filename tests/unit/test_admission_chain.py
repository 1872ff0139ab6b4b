"""Admission plugins as tables: NamespaceLifecycle, LimitRanger, ServiceAccount, Priority, the
defaulting plugins and the chain's order. Builders at the top are shared by the other
test_admission_*.py modules."""

from __future__ import annotations

import copy
import random

import pytest

from pyk8s.api.errors import APIError
from pyk8s.api.kinds import REGISTRY
from pyk8s.apiserver.admission import CREATE, DELETE, UPDATE, AdmissionConfig, Attributes, ClusterState, build_chain
from pyk8s.apiserver.admission.default_ingress_class import DefaultIngressClass
from pyk8s.apiserver.admission.default_storage_class import DefaultStorageClass
from pyk8s.apiserver.admission.default_toleration_seconds import DefaultTolerationSeconds
from pyk8s.apiserver.admission.limit_ranger import LimitRanger, apply_defaults, validate_claim, validate_pod
from pyk8s.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from pyk8s.apiserver.admission.priority import Priority
from pyk8s.apiserver.admission.service_account import ServiceAccount, mount_token
from pyk8s.apiserver.admission.storage_protection import StorageObjectInUseProtection
from pyk8s.apiserver.watchcache import WatchCache


class _QuietStore:
    """Just enough of a store for a WatchCache that is never started: everything is already loaded."""

    current_revision = 0


def kind_of(obj: dict):
    group, _, version = obj["apiVersion"].rpartition("/")
    kind = REGISTRY.by_kind(group, version, obj["kind"])
    assert kind is not None
    return kind


def cluster(*objects: dict) -> ClusterState:
    cache = WatchCache(_QuietStore(), REGISTRY.stored_kinds())  # type: ignore[arg-type]
    for rv, obj in enumerate(objects, start=1):
        kind = kind_of(obj)
        meta = obj["metadata"]
        cache.cache_for(kind).load(kind.key(meta.get("namespace", ""), meta["name"]), copy.deepcopy(obj), rv)
    return ClusterState(cache)


def namespace(name: str, labels: dict | None = None, terminating: bool = False) -> dict:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}},
           "status": {"phase": "Terminating" if terminating else "Active"}}
    return obj


def pod(name: str = "p", ns: str = "ns", containers: list[dict] | None = None, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": containers if containers is not None else [{"name": "c", "image": "i"}], **spec}}


def attrs(obj: dict, operation: str = CREATE, old: dict | None = None, subresource: str = "",
          dry_run: bool = False, user: object | None = None) -> Attributes:
    kind = kind_of(obj)
    meta = obj["metadata"]
    return Attributes(kind, operation, meta.get("namespace", ""), meta.get("name", ""), obj, old, subresource,
                      dry_run, user)


async def _refusal(coro) -> APIError:
    with pytest.raises(APIError) as caught:
        await coro
    return caught.value


# ---- chain -----------------------------------------------------------------------------------


async def _noop_writer(namespace: str, name: str, charge) -> None:
    raise AssertionError("no quota here")


def test_chain_keeps_upstream_order_and_switches():
    chain = build_chain(AdmissionConfig(), cluster(), _noop_writer)
    assert chain.names == ["NamespaceLifecycle", "LimitRanger", "ServiceAccount", "NodeRestriction", "PodSecurity",
                           "Priority",
                           "DefaultTolerationSeconds", "DefaultStorageClass", "CertificateApproval",
                           "CertificateSigning", "CertificateSubjectRestriction", "DefaultIngressClass",
                           "MutatingAdmissionWebhook", "ValidatingAdmissionPolicy", "ValidatingAdmissionWebhook",
                           "ResourceQuota"]
    assert [p.name for p in chain.mutating][:2] == ["NamespaceLifecycle", "LimitRanger"]
    assert [p.name for p in chain.validating][-1] == "ResourceQuota"
    chain = build_chain(AdmissionConfig(enable_plugins=("StorageObjectInUseProtection",),
                                        disable_plugins=("PodSecurity", "ResourceQuota")), cluster(), _noop_writer)
    assert "StorageObjectInUseProtection" in chain.names and "PodSecurity" not in chain.names
    with pytest.raises(ValueError, match="unknown admission plugins: Bogus"):
        AdmissionConfig(disable_plugins=("Bogus",))


async def test_chain_runs_every_mutation_before_any_validation():
    calls: list[str] = []

    class Recorder(NamespaceLifecycle):
        def __init__(self, label: str):
            self.name, self.mutating, self.validating = label, True, True

        def handles(self, a: Attributes) -> bool:
            return True

        async def admit(self, a: Attributes) -> None:
            calls.append(f"admit {self.name}")

        async def validate(self, a: Attributes) -> None:
            calls.append(f"validate {self.name}")

    from pyk8s.apiserver.admission import AdmissionChain

    chain = AdmissionChain([Recorder("a"), Recorder("b")])
    request = attrs(pod())
    await chain.admit(request)
    await chain.validate(request)
    assert calls == ["admit a", "admit b", "validate a", "validate b"]


# ---- NamespaceLifecycle ----------------------------------------------------------------------


async def test_namespace_lifecycle():
    plugin = NamespaceLifecycle(cluster(namespace("ns"), namespace("going", terminating=True)))
    await plugin.admit(attrs(pod(ns="ns")))
    err = await _refusal(plugin.admit(attrs(pod(ns="missing"))))
    assert (err.code, err.message) == (404, 'namespaces "missing" not found')
    err = await _refusal(plugin.admit(attrs(pod("late", ns="going"))))
    assert err.code == 403 and err.message == ('pods "late" is forbidden: unable to create new content in namespace '
                                               "going because it is being terminated")
    assert err.details["causes"] == [{"reason": "NamespaceTerminating", "message": "namespace going is being "
                                      "terminated", "field": "metadata.namespace"}]
    kind = REGISTRY.by_kind("", "v1", "Namespace")
    for name, refused in (("default", True), ("kube-system", True), ("kube-public", True), ("ns", False)):
        request = Attributes(kind, DELETE, "", name, None, namespace(name))
        assert plugin.handles(request)
        if refused:
            err = await _refusal(plugin.admit(request))
            assert err.message == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
        else:
            await plugin.admit(request)
    # Updates and deletes of content in a terminating namespace go through (the namespace controller needs them).
    assert not plugin.handles(attrs(pod(ns="going"), UPDATE, old=pod(ns="going")))


# ---- LimitRanger -----------------------------------------------------------------------------


def _limit_range(*items: dict) -> dict:
    return {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr", "namespace": "ns"},
            "spec": {"limits": list(items)}}


def _container(name: str = "c", requests: dict | None = None, limits: dict | None = None) -> dict:
    resources = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": name, "image": "i", "resources": resources}


@pytest.mark.parametrize(("item", "container", "expected"), [
    ({"type": "Container", "min": {"cpu": "100m"}}, _container(requests={"cpu": "50m"}),
     ["minimum cpu usage per Container is 100m, but request is 50m"]),
    ({"type": "Container", "min": {"cpu": "100m"}}, _container(),
     ["minimum cpu usage per Container is 100m.  No request is specified"]),
    ({"type": "Container", "min": {"cpu": "100m"}}, _container(requests={"cpu": "200m"}, limits={"cpu": "50m"}),
     ["minimum cpu usage per Container is 100m, but limit is 50m"]),
    ({"type": "Container", "max": {"memory": "1Gi"}}, _container(limits={"memory": "2Gi"}),
     ["maximum memory usage per Container is 1Gi, but limit is 2Gi"]),
    ({"type": "Container", "max": {"memory": "1Gi"}}, _container(requests={"memory": "2Gi"}),
     ["maximum memory usage per Container is 1Gi.  No limit is specified"]),
    ({"type": "Container", "max": {"memory": "1Gi"}},
     _container(requests={"memory": "2Gi"}, limits={"memory": "512Mi"}),
     ["maximum memory usage per Container is 1Gi, but request is 2Gi"]),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
     _container(requests={"cpu": "100m"}, limits={"cpu": "300m"}),
     ["cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"]),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}, _container(limits={"cpu": "300m"}),
     ["cpu max limit to request ratio per Container is 2, but no request is specified or request is 0"]),
    ({"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}},
     _container(requests={"cpu": "100m"}, limits={"cpu": "200m"}), []),
    ({"type": "Pod", "max": {"cpu": "1"}}, _container(limits={"cpu": "800m"}), []),
])
def test_limit_range_container_constraints(item, container, expected):
    assert validate_pod(_limit_range(item), pod(containers=[container])) == expected


def test_limit_range_pod_limits_add_containers_and_take_the_largest_init():
    limit_range = _limit_range({"type": "Pod", "max": {"cpu": "1"}})
    two = pod(containers=[_container("a", limits={"cpu": "600m"}), _container("b", limits={"cpu": "600m"})])
    assert validate_pod(limit_range, two) == ["maximum cpu usage per Pod is 1, but limit is 1200m"]
    init = pod(containers=[_container("a", limits={"cpu": "300m"})],
               initContainers=[_container("setup", limits={"cpu": "900m"})])
    assert validate_pod(limit_range, init) == []
    sidecar = pod(containers=[_container("a", limits={"cpu": "300m"})],
                  initContainers=[{**_container("proxy", limits={"cpu": "800m"}), "restartPolicy": "Always"}])
    assert validate_pod(limit_range, sidecar) == ["maximum cpu usage per Pod is 1, but limit is 1100m"]


def test_limit_range_claims():
    limit_range = _limit_range({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}})

    def claim(size: str | None) -> dict:
        requests = {"storage": size} if size else {}
        return {"metadata": {"name": "c"}, "spec": {"resources": {"requests": requests}}}

    assert validate_claim(limit_range, claim("2Gi")) == []
    assert validate_claim(limit_range, claim("512Mi")) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 512Mi"]
    assert validate_claim(limit_range, claim("10Gi")) == [
        "maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"]
    assert validate_claim(limit_range, claim(None)) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
        "maximum storage usage per PersistentVolumeClaim is 5Gi.  No request is specified"]


def test_limit_range_defaults_fill_only_what_is_missing():
    limit_range = _limit_range({"type": "Container", "default": {"cpu": "1", "memory": "1Gi"},
                                "defaultRequest": {"cpu": "500m"}})
    target = pod(containers=[_container("app", limits={"cpu": "2"})], initContainers=[_container("init")])
    apply_defaults(limit_range, target)
    app, init = target["spec"]["containers"][0], target["spec"]["initContainers"][0]
    assert app["resources"] == {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    assert init["resources"] == {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    assert target["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu request for container app; memory limit for container app; "
        "cpu request for init container init; cpu, memory limit for init container init")


async def test_limit_ranger_plugin_refuses_with_aggregate():
    plugin = LimitRanger(cluster(_limit_range({"type": "Container", "min": {"cpu": "100m", "memory": "10Mi"}})))
    request = attrs(pod("small", containers=[_container(requests={"cpu": "50m", "memory": "1Mi"})]))
    assert plugin.handles(request)
    await plugin.admit(request)
    err = await _refusal(plugin.validate(request))
    assert err.message == ('pods "small" is forbidden: [minimum cpu usage per Container is 100m, but request is 50m, '
                           "minimum memory usage per Container is 10Mi, but request is 1Mi]")
    assert not plugin.handles(attrs(pod(), UPDATE, old=pod()))  # containers cannot change after create


# ---- ServiceAccount --------------------------------------------------------------------------


def _account(name: str = "default", automount: bool | None = None) -> dict:
    obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "ns"}}
    if automount is not None:
        obj["automountServiceAccountToken"] = automount
    return obj


async def test_service_account_defaults_and_mounts():
    plugin = ServiceAccount(cluster(_account()))
    target = pod(containers=[{"name": "a", "image": "i"},
                             {"name": "b", "image": "i", "volumeMounts": [
                                 {"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                 initContainers=[{"name": "init", "image": "i"}])
    await plugin.admit(attrs(target))
    spec = target["spec"]
    assert spec["serviceAccountName"] == "default"
    [volume] = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-") and len(volume["name"]) == 21
    assert volume["projected"]["sources"][2] == {"downwardAPI": {"items": [
        {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
    assert spec["initContainers"][0]["volumeMounts"][0]["name"] == volume["name"]
    assert spec["containers"][0]["volumeMounts"][0]["name"] == volume["name"]
    assert [m["name"] for m in spec["containers"][1]["volumeMounts"]] == ["own"]  # its own mount wins


@pytest.mark.parametrize(("pod_setting", "account_setting", "mounted"), [
    (None, None, True), (False, None, False), (None, False, False), (True, False, True), (False, True, False),
])
async def test_service_account_automount_settings(pod_setting, account_setting, mounted):
    plugin = ServiceAccount(cluster(_account(automount=account_setting)))
    target = pod() if pod_setting is None else pod(automountServiceAccountToken=pod_setting)
    await plugin.admit(attrs(target))
    assert bool(target["spec"].get("volumes")) is mounted


async def test_service_account_must_exist_only_when_configured():
    lenient = ServiceAccount(cluster())
    await lenient.admit(attrs(pod()))
    strict = ServiceAccount(cluster(), must_exist=True)
    err = await _refusal(strict.admit(attrs(pod("p"))))
    assert err.message == ('pods "p" is forbidden: error looking up service account ns/default: '
                           'serviceaccount "default" not found')
    await ServiceAccount(cluster(_account()), must_exist=True).admit(attrs(pod()))


def test_token_volume_name_is_kept_when_present():
    target = pod(volumes=[{"name": "kube-api-access-abcde", "projected": {"sources": []}}])
    mount_token(target, random.Random(1))
    assert len(target["spec"]["volumes"]) == 1
    assert target["spec"]["containers"][0]["volumeMounts"][0]["name"] == "kube-api-access-abcde"


# ---- Priority --------------------------------------------------------------------------------


def _priority_class(name: str, value: int, default: bool = False, preemption: str | None = None) -> dict:
    obj = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
           "value": value, "globalDefault": default}
    if preemption:
        obj["preemptionPolicy"] = preemption
    return obj


@pytest.mark.parametrize(("classes", "spec", "expected"), [
    ([], {}, ("", 0, "PreemptLowerPriority")),
    ([_priority_class("low", 10, default=True), _priority_class("lower", 5, default=True)], {},
     ("lower", 5, "PreemptLowerPriority")),
    ([_priority_class("high", 1000, preemption="Never")], {"priorityClassName": "high"}, ("high", 1000, "Never")),
    ([_priority_class("high", 1000)], {"priorityClassName": "high", "priority": 1000},
     ("high", 1000, "PreemptLowerPriority")),
])
async def test_priority_resolution(classes, spec, expected):
    plugin = Priority(cluster(*classes))
    target = pod(**spec)
    await plugin.admit(attrs(target))
    got = target["spec"]
    assert (got.get("priorityClassName", ""), got["priority"], got["preemptionPolicy"]) == expected


async def test_priority_refusals():
    plugin = Priority(cluster(_priority_class("high", 1000), _priority_class("base", 1, default=True)))
    err = await _refusal(plugin.admit(attrs(pod("p", priorityClassName="nope"))))
    assert err.message == 'pods "p" is forbidden: no PriorityClass with name nope was found'
    err = await _refusal(plugin.admit(attrs(pod("p", priorityClassName="high", priority=7))))
    assert err.message == ('pods "p" is forbidden: the integer value of priority (7) must not be provided in pod '
                           "spec; priority admission controller computed 1000 from the given PriorityClass name")
    second = _priority_class("other", 3, default=True)
    err = await _refusal(plugin.validate(attrs(second)))
    assert err.message == ('priorityclasses.scheduling.k8s.io "other" is forbidden: PriorityClass base is already '
                           "marked as default. Only one default can exist")
    # The default itself may be updated.
    current = _priority_class("base", 1, default=True)
    await plugin.validate(attrs(current, UPDATE, old=current))


async def test_priority_is_kept_on_update():
    plugin = Priority(cluster())
    old = pod(priority=5)
    new = pod()
    await plugin.admit(attrs(new, UPDATE, old=old))
    assert new["spec"]["priority"] == 5


# ---- defaulting plugins ----------------------------------------------------------------------


@pytest.mark.parametrize(("tolerations", "added"), [
    ([], ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]),
    ([{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}],
     ["node.kubernetes.io/unreachable"]),
    ([{"operator": "Exists"}], []),
    ([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}],
     ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]),
])
async def test_default_toleration_seconds(tolerations, added):
    target = pod(tolerations=copy.deepcopy(tolerations))
    await DefaultTolerationSeconds().admit(attrs(target))
    new = target["spec"]["tolerations"][len(tolerations):]
    assert [t["key"] for t in new] == added
    assert all(t == {"key": t["key"], "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
               for t in new)


def _class(api_version: str, kind: str, name: str, created: str, annotation: str | None) -> dict:
    annotations = {annotation: "true"} if annotation else {}
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "creationTimestamp": created, "annotations": annotations}}


async def test_default_storage_class_newest_wins():
    key = "storageclass.kubernetes.io/is-default-class"
    state = cluster(_class("storage.k8s.io/v1", "StorageClass", "old", "2026-01-01T00:00:00Z", key),
                    _class("storage.k8s.io/v1", "StorageClass", "new", "2026-02-01T00:00:00Z", key),
                    _class("storage.k8s.io/v1", "StorageClass", "newest-not-default", "2026-03-01T00:00:00Z", None))
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "ns"},
             "spec": {}}
    await DefaultStorageClass(state).admit(attrs(claim))
    assert claim["spec"]["storageClassName"] == "new"
    chosen = {**claim, "spec": {"storageClassName": ""}}  # "" asks for no class at all: left alone
    await DefaultStorageClass(state).admit(attrs(chosen))
    assert chosen["spec"]["storageClassName"] == ""
    await DefaultStorageClass(cluster()).admit(attrs(unset := {**claim, "spec": {}}))
    assert "storageClassName" not in unset["spec"]


async def test_default_ingress_class():
    key = "ingressclass.kubernetes.io/is-default-class"
    state = cluster(_class("networking.k8s.io/v1", "IngressClass", "nginx", "2026-01-01T00:00:00Z", key))
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": "i", "namespace": "ns"}, "spec": {}}
    await DefaultIngressClass(state).admit(attrs(ingress))
    assert ingress["spec"]["ingressClassName"] == "nginx"
    legacy = {**ingress, "metadata": {"name": "j", "namespace": "ns",
                                      "annotations": {"kubernetes.io/ingress.class": "other"}}, "spec": {}}
    await DefaultIngressClass(state).admit(attrs(legacy))
    assert "ingressClassName" not in legacy["spec"]


async def test_storage_object_in_use_protection():
    plugin = StorageObjectInUseProtection()
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "ns"}}
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "v", "finalizers": ["x"]}}
    for obj, finalizers in ((claim, ["kubernetes.io/pvc-protection"]), (volume, ["x", "kubernetes.io/pv-protection"])):
        request = attrs(obj)
        assert plugin.handles(request)
        await plugin.admit(request)
        await plugin.admit(request)  # idempotent
        assert obj["metadata"]["finalizers"] == finalizers
    assert not plugin.handles(attrs(claim, UPDATE, old=claim))
