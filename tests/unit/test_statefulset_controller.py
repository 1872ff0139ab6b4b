"""StatefulSet identities, claims and ordering helpers without a server."""

from __future__ import annotations

import pytest

from pyk8s.controllers.history import CONTROLLER_REVISION_HASH_LABEL, template_patch
from pyk8s.controllers.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    claim_owner_refs,
    identity_matches,
    in_ordinal_range,
    max_unavailable,
    new_pod,
    parse_ordinal,
    run_for_all,
    with_template,
)


def statefulset(replicas: int = 3, start: int | None = None, **spec) -> dict:
    body: dict = {"replicas": replicas, "serviceName": "svc", "selector": {"matchLabels": {"app": "db"}},
                  "template": {"metadata": {"labels": {"app": "db"}},
                               "spec": {"containers": [{"name": "c"}],
                                        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cfg",
                                                                                       "configMap": {"name": "x"}}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}], **spec}
    if start is not None:
        body["ordinals"] = {"start": start}
    return {"metadata": {"name": "db", "namespace": "ns", "uid": "set-uid"}, "spec": body}


@pytest.mark.parametrize(("name", "expected"), [
    ("web-0", ("web", 0)), ("my-web-12", ("my-web", 12)), ("web", ("", -1)), ("web-", ("", -1)),
    ("web-x1", ("", -1)), ("a-b-007", ("a-b", 7)),
])
def test_parse_ordinal(name, expected):
    assert parse_ordinal(name) == expected


def test_new_pod_identity_and_storage():
    sts = statefulset(start=5)
    pod = new_pod(sts, 6, "db-abc")
    assert pod["metadata"]["name"] == "db-6"
    assert pod["metadata"]["labels"] == {"app": "db", POD_NAME_LABEL: "db-6", POD_INDEX_LABEL: "6",
                                         CONTROLLER_REVISION_HASH_LABEL: "db-abc"}
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("db-6", "svc")
    # The claim replaces the template's volume of the same name; other volumes stay.
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-db-6"}},
                                      {"name": "cfg", "configMap": {"name": "x"}}]
    [ref] = pod["metadata"]["ownerReferences"]
    assert ref["kind"] == "StatefulSet" and ref["controller"] is True
    assert identity_matches(sts, pod)
    pod["metadata"]["labels"][POD_INDEX_LABEL] = "1"
    assert not identity_matches(sts, pod)


def test_ordinal_range_with_start():
    sts = statefulset(replicas=2, start=3)
    assert [in_ordinal_range({"metadata": {"name": f"db-{i}"}}, sts) for i in range(6)] == [
        False, False, False, True, True, False]


def pod_at(ordinal: int) -> dict:
    return {"metadata": {"name": f"db-{ordinal}", "uid": f"pod-{ordinal}"}}


@pytest.mark.parametrize(("policy", "ordinal", "expected"), [
    (("Retain", "Retain"), 0, []),
    (("Delete", "Retain"), 0, ["StatefulSet"]),
    (("Delete", "Retain"), 7, ["StatefulSet"]),
    (("Retain", "Delete"), 0, []),
    (("Retain", "Delete"), 7, ["Pod"]),  # scaled away: the claim goes with its pod
    (("Delete", "Delete"), 0, ["StatefulSet"]),
    (("Delete", "Delete"), 7, ["Pod"]),
])
def test_claim_owner_refs_follow_retention_policy(policy, ordinal, expected):
    sts = statefulset(persistentVolumeClaimRetentionPolicy={"whenDeleted": policy[0], "whenScaled": policy[1]})
    claim = {"metadata": {"ownerReferences": [{"kind": "Other", "uid": "keep"},
                                              {"kind": "StatefulSet", "uid": "set-uid"}]}}
    refs = claim_owner_refs(claim, sts, pod_at(ordinal))
    assert refs[0] == {"kind": "Other", "uid": "keep"}
    assert [r["kind"] for r in refs[1:]] == expected
    assert all("controller" not in r for r in refs[1:])


def test_max_unavailable():
    assert max_unavailable(statefulset(10)) == 1
    assert max_unavailable(statefulset(10, updateStrategy={"rollingUpdate": {"maxUnavailable": "25%"}})) == 2
    assert max_unavailable(statefulset(3, updateStrategy={"rollingUpdate": {"maxUnavailable": "10%"}})) == 1


def test_with_template_applies_the_revision():
    sts = statefulset()
    revision = {"data": template_patch({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}})}
    applied = with_template(sts, revision)
    assert applied["spec"]["template"] == {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}
    assert sts["spec"]["template"]["spec"]["containers"] == [{"name": "c"}]  # the original is untouched


async def test_run_for_all_monotonic_stops_at_first_blocker():
    seen = []

    async def fn(i: int) -> bool:
        seen.append(i)
        return i == 1

    assert await run_for_all([0, 1, 2, 3], fn, monotonic=True)
    assert seen == [0, 1]
    seen.clear()
    assert await run_for_all([0, 1, 2, 3], fn, monotonic=False)
    assert sorted(seen) == [0, 1, 2, 3]

    async def fail(i: int) -> bool:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await run_for_all([0], fail, monotonic=False)
