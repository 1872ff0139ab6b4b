"""The bootstrap RBAC policy: upstream's default ClusterRoles, Roles and their bindings, as data.

Follows plugin/pkg/auth/authorizer/rbac/bootstrappolicy (policy.go, namespace_policy.go and the
controller roles of controller_policy.go for the controllers pyk8s runs) at v1.32 with default
feature gates. Every object carries the `kubernetes.io/bootstrapping: rbac-defaults` label and
the `rbac.authorization.kubernetes.io/autoupdate: "true"` annotation; see `reconcile.py` for
how they are kept up to date at each start.

pyk8s additions (documented in docs/security.md):
- `pyk8s:kube-controller-manager:<controller>` ClusterRoleBindings give the
  kube-controller-manager's own identity the role of every controller it runs (pyk8s has no
  per-controller service-account credentials yet);
- the simulated nodes' shared identity `system:pyk8s:simulated-nodes` and its roles, at the end of
  this file.

Cluster DNS is a node process here, not a CoreDNS pod: the `system:coredns` ClusterRole (from CoreDNS's
manifests) is bound to the `system:coredns` user as well as CoreDNS's service account, and the
`pyk8s:dns-registration` Role lets that user publish itself as `kube-system/kube-dns`.

As upstream, the `system:node` ClusterRoleBinding has no subjects: kubelets get their rights from the
node authorizer (`node.py`), whose static rules are `node_rules()`. A `system:nodes` subject that
earlier pyk8s versions put there is removed at start (`RETIRED_SUBJECTS`).
"""

from __future__ import annotations

RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_API_VERSION = f"{RBAC_GROUP}/v1"
AUTOUPDATE_ANNOTATION = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGGREGATE_TO_ADMIN = f"{RBAC_GROUP}/aggregate-to-admin"
AGGREGATE_TO_EDIT = f"{RBAC_GROUP}/aggregate-to-edit"
AGGREGATE_TO_VIEW = f"{RBAC_GROUP}/aggregate-to-view"
CONTROLLER_ROLE_PREFIX = "system:controller:"
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
KUBE_SCHEDULER = "system:kube-scheduler"
BOOTSTRAPPERS = "system:bootstrappers"
CLUSTER_INFO_ROLE = "pyk8s:bootstrap-signer-clusterinfo"
KUBE_PROXY = "system:kube-proxy"
COREDNS = "system:coredns"
DNS_REGISTRATION_ROLE = "pyk8s:dns-registration"

READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE
READ_UPDATE = ("get", "list", "watch", "update", "patch")

CORE, APPS, AUTHN, AUTHZ, AUTOSCALING, BATCH = "", "apps", "authentication.k8s.io", "authorization.k8s.io", \
    "autoscaling", "batch"
CERTIFICATES, COORDINATION, DISCOVERY, EXTENSIONS = "certificates.k8s.io", "coordination.k8s.io", \
    "discovery.k8s.io", "extensions"
NETWORKING, NODE, POLICY, STORAGE, EVENTS = "networking.k8s.io", "node.k8s.io", "policy", "storage.k8s.io", \
    "events.k8s.io"


def rule(verbs, groups, resources, names=()) -> dict:
    """A resource rule; like upstream's rule builder, every list is sorted."""
    out = {"verbs": sorted(verbs), "apiGroups": sorted(groups), "resources": sorted(resources)}
    if names:
        out["resourceNames"] = sorted(names)
    return out


def url_rule(verbs, urls) -> dict:
    return {"verbs": sorted(verbs), "nonResourceURLs": sorted(urls)}


def events_rule() -> dict:
    return rule(("create", "update", "patch"), (CORE, EVENTS), ("events",))


def _meta(name: str, namespace: str = "", labels: dict | None = None) -> dict:
    meta: dict = {"name": name, "labels": {**(labels or {}), **BOOTSTRAP_LABELS},
                  "annotations": {AUTOUPDATE_ANNOTATION: "true"}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def cluster_role(name: str, rules: list[dict], labels: dict | None = None, aggregate_from: str = "") -> dict:
    role = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": _meta(name, labels=labels)}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_from: "true"}}]}
    role["rules"] = rules
    return role


def user(name: str) -> dict:
    return {"kind": "User", "apiGroup": RBAC_GROUP, "name": name}


def group(name: str) -> dict:
    return {"kind": "Group", "apiGroup": RBAC_GROUP, "name": name}


def service_account(namespace: str, name: str) -> dict:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


def cluster_role_binding(name: str, subjects: list[dict], role: str = "") -> dict:
    binding = {"apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding", "metadata": _meta(name),
               "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role or name}}
    if subjects:
        binding["subjects"] = subjects
    return binding


def namespaced_role(namespace: str, name: str, rules: list[dict]) -> dict:
    return {"apiVersion": RBAC_API_VERSION, "kind": "Role", "metadata": _meta(name, namespace), "rules": rules}


def role_binding(namespace: str, name: str, subjects: list[dict], role: str = "") -> dict:
    return {"apiVersion": RBAC_API_VERSION, "kind": "RoleBinding", "metadata": _meta(name, namespace),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": role or name}, "subjects": subjects}


# ---- roles ----------------------------------------------------------------------------------

def node_rules() -> list[dict]:
    """Upstream's NodeRules: the system:node role, and what the node authorizer allows kubelets outright."""
    return [
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, (CORE,), ("services",)),
        rule(("create", "get", "list", "watch"), (CORE,), ("nodes",)),
        rule(("update", "patch"), (CORE,), ("nodes/status",)),
        rule(("update", "patch"), (CORE,), ("nodes",)),
        rule(("create", "update", "patch"), (CORE,), ("events",)),
        rule(READ, (CORE,), ("pods",)),
        rule(("create", "delete"), (CORE,), ("pods",)),
        rule(("update", "patch"), (CORE,), ("pods/status",)),
        rule(("create",), (CORE,), ("pods/eviction",)),
        rule(READ, (CORE,), ("secrets", "configmaps")),
        rule(("get",), (CORE,), ("persistentvolumeclaims", "persistentvolumes")),
        rule(("get",), (CORE,), ("endpoints",)),
        rule(("create", "get", "list", "watch"), (CERTIFICATES,), ("certificatesigningrequests",)),
        rule(("get", "create", "update", "patch", "delete"), (COORDINATION,), ("leases",)),
        rule(("get",), (STORAGE,), ("volumeattachments",)),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
        rule(("get", "update", "patch"), (CORE,), ("persistentvolumeclaims/status",)),
        rule(("get", "watch", "list"), (STORAGE,), ("csidrivers",)),
        rule(("get", "create", "update", "patch", "delete"), (STORAGE,), ("csinodes",)),
        rule(READ, (NODE,), ("runtimeclasses",)),
    ]


def _aggregate_to_edit_rules() -> list[dict]:
    return [
        rule(READ, (CORE,), ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                             "services/proxy")),
        rule(("impersonate",), (CORE,), ("serviceaccounts",)),
        rule(WRITE, (CORE,), ("pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward")),
        rule(("create",), (CORE,), ("pods/eviction",)),
        rule(WRITE, (CORE,), ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                              "services/proxy", "persistentvolumeclaims", "configmaps", "secrets")),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
        rule(WRITE, (APPS,), ("statefulsets", "statefulsets/scale", "daemonsets", "deployments", "deployments/scale",
                              "deployments/rollback", "replicasets", "replicasets/scale")),
        rule(WRITE, (AUTOSCALING,), ("horizontalpodautoscalers",)),
        rule(WRITE, (BATCH,), ("jobs", "cronjobs")),
        rule(WRITE, (EXTENSIONS,), ("daemonsets", "deployments", "deployments/scale", "deployments/rollback",
                                    "ingresses", "replicasets", "replicasets/scale", "replicationcontrollers/scale",
                                    "networkpolicies")),
        rule(WRITE, (POLICY,), ("poddisruptionbudgets",)),
        rule(WRITE, (NETWORKING,), ("networkpolicies", "ingresses")),
    ]


def _aggregate_to_view_rules() -> list[dict]:
    return [
        rule(READ, (CORE,), ("pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                             "services", "services/status", "endpoints", "persistentvolumeclaims",
                             "persistentvolumeclaims/status", "configmaps")),
        rule(READ, (CORE,), ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                             "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
                             "pods/log")),
        # Reading namespaces at namespace scope means reading *this* namespace.
        rule(READ, (CORE,), ("namespaces",)),
        rule(READ, (DISCOVERY,), ("endpointslices",)),
        rule(READ, (APPS,), ("controllerrevisions", "statefulsets", "statefulsets/status", "statefulsets/scale",
                             "daemonsets", "daemonsets/status", "deployments", "deployments/status",
                             "deployments/scale", "replicasets", "replicasets/status", "replicasets/scale")),
        rule(READ, (AUTOSCALING,), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
        rule(READ, (BATCH,), ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        rule(READ, (EXTENSIONS,), ("daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                                   "deployments/status", "ingresses", "ingresses/status", "replicasets",
                                   "replicasets/scale", "replicasets/status", "replicationcontrollers/scale",
                                   "networkpolicies")),
        rule(READ, (POLICY,), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
        rule(READ, (NETWORKING,), ("networkpolicies", "ingresses", "ingresses/status")),
    ]


def _kube_scheduler_rules() -> list[dict]:
    return [
        events_rule(),
        rule(("create",), (COORDINATION,), ("leases",)),
        rule(("get", "update"), (COORDINATION,), ("leases",), ("kube-scheduler",)),
        rule(READ, (CORE,), ("nodes",)),
        rule(("get", "list", "watch", "delete"), (CORE,), ("pods",)),
        rule(("create",), (CORE,), ("pods/binding", "bindings")),
        rule(("patch", "update"), (CORE,), ("pods/status",)),
        rule(READ, (CORE,), ("services", "replicationcontrollers")),
        rule(READ, (APPS, EXTENSIONS), ("replicasets",)),
        rule(READ, (APPS,), ("statefulsets",)),
        rule(READ, (POLICY,), ("poddisruptionbudgets",)),
        rule(READ, (CORE,), ("persistentvolumeclaims", "persistentvolumes")),
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
        rule(READ, (STORAGE,), ("csinodes",)),
        rule(READ, (CORE,), ("namespaces",)),
        rule(READ, (STORAGE,), ("csidrivers",)),
        rule(READ, (STORAGE,), ("csistoragecapacities",)),
    ]


def _kube_controller_manager_rules() -> list[dict]:
    return [
        events_rule(),
        rule(("create",), (COORDINATION,), ("leases",)),
        rule(("get", "update"), (COORDINATION,), ("leases",), ("kube-controller-manager",)),
        rule(("create",), (CORE,), ("secrets", "serviceaccounts")),
        rule(("delete",), (CORE,), ("secrets",)),
        rule(("get",), (CORE,), ("namespaces", "secrets", "serviceaccounts", "configmaps")),
        rule(("update",), (CORE,), ("secrets", "serviceaccounts")),
        rule(("create",), (AUTHN,), ("tokenreviews",)),
        rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
        rule(("list", "watch"), ("*",), ("*",)),
        rule(("create",), (CORE,), ("serviceaccounts/token",)),
    ]


def _signer_approver(name: str, signer: str) -> dict:
    return cluster_role(f"system:certificates.k8s.io:{name}", [rule(("approve",), (CERTIFICATES,), ("signers",),
                                                                     (signer,))])


def cluster_roles() -> list[dict]:
    return [
        cluster_role("cluster-admin", [rule(("*",), ("*",), ("*",)), url_rule(("*",), ("*",))]),
        cluster_role("system:discovery", [url_rule(("get",), (
            "/livez", "/readyz", "/healthz", "/version", "/version/", "/openapi", "/openapi/*", "/api", "/api/*",
            "/apis", "/apis/*"))]),
        cluster_role("system:monitoring", [url_rule(("get",), (
            "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz", "/livez/*", "/readyz/*", "/healthz/*"))]),
        cluster_role("system:basic-user", [
            rule(("create",), (AUTHZ,), ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule(("create",), (AUTHN,), ("selfsubjectreviews",)),
        ]),
        cluster_role("system:public-info-viewer", [url_rule(("get",), (
            "/livez", "/readyz", "/healthz", "/version", "/version/"))]),
        # admin, edit and view are aggregated: the clusterrole-aggregation controller fills their rules.
        cluster_role("admin", [], aggregate_from=AGGREGATE_TO_ADMIN),
        cluster_role("edit", [], labels={AGGREGATE_TO_ADMIN: "true"}, aggregate_from=AGGREGATE_TO_EDIT),
        cluster_role("view", [], labels={AGGREGATE_TO_EDIT: "true"}, aggregate_from=AGGREGATE_TO_VIEW),
        cluster_role("system:aggregate-to-admin", [
            rule(("create",), (AUTHZ,), ("localsubjectaccessreviews",)),
            rule(READ_WRITE, (RBAC_GROUP,), ("roles", "rolebindings")),
        ], labels={AGGREGATE_TO_ADMIN: "true"}),
        cluster_role("system:aggregate-to-edit", _aggregate_to_edit_rules(), labels={AGGREGATE_TO_EDIT: "true"}),
        cluster_role("system:aggregate-to-view", _aggregate_to_view_rules(), labels={AGGREGATE_TO_VIEW: "true"}),
        cluster_role("system:heapster", [
            rule(READ, (CORE,), ("events", "pods", "nodes", "namespaces")),
            rule(READ, (EXTENSIONS,), ("deployments",)),
        ]),
        cluster_role("system:node", node_rules()),
        cluster_role("system:node-problem-detector", [
            rule(("get",), (CORE,), ("nodes",)),
            rule(("patch",), (CORE,), ("nodes/status",)),
            events_rule(),
        ]),
        cluster_role("system:kubelet-api-admin", [
            rule(READ, (CORE,), ("nodes",)),
            rule(("proxy",), (CORE,), ("nodes",)),
            rule(("*",), (CORE,), ("nodes/proxy", "nodes/metrics", "nodes/spec", "nodes/stats", "nodes/log")),
        ]),
        cluster_role("system:node-bootstrapper", [
            rule(("create", "get", "list", "watch"), (CERTIFICATES,), ("certificatesigningrequests",)),
        ]),
        cluster_role("system:auth-delegator", [
            rule(("create",), (AUTHN,), ("tokenreviews",)),
            rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
        ]),
        cluster_role("system:kube-aggregator", [rule(READ, (CORE,), ("services", "endpoints"))]),
        cluster_role(KUBE_CONTROLLER_MANAGER, _kube_controller_manager_rules()),
        cluster_role("system:kube-dns", [rule(("list", "watch"), (CORE,), ("endpoints", "services"))]),
        cluster_role("system:persistent-volume-provisioner", [
            rule(("get", "list", "watch", "create", "delete"), (CORE,), ("persistentvolumes",)),
            rule(("get", "list", "watch", "update"), (CORE,), ("persistentvolumeclaims",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(("watch",), (CORE,), ("events",)),
            events_rule(),
        ]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient", [
            rule(("create",), (CERTIFICATES,), ("certificatesigningrequests/nodeclient",)),
        ]),
        cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", [
            rule(("create",), (CERTIFICATES,), ("certificatesigningrequests/selfnodeclient",)),
        ]),
        cluster_role("system:volume-scheduler", [
            rule(READ_UPDATE, (CORE,), ("persistentvolumes",)),
            rule(READ, (STORAGE,), ("storageclasses",)),
            rule(READ_UPDATE, (CORE,), ("persistentvolumeclaims",)),
        ]),
        _signer_approver("legacy-unknown-approver", "kubernetes.io/legacy-unknown"),
        _signer_approver("kubelet-serving-approver", "kubernetes.io/kubelet-serving"),
        _signer_approver("kube-apiserver-client-approver", "kubernetes.io/kube-apiserver-client"),
        _signer_approver("kube-apiserver-client-kubelet-approver", "kubernetes.io/kube-apiserver-client-kubelet"),
        cluster_role("system:service-account-issuer-discovery", [url_rule(("get",), (
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
            "/openid/v1/jwks/"))]),
        cluster_role("system:node-proxier", [
            rule(("list", "watch"), (CORE,), ("services", "endpoints")),
            rule(READ, (CORE,), ("nodes",)),
            events_rule(),
            rule(("list", "watch"), (DISCOVERY,), ("endpointslices",)),
        ]),
        cluster_role(KUBE_SCHEDULER, _kube_scheduler_rules()),
        # Not upstream's bootstrap policy but the ClusterRole CoreDNS's own manifests install (k3s ships it too):
        # what cluster DNS reads.
        cluster_role(COREDNS, [
            rule(("list", "watch"), (CORE,), ("endpoints", "services", "pods", "namespaces")),
            rule(("list", "watch"), (DISCOVERY,), ("endpointslices",)),
        ]),
    ]


def cluster_role_bindings() -> list[dict]:
    return [
        cluster_role_binding("cluster-admin", [group("system:masters")]),
        cluster_role_binding("system:monitoring", [group("system:monitoring")]),
        cluster_role_binding("system:discovery", [group("system:authenticated")]),
        cluster_role_binding("system:basic-user", [group("system:authenticated")]),
        cluster_role_binding("system:public-info-viewer", [group("system:authenticated"),
                                                           group("system:unauthenticated")]),
        cluster_role_binding("system:node-proxier", [user(KUBE_PROXY)]),
        cluster_role_binding(KUBE_CONTROLLER_MANAGER, [user(KUBE_CONTROLLER_MANAGER)]),
        cluster_role_binding("system:kube-dns", [service_account("kube-system", "kube-dns")]),
        # pyk8s's DNS runs as a node process with the system:coredns identity (CoreDNS's service account too).
        cluster_role_binding(COREDNS, [user(COREDNS), service_account("kube-system", "coredns")]),
        cluster_role_binding(KUBE_SCHEDULER, [user(KUBE_SCHEDULER)]),
        cluster_role_binding("system:volume-scheduler", [user(KUBE_SCHEDULER)]),
        # Without subjects, as upstream: the node authorizer grants kubelets their rights.
        cluster_role_binding("system:node", []),
        # The apiserver's own identity towards kubelets (pods/log, exec, nodes/proxy...), as k3s and kubeadm bind it.
        cluster_role_binding("pyk8s:kube-apiserver-kubelet-client", [user("kube-apiserver-kubelet-client")],
                             role="system:kubelet-api-admin"),
        cluster_role_binding("system:service-account-issuer-discovery", [group("system:serviceaccounts")]),
        # pyk8s's join (what kubeadm binds for its bootstrap tokens, for every bootstrap token here): a bootstrap
        # token may request a kubelet client certificate and have it approved; a node may renew its own.
        cluster_role_binding("pyk8s:kubelet-bootstrap", [group(BOOTSTRAPPERS)], role="system:node-bootstrapper"),
        cluster_role_binding("pyk8s:node-autoapprove-bootstrap", [group(BOOTSTRAPPERS)],
                             role="system:certificates.k8s.io:certificatesigningrequests:nodeclient"),
        cluster_role_binding("pyk8s:node-autoapprove-certificate-rotation", [group("system:nodes")],
                             role="system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"),
    ]


# ---- controller roles (controller_policy.go) for the controllers pyk8s runs -------------------

def controller_roles() -> dict[str, list[dict]]:
    """Controller name (its service account in kube-system) -> the rules of system:controller:<name>."""
    return {
        "certificate-controller": [
            rule(("get", "list", "watch", "delete"), (CERTIFICATES,), ("certificatesigningrequests",)),
            rule(("update",), (CERTIFICATES,), ("certificatesigningrequests/status",
                                                "certificatesigningrequests/approval")),
            rule(("approve",), (CERTIFICATES,), ("signers",), ("kubernetes.io/kube-apiserver-client-kubelet",)),
            rule(("sign",), (CERTIFICATES,), ("signers",), ("kubernetes.io/legacy-unknown",
                                                            "kubernetes.io/kube-apiserver-client",
                                                            "kubernetes.io/kube-apiserver-client-kubelet",
                                                            "kubernetes.io/kubelet-serving")),
            rule(("create",), (AUTHZ,), ("subjectaccessreviews",)),
            events_rule(),
        ],
        "clusterrole-aggregation-controller": [
            rule(("escalate", "get", "list", "patch", "update", "watch"), (RBAC_GROUP,), ("clusterroles",)),
        ],
        "endpoint-controller": [
            rule(("get", "list", "watch"), (CORE,), ("services", "pods")),
            rule(("get", "list", "create", "update", "delete"), (CORE,), ("endpoints",)),
            rule(("create",), (CORE,), ("endpoints/restricted",)),
            events_rule(),
        ],
        "endpointslice-controller": [
            rule(("get", "list", "watch"), (CORE,), ("services", "pods", "nodes")),
            # Slices are owned by their Service with blockOwnerDeletion, which needs update on its finalizers.
            rule(("update",), (CORE,), ("services/finalizers",)),
            rule(("get", "list", "create", "update", "delete"), (DISCOVERY,), ("endpointslices",)),
            events_rule(),
        ],
        "endpointslicemirroring-controller": [
            rule(("get", "list", "watch"), (CORE,), ("services", "endpoints")),
            rule(("update",), (CORE,), ("services/finalizers",)),
            # Mirrored slices are owned by their Endpoints with blockOwnerDeletion.
            rule(("update",), (CORE,), ("endpoints/finalizers",)),
            rule(("get", "list", "create", "update", "delete"), (DISCOVERY,), ("endpointslices",)),
            events_rule(),
        ],
        "generic-garbage-collector": [
            rule(("get", "list", "watch", "patch", "update", "delete"), ("*",), ("*",)),
            events_rule(),
        ],
        "namespace-controller": [
            rule(("get", "list", "watch", "delete"), (CORE,), ("namespaces",)),
            rule(("update",), (CORE,), ("namespaces/finalize", "namespaces/status")),
            rule(("get", "list", "delete", "deletecollection"), ("*",), ("*",)),
        ],
        "node-controller": [
            rule(("get", "list", "update", "delete", "patch"), (CORE,), ("nodes",)),
            rule(("patch", "update"), (CORE,), ("nodes/status",)),
            rule(("patch", "update"), (CORE,), ("pods/status",)),
            rule(("list", "delete"), (CORE,), ("pods",)),
            events_rule(),
        ],
        "pod-garbage-collector": [
            rule(("list", "watch", "delete"), (CORE,), ("pods",)),
            rule(("get", "list"), (CORE,), ("nodes",)),
            rule(("patch",), (CORE,), ("pods/status",)),
        ],
        "root-ca-cert-publisher": [
            rule(("create", "update"), (CORE,), ("configmaps",)),
            events_rule(),
        ],
        "service-account-controller": [
            rule(("create",), (CORE,), ("serviceaccounts",)),
            events_rule(),
        ],
        "replicaset-controller": [
            rule(("get", "list", "watch", "update"), (APPS, EXTENSIONS), ("replicasets",)),
            rule(("update",), (APPS, EXTENSIONS), ("replicasets/status",)),
            rule(("update",), (APPS, EXTENSIONS), ("replicasets/finalizers",)),
            rule(("list", "watch", "patch", "create", "delete"), (CORE,), ("pods",)),
            events_rule(),
        ],
        "replication-controller": [
            rule(("get", "list", "watch", "update"), (CORE,), ("replicationcontrollers",)),
            rule(("update",), (CORE,), ("replicationcontrollers/status",)),
            rule(("update",), (CORE,), ("replicationcontrollers/finalizers",)),
            rule(("list", "watch", "patch", "create", "delete"), (CORE,), ("pods",)),
            events_rule(),
        ],
        "deployment-controller": [
            rule(("get", "list", "watch", "update"), (APPS, EXTENSIONS), ("deployments",)),
            rule(("update",), (APPS, EXTENSIONS), ("deployments/status",)),
            rule(("update",), (APPS, EXTENSIONS), ("deployments/finalizers",)),
            rule(("get", "list", "watch", "create", "update", "patch", "delete"), (APPS, EXTENSIONS),
                 ("replicasets",)),
            rule(("get", "list", "watch", "update"), (CORE,), ("pods",)),
            events_rule(),
        ],
        "daemon-set-controller": [
            rule(("get", "list", "watch"), (APPS, EXTENSIONS), ("daemonsets",)),
            rule(("update",), (APPS, EXTENSIONS), ("daemonsets/status",)),
            rule(("update",), (APPS, EXTENSIONS), ("daemonsets/finalizers",)),
            rule(("list", "watch"), (CORE,), ("nodes",)),
            rule(("list", "watch", "create", "delete", "patch"), (CORE,), ("pods",)),
            rule(("create",), (CORE,), ("pods/binding",)),
            rule(("get", "list", "watch", "create", "delete", "update", "patch"), (APPS,), ("controllerrevisions",)),
            events_rule(),
        ],
        "statefulset-controller": [
            rule(("list", "watch"), (CORE,), ("pods",)),
            rule(("get", "list", "watch"), (APPS,), ("statefulsets",)),
            rule(("update",), (APPS,), ("statefulsets/status",)),
            rule(("update",), (APPS,), ("statefulsets/finalizers",)),
            rule(("get", "create", "delete", "update", "patch"), (CORE,), ("pods",)),
            rule(("get", "list", "watch", "create", "delete", "update", "patch"), (APPS,), ("controllerrevisions",)),
            rule(("get", "create"), (CORE,), ("persistentvolumeclaims",)),
            rule(("update", "delete"), (CORE,), ("persistentvolumeclaims",)),
            events_rule(),
        ],
        "job-controller": [
            rule(("get", "list", "watch", "update", "patch"), (BATCH,), ("jobs",)),
            rule(("update",), (BATCH,), ("jobs/status",)),
            rule(("update",), (BATCH,), ("jobs/finalizers",)),
            rule(("list", "watch", "create", "delete", "patch"), (CORE,), ("pods",)),
            events_rule(),
        ],
        "cronjob-controller": [
            rule(("get", "list", "watch", "update"), (BATCH,), ("cronjobs",)),
            rule(("get", "list", "watch", "create", "update", "delete", "patch"), (BATCH,), ("jobs",)),
            rule(("update",), (BATCH,), ("cronjobs/status",)),
            rule(("update",), (BATCH,), ("cronjobs/finalizers",)),
            rule(("list", "delete"), (CORE,), ("pods",)),
            events_rule(),
        ],
        "ttl-after-finished-controller": [
            rule(("get", "list", "watch", "delete"), (BATCH,), ("jobs",)),
            events_rule(),
        ],
        "disruption-controller": [
            rule(("get", "list", "watch"), (APPS, EXTENSIONS), ("deployments", "replicasets")),
            rule(("get", "list", "watch"), (CORE,), ("replicationcontrollers",)),
            rule(("get", "list", "watch"), (POLICY,), ("poddisruptionbudgets",)),
            rule(("get", "list", "watch"), (APPS,), ("statefulsets",)),
            rule(("update",), (POLICY,), ("poddisruptionbudgets/status",)),
            rule(("get",), ("*",), ("*/scale",)),
            rule(("patch", "update"), (CORE,), ("pods/status",)),
            events_rule(),
        ],
        "resourcequota-controller": [
            rule(("list", "watch"), ("*",), ("*",)),
            rule(("update",), (CORE,), ("resourcequotas/status",)),
            events_rule(),
        ],
    }


def controller_cluster_roles() -> list[dict]:
    return [cluster_role(CONTROLLER_ROLE_PREFIX + name, rules) for name, rules in controller_roles().items()]


def controller_cluster_role_bindings() -> list[dict]:
    """Upstream's bindings to the controllers' service accounts, plus (pyk8s) to the controller-manager's
    own identity, which runs every controller with its one client certificate."""
    out = []
    for name in controller_roles():
        role = CONTROLLER_ROLE_PREFIX + name
        out.append(cluster_role_binding(role, [service_account("kube-system", name)]))
        out.append(cluster_role_binding(f"pyk8s:kube-controller-manager:{name}", [user(KUBE_CONTROLLER_MANAGER)],
                                        role=role))
    return out


# ---- namespaced roles (namespace_policy.go) ------------------------------------------------

def namespaced_roles() -> list[dict]:
    return [
        namespaced_role("kube-system", "extension-apiserver-authentication-reader", [
            rule(READ, (CORE,), ("configmaps",), ("extension-apiserver-authentication",)),
        ]),
        namespaced_role("kube-system", "system::leader-locking-kube-controller-manager", [
            rule(("watch",), (CORE,), ("configmaps",)),
            rule(("get", "update"), (CORE,), ("configmaps",), ("kube-controller-manager",)),
        ]),
        namespaced_role("kube-system", "system::leader-locking-kube-scheduler", [
            rule(("watch",), (CORE,), ("configmaps",)),
            rule(("get", "update"), (CORE,), ("configmaps",), ("kube-scheduler",)),
        ]),
        namespaced_role("kube-system", "system:controller:bootstrap-signer", [rule(READ, (CORE,), ("secrets",))]),
        namespaced_role("kube-system", "system:controller:cloud-provider", [
            rule(("create", "get", "list", "watch"), (CORE,), ("configmaps",)),
        ]),
        namespaced_role("kube-system", "system:controller:token-cleaner", [
            rule(("delete", "get", "list", "watch"), (CORE,), ("secrets",)),
            events_rule(),
        ]),
        # pyk8s's join (kubeadm's bootstrap-signer-clusterinfo): anyone may read the cluster's CA and address;
        # a joining agent trusts them only once they match the CA hash in its join token.
        namespaced_role("kube-public", CLUSTER_INFO_ROLE, [rule(("get",), (CORE,), ("configmaps",),
                                                                ("cluster-info",))]),
        # pyk8s's DNS publishes itself as the kube-dns Service and its endpoints (it is not a pod, so no
        # controller does that for it).
        namespaced_role("kube-system", DNS_REGISTRATION_ROLE, [
            rule(("get", "create", "update", "patch"), (CORE,), ("services", "endpoints")),
            rule(("get", "create", "update", "patch", "delete"), (DISCOVERY,), ("endpointslices",)),
        ]),
        namespaced_role("kube-public", "system:controller:bootstrap-signer", [
            rule(READ, (CORE,), ("configmaps",)),
            rule(("update",), (CORE,), ("configmaps",), ("cluster-info",)),
            events_rule(),
        ]),
    ]


def namespaced_role_bindings() -> list[dict]:
    return [
        role_binding("kube-system", "system::extension-apiserver-authentication-reader",
                     [user(KUBE_CONTROLLER_MANAGER), user(KUBE_SCHEDULER)],
                     role="extension-apiserver-authentication-reader"),
        role_binding("kube-system", "system::leader-locking-kube-controller-manager",
                     [user(KUBE_CONTROLLER_MANAGER), service_account("kube-system", "kube-controller-manager")]),
        role_binding("kube-system", "system::leader-locking-kube-scheduler",
                     [user(KUBE_SCHEDULER), service_account("kube-system", "kube-scheduler")]),
        role_binding("kube-system", "system:controller:bootstrap-signer",
                     [service_account("kube-system", "bootstrap-signer")]),
        role_binding("kube-system", "system:controller:cloud-provider",
                     [service_account("kube-system", "cloud-provider")]),
        role_binding("kube-system", "system:controller:token-cleaner",
                     [service_account("kube-system", "token-cleaner")]),
        role_binding("kube-system", DNS_REGISTRATION_ROLE, [user(COREDNS)]),
        role_binding("kube-public", "system:controller:bootstrap-signer",
                     [service_account("kube-system", "bootstrap-signer")]),
        role_binding("kube-public", CLUSTER_INFO_ROLE, [user("system:anonymous")]),
    ]


# ---- component identities pyk8s adds ---------------------------------------------------------

SIMULATED_NODES_USER = "system:pyk8s:simulated-nodes"
SIMULATED_NODES_ROLE = "system:pyk8s:simulated-nodes"
SIMULATED_NODES_CSR_ROLE = "system:pyk8s:certificatesigningrequests:simulatednodeclient"
SIMULATED_NODES_APPROVER_ROLE = "system:pyk8s:simulated-nodes-client-approver"
# Each agent keeps routes to the other nodes' pod CIDRs (host-gw, pyk8s/kubelet/routes.py), so it reads every
# Node, which the 1.32 node authorizer (AuthorizeNodeWithSelectors) no longer grants a kubelet by itself.
NODE_NETWORK_ROLE = "system:pyk8s:node-network"
NODE_LEASE_NAMESPACE = "kube-node-lease"


def component_cluster_roles() -> list[dict]:
    return [
        cluster_role(NODE_NETWORK_ROLE, [rule(("get", "list", "watch"), (CORE,), ("nodes",))]),
        # The simulated-node agent runs many nodes with one credential, which the node authorizer (one node
        # per identity) cannot serve: exactly what it does for all of them, and nothing about secrets,
        # config maps or volumes (its pods run nothing).
        cluster_role(SIMULATED_NODES_ROLE, [
            rule(("create", "get", "list", "watch", "update", "patch"), (CORE,), ("nodes",)),
            rule(("update", "patch"), (CORE,), ("nodes/status",)),
            rule(("get", "list", "watch", "delete"), (CORE,), ("pods",)),
            rule(("update", "patch"), (CORE,), ("pods/status",)),
            events_rule(),
        ]),
        # A joining simulated agent's bootstrap token may have its certificate request auto-approved
        # (certificatesigningrequest-approving-controller, like nodeclient for kubelets) ...
        cluster_role(SIMULATED_NODES_CSR_ROLE, [
            rule(("create",), (CERTIFICATES,), ("certificatesigningrequests/simulatednodeclient",)),
        ]),
        # ... which the controller-manager approves for the kube-apiserver-client signer.
        cluster_role(SIMULATED_NODES_APPROVER_ROLE, [
            rule(("approve",), (CERTIFICATES,), ("signers",), ("kubernetes.io/kube-apiserver-client",)),
        ]),
    ]


def component_cluster_role_bindings() -> list[dict]:
    return [
        cluster_role_binding(NODE_NETWORK_ROLE, [group("system:nodes")]),
        cluster_role_binding(SIMULATED_NODES_ROLE, [user(SIMULATED_NODES_USER)]),
        cluster_role_binding("pyk8s:simulated-nodes-autoapprove-bootstrap", [group(BOOTSTRAPPERS)],
                             role=SIMULATED_NODES_CSR_ROLE),
        cluster_role_binding(SIMULATED_NODES_APPROVER_ROLE, [user(KUBE_CONTROLLER_MANAGER)]),
    ]


def component_namespaced_roles() -> list[dict]:
    return [namespaced_role(NODE_LEASE_NAMESPACE, SIMULATED_NODES_ROLE, [
        rule(("get", "create", "update", "patch", "delete"), (COORDINATION,), ("leases",)),
    ])]


def component_namespaced_role_bindings() -> list[dict]:
    return [role_binding(NODE_LEASE_NAMESPACE, SIMULATED_NODES_ROLE, [user(SIMULATED_NODES_USER)])]


# Subjects earlier pyk8s versions bound and the policy no longer grants: removed at start (reconcile.py).
RETIRED_SUBJECTS: dict[str, list[dict]] = {
    "system:node": [group("system:nodes")],  # before the node authorizer, every node had system:node
}


def all_cluster_roles() -> list[dict]:
    return cluster_roles() + controller_cluster_roles() + component_cluster_roles()


def all_cluster_role_bindings() -> list[dict]:
    return cluster_role_bindings() + controller_cluster_role_bindings() + component_cluster_role_bindings()


def all_namespaced_roles() -> list[dict]:
    return namespaced_roles() + component_namespaced_roles()


def all_namespaced_role_bindings() -> list[dict]:
    return namespaced_role_bindings() + component_namespaced_role_bindings()
