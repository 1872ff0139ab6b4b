"""Upstream v1 defaulting (SetObjectDefaults_*), applied in place to objects in their JSON form.

One function per kind that upstream defaults, named by the kind's snake_case name (see
`pyk8s.api.kinds`). Every function is idempotent. Pod templates are defaulted by one
function, `pod_template_spec`, wherever they appear: rollout history compares Deployment and
ReplicaSet templates after defaulting, so they must come out identical.

Quantities in resource lists are rounded up to milli precision and written in the form
upstream's typed decoding gives them ("0.5" -> "500m", "1.5Gi" -> "1536Mi").
"""

from __future__ import annotations

import base64
import re

from . import admissionregistration
from .quantity import QuantityError, normalize

TERMINATION_GRACE_PERIOD_SECONDS = 30
SECRET_VOLUME_DEFAULT_MODE = 0o644  # 420, as upstream writes it
SERVICE_ACCOUNT_TOKEN_EXPIRATION_SECONDS = 3600
CLIENT_IP_AFFINITY_SECONDS = 10800
MAX_INT32 = 2**31 - 1
HPA_DEFAULT_CPU_UTILIZATION = 80
RBAC_GROUP = "rbac.authorization.k8s.io"

_PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
_PROBE_DEFAULTS = (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3))
_MODE_SOURCES = ("secret", "configMap", "downwardAPI")  # projected has its own function

# Docker image reference grammar, enough to tell a tag from a digest and a malformed name.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?", re.ASCII)


# --- access helpers: tolerate wrong shapes (validation reports them), never raise ---

def _child(obj: object, key: str) -> dict | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else None


def _ensure(obj: dict, key: str) -> dict | None:
    """obj[key] as a dict, created when unset; None when it holds something else."""
    if obj.get(key) is None:
        obj[key] = {}
    value = obj[key]
    return value if isinstance(value, dict) else None


def _dicts(obj: object, key: str) -> list[dict]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _unset(obj: dict, key: str) -> bool:
    """A string field upstream treats as empty ("" and absent alike)."""
    return obj.get(key) in (None, "")


def _set_if_unset(obj: dict, key: str, value: object) -> None:
    if _unset(obj, key):
        obj[key] = value


def _set_if_zero(obj: dict, key: str, value: int) -> None:
    """A non-pointer int field: zero means unset."""
    if obj.get(key) in (None, 0):
        obj[key] = value


# --- shared pieces ---

def resource_list(obj: dict, key: str) -> None:
    """Round every quantity up to milli precision and write it canonically (SetDefaults_ResourceList)."""
    values = _child(obj, key)
    if values is None:
        return
    for name, value in values.items():
        try:
            values[name] = normalize(value, milli=True)
        except QuantityError:
            continue  # left for validation to report


def _pull_policy(image: object) -> str:
    """Always for :latest (an image with neither tag nor digest means :latest), else IfNotPresent."""
    match = _IMAGE_REFERENCE.fullmatch(image) if isinstance(image, str) else None
    if match is None:
        return "IfNotPresent"  # upstream ignores the parse error and finds no tag
    tag = match.group("tag") or ("latest" if match.group("digest") is None else "")
    return "Always" if tag == "latest" else "IfNotPresent"


def _http_get(handler: dict | None) -> None:
    action = _child(handler, "httpGet")
    if action is not None:
        _set_if_unset(action, "path", "/")
        _set_if_unset(action, "scheme", "HTTP")


def _probe(probe: dict) -> None:
    for key, value in _PROBE_DEFAULTS:
        _set_if_zero(probe, key, value)
    _http_get(probe)
    grpc = _child(probe, "grpc")
    if grpc is not None and grpc.get("service") is None:
        grpc["service"] = ""


def _field_ref(holder: dict | None) -> None:
    ref = _child(holder, "fieldRef")
    if ref is not None:
        _set_if_unset(ref, "apiVersion", "v1")


def container(ctr: dict) -> None:
    """SetDefaults_Container plus the generated defaults of its ports, env, resources and probes."""
    if _unset(ctr, "imagePullPolicy"):
        ctr["imagePullPolicy"] = _pull_policy(ctr.get("image"))
    _set_if_unset(ctr, "terminationMessagePath", "/dev/termination-log")
    _set_if_unset(ctr, "terminationMessagePolicy", "File")
    for port in _dicts(ctr, "ports"):
        _set_if_unset(port, "protocol", "TCP")
    for env in _dicts(ctr, "env"):
        _field_ref(_child(env, "valueFrom"))
    resources = _child(ctr, "resources")
    if resources is not None:
        resource_list(resources, "limits")
        resource_list(resources, "requests")
    for key in _PROBES:
        probe = _child(ctr, key)
        if probe is not None:
            _probe(probe)
    lifecycle = _child(ctr, "lifecycle")
    for hook in ("postStart", "preStop"):
        _http_get(_child(lifecycle, hook))


def _default_mode(source: dict) -> None:
    if source.get("defaultMode") is None:
        source["defaultMode"] = SECRET_VOLUME_DEFAULT_MODE


def _projected(source: dict) -> None:
    _default_mode(source)
    for projection in _dicts(source, "sources"):
        for item in _dicts(_child(projection, "downwardAPI"), "items"):
            _field_ref(item)
        token = _child(projection, "serviceAccountToken")
        if token is not None and token.get("expirationSeconds") is None:
            token["expirationSeconds"] = SERVICE_ACCOUNT_TOKEN_EXPIRATION_SECONDS


def pvc_spec(spec: dict) -> None:
    """SetDefaults_PersistentVolumeClaimSpec and its resource lists."""
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    resources = _child(spec, "resources")
    if resources is not None:
        resource_list(resources, "limits")
        resource_list(resources, "requests")


def volume(vol: dict) -> None:
    if all(value is None for key, value in vol.items() if key != "name"):
        vol["emptyDir"] = {}
    for key in _MODE_SOURCES:
        source = _child(vol, key)
        if source is not None:
            _default_mode(source)
    for item in _dicts(_child(vol, "downwardAPI"), "items"):
        _field_ref(item)
    projected = _child(vol, "projected")
    if projected is not None:
        _projected(projected)
    host_path = _child(vol, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""
    claim = _child(_child(_child(vol, "ephemeral"), "volumeClaimTemplate"), "spec")
    if claim is not None:
        pvc_spec(claim)


def pod_spec(spec: dict) -> None:
    """Defaults every PodSpec gets, in Pods and in templates alike (SetDefaults_PodSpec and below)."""
    _set_if_unset(spec, "dnsPolicy", "ClusterFirst")
    _set_if_unset(spec, "restartPolicy", "Always")
    if spec.get("securityContext") is None:
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = TERMINATION_GRACE_PERIOD_SECONDS
    _set_if_unset(spec, "schedulerName", "default-scheduler")
    for vol in _dicts(spec, "volumes"):
        volume(vol)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in _dicts(spec, key):
            container(ctr)
    resource_list(spec, "overhead")


def pod_template_spec(template: dict | None) -> None:
    spec = _child(template, "spec")
    if spec is not None:
        pod_spec(spec)


def _requests_from_limits(ctr: dict) -> None:
    resources = _child(ctr, "resources")
    limits = _child(resources, "limits")
    if resources is None or limits is None:
        return
    requests = _ensure(resources, "requests")
    if requests is None:
        return
    for name, value in limits.items():
        requests.setdefault(name, value)
    if not requests:
        del resources["requests"]  # Go drops an empty map when writing the object


def _host_network_ports(ctr: dict) -> None:
    for port in _dicts(ctr, "ports"):
        if port.get("hostPort") in (None, 0):
            port["hostPort"] = port.get("containerPort", 0)


# --- core/v1 ---

def pod(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    # Only Pods (not templates) get requests from limits, service links and host ports.
    for key in ("containers", "initContainers"):
        for ctr in _dicts(spec, key):
            _requests_from_limits(ctr)
            if spec.get("hostNetwork") is True:
                _host_network_ports(ctr)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    pod_spec(spec)


def pod_template(obj: dict) -> None:
    pod_template_spec(_child(obj, "template"))


def replication_controller(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    labels = _child(_child(_child(spec, "template"), "metadata"), "labels")
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _ensure(obj, "metadata")
        if meta is not None and not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    pod_template_spec(_child(spec, "template"))


def _externally_accessible(spec: dict) -> bool:
    service_type = spec.get("type")
    if service_type in ("LoadBalancer", "NodePort"):
        return True
    return service_type == "ClusterIP" and bool(spec.get("externalIPs"))


def _session_affinity(spec: dict) -> None:
    _set_if_unset(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _child(_child(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip is None or client_ip.get("timeoutSeconds") is None:
            spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": CLIENT_IP_AFFINITY_SECONDS}}


def service(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _session_affinity(spec)
    _set_if_unset(spec, "type", "ClusterIP")
    for port in _dicts(spec, "ports"):
        _set_if_unset(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port", 0)
    if _externally_accessible(spec):
        _set_if_unset(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and spec["type"] in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if spec["type"] == "LoadBalancer":
        if spec.get("allocateLoadBalancerNodePorts") is None:
            spec["allocateLoadBalancerNodePorts"] = True
        for ingress in _dicts(_child(_child(obj, "status"), "loadBalancer"), "ingress"):
            if ingress.get("ip") and ingress.get("ipMode") is None:
                ingress["ipMode"] = "VIP"


def endpoints(obj: dict) -> None:
    for subset in _dicts(obj, "subsets"):
        for port in _dicts(subset, "ports"):
            _set_if_unset(port, "protocol", "TCP")


def namespace(obj: dict) -> None:
    meta = _ensure(obj, "metadata")
    name = meta.get("name") if meta is not None else None
    if meta is not None and isinstance(name, str) and name:
        labels = _ensure(meta, "labels")
        if labels is not None:
            labels["kubernetes.io/metadata.name"] = name
    status = _ensure(obj, "status")
    if status is not None:
        _set_if_unset(status, "phase", "Active")
    # Upstream's create strategy adds the finalizer; it may later be removed, so only an
    # absent list is filled in.
    spec = _ensure(obj, "spec")
    if spec is not None and spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]


def node(obj: dict) -> None:
    status = _child(obj, "status")
    if status is None:
        return
    capacity = _child(status, "capacity")
    if status.get("allocatable") is None and capacity is not None:
        status["allocatable"] = dict(capacity)
    resource_list(status, "capacity")
    resource_list(status, "allocatable")


def persistent_volume(obj: dict) -> None:
    status = _ensure(obj, "status")
    if status is not None:
        _set_if_unset(status, "phase", "Pending")
    spec = _child(obj, "spec")
    if spec is None:
        return
    _set_if_unset(spec, "persistentVolumeReclaimPolicy", "Retain")
    if spec.get("volumeMode") is None:
        spec["volumeMode"] = "Filesystem"
    resource_list(spec, "capacity")
    host_path = _child(spec, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""


def _claim(obj: dict) -> None:
    status = _ensure(obj, "status")
    if status is not None:
        _set_if_unset(status, "phase", "Pending")
        resource_list(status, "capacity")
        resource_list(status, "allocatedResources")
    spec = _child(obj, "spec")
    if spec is not None:
        pvc_spec(spec)


def persistent_volume_claim(obj: dict) -> None:
    _claim(obj)


def _merge_string_data(obj: dict) -> None:
    """stringData is write-only: upstream's v1 decoding merges it into data (it wins) and drops it."""
    string_data = obj.pop("stringData", None)
    if not isinstance(string_data, dict) or not string_data:
        return
    data = _ensure(obj, "data")
    if data is None:
        return
    for key, value in string_data.items():
        if isinstance(value, str):
            data[key] = base64.b64encode(value.encode()).decode()


def secret(obj: dict) -> None:
    _merge_string_data(obj)
    _set_if_unset(obj, "type", "Opaque")


def _limit_range_item(item: dict) -> None:
    if item.get("type") == "Container":
        defaults = dict(_child(item, "default") or {})
        requests = dict(_child(item, "defaultRequest") or {})
        # Limit defaults to max; request defaults to the default limit, then to min.
        for name, value in (_child(item, "max") or {}).items():
            defaults.setdefault(name, value)
        for name, value in defaults.items():
            requests.setdefault(name, value)
        for name, value in (_child(item, "min") or {}).items():
            requests.setdefault(name, value)
        for key, values in (("default", defaults), ("defaultRequest", requests)):
            if values:
                item[key] = values
    for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
        resource_list(item, key)


def limit_range(obj: dict) -> None:
    for item in _dicts(_child(obj, "spec"), "limits"):
        _limit_range_item(item)


def resource_quota(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is not None:
        resource_list(spec, "hard")
    status = _child(obj, "status")
    if status is not None:
        resource_list(status, "hard")
        resource_list(status, "used")


# --- apps/v1 ---

def _replicas(spec: dict) -> None:
    if spec.get("replicas") is None:
        spec["replicas"] = 1


def _revision_history_limit(spec: dict) -> None:
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10


def _rolling_update(strategy: dict, defaults: dict[str, object]) -> None:
    rolling = _ensure(strategy, "rollingUpdate")
    if rolling is None:
        return
    for key, value in defaults.items():
        if rolling.get(key) is None:
            rolling[key] = value


def deployment(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _replicas(spec)
    strategy = _ensure(spec, "strategy")
    if strategy is not None:
        _set_if_unset(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            _rolling_update(strategy, {"maxUnavailable": "25%", "maxSurge": "25%"})
    _revision_history_limit(spec)
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    pod_template_spec(_child(spec, "template"))


def replica_set(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _replicas(spec)
    pod_template_spec(_child(spec, "template"))


def daemon_set(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    strategy = _ensure(spec, "updateStrategy")
    if strategy is not None:
        _set_if_unset(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            _rolling_update(strategy, {"maxUnavailable": 1, "maxSurge": 0})
    _revision_history_limit(spec)
    pod_template_spec(_child(spec, "template"))


def _stateful_set_strategy(spec: dict) -> None:
    strategy = _ensure(spec, "updateStrategy")
    if strategy is None:
        return
    if _unset(strategy, "type"):
        strategy["type"] = "RollingUpdate"
        _ensure(strategy, "rollingUpdate")
    # An explicit RollingUpdate type without rollingUpdate stays without it (as upstream).
    rolling = _child(strategy, "rollingUpdate")
    if strategy["type"] == "RollingUpdate" and rolling is not None and rolling.get("partition") is None:
        rolling["partition"] = 0


def stateful_set(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _set_if_unset(spec, "podManagementPolicy", "OrderedReady")
    _stateful_set_strategy(spec)
    policy = _ensure(spec, "persistentVolumeClaimRetentionPolicy")
    if policy is not None:
        _set_if_unset(policy, "whenDeleted", "Retain")
        _set_if_unset(policy, "whenScaled", "Retain")
    _replicas(spec)
    _revision_history_limit(spec)
    pod_template_spec(_child(spec, "template"))
    for claim in _dicts(spec, "volumeClaimTemplates"):
        _claim(claim)


# --- batch/v1 ---

def job(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = MAX_INT32 if spec.get("backoffLimitPerIndex") is not None else 6
    labels = _child(_child(_child(spec, "template"), "metadata"), "labels")
    meta = _ensure(obj, "metadata")
    if labels and meta is not None and not meta.get("labels"):
        meta["labels"] = dict(labels)
    _set_if_unset(spec, "completionMode", "NonIndexed")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    failure_policy = _child(spec, "podFailurePolicy")
    for rule in _dicts(failure_policy, "rules"):
        for pattern in _dicts(rule, "onPodConditions"):
            _set_if_unset(pattern, "status", "True")
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if failure_policy is not None else "TerminatingOrFailed"
    pod_template_spec(_child(spec, "template"))


def generate_job_selector(obj: dict) -> None:
    """The Job create strategy's generated selector (not defaulting: call it once, on create, with the uid set).

    Unless spec.manualSelector is true, pods get job-name and controller-uid labels (legacy and prefixed
    forms) and the selector picks the prefixed controller-uid. Run it before `job()`, whose labels
    default then includes the generated ones, as clients see on upstream.
    """
    spec = _child(obj, "spec")
    meta = _child(obj, "metadata") or {}
    if spec is None or spec.get("manualSelector") is True:
        return
    template_meta = _ensure(_ensure(spec, "template") or {}, "metadata")
    labels = _ensure(template_meta, "labels") if template_meta is not None else None
    selector = _ensure(spec, "selector")
    if labels is None or selector is None:
        return
    name, uid = meta.get("name", ""), meta.get("uid", "")
    for key, value in (("job-name", name), ("batch.kubernetes.io/job-name", name), ("controller-uid", uid),
                       ("batch.kubernetes.io/controller-uid", uid)):
        labels.setdefault(key, value)
    match_labels = _ensure(selector, "matchLabels")
    if match_labels is not None:
        match_labels.setdefault("batch.kubernetes.io/controller-uid", uid)


def cron_job(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    _set_if_unset(spec, "concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    # The job template's JobSpec gets no Job defaults, only its pod template's.
    pod_template_spec(_child(_child(_child(spec, "jobTemplate"), "spec"), "template"))


# --- autoscaling/v2 ---

def _scaling_rules(rules: dict | None, defaults: dict) -> dict:
    merged = dict(defaults)
    for key in ("selectPolicy", "stabilizationWindowSeconds", "policies"):
        if rules is not None and rules.get(key) is not None:
            merged[key] = rules[key]
    return merged


def horizontal_pod_autoscaler(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": HPA_DEFAULT_CPU_UTILIZATION}}}]
    behavior = _child(spec, "behavior")
    if behavior is None:
        return
    behavior["scaleUp"] = _scaling_rules(_child(behavior, "scaleUp"), {
        "stabilizationWindowSeconds": 0, "selectPolicy": "Max",
        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                     {"type": "Percent", "value": 100, "periodSeconds": 15}]})
    # Scale-down stabilization stays unset: the controller's flag supplies it.
    behavior["scaleDown"] = _scaling_rules(_child(behavior, "scaleDown"), {
        "selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]})


# --- networking.k8s.io/v1 ---

def network_policy(obj: dict) -> None:
    spec = _child(obj, "spec")
    if spec is None:
        return
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec, direction):
            for port in _dicts(rule, "ports"):
                _set_if_unset(port, "protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def ingress_class(obj: dict) -> None:
    parameters = _child(_child(obj, "spec"), "parameters")
    if parameters is not None and parameters.get("scope") is None:
        parameters["scope"] = "Cluster"


# --- storage, discovery, scheduling, rbac ---

def storage_class(obj: dict) -> None:
    if obj.get("reclaimPolicy") is None:
        obj["reclaimPolicy"] = "Delete"
    if obj.get("volumeBindingMode") is None:
        obj["volumeBindingMode"] = "Immediate"


def endpoint_slice(obj: dict) -> None:
    for port in _dicts(obj, "ports"):
        if port.get("name") is None:
            port["name"] = ""
        if port.get("protocol") is None:
            port["protocol"] = "TCP"


def priority_class(obj: dict) -> None:
    if obj.get("preemptionPolicy") is None:
        obj["preemptionPolicy"] = "PreemptLowerPriority"


def _binding(obj: dict) -> None:
    role_ref = _child(obj, "roleRef")
    if role_ref is not None:
        _set_if_unset(role_ref, "apiGroup", RBAC_GROUP)
    # ServiceAccount subjects keep the core group "", which is not written out.
    for subject in _dicts(obj, "subjects"):
        if subject.get("kind") in ("User", "Group"):
            _set_if_unset(subject, "apiGroup", RBAC_GROUP)


def role_binding(obj: dict) -> None:
    _binding(obj)


def cluster_role_binding(obj: dict) -> None:
    _binding(obj)



# --- admissionregistration.k8s.io/v1 (the rules live in pyk8s.api.admissionregistration) ---

def mutating_webhook_configuration(obj: dict) -> None:
    admissionregistration.default_mutating(obj)


def validating_webhook_configuration(obj: dict) -> None:
    admissionregistration.default_validating(obj)


def validating_admission_policy(obj: dict) -> None:
    admissionregistration.default_policy(obj)


def validating_admission_policy_binding(obj: dict) -> None:
    admissionregistration.default_binding(obj)
