"""Server-side Table rendering (meta.k8s.io/v1 Table) for every served kind.

`kubectl get` asks for Tables and prints the cells verbatim, so the column definitions and the
cell text here follow upstream v1.32's internal printers (pkg/printers/internalversion) exactly:
same column names, types, priorities and descriptions, same cell rules. The server always renders
the wide form (kubectl hides priority-1 columns itself), so every printer yields one cell per column.

Printers are module constants named by the kind's snake_case name (see kinds.py); `DEFAULT` is the
Name/Created At table upstream gives kinds without a printer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction


@dataclass(frozen=True)
class Printer:
    columns: tuple[dict, ...]
    cells: Callable[[dict, datetime], list]


# Column descriptions are upstream's: the OpenAPI (swagger) text of the field a column shows, as of
# k8s.io/api v0.32.0 (upstream points some columns at older group versions' docs; so do these).
_DOCS: dict[str, str] = {
    "ObjectMeta.name": (
        "Name must be unique within a namespace. Is required when creating resources, although some"
        " "
        "resources may allow a client to request the generation of an appropriate name "
        "automatically. Name is primarily intended for creation idempotence and configuration "
        "definition. Cannot be updated. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
    ),
    "ObjectMeta.creationTimestamp": (
        "CreationTimestamp is a timestamp representing the server time when this object was created"
        ". "
        "It is not guaranteed to be set in happens-before order across separate operations. Clients"
        " "
        "may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the"
        " "
        "system. Read-only. Null for lists. More info: "
        "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metada"
        "ta"
    ),
    "PodStatus.podIP": (
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet"
        " "
        "allocated."
    ),
    "PodStatus.nominatedNodeName": (
        "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot"
        " "
        "be scheduled right away as preemption victims receive their graceful termination periods. "
        "This field does not guarantee that the pod will be scheduled on this node. Scheduler may "
        "decide to place the pod elsewhere if other nodes become available sooner. Scheduler may "
        "also decide to give the resources on this node to a higher priority pod that is created "
        "after preemption. As a result, this field may be different than PodSpec.nodeName when the "
        "pod is scheduled."
    ),
    "PodSpec.nodeName": (
        "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate "
        "for scheduling by the scheduler defined in schedulerName. Once this field is set, the "
        "kubelet for this node becomes responsible for the lifecycle of this pod. This field should"
        " "
        "not be used to express a desire for the pod to be scheduled on a specific node. "
        "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"
    ),
    "PodSpec.readinessGates": (
        "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when"
        " "
        "all its containers are ready AND all conditions specified in the readiness gates have "
        "status equal to \"True\" More info: "
        "https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"
    ),
    "PodSpec.nodeSelector": (
        "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which"
        " "
        "must match a node's labels for the pod to be scheduled on that node. More info: "
        "https://kubernetes.io/docs/concepts/configuration/assign-pod-node/"
    ),
    "ReplicationControllerSpec.replicas": (
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        "explicit zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-"
        "replicationcontroller"
    ),
    "ReplicationControllerSpec.selector": (
        "Selector is a label query over pods that should match the Replicas count. If Selector is "
        "empty, it is defaulted to the labels present on the Pod template. Label keys and values "
        "that must match in order to be controlled by this replication controller, if empty "
        "defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "ReplicationControllerStatus.replicas": (
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller#what-is-a-"
        "replicationcontroller"
    ),
    "ReplicationControllerStatus.readyReplicas": (
        "The number of ready replicas for this replication controller."
    ),
    "ReplicaSetSpec.replicas": (
        "Replicas is the number of desired replicas. This is a pointer to distinguish between "
        "explicit zero and unspecified. Defaults to 1. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a"
        "-replicationcontroller"
    ),
    "ReplicaSetSpec.selector": (
        "Selector is a label query over pods that should match the replica count. If the selector i"
        "s "
        "empty, it is defaulted to the labels present on the pod template. Label keys and values "
        "that must match in order to be controlled by this replica set. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "ReplicaSetStatus.replicas": (
        "Replicas is the most recently observed number of replicas. More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a"
        "-replicationcontroller"
    ),
    "ReplicaSetStatus.readyReplicas": "The number of ready replicas for this replica set.",
    "DaemonSetStatus.desiredNumberScheduled": (
        "The total number of nodes that should be running the daemon pod (including nodes correctly"
        " "
        "running the daemon pod). More info: "
        "https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/"
    ),
    "DaemonSetStatus.currentNumberScheduled": (
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the "
        "daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset"
        "/"
    ),
    "DaemonSetStatus.numberReady": (
        "The number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running and ready."
    ),
    "DaemonSetStatus.updatedNumberScheduled": "The total number of nodes that are running updated daemon pod",
    "DaemonSetStatus.numberAvailable": (
        "The number of nodes that should be running the daemon pod and have one or more of the "
        "daemon pod running and available (ready for at least spec.minReadySeconds)"
    ),
    "DaemonSetSpec.selector": (
        "A label query over pods that are managed by the daemon set. Must match in order to be "
        "controlled. If empty, defaulted to labels on Pod template. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "DeploymentStatus.updatedReplicas": (
        "Total number of non-terminated pods targeted by this deployment that have the desired "
        "template spec."
    ),
    "DeploymentStatus.availableReplicas": (
        "Total number of available pods (ready for at least minReadySeconds) targeted by this "
        "deployment."
    ),
    "DeploymentSpec.selector": (
        "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the "
        "ones affected by this deployment."
    ),
    "NetworkPolicySpec.podSelector": (
        "Selects the pods to which this NetworkPolicy object applies.  The array of ingress rules i"
        "s "
        "applied to any pods selected by this field. Multiple network policies can select the same "
        "set of pods.  In this case, the ingress rules for each are combined additively. This field"
        " "
        "is NOT optional and follows standard label selector semantics. An empty podSelector matche"
        "s "
        "all pods in this namespace."
    ),
    "JobStatus.succeeded": (
        "The number of pods which reached phase Succeeded. The value increases monotonically for a "
        "given spec. However, it may decrease in reaction to scale down of elastic indexed jobs."
    ),
    "JobSpec.selector": (
        "A label query over pods that should match the pod count. Normally, the system sets this "
        "field for you. More info: "
        "https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors"
    ),
    "CronJobSpec.schedule": "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    "CronJobSpec.timeZone": (
        "The time zone name for the given schedule, see "
        "https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will "
        "default to the time zone of the kube-controller-manager process. The set of valid time zon"
        "e "
        "names and the time zone offset is loaded from the system-wide time zone database by the AP"
        "I "
        "server during CronJob validation and the controller manager during execution. If no "
        "system-wide time zone database can be found a bundled version of the database is used "
        "instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to "
        "a "
        "change in host configuration, the controller will stop creating new new Jobs and will "
        "create a system event with the reason UnknownTimeZone. More information can be found in "
        "https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones"
    ),
    "CronJobSpec.suspend": (
        "This flag tells the controller to suspend subsequent executions, it does not apply to "
        "already started executions.  Defaults to false."
    ),
    "CronJobStatus.active": "A list of pointers to currently running jobs.",
    "CronJobStatus.lastScheduleTime": (
        "Information when was the last time the job was successfully scheduled."
    ),
    "ServiceSpec.type": (
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are "
        "ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a "
        "cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by "
        "the selector or if that is not specified, by manual construction of an Endpoints object or"
        " "
        "EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoint"
        "s "
        "are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on "
        "ClusterIP and allocates a port on every node which routes to the same endpoints as the "
        "clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if "
        "supported in the current cloud) which routes to the same endpoints as the clusterIP. "
        "\"ExternalName\" aliases this service to the specified externalName. Several other fields do"
        " "
        "not apply to ExternalName services. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-servi"
        "ce-types"
    ),
    "ServiceSpec.clusterIP": (
        "clusterIP is the IP address of the service and is usually assigned randomly. If an address"
        " "
        "is specified manually, is in-range (as per system configuration), and is not in use, it "
        "will be allocated to the service; otherwise creation of the service will fail. This field "
        "may not be changed through updates unless the type field is also being changed to "
        "ExternalName (which requires this field to be blank) or the type field is being changed "
        "from ExternalName (in which case this field may optionally be specified, as describe "
        "above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this t"
        "o "
        "\"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint "
        "connections are preferred and proxying is not required.  Only applies to types ClusterIP, "
        "NodePort, and LoadBalancer. If this field is specified when creating a Service of type "
        "ExternalName, creation will fail. This field will be wiped when updating a Service to type"
        " "
        "ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-p"
        "roxies"
    ),
    "ServiceSpec.externalIPs": (
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept "
        "traffic for this service.  These IPs are not managed by Kubernetes.  The user is "
        "responsible for ensuring that traffic arrives at a node with this IP.  A common example is"
        " "
        "external load-balancers that are not part of the Kubernetes system."
    ),
    "ServiceSpec.ports": (
        "The list of ports that are exposed by this service. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-p"
        "roxies"
    ),
    "ServiceSpec.selector": (
        "Route service traffic to pods with label keys and values matching this selector. If empty "
        "or not present, the service is assumed to have an external process managing its endpoints,"
        " "
        "which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and "
        "LoadBalancer. Ignored if type is ExternalName. More info: "
        "https://kubernetes.io/docs/concepts/services-networking/service/"
    ),
    "Endpoints.subsets": (
        "The set of all endpoints is the union of all subsets. Addresses are placed into subsets "
        "according to the IPs they share. A single address with multiple ports, some of which are "
        "ready and some of which are not (because they come from different containers) will result "
        "in the address being displayed in different subsets for the different ports. No address "
        "will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses "
        "and ports that comprise a service."
    ),
    "NodeSystemInfo.kubeletVersion": "Kubelet Version reported by the node.",
    "NodeSystemInfo.osImage": (
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."
    ),
    "NodeSystemInfo.kernelVersion": (
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."
    ),
    "NodeSystemInfo.containerRuntimeVersion": (
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. "
        "containerd://1.4.2)."
    ),
    "NodeStatus.addresses": (
        "List of addresses reachable to the node. Queried from cloud provider, if available. More "
        "info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is"
        " "
        "declared as mergeable, but the merge key is not sufficiently unique, which can cause data "
        "corruption when it is merged. Callers should instead use a full-replacement patch. See "
        "https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change "
        "during the lifetime of a Node. However, there are some exceptions where this may not be "
        "possible, such as Pods that inherit a Node's address in its own status or consumers of the"
        " "
        "downward API (status.hostIP)."
    ),
    "Event.lastTimestamp": "The time at which the most recent occurrence of this event was recorded.",
    "Event.type": "Type of this event (Normal, Warning), new types could be added in the future",
    "Event.reason": (
        "This should be a short, machine understandable string that gives the reason for the "
        "transition into the object's current status."
    ),
    "Event.involvedObject": "The object that this event is about.",
    "Event.source": "The component reporting this event. Should be a short machine understandable string.",
    "Event.message": "A human-readable description of the status of this operation.",
    "Event.firstTimestamp": (
        "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"
    ),
    "Event.count": "The number of times this event has occurred.",
    "ObjectReference.fieldPath": (
        "If referring to a piece of an object instead of an entire object, this string should "
        "contain a valid JSON/Go field access statement, such as "
        "desiredState.manifest.containers[2]. For example, if the object reference is to a containe"
        "r "
        "within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refer"
        "s "
        "to the name of the container that triggered the event) or if no container name is specifie"
        "d "
        "\"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to "
        "have some well-defined way of referencing a part of an object."
    ),
    "Secret.type": (
        "Used to facilitate programmatic handling of secret data. More info: "
        "https://kubernetes.io/docs/concepts/configuration/secret/#secret-types"
    ),
    "Secret.data": (
        "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' "
        "or '.'. The serialized form of the secret data is a base64 encoded string, representing th"
        "e "
        "arbitrary (possibly non-string) data value here. Described in "
        "https://tools.ietf.org/html/rfc4648#section-4"
    ),
    "ServiceAccount.secrets": (
        "Secrets is a list of the secrets in the same namespace that pods running using this "
        "ServiceAccount are allowed to use. Pods are only limited to this list if this service "
        "account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The "
        "\"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer "
        "separate namespaces to isolate access to mounted secrets. This field should not be used to"
        " "
        "find auto-generated service account token secrets for use outside of pods. Instead, tokens"
        " "
        "can be requested directly using the TokenRequest API, or service account token secrets can"
        " "
        "be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret"
    ),
    "ConfigMap.data": (
        "Data contains the configuration data. Each key must consist of alphanumeric characters, "
        "'-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The "
        "keys stored in Data must not overlap with the keys in the BinaryData field, this is "
        "enforced during validation process."
    ),
    "PersistentVolumeSpec.capacity": (
        "capacity is the description of the persistent volume's resources and capacity. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#capacity"
    ),
    "PersistentVolumeSpec.accessModes": (
        "accessModes contains all ways the volume can be mounted. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes"
    ),
    "PersistentVolumeSpec.persistentVolumeReclaimPolicy": (
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released "
        "from its claim. Valid options are Retain (default for manually created PersistentVolumes),"
        " "
        "Delete (default for dynamically provisioned PersistentVolumes), and Recycle (deprecated). "
        "Recycle must be supported by the volume plugin underlying this PersistentVolume. More info"
        ": "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#reclaiming"
    ),
    "PersistentVolumeSpec.claimRef": (
        "claimRef is part of a bi-directional binding between PersistentVolume and "
        "PersistentVolumeClaim. Expected to be non-nil when bound. claim.VolumeName is the "
        "authoritative bind between PV and PVC. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#binding"
    ),
    "PersistentVolumeSpec.volumeMode": (
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to "
        "remain in raw block state. Value of Filesystem is implied when not included in spec."
    ),
    "PersistentVolumeStatus.phase": (
        "phase indicates if a volume is available, bound to a claim, or released by a claim. More "
        "info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#phase"
    ),
    "PersistentVolumeStatus.reason": (
        "reason is a brief CamelCase string that describes any failure and is meant for machine "
        "parsing and tidy display in the CLI."
    ),
    "PersistentVolumeClaimStatus.phase": "phase represents the current phase of PersistentVolumeClaim.",
    "PersistentVolumeClaimStatus.capacity": (
        "capacity represents the actual resources of the underlying volume."
    ),
    "PersistentVolumeClaimStatus.accessModes": (
        "accessModes contains the actual access modes the volume backing the PVC has. More info: "
        "https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1"
    ),
    "PersistentVolumeClaimSpec.volumeName": (
        "volumeName is the binding reference to the PersistentVolume backing this claim."
    ),
    "PersistentVolumeClaimSpec.volumeMode": (
        "volumeMode defines what type of volume is required by the claim. Value of Filesystem is "
        "implied when not included in claim spec."
    ),
    "HorizontalPodAutoscalerSpec.scaleTargetRef": (
        "scaleTargetRef points to the target resource to scale, and is used to the pods for which "
        "metrics should be collected, as well as to actually change the replica count."
    ),
    "HorizontalPodAutoscalerSpec.metrics": (
        "metrics contains the specifications for which to use to calculate the desired replica coun"
        "t "
        "(the maximum replica count across all metrics will be used).  The desired replica count is"
        " "
        "calculated multiplying the ratio between the target value and the current value by the "
        "current number of pods.  Ergo, metrics used must decrease as the pod count is increased, "
        "and vice-versa.  See the individual metric source types for more information about how eac"
        "h "
        "type of metric must respond."
    ),
    "HorizontalPodAutoscalerSpec.minReplicas": (
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scal"
        "e "
        "down.  It defaults to 1 pod.  minReplicas is allowed to be 0 if the alpha feature gate "
        "HPAScaleToZero is enabled and at least one Object or External metric is configured.  "
        "Scaling is active as long as at least one metric value is available."
    ),
    "HorizontalPodAutoscalerSpec.maxReplicas": (
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scal"
        "e "
        "up. It cannot be less that minReplicas."
    ),
    "HorizontalPodAutoscalerStatus.currentReplicas": (
        "currentReplicas is current number of replicas of pods managed by this autoscaler, as last "
        "seen by the autoscaler."
    ),
    "RoleBinding.roleRef": (
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global "
        "namespace. If the RoleRef cannot be resolved, the Authorizer must return an error."
    ),
    "ClusterRoleBinding.roleRef": (
        "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be"
        " "
        "resolved, the Authorizer must return an error."
    ),
    "LeaseSpec.holderIdentity": (
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated "
        "Leader Election is used, the holder identity must be equal to the elected "
        "LeaseCandidate.metadata.name field."
    ),
    "StorageClass.provisioner": "provisioner indicates the type of the provisioner.",
    "StorageClass.reclaimPolicy": (
        "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of "
        "this storage class. Defaults to Delete."
    ),
    "StorageClass.volumeBindingMode": (
        "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  "
        "When unset, VolumeBindingImmediate is used. This field is only honored by servers that "
        "enable the VolumeScheduling feature."
    ),
    "StorageClass.allowVolumeExpansion": (
        "allowVolumeExpansion shows whether the storage class allow volume expand."
    ),
    "ControllerRevision.revision": "revision indicates the revision of the state represented by Data.",
    "PriorityClass.value": (
        "value represents the integer value of this priority class. This is the actual priority tha"
        "t "
        "pods receive when they have the name of this class in their pod spec."
    ),
    "PriorityClass.globalDefault": (
        "globalDefault specifies whether this PriorityClass should be considered as the default "
        "priority for pods that do not have any priority class. Only one PriorityClass can be marke"
        "d "
        "as `globalDefault`. However, if more than one PriorityClasses exists with their "
        "`globalDefault` field set to true, the smallest value of such global default "
        "PriorityClasses will be used as the default priority."
    ),
    "PriorityClass.preemptionPolicy": (
        "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, "
        "PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."
    ),
    "EndpointSlice.addressType": (
        "addressType specifies the type of address carried by this EndpointSlice. All addresses in "
        "this slice must be the same type. This field is immutable after creation. The following "
        "address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: "
        "Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name."
    ),
    "EndpointSlice.ports": (
        "ports specifies the list of network ports exposed by each endpoint in this slice. Each por"
        "t "
        "must have a unique name. When ports is empty, it indicates that there are no defined ports"
        ". "
        "When a port is defined with a nil port value, it indicates \"all ports\". Each slice may "
        "include a maximum of 100 ports."
    ),
    "EndpointSlice.endpoints": (
        "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of"
        " "
        "1000 endpoints."
    ),
}


# ---------------------------------------------------------------------------------------------
# Small readers over object dicts. Stored objects are defaulted, but a printer must never fail on
# a sparse object: a missing field reads as Go's zero value, as it would after decoding.


def _get(obj: object, *path: str) -> object:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _dict(obj: object, *path: str) -> dict:
    value = _get(obj, *path)
    return value if isinstance(value, dict) else {}


def _list(obj: object, *path: str) -> list:
    value = _get(obj, *path)
    return value if isinstance(value, list) else []


def _str(obj: object, *path: str) -> str:
    value = _get(obj, *path)
    return value if isinstance(value, str) else ""


def _int(obj: object, *path: str) -> int:
    value = _get(obj, *path)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value)


def _is_set(obj: object, *path: str) -> bool:
    """Whether a pointer field is non-nil (present and not null)."""
    return _get(obj, *path) is not None


# ---------------------------------------------------------------------------------------------
# Time


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: about two significant figures of a duration."""
    whole = int(seconds)  # Go's int(d.Seconds()) truncates toward zero
    # Up to a second of clock skew in the future still reads as "now".
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        return "0s"
    if whole < 120:
        return f"{whole}s"
    minutes = whole // 60
    if minutes < 10:
        rest = whole % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 3 * 60:
        return f"{minutes}m"
    hours = whole // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def _since(moment: datetime | None, now: datetime) -> str:
    """translateTimestampSince on a parsed time; a zero (absent) time is "<unknown>"."""
    if moment is None:
        return "<unknown>"
    return human_duration((_aware(now) - moment).total_seconds())


def age(timestamp: str | None, now: datetime) -> str:
    """Time since `timestamp` as upstream's translateTimestampSince prints it."""
    return _since(_parse_time(timestamp), now)


# ---------------------------------------------------------------------------------------------
# resource.Quantity canonical form (what Quantity.String() prints)

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_BINARY_BY_POWER = {power: suffix for suffix, power in _BINARY_SUFFIXES.items()} | {0: ""}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(.*)")
_NANO = 10**9


def _quantity(value: object) -> str:
    """A quantity in canonical form ("1Gi", "500m", "0"); absent is the zero quantity."""
    if value is None:
        return "0"
    text = str(value).strip()
    match = _QUANTITY.fullmatch(text)
    if not match:
        return text
    number, suffix = Fraction(match.group(1)), match.group(2)
    if suffix in _DECIMAL_SUFFIXES:
        fmt, amount = "si", number * Fraction(10) ** _DECIMAL_SUFFIXES[suffix]
    elif suffix in _BINARY_SUFFIXES:
        fmt, amount = "binary", number * 1024 ** _BINARY_SUFFIXES[suffix]
    elif re.fullmatch(r"[eE][+-]?\d+", suffix):
        fmt, amount = "exponent", number * Fraction(10) ** int(suffix[1:])
    else:
        return text
    # Parsing keeps nano precision, rounding anything finer away from zero.
    magnitude = math.ceil(abs(amount) * _NANO)
    nanos = magnitude if amount >= 0 else -magnitude
    if nanos == 0:
        return "0"
    # Binary values print in binary form only when whole and at least 1Ki; others fall back to SI.
    if fmt == "binary" and magnitude >= 1024 * _NANO and nanos % _NANO == 0:
        units, power = nanos // _NANO, 0
        while units % 1024 == 0 and power < 6:
            units, power = units // 1024, power + 1
        return f"{units}{_BINARY_BY_POWER[power]}"
    mantissa, exponent = nanos, -9
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    shift = exponent % 3  # exponents come out as multiples of three, like SI prefixes
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if fmt == "exponent":
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_BY_EXPONENT.get(exponent, f'e{exponent}')}"


def _quantity_pointer(value: object) -> str:
    """Quantity.String() on a *Quantity: a nil one prints "<nil>"."""
    return "<nil>" if value is None else _quantity(value)


# ---------------------------------------------------------------------------------------------
# Labels and selectors


def _format_labels(labels: object) -> str:
    """labels.FormatLabels: sorted k=v pairs, or <none>."""
    if not isinstance(labels, dict) or not labels:
        return "<none>"
    return ",".join(f"{key}={labels[key]}" for key in sorted(labels))


_SELECTOR_OPERATORS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": ""}


def _selector_string(selector: object) -> str | None:
    """metav1.LabelSelectorAsSelector(...).String(); None where upstream reports an error."""
    if not isinstance(selector, dict):
        return ""  # a nil selector selects nothing and prints as ""
    requirements: list[tuple[str, str]] = []
    for key, value in _dict(selector, "matchLabels").items():
        requirements.append((key, f"{key}={value}"))
    for expression in _list(selector, "matchExpressions"):
        key, operator = _str(expression, "key"), _str(expression, "operator")
        values = [v for v in _list(expression, "values") if isinstance(v, str)]
        if operator not in _SELECTOR_OPERATORS or (operator in ("In", "NotIn")) != bool(values):
            return None
        if operator == "Exists":
            requirements.append((key, key))
        elif operator == "DoesNotExist":
            requirements.append((key, f"!{key}"))
        else:
            requirements.append((key, f"{key}{_SELECTOR_OPERATORS[operator]}({','.join(sorted(values))})"))
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(text for _, text in requirements)


def _format_selector(selector: object) -> str:
    """metav1.FormatLabelSelector: the selector string, <none> when empty, <error> when invalid."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


def _containers(pod_spec: object) -> tuple[str, str]:
    """Container names and images, comma-joined (layoutContainerCells)."""
    containers = [c for c in _list(pod_spec, "containers") if isinstance(c, dict)]
    return ",".join(_str(c, "name") for c in containers), ",".join(_str(c, "image") for c in containers)


def _condition_status(conditions: list, condition_type: str) -> str | None:
    """Status of the first condition of a type (upstream stops at the first match)."""
    for condition in conditions:
        if _get(condition, "type") == condition_type:
            return _str(condition, "status")
    return None


def _name(obj: dict) -> str:
    return _str(obj, "metadata", "name")


def _created(obj: dict, now: datetime) -> str:
    return age(_str(obj, "metadata", "creationTimestamp"), now)


# ---------------------------------------------------------------------------------------------
# Columns


def _col(name: str, description: str, *, kind: str = "string", fmt: str = "", priority: int = 0) -> dict:
    return {"name": name, "type": kind, "format": fmt, "description": description, "priority": priority}


_NAME = _col("Name", _DOCS["ObjectMeta.name"], fmt="name")
_AGE = _col("Age", _DOCS["ObjectMeta.creationTimestamp"])
_CONTAINERS_TEXT = "Names of each container in the template."
_IMAGES_TEXT = "Images referenced by each container in the template."
_WIDE_CONTAINERS = _col("Containers", _CONTAINERS_TEXT, priority=1)
_WIDE_IMAGES = _col("Images", _IMAGES_TEXT, priority=1)


def _default_cells(obj: dict, now: datetime) -> list:
    # The default table converter prints metadata.creationTimestamp as RFC 3339 in UTC.
    created = _parse_time(_str(obj, "metadata", "creationTimestamp"))
    if created is None:
        return [_name(obj), "0001-01-01T00:00:00Z"]  # Go's zero time
    return [_name(obj), created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")]


DEFAULT = Printer(
    (_NAME, _col("Created At", _DOCS["ObjectMeta.creationTimestamp"], kind="date")),
    _default_cells,
)


# ---------------------------------------------------------------------------------------------
# Pods

_NODE_LOST_REASON = "NodeLost"  # set by the node lifecycle controller on pods of unreachable nodes


def _is_sidecar(container: object) -> bool:
    """A restartable init container (restartPolicy Always) runs alongside the app containers."""
    return _get(container, "restartPolicy") == "Always"


def _finished_at(container_status: object) -> datetime | None:
    return _parse_time(_get(container_status, "lastState", "terminated", "finishedAt"))


def _latest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    return candidate if current is None or current < candidate else current


def _terminated_reason(terminated: dict, prefix: str = "") -> str:
    if reason := _str(terminated, "reason"):
        return prefix + reason
    if signal := _int(terminated, "signal"):
        return f"{prefix}Signal:{signal}"
    return f"{prefix}ExitCode:{_int(terminated, 'exitCode')}"


@dataclass
class _PodTally:
    """What printPod accumulates while walking container statuses."""

    reason: str
    ready: int = 0
    restarts: int = 0
    last_restart: datetime | None = None


def _walk_init_containers(pod: dict, tally: _PodTally) -> tuple[bool, int, datetime | None]:
    """Init container pass: sets Init:* reasons; returns (initializing, sidecar restarts, last)."""
    init_specs = _list(pod, "spec", "initContainers")
    by_name = {_get(c, "name"): c for c in init_specs}
    sidecar_restarts, sidecar_last = 0, None
    for index, status in enumerate(_list(pod, "status", "initContainerStatuses")):
        restarts, finished = _int(status, "restartCount"), _finished_at(status)
        tally.restarts += restarts
        tally.last_restart = _latest(tally.last_restart, finished)
        sidecar = _is_sidecar(by_name.get(_get(status, "name")))
        if sidecar:
            sidecar_restarts += restarts
            sidecar_last = _latest(sidecar_last, finished)
        terminated, waiting = _get(status, "state", "terminated"), _get(status, "state", "waiting")
        if isinstance(terminated, dict) and _int(terminated, "exitCode") == 0:
            continue
        if sidecar and _get(status, "started") is True:
            tally.ready += 1 if _get(status, "ready") is True else 0
            continue
        if isinstance(terminated, dict):
            tally.reason = _terminated_reason(terminated, "Init:")
        elif _str(waiting, "reason") and _str(waiting, "reason") != "PodInitializing":
            tally.reason = "Init:" + _str(waiting, "reason")
        else:
            tally.reason = f"Init:{index}/{len(init_specs)}"
        return True, sidecar_restarts, sidecar_last
    return False, sidecar_restarts, sidecar_last


def _walk_app_containers(pod: dict, tally: _PodTally) -> None:
    has_running = False
    # Walked last to first so the first container's state wins the reason.
    for status in reversed(_list(pod, "status", "containerStatuses")):
        tally.restarts += _int(status, "restartCount")
        tally.last_restart = _latest(tally.last_restart, _finished_at(status))
        waiting, terminated = _get(status, "state", "waiting"), _get(status, "state", "terminated")
        if _str(waiting, "reason"):
            tally.reason = _str(waiting, "reason")
        elif isinstance(terminated, dict):
            tally.reason = _terminated_reason(terminated)
        elif _get(status, "ready") is True and _is_set(status, "state", "running"):
            has_running = True
            tally.ready += 1
    # A pod whose last container exited cleanly while others still run is not "Completed".
    if tally.reason == "Completed" and has_running:
        ready = _condition_status(_list(pod, "status", "conditions"), "Ready") == "True"
        tally.reason = "Running" if ready else "NotReady"


def _pod_reason_and_counts(pod: dict) -> _PodTally:
    status = _dict(pod, "status")
    phase = _str(status, "phase")
    tally = _PodTally(reason=_str(status, "reason") or phase)
    for condition in _list(status, "conditions"):
        if _get(condition, "type") == "PodScheduled" and _get(condition, "reason") == "SchedulingGated":
            tally.reason = "SchedulingGated"
    initializing, sidecar_restarts, sidecar_last = _walk_init_containers(pod, tally)
    if not initializing or _condition_status(_list(status, "conditions"), "Initialized") == "True":
        # Once initialized, only sidecar restarts count among the init containers'.
        tally.restarts, tally.last_restart = sidecar_restarts, sidecar_last
        _walk_app_containers(pod, tally)
    if _is_set(pod, "metadata", "deletionTimestamp"):
        if _str(status, "reason") == _NODE_LOST_REASON:
            tally.reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            tally.reason = "Terminating"
    return tally


def _readiness_gates(pod: dict) -> str:
    gates = _list(pod, "spec", "readinessGates")
    if not gates:
        return "<none>"
    conditions = _list(pod, "status", "conditions")
    passing = sum(1 for gate in gates if _condition_status(conditions, _get(gate, "conditionType")) == "True")
    return f"{passing}/{len(gates)}"


def _pod_cells(pod: dict, now: datetime) -> list:
    tally = _pod_reason_and_counts(pod)
    spec = _dict(pod, "spec")
    total = len(_list(spec, "containers")) + sum(1 for c in _list(spec, "initContainers") if _is_sidecar(c))
    restarts = str(tally.restarts)
    if tally.restarts and tally.last_restart is not None:
        restarts += f" ({_since(tally.last_restart, now)} ago)"
    pod_ips = _list(pod, "status", "podIPs")
    return [
        _name(pod),
        f"{tally.ready}/{total}",
        tally.reason,
        restarts,
        _created(pod, now),
        (_str(pod_ips[0], "ip") if pod_ips else "") or "<none>",
        _str(spec, "nodeName") or "<none>",
        _str(pod, "status", "nominatedNodeName") or "<none>",
        _readiness_gates(pod),
    ]


def row_conditions(obj: dict) -> list[dict] | None:
    """Table row conditions: a finished pod's row is marked Completed (kubectl greys it out)."""
    if obj.get("kind", "Pod") != "Pod":
        return None
    phase = _str(obj, "status", "phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return None
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


pod = Printer(
    (
        _NAME,
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            "The number of times the containers in this pod have been restarted and when the last "
            "container in this pod has restarted.",
        ),
        _AGE,
        _col("IP", _DOCS["PodStatus.podIP"], priority=1),
        _col("Node", _DOCS["PodSpec.nodeName"], priority=1),
        _col("Nominated Node", _DOCS["PodStatus.nominatedNodeName"], priority=1),
        _col("Readiness Gates", _DOCS["PodSpec.readinessGates"], priority=1),
    ),
    _pod_cells,
)


def _pod_template_cells(obj: dict, now: datetime) -> list:
    names, images = _containers(_get(obj, "template", "spec"))
    return [_name(obj), names, images, _format_labels(_get(obj, "template", "metadata", "labels"))]


pod_template = Printer(
    (
        _NAME,
        _col("Containers", _CONTAINERS_TEXT),
        _col("Images", _IMAGES_TEXT),
        _col("Pod Labels", "The labels for the pod template."),
    ),
    _pod_template_cells,
)


# ---------------------------------------------------------------------------------------------
# Workloads


def _replication_controller_cells(obj: dict, now: datetime) -> list:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        _int(obj, "spec", "replicas"),
        _int(obj, "status", "replicas"),
        _int(obj, "status", "readyReplicas"),
        _created(obj, now),
        names,
        images,
        _format_labels(_get(obj, "spec", "selector")),
    ]


replication_controller = Printer(
    (
        _NAME,
        _col("Desired", _DOCS["ReplicationControllerSpec.replicas"], kind="integer"),
        _col("Current", _DOCS["ReplicationControllerStatus.replicas"], kind="integer"),
        _col("Ready", _DOCS["ReplicationControllerStatus.readyReplicas"], kind="integer"),
        _AGE,
        _WIDE_CONTAINERS,
        _WIDE_IMAGES,
        _col("Selector", _DOCS["ReplicationControllerSpec.selector"], priority=1),
    ),
    _replication_controller_cells,
)


def _replica_set_cells(obj: dict, now: datetime) -> list:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        _int(obj, "spec", "replicas"),
        _int(obj, "status", "replicas"),
        _int(obj, "status", "readyReplicas"),
        _created(obj, now),
        names,
        images,
        _format_selector(_get(obj, "spec", "selector")),
    ]


replica_set = Printer(
    (
        _NAME,
        _col("Desired", _DOCS["ReplicaSetSpec.replicas"], kind="integer"),
        _col("Current", _DOCS["ReplicaSetStatus.replicas"], kind="integer"),
        _col("Ready", _DOCS["ReplicaSetStatus.readyReplicas"], kind="integer"),
        _AGE,
        _WIDE_CONTAINERS,
        _WIDE_IMAGES,
        _col("Selector", _DOCS["ReplicaSetSpec.selector"], priority=1),
    ),
    _replica_set_cells,
)


def _deployment_cells(obj: dict, now: datetime) -> list:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    selector = _selector_string(_get(obj, "spec", "selector"))
    return [
        _name(obj),
        f"{_int(obj, 'status', 'readyReplicas')}/{_int(obj, 'spec', 'replicas')}",
        _int(obj, "status", "updatedReplicas"),
        _int(obj, "status", "availableReplicas"),
        _created(obj, now),
        names,
        images,
        "<invalid>" if selector is None else selector,
    ]


deployment = Printer(
    (
        _NAME,
        _col("Ready", "Number of the pod with ready state"),
        _col("Up-to-date", _DOCS["DeploymentStatus.updatedReplicas"]),
        _col("Available", _DOCS["DeploymentStatus.availableReplicas"]),
        _AGE,
        _WIDE_CONTAINERS,
        _WIDE_IMAGES,
        _col("Selector", _DOCS["DeploymentSpec.selector"], priority=1),
    ),
    _deployment_cells,
)


def _stateful_set_cells(obj: dict, now: datetime) -> list:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    ready = f"{_int(obj, 'status', 'readyReplicas')}/{_int(obj, 'spec', 'replicas')}"
    return [_name(obj), ready, _created(obj, now), names, images]


stateful_set = Printer(
    (_NAME, _col("Ready", "Number of the pod with ready state"), _AGE, _WIDE_CONTAINERS, _WIDE_IMAGES),
    _stateful_set_cells,
)


def _daemon_set_cells(obj: dict, now: datetime) -> list:
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        _int(obj, "status", "desiredNumberScheduled"),
        _int(obj, "status", "currentNumberScheduled"),
        _int(obj, "status", "numberReady"),
        _int(obj, "status", "updatedNumberScheduled"),
        _int(obj, "status", "numberAvailable"),
        _format_labels(_get(obj, "spec", "template", "spec", "nodeSelector")),
        _created(obj, now),
        names,
        images,
        _format_selector(_get(obj, "spec", "selector")),
    ]


daemon_set = Printer(
    (
        _NAME,
        _col("Desired", _DOCS["DaemonSetStatus.desiredNumberScheduled"], kind="integer"),
        _col("Current", _DOCS["DaemonSetStatus.currentNumberScheduled"], kind="integer"),
        _col("Ready", _DOCS["DaemonSetStatus.numberReady"], kind="integer"),
        _col("Up-to-date", _DOCS["DaemonSetStatus.updatedNumberScheduled"], kind="integer"),
        _col("Available", _DOCS["DaemonSetStatus.numberAvailable"], kind="integer"),
        _col("Node Selector", _DOCS["PodSpec.nodeSelector"]),
        _AGE,
        _WIDE_CONTAINERS,
        _WIDE_IMAGES,
        _col("Selector", _DOCS["DaemonSetSpec.selector"], priority=1),
    ),
    _daemon_set_cells,
)


def _controller_reference(obj: dict) -> str:
    """kind.group/name of the controlling owner (formatResourceName), or <none>."""
    for owner in _list(obj, "metadata", "ownerReferences"):
        if _get(owner, "controller") is True:
            api_version = _str(owner, "apiVersion")
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            kind = _str(owner, "kind")
            group_kind = f"{kind}.{group}" if group else kind
            return f"{group_kind.lower()}/{_str(owner, 'name')}" if group_kind else _str(owner, "name")
    return "<none>"


def _controller_revision_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), _controller_reference(obj), _int(obj, "revision"), _created(obj, now)]


controller_revision = Printer(
    (
        _NAME,
        _col("Controller", "Controller of the object"),
        _col("Revision", _DOCS["ControllerRevision.revision"]),
        _AGE,
    ),
    _controller_revision_cells,
)


def _job_status(job: dict) -> str:
    conditions = _list(job, "status", "conditions")

    def holds(condition_type: str) -> bool:
        return _condition_status(conditions, condition_type) == "True"

    # v1.32 order; SuccessCriteriaMet only got its own status in v1.34, so it still reads Running.
    if holds("Complete"):
        return "Complete"
    if holds("Failed"):
        return "Failed"
    if _is_set(job, "metadata", "deletionTimestamp"):
        return "Terminating"
    if holds("Suspended"):
        return "Suspended"
    if holds("FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_cells(obj: dict, now: datetime) -> list:
    succeeded = _int(obj, "status", "succeeded")
    if _is_set(obj, "spec", "completions"):
        completions = f"{succeeded}/{_int(obj, 'spec', 'completions')}"
    elif (parallelism := _int(obj, "spec", "parallelism")) > 1:
        completions = f"{succeeded}/1 of {parallelism}"
    else:
        completions = f"{succeeded}/1"
    started = _parse_time(_get(obj, "status", "startTime"))
    finished = _parse_time(_get(obj, "status", "completionTime"))
    if started is None:
        duration = ""
    elif finished is None:
        duration = _since(started, now)
    else:
        duration = human_duration((finished - started).total_seconds())
    names, images = _containers(_get(obj, "spec", "template", "spec"))
    return [
        _name(obj),
        _job_status(obj),
        completions,
        duration,
        _created(obj, now),
        names,
        images,
        _format_selector(_get(obj, "spec", "selector")),
    ]


job = Printer(
    (
        _NAME,
        _col("Status", "Status of the job."),
        _col("Completions", _DOCS["JobStatus.succeeded"]),
        _col("Duration", "Time required to complete the job."),
        _AGE,
        _WIDE_CONTAINERS,
        _WIDE_IMAGES,
        _col("Selector", _DOCS["JobSpec.selector"], priority=1),
    ),
    _job_cells,
)


def _bool_pointer(value: object) -> str:
    """printBoolPtr: True/False, or <unset> for a nil pointer."""
    if value is None:
        return "<unset>"
    return "True" if value is True else "False"


def _cron_job_cells(obj: dict, now: datetime) -> list:
    last_schedule = _get(obj, "status", "lastScheduleTime")
    job_spec = _dict(obj, "spec", "jobTemplate", "spec")
    names, images = _containers(_get(job_spec, "template", "spec"))
    return [
        _name(obj),
        _str(obj, "spec", "schedule"),
        _str(obj, "spec", "timeZone") if _is_set(obj, "spec", "timeZone") else "<none>",
        _bool_pointer(_get(obj, "spec", "suspend")),
        len(_list(obj, "status", "active")),
        "<none>" if last_schedule is None else age(_str(obj, "status", "lastScheduleTime"), now),
        _created(obj, now),
        names,
        images,
        _format_selector(_get(job_spec, "selector")),
    ]


cron_job = Printer(
    (
        _NAME,
        _col("Schedule", _DOCS["CronJobSpec.schedule"]),
        _col("Timezone", _DOCS["CronJobSpec.timeZone"]),
        _col("Suspend", _DOCS["CronJobSpec.suspend"], kind="boolean"),
        _col("Active", _DOCS["CronJobStatus.active"], kind="integer"),
        _col("Last Schedule", _DOCS["CronJobStatus.lastScheduleTime"]),
        _AGE,
        _WIDE_CONTAINERS,
        _WIDE_IMAGES,
        _col("Selector", _DOCS["JobSpec.selector"], priority=1),
    ),
    _cron_job_cells,
)


def _format_hpa_target(spec: dict, status: dict | None) -> str:
    """One entry of the Targets cell: current/target for a metric, per its source type."""
    kind = _str(spec, "type")
    source_key = {"External": "external", "Pods": "pods", "Object": "object", "Resource": "resource",
                  "ContainerResource": "containerResource"}.get(kind)
    if source_key is None:
        return "<unknown type>"
    source = _dict(spec, source_key)
    target = _dict(source, "target")
    current_source = _get(status, source_key)
    current = _dict(current_source, "current")
    has_current = isinstance(current_source, dict)
    if kind == "Pods":
        value = _quantity_pointer(_get(current, "averageValue")) if has_current else "<unknown>"
        return f"{value}/{_quantity_pointer(_get(target, 'averageValue'))}"
    if kind in ("External", "Object"):
        if _is_set(target, "averageValue"):
            value = "<unknown>"
            if has_current and _is_set(current, "averageValue"):
                value = _quantity(_get(current, "averageValue"))
            return f"{value}/{_quantity(_get(target, 'averageValue'))} (avg)"
        value = _quantity_pointer(_get(current, "value")) if has_current else "<unknown>"
        return f"{value}/{_quantity_pointer(_get(target, 'value'))}"
    resource = _str(source, "name")
    if _is_set(target, "averageValue"):
        value = _quantity_pointer(_get(current, "averageValue")) if has_current else "<unknown>"
        return f"{resource}: {value}/{_quantity(_get(target, 'averageValue'))}"
    value = "<unknown>"
    if has_current and _is_set(current, "averageUtilization"):
        value = f"{_int(current, 'averageUtilization')}%"
    goal = f"{_int(target, 'averageUtilization')}%" if _is_set(target, "averageUtilization") else "<auto>"
    return f"{resource}: {value}/{goal}"


def _format_hpa_metrics(obj: dict) -> str:
    specs = _list(obj, "spec", "metrics")
    if not specs:
        return "<none>"
    statuses = _list(obj, "status", "currentMetrics")
    # Status entries pair with spec entries by position.
    targets = [_format_hpa_target(spec, statuses[i] if i < len(statuses) else None)
               for i, spec in enumerate(specs)]
    shown = ", ".join(targets[:2])
    return f"{shown} + {len(targets) - 2} more..." if len(targets) > 2 else shown


def _horizontal_pod_autoscaler_cells(obj: dict, now: datetime) -> list:
    target = _dict(obj, "spec", "scaleTargetRef")
    min_pods = str(_int(obj, "spec", "minReplicas")) if _is_set(obj, "spec", "minReplicas") else "<unset>"
    return [
        _name(obj),
        f"{_str(target, 'kind')}/{_str(target, 'name')}",
        _format_hpa_metrics(obj),
        min_pods,
        _int(obj, "spec", "maxReplicas"),
        _int(obj, "status", "currentReplicas"),
        _created(obj, now),
    ]


horizontal_pod_autoscaler = Printer(
    (
        _NAME,
        _col("Reference", _DOCS["HorizontalPodAutoscalerSpec.scaleTargetRef"]),
        _col("Targets", _DOCS["HorizontalPodAutoscalerSpec.metrics"]),
        _col("MinPods", _DOCS["HorizontalPodAutoscalerSpec.minReplicas"]),
        _col("MaxPods", _DOCS["HorizontalPodAutoscalerSpec.maxReplicas"]),
        _col("Replicas", _DOCS["HorizontalPodAutoscalerStatus.currentReplicas"]),
        _AGE,
    ),
    _horizontal_pod_autoscaler_cells,
)


def _int_or_string(value: object) -> str:
    return value if isinstance(value, str) else str(int(value)) if isinstance(value, int | float) else ""


def _pod_disruption_budget_cells(obj: dict, now: datetime) -> list:
    spec = _dict(obj, "spec")
    min_available = _int_or_string(spec["minAvailable"]) if _is_set(spec, "minAvailable") else "N/A"
    max_unavailable = _int_or_string(spec["maxUnavailable"]) if _is_set(spec, "maxUnavailable") else "N/A"
    return [_name(obj), min_available, max_unavailable, _int(obj, "status", "disruptionsAllowed"),
            _created(obj, now)]


pod_disruption_budget = Printer(
    (
        _NAME,
        _col("Min Available", "The minimum number of pods that must be available."),
        _col("Max Unavailable", "The maximum number of pods that may be unavailable."),
        _col("Allowed Disruptions", "Calculated number of pods that may be disrupted at this time.",
             kind="integer"),
        _AGE,
    ),
    _pod_disruption_budget_cells,
)


# ---------------------------------------------------------------------------------------------
# Services and networking


def _load_balancer_addresses(status: object) -> str:
    """Distinct ingress IPs (or hostnames), sorted and comma-joined; never clipped in wide output."""
    found = set()
    for ingress in _list(status, "loadBalancer", "ingress"):
        if address := _str(ingress, "ip") or _str(ingress, "hostname"):
            found.add(address)
    return ",".join(sorted(found))


def _service_external_ip(service: dict) -> str:
    spec = _dict(service, "spec")
    external_ips = [ip for ip in _list(spec, "externalIPs") if isinstance(ip, str)]
    service_type = _str(spec, "type")
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) if external_ips else "<none>"
    if service_type == "LoadBalancer":
        balancer = _load_balancer_addresses(_get(service, "status"))
        if external_ips:
            return ",".join(([balancer] if balancer else []) + external_ips)
        return balancer or "<pending>"
    if service_type == "ExternalName":
        return _str(spec, "externalName")
    return "<unknown>"


def _service_ports(spec: dict) -> str:
    pieces = []
    for port in _list(spec, "ports"):
        node_port = _int(port, "nodePort")
        number, protocol = _int(port, "port"), _str(port, "protocol")
        pieces.append(f"{number}:{node_port}/{protocol}" if node_port > 0 else f"{number}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(obj: dict, now: datetime) -> list:
    spec = _dict(obj, "spec")
    cluster_ips = _list(spec, "clusterIPs")
    return [
        _name(obj),
        _str(spec, "type"),
        # Upstream reads clusterIPs only; clusterIP is a fallback for objects stored without it.
        (cluster_ips[0] if cluster_ips else _str(spec, "clusterIP")) or "<none>",
        _service_external_ip(obj),
        _service_ports(spec),
        _created(obj, now),
        _format_labels(_get(spec, "selector")),
    ]


service = Printer(
    (
        _NAME,
        _col("Type", _DOCS["ServiceSpec.type"]),
        _col("Cluster-IP", _DOCS["ServiceSpec.clusterIP"]),
        _col("External-IP", _DOCS["ServiceSpec.externalIPs"]),
        _col("Port(s)", _DOCS["ServiceSpec.ports"]),
        _AGE,
        _col("Selector", _DOCS["ServiceSpec.selector"], priority=1),
    ),
    _service_cells,
)


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_MAX_LISTED = 3  # list cells show three entries and then "+ N more..."


def _format_endpoints(obj: dict) -> str:
    subsets = _list(obj, "subsets")
    if not subsets:
        return "<none>"
    listed: list[str] = []
    total = 0
    for subset in subsets:
        addresses = [_str(a, "ip") for a in _list(subset, "addresses")]
        ports = _list(subset, "ports")
        # Headless services may publish addresses with no ports.
        groups = [addresses] if not ports else [
            [_join_host_port(ip, _int(port, "port")) for ip in addresses] for port in ports
        ]
        for group in groups:
            total += len(group)
            listed.extend(group[: _MAX_LISTED - len(listed)])
    text = ",".join(listed)
    return f"{text} + {total - _MAX_LISTED} more..." if total > _MAX_LISTED else text


def _list_with_more(items: list[str]) -> str:
    if len(items) > _MAX_LISTED:
        return f"{','.join(items[:_MAX_LISTED])} + {len(items) - _MAX_LISTED} more..."
    return ",".join(items) or "<unset>"


def _endpoints_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), _format_endpoints(obj), _created(obj, now)]


endpoints = Printer(
    (_NAME, _col("Endpoints", _DOCS["Endpoints.subsets"]), _AGE),
    _endpoints_cells,
)


def _slice_port(port: object) -> str:
    if _is_set(port, "port"):
        return str(_int(port, "port"))
    if _is_set(port, "name"):
        return _str(port, "name")
    return "*"


def _endpoint_slice_cells(obj: dict, now: datetime) -> list:
    ports = [_slice_port(port) for port in _list(obj, "ports")]
    addresses = [a for e in _list(obj, "endpoints") for a in _list(e, "addresses") if isinstance(a, str)]
    return [_name(obj), _str(obj, "addressType"), _list_with_more(ports), _list_with_more(addresses),
            _created(obj, now)]


endpoint_slice = Printer(
    (
        _NAME,
        _col("AddressType", _DOCS["EndpointSlice.addressType"]),
        _col("Ports", _DOCS["EndpointSlice.ports"]),
        _col("Endpoints", _DOCS["EndpointSlice.endpoints"]),
        _AGE,
    ),
    _endpoint_slice_cells,
)


def _ingress_hosts(rules: list) -> str:
    hosts: list[str] = []
    more = False
    for rule in rules:
        more = more or len(hosts) == _MAX_LISTED
        if not more and (host := _str(rule, "host")):
            hosts.append(host)
    if not hosts:
        return "*"
    # Upstream counts the overflow in rules (hostless ones included), not in hosts.
    return f"{','.join(hosts)} + {len(rules) - _MAX_LISTED} more..." if more else ",".join(hosts)


def _ingress_cells(obj: dict, now: datetime) -> list:
    spec = _dict(obj, "spec")
    return [
        _name(obj),
        _str(spec, "ingressClassName") if _is_set(spec, "ingressClassName") else "<none>",
        _ingress_hosts(_list(spec, "rules")),
        _load_balancer_addresses(_get(obj, "status")),
        "80, 443" if _list(spec, "tls") else "80",
        _created(obj, now),
    ]


ingress = Printer(
    (
        _NAME,
        _col("Class", "The name of the IngressClass resource that should be used for additional configuration"),
        _col("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        _col("Address", "Address is a list containing ingress points for the load-balancer"),
        _col("Ports", "Ports of TLS configurations that open"),
        _AGE,
    ),
    _ingress_cells,
)


def _ingress_class_cells(obj: dict, now: datetime) -> list:
    parameters = "<none>"
    if isinstance(reference := _get(obj, "spec", "parameters"), dict):
        parameters = _str(reference, "kind")
        if _is_set(reference, "apiGroup"):
            parameters += "." + _str(reference, "apiGroup")
        parameters += "/" + _str(reference, "name")
    return [_name(obj), _str(obj, "spec", "controller"), parameters, _created(obj, now)]


ingress_class = Printer(
    (
        _NAME,
        _col("Controller", "Controller that is responsible for handling this class"),
        _col("Parameters", "A reference to a resource with additional parameters"),
        _AGE,
    ),
    _ingress_class_cells,
)


def _network_policy_cells(obj: dict, now: datetime) -> list:
    # podSelector is a struct, never nil: an absent one is the empty (match-all) selector.
    return [_name(obj), _format_selector(_dict(obj, "spec", "podSelector")), _created(obj, now)]


network_policy = Printer(
    (_NAME, _col("Pod-Selector", _DOCS["NetworkPolicySpec.podSelector"]), _AGE),
    _network_policy_cells,
)


# ---------------------------------------------------------------------------------------------
# Cluster objects


def _node_roles(node: dict) -> str:
    roles = set()
    for key, value in _dict(node, "metadata", "labels").items():
        if key.startswith("node-role.kubernetes.io/") and (role := key.removeprefix("node-role.kubernetes.io/")):
            roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: dict, address_type: str) -> str:
    for address in _list(node, "status", "addresses"):
        if _get(address, "type") == address_type:
            return _str(address, "address")
    return "<none>"


def _node_cells(obj: dict, now: datetime) -> list:
    # Only the Ready condition feeds the status; a later duplicate wins, as in upstream's map.
    ready = None
    for condition in _list(obj, "status", "conditions"):
        if _get(condition, "type") == "Ready":
            ready = _str(condition, "status")
    status = ["Unknown" if ready is None else "Ready" if ready == "True" else "NotReady"]
    if _get(obj, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    info = _dict(obj, "status", "nodeInfo")
    return [
        _name(obj),
        ",".join(status),
        _node_roles(obj),
        _created(obj, now),
        _str(info, "kubeletVersion"),
        _node_address(obj, "InternalIP"),
        _node_address(obj, "ExternalIP"),
        _str(info, "osImage") or "<unknown>",
        _str(info, "kernelVersion") or "<unknown>",
        _str(info, "containerRuntimeVersion") or "<unknown>",
    ]


node = Printer(
    (
        _NAME,
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _AGE,
        _col("Version", _DOCS["NodeSystemInfo.kubeletVersion"]),
        _col("Internal-IP", _DOCS["NodeStatus.addresses"], priority=1),
        _col("External-IP", _DOCS["NodeStatus.addresses"], priority=1),
        _col("OS-Image", _DOCS["NodeSystemInfo.osImage"], priority=1),
        _col("Kernel-Version", _DOCS["NodeSystemInfo.kernelVersion"], priority=1),
        _col("Container-Runtime", _DOCS["NodeSystemInfo.containerRuntimeVersion"], priority=1),
    ),
    _node_cells,
)


def _namespace_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), _str(obj, "status", "phase"), _created(obj, now)]


namespace = Printer((_NAME, _col("Status", "The status of the namespace"), _AGE), _namespace_cells)


def _event_source(event: dict) -> str:
    component = _str(event, "source", "component") or _str(event, "reportingComponent")
    host = _str(event, "source", "host") or _str(event, "reportingInstance")
    return f"{component}, {host}" if host else component


def _event_cells(obj: dict, now: datetime) -> list:
    first_seen = age(_str(obj, "firstTimestamp"), now)
    if _parse_time(_get(obj, "firstTimestamp")) is None:
        first_seen = age(_str(obj, "eventTime"), now)
    last_seen = age(_str(obj, "lastTimestamp"), now)
    if _parse_time(_get(obj, "lastTimestamp")) is None:
        last_seen = first_seen
    count = _int(obj, "count")
    if isinstance(series := _get(obj, "series"), dict):
        last_seen = age(_str(series, "lastObservedTime"), now)
        count = _int(series, "count")
    elif count == 0:
        count = 1  # singleton events written through events.k8s.io carry no count
    kind, name = _str(obj, "involvedObject", "kind").lower(), _str(obj, "involvedObject", "name")
    return [
        last_seen,
        _str(obj, "type"),
        _str(obj, "reason"),
        f"{kind}/{name}" if name else kind,
        _str(obj, "involvedObject", "fieldPath"),
        _event_source(obj),
        _str(obj, "message").strip(),
        first_seen,
        count,
        _name(obj),
    ]


event = Printer(
    (
        _col("Last Seen", _DOCS["Event.lastTimestamp"]),
        _col("Type", _DOCS["Event.type"]),
        _col("Reason", _DOCS["Event.reason"]),
        _col("Object", _DOCS["Event.involvedObject"]),
        _col("Subobject", _DOCS["ObjectReference.fieldPath"], priority=1),
        _col("Source", _DOCS["Event.source"], priority=1),
        _col("Message", _DOCS["Event.message"]),
        _col("First Seen", _DOCS["Event.firstTimestamp"], priority=1),
        _col("Count", _DOCS["Event.count"], priority=1),
        _col("Name", _DOCS["ObjectMeta.name"], fmt="name", priority=1),
    ),
    _event_cells,
)


def _config_map_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), len(_dict(obj, "data")) + len(_dict(obj, "binaryData")), _created(obj, now)]


config_map = Printer((_NAME, _col("Data", _DOCS["ConfigMap.data"]), _AGE), _config_map_cells)


def _secret_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), _str(obj, "type"), len(_dict(obj, "data")), _created(obj, now)]


secret = Printer(
    (_NAME, _col("Type", _DOCS["Secret.type"]), _col("Data", _DOCS["Secret.data"]), _AGE),
    _secret_cells,
)


def _service_account_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), len(_list(obj, "secrets")), _created(obj, now)]


service_account = Printer(
    (_NAME, _col("Secrets", _DOCS["ServiceAccount.secrets"]), _AGE),
    _service_account_cells,
)


# ---------------------------------------------------------------------------------------------
# Storage

_ACCESS_MODES = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP"))
_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"  # still wins over the spec field


def _access_modes(modes: list) -> str:
    return ",".join(short for mode, short in _ACCESS_MODES if mode in modes)


def _storage_class_of(obj: dict) -> str:
    annotations = _dict(obj, "metadata", "annotations")
    if _BETA_STORAGE_CLASS in annotations:
        return _str(annotations, _BETA_STORAGE_CLASS)
    return _str(obj, "spec", "storageClassName")


def _volume_attributes_class(obj: dict) -> str:
    if _is_set(obj, "spec", "volumeAttributesClassName"):
        return _str(obj, "spec", "volumeAttributesClassName")
    return "<unset>"


def _volume_mode(obj: dict) -> str:
    return _str(obj, "spec", "volumeMode") if _is_set(obj, "spec", "volumeMode") else "<unset>"


def _phase_or_terminating(obj: dict) -> str:
    return "Terminating" if _is_set(obj, "metadata", "deletionTimestamp") else _str(obj, "status", "phase")


def _persistent_volume_cells(obj: dict, now: datetime) -> list:
    claim = _get(obj, "spec", "claimRef")
    claim_text = f"{_str(claim, 'namespace')}/{_str(claim, 'name')}" if isinstance(claim, dict) else ""
    return [
        _name(obj),
        _quantity(_get(obj, "spec", "capacity", "storage")),
        _access_modes(_list(obj, "spec", "accessModes")),
        _str(obj, "spec", "persistentVolumeReclaimPolicy"),
        _phase_or_terminating(obj),
        claim_text,
        _storage_class_of(obj),
        _volume_attributes_class(obj),
        _str(obj, "status", "reason"),
        _created(obj, now),
        _volume_mode(obj),
    ]


persistent_volume = Printer(
    (
        _NAME,
        _col("Capacity", _DOCS["PersistentVolumeSpec.capacity"]),
        _col("Access Modes", _DOCS["PersistentVolumeSpec.accessModes"]),
        _col("Reclaim Policy", _DOCS["PersistentVolumeSpec.persistentVolumeReclaimPolicy"]),
        _col("Status", _DOCS["PersistentVolumeStatus.phase"]),
        _col("Claim", _DOCS["PersistentVolumeSpec.claimRef"]),
        _col("StorageClass", "StorageClass of the pv"),
        _col("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        _col("Reason", _DOCS["PersistentVolumeStatus.reason"]),
        _AGE,
        _col("VolumeMode", _DOCS["PersistentVolumeSpec.volumeMode"], priority=1),
    ),
    _persistent_volume_cells,
)


def _persistent_volume_claim_cells(obj: dict, now: datetime) -> list:
    volume = _str(obj, "spec", "volumeName")
    capacity = access_modes = ""
    # Capacity and modes are the bound volume's, so an unbound claim shows neither.
    if volume:
        capacity = _quantity(_get(obj, "status", "capacity", "storage"))
        access_modes = _access_modes(_list(obj, "status", "accessModes"))
    return [
        _name(obj),
        _phase_or_terminating(obj),
        volume,
        capacity,
        access_modes,
        _storage_class_of(obj),
        _volume_attributes_class(obj),
        _created(obj, now),
        _volume_mode(obj),
    ]


persistent_volume_claim = Printer(
    (
        _NAME,
        _col("Status", _DOCS["PersistentVolumeClaimStatus.phase"]),
        _col("Volume", _DOCS["PersistentVolumeClaimSpec.volumeName"]),
        _col("Capacity", _DOCS["PersistentVolumeClaimStatus.capacity"]),
        _col("Access Modes", _DOCS["PersistentVolumeClaimStatus.accessModes"]),
        _col("StorageClass", "StorageClass of the pvc"),
        _col("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        _AGE,
        _col("VolumeMode", _DOCS["PersistentVolumeClaimSpec.volumeMode"], priority=1),
    ),
    _persistent_volume_claim_cells,
)


_DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                              "storageclass.beta.kubernetes.io/is-default-class")


def _storage_class_cells(obj: dict, now: datetime) -> list:
    annotations = _dict(obj, "metadata", "annotations")
    is_default = any(annotations.get(key) == "true" for key in _DEFAULT_CLASS_ANNOTATIONS)
    return [
        _name(obj) + (" (default)" if is_default else ""),
        _str(obj, "provisioner"),
        _str(obj, "reclaimPolicy") if _is_set(obj, "reclaimPolicy") else "Delete",
        _str(obj, "volumeBindingMode") if _is_set(obj, "volumeBindingMode") else "Immediate",
        _get(obj, "allowVolumeExpansion") is True,
        _created(obj, now),
    ]


storage_class = Printer(
    (
        _NAME,
        _col("Provisioner", _DOCS["StorageClass.provisioner"]),
        _col("ReclaimPolicy", _DOCS["StorageClass.reclaimPolicy"]),
        _col("VolumeBindingMode", _DOCS["StorageClass.volumeBindingMode"]),
        _col("AllowVolumeExpansion", _DOCS["StorageClass.allowVolumeExpansion"]),
        _AGE,
    ),
    _storage_class_cells,
)


# ---------------------------------------------------------------------------------------------
# Policy, RBAC, coordination, scheduling


def _resource_quota_cells(obj: dict, now: datetime) -> list:
    hard, used = _dict(obj, "status", "hard"), _dict(obj, "status", "used")
    requests: list[str] = []
    limits: list[str] = []
    for resource in sorted(hard):
        pieces = resource.split(".")
        bucket = limits if len(pieces) > 1 and pieces[0] == "limits" else requests
        bucket.append(f"{resource}: {_quantity(used.get(resource))}/{_quantity(hard[resource])}")
    return [_name(obj), _created(obj, now), ", ".join(requests), ", ".join(limits)]


resource_quota = Printer(
    (
        _NAME,
        _AGE,  # v1.32 still lists Age second here; v1.33 moved it last
        _col("Request", "Request represents a minimum amount of cpu/memory that a container may consume."),
        _col(
            "Limit",
            "Limits control the maximum amount of cpu/memory that a container may use independent of "
            "contention on the node.",
        ),
    ),
    _resource_quota_cells,
)

# Upstream registers no printer for these: they get the default Name/Created At table.
limit_range = DEFAULT
role = DEFAULT
cluster_role = DEFAULT


def _subjects(obj: dict) -> tuple[str, str, str]:
    users, groups, service_accounts = [], [], []
    for subject in _list(obj, "subjects"):
        kind, name = _get(subject, "kind"), _str(subject, "name")
        if kind == "ServiceAccount":
            service_accounts.append(f"{_str(subject, 'namespace')}/{name}")
        elif kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
    return ", ".join(users), ", ".join(groups), ", ".join(service_accounts)


def _binding_cells(obj: dict, now: datetime) -> list:
    role_ref = f"{_str(obj, 'roleRef', 'kind')}/{_str(obj, 'roleRef', 'name')}"
    return [_name(obj), role_ref, _created(obj, now), *_subjects(obj)]


def _binding_printer(role_ref_doc: str, noun: str) -> Printer:
    return Printer(
        (
            _NAME,
            _col("Role", role_ref_doc),
            _AGE,
            _col("Users", f"Users in the {noun}", priority=1),
            _col("Groups", f"Groups in the {noun}", priority=1),
            _col("ServiceAccounts", f"ServiceAccounts in the {noun}", priority=1),
        ),
        _binding_cells,
    )


role_binding = _binding_printer(_DOCS["RoleBinding.roleRef"], "roleBinding")
cluster_role_binding = _binding_printer(_DOCS["ClusterRoleBinding.roleRef"], "clusterRoleBinding")


def _lease_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), _str(obj, "spec", "holderIdentity"), _created(obj, now)]


lease = Printer((_NAME, _col("Holder", _DOCS["LeaseSpec.holderIdentity"]), _AGE), _lease_cells)


def _priority_class_cells(obj: dict, now: datetime) -> list:
    return [
        _name(obj),
        _int(obj, "value"),
        _get(obj, "globalDefault") is True,
        _created(obj, now),
        _str(obj, "preemptionPolicy"),
    ]


priority_class = Printer(
    (
        _NAME,
        _col("Value", _DOCS["PriorityClass.value"], kind="integer"),
        _col("Global-Default", _DOCS["PriorityClass.globalDefault"], kind="boolean"),
        _AGE,
        # Upstream gives this column priority 0 but fills it only in wide output; the server is always wide.
        _col("PreemptionPolicy", _DOCS["PriorityClass.preemptionPolicy"]),
    ),
    _priority_class_cells,
)


def _certificate_signing_request_cells(obj: dict, now: datetime) -> list:
    from .certificates import condition_summary

    expiration = _get(obj, "spec", "expirationSeconds")
    requested = human_duration(expiration) if isinstance(expiration, int) else "<none>"
    return [_name(obj), _created(obj, now), _str(obj, "spec", "signerName"), _str(obj, "spec", "username"),
            requested, condition_summary(obj)]


# Upstream describes these columns with the certificates.k8s.io/v1beta1 field docs (abridged here).
certificate_signing_request = Printer(
    (
        _NAME,
        _AGE,
        _col("SignerName", "Requested signer for the request. It is a qualified name in the form: "
                           "`scope-hostname.io/name`."),
        _col("Requestor", "Base64-encoded PKCS#10 CSR data"),
        _col("RequestedDuration", "expirationSeconds is the requested duration of validity of the issued "
                                  "certificate."),
        _col("Condition", "Conditions applied to the request, such as approval or denial."),
    ),
    _certificate_signing_request_cells,
)

def _webhook_configuration_cells(obj: dict, now: datetime) -> list:
    return [_name(obj), len(_list(obj, "webhooks")), _created(obj, now)]


mutating_webhook_configuration = validating_webhook_configuration = Printer(
    (
        _NAME,
        _col("Webhooks", "Webhooks indicates the number of webhooks registered in this configuration",
             kind="integer"),
        _AGE,
    ),
    _webhook_configuration_cells,
)


def _admission_policy_cells(obj: dict, now: datetime) -> list:
    param_kind = "<unset>"
    if isinstance(kind := _get(obj, "spec", "paramKind"), dict):
        param_kind = f"{_str(kind, 'apiVersion')}/{_str(kind, 'kind')}"
    return [_name(obj), len(_list(obj, "spec", "validations")), param_kind, _created(obj, now)]


validating_admission_policy = Printer(
    (
        _NAME,
        _col("Validations", "Validations indicates the number of validation rules defined in this configuration",
             kind="integer"),
        _col("ParamKind", "ParamKind specifies the kind of resources used to parameterize this policy"),
        _AGE,
    ),
    _admission_policy_cells,
)


def _admission_policy_binding_cells(obj: dict, now: datetime) -> list:
    param = "<unset>"
    if isinstance(ref := _get(obj, "spec", "paramRef"), dict):
        if _str(ref, "name"):
            # Without a namespace the param may be cluster-scoped: upstream cannot tell and prints "*".
            param = f"{_str(ref, 'namespace') or '*'}/{_str(ref, 'name')}"
        elif isinstance(ref.get("selector"), dict):
            param = _format_selector(ref["selector"])
    return [_name(obj), _str(obj, "spec", "policyName"), param, _created(obj, now)]


validating_admission_policy_binding = Printer(
    (
        _NAME,
        _col("PolicyName", "PolicyName indicates the policy definition which the policy binding binded to"),
        _col("ParamRef", "ParamRef indicates the param resource which sets the configration param"),
        _AGE,
    ),
    _admission_policy_binding_cells,
)


# ---------------------------------------------------------------------------------------------
# The Table

# apiextensions serves CRDs with the default table (Name, Created At), as kube-apiserver does.
custom_resource_definition = DEFAULT


def table(
    printer: Printer,
    objects: list[dict],
    now: datetime,
    *,
    include_object: str = "Metadata",
    with_headers: bool = True,
) -> dict:
    """A meta.k8s.io/v1 Table of `objects` (list metadata is the caller's to add).

    include_object follows the includeObject parameter: "Metadata" embeds PartialObjectMetadata
    (kubectl reads namespace and labels from it), "Object" the object itself, "None" nothing.
    """
    rows = []
    for obj in objects:
        row: dict = {"cells": printer.cells(obj, now)}
        if printer is pod and (conditions := row_conditions(obj)):
            row["conditions"] = conditions
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": _dict(obj, "metadata"),
            }
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "columnDefinitions": [dict(column) for column in printer.columns] if with_headers else [],
        "rows": rows,
    }
