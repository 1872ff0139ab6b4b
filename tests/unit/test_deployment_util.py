"""Deployment arithmetic and ControllerRevision hashing without a server."""

from __future__ import annotations

import pytest

from pyk8s.controllers import deployment_util as du
from pyk8s.controllers import history


def deployment(replicas: int = 10, surge: int | str | None = "25%", unavailable: int | str | None = "25%",
               strategy: str = "RollingUpdate", annotations: dict | None = None, generation: int = 1) -> dict:
    spec: dict = {"replicas": replicas, "strategy": {"type": strategy},
                  "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}}
    if strategy == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "d", "generation": generation, "annotations": annotations or {}}, "spec": spec,
            "status": {}}


def rs(name: str, replicas: int, *, available: int = 0, created: str = "2024-01-01T00:00:00Z",
       revision: int | None = None, max_replicas: int | None = None, image: str = "x") -> dict:
    annotations = {}
    if revision is not None:
        annotations[du.REVISION_ANNOTATION] = str(revision)
    if max_replicas is not None:
        annotations[du.MAX_REPLICAS_ANNOTATION] = str(max_replicas)
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created, "annotations": annotations},
            "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "a", "pod-template-hash": name}},
                                                        "spec": {"containers": [{"name": "c", "image": image}]}}},
            "status": {"replicas": replicas, "availableReplicas": available}}


@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable rounds down
    ("25%", "25%", 1, (1, 0)),
    (0, 0, 5, (0, 1)),  # both zero: one may be unavailable
    ("0%", "0%", 5, (0, 1)),
    (2, "50%", 3, (2, 1)),
    ("100%", 0, 7, (7, 0)),
])
def test_resolve_fenceposts(surge, unavailable, desired, expected):
    assert du.resolve_fenceposts(surge, unavailable, desired) == expected


def test_max_unavailable_and_surge_by_strategy():
    assert (du.max_surge(deployment(10)), du.max_unavailable(deployment(10))) == (3, 2)
    assert du.max_unavailable(deployment(0)) == 0
    assert du.max_unavailable(deployment(2, surge=0, unavailable="200%")) == 2  # capped at replicas
    recreate = deployment(10, strategy="Recreate")
    assert (du.max_surge(recreate), du.max_unavailable(recreate)) == (0, 0)


def test_scaled_value_rejects_garbage():
    with pytest.raises(ValueError):
        du.scaled_value("lots", 10, True)


def test_new_replicas_respects_surge():
    d = deployment(10)  # surge 3
    old = rs("old", 10, available=10)
    new = rs("new", 0)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3
    new = rs("new", 3)
    assert du.new_rs_new_replicas(d, [old, new], new) == 3  # 13 already: no more
    old = rs("old", 5, available=5)
    assert du.new_rs_new_replicas(d, [old, new], new) == 8
    assert du.new_rs_new_replicas(deployment(10, strategy="Recreate"), [old, new], new) == 10


def test_old_scale_down_keeps_min_available():
    d = deployment(10)  # surge 3, unavailable 2: minAvailable 8
    old = rs("old", 10, available=10)
    new = rs("new", 3, available=0)
    all_rss = [old, new]
    # 13 total - 8 min available - 3 unavailable new = 2 may go
    assert du.old_scale_down_budget(d, all_rss, new) == 2
    assert du.old_rolling_scale_down_plan(d, all_rss, [old]) == {"old": 8}
    # Unhealthy old replicas are dropped first, oldest ReplicaSet first, within the budget.
    older = rs("older", 2, available=0, created="2023-01-01T00:00:00Z")
    assert du.cleanup_unhealthy_plan([old, older], 1) == {"older": 1}
    assert du.cleanup_unhealthy_plan([old, older], 5) == {"older": 0}


def test_find_new_replica_set_ignores_hash_label_and_empty_fields():
    d = deployment()
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "x"
    older = rs("aaa", 1, created="2023-01-01T00:00:00Z")
    newer = rs("bbb", 1, created="2024-06-01T00:00:00Z")
    newer["spec"]["template"]["spec"]["containers"][0]["resources"] = {}  # as kubectl rollout undo sends it
    assert du.find_new_replica_set(d, [newer, older])["metadata"]["name"] == "aaa"
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "y"
    assert du.find_new_replica_set(d, [newer, older]) is None


def test_revision_annotations_and_history_on_rollback():
    d = deployment(annotations={du.CHANGE_CAUSE_ANNOTATION: "v2", du.LAST_APPLIED_ANNOTATION: "{}",
                                du.REVISION_ANNOTATION: "7"})
    fresh = {"metadata": {"name": "n"}}
    assert du.set_new_replica_set_annotations(d, fresh, 1, exists=False)
    annotations = fresh["metadata"]["annotations"]
    assert annotations == {du.CHANGE_CAUSE_ANNOTATION: "v2", du.REVISION_ANNOTATION: "1",
                           du.DESIRED_REPLICAS_ANNOTATION: "10", du.MAX_REPLICAS_ANNOTATION: "13"}
    # A rollback to this ReplicaSet raises its revision and remembers the old one.
    assert du.set_new_replica_set_annotations(d, fresh, 4, exists=True)
    assert annotations[du.REVISION_ANNOTATION] == "4" and annotations[du.REVISION_HISTORY_ANNOTATION] == "1"
    assert not du.set_new_replica_set_annotations(d, fresh, 4, exists=True)
    assert du.max_revision([rs("a", 1, revision=3), rs("b", 1, revision=12), rs("c", 1)]) == 12


def test_proportional_scaling_during_rollout():
    # 10 -> 20 replicas mid-rollout with surge 3: old has 8, new 5 (annotated max 13) → grow both in proportion.
    d = deployment(20)  # surge 5: allowed 25
    old = rs("old", 8, created="2023-01-01T00:00:00Z", max_replicas=13)
    new = rs("new", 5, created="2024-01-01T00:00:00Z", max_replicas=13)
    sizes = du.proportional_sizes(d, [old, new])
    assert sum(sizes.values()) == 25
    assert sizes == {"old": 15, "new": 10}
    # Scaling down: both shrink, leftovers to the largest.
    d = deployment(4, surge=1, unavailable=0)  # allowed 5
    sizes = du.proportional_sizes(d, [old, new])
    assert sum(sizes.values()) == 5 and all(v >= 0 for v in sizes.values())


def test_find_active_or_latest():
    old = rs("old", 0, created="2023-01-01T00:00:00Z")
    newest_old = rs("newest-old", 0, created="2023-06-01T00:00:00Z")
    assert du.find_active_or_latest(None, [old, newest_old])["metadata"]["name"] == "newest-old"
    active = rs("active", 3)
    assert du.find_active_or_latest(None, [old, active])["metadata"]["name"] == "active"
    assert du.find_active_or_latest(rs("new", 1), [active]) is None


def test_status_and_conditions():
    d = deployment(4, surge=1, unavailable=1)
    new = rs("new", 4, available=3)
    new["status"]["readyReplicas"] = 3
    status = du.calculate_status(d, [new], new, now=0)
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"],
            status["unavailableReplicas"], status["readyReplicas"], status["observedGeneration"]) == (4, 4, 3, 1, 3, 1)
    available = du.get_condition(status, du.AVAILABLE)
    assert (available["status"], available["reason"]) == ("True", du.MINIMUM_REPLICAS_AVAILABLE)
    new["status"]["availableReplicas"] = 2
    status = du.calculate_status(d, [new], new, now=0)
    assert du.get_condition(status, du.AVAILABLE)["reason"] == du.MINIMUM_REPLICAS_UNAVAILABLE
    assert not du.deployment_complete(d, status)
    assert du.deployment_complete(d, {"updatedReplicas": 4, "replicas": 4, "availableReplicas": 4,
                                      "observedGeneration": 1})


def test_set_condition_keeps_transition_time_for_same_status():
    status: dict = {}
    du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.NEW_RS_REASON, "a", now=100))
    du.set_condition(status, du.new_condition(du.PROGRESSING, "True", du.RS_UPDATED_REASON, "b", now=200))
    cond = du.get_condition(status, du.PROGRESSING)
    assert cond["reason"] == du.RS_UPDATED_REASON and cond["lastTransitionTime"] == du.now_rfc3339(100)
    assert cond["lastUpdateTime"] == du.now_rfc3339(200)


def test_progress_deadline():
    d = deployment(2)
    d["spec"]["progressDeadlineSeconds"] = 10
    status = {"conditions": [du.new_condition(du.PROGRESSING, "True", du.RS_UPDATED_REASON, "x", now=1000)]}
    assert not du.deployment_timed_out(d, status, 1005)
    assert du.deployment_timed_out(d, status, 1011)
    d["spec"]["progressDeadlineSeconds"] = du.MAX_INT32
    assert not du.has_progress_deadline(d) and not du.deployment_timed_out(d, status, 10**9)


def test_hash_is_stable_safe_and_changes_with_collision_count():
    template = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    first = history.compute_hash(template, None)
    assert first == history.compute_hash({"spec": template["spec"], "metadata": template["metadata"]}, None)
    assert set(first) <= set(history.SAFE_ALPHABET) and first
    assert history.compute_hash(template, 1) != first
    assert history.compute_hash(template, 0) != first  # a collision count of 0 is still mixed in
    assert du.pod_template_hash(template, None) == first
    assert history.fnv32a(b"") == 0x811C9DC5 and history.fnv32a(b"a") == 0xE40C292C  # FNV-1a test vectors


def test_revision_helpers():
    template = {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c"}]}}
    data = history.template_patch(template)
    assert data["spec"]["template"]["$patch"] == "replace"
    assert history.template_from_patch(data) == template
    owner = {"metadata": {"name": "o" * 300, "namespace": "ns", "uid": "u"}}
    revision = history.new_revision(owner, "apps/v1", "DaemonSet", data, 2, hash_="abc", labels={"app": "a"})
    assert revision["metadata"]["name"] == "o" * history.MAX_NAME_PREFIX + "-abc"
    assert revision["metadata"]["labels"] == {"app": "a", history.CONTROLLER_REVISION_HASH_LABEL: "abc"}
    other = {**revision, "data": history.template_patch({"spec": {}})}
    assert history.equal_revisions(revision, revision) and not history.equal_revisions(revision, other)
    ordered = history.sort_revisions([{"revision": 3, "metadata": {}}, {"revision": 1, "metadata": {}}])
    assert [r["revision"] for r in ordered] == [1, 3]
