"""The ReplicaSet controller against a real pyk8s server, run by a ControllerManager on this test's loop
(with the garbage collector, which removes the pods after a background delete of their ReplicaSet)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest

from pyk8s.client import APIClient
from pyk8s.controllers.manager import ControllerManager

from conftest import Cluster


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 15.0,
                     what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def kubectl(cluster: Cluster, *args: str) -> Awaitable[subprocess.CompletedProcess]:
    return asyncio.to_thread(cluster.kubectl, *args, timeout=60)


@pytest.fixture
async def manager(client: APIClient) -> AsyncIterator[ControllerManager]:
    mgr = ControllerManager(client, leader_elect=False,
                            controllers="replicaset-controller,replicationcontroller-controller,garbagecollector")
    task = asyncio.create_task(mgr.run())
    try:
        await eventually(lambda: mgr.running.is_set(), what="controllers running")
        yield mgr
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def replicaset(name: str, ns: str, replicas: int, labels: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": {**labels, "extra": "x"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def active_pods(client: APIClient, ns: str) -> list[dict]:
    items = (await client.list("pods", ns))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def mark_ready(client: APIClient, pod: dict) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    await client.patch_status("pods", pod["metadata"]["name"], {"status": {
        "phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}},
        pod["metadata"]["namespace"])


async def test_replicaset_lifecycle(bare_cluster: Cluster, client: APIClient, manager: ControllerManager):
    ns = "rs-life"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    # An orphan that matches the selector is there first: it is adopted and counts as one of the 3.
    await client.create({"apiVersion": "v1", "kind": "Pod",
                         "metadata": {"name": "orphan", "namespace": ns, "labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    rs = await client.create(replicaset("web", ns, 3, {"app": "web"}))
    uid = rs["metadata"]["uid"]

    async def count_is(n: int) -> bool:
        return len(await active_pods(client, ns)) == n

    await eventually(lambda: count_is(3), what="3 pods")
    await asyncio.sleep(0.3)
    pods = await active_pods(client, ns)
    assert len(pods) == 3  # no over-creation
    for p in pods:
        [ref] = p["metadata"]["ownerReferences"]
        assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": uid, "controller": True,
                       "blockOwnerDeletion": True}
        assert p["metadata"]["labels"]["app"] == "web"
    assert "orphan" in {p["metadata"]["name"] for p in pods}
    created = [p for p in pods if p["metadata"]["name"] != "orphan"]
    assert all(p["metadata"]["name"].startswith("web-") and p["metadata"]["labels"] == {"app": "web", "extra": "x"}
               for p in created)

    # Status: ready via pods/status patches.
    for p in pods[:2]:
        await mark_ready(client, p)

    async def status_is(**want: int) -> bool:
        status = (await client.get("replicasets", "web", ns)).get("status") or {}
        return all(status.get(k) == v for k, v in want.items())

    await eventually(lambda: status_is(replicas=3, readyReplicas=2, availableReplicas=2, fullyLabeledReplicas=2,
                                       observedGeneration=1), what="status")
    out = await kubectl(bare_cluster, "get", "rs", "web", "-n", ns)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split()[:4] == ["NAME", "DESIRED", "CURRENT", "READY"]
    assert row.split()[:4] == ["web", "3", "3", "2"]

    # Scale up, then down: the surplus goes, unready ones first.
    await client.patch("replicasets", "web", {"spec": {"replicas": 5}}, ns)
    await eventually(lambda: count_is(5), what="5 pods")
    await client.patch("replicasets", "web", {"spec": {"replicas": 1}}, ns)
    await eventually(lambda: count_is(1), what="1 pod")
    [survivor] = await active_pods(client, ns)
    assert survivor["metadata"]["name"] in {p["metadata"]["name"] for p in pods[:2]}  # a ready one stays
    await eventually(lambda: status_is(replicas=1, readyReplicas=1, observedGeneration=3), what="scaled status")

    # A deleted pod is replaced.
    await client.delete("pods", survivor["metadata"]["name"], ns, grace_period_seconds=0)

    async def replaced() -> bool:
        pods_now = await active_pods(client, ns)
        return len(pods_now) == 1 and pods_now[0]["metadata"]["name"] != survivor["metadata"]["name"]

    await eventually(replaced, what="replacement pod")

    events = (await client.list("events", ns))["items"]
    messages = {(e["reason"], e["message"]) for e in events}
    assert any(r == "SuccessfulCreate" and m.startswith("Created pod: web-") for r, m in messages)
    assert any(r == "SuccessfulDelete" and m.startswith("Deleted pod: ") for r, m in messages)

    # Background delete of the ReplicaSet: the garbage collector removes its pods.
    await client.delete("replicasets", "web", ns, propagation_policy="Background")
    await eventually(lambda: count_is(0), what="pods garbage collected")


async def test_replicationcontroller(client: APIClient, manager: ControllerManager):
    ns = "rc-basic"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await client.create({"apiVersion": "v1", "kind": "ReplicationController",
                         "metadata": {"name": "rc", "namespace": ns},
                         "spec": {"replicas": 2, "selector": {"app": "rc"},
                                  "template": {"metadata": {"labels": {"app": "rc"}},
                                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})

    async def two() -> bool:
        pods = await active_pods(client, ns)
        return len(pods) == 2 and all(p["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
                                      for p in pods)

    await eventually(two, what="2 rc pods")

    async def status_ok() -> bool:
        return ((await client.get("replicationcontrollers", "rc", ns)).get("status") or {}).get("replicas") == 2

    await eventually(status_ok, what="rc status")
