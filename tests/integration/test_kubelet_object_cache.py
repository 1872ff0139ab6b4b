"""The kubelet's watch-based ConfigMap/Secret cache against a real apiserver, as a node (`system:node:<name>`,
under the node authorizer): reads of registered objects cost no requests, updates and creations arrive through
the watch, a missing object is a 404, immutable objects stop being watched, and unregistering stops the watches."""

from __future__ import annotations

import asyncio
import base64
import secrets

import pytest
from test_kubelet_volumes import _eventually

from pyk8s.client import APIClient, APIStatusError, ClientConfig, is_not_found
from pyk8s.kubelet.object_cache import ObjectCache
from pyk8s.server.pki import PKI

from conftest import Cluster

NODE = "cache-node"


class CountingClient(APIClient):
    """The node's client, counting the GETs of single objects it sends."""

    gets = 0

    async def get(self, resource, name, namespace=None, *, resource_version=None):  # type: ignore[override]
        self.gets += 1
        return await super().get(resource, name, namespace, resource_version=resource_version)


@pytest.fixture
async def node_client(bare_cluster: Cluster):
    cert, key = PKI.at(bare_cluster.data_dir / "tls").issue_client_cert(f"system:node:{NODE}", ["system:nodes"])
    config = ClientConfig(server=bare_cluster.url, ca_data=(bare_cluster.data_dir / "tls" / "ca.crt").read_bytes(),
                          cert_data=cert, key_data=key, qps=0)
    async with CountingClient(config) as api:
        yield api


@pytest.fixture
async def ns(client: APIClient) -> str:
    name = f"cache-{secrets.token_hex(3)}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def _pod(ns: str, name: str, configmap: str, secret: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": NODE, "automountServiceAccountToken": False,
                     "volumes": [{"name": "cfg", "configMap": {"name": configmap}}],
                     "containers": [{"name": "app", "image": "busybox", "env": [
                         {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}]}]}}


async def test_reads_come_from_the_watch(client: APIClient, node_client: CountingClient, ns: str) -> None:
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
                         "data": {"mode": "fast"}})
    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": ns},
                         "data": {"password": base64.b64encode(b"pw").decode()}})
    # Two pods name the same objects: one watch each, however many pods.
    pods = [await client.create(_pod(ns, f"web-{i}", "settings", "creds")) for i in range(2)]
    cache = ObjectCache(node_client)
    try:
        for pod in pods:
            cache.register_pod(pod)
        assert cache.watched == {("configmaps", ns, "settings"), ("secrets", ns, "creds")}
        assert (await cache.get("configmaps", "settings", ns))["data"] == {"mode": "fast"}
        for _ in range(5):
            assert (await cache.get("secrets", "creds", ns))["data"]["password"] == base64.b64encode(b"pw").decode()
        assert node_client.gets == 0

        await client.patch("configmaps", "settings", {"data": {"mode": "slow"}}, ns)

        async def updated() -> bool:
            return (await cache.get("configmaps", "settings", ns))["data"] == {"mode": "slow"}

        await _eventually(updated)

        # The last pod naming them goes: so do the watches, and reads go to the API again.
        cache.unregister_pod(pods[0]["metadata"]["uid"])
        assert cache.watched == {("configmaps", ns, "settings"), ("secrets", ns, "creds")}
        cache.unregister_pod(pods[1]["metadata"]["uid"])
        assert cache.watched == set()
        assert (await cache.get("configmaps", "settings", ns))["data"] == {"mode": "slow"}
        assert node_client.gets == 1
    finally:
        await cache.stop()


async def test_missing_object_is_not_found_until_created(client: APIClient, node_client: CountingClient,
                                                        ns: str) -> None:
    pod = await client.create(_pod(ns, "web", "later", "creds"))
    cache = ObjectCache(node_client)
    try:
        cache.register_pod(pod)
        with pytest.raises(APIStatusError) as caught:
            await cache.get("configmaps", "later", ns)
        assert is_not_found(caught.value) and caught.value.message == 'configmaps "later" not found'

        await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later", "namespace": ns},
                             "data": {"k": "v"}})

        async def arrived() -> dict | None:
            try:
                return await cache.get("configmaps", "later", ns)
            except APIStatusError:
                return None

        assert (await _eventually(arrived))["data"] == {"k": "v"}
        await client.delete("configmaps", "later", ns)

        async def gone() -> bool:
            try:
                await cache.get("configmaps", "later", ns)
            except APIStatusError as exc:
                return is_not_found(exc)
            return False

        await _eventually(gone)
        assert node_client.gets == 0
    finally:
        await cache.stop()


async def test_spec_change_moves_the_watches(client: APIClient, node_client: CountingClient, ns: str) -> None:
    pod = await client.create(_pod(ns, "web", "one", "creds"))
    cache = ObjectCache(node_client)
    try:
        cache.register_pod(pod)
        changed = {**pod, "spec": {**pod["spec"], "volumes": [{"name": "cfg", "configMap": {"name": "two"}}]}}
        cache.register_pod(changed)
        assert cache.watched == {("configmaps", ns, "two"), ("secrets", ns, "creds")}
    finally:
        await cache.stop()


async def test_immutable_object_is_kept_without_a_watch(client: APIClient, node_client: CountingClient,
                                                       ns: str) -> None:
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "immutable": True,
                         "metadata": {"name": "frozen", "namespace": ns}, "data": {"k": "v"}})
    pod = await client.create(_pod(ns, "web", "frozen", "creds"))
    cache = ObjectCache(node_client)
    try:
        cache.register_pod(pod)
        assert (await cache.get("configmaps", "frozen", ns))["data"] == {"k": "v"}
        await client.delete("configmaps", "frozen", ns)
        # No watch follows it any more: pods that use it keep the content they started with (upstream).
        await asyncio.sleep(1.0)
        assert (await cache.get("configmaps", "frozen", ns))["data"] == {"k": "v"}
        assert node_client.gets == 0
    finally:
        await cache.stop()


async def test_objects_of_other_nodes_pods_are_forbidden(client: APIClient, node_client: CountingClient,
                                                         ns: str) -> None:
    """The single-name watch is what the node authorizer grants for referenced objects, and only those: a pod
    bound elsewhere gives this node nothing (the cache's first list fails, and the read times out)."""
    await client.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": ns},
                         "data": {"k": "v"}})
    pod = await client.create({**_pod(ns, "elsewhere", "theirs", "creds"),
                               "spec": {**_pod(ns, "x", "theirs", "creds")["spec"], "nodeName": "other-node"}})
    cache = ObjectCache(node_client, sync_timeout=1.0)
    try:
        cache.register_pod(pod)
        with pytest.raises(ConnectionError, match="failed to sync configmaps cache"):
            await cache.get("configmaps", "theirs", ns)
    finally:
        await cache.stop()
