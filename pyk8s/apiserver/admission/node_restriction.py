"""NodeRestriction (upstream plugin/pkg/admission/noderestriction): what the node authorizer lets a kubelet
write, narrowed to its own objects.

For users `system:node:<name>` in `system:nodes`: a node creates and changes only its own Node (never its
taints, never labels under kubernetes.io/k8s.io outside the kubelet's own set, never
node-restriction.kubernetes.io labels), creates only mirror pods bound to itself that reference no other
object, deletes, evicts and writes the status of pods bound to itself only, touches only its own Lease,
requests tokens only bound to its own pods, and asks only for certificates in its own name.
"""

from __future__ import annotations

from cryptography.x509.oid import NameOID

from ...api import certificates as csrs
from ...api import errors
from ..authz.node import NODE_LEASE_NAMESPACE, node_identity
from ..authz.node_graph import pod_references
from .interfaces import CREATE, DELETE, UPDATE, AdmissionPlugin, Attributes
from .state import ClusterState

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_LABELS = "node-restriction.kubernetes.io"
# Labels a kubelet may set on its Node although they are under kubernetes.io (upstream kubeletapis.IsKubeletLabel).
KUBELET_LABELS = frozenset({
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os", "kubernetes.io/arch",
    "beta.kubernetes.io/os", "beta.kubernetes.io/arch",
})
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")
_HANDLED = {("", "pods"), ("", "nodes"), ("", "persistentvolumeclaims"), ("", "serviceaccounts"),
            ("coordination.k8s.io", "leases"), ("certificates.k8s.io", "certificatesigningrequests")}


def _label_namespace(key: str) -> str:
    prefix, slash, _ = key.partition("/")
    return prefix if slash else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    namespace = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in_namespace(namespace, allowed) for allowed in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(labels: dict, old_labels: dict) -> list[str]:
    """The labels added, removed or changed that a node may not touch, sorted (upstream getForbiddenLabels)."""
    modified = {k for k in labels.keys() | old_labels.keys()
                if (k in labels) != (k in old_labels) or labels.get(k) != old_labels.get(k)}
    out = set()
    for key in modified:
        namespace = _label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_LABELS):
            out.add(key)
        kubernetes = _in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")
        if kubernetes and not is_kubelet_label(key):
            out.add(key)
    return sorted(out)


def _labels(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _node_name(pod: dict | None) -> str:
    return ((pod or {}).get("spec") or {}).get("nodeName") or ""


class NodeRestriction(AdmissionPlugin):
    name = "NodeRestriction"
    mutating = True

    def __init__(self, state: ClusterState):
        self.state = state
        self.pods = state.kind("", "v1", "Pod")
        self.nodes = state.kind("", "v1", "Node")

    def handles(self, attrs: Attributes) -> bool:
        return attrs.user is not None and attrs.operation in (CREATE, UPDATE, DELETE) and (
            attrs.resource in _HANDLED) and node_identity(attrs.user)[1]

    async def admit(self, attrs: Attributes) -> None:
        node, _ = node_identity(attrs.user)
        if not node:
            raise attrs.forbidden(f'could not determine node from user "{attrs.user_name}"')
        group, resource = attrs.resource
        if resource == "pods":
            if attrs.subresource == "":
                self._pod(node, attrs)
            elif attrs.subresource == "status":
                self._pod_status(node, attrs)
            elif attrs.subresource == "eviction":
                await self._eviction(node, attrs)
            else:
                raise attrs.forbidden(f"unexpected pod subresource \"{attrs.subresource}\", only 'status' and "
                                      "'eviction' are allowed")
        elif resource == "nodes":
            self._node(node, attrs)
        elif resource == "persistentvolumeclaims":
            self._claim(node, attrs)
        elif resource == "serviceaccounts":
            await self._token(node, attrs)
        elif resource == "leases":
            self._lease(node, attrs)
        else:
            self._certificate_request(node, attrs)

    # ---- pods -------------------------------------------------------------------------------

    def _pod(self, node: str, attrs: Attributes) -> None:
        if attrs.operation == CREATE:
            self._mirror_pod(node, attrs)
        elif attrs.operation == DELETE:
            if _node_name(attrs.old) != node:
                raise attrs.forbidden(f'node "{node}" can only delete pods with spec.nodeName set to itself')
        else:
            raise attrs.forbidden(f'unexpected operation "{attrs.operation}", node "{node}" can only create and '
                                  "delete mirror pods")

    def _mirror_pod(self, node: str, attrs: Attributes) -> None:
        pod = attrs.obj or {}
        meta = pod.get("metadata") or {}
        if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
            raise attrs.forbidden(f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can '
                                  "only create mirror pods")
        if _node_name(pod) != node:
            raise attrs.forbidden(f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise attrs.forbidden(f'node "{node}" can only create pods with a single owner reference set to itself')
        if not owners:
            raise attrs.forbidden(f'node "{node}" can only create pods with an owner reference set to itself')
        owner = owners[0]
        if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
            raise attrs.forbidden(f'node "{node}" can only create pods with an owner reference set to itself')
        if not owner.get("controller"):
            raise attrs.forbidden(f'node "{node}" can only create pods with a controller owner reference set to '
                                  "itself")
        if owner.get("blockOwnerDeletion"):
            raise attrs.forbidden(f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        registered = self.state.peek(self.nodes, "", node)
        if registered is None:
            raise attrs.forbidden(f'error looking up node {node} to verify uid: node "{node}" not found')
        if owner.get("uid") != registered["metadata"].get("uid"):
            raise attrs.forbidden(f"node {node} UID mismatch: expected {owner.get('uid')} got "
                                  f"{registered['metadata'].get('uid')}")
        # A mirror pod must not give its node access to anything (see the node graph).
        spec = pod.get("spec") or {}
        if spec.get("serviceAccountName"):
            raise attrs.forbidden(f'node "{node}" can not create pods that reference a service account')
        kinds = {vertex[0] for vertex in pod_references(pod)}
        for kind, plural in (("secret", "secrets"), ("configmap", "configmaps")):
            if kind in kinds:
                raise attrs.forbidden(f'node "{node}" can not create pods that reference {plural}')
        for volume in spec.get("volumes") or ():
            for source in ((volume.get("projected") or {}).get("sources") or ()):
                if source.get("clusterTrustBundle") is not None:
                    raise attrs.forbidden(f'node "{node}" can not create pods that reference clustertrustbundles')
        if any(isinstance(v.get("persistentVolumeClaim"), dict) for v in spec.get("volumes") or ()):
            raise attrs.forbidden(f'node "{node}" can not create pods that reference persistentvolumeclaims')

    def _pod_status(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != UPDATE:
            raise attrs.forbidden(f'unexpected operation "{attrs.operation}"')
        if _node_name(attrs.old) != node:
            raise attrs.forbidden(f'node "{node}" can only update pod status for pods with spec.nodeName set to '
                                  "itself")
        if _labels(attrs.obj) != _labels(attrs.old):
            raise attrs.forbidden(f'node "{node}" cannot update labels through pod status')

    async def _eviction(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE:
            raise attrs.forbidden(f"unexpected operation {attrs.operation}")
        name = attrs.name or ((attrs.obj or {}).get("metadata") or {}).get("name") or ""
        if not name:
            raise attrs.forbidden("could not determine pod from request data")
        pod = await self.state.get(self.pods, attrs.namespace, name)
        if pod is None:
            raise errors.not_found("pods", "", name)
        if _node_name(pod) != node:
            raise attrs.forbidden(f"node {node} can only evict pods with spec.nodeName set to itself")

    # ---- the node's own objects ---------------------------------------------------------------

    def _node(self, node: str, attrs: Attributes) -> None:
        requested = attrs.name or ((attrs.obj or {}).get("metadata") or {}).get("name") or ""
        if requested != node:
            raise attrs.forbidden(f'node "{node}" is not allowed to modify node "{requested}"')
        if attrs.operation == CREATE:
            if ((attrs.obj or {}).get("spec") or {}).get("configSource") is not None:
                raise attrs.forbidden(f'node "{node}" is not allowed to create pods with a non-nil configSource')
            labels = forbidden_labels(_labels(attrs.obj), {})
            if labels:
                raise attrs.forbidden(f'node "{node}" is not allowed to set the following labels: '
                                      f"{', '.join(labels)}")
        elif attrs.operation == UPDATE:
            spec, old_spec = (attrs.obj or {}).get("spec") or {}, (attrs.old or {}).get("spec") or {}
            if spec.get("configSource") is not None and spec.get("configSource") != old_spec.get("configSource"):
                raise attrs.forbidden(f'node "{node}" is not allowed to update configSource to a new non-nil '
                                      "configSource")
            if (spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise attrs.forbidden(f'node "{node}" is not allowed to modify taints')
            labels = forbidden_labels(_labels(attrs.obj), _labels(attrs.old))
            if labels:
                raise attrs.forbidden(f"is not allowed to modify labels: {', '.join(labels)}")

    def _claim(self, node: str, attrs: Attributes) -> None:
        if attrs.subresource != "status":
            raise attrs.forbidden("may only update PVC status")
        if attrs.operation != UPDATE:
            raise attrs.forbidden(f'unexpected operation "{attrs.operation}"')

        def comparable(claim: dict | None) -> dict:
            out = dict(claim or {})
            out["metadata"] = {k: v for k, v in (out.get("metadata") or {}).items()
                               if k not in ("resourceVersion", "managedFields")}
            out["status"] = {k: v for k, v in (out.get("status") or {}).items()
                             if k not in ("capacity", "conditions", "allocatedResourceStatuses",
                                          "allocatedResources")}
            return out

        if comparable(attrs.obj) != comparable(attrs.old):
            raise attrs.forbidden(f'node "{node}" is not allowed to update fields other than status.quantity and '
                                  "status.conditions")

    async def _token(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE or attrs.subresource != "token":
            return
        ref = ((attrs.obj or {}).get("spec") or {}).get("boundObjectRef") or {}
        if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
            raise attrs.forbidden("node requested token not bound to a pod")
        if not ref.get("uid"):
            raise attrs.forbidden("node requested token with a pod binding without a uid")
        pod = await self.state.get(self.pods, attrs.namespace, ref["name"])
        if pod is None:
            raise errors.not_found("pods", "", ref["name"])
        if ref["uid"] != pod["metadata"].get("uid"):
            raise attrs.forbidden(f"the UID in the bound object reference ({ref['uid']}) does not match the UID in "
                                  "record. The object might have been deleted and then recreated")
        if _node_name(pod) != node:
            raise attrs.forbidden("node requested token bound to a pod scheduled on a different node")

    def _lease(self, node: str, attrs: Attributes) -> None:
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            raise attrs.forbidden(f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        name = ((attrs.obj or {}).get("metadata") or {}).get("name") if attrs.operation == CREATE else attrs.name
        if name != node:
            raise attrs.forbidden("can only access node lease with the same name as the requesting node")

    def _certificate_request(self, node: str, attrs: Attributes) -> None:
        if attrs.operation != CREATE or attrs.subresource:
            return
        signer = ((attrs.obj or {}).get("spec") or {}).get("signerName")
        if signer not in (csrs.KUBELET_SERVING, csrs.KUBE_APISERVER_CLIENT_KUBELET):
            return
        try:
            request = csrs.parse_request(attrs.obj or {})
        except ValueError as exc:
            raise attrs.forbidden(f"unable to parse csr: {exc}") from None
        names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if names != [f"system:node:{node}"]:
            raise attrs.forbidden(f"can only create a node CSR with CN=system:node:{node}")
