"""`--controllers` selection (upstream syntax) and the namespace controller's deletion conditions."""

from __future__ import annotations

import pytest

from pyk8s.api.kinds import REGISTRY
from pyk8s.controllers.manager import CONTROLLERS, enabled_controllers, parse_controllers
from pyk8s.controllers.namespace import (
    CONDITION_TYPES,
    ConditionUpdater,
    ContentTotals,
    aggregate_message,
    estimate_pod_grace,
    namespaced_kinds,
)

# The controllers on by default (upstream's defaults among those pyk8s has).
DEFAULTS = {"clusterrole-aggregation-controller", "disruption-controller", "garbage-collector-controller",
            "namespace-controller", "node-ipam-controller", "node-lifecycle-controller",
            "pod-garbage-collector-controller",
            "resourcequota-controller", "root-ca-certificate-publisher-controller", "serviceaccount-controller",
            "serviceaccount-token-controller", "replicaset-controller", "replicationcontroller-controller",
            "deployment-controller", "daemonset-controller", "statefulset-controller", "job-controller",
            "cronjob-controller", "ttl-after-finished-controller", "certificatesigningrequest-approving-controller",
            "certificatesigningrequest-signing-controller", "endpoints-controller", "endpointslice-controller",
            "endpointslice-mirroring-controller"}
GC = "garbage-collector-controller"


def ordered(names: set[str]) -> list[str]:
    """`names` in the order the controller-manager starts them (its registry order)."""
    return [name for name in CONTROLLERS if name in names]


@pytest.mark.parametrize(("selection", "expected"), [
    ("*", ordered(DEFAULTS)),
    ("", []),
    ("namespace", ["namespace-controller"]),
    ("*,-namespace", ordered(DEFAULTS - {"namespace-controller"})),
    ("-garbagecollector,*", ordered(DEFAULTS - {GC})),
    ("garbage-collector-controller,-garbage-collector-controller", [GC]),  # first wins
    ("-namespace,namespace,*", ordered(DEFAULTS - {"namespace-controller"})),
    (["*", "-namespace-controller"], ordered(DEFAULTS - {"namespace-controller"})),
    ("*,-replicaset,-deployment", ordered(DEFAULTS - {"replicaset-controller", "deployment-controller"})),
])
def test_controller_selection(selection, expected):
    assert enabled_controllers(selection) == expected


def test_unknown_controller_is_an_error():
    with pytest.raises(ValueError, match='"bogus" is not in the list of known controllers'):
        parse_controllers("*,-bogus")


def test_conditions_all_ok_are_written_once():
    ns: dict = {"status": {"phase": "Terminating"}}
    assert ConditionUpdater(now="2025-01-01T00:00:00Z").update(ns)
    conditions = ns["status"]["conditions"]
    assert [c["type"] for c in conditions] == list(CONDITION_TYPES)
    assert {c["status"] for c in conditions} == {"False"}
    assert (conditions[3]["reason"], conditions[3]["message"]) == ("ContentRemoved", "All content successfully removed")
    assert not ConditionUpdater(now="2025-01-01T00:00:09Z").update(ns)  # nothing changed: no write


def test_conditions_report_remaining_content_and_failures():
    configmaps = REGISTRY.by_kind("", "v1", "ConfigMap")
    deployments = REGISTRY.by_kind("apps", "v1", "Deployment")
    ns: dict = {}
    ConditionUpdater(now="2025-01-01T00:00:00Z").update(ns)
    updater = ConditionUpdater(now="2025-01-01T00:00:05Z")
    updater.process_content_totals(ContentTotals(remaining={deployments: 1, configmaps: 2},
                                                 finalizers={"b.io/x": 1, "a.io/y": 2}))
    updater.process_delete_content_error(RuntimeError("boom"))
    assert updater.update(ns)
    by_type = {c["type"]: c for c in ns["status"]["conditions"]}
    assert by_type["NamespaceContentRemaining"] == {
        "type": "NamespaceContentRemaining", "status": "True", "lastTransitionTime": "2025-01-01T00:00:05Z",
        "reason": "SomeResourcesRemain",
        "message": "Some resources are remaining: configmaps. has 2 resource instances, "
                   "deployments.apps has 1 resource instances"}
    assert by_type["NamespaceFinalizersRemaining"]["message"] == (
        "Some content in the namespace has finalizers remaining: a.io/y in 2 resource instances, "
        "b.io/x in 1 resource instances")
    assert by_type["NamespaceDeletionContentFailure"]["reason"] == "ContentDeletionFailed"
    assert by_type["NamespaceDeletionContentFailure"]["message"] == \
        "Failed to delete all resource types, 1 remaining: boom"
    assert by_type["NamespaceDeletionDiscoveryFailure"]["lastTransitionTime"] == "2025-01-01T00:00:00Z"


def test_aggregate_message_matches_upstream_format():
    assert aggregate_message([ValueError("a")]) == "a"
    assert aggregate_message([ValueError("a"), ValueError("b")]) == "[a, b]"


def test_pod_grace_estimate():
    pods = [{"spec": {}},
            {"spec": {"terminationGracePeriodSeconds": 60}, "status": {"phase": "Succeeded"}},
            {"spec": {"terminationGracePeriodSeconds": 45}, "metadata": {"deletionGracePeriodSeconds": 10}}]
    assert estimate_pod_grace(pods) == 30
    assert estimate_pod_grace([]) == 0


def test_namespace_sweep_covers_every_namespaced_stored_kind_once():
    plurals = [(k.group, k.plural) for k in namespaced_kinds()]
    assert len(plurals) == len(set(plurals))
    assert ("", "pods") in plurals and ("", "events") in plurals and ("apps", "deployments") in plurals
    assert ("", "namespaces") not in plurals and ("", "nodes") not in plurals
