"""The eviction subresource's decisions (pyk8s.apiserver.eviction), table by table."""

from __future__ import annotations

import pytest

from pyk8s.api import protobuf
from pyk8s.api.errors import APIError
from pyk8s.apiserver.eviction import (
    can_ignore_pdb,
    decrement_budget,
    delete_options_of,
    matching_pdbs,
    unhealthy_pod_bypasses_budget,
)
from pyk8s.apiserver.negotiation import PROTOBUF, decode_body

NOW = "2026-01-01T00:00:00Z"


def pod(name="p", phase="Running", ready=True, labels=None, deleting=False) -> dict:
    meta = {"name": name, "namespace": "ns", "labels": labels if labels is not None else {"app": "a"}}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(name="b", selector=None, generation=1, unhealthy=None, **status) -> dict:
    spec = {"selector": selector if selector is not None else {"matchLabels": {"app": "a"}}}
    if unhealthy:
        spec["unhealthyPodEvictionPolicy"] = unhealthy
    return {"metadata": {"name": name, "namespace": "ns", "generation": generation}, "spec": spec,
            "status": {"observedGeneration": 1, **status}}


@pytest.mark.parametrize(("phase", "deleting", "ignored"), [
    ("Running", False, False), ("Pending", False, True), ("Succeeded", False, True), ("Failed", False, True),
    ("Running", True, True), ("Unknown", False, False),
])
def test_pods_that_disrupt_nothing_bypass_the_budget(phase, deleting, ignored):
    assert can_ignore_pdb(pod(phase=phase, deleting=deleting)) is ignored


def test_matching_pdbs_skips_empty_selectors_and_other_labels():
    budgets = [pdb("match"), pdb("empty", selector={}), pdb("other", selector={"matchLabels": {"app": "b"}}),
               pdb("expr", selector={"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]})]
    assert [b["metadata"]["name"] for b in matching_pdbs(pod(), budgets)] == ["match", "expr"]


@pytest.mark.parametrize(("ready", "policy", "current", "desired", "bypass"), [
    (True, None, 5, 3, False),  # healthy pods always pay
    (False, "AlwaysAllow", 0, 3, True),
    (False, None, 3, 3, True),  # IfHealthyBudget (the default): budget satisfied
    (False, "IfHealthyBudget", 4, 3, True),
    (False, None, 2, 3, False),  # budget not satisfied: must pay (and is refused)
    (False, None, 0, 0, False),  # desiredHealthy 0 never bypasses
])
def test_unhealthy_pod_eviction_policy(ready, policy, current, desired, bypass):
    budget = pdb(unhealthy=policy, currentHealthy=current, desiredHealthy=desired)
    assert unhealthy_pod_bypasses_budget(pod(ready=ready), budget) is bypass


def test_decrement_takes_one_disruption_and_records_the_pod():
    budget = decrement_budget(pdb(disruptionsAllowed=2, currentHealthy=4, desiredHealthy=2), "p", NOW, False)
    assert budget["status"]["disruptionsAllowed"] == 1
    assert budget["status"]["disruptedPods"] == {"p": NOW}
    assert "conditions" not in budget["status"]  # still above zero: the controller's condition stands


def test_decrement_to_zero_flips_the_condition_and_dry_run_records_nothing():
    budget = decrement_budget(pdb(disruptionsAllowed=1, conditions=[
        {"type": "DisruptionAllowed", "status": "True", "reason": "SufficientPods", "lastTransitionTime": "x"}]),
        "p", NOW, True)
    assert budget["status"]["disruptionsAllowed"] == 0
    assert "disruptedPods" not in budget["status"]
    [condition] = budget["status"]["conditions"]
    assert (condition["status"], condition["reason"], condition["lastTransitionTime"]) == (
        "False", "InsufficientPods", NOW)


def test_no_disruptions_left_is_429_with_the_budget_cause():
    with pytest.raises(APIError) as caught:
        decrement_budget(pdb(disruptionsAllowed=0, currentHealthy=2, desiredHealthy=2), "p", NOW, False)
    status = caught.value.status()
    assert status["code"] == 429 and status["reason"] == "TooManyRequests"
    assert status["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
    assert status["details"]["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget b needs 2 healthy pods and has 2 currently"}]


def test_budget_not_yet_observed_is_429_with_retry_after():
    with pytest.raises(APIError) as caught:
        decrement_budget(pdb(generation=2, disruptionsAllowed=5), "p", NOW, False)
    status = caught.value.status()
    assert status["code"] == 429 and status["details"]["retryAfterSeconds"] == 10
    assert status["details"]["causes"][0]["message"] == (
        "The disruption budget b is still being processed by the server.")


def test_negative_budget_is_forbidden():
    with pytest.raises(APIError) as caught:
        decrement_budget(pdb(disruptionsAllowed=-1), "p", NOW, False)
    assert caught.value.code == 403 and "pdb disruptions allowed is negative" in caught.value.message


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(number: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_protobuf_eviction_body_decodes():
    """What kubectl drain sends: Eviction{metadata{name, namespace}, deleteOptions{gracePeriodSeconds, dryRun}}."""
    options = _varint(1 << 3) + _varint(30) + _ld(5, "All")
    eviction = _ld(1, _ld(1, "web") + _ld(3, "ns")) + _ld(2, options)
    raw = protobuf.MAGIC + _ld(1, _ld(1, "policy/v1") + _ld(2, "Eviction")) + _ld(2, eviction)
    body = decode_body(raw, PROTOBUF, "Eviction", "policy/v1")
    assert body["kind"] == "Eviction" and body["apiVersion"] == "policy/v1"
    assert body["metadata"]["name"] == "web" and body["metadata"]["namespace"] == "ns"
    assert body["deleteOptions"]["gracePeriodSeconds"] == 30 and body["deleteOptions"]["dryRun"] == ["All"]


def test_delete_options_come_from_the_eviction_and_the_request():
    options = delete_options_of({"deleteOptions": {"gracePeriodSeconds": 5, "preconditions": {"uid": "u"},
                                                 "orphanDependents": True}}, query_dry_run=True)
    assert (options.grace_period_seconds, options.preconditions, options.propagation_policy, options.dry_run) == (
        5, {"uid": "u"}, "Orphan", True)
    assert not delete_options_of({}, query_dry_run=False).dry_run
    with pytest.raises(APIError) as caught:
        delete_options_of({"deleteOptions": {"dryRun": ["Some"]}}, query_dry_run=False)
    assert caught.value.code == 400 and caught.value.message == 'Invalid dry run value: "Some". Valid values are: "All"'
    with pytest.raises(APIError) as caught:
        delete_options_of({"deleteOptions": {"propagationPolicy": "Sideways"}}, query_dry_run=False)
    assert caught.value.code == 422
