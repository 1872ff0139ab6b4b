"""ClusterRole aggregation: which roles an aggregationRule selects and the union of their rules."""

from __future__ import annotations

import pytest

from pyk8s.api.selectors import SelectorError
from pyk8s.controllers.clusterroleaggregation import aggregated_rules

GET_PODS = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}
LIST_PODS = {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}
GET_NODES = {"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}


def role(name, rules=(), labels=None, selectors=None):
    obj = {"kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}}, "rules": list(rules)}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def test_union_in_name_order_without_duplicates_and_without_itself():
    aggregate = role("agg", [GET_NODES], {"team": "a"}, [{"matchLabels": {"team": "a"}}])
    roles = [aggregate, role("zeta", [LIST_PODS, GET_PODS], {"team": "a"}), role("alpha", [GET_PODS], {"team": "a"}),
             role("other", [GET_NODES], {"team": "b"})]
    assert aggregated_rules(aggregate, roles) == [GET_PODS, LIST_PODS]


def test_any_selector_may_match():
    aggregate = role("agg", selectors=[{"matchLabels": {"a": "1"}},
                                       {"matchExpressions": [{"key": "b", "operator": "Exists"}]}])
    roles = [aggregate, role("one", [GET_PODS], {"a": "1"}), role("two", [GET_NODES], {"b": "x"}),
             role("three", [LIST_PODS], {"c": "1"})]
    assert aggregated_rules(aggregate, roles) == [GET_PODS, GET_NODES]


def test_no_match_means_no_rules():
    aggregate = role("agg", [GET_PODS], selectors=[{"matchLabels": {"nobody": "true"}}])
    assert aggregated_rules(aggregate, [aggregate]) == []


def test_invalid_selector_is_an_error():
    aggregate = role("agg", selectors=[{"matchExpressions": [{"key": "a", "operator": "Near"}]}])
    with pytest.raises(SelectorError):
        aggregated_rules(aggregate, [aggregate])
