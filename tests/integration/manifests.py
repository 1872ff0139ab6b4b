"""One small, valid manifest per served kind (name "sample"), for the per-kind tests."""

from __future__ import annotations

POD_TEMPLATE = {"metadata": {"labels": {"app": "sample"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}
SELECTOR = {"matchLabels": {"app": "sample"}}


def _m(api_version: str, kind: str, **body) -> dict:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "sample", "labels": {"tier": "t1"}},
            **body}


MANIFESTS: dict[str, dict] = {
    "pods": _m("v1", "Pod", spec=POD_TEMPLATE["spec"]),
    "services": _m("v1", "Service", spec={"selector": {"app": "sample"}, "ports": [{"port": 80}]}),
    "endpoints": _m("v1", "Endpoints", subsets=[{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]),
    "configmaps": _m("v1", "ConfigMap", data={"a": "1"}),
    "secrets": _m("v1", "Secret", stringData={"password": "s3cret"}),
    "namespaces": _m("v1", "Namespace"),
    "nodes": _m("v1", "Node", spec={"podCIDR": "10.42.9.0/24"}),
    "events": _m("v1", "Event", involvedObject={"kind": "Pod", "name": "p", "namespace": "NAMESPACE"},
                 reason="Tested", message="hello", type="Normal"),
    "serviceaccounts": _m("v1", "ServiceAccount"),
    "persistentvolumes": _m("v1", "PersistentVolume", spec={
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/pv"}}),
    "persistentvolumeclaims": _m("v1", "PersistentVolumeClaim", spec={
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}),
    "resourcequotas": _m("v1", "ResourceQuota", spec={"hard": {"pods": "10"}}),
    "limitranges": _m("v1", "LimitRange", spec={"limits": [{"type": "Container",
                                                             "default": {"cpu": "500m"}}]}),
    "replicationcontrollers": _m("v1", "ReplicationController", spec={
        "replicas": 2, "selector": {"app": "sample"}, "template": POD_TEMPLATE}),
    "podtemplates": _m("v1", "PodTemplate", template=POD_TEMPLATE),
    "deployments": _m("apps/v1", "Deployment", spec={"replicas": 2, "selector": SELECTOR, "template": POD_TEMPLATE}),
    "replicasets": _m("apps/v1", "ReplicaSet", spec={"replicas": 2, "selector": SELECTOR, "template": POD_TEMPLATE}),
    "statefulsets": _m("apps/v1", "StatefulSet", spec={"replicas": 1, "serviceName": "sample", "selector": SELECTOR,
                                                       "template": POD_TEMPLATE}),
    "daemonsets": _m("apps/v1", "DaemonSet", spec={"selector": SELECTOR, "template": POD_TEMPLATE}),
    "controllerrevisions": _m("apps/v1", "ControllerRevision", revision=1, data={"spec": {}}),
    "jobs": _m("batch/v1", "Job", spec={"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}),
    "cronjobs": _m("batch/v1", "CronJob", spec={"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {
        "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}),
    "ingresses": _m("networking.k8s.io/v1", "Ingress", spec={"rules": [{"host": "example.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": "sample", "port": {"number": 80}}}}]}}]}),
    "ingressclasses": _m("networking.k8s.io/v1", "IngressClass", spec={"controller": "pyk8s.io/ingress"}),
    "networkpolicies": _m("networking.k8s.io/v1", "NetworkPolicy", spec={"podSelector": SELECTOR}),
    "storageclasses": _m("storage.k8s.io/v1", "StorageClass", provisioner="pyk8s.io/local-path"),
    "roles": _m("rbac.authorization.k8s.io/v1", "Role", rules=[
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]),
    "clusterroles": _m("rbac.authorization.k8s.io/v1", "ClusterRole", rules=[
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]),
    "rolebindings": _m("rbac.authorization.k8s.io/v1", "RoleBinding", subjects=[
        {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
        roleRef={"kind": "Role", "name": "sample", "apiGroup": "rbac.authorization.k8s.io"}),
    "clusterrolebindings": _m("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", subjects=[
        {"kind": "Group", "name": "devs", "apiGroup": "rbac.authorization.k8s.io"}],
        roleRef={"kind": "ClusterRole", "name": "sample", "apiGroup": "rbac.authorization.k8s.io"}),
    "horizontalpodautoscalers.v2": _m("autoscaling/v2", "HorizontalPodAutoscaler", spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sample"}, "maxReplicas": 5,
        "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": 70}}}]}),
    "horizontalpodautoscalers.v1": _m("autoscaling/v1", "HorizontalPodAutoscaler", spec={
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "sample"}, "maxReplicas": 4,
        "targetCPUUtilizationPercentage": 60}),
    "poddisruptionbudgets": _m("policy/v1", "PodDisruptionBudget", spec={"minAvailable": 1, "selector": SELECTOR}),
    "endpointslices": _m("discovery.k8s.io/v1", "EndpointSlice", addressType="IPv4",
                         endpoints=[{"addresses": ["10.42.0.7"]}], ports=[{"port": 80}]),
    "leases": _m("coordination.k8s.io/v1", "Lease", spec={"holderIdentity": "me", "leaseDurationSeconds": 15}),
    "priorityclasses": _m("scheduling.k8s.io/v1", "PriorityClass", value=1000, description="sample"),
    "events.events.k8s.io": _m("events.k8s.io/v1", "Event", eventTime="2026-11-26T10:00:00.000000Z",
                               reportingController="pyk8s.io/test", reportingInstance="t1", action="Testing",
                               reason="Tested", type="Normal", note="hi",
                               regarding={"kind": "Pod", "name": "p", "namespace": "NAMESPACE"}),
}

CLUSTER_SCOPED = {"namespaces", "nodes", "persistentvolumes", "ingressclasses", "storageclasses", "clusterroles",
                  "clusterrolebindings", "priorityclasses"}


def resource_arg(key: str) -> str:
    """The kubectl resource argument for a MANIFESTS key (fully qualified where ambiguous)."""
    return {"horizontalpodautoscalers.v2": "horizontalpodautoscalers.v2.autoscaling",
            "horizontalpodautoscalers.v1": "horizontalpodautoscalers.v1.autoscaling",
            "events.events.k8s.io": "events.v1.events.k8s.io"}.get(key, key)
