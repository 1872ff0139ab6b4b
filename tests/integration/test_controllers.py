"""The controller manager against a real pyk8s server: namespace deletion, garbage collection in all three
propagation modes, leader election between two managers, and a manager killed mid-way and restarted.

The server gets its own data dir here, so no other test's objects are in the collector's way. kubectl runs
in a thread: the managers under test run on this test's event loop and must keep working while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from pyk8s.client import APIClient, APIStatusError, is_not_found
from pyk8s.controllers.manager import ControllerManager

from conftest import Cluster


@pytest.fixture
async def ns(client: APIClient, request) -> str:
    name = "gc-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[5:40].strip("-")
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@contextlib.asynccontextmanager
async def running(manager: ControllerManager) -> AsyncIterator[asyncio.Task]:
    task = asyncio.create_task(manager.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def manager(client: APIClient) -> AsyncIterator[ControllerManager]:
    mgr = ControllerManager(client, leader_elect=False)
    async with running(mgr):
        await eventually(lambda: mgr.running.is_set(), what="controllers running")
        yield mgr


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 20.0,
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


def kubectl(cluster: Cluster, *args: str, timeout: float = 60) -> Awaitable[subprocess.CompletedProcess]:
    return asyncio.to_thread(cluster.kubectl, *args, timeout=timeout)


def owner_ref(owner: dict, block: bool | None = None) -> dict:
    ref = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    if block is not None:
        ref["blockOwnerDeletion"] = block
    return ref


def configmap(name: str, ns: str, owners: tuple[dict, ...] = (), finalizers: tuple[str, ...] = (),
              labels: dict | None = None) -> dict:
    meta: dict = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


async def get_or_none(client: APIClient, resource: str, name: str, ns: str | None = None) -> dict | None:
    try:
        return await client.get(resource, name, ns)
    except APIStatusError as exc:
        if is_not_found(exc):
            return None
        raise


async def gone(client: APIClient, resource: str, name: str, ns: str | None = None) -> bool:
    return await get_or_none(client, resource, name, ns) is None


async def release(client: APIClient, name: str, ns: str) -> None:
    await client.patch("configmaps", name, {"metadata": {"finalizers": None}}, ns)


# ---- namespace controller ---------------------------------------------------------------


async def test_kubectl_delete_namespace_removes_content(bare_cluster: Cluster, client: APIClient,
                                                        manager: ControllerManager):
    ns = "doomed"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for name in ("a", "b"):
        await client.create(configmap(name, ns))
    await client.create(configmap("held", ns, finalizers=("example.com/hold",)))
    await client.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
                         "stringData": {"password": "x"}})
    await client.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                  "template": {"metadata": {"labels": {"app": "web"}},
                                               "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    await client.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

    deleting = asyncio.ensure_future(kubectl(bare_cluster, "delete", "namespace", ns))

    async def finalizer_reported() -> bool:
        conditions = ((await client.get("namespaces", ns)).get("status") or {}).get("conditions") or []
        return any(c["type"] == "NamespaceFinalizersRemaining" and c["status"] == "True" for c in conditions)

    await eventually(finalizer_reported, what="the namespace to report the held configmap")
    namespace = await client.get("namespaces", ns)
    assert namespace["status"]["phase"] == "Terminating"
    conditions = {c["type"]: c for c in namespace["status"]["conditions"]}
    assert {t: (c["status"], c["reason"], c["message"]) for t, c in conditions.items()} == {
        "NamespaceDeletionDiscoveryFailure": ("False", "ResourcesDiscovered", "All resources successfully discovered"),
        "NamespaceDeletionGroupVersionParsingFailure": ("False", "ParsedGroupVersions",
                                                        "All legacy kube types successfully parsed"),
        "NamespaceDeletionContentFailure": ("False", "ContentDeleted",
                                            "All content successfully deleted, may be waiting on finalization"),
        "NamespaceContentRemaining": ("True", "SomeResourcesRemain",
                                      "Some resources are remaining: configmaps. has 1 resource instances"),
        "NamespaceFinalizersRemaining": ("True", "SomeFinalizersRemain",
                                         "Some content in the namespace has finalizers remaining: "
                                         "example.com/hold in 1 resource instances"),
    }
    # Everything else is gone already; only the held configmap waits, and so does kubectl.
    assert [cm["metadata"]["name"] for cm in (await client.list("configmaps", ns))["items"]] == ["held"]
    for resource in ("secrets", "deployments", "pods"):
        assert (await client.list(resource, ns))["items"] == [], resource
    assert not deleting.done()

    await release(client, "held", ns)
    result = await deleting
    assert f'namespace "{ns}" deleted' in result.stdout
    assert await gone(client, "namespaces", ns)
    assert (await client.list("configmaps", ns))["items"] == []


# ---- garbage collector ------------------------------------------------------------------


async def test_background_deletion_collects_dependents(bare_cluster: Cluster, client: APIClient, ns: str,
                                                       manager: ControllerManager):
    owner = await client.create(configmap("owner", ns))
    other = await client.create(configmap("other-owner", ns))
    for name in ("d1", "d2"):
        await client.create(configmap(name, ns, owners=(owner_ref(owner),)))
    await client.create(configmap("shared", ns, owners=(owner_ref(owner), owner_ref(other))))
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "6b1c6f2e-0000-4000-8000-000000000000"}
    await client.create(configmap("orphaned-at-birth", ns, owners=(ghost,)))
    role = await client.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                "metadata": {"name": f"{ns}-owner"}, "rules": []})
    await client.create(configmap("owned-by-cluster-scoped", ns, owners=(owner_ref(role),)))
    await asyncio.sleep(0.5)
    assert not await gone(client, "configmaps", "d1", ns)  # owners exist: nothing to collect

    await kubectl(bare_cluster, "delete", "configmap", "owner", "-n", ns)
    await client.delete("clusterroles", f"{ns}-owner")

    for name in ("d1", "d2", "orphaned-at-birth", "owned-by-cluster-scoped"):
        await eventually(lambda name=name: gone(client, "configmaps", name, ns), what=f"{name} to be collected")

    async def dangling_reference_dropped() -> bool:
        shared = await client.get("configmaps", "shared", ns)
        return shared["metadata"].get("ownerReferences") == [owner_ref(other)]

    await eventually(dangling_reference_dropped, what="the reference to the deleted owner to be removed")
    assert not await gone(client, "configmaps", "other-owner", ns)


async def test_foreground_deletion_waits_for_blocking_dependents(bare_cluster: Cluster, client: APIClient, ns: str,
                                                                 manager: ControllerManager):
    owner = await client.create(configmap("owner", ns))
    await client.create(configmap("blocker", ns, owners=(owner_ref(owner, block=True),),
                                  finalizers=("example.com/hold",)))
    middle = await client.create(configmap("middle", ns, owners=(owner_ref(owner, block=True),)))
    await client.create(configmap("leaf", ns, owners=(owner_ref(middle, block=True),)))
    await client.create(configmap("loose", ns, owners=(owner_ref(owner),)))

    deleting = asyncio.ensure_future(kubectl(bare_cluster, "delete", "configmap", "owner", "-n", ns,
                                             "--cascade=foreground"))
    for name in ("middle", "leaf", "loose"):
        await eventually(lambda name=name: gone(client, "configmaps", name, ns), what=f"{name} to be deleted")

    async def blocker_terminating() -> bool:
        return bool((await client.get("configmaps", "blocker", ns))["metadata"].get("deletionTimestamp"))

    await eventually(blocker_terminating, what="the blocking dependent to be deleted")
    held_owner = await client.get("configmaps", "owner", ns)
    assert held_owner["metadata"]["deletionTimestamp"]
    assert held_owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    assert not deleting.done()

    await release(client, "blocker", ns)
    result = await deleting
    assert 'configmap "owner" deleted' in result.stdout
    assert await gone(client, "configmaps", "owner", ns)
    assert await gone(client, "configmaps", "blocker", ns)

    await client.create(configmap("alone", ns))  # nothing to wait for: the finalizer goes at once
    await kubectl(bare_cluster, "delete", "configmap", "alone", "-n", ns, "--cascade=foreground", timeout=20)


async def test_orphan_deletion_keeps_dependents(bare_cluster: Cluster, client: APIClient, ns: str,
                                                manager: ControllerManager):
    owner = await client.create(configmap("owner", ns))
    other = await client.create(configmap("other-owner", ns))
    for name in ("o1", "o2"):
        await client.create(configmap(name, ns, owners=(owner_ref(owner, block=True),)))
    await client.create(configmap("shared", ns, owners=(owner_ref(owner), owner_ref(other))))

    result = await kubectl(bare_cluster, "delete", "configmap", "owner", "-n", ns, "--cascade=orphan")
    assert 'configmap "owner" deleted' in result.stdout
    assert await gone(client, "configmaps", "owner", ns)
    for name in ("o1", "o2"):
        assert "ownerReferences" not in (await client.get("configmaps", name, ns))["metadata"]
    assert (await client.get("configmaps", "shared", ns))["metadata"]["ownerReferences"] == [owner_ref(other)]
    await asyncio.sleep(0.5)  # and the collector leaves them alone afterwards
    assert not await gone(client, "configmaps", "o1", ns)

    await client.create(configmap("alone", ns))
    await kubectl(bare_cluster, "delete", "configmap", "alone", "-n", ns, "--cascade=orphan", timeout=20)


# ---- the process ------------------------------------------------------------------------


async def test_only_the_leader_runs_controllers(client: APIClient, ns: str):
    first = ControllerManager(client, identity="manager-a")
    second = ControllerManager(client, identity="manager-b")
    async with running(first) as first_task:
        await eventually(lambda: first.running.is_set(), what="the first manager to lead")
        async with running(second):
            await asyncio.sleep(3)  # the second has campaigned at least once
            assert not second.running.is_set() and not second.controllers
            lease = await client.get("leases", "kube-controller-manager", "kube-system")
            assert lease["spec"]["holderIdentity"] == "manager-a"

            owner = await client.create(configmap("owner", ns))
            await client.create(configmap("dep1", ns, owners=(owner_ref(owner),)))
            await client.delete("configmaps", "owner", ns)
            await eventually(lambda: gone(client, "configmaps", "dep1", ns), what="the leader to collect dep1")

            first_task.cancel()  # steps down and releases the lease
            await eventually(lambda: second.running.is_set(), timeout=15, what="the second manager to take over")
            lease = await client.get("leases", "kube-controller-manager", "kube-system")
            assert lease["spec"]["holderIdentity"] == "manager-b"
            owner = await client.create(configmap("owner2", ns))
            await client.create(configmap("dep2", ns, owners=(owner_ref(owner),)))
            await client.delete("configmaps", "owner2", ns)
            await eventually(lambda: gone(client, "configmaps", "dep2", ns), what="the new leader to collect dep2")


def start_manager_process(cluster: Cluster, log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "pyk8s.controllers.manager", "--kubeconfig",
                                 str(cluster.kubeconfig), "--leader-elect=false"], stdout=log, stderr=subprocess.STDOUT)


async def test_killed_manager_finishes_the_work_after_restart(bare_cluster: Cluster, client: APIClient, ns: str,
                                                             tmp_path: Path):
    count = 120
    background_owner = await client.create(configmap("bg-owner", ns))
    orphan_owner = await client.create(configmap("orphan-owner", ns))
    creates = [configmap(f"bg-{i}", ns, owners=(owner_ref(background_owner),), labels={"set": "bg"})
               for i in range(count)]
    creates += [configmap(f"orphan-{i}", ns, owners=(owner_ref(orphan_owner, block=True),), labels={"set": "orphan"})
                for i in range(count)]
    await asyncio.gather(*(client.create(obj) for obj in creates))

    async def progress() -> tuple[int, int]:
        """(background dependents left, orphan dependents still owned)"""
        left = (await client.list("configmaps", ns, label_selector="set=bg"))["items"]
        owned = [cm for cm in (await client.list("configmaps", ns, label_selector="set=orphan"))["items"]
                 if cm["metadata"].get("ownerReferences")]
        return len(left), len(owned)

    log_path = tmp_path / "controller-manager.log"
    process = start_manager_process(bare_cluster, log_path)
    try:
        await client.delete("configmaps", "bg-owner", ns)
        await client.delete("configmaps", "orphan-owner", ns, propagation_policy="Orphan")

        async def under_way() -> bool:
            left, owned = await progress()
            return left + owned <= 2 * count - 10

        await eventually(under_way, what="the collector to get going")
        process.kill()  # no chance to clean up: SIGKILL mid-way
        process.wait(timeout=10)
        at_kill = await progress()
        assert at_kill != (0, 0), "the work finished before the kill; the test proves nothing"

        process = start_manager_process(bare_cluster, log_path)
        await eventually(lambda: _done(progress), timeout=30, what="the work to finish")
        await eventually(lambda: gone(client, "configmaps", "orphan-owner", ns), what="the orphan finalizer to go")
        assert await gone(client, "configmaps", "bg-owner", ns)
        assert len((await client.list("configmaps", ns, label_selector="set=orphan"))["items"]) == count
    finally:
        process.kill()
        process.wait(timeout=10)


async def _done(progress: Callable[[], Awaitable[tuple[int, int]]]) -> bool:
    return await progress() == (0, 0)
