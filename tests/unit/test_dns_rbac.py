"""The bootstrap policy lets the service proxy and cluster DNS identities do their jobs, and no more."""

from __future__ import annotations

import pytest

from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.authz import bootstrap_policy as policy

from test_rbac_authorizer import Cluster

PROXY = UserInfo(policy.KUBE_PROXY, groups=("system:authenticated",))
DNS = UserInfo(policy.COREDNS, groups=("system:authenticated",))
DISCOVERY = "discovery.k8s.io"


@pytest.fixture(scope="module")
def cluster() -> Cluster:
    c = Cluster()
    for obj in policy.all_cluster_roles() + policy.all_cluster_role_bindings() + policy.namespaced_roles() + \
            policy.namespaced_role_bindings():
        c.put(obj)
    return c


@pytest.mark.parametrize("verb,resource,group", [
    ("list", "services", ""), ("watch", "services", ""), ("list", "endpointslices", DISCOVERY),
    ("watch", "endpointslices", DISCOVERY), ("watch", "nodes", ""), ("create", "events", "events.k8s.io"),
])
def test_the_proxy_reads_services_endpoint_slices_and_nodes(cluster, verb, resource, group):
    assert cluster.allowed(PROXY, verb, resource, group=group)


def test_the_proxy_writes_no_services(cluster):
    assert not cluster.allowed(PROXY, "create", "services", "default")
    assert not cluster.allowed(PROXY, "get", "secrets", "default", name="s")


@pytest.mark.parametrize("verb,resource,group,namespace", [
    ("list", "services", "", ""), ("watch", "endpointslices", DISCOVERY, ""), ("watch", "namespaces", "", ""),
    ("create", "services", "", "kube-system"), ("update", "endpoints", "", "kube-system"),
    ("delete", "endpointslices", DISCOVERY, "kube-system"),
])
def test_dns_reads_the_cluster_and_publishes_kube_dns(cluster, verb, resource, group, namespace):
    assert cluster.allowed(DNS, verb, resource, namespace, group)


def test_dns_writes_only_in_kube_system(cluster):
    assert not cluster.allowed(DNS, "create", "services", "default")
    assert not cluster.allowed(DNS, "delete", "endpointslices", "default", DISCOVERY)
    assert not cluster.allowed(DNS, "get", "secrets", "kube-system", name="s")
