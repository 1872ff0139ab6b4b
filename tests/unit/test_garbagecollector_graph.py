"""The garbage collector's dependency graph: what each observation does to the graph and to the queues."""

from __future__ import annotations

import itertools

import pytest

from pyk8s.client import DeletedFinalStateUnknown
from pyk8s.controllers.garbagecollector import (
    FINALIZER_FOREGROUND,
    FINALIZER_ORPHAN,
    AbsentOwnerCache,
    GraphBuilder,
    ObjectIdentity,
    deletable_kinds,
    references_diff,
)

_uids = itertools.count(1)


class RecordingQueue:
    def __init__(self):
        self.added: list[str] = []
        self.rate_limited: list[str] = []

    def add(self, item: str) -> None:
        self.added.append(item)

    def add_rate_limited(self, item: str) -> None:
        self.rate_limited.append(item)

    def take(self) -> list[str]:
        out, self.added = self.added, []
        return out


@pytest.fixture
def queues() -> tuple[RecordingQueue, RecordingQueue]:
    return RecordingQueue(), RecordingQueue()


@pytest.fixture
def graph(queues) -> GraphBuilder:
    reported: list[tuple[str, str]] = []
    builder = GraphBuilder(queues[0], queues[1], AbsentOwnerCache(10),
                           report_invalid_namespace=lambda dep, ref: reported.append((dep.identity.name, ref["name"])))
    builder.reported = reported  # type: ignore[attr-defined]
    return builder


def obj(name: str, namespace: str = "ns", kind: str = "ConfigMap", api_version: str = "v1", *,
        owners: tuple[dict, ...] = (), finalizers: tuple[str, ...] = (), deleting: bool = False,
        uid: str | None = None) -> dict:
    meta: dict = {"name": name, "uid": uid or f"uid-{name}-{next(_uids)}", "resourceVersion": "1"}
    if namespace:
        meta["namespace"] = namespace
    if owners:
        meta["ownerReferences"] = [dict(o) for o in owners]
    if finalizers:
        meta["finalizers"] = list(finalizers)
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


def ref(owner: dict, block: bool | None = None, **override) -> dict:
    out = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"]}
    if block is not None:
        out["blockOwnerDeletion"] = block
    out.update(override)
    return out


def uid(o: dict) -> str:
    return o["metadata"]["uid"]


def updated(o: dict, **meta) -> dict:
    new = {**o, "metadata": {**o["metadata"], **meta}}
    return {k: v for k, v in new.items()}


def test_dependent_seen_before_owner_makes_a_virtual_owner_that_becomes_real(graph, queues):
    owner = obj("owner")
    dep = obj("dep", owners=(ref(owner),))
    graph.on_add(dep)
    node = graph.nodes[uid(owner)]
    assert not node.observed and node.dependents == {uid(dep)}
    assert node.identity == ObjectIdentity("v1", "ConfigMap", "owner", uid(owner), "ns")
    assert queues[0].take() == [uid(owner)]  # verify the virtual owner with a live GET

    graph.on_add(owner)
    assert node.observed and graph.nodes[uid(owner)] is node
    assert queues[0].take() == []  # coordinates agree: nothing to verify


def test_owner_deletion_queues_dependents_and_remembers_the_owner_absent(graph, queues):
    owner = obj("owner")
    deps = [obj(f"dep{i}", owners=(ref(owner),)) for i in range(2)]
    for o in (owner, *deps):
        graph.on_add(o)
    queues[0].take()

    graph.on_delete(owner)
    assert uid(owner) not in graph.nodes
    assert sorted(queues[0].take()) == sorted(uid(d) for d in deps)
    assert graph.absent_owners.has(ObjectIdentity.of(owner))


def test_delete_of_unknown_final_state_is_handled(graph, queues):
    owner = obj("owner")
    dep = obj("dep", owners=(ref(owner),))
    graph.on_add(owner)
    graph.on_add(dep)
    queues[0].take()
    graph.on_delete(DeletedFinalStateUnknown("ns/owner", owner))
    assert queues[0].take() == [uid(dep)]


def test_dependent_deletion_unlinks_it_and_wakes_foreground_owners(graph, queues):
    owner = obj("owner", finalizers=(FINALIZER_FOREGROUND,), deleting=True)
    dep = obj("dep", owners=(ref(owner, block=True),))
    graph.on_add(owner)
    graph.on_add(dep)
    queues[0].take()
    graph.on_delete(dep)
    assert graph.nodes[uid(owner)].dependents == set()
    assert queues[0].take() == [uid(owner)]  # it may have been waiting for exactly this one


def test_owner_reference_changes_move_the_dependent(graph, queues):
    a, b = obj("a"), obj("b")
    for o in (a, b):
        graph.on_add(o)
    dep = obj("dep", owners=(ref(a),))
    graph.on_add(dep)
    graph.on_update(dep, updated(dep, ownerReferences=[ref(b)], resourceVersion="2"))
    assert graph.nodes[uid(a)].dependents == set()
    assert graph.nodes[uid(b)].dependents == {uid(dep)}
    assert graph.nodes[uid(dep)].owners == [ref(b)]


def test_unblocking_a_reference_wakes_the_owner(graph, queues):
    owner = obj("owner")
    dep = obj("dep", owners=(ref(owner, block=True),))
    graph.on_add(owner)
    graph.on_add(dep)
    queues[0].take()
    graph.on_update(dep, updated(dep, ownerReferences=[ref(owner, block=False)], resourceVersion="2"))
    assert queues[0].take() == [uid(owner)]
    graph.on_update(dep, updated(dep, ownerReferences=[], resourceVersion="3"))
    assert queues[0].take() == []  # the removed reference no longer blocked


def test_foreground_deletion_marks_the_owner_and_queues_its_dependents(graph, queues):
    owner = obj("owner")
    blocking = obj("blocking", owners=(ref(owner, block=True),))
    loose = obj("loose", owners=(ref(owner),))
    for o in (owner, blocking, loose):
        graph.on_add(o)
    queues[0].take()

    deleting = updated(owner, finalizers=[FINALIZER_FOREGROUND], deletionTimestamp="2025-01-01T00:00:00Z")
    graph.on_update(owner, deleting)
    node = graph.nodes[uid(owner)]
    assert node.deleting_dependents and node.being_deleted
    assert sorted(queues[0].take()) == sorted([uid(blocking), uid(loose), uid(owner)])
    assert [d.identity.name for d in graph.blocking_dependents(node)] == ["blocking"]

    graph.on_update(deleting, updated(deleting, resourceVersion="3"))
    assert queues[0].take() == []  # only the transition triggers


def test_a_restart_sees_pending_deletions_again(graph, queues):
    """Initial lists arrive as adds: an owner already waiting on a finalizer is picked up again."""
    fg = obj("fg", finalizers=(FINALIZER_FOREGROUND,), deleting=True)
    orphan = obj("orphan", finalizers=(FINALIZER_ORPHAN,), deleting=True)
    graph.on_add(fg)
    graph.on_add(orphan)
    assert graph.nodes[uid(fg)].deleting_dependents
    assert queues[0].take() == [uid(fg)]
    assert queues[1].take() == [uid(orphan)]


def test_orphan_finalizer_queues_the_owner_for_orphaning(graph, queues):
    owner = obj("owner")
    graph.on_add(owner)
    graph.on_update(owner, updated(owner, finalizers=[FINALIZER_ORPHAN], deletionTimestamp="2025-01-01T00:00:00Z"))
    assert queues[1].take() == [uid(owner)]
    assert not graph.nodes[uid(owner)].deleting_dependents


def test_recreated_name_is_two_objects(graph, queues):
    old = obj("owner")
    dep = obj("dep", owners=(ref(old),))
    graph.on_add(old)
    graph.on_add(dep)
    queues[0].take()
    new = obj("owner")  # same name, new uid, seen as an update after a relist
    graph.on_update(old, new)
    assert uid(old) not in graph.nodes and graph.nodes[uid(new)].observed
    assert queues[0].take() == [uid(dep)]


def test_virtual_delete_removes_a_virtual_owner_and_queues_its_dependents(graph, queues):
    ghost = obj("ghost")
    dep = obj("dep", owners=(ref(ghost),))
    graph.on_add(dep)
    queues[0].take()
    graph.virtual_delete(graph.nodes[uid(ghost)].identity)
    assert uid(ghost) not in graph.nodes
    assert queues[0].take() == [uid(dep)]
    assert graph.absent_owners.has(ObjectIdentity.of(ghost))


def test_virtual_delete_with_disagreeing_dependents_tries_the_other_coordinates(graph, queues):
    """Two dependents name the same owner uid by different names: the first guess being absent does not
    condemn the dependent that named it differently; the node moves to the other coordinates."""
    owner_uid = "shared-uid"
    wrong = obj("dep-wrong", owners=({"apiVersion": "v1", "kind": "ConfigMap", "name": "nope", "uid": owner_uid},))
    right = obj("dep-right", owners=({"apiVersion": "v1", "kind": "ConfigMap", "name": "real", "uid": owner_uid},))
    graph.on_add(wrong)
    graph.on_add(right)
    queues[0].take()
    node = graph.nodes[owner_uid]
    assert node.identity.name == "nope"

    graph.virtual_delete(node.identity)
    assert graph.nodes[owner_uid] is node and node.identity.name == "real"
    assert queues[0].take() == [uid(wrong)]  # only the dependent whose reference was verified absent
    assert queues[0].rate_limited == [owner_uid]  # verify the alternative
    assert graph.absent_owners.has(ObjectIdentity("v1", "ConfigMap", "nope", owner_uid, "ns"))

    graph.virtual_delete(node.identity)  # the alternative is absent too: now the node goes
    assert owner_uid not in graph.nodes
    assert set(queues[0].take()) == {uid(wrong), uid(right)}


def test_virtual_delete_does_not_remove_an_observed_node_seen_elsewhere(graph, queues):
    owner = obj("owner")
    dep = obj("dep", owners=(ref(owner, name="old-name"),))
    graph.on_add(owner)
    graph.on_add(dep)
    queues[0].take()
    absent = ObjectIdentity("v1", "ConfigMap", "old-name", uid(owner), "ns")
    graph.virtual_delete(absent)
    assert graph.nodes[uid(owner)].observed
    assert queues[0].take() == [uid(dep)]  # its reference points where nothing is
    assert graph.absent_owners.has(absent)


def test_cross_namespace_reference_to_an_observed_owner_is_reported_and_verified(graph, queues):
    owner = obj("owner", namespace="a")
    dep = obj("dep", namespace="b", owners=(ref(owner),))
    graph.on_add(owner)
    graph.on_add(dep)
    assert queues[0].take() == [uid(dep)]
    assert graph.reported == [("dep", "owner")]


def test_owner_observed_with_other_coordinates_makes_dependents_suspect(graph, queues):
    owner = obj("owner", namespace="a")
    dep = obj("dep", namespace="b", owners=(ref(owner),))
    graph.on_add(dep)  # virtual owner assumed in namespace b
    queues[0].take()
    graph.on_add(owner)
    assert graph.nodes[uid(owner)].identity.namespace == "a"
    assert queues[0].take() == [uid(dep)]
    assert graph.reported == [("dep", "owner")]


def test_cluster_scoped_owner_is_shared_across_namespaces(graph, queues):
    role = obj("role", namespace="", kind="ClusterRole", api_version="rbac.authorization.k8s.io/v1")
    graph.on_add(role)
    deps = [obj(f"dep-{ns}", namespace=ns, owners=(ref(role),)) for ns in ("a", "b")]
    for d in deps:
        graph.on_add(d)
    assert queues[0].take() == []
    assert graph.nodes[uid(role)].dependents == {uid(d) for d in deps}
    graph.on_delete(role)
    assert sorted(queues[0].take()) == sorted(uid(d) for d in deps)


def test_references_diff():
    a = {"uid": "a", "name": "a"}
    b = {"uid": "b", "name": "b"}
    b2 = {"uid": "b", "name": "b", "blockOwnerDeletion": True}
    c = {"uid": "c", "name": "c"}
    added, removed, changed = references_diff([a, b], [b2, c])
    assert added == [c] and removed == [a] and changed == [(b, b2)]


def test_identity_matching_ignores_the_version():
    identity = ObjectIdentity("autoscaling/v2", "HorizontalPodAutoscaler", "h", "u", "ns")
    assert identity.matches({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "name": "h",
                             "uid": "u"})
    assert not identity.matches({"apiVersion": "apps/v1", "kind": "HorizontalPodAutoscaler", "name": "h",
                                 "uid": "u"})


def test_absent_owner_cache_is_bounded_lru():
    cache = AbsentOwnerCache(2)
    ids = [ObjectIdentity("v1", "ConfigMap", str(i), str(i)) for i in range(3)]
    cache.add(ids[0])
    cache.add(ids[1])
    assert cache.has(ids[0])  # touch: ids[1] is now the oldest
    cache.add(ids[2])
    assert cache.has(ids[0]) and cache.has(ids[2]) and not cache.has(ids[1])


def test_monitored_kinds_skip_events_and_converted_forms():
    kinds = {(k.group, k.version, k.plural) for k in deletable_kinds()}
    assert ("", "v1", "configmaps") in kinds and ("rbac.authorization.k8s.io", "v1", "clusterroles") in kinds
    assert ("", "v1", "events") not in kinds and ("events.k8s.io", "v1", "events") not in kinds
    assert ("autoscaling", "v1", "horizontalpodautoscalers") not in kinds
