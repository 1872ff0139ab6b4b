"""pyk8s.client against a real pyk8s server: CRUD, paging, watch, informers, leader election, events."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Callable

import pytest

from pyk8s.client import (
    APIClient,
    APIStatusError,
    DeletedFinalStateUnknown,
    EventRecorder,
    Informer,
    LeaderElector,
    SharedInformerFactory,
    is_already_exists,
    is_conflict,
    is_gone,
    is_not_found,
)

from conftest import BARE, Cluster, validate_tree

MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def eventually(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll a cheap in-process condition until it holds (informer caches, callbacks)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[APIClient]:
    async with APIClient.from_kubeconfig(str(cluster.kubeconfig)) as api:
        yield api


@pytest.fixture
async def ns(client: APIClient, request) -> str:
    name = "c-" + "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:45].strip("-")
    name = f"{name}-{os.getpid() % 1000}"
    await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def configmap(name: str, ns: str, labels: dict | None = None, **data: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns,
                                                                 "labels": labels or {}}, "data": data}


def pod(name: str, ns: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}


# ---- plain API calls -------------------------------------------------------------------


async def test_crud_status_and_binding(client: APIClient, ns: str):
    created = await client.create(pod("p", ns))
    validate_tree(created)
    assert created["metadata"]["uid"] and created["status"]["phase"] == "Pending"
    with pytest.raises(APIStatusError) as exc:
        await client.create(pod("p", ns))
    assert is_already_exists(exc.value) and exc.value.code == 409 and exc.value.status["kind"] == "Status"

    got = await client.get("pods", "p", ns)
    assert got["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    got["metadata"].setdefault("labels", {})["tier"] = "web"
    updated = await client.update(got)
    assert updated["metadata"]["labels"] == {"tier": "web"}
    with pytest.raises(APIStatusError) as exc:
        await client.update(got)  # the resourceVersion we sent is stale now
    assert is_conflict(exc.value)

    merged = await client.patch("pods", "p", {"metadata": {"annotations": {"a": "1"}}}, ns)
    assert merged["metadata"]["annotations"] == {"a": "1"}
    json_patched = await client.patch(("v1", "Pod"), "p", [{"op": "add", "path": "/metadata/labels/extra",
                                                            "value": "yes"}], ns, patch_type="json")
    assert json_patched["metadata"]["labels"] == {"tier": "web", "extra": "yes"}

    status = dict(json_patched, status={**json_patched["status"], "phase": "Running"})
    status["spec"] = {**status["spec"], "activeDeadlineSeconds": 5}  # spec changes are ignored on /status
    after_status = await client.update_status(status)
    assert after_status["status"]["phase"] == "Running" and "activeDeadlineSeconds" not in after_status["spec"]
    patched_status = await client.patch_status("pods", "p", {"status": {"message": "hi"}}, ns)
    assert patched_status["status"]["message"] == "hi" and patched_status["status"]["phase"] == "Running"
    validate_tree(patched_status)

    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    await client.create_subresource("pods", "p", "binding", binding, ns)
    assert (await client.get("pods", "p", ns))["spec"]["nodeName"] == "node-a"
    with pytest.raises(APIStatusError) as exc:
        await client.create_subresource("pods", "p", "binding", binding, ns)
    assert is_conflict(exc.value)

    with pytest.raises(APIStatusError) as exc:
        await client.delete("pods", "p", ns, preconditions={"uid": "not-the-uid"})
    assert exc.value.code == 409
    dry = await client.delete("pods", "p", ns, grace_period_seconds=0, dry_run=True)
    assert dry["metadata"]["name"] == "p"
    await client.get("pods", "p", ns)  # still there
    await client.delete("pods", "p", ns, grace_period_seconds=0, propagation_policy="Background",
                        preconditions={"uid": created["metadata"]["uid"]})
    with pytest.raises(APIStatusError) as exc:
        await client.get("pods", "p", ns)
    assert is_not_found(exc.value) and exc.value.reason == "NotFound"


async def test_cluster_scoped_dry_run_and_delete_collection(client: APIClient, ns: str):
    dry = await client.create(configmap("dry", ns), dry_run=True)
    assert dry["metadata"]["name"] == "dry"
    with pytest.raises(APIStatusError) as exc:
        await client.get("configmaps", "dry", ns)
    assert is_not_found(exc.value)
    for i in range(3):
        await client.create(configmap(f"cm-{i}", ns, {"group": "a" if i < 2 else "b"}))
    await client.delete_collection("configmaps", ns, label_selector={"group": "a"})
    remaining = await client.list("configmaps", ns)
    assert [c["metadata"]["name"] for c in remaining["items"] if c["metadata"]["name"].startswith("cm-")] == ["cm-2"]
    namespace = await client.get("namespaces", ns)
    assert namespace["kind"] == "Namespace" and namespace["status"]["phase"] == "Active"


async def test_list_paging_and_selectors(client: APIClient, ns: str):
    for i in range(7):
        await client.create(configmap(f"page-{i}", ns, {"parity": "even" if i % 2 == 0 else "odd"}))
    first = await client.list("configmaps", ns, label_selector="parity", limit=3, all_pages=False)
    assert len(first["items"]) == 3 and first["metadata"]["continue"]
    second = await client.list("configmaps", ns, label_selector="parity", limit=3, all_pages=False,
                               continue_token=first["metadata"]["continue"])
    assert len(second["items"]) == 3
    everything = await client.list("configmaps", ns, label_selector="parity", limit=3)
    names = [c["metadata"]["name"] for c in everything["items"]]
    assert names == [f"page-{i}" for i in range(7)] and "continue" not in everything["metadata"]
    assert everything["metadata"]["resourceVersion"]
    assert all(c["kind"] == "ConfigMap" and c["apiVersion"] == "v1" for c in everything["items"])
    validate_tree(everything)
    even = await client.list("configmaps", ns, label_selector={"parity": "even"})
    assert len(even["items"]) == 4
    by_name = await client.list("configmaps", ns, field_selector="metadata.name=page-3")
    assert [c["metadata"]["name"] for c in by_name["items"]] == ["page-3"]


async def test_watch_streams_events_in_order(client: APIClient, ns: str):
    start = await client.list("configmaps", ns)
    rv = start["metadata"]["resourceVersion"]
    stream = client.watch("configmaps", ns, resource_version=rv, allow_watch_bookmarks=True, timeout_seconds=30)
    seen: list[tuple[str, str, dict]] = []

    async def consume() -> None:
        async with stream:
            async for type_, obj in stream:
                # Only this test's object: the root-CA publisher adds kube-root-ca.crt to new namespaces.
                if type_ != "BOOKMARK" and obj["metadata"]["name"] == "w":
                    seen.append((type_, obj["metadata"]["name"], obj.get("data") or {}))
                if type_ == "DELETED":
                    return

    consumer = asyncio.create_task(consume())
    await client.create(configmap("w", ns, a="1"))
    await client.patch("configmaps", "w", {"data": {"a": "2"}}, ns)
    await client.delete("configmaps", "w", ns)
    await asyncio.wait_for(consumer, 10)
    assert seen == [("ADDED", "w", {"a": "1"}), ("MODIFIED", "w", {"a": "2"}), ("DELETED", "w", {"a": "2"})]


# ---- informers -------------------------------------------------------------------------


def recording_handlers(log: list) -> dict:
    def name(obj) -> str:
        return obj.key if isinstance(obj, DeletedFinalStateUnknown) else obj["metadata"]["name"]

    return {"on_add": lambda o: log.append(("add", name(o))),
            "on_update": lambda old, new: log.append(("update", name(new), (old.get("data") or {}).get("v"),
                                                      (new.get("data") or {}).get("v"))),
            "on_delete": lambda o: log.append(("delete", name(o), isinstance(o, DeletedFinalStateUnknown)))}


async def test_informer_sync_handlers_and_indexes(client: APIClient, ns: str):
    await client.create(configmap("a", ns, {"team": "x"}, v="1"))
    await client.create(configmap("b", ns, {"team": "y"}, v="1"))
    factory = SharedInformerFactory(client)
    # Labelled ones only: the root-CA publisher adds kube-root-ca.crt to every new namespace.
    informer = factory.informer("configmaps", ns, label_selector="team", indexers={
        "team": lambda o: [(o["metadata"].get("labels") or {}).get("team", "")]})
    assert factory.informer("configmaps", ns, label_selector="team") is informer, \
        "one shared informer per resource, scope and selector"
    assert factory.informer("configmaps", ns, label_selector="team=x") is not informer
    log: list = []
    informer.add_handler(**recording_handlers(log))
    with pytest.raises(TypeError):
        async def not_allowed(obj):  # handlers must not await
            pass
        informer.add_handler(on_add=not_allowed)
    factory.start()
    try:
        assert await factory.wait_for_sync(timeout=10)
        assert informer.has_synced and informer.last_sync_resource_version
        assert sorted(log) == [("add", "a"), ("add", "b")]
        assert sorted(informer.keys()) == [f"{ns}/a", f"{ns}/b"]
        log.clear()

        await client.create(configmap("c", ns, {"team": "x"}, v="1"))
        await client.patch("configmaps", "a", {"data": {"v": "2"}}, ns)
        await client.delete("configmaps", "b", ns)
        await eventually(lambda: len(log) >= 3, what="three informer events")
        assert log == [("add", "c"), ("update", "a", "1", "2"), ("delete", "b", False)]
        assert informer.get(f"{ns}/a")["data"] == {"v": "2"} and informer.get(f"{ns}/b") is None
        assert sorted(o["metadata"]["name"] for o in informer.by_index("team", "x")) == ["a", "c"]
        assert informer.by_index("team", "y") == []
        assert len(informer.list(ns)) == 2 and informer.list("elsewhere") == []

        late: list = []
        informer.add_handler(on_add=lambda o: late.append(o["metadata"]["name"]))
        assert sorted(late) == ["a", "c"], "a handler added late first sees the whole cache"
        selected = factory.informer("configmaps", ns, label_selector="team=x")
        selected.start()
        assert await selected.wait_for_sync(timeout=10)
        assert sorted(o["metadata"]["name"] for o in selected.list()) == ["a", "c"]
    finally:
        await factory.stop()


async def test_informer_resync_redelivers_updates(client: APIClient, ns: str):
    await client.create(configmap("r", ns, v="1"))
    informer = Informer(client, "configmaps", ns, resync_period=0.2)
    log: list = []
    informer.add_handler(**recording_handlers(log))
    informer.start()
    try:
        await eventually(lambda: ("update", "r", "1", "1") in log, what="a resync update")
    finally:
        await informer.stop()


async def test_informer_relists_after_server_restart(tmp_path):
    # No controller-manager: its root-CA publisher would add kube-root-ca.crt to the namespace at a time of its own.
    cluster = Cluster(tmp_path / "restart", BARE)
    await asyncio.to_thread(cluster.start)
    try:
        async with APIClient.from_kubeconfig(str(cluster.kubeconfig)) as client:
            await client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "watched"}})
            await client.create(configmap("keep", "watched", v="1"))
            await client.create(configmap("old", "watched", v="1"))
            informer = Informer(client, "configmaps", "watched")
            log: list = []
            informer.add_handler(**recording_handlers(log))
            informer.start()
            try:
                assert await informer.wait_for_sync(timeout=10)
                seen_rv = informer.last_sync_resource_version
                # A write the informer does not see moves the server past its resourceVersion, so
                # after the restart (which empties the watch cache's history) its watch gets 410.
                await client.create(configmap("elsewhere", "default"))
                await asyncio.to_thread(cluster.restart)

                with pytest.raises(APIStatusError) as exc:
                    async with client.watch("configmaps", "watched", resource_version=seen_rv) as stream:
                        async for _ in stream:
                            pass
                assert is_gone(exc.value)

                await client.delete("configmaps", "old", "watched")
                await client.create(configmap("new", "watched", v="1"))
                await client.patch("configmaps", "keep", {"data": {"v": "2"}}, "watched")
                try:
                    await eventually(lambda: sorted(informer.keys()) == ["watched/keep", "watched/new"]
                                     and informer.get("watched/keep")["data"]["v"] == "2", timeout=30,
                                     what="the informer to catch up after the restart")
                except AssertionError as failed:
                    # Say where the informer stood.
                    raise AssertionError(
                        f"{failed}: keys {sorted(informer.keys())}, lists {informer.list_count}, last resourceVersion "
                        f"{informer.last_sync_resource_version} (seen before the restart: {seen_rv}), events {log}\n"
                        f"{cluster.log_path.read_text()[-3000:]}") from None
                assert informer.list_count >= 2, "the informer relisted"
                assert int(informer.last_sync_resource_version) > int(seen_rv)
                # Seen by the watch, or (deleted while we were away) as a tombstone from the relist.
                deletes = [entry for entry in log if entry[0] == "delete"]
                assert deletes in ([("delete", "old", False)], [("delete", "watched/old", True)])
                assert ("add", "new") in log
                assert ("update", "keep", "1", "2") in log
            finally:
                await informer.stop()
    finally:
        if cluster.process is not None:
            await asyncio.to_thread(cluster.stop)


# ---- leader election -------------------------------------------------------------------


class Campaign:
    """Tracks who leads, and fails if two electors ever lead at once."""

    def __init__(self):
        self.leading: set[str] = set()
        self.history: list[str] = []
        self.overlap = False

    def elector(self, client: APIClient, ns: str, identity: str, **kw) -> LeaderElector:
        async def lead() -> None:
            self.leading.add(identity)
            self.overlap |= len(self.leading) > 1
            self.history.append(identity)
            try:
                await asyncio.Event().wait()
            finally:
                self.leading.discard(identity)

        kw.setdefault("lease_duration", 2)
        return LeaderElector(client, ns, "the-lock", identity, renew_deadline=1.5, retry_period=0.25,
                             on_started_leading=lead, **kw)


async def test_leader_election_hands_over_on_release(client: APIClient, ns: str):
    campaign = Campaign()
    observed: list[str] = []
    # A long lease: a takeover well before it could expire proves the lease was released.
    first = campaign.elector(client, ns, "alpha", lease_duration=6)
    second = campaign.elector(client, ns, "beta", lease_duration=6, on_new_leader=observed.append)
    tasks = {"alpha": asyncio.create_task(first.run()), "beta": asyncio.create_task(second.run())}
    try:
        await eventually(lambda: len(campaign.leading) == 1, what="a leader")
        await asyncio.sleep(1.0)  # several renew rounds: the other must stay a follower
        assert len(campaign.leading) == 1 and not campaign.overlap
        (leader,) = campaign.leading
        follower = "beta" if leader == "alpha" else "alpha"
        lease = await client.get(("coordination.k8s.io", "v1", "leases"), "the-lock", ns)
        validate_tree(lease)
        spec = lease["spec"]
        assert spec["holderIdentity"] == leader and spec["leaseDurationSeconds"] == 6
        assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])
        transitions = spec.get("leaseTransitions", 0)

        tasks[leader].cancel()  # graceful stop: the lease is released
        await asyncio.gather(tasks[leader], return_exceptions=True)
        stopped = asyncio.get_running_loop().time()
        await eventually(lambda: campaign.leading == {follower}, timeout=5, what="the follower to take over")
        assert asyncio.get_running_loop().time() - stopped < 3, "a released lease is taken without waiting"
        assert not campaign.overlap and campaign.history == [leader, follower]
        lease = await client.get(("coordination.k8s.io", "v1", "leases"), "the-lock", ns)
        assert lease["spec"]["holderIdentity"] == follower
        assert lease["spec"]["leaseTransitions"] == transitions + 1
        if follower == "beta":
            assert observed[-1] == "beta"
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def test_leader_election_waits_for_an_unreleased_lease_to_expire(client: APIClient, ns: str):
    campaign = Campaign()
    crashed = asyncio.create_task(campaign.elector(client, ns, "crashy", release_on_cancel=False).run())
    await eventually(lambda: campaign.leading == {"crashy"}, what="the first leader")
    waiting = asyncio.create_task(campaign.elector(client, ns, "patient").run())
    try:
        await asyncio.sleep(0.5)  # let the second candidate observe the held lease
        crashed.cancel()
        await asyncio.gather(crashed, return_exceptions=True)
        stopped = asyncio.get_running_loop().time()
        await eventually(lambda: campaign.leading == {"patient"}, timeout=6, what="takeover after expiry")
        waited = asyncio.get_running_loop().time() - stopped
        assert waited >= 1.0, f"took over after {waited:.2f}s, before the 2 s lease could expire"
        assert not campaign.overlap
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)


# ---- events ----------------------------------------------------------------------------


async def test_event_recorder_deduplicates_into_a_count(client: APIClient, ns: str):
    subject = await client.create(configmap("subject", ns))
    recorder = EventRecorder(client, "pyk8s-client-test", "test-host")
    recorder.event(subject, "Normal", "Checked", "looked at it")
    recorder.event(subject, "Normal", "Checked", "looked at it")
    recorder.event(subject, "Warning", "Odd", "something else")
    await asyncio.wait_for(recorder.flush(), 10)
    await recorder.close()
    events = await client.list("events", ns, field_selector="involvedObject.name=subject")
    by_reason = {e["reason"]: e for e in events["items"]}
    assert sorted(by_reason) == ["Checked", "Odd"]
    checked = by_reason["Checked"]
    assert checked["count"] == 2 and checked["message"] == "looked at it"
    assert checked["metadata"]["name"].startswith("subject.")
    assert checked["involvedObject"]["uid"] == subject["metadata"]["uid"]
    assert checked["source"] == {"component": "pyk8s-client-test", "host": "test-host"}
    assert checked["reportingComponent"] == "pyk8s-client-test"
    assert checked["firstTimestamp"] <= checked["lastTimestamp"]
    assert by_reason["Odd"]["count"] == 1 and by_reason["Odd"]["type"] == "Warning"
    validate_tree(events)
