"""Upstream v1 defaulting: exact results per kind, template identity and idempotence."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api import defaults
from pyk8s.api.kinds import KINDS

POD_SPEC_DEFAULTS = {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "securityContext": {},
                     "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler"}
CONTAINER_DEFAULTS = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


def container(**fields) -> dict:
    return {"name": "c", "image": "nginx:1.25", **fields}


def defaulted_container(**fields) -> dict:
    return {"imagePullPolicy": "IfNotPresent", **CONTAINER_DEFAULTS, **container(**fields)}


def template(labels: dict | None = None, **spec) -> dict:
    return {"metadata": {"labels": labels or {"app": "web"}}, "spec": {"containers": [container()], **spec}}


def defaulted_template(labels: dict | None = None, **spec) -> dict:
    return {"metadata": {"labels": labels or {"app": "web"}},
            "spec": {"containers": [defaulted_container()], **POD_SPEC_DEFAULTS, **spec}}


def applied(fn, obj: dict) -> dict:
    out = copy.deepcopy(obj)
    fn(out)
    return out


# --- pods and pod templates ---

@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.25", "IfNotPresent"),
    ("registry.k8s.io/pause:3.9", "IfNotPresent"),
    ("localhost:5000/app", "Always"),  # a registry port is not a tag
    ("localhost:5000/app:v1", "IfNotPresent"),
    ("app@sha256:" + "a" * 64, "IfNotPresent"),  # a digest without a tag
    ("app:latest@sha256:" + "a" * 64, "Always"),
    ("NGINX", "IfNotPresent"),  # not a valid reference: upstream finds no tag
    ("", "IfNotPresent"),
])
def test_image_pull_policy(image, policy):
    ctr = {"name": "c", "image": image}
    defaults.container(ctr)
    assert ctr["imagePullPolicy"] == policy


def test_explicit_pull_policy_is_kept():
    ctr = {"name": "c", "image": "nginx", "imagePullPolicy": "Never"}
    defaults.container(ctr)
    assert ctr["imagePullPolicy"] == "Never"


def test_pod_defaults():
    pod = {"spec": {"containers": [container(
        ports=[{"containerPort": 80}],
        env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        resources={"limits": {"cpu": "0.5", "memory": "1.5Gi"}, "requests": {"memory": "1Gi"}},
        livenessProbe={"httpGet": {"port": 80}},
        readinessProbe={"grpc": {"port": 9090}, "periodSeconds": 5},
        lifecycle={"preStop": {"httpGet": {"port": 80}}},
    )]}}
    assert applied(defaults.pod, pod) == {"spec": {
        "containers": [defaulted_container(
            ports=[{"containerPort": 80, "protocol": "TCP"}],
            env=[{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName", "apiVersion": "v1"}}}],
            resources={"limits": {"cpu": "500m", "memory": "1536Mi"},
                       "requests": {"cpu": "500m", "memory": "1Gi"}},
            livenessProbe={"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                           "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
            readinessProbe={"grpc": {"port": 9090, "service": ""}, "periodSeconds": 5, "timeoutSeconds": 1,
                            "successThreshold": 1, "failureThreshold": 3},
            lifecycle={"preStop": {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}}},
        )],
        "enableServiceLinks": True,
        **POD_SPEC_DEFAULTS,
    }}


def test_pod_volume_defaults():
    pod = {"spec": {"containers": [container()], "volumes": [
        {"name": "scratch"},
        {"name": "s", "secret": {"secretName": "x"}},
        {"name": "c", "configMap": {"name": "x", "defaultMode": 0o600}},
        {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
        {"name": "h", "hostPath": {"path": "/var/log"}},
        {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1.5Gi"}}}}}},
    ]}}
    assert applied(defaults.pod, pod)["spec"]["volumes"] == [
        {"name": "scratch", "emptyDir": {}},
        {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}},
        {"name": "c", "configMap": {"name": "x", "defaultMode": 0o600}},
        {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name",
                                                                           "apiVersion": "v1"}}],
                                      "defaultMode": 420}},
        {"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "token",
                                                                         "expirationSeconds": 3600}}],
                                    "defaultMode": 420}},
        {"name": "h", "hostPath": {"path": "/var/log", "type": ""}},
        {"name": "e", "ephemeral": {"volumeClaimTemplate": {"spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1536Mi"}},
            "volumeMode": "Filesystem"}}}},
    ]


def test_pod_host_network_sets_host_ports():
    pod = {"spec": {"hostNetwork": True, "containers": [container(ports=[{"containerPort": 53}])]}}
    assert applied(defaults.pod, pod)["spec"]["containers"][0]["ports"] == [
        {"containerPort": 53, "hostPort": 53, "protocol": "TCP"}]


def test_pod_init_and_ephemeral_containers_are_defaulted():
    pod = {"spec": {"containers": [container()], "initContainers": [container(name="init")],
                    "ephemeralContainers": [container(name="debug")]}}
    spec = applied(defaults.pod, pod)["spec"]
    assert spec["initContainers"] == [defaulted_container(name="init")]
    assert spec["ephemeralContainers"] == [defaulted_container(name="debug")]


def test_pod_explicit_values_win():
    spec = {"containers": [container()], "restartPolicy": "Never", "dnsPolicy": "Default",
            "terminationGracePeriodSeconds": 0, "securityContext": {"runAsUser": 1}, "enableServiceLinks": False,
            "schedulerName": "mine"}
    assert {k: v for k, v in applied(defaults.pod, {"spec": spec})["spec"].items() if k != "containers"} == {
        k: v for k, v in spec.items() if k != "containers"}


def test_templates_get_no_pod_only_defaults():
    tmpl = template()
    tmpl["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1"}}
    spec = applied(defaults.pod_template, {"template": tmpl})["template"]["spec"]
    assert "enableServiceLinks" not in spec
    assert spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}


def test_pod_template_kind():
    assert applied(defaults.pod_template, {"template": template()}) == {"template": defaulted_template()}


# --- workloads ---

def test_deployment_defaults():
    obj = {"spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}}
    assert applied(defaults.deployment, obj) == {"spec": {
        "selector": {"matchLabels": {"app": "web"}}, "template": defaulted_template(), "replicas": 1,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
        "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}}


@pytest.mark.parametrize(("strategy", "expected"), [
    ({"type": "Recreate"}, {"type": "Recreate"}),
    ({"rollingUpdate": {"maxSurge": 0}}, {"type": "RollingUpdate",
                                          "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "25%"}}),
    ({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
     {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": "25%"}}),
])
def test_deployment_strategy_defaults(strategy, expected):
    obj = {"spec": {"strategy": strategy, "template": template()}}
    assert applied(defaults.deployment, obj)["spec"]["strategy"] == expected


@pytest.mark.parametrize("fn", [defaults.replica_set, defaults.replication_controller, defaults.daemon_set,
                                defaults.stateful_set, defaults.job])
def test_template_defaulting_is_identical_to_deployments(fn):
    """kubectl rollout history/undo deep-compare Deployment and ReplicaSet templates after defaulting."""
    tmpl = template(volumes=[{"name": "v"}], initContainers=[container(name="init")])
    tmpl["spec"]["containers"][0]["livenessProbe"] = {"tcpSocket": {"port": 80}}
    deployment = applied(defaults.deployment, {"spec": {"template": tmpl}})
    other = applied(fn, {"spec": {"template": tmpl}})
    assert other["spec"]["template"] == deployment["spec"]["template"]


def test_replica_set_defaults():
    assert applied(defaults.replica_set, {"spec": {"template": template()}}) == {
        "spec": {"template": defaulted_template(), "replicas": 1}}


def test_replication_controller_takes_selector_and_labels_from_template():
    obj = {"metadata": {"name": "rc"}, "spec": {"template": template({"app": "x"})}}
    assert applied(defaults.replication_controller, obj) == {
        "metadata": {"name": "rc", "labels": {"app": "x"}},
        "spec": {"template": defaulted_template({"app": "x"}), "selector": {"app": "x"}, "replicas": 1}}


def test_replication_controller_keeps_its_own_selector_and_labels():
    obj = {"metadata": {"labels": {"mine": "1"}}, "spec": {"selector": {"app": "x"}, "replicas": 0,
                                                           "template": template({"app": "x", "v": "2"})}}
    out = applied(defaults.replication_controller, obj)
    assert out["metadata"]["labels"] == {"mine": "1"}
    assert (out["spec"]["selector"], out["spec"]["replicas"]) == ({"app": "x"}, 0)


def test_daemon_set_defaults():
    assert applied(defaults.daemon_set, {"spec": {"template": template()}}) == {"spec": {
        "template": defaulted_template(),
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "revisionHistoryLimit": 10}}


def test_daemon_set_on_delete_gets_no_rolling_update():
    obj = {"spec": {"updateStrategy": {"type": "OnDelete"}, "template": template()}}
    assert applied(defaults.daemon_set, obj)["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_stateful_set_defaults():
    obj = {"spec": {"template": template(), "volumeClaimTemplates": [{
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}
    assert applied(defaults.stateful_set, obj) == {"spec": {
        "template": defaulted_template(),
        "volumeClaimTemplates": [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                     "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}}],
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "replicas": 1, "revisionHistoryLimit": 10}}


@pytest.mark.parametrize(("strategy", "expected"), [
    ({"type": "RollingUpdate"}, {"type": "RollingUpdate"}),  # upstream adds rollingUpdate only to an empty type
    ({"type": "RollingUpdate", "rollingUpdate": {}}, {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
    ({"type": "OnDelete"}, {"type": "OnDelete"}),
])
def test_stateful_set_update_strategy(strategy, expected):
    obj = {"spec": {"updateStrategy": strategy, "template": template()}}
    assert applied(defaults.stateful_set, obj)["spec"]["updateStrategy"] == expected


def test_job_defaults():
    obj = {"metadata": {"name": "pi"}, "spec": {"template": template({"app": "pi"}, restartPolicy="Never")}}
    assert applied(defaults.job, obj) == {
        "metadata": {"name": "pi", "labels": {"app": "pi"}},
        "spec": {"template": defaulted_template({"app": "pi"}, restartPolicy="Never"), "completions": 1,
                 "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
                 "podReplacementPolicy": "TerminatingOrFailed"}}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"parallelism": 3}, {"parallelism": 3, "backoffLimit": 6, "podReplacementPolicy": "TerminatingOrFailed"}),
    ({"completions": 5}, {"completions": 5, "parallelism": 1, "backoffLimit": 6,
                          "podReplacementPolicy": "TerminatingOrFailed"}),
    ({"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1},
     {"completionMode": "Indexed", "completions": 2, "backoffLimitPerIndex": 1, "parallelism": 1,
      "backoffLimit": 2147483647, "podReplacementPolicy": "TerminatingOrFailed"}),
    ({"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}},
     {"podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                                               "status": "True"}]}]},
      "completions": 1, "parallelism": 1, "backoffLimit": 6, "podReplacementPolicy": "Failed"}),
])
def test_job_spec_variants(spec, expected):
    out = applied(defaults.job, {"spec": dict(spec)})["spec"]
    expected = {"completionMode": "NonIndexed", "suspend": False, **expected}
    assert out == expected


def test_generate_job_selector():
    obj = {"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": template({"app": "pi"})}}
    defaults.generate_job_selector(obj)
    defaults.job(obj)
    generated = {"job-name": "pi", "batch.kubernetes.io/job-name": "pi", "controller-uid": "u-1",
                 "batch.kubernetes.io/controller-uid": "u-1"}
    assert obj["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "pi", **generated}
    assert obj["metadata"]["labels"] == {"app": "pi", **generated}


def test_generate_job_selector_respects_manual_selector():
    obj = {"metadata": {"name": "pi", "uid": "u-1"},
           "spec": {"manualSelector": True, "selector": {"matchLabels": {"a": "b"}}, "template": template()}}
    assert applied(defaults.generate_job_selector, obj) == obj


def test_cron_job_defaults_leave_the_job_spec_alone():
    obj = {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template()}}}}
    assert applied(defaults.cron_job, obj) == {"spec": {
        "schedule": "* * * * *", "jobTemplate": {"spec": {"template": defaulted_template()}},
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 1}}


# --- services and networking ---

@pytest.mark.parametrize(("spec", "expected"), [
    ({"ports": [{"port": 80}]},
     {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "type": "ClusterIP",
      "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}),
    ({"ports": [{"port": 80, "targetPort": "http", "protocol": "UDP"}], "type": "NodePort"},
     {"ports": [{"port": 80, "targetPort": "http", "protocol": "UDP"}], "type": "NodePort",
      "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"}),
    ({"ports": [{"port": 443, "targetPort": 0}], "type": "LoadBalancer"},
     {"ports": [{"port": 443, "targetPort": 443, "protocol": "TCP"}], "type": "LoadBalancer",
      "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
      "allocateLoadBalancerNodePorts": True}),
    ({"type": "ExternalName", "externalName": "example.com"},
     {"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"}),
    ({"ports": [{"port": 80}], "externalIPs": ["1.2.3.4"]},
     {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}], "externalIPs": ["1.2.3.4"],
      "type": "ClusterIP", "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
      "internalTrafficPolicy": "Cluster"}),
    ({"sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": 8080}]},
     {"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
      "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}], "type": "ClusterIP",
      "internalTrafficPolicy": "Cluster"}),
    ({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}, "ports": [{"port": 80, "targetPort": 80}]},
     {"sessionAffinity": "None", "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}],
      "type": "ClusterIP", "internalTrafficPolicy": "Cluster"}),
])
def test_service_defaults(spec, expected):
    assert applied(defaults.service, {"spec": spec}) == {"spec": expected}


def test_load_balancer_ingress_gets_ip_mode():
    obj = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 80}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}, {"hostname": "lb.example.com"}]}}}
    assert applied(defaults.service, obj)["status"]["loadBalancer"]["ingress"] == [
        {"ip": "1.2.3.4", "ipMode": "VIP"}, {"hostname": "lb.example.com"}]


def test_endpoints_defaults():
    obj = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}
    assert applied(defaults.endpoints, obj)["subsets"][0]["ports"] == [{"port": 80, "protocol": "TCP"}]


def test_endpoint_slice_defaults():
    obj = {"addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns", "protocol": "UDP", "port": 53}]}
    assert applied(defaults.endpoint_slice, obj)["ports"] == [
        {"port": 80, "name": "", "protocol": "TCP"}, {"name": "dns", "protocol": "UDP", "port": 53}]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"podSelector": {}}, {"podSelector": {}, "policyTypes": ["Ingress"]}),
    ({"podSelector": {}, "egress": [{"ports": [{"port": 53}]}]},
     {"podSelector": {}, "egress": [{"ports": [{"port": 53, "protocol": "TCP"}]}],
      "policyTypes": ["Ingress", "Egress"]}),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "UDP"}]}], "policyTypes": ["Egress"]},
     {"podSelector": {}, "ingress": [{"ports": [{"port": 80, "protocol": "UDP"}]}], "policyTypes": ["Egress"]}),
])
def test_network_policy_defaults(spec, expected):
    assert applied(defaults.network_policy, {"spec": spec}) == {"spec": expected}


def test_ingress_class_parameters_scope():
    obj = {"spec": {"controller": "x.io/c", "parameters": {"kind": "P", "name": "p"}}}
    assert applied(defaults.ingress_class, obj)["spec"]["parameters"] == {"kind": "P", "name": "p", "scope": "Cluster"}
    assert applied(defaults.ingress_class, {"spec": {"controller": "x.io/c"}}) == {"spec": {"controller": "x.io/c"}}


# --- core objects ---

def test_namespace_defaults():
    assert applied(defaults.namespace, {"metadata": {"name": "team-a"}}) == {
        "metadata": {"name": "team-a", "labels": {"kubernetes.io/metadata.name": "team-a"}},
        "status": {"phase": "Active"}, "spec": {"finalizers": ["kubernetes"]}}


def test_namespace_keeps_a_removed_finalizer_removed():
    obj = {"metadata": {"name": "ns", "labels": {"kubernetes.io/metadata.name": "other"}},
           "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}
    assert applied(defaults.namespace, obj) == {
        "metadata": {"name": "ns", "labels": {"kubernetes.io/metadata.name": "ns"}},
        "spec": {"finalizers": []}, "status": {"phase": "Terminating"}}


def test_node_allocatable_defaults_to_capacity():
    obj = {"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}
    assert applied(defaults.node, obj) == {"status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                                      "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}


def test_persistent_volume_defaults():
    obj = {"spec": {"capacity": {"storage": "1024Mi"}, "hostPath": {"path": "/data"}}}
    assert applied(defaults.persistent_volume, obj) == {
        "spec": {"capacity": {"storage": "1Gi"}, "hostPath": {"path": "/data", "type": ""},
                 "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}}


def test_persistent_volume_claim_defaults():
    obj = {"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "500M"}}}}
    assert applied(defaults.persistent_volume_claim, obj) == {
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "500M"}},
                 "volumeMode": "Filesystem"},
        "status": {"phase": "Pending"}}


@pytest.mark.parametrize(("obj", "expected"), [
    ({}, {"type": "Opaque"}),
    ({"type": "kubernetes.io/tls", "data": {"tls.crt": "YQ=="}}, {"type": "kubernetes.io/tls",
                                                                  "data": {"tls.crt": "YQ=="}}),
    ({"stringData": {"user": "admin", "pass": "s3cr3t"}, "data": {"user": "b2xk"}},
     {"type": "Opaque", "data": {"user": "YWRtaW4=", "pass": "czNjcjN0"}}),
])
def test_secret_defaults(obj, expected):
    assert applied(defaults.secret, obj) == expected


def test_limit_range_defaults():
    obj = {"spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "100Mi"}, "default": {"memory": "1Gi"}},
        {"type": "Pod", "max": {"cpu": "4"}},
    ]}}
    assert applied(defaults.limit_range, obj) == {"spec": {"limits": [
        {"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "100Mi"},
         "default": {"memory": "1Gi", "cpu": "2"}, "defaultRequest": {"memory": "1Gi", "cpu": "2"}},
        {"type": "Pod", "max": {"cpu": "4"}},
    ]}}


def test_resource_quota_quantities_are_canonical():
    obj = {"spec": {"hard": {"requests.cpu": "0.5", "pods": "10"}}, "status": {"used": {"requests.cpu": "0"}}}
    assert applied(defaults.resource_quota, obj) == {"spec": {"hard": {"requests.cpu": "500m", "pods": "10"}},
                                                     "status": {"used": {"requests.cpu": "0"}}}


def test_unparseable_quantities_are_left_for_validation():
    ctr = {"name": "c", "image": "x", "resources": {"limits": {"cpu": "lots"}}}
    defaults.container(ctr)
    assert ctr["resources"] == {"limits": {"cpu": "lots"}}


# --- autoscaling, storage, scheduling, rbac ---

def test_hpa_defaults_without_behavior():
    obj = {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}}
    assert applied(defaults.horizontal_pod_autoscaler, obj) == {"spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "minReplicas": 1,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                                "averageUtilization": 80}}}]}}


def test_hpa_behavior_is_completed():
    obj = {"spec": {"maxReplicas": 5, "metrics": [{"type": "Pods"}],
                    "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}
    assert applied(defaults.horizontal_pod_autoscaler, obj)["spec"]["behavior"] == {
        "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]},
        "scaleDown": {"stabilizationWindowSeconds": 60, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}


def test_storage_class_defaults():
    assert applied(defaults.storage_class, {"provisioner": "x"}) == {
        "provisioner": "x", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}


def test_priority_class_defaults():
    assert applied(defaults.priority_class, {"value": 5}) == {"value": 5, "preemptionPolicy": "PreemptLowerPriority"}


@pytest.mark.parametrize("fn", [defaults.role_binding, defaults.cluster_role_binding])
def test_binding_defaults(fn):
    obj = {"roleRef": {"kind": "ClusterRole", "name": "view"},
           "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "d"},
                        {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}
    assert applied(fn, obj) == {
        "roleRef": {"kind": "ClusterRole", "name": "view", "apiGroup": "rbac.authorization.k8s.io"},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
                     {"kind": "ServiceAccount", "name": "sa", "namespace": "d"},
                     {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}]}


def test_kinds_without_upstream_defaults_have_no_function():
    for name in ("config_map", "event", "service_account", "lease", "pod_disruption_budget", "ingress",
                 "controller_revision", "role", "cluster_role"):
        assert not hasattr(defaults, name), name


# --- properties ---

_QUANTITY_TEXT = st.sampled_from(["1", "0.5", "100m", "1.5Gi", "1024Mi", "2e3", "1n", "bogus"])
_PORT = st.fixed_dictionaries({"containerPort": st.integers(1, 65535)},
                              optional={"protocol": st.sampled_from(["TCP", "UDP"]), "hostPort": st.integers(0, 9)})
_PROBE = st.fixed_dictionaries({}, optional={
    "httpGet": st.fixed_dictionaries({"port": st.integers(1, 9)}, optional={"path": st.just("/h")}),
    "grpc": st.fixed_dictionaries({"port": st.integers(1, 9)}),
    "periodSeconds": st.integers(0, 5)})
_CONTAINER = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b"]), "image": st.sampled_from(["nginx", "nginx:1", "x@sha256:" + "a" * 64, ""])},
    optional={"ports": st.lists(_PORT, max_size=2), "livenessProbe": _PROBE, "readinessProbe": _PROBE,
              "imagePullPolicy": st.sampled_from(["Never", ""]),
              "resources": st.fixed_dictionaries({}, optional={
                  "limits": st.dictionaries(st.sampled_from(["cpu", "memory"]), _QUANTITY_TEXT, max_size=2),
                  "requests": st.dictionaries(st.sampled_from(["cpu", "memory"]), _QUANTITY_TEXT, max_size=2)})})
_VOLUME = st.one_of(st.just({"name": "v"}), st.just({"name": "s", "secret": {"secretName": "x"}}),
                    st.just({"name": "p", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}),
                    st.just({"name": "h", "hostPath": {"path": "/x", "type": "Directory"}}))
_POD_SPEC = st.fixed_dictionaries({"containers": st.lists(_CONTAINER, min_size=1, max_size=2)}, optional={
    "initContainers": st.lists(_CONTAINER, max_size=1), "volumes": st.lists(_VOLUME, max_size=2),
    "hostNetwork": st.booleans(), "restartPolicy": st.sampled_from(["Never", "OnFailure"])})
_TEMPLATE = st.builds(lambda labels, spec: {"metadata": {"labels": labels}, "spec": spec},
                      st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["x", "y"])), _POD_SPEC)


def _workload(tmpl: dict) -> dict:
    return {"metadata": {"name": "w"}, "spec": {"template": tmpl, "jobTemplate": {"spec": {"template": tmpl}},
                                                "volumeClaimTemplates": [{"spec": {"resources": {
                                                    "requests": {"storage": "1.5Gi"}}}}]}}


_DEFAULTERS = sorted({k.name for k in KINDS if hasattr(defaults, k.name)})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEMPLATE, st.sampled_from(_DEFAULTERS))
def test_defaulting_is_idempotent(tmpl, name):
    fn = getattr(defaults, name)
    obj = _workload(tmpl)
    obj["spec"].update(containers=tmpl["spec"]["containers"], ports=[{"port": 80}])
    once = applied(fn, obj)
    assert applied(fn, once) == once


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_POD_SPEC)
def test_pod_defaulting_is_idempotent(spec):
    once = applied(defaults.pod, {"spec": spec})
    assert applied(defaults.pod, once) == once


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_TEMPLATE)
def test_template_defaulting_matches_across_workloads(tmpl):
    templates = [applied(fn, {"spec": {"template": tmpl}})["spec"]["template"]
                 for fn in (defaults.deployment, defaults.replica_set, defaults.daemon_set, defaults.stateful_set)]
    assert all(t == templates[0] for t in templates)


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                         st.sampled_from(["spec", "template", "containers", "metadata", "ports", "status", "type",
                                          "strategy", "resources", "limits", "volumes", "labels", "behavior"]),
                         inner, max_size=4), max_leaves=20)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["spec", "metadata", "status", "data", "stringData", "type"]), _JSON),
       st.sampled_from(_DEFAULTERS))
def test_defaulting_never_raises_on_odd_shapes(obj, name):
    getattr(defaults, name)(obj)
