"""Quota accounting (pyk8s.api.quota), the ResourceQuota admission plugin and the controller's recount."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime

import pytest

from pyk8s.api.errors import APIError
from pyk8s.api.quota import (
    claim_usage,
    pod_constraints,
    pod_usage,
    quota_matches,
    render_list,
    resource_of_count,
    service_usage,
    usage_of,
)
from pyk8s.apiserver.admission import UPDATE
from pyk8s.apiserver.admission.resource_quota import ResourceQuota
from pyk8s.controllers.resourcequota import compute_usage, releases_usage, resources_of

from test_admission_chain import attrs, cluster, pod


def _sized(name: str, requests: dict | None = None, limits: dict | None = None) -> dict:
    return {"name": name, "image": "i", "resources": {"requests": requests or {}, "limits": limits or {}}}


def test_pod_usage():
    target = pod(containers=[_sized("a", {"cpu": "100m", "memory": "1Gi"}, {"cpu": "200m"}),
                             _sized("b", {"cpu": "300m", "example.com/gpu": "1", "hugepages-2Mi": "4Mi"})],
                 initContainers=[_sized("init", {"cpu": "1"})])
    assert render_list(pod_usage(target)) == {
        "count/pods": "1", "pods": "1", "cpu": "1", "requests.cpu": "1", "limits.cpu": "200m",
        "memory": "1Gi", "requests.memory": "1Gi", "hugepages-2Mi": "4Mi", "requests.hugepages-2Mi": "4Mi",
        "requests.example.com/gpu": "1"}
    finished = {**target, "status": {"phase": "Succeeded"}}
    assert render_list(pod_usage(finished)) == {"count/pods": "1"}
    gone = copy.deepcopy(target)
    gone["metadata"].update(deletionTimestamp="2026-01-01T00:00:00Z", deletionGracePeriodSeconds=30)
    assert render_list(pod_usage(gone, datetime(2026, 1, 1, 0, 1, tzinfo=UTC))) == {"count/pods": "1"}
    assert "pods" in pod_usage(gone, datetime(2026, 1, 1, 0, 0, 10, tzinfo=UTC))


@pytest.mark.parametrize(("spec", "expected"), [
    ({"type": "ClusterIP", "ports": [{"port": 1}]}, {"count/services": "1", "services": "1"}),
    ({"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]},
     {"count/services": "1", "services": "1", "services.nodeports": "2"}),
    ({"type": "LoadBalancer", "ports": [{"port": 1}]},
     {"count/services": "1", "services": "1", "services.loadbalancers": "1", "services.nodeports": "1"}),
    ({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False, "ports": [{"port": 1}]},
     {"count/services": "1", "services": "1", "services.loadbalancers": "1", "services.nodeports": "0"}),
])
def test_service_usage(spec, expected):
    assert render_list(service_usage({"metadata": {"name": "s"}, "spec": spec})) == expected


def test_claim_usage_and_generic_counts():
    claim = {"metadata": {"name": "c"}, "spec": {"storageClassName": "fast",
                                                 "resources": {"requests": {"storage": "2Gi"}}},
             "status": {"allocatedResources": {"storage": "3Gi"}}}
    assert render_list(claim_usage(claim)) == {
        "count/persistentvolumeclaims": "1", "persistentvolumeclaims": "1", "requests.storage": "3Gi",
        "fast.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "fast.storageclass.storage.k8s.io/requests.storage": "3Gi"}
    assert render_list(usage_of("apps", "deployments", {})) == {"count/deployments.apps": "1"}
    assert render_list(usage_of("", "configmaps", {})) == {"count/configmaps": "1", "configmaps": "1"}
    assert resource_of_count("count/deployments.apps") == ("apps", "deployments")
    assert resource_of_count("requests.cpu") == ("", "pods")
    assert resource_of_count("services.nodeports") == ("", "services")


def test_pod_constraints_name_containers_missing_values():
    target = pod(containers=[_sized("a", {"cpu": "1"}), _sized("b", limits={"cpu": "1"})])
    assert pod_constraints(["limits.cpu", "requests.memory", "pods"], target) == (
        "must specify limits.cpu for: a; requests.memory for: a,b")
    assert pod_constraints(["pods"], target) is None


@pytest.mark.parametrize(("scopes", "selector", "spec", "matches"), [
    (["BestEffort"], None, {}, True),
    (["NotBestEffort"], None, {}, False),
    (["Terminating"], None, {"activeDeadlineSeconds": 10}, True),
    (["NotTerminating"], None, {"activeDeadlineSeconds": 10}, False),
    ([], [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}], {"priorityClassName": "high"}, True),
    ([], [{"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}], {"priorityClassName": "high"},
     False),
    ([], [{"scopeName": "PriorityClass", "operator": "Exists"}], {}, False),
])
def test_quota_scopes(scopes, selector, spec, matches):
    quota = {"spec": {"hard": {"pods": "1"}, "scopes": scopes}}
    if selector:
        quota["spec"]["scopeSelector"] = {"matchExpressions": selector}
    assert quota_matches(quota, "", "pods", pod(**spec)) is matches
    assert quota_matches(quota, "", "configmaps", {}) is False  # scoped quotas count pods only


# ---- the admission plugin --------------------------------------------------------------------


def _quota(name: str = "q", hard: dict | None = None, used: dict | None = None, **spec) -> dict:
    hard = hard or {"pods": "2"}
    status = {"hard": hard}
    if used is not None:
        status["used"] = used
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name, "namespace": "ns"},
            "spec": {"hard": hard, **spec}, "status": status}


class _StoredQuotas:
    """The quota status writes, applied to the in-memory cluster like the store and watch cache would."""

    def __init__(self, *quotas: dict):
        self.state = cluster(*quotas)
        self.kind = self.state.kind("", "v1", "ResourceQuota")
        self.writes = 0

    async def write(self, namespace: str, name: str, charge) -> None:
        await asyncio.sleep(0)  # a real write awaits the store: let concurrent requests interleave
        current = copy.deepcopy(self.state.peek(self.kind, namespace, name))
        updated = charge(current)
        self.writes += 1
        cache = self.state.cache.cache_for(self.kind)
        cache.load(self.kind.key(namespace, name), updated, 100 + self.writes)

    def used(self, name: str = "q") -> dict:
        return self.state.peek(self.kind, "ns", name)["status"]["used"]


async def test_quota_charges_and_refuses_with_upstream_text():
    stored = _StoredQuotas(_quota(used={"pods": "1"}))
    plugin = ResourceQuota(stored.state, stored.write)
    await plugin.validate(attrs(pod("a")))
    assert stored.used() == {"pods": "2"}
    with pytest.raises(APIError) as caught:
        await plugin.validate(attrs(pod("b")))
    assert caught.value.code == 403 and caught.value.message == (
        'pods "b" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2')
    assert stored.used() == {"pods": "2"}


async def test_quota_without_usage_yet_and_dry_run():
    stored = _StoredQuotas(_quota(hard={"pods": "2", "requests.cpu": "1"}))
    plugin = ResourceQuota(stored.state, stored.write)
    with pytest.raises(APIError) as caught:
        await plugin.validate(attrs(pod("a", containers=[_sized("c", {"cpu": "1"})])))
    assert caught.value.message == 'pods "a" is forbidden: status unknown for quota: q, resources: pods,requests.cpu'
    stored = _StoredQuotas(_quota(used={"pods": "0"}))
    plugin = ResourceQuota(stored.state, stored.write)
    await plugin.validate(attrs(pod("a"), dry_run=True))
    assert stored.writes == 0


async def test_concurrent_requests_never_overshoot():
    stored = _StoredQuotas(_quota(hard={"count/configmaps": "3"}, used={"count/configmaps": "0"}))
    plugin = ResourceQuota(stored.state, stored.write)

    async def create(i: int) -> bool:
        config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}", "namespace": "ns"}}
        try:
            await plugin.validate(attrs(config))
            return True
        except APIError:
            return False

    results = await asyncio.gather(*(create(i) for i in range(10)))
    assert results.count(True) == 3 and stored.used() == {"count/configmaps": "3"}


async def test_updates_charge_only_the_growth():
    old = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "ns"},
           "spec": {"type": "NodePort", "ports": [{"port": 1}]}}
    new = copy.deepcopy(old)
    new["spec"]["ports"].append({"port": 2})
    stored = _StoredQuotas(_quota(hard={"services.nodeports": "2", "services": "5"},
                                  used={"services.nodeports": "1", "services": "1"}))
    plugin = ResourceQuota(stored.state, stored.write)
    await plugin.validate(attrs(new, UPDATE, old=old))
    assert stored.used() == {"services.nodeports": "2", "services": "1"}
    assert not plugin.handles(attrs(pod(), UPDATE, old=pod()))  # pods are charged on create only


# ---- the controller's recount ----------------------------------------------------------------


def test_controller_recount():
    quota = _quota(hard={"pods": "10", "requests.memory": "4Gi", "count/deployments.apps": "3", "secrets": "5"})
    assert resources_of(quota) == {("", "pods"), ("apps", "deployments"), ("", "secrets")}
    pods = [pod("a", containers=[_sized("c", {"memory": "1Gi"})]),
            {**pod("done"), "status": {"phase": "Failed"}}]
    used = compute_usage(quota, {("", "pods"): pods, ("apps", "deployments"): [{}], ("", "secrets"): []})
    assert render_list(used) == {"pods": "1", "requests.memory": "1Gi", "count/deployments.apps": "1",
                                 "secrets": "0"}


def test_updates_that_release_usage():
    running = {**pod(), "status": {"phase": "Running"}}
    assert releases_usage("", "pods", running, {**running, "status": {"phase": "Succeeded"}})
    assert not releases_usage("", "pods", running, {**running, "metadata": {**running["metadata"], "labels": {}}})
    assert not releases_usage("", "configmaps", {"data": 1}, {"data": 2})


async def test_a_quota_that_moved_on_is_checked_again():
    stored = _StoredQuotas(_quota(hard={"pods": "2"}, used={"pods": "1"}))
    raced = False

    async def racing_write(namespace: str, name: str, charge) -> None:
        nonlocal raced
        if not raced:  # the controller recounted between the check and the write: another pod exists
            raced = True
            recounted = copy.deepcopy(stored.state.peek(stored.kind, namespace, name))
            recounted["status"]["used"] = {"pods": "2"}
            stored.state.cache.cache_for(stored.kind).load(stored.kind.key(namespace, name), recounted, 50)
        await stored.write(namespace, name, charge)

    plugin = ResourceQuota(stored.state, racing_write)
    with pytest.raises(APIError) as caught:
        await plugin.validate(attrs(pod("late")))
    assert caught.value.message.endswith("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2")
    assert stored.used() == {"pods": "2"} and stored.writes == 0
