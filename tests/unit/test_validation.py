"""Upstream validation: exact paths and messages per kind, update rules, and robustness."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api import defaults, validation
from pyk8s.api.errors import FieldError
from pyk8s.api.kinds import KINDS

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                 r"is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
NAME_PART_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                 "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
                  "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")
SELECTOR_MISMATCH = "`selector` does not match template `labels`"


def messages(errs: list[FieldError]) -> list[str]:
    return [err.message() for err in errs]


def shapes(errs: list[FieldError]) -> list[tuple[str, str, str]]:
    """(type, field, detail): for errors whose value is a map or list (Go renders those itself)."""
    return [(err.type, err.field, err.detail) for err in errs]


def container(**fields) -> dict:
    return {"name": "web", "image": "nginx:1.25", **fields}


def pod_template(labels: dict | None = None, **spec) -> dict:
    return {"metadata": {"labels": {"app": "web"} if labels is None else labels},
            "spec": {"containers": [container()], **spec}}


def defaulted(kind: str, obj: dict) -> dict:
    out = copy.deepcopy(obj)
    fn = getattr(defaults, kind, None)
    if fn is not None:
        fn(out)
    return out


def check(kind: str, obj: dict) -> list[FieldError]:
    """Default, then validate the kind's content (as the apiserver does)."""
    return getattr(validation, kind)(defaulted(kind, obj))


def with_changes(obj: dict, **paths) -> dict:
    """A deep copy with dotted paths set (None removes the key)."""
    out = copy.deepcopy(obj)
    for dotted, value in paths.items():
        *parents, last = dotted.split("__")
        target = out
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
        if value is None:
            target.pop(last, None)
        else:
            target[last] = value
    return out


# --- string checks ---

@pytest.mark.parametrize(("fn", "value", "expected"), [
    (validation.is_dns1123_label, "ok-name", []),
    (validation.is_dns1123_label, "Bad", [LABEL_MSG]),
    (validation.is_dns1123_label, "a.b", ["must not contain dots"]),
    (validation.is_dns1123_label, "a" * 64, ["must be no more than 63 characters"]),
    (validation.is_dns1123_subdomain, "a.b-c", []),
    (validation.is_dns1123_subdomain, "Bad_Name", [SUBDOMAIN_MSG]),
    (validation.is_dns1123_subdomain, "a" * 254, ["must be no more than 253 characters"]),
    (validation.is_dns1035_label, "1abc", [DNS1035_MSG]),
    (validation.is_qualified_name, "example.com/My_Name-1", []),
    (validation.is_qualified_name, "bad key", [NAME_PART_MSG]),
    (validation.is_qualified_name, "/name", ["prefix part must be non-empty"]),
    (validation.is_qualified_name, "Example.com/x", ["prefix part " + SUBDOMAIN_MSG]),
    (validation.is_qualified_name, "a/", ["name part must be non-empty", NAME_PART_MSG]),
    (validation.is_qualified_name, "a/b/c", [
        "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. "
        "'example.com/MyName')"]),
    (validation.is_label_value, "", []),
    (validation.is_label_value, "-x", [LABEL_VALUE_MSG]),
    (validation.is_label_value, "é" * 32, ["must be no more than 63 characters", LABEL_VALUE_MSG]),  # bytes count
    (validation.is_config_map_key, "..data", ["must not start with '..'"]),
    (validation.is_config_map_key, "a b", [CONFIG_KEY_MSG]),
    (validation.is_port_name, "http", []),
    (validation.is_port_name, "-Web--port-12345", [
        "must be no more than 15 characters", "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        "must not contain consecutive hyphens", "must not begin or end with a hyphen"]),
    (validation.is_port_name, "8080", ["must contain at least one letter (a-z)"]),
    (validation.is_port_num, 0, ["must be between 1 and 65535, inclusive"]),
    (validation.is_percent, "25", ["a valid percent string must be a numeric string followed by an ending '%' (e.g. "
                                   "'1%',  or '93%', regex used for validation is '[0-9]+%')"]),
    (validation.is_path_segment_name, "..", ["may not be '..'"]),
    (validation.is_path_segment_name, "a/b%c", ["may not contain '/'", "may not contain '%'"]),
    (validation.is_env_var_name, "A=B", ["a valid environment variable name must consist only of printable ASCII "
                                         "characters other than '='"]),
    (validation.is_env_var_name, "my.var-1 x", []),
])
def test_string_checks(fn, value, expected):
    assert fn(value) == expected


# --- metadata ---

@pytest.mark.parametrize(("obj", "namespaced", "expected"), [
    ({"metadata": {"name": "Bad_Name", "namespace": "default"}}, True,
     [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']),
    ({"metadata": {"namespace": "default"}}, True, ["metadata.name: Required value: name or generateName is required"]),
    ({"metadata": {"name": "x"}}, True, ["metadata.namespace: Required value"]),
    ({"metadata": {"name": "x", "namespace": "Bad"}}, True, [f'metadata.namespace: Invalid value: "Bad": {LABEL_MSG}']),
    ({"metadata": {"name": "x", "namespace": "default"}}, False,
     ["metadata.namespace: Forbidden: not allowed on this type"]),
    ({"metadata": {"name": "web-", "generateName": "web-", "namespace": "d"}}, True,
     [f'metadata.name: Invalid value: "web-": {SUBDOMAIN_MSG}']),  # a trailing dash is fine only in a prefix
    ({"metadata": {"name": "x", "generation": -1}}, False, ["metadata.generation: Invalid value: -1: must be greater "
                                                            "than or equal to 0"]),
    ({"metadata": {"name": "x", "labels": {"bad key": "ok", "app": "-bad"}}}, False,
     [f'metadata.labels: Invalid value: "-bad": {LABEL_VALUE_MSG}',
      f'metadata.labels: Invalid value: "bad key": {NAME_PART_MSG}']),
    ({"metadata": {"name": "x", "annotations": {"Example.COM/Note": "ok", "no good": "x"}}}, False,
     [f'metadata.annotations: Invalid value: "no good": {NAME_PART_MSG}']),
    ({"metadata": {"name": "x", "annotations": {"a": "x" * (256 * 1024)}}}, False,
     ["metadata.annotations: Too long: may not be more than 262144 bytes"]),
    ({"metadata": {"name": "x", "finalizers": ["kubernetes", "example.com/f", "custom", "bad/fin/alizer"]}}, False,
     ['metadata.finalizers: Invalid value: "bad/fin/alizer": a qualified name must consist of alphanumeric '
      "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
      "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
      "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
      'metadata.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully '
      "qualified"]),
    ({"metadata": {"name": "x", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                                     "uid": "1"}, {"kind": "", "name": "", "uid": ""}]}}, False,
     ['metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty',
      'metadata.ownerReferences.kind: Invalid value: "": must not be empty',
      'metadata.ownerReferences.name: Invalid value: "": must not be empty',
      'metadata.ownerReferences.uid: Invalid value: "": must not be empty']),
])
def test_object_meta(obj, namespaced, expected):
    assert messages(validation.object_meta(obj, namespaced)) == expected


def test_object_meta_finalizer_conflict_and_controllers():
    obj = {"metadata": {"name": "x", "finalizers": ["orphan", "foregroundDeletion"], "ownerReferences": [
        {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
        {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]}}
    assert shapes(validation.object_meta(obj, False)) == [
        ("Invalid", "metadata.ownerReferences", 'Only one reference can have Controller set to true. Found "true" in '
                                                "references for A/a and B/b"),
        ("Invalid", "metadata.finalizers", "finalizer orphan and foregroundDeletion cannot be both set")]


@pytest.mark.parametrize(("kind", "name", "expected"), [
    ("Service", "1svc", DNS1035_MSG),
    ("Namespace", "a.b", "must not contain dots"),
    ("StatefulSet", "a.b", "must not contain dots"),
    ("Pod", "a.b", None),
    ("Role", "system:viewer", None),
    ("ClusterRoleBinding", "a/b", "may not contain '/'"),
    ("Event", "Pod.Name.17a", None),
])
def test_name_rule_per_kind(kind, name, expected):
    errs = validation.object_meta({"kind": kind, "metadata": {"name": name}}, False)
    assert messages(errs) == ([f'metadata.name: Invalid value: "{name}": {expected}'] if expected else [])


def test_name_rule_can_be_chosen_explicitly():
    errs = validation.object_meta({"metadata": {"name": "a.b"}}, False, kind="Namespace")
    assert messages(errs) == ['metadata.name: Invalid value: "a.b": must not contain dots']


# --- pods ---

POD = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [container()]}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__containers": []}, ["spec.containers: Required value"]),
    ({"spec__containers": [{"name": "web"}]}, ["spec.containers[0].image: Required value"]),
    ({"spec__containers": [container(name="Web")]}, [f'spec.containers[0].name: Invalid value: "Web": {LABEL_MSG}']),
    ({"spec__containers": [container(), container()]}, ['spec.containers[1].name: Duplicate value: "web"']),
    ({"spec__initContainers": [container()]}, ['spec.initContainers[0].name: Duplicate value: "web"']),
    ({"spec__containers": [container(image=" nginx")]},
     ['spec.containers[0].image: Invalid value: " nginx": must not have leading or trailing whitespace']),
    ({"spec__restartPolicy": "Sometimes"},
     ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']),
    ({"spec__dnsPolicy": "None"},
     ["spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"]),
    ({"spec__containers": [container(ports=[{"containerPort": 70000}, {"containerPort": 80, "protocol": "HTTP"}])]},
     ["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
      'spec.containers[0].ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"']),
    ({"spec__containers": [container(ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 81,
                                                                                     "name": "http"}])]},
     ['spec.containers[0].ports[1].name: Duplicate value: "http"']),
    ({"spec__containers": [container(resources={"limits": {"cpu": "1"}, "requests": {"cpu": "1500m"}})]},
     ['spec.containers[0].resources.requests: Invalid value: "1500m": must be less than or equal to cpu limit of 1']),
    ({"spec__containers": [container(resources={"limits": {"example.com/gpu": "1"},
                                                "requests": {"example.com/gpu": "0"}})]},
     ['spec.containers[0].resources.requests: Invalid value: "0": must be equal to example.com/gpu limit of 1']),
    ({"spec__containers": [container(resources={"requests": {"example.com/gpu": "1"}})]},
     ["spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources"]),
    # Requests default to limits in Pods, so both report.
    ({"spec__containers": [container(resources={"limits": {"cpu": "-1", "gpus": "1"}})]},
     ['spec.containers[0].resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0',
      'spec.containers[0].resources.limits[gpus]: Invalid value: "gpus": must be a standard resource for containers',
      'spec.containers[0].resources.requests[cpu]: Invalid value: "-1": must be greater than or equal to 0',
      'spec.containers[0].resources.requests[gpus]: Invalid value: "gpus": must be a standard resource for '
      "containers"]),
    ({"spec__containers": [container(volumeMounts=[{"name": "missing", "mountPath": "/x"}])]},
     ['spec.containers[0].volumeMounts[0].name: Not found: "missing"']),
    ({"spec__volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
     ['spec.volumes[1].name: Duplicate value: "v"']),
    ({"spec__volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]},
     ["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]),
    ({"spec__volumes": [{"name": "s", "secret": {}}]}, ["spec.volumes[0].secret.secretName: Required value"]),
    ({"spec__containers": [container(env=[{"name": "A=B"}, {"name": "X", "valueFrom": {}}])]},
     ['spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only '
      "of printable ASCII characters other than '='",
      'spec.containers[0].env[1].valueFrom: Invalid value: "": must specify one of: `fieldRef`, `resourceFieldRef`, '
      "`configMapKeyRef` or `secretKeyRef`"]),
    ({"spec__containers": [container(livenessProbe={"httpGet": {"port": 0}, "successThreshold": 2})]},
     ["spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
      "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
    ({"spec__containers": [container(readinessProbe={})]},
     ["spec.containers[0].readinessProbe: Required value: must specify a handler type"]),
    ({"spec__initContainers": [container(name="init", livenessProbe={"exec": {"command": ["true"]}})]},
     ["spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without "
      "restartPolicy=Always"]),
    ({"spec__activeDeadlineSeconds": 0},
     ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"]),
    ({"spec__tolerations": [{"operator": "Equal", "value": "x"}]},
     ['spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which '
      'means "match all values and all keys"']),
    ({"spec__tolerations": [{"key": "k", "operator": "Exists", "effect": "Sometimes"}]},
     ['spec.tolerations[0].effect: Unsupported value: "Sometimes": supported values: "NoSchedule", '
      '"PreferNoSchedule", "NoExecute"']),
    ({"spec__hostNetwork": True, "spec__containers": [container(ports=[{"containerPort": 80, "hostPort": 81}])]},
     ["spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is "
      "true"]),
    ({"spec__serviceAccountName": "Bad"}, [f'spec.serviceAccountName: Invalid value: "Bad": {SUBDOMAIN_MSG}']),
])
def test_pod(changes, expected):
    assert messages(check("pod", with_changes(POD, **changes))) == expected


def test_pod_template_kind_reports_template_paths():
    obj = {"metadata": {"name": "t"}, "template": pod_template({"bad key": "x"})}
    assert messages(check("pod_template", obj)) == [f'template.labels: Invalid value: "bad key": {NAME_PART_MSG}']


# --- apps/v1 ---

DEPLOYMENT = {"metadata": {"name": "web", "namespace": "default"},
              "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": pod_template()}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__replicas": -1}, ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
    ({"spec__template__spec__containers": [{"name": "web"}]},
     ["spec.template.spec.containers[0].image: Required value"]),
    ({"spec__template__spec__restartPolicy": "Never"},
     ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"']),
    ({"spec__template__spec__activeDeadlineSeconds": 5},
     ["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"]),
    ({"spec__strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}},
     ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"]),
    ({"spec__strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "110%"}}},
     ['spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "110%": must not be greater than 100%']),
    ({"spec__strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
     ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]),
    ({"spec__progressDeadlineSeconds": 5, "spec__minReadySeconds": 10},
     ["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"]),
])
def test_deployment(changes, expected):
    assert messages(check("deployment", with_changes(DEPLOYMENT, **changes))) == expected


@pytest.mark.parametrize(("changes", "expected"), [
    ({"spec__template__metadata__labels": {"app": "x"}},
     [("Invalid", "spec.template.metadata.labels", SELECTOR_MISMATCH)]),
    ({"spec__selector": None},
     [("Required", "spec.selector", ""), ("Invalid", "spec.template.metadata.labels", SELECTOR_MISMATCH)]),
    ({"spec__selector": {}}, [("Invalid", "spec.selector", "empty selector is invalid for deployment")]),
    ({"spec__selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
     [("Required", "spec.selector.matchExpressions[0].values", "must be specified when `operator` is 'In' or "
                                                               "'NotIn'"),
      ("Invalid", "spec.selector", "invalid label selector")]),
    ({"spec__selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]}}, []),
    ({"spec__strategy": {"type": "Blue"}},
     [("NotSupported", "spec.strategy", 'supported values: "Recreate", "RollingUpdate"')]),
])
def test_deployment_selector_and_strategy(changes, expected):
    assert shapes(check("deployment", with_changes(DEPLOYMENT, **changes))) == expected


def test_selector_mismatch_carries_the_template_labels():
    errs = check("deployment", with_changes(DEPLOYMENT, spec__template__metadata__labels={"app": "x"}))
    assert errs[0].value == {"app": "x"}


def test_replica_set():
    rs = with_changes(DEPLOYMENT, spec__selector={})
    assert shapes(check("replica_set", rs)) == [
        ("Invalid", "spec.selector", "empty selector is invalid for deployment")]


def test_replication_controller():
    rc = {"metadata": {"name": "rc"}, "spec": {"selector": {"app": "other"}, "template": pod_template()}}
    assert shapes(check("replication_controller", rc)) == [
        ("Invalid", "spec.template.metadata.labels", SELECTOR_MISMATCH)]
    assert messages(check("replication_controller", {"metadata": {"name": "rc"}, "spec": {}})) == [
        "spec.selector: Required value", "spec.template: Required value"]


DAEMON_SET = {"metadata": {"name": "ds"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                   "template": pod_template()}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}},
     ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]),
    ({"spec__updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}},
     ["spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: 1: may not be set when maxUnavailable is non-zero"]),
    ({"spec__template__spec__activeDeadlineSeconds": 5},
     ["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in DaemonSet is not Supported"]),
])
def test_daemon_set(changes, expected):
    assert messages(check("daemon_set", with_changes(DAEMON_SET, **changes))) == expected


def test_daemon_set_without_selector_matches_nothing():
    assert shapes(check("daemon_set", with_changes(DAEMON_SET, spec__selector=None))) == [
        ("Invalid", "spec.template.metadata.labels", SELECTOR_MISMATCH)]


STATEFUL_SET = {"metadata": {"name": "db"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                     "serviceName": "db", "template": pod_template()}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    # StatefulSet templates are not validated as pod specs upstream.
    ({"spec__template__spec__containers": [{"name": "Bad"}]}, []),
    ({"spec__podManagementPolicy": "Whenever"},
     ['spec.podManagementPolicy: Invalid value: "Whenever": must be \'OrderedReady\' or \'Parallel\'']),
    ({"spec__updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": -1}}},
     ["spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0"]),
    ({"spec__persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Keep", "whenScaled": "Retain"}},
     ['spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: "Keep": supported values: '
      '"Retain", "Delete"']),
    ({"spec__template__spec__restartPolicy": "OnFailure"},
     ['spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"']),
])
def test_stateful_set(changes, expected):
    assert messages(check("stateful_set", with_changes(STATEFUL_SET, **changes))) == expected


def test_controller_revision():
    assert messages(check("controller_revision", {"metadata": {"name": "r"}, "revision": -1})) == [
        "data: Required value: data is mandatory", "revision: Invalid value: -1: must be greater than or equal to 0"]


# --- batch/v1 ---

def job_object(**spec) -> dict:
    obj = {"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
           "spec": {"template": pod_template({}, restartPolicy="Never"), **spec}}
    defaults.generate_job_selector(obj)
    return obj


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, []),
    ({"parallelism": -1}, ["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]),
    ({"backoffLimit": -2}, ["spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0"]),
    ({"completionMode": "Indexed", "parallelism": 2},
     ["spec.completions: Required value: when completion mode is Indexed"]),
    ({"completionMode": "Sometimes"},
     ['spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"']),
    ({"podReplacementPolicy": "Always"},
     ['spec.podReplacementPolicy: Unsupported value: "Always": supported values: "Failed", "TerminatingOrFailed"']),
])
def test_job(spec, expected):
    assert messages(check("job", job_object(**spec))) == expected


@pytest.mark.parametrize(("restart", "expected"), [
    (None, 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ("Always", 'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'),
    ("Maybe", 'spec.template.spec.restartPolicy: Unsupported value: "Maybe": supported values: "OnFailure", "Never"'),
])
def test_job_restart_policy(restart, expected):
    obj = job_object()
    obj["spec"]["template"]["spec"].pop("restartPolicy")
    if restart:
        obj["spec"]["template"]["spec"]["restartPolicy"] = restart
    assert messages(check("job", obj))[-1] == expected


def test_unknown_job_restart_policy_fails_both_pod_and_job_rules():
    obj = job_object()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Maybe"
    assert messages(check("job", obj)) == [
        'spec.template.spec.restartPolicy: Unsupported value: "Maybe": supported values: "Always", "OnFailure", '
        '"Never"',
        'spec.template.spec.restartPolicy: Unsupported value: "Maybe": supported values: "OnFailure", "Never"']


def test_job_selector_rules():
    manual = job_object()
    manual["spec"]["selector"] = {"matchLabels": {"app": "mine"}}
    assert shapes(check("job", manual)) == [("Invalid", "spec.selector", "`selector` not auto-generated"),
                                            ("Invalid", "spec.template.metadata.labels", SELECTOR_MISMATCH)]
    manual["spec"]["manualSelector"] = True
    assert shapes(check("job", manual)) == [("Invalid", "spec.template.metadata.labels", SELECTOR_MISMATCH)]


def test_indexed_job_pod_hostnames_must_be_labels():
    obj = job_object(completionMode="Indexed", completions=10)
    obj["metadata"]["name"] = "x" * 62
    assert messages(check("job", obj)) == [f'metadata.name: Invalid value: "{"x" * 62}": will not able to create pod '
                                           f"with invalid DNS label: {'x' * 62}-9"]


CRON_JOB = {"metadata": {"name": "backup", "namespace": "default"},
            "spec": {"schedule": "*/5 * * * *",
                     "jobTemplate": {"spec": {"template": pod_template({}, restartPolicy="OnFailure")}}}}


@pytest.mark.parametrize(("schedule", "error"), [
    ("@hourly", None),
    ("@every 1h30m", None),
    ("0 0 1 jan-mar mon-fri", None),
    ("*/15 9-17 * * 1-5", None),
    ("TZ=UTC 0 * * * *", None),
    ("", "empty spec string"),
    ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("a * * * *", 'failed to parse int from a: strconv.Atoi: parsing "a": invalid syntax'),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
    ("@every 5x", 'failed to parse duration @every 5x: time: unknown unit "x" in duration "5x"'),
    ("@every 5", 'failed to parse duration @every 5: time: missing unit in duration "5"'),
    ("TZ=Mars/Base 0 * * * *", "provided bad location Mars/Base: unknown time zone Mars/Base"),
])
def test_cron_schedule_errors(schedule, error):
    assert validation.cron_schedule_error(schedule) == error


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__schedule": ""}, ["spec.schedule: Required value"]),
    ({"spec__schedule": "61 * * * *"},
     ['spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61']),
    ({"spec__schedule": "TZ=UTC 0 * * * *"},
     ['spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone field '
      "instead"]),
    ({"spec__timeZone": "Europe/Berlin"}, []),
    ({"spec__timeZone": "Mars/Olympus"}, ['spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone '
                                          "Mars/Olympus"]),
    ({"spec__timeZone": "Local"}, ['spec.timeZone: Invalid value: "Local": timeZone must be an explicit time zone as '
                                   "defined in https://www.iana.org/time-zones"]),
    ({"spec__timeZone": ""}, ['spec.timeZone: Invalid value: "": timeZone must be nil or non-empty string']),
    ({"spec__concurrencyPolicy": "Sometimes"},
     ['spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"']),
    ({"spec__jobTemplate__spec__template__spec__restartPolicy": "Always"},
     ['spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"']),
    ({"spec__jobTemplate__spec__manualSelector": True},
     ['spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: "nil", "false"']),
    ({"metadata__name": "x" * 53}, [f'metadata.name: Invalid value: "{"x" * 53}": must be no more than 52 characters']),
])
def test_cron_job(changes, expected):
    assert messages(check("cron_job", with_changes(CRON_JOB, **changes))) == expected


# --- services and endpoints ---

SERVICE = {"metadata": {"name": "web", "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__ports": []}, ["spec.ports: Required value"]),
    ({"spec__ports": [], "spec__clusterIP": "None"}, []),
    ({"spec__ports": [{"port": 0}]}, ["spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                                      "spec.ports[0].targetPort: Invalid value: 0: must be between 1 and 65535, "
                                      "inclusive"]),
    ({"spec__ports": [{"port": 80}, {"port": 443, "name": "https"}]}, ["spec.ports[0].name: Required value"]),
    ({"spec__ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}, ['spec.ports[1].name: Duplicate value: '
                                                                              '"a"']),
    ({"spec__ports": [{"port": 80, "protocol": "HTTP"}]},
     ['spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"']),
    ({"spec__ports": [{"port": 80, "targetPort": "Http"}]},
     ['spec.ports[0].targetPort: Invalid value: "Http": must contain only alpha-numeric characters (a-z, 0-9), and '
      "hyphens (-)"]),
    ({"spec__type": "Magic"}, ['spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", '
                               '"LoadBalancer", "NodePort"']),
    ({"spec__ports": [{"port": 80, "nodePort": 30080}]},
     ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
    ({"spec__type": "NodePort", "spec__clusterIP": "None"},
     ['spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for NodePort services']),
    ({"spec__type": "ExternalName", "spec__ports": None}, ["spec.externalName: Required value"]),
    ({"spec__type": "ExternalName", "spec__externalName": "db.example.com.", "spec__ports": None}, []),
    ({"spec__clusterIP": "10.0.0.300"}, ['spec.clusterIPs[0]: Invalid value: "10.0.0.300": must be a valid IP '
                                         "address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]),
    ({"spec__externalTrafficPolicy": "Local"},
     ['spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services']),
    ({"spec__sessionAffinity": "Sticky"},
     ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"']),
])
def test_service(changes, expected):
    assert messages(check("service", with_changes(SERVICE, **changes))) == expected


def test_service_duplicate_port():
    obj = with_changes(SERVICE, spec__ports=[{"port": 80, "name": "a"}, {"port": 80, "name": "b"}])
    assert shapes(check("service", obj)) == [("Duplicate", "spec.ports[1]", "")]


@pytest.mark.parametrize(("subsets", "expected"), [
    ([{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}], []),
    ([{"ports": [{"port": 80}]}], ["subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"]),
    ([{"addresses": [{"ip": "127.0.0.1"}, {"ip": "nope"}]}],
     ['subsets[0].addresses[0].ip: Invalid value: "127.0.0.1": may not be in the loopback range (127.0.0.0/8, '
      "::1/128)",
      'subsets[0].addresses[1].ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or '
      "2001:db8::ffff)"]),
])
def test_endpoints(subsets, expected):
    assert messages(check("endpoints", {"metadata": {"name": "e"}, "subsets": subsets})) == expected


# --- config maps and secrets ---

@pytest.mark.parametrize(("obj", "expected"), [
    ({"data": {"good.key": "v"}}, []),
    ({"data": {"bad key": "v"}}, [f'data[bad key]: Invalid value: "bad key": {CONFIG_KEY_MSG}']),
    ({"data": {"k": "v"}, "binaryData": {"k": "dg=="}},
     ['data[k]: Invalid value: "k": duplicate of key present in binaryData']),
    ({"data": {"big": "x" * (1024 * 1024 + 1)}}, ["Too long: may not be more than 1048576 bytes"]),
])
def test_config_map(obj, expected):
    assert messages(check("config_map", {"metadata": {"name": "c"}, **obj})) == expected


@pytest.mark.parametrize(("obj", "expected"), [
    ({"data": {"a": "YQ=="}}, []),
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}}, ["data[tls.key]: Required value"]),
    ({"type": "kubernetes.io/dockerconfigjson", "data": {}}, ["data[.dockerconfigjson]: Required value"]),
    ({"type": "kubernetes.io/dockerconfigjson", "stringData": {".dockerconfigjson": '{"auths": {}}'}}, []),
    ({"type": "kubernetes.io/basic-auth"}, ["data[username]: Required value", "data[password]: Required value"]),
    ({"type": "kubernetes.io/ssh-auth"}, ["data[ssh-privatekey]: Required value"]),
    ({"type": "kubernetes.io/service-account-token"},
     ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]),
    ({"data": {"..x": "YQ=="}}, ['data[..x]: Invalid value: "..x": must not start with \'..\'']),
])
def test_secret(obj, expected):
    assert messages(check("secret", {"metadata": {"name": "s"}, **obj})) == expected


def test_secret_docker_config_must_be_json():
    obj = {"metadata": {"name": "s"}, "type": "kubernetes.io/dockerconfigjson",
           "stringData": {".dockerconfigjson": "{"}}
    assert [(e.field, e.value) for e in check("secret", obj)] == [("data[.dockerconfigjson]",
                                                                   "<secret contents redacted>")]


# --- namespaces, nodes, storage ---

def test_namespace_finalizers():
    obj = {"metadata": {"name": "ns"}, "spec": {"finalizers": ["kubernetes", "custom", "example.com/x"]}}
    assert messages(check("namespace", obj)) == [
        'spec.finalizers: Invalid value: "custom": name is neither a standard finalizer name nor is it fully qualified']


def test_node_taints_and_cidrs():
    obj = {"metadata": {"name": "n1"}, "spec": {
        "podCIDRs": ["10.0.0.0/24", "10.1.0.0/24"],
        "taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"},
                   {"key": "x", "effect": "Never"}, {"key": "y"}]}}
    assert shapes(check("node", obj)) == [
        ("Duplicate", "spec.taints[1]", "taints must be unique by key and effect pair"),
        ("NotSupported", "spec.taints[2].effect", 'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"'),
        ("Required", "spec.taints[3].effect", ""),
        ("Invalid", "spec.podCIDRs", "may specify no more than one CIDR for each IP family")]


PVC = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                              "resources": {"requests": {"storage": "1Gi"}}}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__accessModes": []}, ["spec.accessModes: Required value: at least 1 access mode is required"]),
    ({"spec__accessModes": ["ReadWriteSometimes"]},
     ['spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", "ReadWriteMany", '
      '"ReadWriteOnce", "ReadWriteOncePod"']),
    ({"spec__accessModes": ["ReadWriteOncePod", "ReadOnlyMany"]},
     ["spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"]),
    ({"spec__resources": {}}, ["spec.resources[storage]: Required value"]),
    ({"spec__resources": {"requests": {"storage": "0"}}},
     ['spec.resources[storage]: Invalid value: "0": must be greater than zero']),
    ({"spec__volumeMode": "Raw"}, ['spec.volumeMode: Unsupported value: "Raw": supported values: "Block", '
                                   '"Filesystem"']),
])
def test_persistent_volume_claim(changes, expected):
    assert messages(check("persistent_volume_claim", with_changes(PVC, **changes))) == expected


def test_persistent_volume():
    good = {"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                                                 "hostPath": {"path": "/data"}}}
    assert check("persistent_volume", good) == []
    bad = {"metadata": {"name": "pv"}, "spec": {"hostPath": {}, "nfs": {"server": "s", "path": "/"},
                                                "persistentVolumeReclaimPolicy": "Keep"}}
    assert shapes(check("persistent_volume", bad)) == [
        ("Required", "spec.accessModes", ""), ("Required", "spec.capacity", ""),
        ("NotSupported", "spec.capacity", 'supported values: "storage"'),
        ("NotSupported", "spec.persistentVolumeReclaimPolicy", 'supported values: "Delete", "Recycle", "Retain"'),
        ("Forbidden", "spec.nfs", "may not specify more than 1 volume type"),
        ("Required", "spec.hostPath.path", "")]


@pytest.mark.parametrize(("obj", "expected"), [
    ({"provisioner": "ebs.csi.aws.com"}, []),
    ({}, ["provisioner: Required value"]),
    ({"provisioner": "x", "reclaimPolicy": "Recycle"},
     ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"']),
    ({"provisioner": "x", "volumeBindingMode": "Later"},
     ['volumeBindingMode: Unsupported value: "Later": supported values: "Immediate", "WaitForFirstConsumer"']),
])
def test_storage_class(obj, expected):
    assert messages(check("storage_class", {"metadata": {"name": "sc"}, **obj})) == expected


def test_resource_quota():
    obj = {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1.5", "cpu": "-1", "apples": "3"},
                                               "scopes": ["BestEffort", "NotBestEffort"]}}
    assert messages(check("resource_quota", obj))[:3] == [
        'spec.hard[apples]: Invalid value: "apples": must be a standard resource for quota',
        'spec.hard[cpu]: Invalid value: "-1": must be greater than or equal to 0',
        'spec.hard[pods]: Invalid value: "1500m": must be an integer']
    assert shapes(check("resource_quota", obj))[3:] == [("Invalid", "spec.scopes", "conflicting scopes")]


def test_limit_range():
    obj = {"metadata": {"name": "l"}, "spec": {"limits": [
        {"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}},
        {"type": "Pod", "default": {"cpu": "1"}},
        {"type": "Container"},
        {"type": "Bogus"},
    ]}}
    assert messages(check("limit_range", obj)) == [
        'spec.limits[0].min[cpu]: Invalid value: "2": min value 2 is greater than max value 1',
        'spec.limits[0].defaultRequest[cpu]: Invalid value: "1": min value 2 is greater than default request value 1',
        'spec.limits[0].default[cpu]: Invalid value: "2": min value 2 is greater than default value 1',
        "spec.limits[1].default: Forbidden: may not be specified when `type` is 'Pod'",
        'spec.limits[2].type: Duplicate value: "Container"',
        'spec.limits[3].type: Invalid value: "Bogus": must be a standard limit type or fully qualified']


# --- autoscaling, policy, networking ---

HPA = {"metadata": {"name": "web"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                                "name": "web"}, "maxReplicas": 5}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__maxReplicas": 0}, ["spec.maxReplicas: Invalid value: 0: must be greater than 0",
                                "spec.maxReplicas: Invalid value: 0: must be greater than or equal to `minReplicas`"]),
    ({"spec__minReplicas": 0}, ["spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"]),
    ({"spec__scaleTargetRef": {}}, ["spec.scaleTargetRef.kind: Required value", "spec.scaleTargetRef.name: Required "
                                                                                "value"]),
    ({"spec__metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]},
     ["spec.metrics[0].resource.target.averageUtilization: Required value: must set either a target raw value or a "
      "target utilization"]),
    ({"spec__metrics": [{"type": "Bogus"}]},
     ['spec.metrics[0].type: Unsupported value: "Bogus": supported values: "Object", "Pods", "Resource", "External", '
      '"ContainerResource"']),
    ({"spec__behavior": {"scaleUp": {"stabilizationWindowSeconds": 4000, "policies": []}}},
     ["spec.behavior.scaleUp.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600",
      "spec.behavior.scaleUp.policies: Required value: must specify at least one Policy"]),
])
def test_horizontal_pod_autoscaler(changes, expected):
    assert messages(check("horizontal_pod_autoscaler", with_changes(HPA, **changes))) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}, []),
    ({"minAvailable": "50%", "maxUnavailable": 1}, [("Invalid", "spec", "minAvailable and maxUnavailable cannot be "
                                                                         "both set")]),
    ({"maxUnavailable": "150%"}, [("Invalid", "spec.maxUnavailable", "must not be greater than 100%")]),
    ({"minAvailable": -1}, [("Invalid", "spec.minAvailable", "must be greater than or equal to 0")]),
])
def test_pod_disruption_budget(spec, expected):
    assert shapes(check("pod_disruption_budget", {"metadata": {"name": "p"}, "spec": spec})) == expected


INGRESS = {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "example.com", "http": {"paths": [
    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"spec__rules__0__host": "1.2.3.4"}, ['spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an '
                                           "IP address"]),
    ({"spec__rules__0__host": "*.example.com"}, []),
    ({"spec__rules__0__http__paths__0__pathType": None},
     ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]),
    ({"spec__rules__0__http__paths__0__path": "api"},
     ['spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path']),
    ({"spec__rules__0__http__paths__0__backend": {"service": {"name": "web", "port": {}}}},
     ["spec.rules[0].http.paths[0].backend: Required value: port name or number is required"]),
    ({"spec__rules__0__http__paths__0__backend": {}},
     ['spec.rules[0].http.paths[0].backend: Invalid value: "": resource or service backend is required']),
])
def test_ingress(changes, expected):
    assert messages(check("ingress", with_changes(INGRESS, **changes))) == expected


def test_ingress_needs_rules_or_default_backend():
    assert shapes(check("ingress", {"metadata": {"name": "i"}, "spec": {}})) == [
        ("Invalid", "spec", "either `defaultBackend` or `rules` must be specified")]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"controller": "example.com/ingress"}, []),
    ({}, ["spec.controller: Required value"]),
    ({"controller": "nginx"}, ['spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as '
                               '"acme.io/foo")']),
])
def test_ingress_class(spec, expected):
    assert messages(check("ingress_class", {"metadata": {"name": "c"}, "spec": spec})) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}], "ports": [{"port": 80}]}]}, []),
    ({"podSelector": {}, "ingress": [{"from": [{}]}]}, ["spec.ingress[0].from[0]: Required value: must specify a "
                                                        "peer"]),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}]},
     ['spec.egress[0].to[0].ipBlock.except[0]: Invalid value: "192.168.0.0/16": must be a strict subset of `cidr`']),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "http", "endPort": 90}]}]},
     ["spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric"]),
    ({"podSelector": {}, "policyTypes": ["Sideways"]},
     ['spec.policyTypes[0]: Unsupported value: "Sideways": supported values: "Ingress", "Egress"']),
])
def test_network_policy(spec, expected):
    assert messages(check("network_policy", {"metadata": {"name": "n"}, "spec": spec})) == expected


# --- rbac ---

def test_roles():
    rules = [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, {"apiGroups": [""]},
             {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]
    assert shapes(check("role", {"metadata": {"name": "r"}, "rules": rules})) == [
        ("Required", "rules[1].verbs", "verbs must contain at least one value"),
        ("Required", "rules[1].resources", "resource rules must supply at least one resource"),
        ("Invalid", "rules[2].nonResourceURLs", "namespaced rules cannot apply to non-resource URLs")]
    assert messages(check("cluster_role", {"metadata": {"name": "r"}, "rules": rules[2:]})) == []


@pytest.mark.parametrize(("kind", "role_ref", "subjects", "expected"), [
    ("role_binding", {"kind": "Role", "name": "r"}, [{"kind": "ServiceAccount", "name": "default"}], []),
    ("role_binding", {"kind": "Pod", "name": "r"}, [],
     ['roleRef.kind: Unsupported value: "Pod": supported values: "Role", "ClusterRole"']),
    ("cluster_role_binding", {"kind": "Role", "name": "r"}, [],
     ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"']),
    ("cluster_role_binding", {"kind": "ClusterRole", "name": "r"}, [{"kind": "ServiceAccount", "name": "sa"}],
     ["subjects[0].namespace: Required value"]),
    ("role_binding", {"kind": "Role", "name": ""}, [{"kind": "Robot", "name": "x"}],
     ["roleRef.name: Required value",
      'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"']),
    ("role_binding", {"kind": "Role", "name": "r", "apiGroup": "example.com"}, [],
     ['roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"']),
])
def test_bindings(kind, role_ref, subjects, expected):
    obj = {"metadata": {"name": "b"}, "roleRef": role_ref, "subjects": subjects}
    assert messages(check(kind, obj)) == expected


# --- discovery, coordination, scheduling, events ---

@pytest.mark.parametrize(("obj", "expected"), [
    ({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}, []),
    ({"addressType": "IPv5"}, ['addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"']),
    ({"addressType": "IPv4", "endpoints": [{"addresses": []}, {"addresses": ["::1"]}]},
     ["endpoints[0].addresses: Required value: must contain at least 1 address",
      'endpoints[1].addresses[0]: Invalid value: "::1": must be a valid IPv4 address']),
    ({"addressType": "IPv6", "ports": [{"name": "a"}, {"name": "a"}]}, ['ports[1].name: Duplicate value: "a"']),
])
def test_endpoint_slice(obj, expected):
    assert messages(check("endpoint_slice", {"metadata": {"name": "s"}, **obj})) == expected


def test_lease():
    obj = {"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1}}
    assert messages(check("lease", obj)) == ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
                                             "spec.leaseTransitions: Invalid value: -1: must be greater than or equal "
                                             "to 0"]


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("high", 1000, []),
    ("too-high", 1000000001, ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]),
    ("system-node-critical", 2000001000, []),
    ("system-custom", 5, ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for "
                          "system use only. error: system-custom is not a known system priority class"]),
    ("system-cluster-critical", 5, ["metadata.name: Forbidden: priority class names with 'system-' prefix are "
                                    "reserved for system use only. error: value of system-cluster-critical "
                                    "PriorityClass must be 2000000000"]),
])
def test_priority_class(name, value, expected):
    assert messages(check("priority_class", {"metadata": {"name": name}, "value": value})) == expected


@pytest.mark.parametrize(("obj", "expected"), [
    ({"metadata": {"name": "e", "namespace": "default"}, "involvedObject": {"kind": "Node", "name": "n1"}}, []),
    ({"metadata": {"name": "e", "namespace": "team"}, "involvedObject": {"kind": "Pod", "namespace": "team"}}, []),
    ({"metadata": {"name": "e", "namespace": "team"}, "involvedObject": {"kind": "Pod", "namespace": "other"}},
     ['involvedObject.namespace: Invalid value: "other": does not match event.namespace']),
    ({"metadata": {"name": "e", "namespace": "team"}, "eventTime": "2024-01-01T00:00:00.000000Z",
      "involvedObject": {"namespace": "team"}, "reportingComponent": "kubelet", "reportingInstance": "n1",
      "action": "Pulling"},
     ["reason: Required value"]),
])
def test_event(obj, expected):
    assert messages(check("event", obj)) == expected


# --- update rules ---

def updated(kind: str, old: dict, **changes) -> list[FieldError]:
    before = defaulted(kind, old)
    after = defaulted(kind, with_changes(before, **changes))
    return getattr(validation, f"{kind}_update")(after, before)


@pytest.mark.parametrize("kind", ["deployment", "replica_set", "daemon_set"])
def test_selector_is_immutable(kind):
    errs = updated(kind, DEPLOYMENT, spec__selector={"matchLabels": {"app": "web", "v": "2"}})
    assert shapes(errs) == [("Invalid", "spec.selector", "field is immutable")]
    assert updated(kind, DEPLOYMENT, spec__replicas=5) == []


def test_stateful_set_update():
    new_template = pod_template({"app": "web"}, hostname="x")
    assert updated("stateful_set", STATEFUL_SET, spec__replicas=3, spec__template=new_template) == []
    assert messages(updated("stateful_set", STATEFUL_SET, spec__serviceName="other")) == [
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
        "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]


def test_job_update():
    job = job_object()
    new_template = pod_template({}, restartPolicy="OnFailure")
    assert shapes(updated("job", job, spec__template=new_template)) == [
        ("Invalid", "spec.template", "field is immutable")]
    assert messages(updated("job", job, spec__completions=3)) == [
        "spec.completions: Invalid value: 3: field is immutable"]
    assert updated("job", job, spec__parallelism=4, spec__suspend=True) == []


def test_suspended_job_that_never_ran_may_change_scheduling_directives():
    job = job_object(suspend=True)
    changes = {"spec__template__spec__nodeSelector": {"zone": "a"},
               "spec__template__metadata__annotations": {"note": "x"}}
    assert updated("job", job, **changes) == []
    started = with_changes(job, status__startTime="2024-01-01T00:00:00Z")
    assert shapes(updated("job", started, **changes)) == [("Invalid", "spec.template", "field is immutable")]


def test_elastic_indexed_job_completions():
    job = job_object(completionMode="Indexed", completions=3, parallelism=3)
    assert updated("job", job, spec__completions=5, spec__parallelism=5) == []
    assert messages(updated("job", job, spec__completions=5)) == [
        "spec.completions: Invalid value: 5: can only be modified in tandem with spec.parallelism"]


POD_UPDATE_MSG = ("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                  "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to "
                  "existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                  "previously negative)")


def test_pod_update_allowed_changes():
    old = with_changes(POD, spec__activeDeadlineSeconds=100, spec__tolerations=[{"key": "a", "operator": "Exists"}])
    assert updated("pod", old, spec__containers__0__image="nginx:1.26", spec__activeDeadlineSeconds=50,
                   spec__tolerations=[{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"spec__containers": [container(), container(name="extra")]},
     ["spec.containers: Forbidden: pod updates may not add or remove containers"]),
    ({"spec__containers__0__image": ""}, ["spec.containers[0].image: Required value"]),
    ({"spec__activeDeadlineSeconds": 200},
     ["spec.activeDeadlineSeconds: Invalid value: 200: must be less than or equal to previous value"]),
    ({"spec__activeDeadlineSeconds": None},
     ["spec.activeDeadlineSeconds: Invalid value: null: must not update from a positive integer to nil value"]),
    ({"spec__tolerations": []},
     ["spec.tolerations: Forbidden: existing toleration can not be modified except its tolerationSeconds"]),
])
def test_pod_update_rejections(changes, expected):
    old = with_changes(POD, spec__activeDeadlineSeconds=100, spec__tolerations=[{"key": "a", "operator": "Exists"}])
    assert messages(updated("pod", old, **changes)) == expected


def test_pod_update_other_fields_forbidden():
    errs = updated("pod", POD, spec__containers__0__env=[{"name": "A", "value": "1"}])
    assert len(errs) == 1
    assert errs[0].message().startswith(POD_UPDATE_MSG + "\n")
    assert "containers" in errs[0].detail


def test_service_cluster_ip_may_not_change():
    old = with_changes(SERVICE, spec__clusterIP="10.96.0.10", spec__clusterIPs=["10.96.0.10"])
    assert shapes(updated("service", old, spec__clusterIP="10.96.0.11", spec__clusterIPs=["10.96.0.11"])) == [
        ("Invalid", "spec.clusterIPs[0]", "may not change once set")]
    assert shapes(updated("service", old, spec__clusterIP=None, spec__clusterIPs=None)) == [
        ("Invalid", "spec.clusterIPs[0]", "primary clusterIP can not be unset")]
    assert updated("service", old, spec__type="ExternalName", spec__clusterIP=None, spec__clusterIPs=None) == []
    assert updated("service", old, spec__ports=[{"port": 8080}]) == []


@pytest.mark.parametrize("kind", ["config_map", "secret"])
def test_immutable_payload(kind):
    old = {"metadata": {"name": "x"}, "data": {"a": "YQ=="}, "immutable": True}
    assert messages(updated(kind, old, data={"a": "Yg=="})) == [
        "data: Forbidden: field is immutable when `immutable` is set"]
    assert messages(updated(kind, old, immutable=False)) == [
        "immutable: Forbidden: field is immutable when `immutable` is set"]
    assert updated(kind, {"metadata": {"name": "x"}, "data": {"a": "YQ=="}}, data={"b": "Yg=="}) == []


def test_secret_type_is_immutable():
    assert messages(updated("secret", {"metadata": {"name": "s"}}, type="kubernetes.io/tls")) == [
        'type: Invalid value: "kubernetes.io/tls": field is immutable']


def test_pvc_update():
    bound = with_changes(PVC, spec__volumeName="pv-1", status__phase="Bound",
                         status__capacity={"storage": "1Gi"})
    assert updated("persistent_volume_claim", bound, spec__resources={"requests": {"storage": "2Gi"}}) == []
    assert messages(updated("persistent_volume_claim", bound, spec__resources={"requests": {"storage": "512Mi"}})) == [
        "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"]
    errs = updated("persistent_volume_claim", bound, spec__accessModes=["ReadWriteMany"])
    assert errs[0].message().startswith("spec: Forbidden: spec is immutable after creation except resources.requests "
                                        "for bound claims\n")
    assert updated("persistent_volume_claim", PVC, spec__volumeName="pv-2", spec__storageClassName="standard") == []


def test_pv_update():
    pv = {"metadata": {"name": "pv"}, "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                                               "hostPath": {"path": "/data"}}}
    assert updated("persistent_volume", pv, spec__capacity={"storage": "2Gi"}) == []
    errs = updated("persistent_volume", pv, spec__hostPath={"path": "/other"})
    assert errs[0].message().startswith("spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is "
                                        "immutable after creation\n")


def test_node_update():
    node = {"metadata": {"name": "n"}, "spec": {"podCIDRs": ["10.0.0.0/24"], "providerID": "kind://n"}}
    assert updated("node", node, spec__unschedulable=True, spec__taints=[{"key": "k", "effect": "NoSchedule"}]) == []
    assert messages(updated("node", node, spec__podCIDRs=["10.0.1.0/24"], spec__providerID="other")) == [
        'spec.podCIDRs: Forbidden: node updates may not change podCIDR except from "" to valid',
        'spec.providerID: Forbidden: node updates may not change providerID except from "" to valid']
    assert updated("node", {"metadata": {"name": "n"}, "spec": {}}, spec__podCIDRs=["10.0.0.0/24"]) == []


@pytest.mark.parametrize(("kind", "old", "changes", "expected"), [
    ("role_binding", {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "a"}},
     {"roleRef__name": "b"}, [("Invalid", "roleRef", "cannot change roleRef")]),
    ("cluster_role_binding", {"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "a"}},
     {"subjects": [{"kind": "User", "name": "u"}]}, []),
    ("priority_class", {"metadata": {"name": "p"}, "value": 1}, {"value": 2},
     [("Forbidden", "value", "may not be changed in an update.")]),
    ("priority_class", {"metadata": {"name": "p"}, "value": 1}, {"preemptionPolicy": "Never"},
     [("Invalid", "preemptionPolicy", "field is immutable")]),
    ("storage_class", {"metadata": {"name": "s"}, "provisioner": "a"},
     {"provisioner": "b", "parameters": {"type": "gp3"}, "volumeBindingMode": "WaitForFirstConsumer"},
     [("Forbidden", "parameters", "updates to parameters are forbidden."),
      ("Forbidden", "provisioner", "updates to provisioner are forbidden."),
      ("Invalid", "volumeBindingMode", "field is immutable")]),
    ("endpoint_slice", {"metadata": {"name": "s"}, "addressType": "IPv4"}, {"addressType": "IPv6"},
     [("Invalid", "addressType", "field is immutable")]),
    ("controller_revision", {"metadata": {"name": "r"}, "data": {"a": 1}, "revision": 1}, {"data": {"a": 2}},
     [("Invalid", "data", "field is immutable")]),
    ("ingress_class", {"metadata": {"name": "c"}, "spec": {"controller": "a.io/x"}}, {"spec__controller": "b.io/x"},
     [("Invalid", "spec.controller", "field is immutable")]),
])
def test_other_update_rules(kind, old, changes, expected):
    assert shapes(updated(kind, old, **changes)) == expected


# --- properties ---

VALID = {
    "pod": POD, "pod_template": {"metadata": {"name": "t"}, "template": pod_template()},
    "deployment": DEPLOYMENT, "replica_set": DEPLOYMENT, "daemon_set": DAEMON_SET, "stateful_set": STATEFUL_SET,
    "replication_controller": {"metadata": {"name": "rc"}, "spec": {"template": pod_template()}},
    "job": job_object(), "cron_job": CRON_JOB, "service": SERVICE, "persistent_volume_claim": PVC,
    "horizontal_pod_autoscaler": HPA,
    "ingress": INGRESS, "config_map": {"metadata": {"name": "c"}, "data": {"a": "b"}},
    "secret": {"metadata": {"name": "s"}, "stringData": {"a": "b"}},
    "namespace": {"metadata": {"name": "ns"}},
}


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_pass_after_defaulting(kind):
    obj = {"kind": "", **VALID[kind]}
    obj["metadata"] = {"namespace": "default", **obj["metadata"]}
    namespaced = kind != "namespace"
    if not namespaced:
        obj["metadata"].pop("namespace")
    assert validation.object_meta(defaulted(kind, obj), namespaced) + check(kind, obj) == []


_VALIDATORS = sorted({k.name for k in KINDS if hasattr(validation, k.name)})
_UPDATE_VALIDATORS = sorted({k.name for k in KINDS if hasattr(validation, f"{k.name}_update")})

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2, 70000) | st.sampled_from(["", "x", "-1", "1Gi", "*"]),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["spec", "template", "containers", "metadata", "ports", "selector", "type",
                                          "name", "image", "labels", "resources", "limits", "requests", "rules",
                                          "matchLabels", "matchExpressions", "port", "targetPort", "data", "status",
                                          "strategy", "rollingUpdate", "volumes", "clusterIPs", "schedule"]),
                         inner, max_size=4), max_leaves=25)
_OBJECTS = st.dictionaries(st.sampled_from(["spec", "metadata", "data", "type", "rules", "roleRef", "subjects",
                                            "status", "involvedObject", "endpoints", "ports", "addressType"]), _JSON)


def test_every_kind_with_rules_is_covered():
    assert {"object_meta"} | set(_VALIDATORS) >= {
        "pod", "deployment", "replica_set", "stateful_set", "daemon_set", "job", "cron_job", "service", "config_map",
        "secret", "namespace", "node", "persistent_volume", "persistent_volume_claim", "resource_quota", "limit_range",
        "horizontal_pod_autoscaler", "pod_disruption_budget", "ingress", "ingress_class", "network_policy",
        "storage_class", "role", "cluster_role", "role_binding", "cluster_role_binding", "endpoint_slice", "lease",
        "priority_class", "event", "endpoints", "controller_revision", "replication_controller", "pod_template"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OBJECTS, st.sampled_from(_VALIDATORS))
def test_validation_never_raises(obj, kind):
    errs = getattr(validation, kind)(obj) + validation.object_meta(obj, True)
    assert all(isinstance(err, FieldError) for err in errs)
    assert all(isinstance(err.message(), str) for err in errs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_OBJECTS, _OBJECTS, st.sampled_from(_UPDATE_VALIDATORS))
def test_update_validation_never_raises(obj, old, kind):
    assert all(isinstance(err, FieldError) for err in getattr(validation, f"{kind}_update")(obj, old))
