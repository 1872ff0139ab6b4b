"""Job controller arithmetic without a server: index ranges, failure backoff, podFailurePolicy and
successPolicy matching, conditions, and the pods a Job creates."""

from __future__ import annotations

import pytest

from pyk8s.controllers import job_util as ju


@pytest.mark.parametrize(("indexes", "text"), [
    (set(), ""), ({0}, "0"), ({0, 1}, "0,1"), ({0, 1, 2}, "0-2"), ({1, 3, 4, 5, 7}, "1,3-5,7"),
    ({0, 2, 4}, "0,2,4"), ({5, 6, 7, 8, 10, 11}, "5-8,10,11"),
])
def test_index_ranges_round_trip(indexes, text):
    assert ju.format_indexes(indexes) == text
    assert ju.parse_indexes(text) == indexes


def test_parse_indexes_skips_garbage_and_respects_the_limit():
    assert ju.parse_indexes("0,x,2-4,9", limit=4) == {0, 2, 3}
    assert ju.parse_indexes(None) == set()


@pytest.mark.parametrize(("failures", "delay"), [
    (0, 0), (1, 10), (2, 20), (3, 40), (4, 80), (5, 160), (6, 320), (7, 360), (50, 360), (10_000, 360),
])
def test_backoff_delay_doubles_from_10s_capped_at_6_minutes(failures, delay):
    assert ju.backoff_delay(failures) == delay


def test_backoff_remaining_counts_failures_since_the_last_success():
    # Two failures (at 100 and 110): the second waits 20 s from 110.
    assert ju.backoff_remaining([(100.0, False), (110.0, False)], now=115.0) == 15.0
    # A success in between resets the count: one failure after it waits 10 s.
    assert ju.backoff_remaining([(100.0, False), (105.0, True), (110.0, False)], now=115.0) == 5.0
    assert ju.backoff_remaining([(100.0, False)], now=200.0) == 0.0
    assert ju.backoff_remaining([(100.0, True)], now=100.0) == 0.0
    assert ju.backoff_remaining([], now=0.0) == 0.0


def failed_pod(*, codes: dict[str, int] | None = None, conditions: tuple[str, ...] = (), init: dict | None = None):
    def statuses(mapping):
        return [{"name": n, "state": {"terminated": {"exitCode": c}}} for n, c in (mapping or {}).items()]
    return {"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "containerStatuses": statuses(codes), "initContainerStatuses": statuses(init),
                       "conditions": [{"type": t, "status": "True"} for t in conditions]}}


POLICY = {"rules": [
    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
    {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
    {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [2]}},
]}


def test_failure_policy_exit_codes_and_messages():
    match = ju.match_pod_failure_policy(POLICY, failed_pod(codes={"main": 42}))
    assert match == ju.PolicyMatch("FailJob", "Container main for pod ns/p failed with exit code 42 matching FailJob "
                                              "rule at index 1")
    # The containerName restricts the rule: 42 in another container falls through to NotIn [1, 2].
    assert ju.match_pod_failure_policy(POLICY, failed_pod(codes={"side": 42})).action == "Count"
    assert ju.match_pod_failure_policy(POLICY, failed_pod(codes={"main": 2})).action == "FailIndex"
    # Exit code 1 matches nothing: the failure counts towards backoffLimit the ordinary way.
    assert ju.match_pod_failure_policy(POLICY, failed_pod(codes={"main": 1})) is None
    # Exit code 0 never matches a rule, even NotIn.
    assert ju.match_pod_failure_policy(POLICY, failed_pod(codes={"main": 0})) is None
    # Init containers count too.
    assert ju.match_pod_failure_policy(POLICY, failed_pod(init={"setup": 7})).action == "Count"


def test_failure_policy_pod_conditions_come_in_rule_order():
    match = ju.match_pod_failure_policy(POLICY, failed_pod(codes={"main": 42}, conditions=("DisruptionTarget",)))
    assert match == ju.PolicyMatch("Ignore", "Pod ns/p has condition DisruptionTarget matching Ignore rule at index 0")
    false_condition = failed_pod(codes={"main": 1})
    false_condition["status"]["conditions"] = [{"type": "DisruptionTarget", "status": "False"}]
    assert ju.match_pod_failure_policy(POLICY, false_condition) is None
    assert ju.match_pod_failure_policy(None, failed_pod(codes={"main": 42})) is None
    unknown = {"rules": [{"action": "Explode", "onExitCodes": {"operator": "In", "values": [42]}}]}
    assert ju.match_pod_failure_policy(unknown, failed_pod(codes={"main": 42})) is None


def test_success_policy_rules():
    policy = {"rules": [{"succeededIndexes": "0,2-3"}, {"succeededCount": 3}]}
    assert ju.match_success_policy(policy, {0, 2}, 5) is None
    assert ju.match_success_policy(policy, {0, 2, 3}, 5) == "Matched rules at index 0"
    assert ju.match_success_policy(policy, {1, 2, 4}, 5) == "Matched rules at index 1"
    both = {"rules": [{"succeededIndexes": "0-4", "succeededCount": 2}]}
    assert ju.match_success_policy(both, {5, 6, 1}, 10) is None
    assert ju.match_success_policy(both, {1, 4}, 10) == "Matched rules at index 0"
    assert ju.match_success_policy(None, {0}, 1) is None


def test_set_condition_adds_updates_and_skips_absent_false():
    status: dict = {}
    assert not ju.set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", 0)
    assert "conditions" not in status
    assert ju.set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", 0)
    assert not ju.set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", 10)
    assert ju.set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", 20)
    (cond,) = status["conditions"]
    assert cond["status"] == "False" and cond["lastTransitionTime"] == "1970-01-01T00:00:20Z"


JOB = {"apiVersion": "batch/v1", "kind": "Job",
       "metadata": {"name": "work", "namespace": "ns", "uid": "u-1"},
       "spec": {"completionMode": "Indexed", "completions": 3, "backoffLimitPerIndex": 2,
                "template": {"metadata": {"labels": {"batch.kubernetes.io/job-name": "work"},
                                          "annotations": {"a": "b"}},
                             "spec": {"restartPolicy": "Never", "initContainers": [{"name": "i", "image": "x"}],
                                      "containers": [{"name": "c", "image": "x",
                                                      "env": [{"name": "OTHER", "value": "1"}]}]}}}}


def test_indexed_pod_from_template():
    pod = ju.pod_from_template(JOB, 2, index_failures=1)
    meta = pod["metadata"]
    assert meta["generateName"] == "work-2-"
    assert meta["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert meta["annotations"] == {"a": "b", "batch.kubernetes.io/job-completion-index": "2",
                                   "batch.kubernetes.io/job-index-failure-count": "1"}
    assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "work", "uid": "u-1",
                                        "controller": True, "blockOwnerDeletion": True}]
    assert pod["spec"]["hostname"] == "work-2"
    for container in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        assert container["env"][-1]["valueFrom"]["fieldRef"]["fieldPath"] == \
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert pod["spec"]["containers"][0]["env"][0] == {"name": "OTHER", "value": "1"}
    # The template itself is untouched.
    assert "hostname" not in JOB["spec"]["template"]["spec"]
    assert ju.pod_index(pod) == 2 and ju.index_failure_count(pod) == 1


def test_non_indexed_pod_from_template():
    job = {**JOB, "spec": {**JOB["spec"], "completionMode": "NonIndexed"}}
    pod = ju.pod_from_template(job, None)
    assert pod["metadata"]["generateName"] == "work-"
    assert "hostname" not in pod["spec"] and "env" not in pod["spec"]["initContainers"][0]
    assert ju.pod_index(pod) is None
