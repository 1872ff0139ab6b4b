"""Admission plugins through the real kubectl (and the Python client for concurrency): what a user
sees is upstream's text, the mutations are on the stored objects, and a refusal stores nothing."""

from __future__ import annotations

import base64
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BARE, Cluster, eventually


def _apply(cluster: Cluster, obj: dict, namespace: str | None = None, check: bool = True, *extra: str):
    args = ["apply", "-f", "-", *extra]
    if namespace:
        args += ["-n", namespace]
    return cluster.kubectl(*args, input=json.dumps(obj), check=check)


def _pod(name: str, **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", **container}]}}


def _get(cluster: Cluster, resource: str, name: str, namespace: str | None = None) -> dict:
    return cluster.kubectl_json("get", resource, name, *(["-n", namespace] if namespace else []))


def _missing(cluster: Cluster, resource: str, name: str, namespace: str) -> bool:
    result = cluster.kubectl("get", resource, name, "-n", namespace, check=False)
    return result.returncode != 0 and "NotFound" in result.stderr


def _label(cluster: Cluster, namespace: str, *labels: str) -> None:
    cluster.kubectl("label", "namespace", namespace, "--overwrite", *labels)


# ---- NamespaceLifecycle ----------------------------------------------------------------------


def test_system_namespaces_cannot_be_deleted(cluster: Cluster):
    result = cluster.kubectl("delete", "namespace", "kube-public", "--wait=false", check=False)
    assert result.returncode != 0
    assert 'namespaces "kube-public" is forbidden: this namespace may not be deleted' in result.stderr
    assert _get(cluster, "namespace", "kube-public")["status"]["phase"] == "Active"


def test_content_in_a_missing_namespace_is_not_found(cluster: Cluster):
    result = _apply(cluster, _pod("p"), "no-such-namespace", False)
    assert result.returncode != 0 and 'namespaces "no-such-namespace" not found' in result.stderr


# ---- LimitRanger -----------------------------------------------------------------------------


def test_limit_range_defaults_are_on_the_stored_pod(cluster: Cluster, namespace: str):
    _apply(cluster, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "defaults"},
                     "spec": {"limits": [{"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                                          "defaultRequest": {"cpu": "200m"}}]}}, namespace)
    _apply(cluster, _pod("defaulted"), namespace)
    pod = _get(cluster, "pod", "defaulted", namespace)
    resources = pod["spec"]["containers"][0]["resources"]
    # memory has no defaultRequest: the request defaults to the default limit (LimitRange defaulting).
    assert resources == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "200m", "memory": "256Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c")
    assert pod["status"]["qosClass"] == "Burstable"


def test_limit_range_minimum_refuses_and_stores_nothing(cluster: Cluster, namespace: str):
    _apply(cluster, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "floor"},
                     "spec": {"limits": [{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}}]}},
           namespace)
    result = _apply(cluster, _pod("small", resources={"requests": {"cpu": "50m"}, "limits": {"cpu": "200m"}}),
                    namespace, False)
    assert result.returncode != 0
    assert ('pods "small" is forbidden: minimum cpu usage per Container is 100m, but request is 50m'
            in result.stderr)
    assert _missing(cluster, "pod", "small", namespace)


# ---- ResourceQuota ---------------------------------------------------------------------------


def _quota(cluster: Cluster, namespace: str, name: str, hard: dict, **spec) -> dict:
    _apply(cluster, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name},
                     "spec": {"hard": hard, **spec}}, namespace)
    # The controller fills status.hard and status.used; until then the quota is not enforced.
    return eventually(lambda: (q := _get(cluster, "resourcequota", name, namespace)).get("status", {}).get("used")
                      is not None and set(q["status"]["used"]) == set(hard) and q, timeout=60)


def test_quota_exhaustion_and_release(cluster: Cluster, namespace: str):
    _quota(cluster, namespace, "q", {"pods": "2"})
    _apply(cluster, _pod("one"), namespace)
    _apply(cluster, _pod("two"), namespace)
    result = _apply(cluster, _pod("three"), namespace, False)
    assert result.returncode != 0
    assert ('pods "three" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
            in result.stderr)
    assert _missing(cluster, "pod", "three", namespace)
    assert _get(cluster, "resourcequota", "q", namespace)["status"]["used"] == {"pods": "2"}

    cluster.kubectl("delete", "pod", "one", "-n", namespace)
    # The controller recounts when a pod goes away and gives its usage back.
    eventually(lambda: _get(cluster, "resourcequota", "q", namespace)["status"]["used"] == {"pods": "1"}, timeout=60)
    _apply(cluster, _pod("three"), namespace)
    assert _get(cluster, "resourcequota", "q", namespace)["status"]["used"] == {"pods": "2"}


def test_quota_on_cpu_requires_container_limits(cluster: Cluster, namespace: str):
    _quota(cluster, namespace, "compute", {"limits.cpu": "1", "requests.memory": "1Gi"})
    result = _apply(cluster, _pod("bare"), namespace, False)
    assert result.returncode != 0
    assert ('pods "bare" is forbidden: failed quota: compute: must specify limits.cpu for: c; '
            "requests.memory for: c") in result.stderr
    _apply(cluster, _pod("sized", resources={"limits": {"cpu": "600m"}, "requests": {"memory": "512Mi"}}), namespace)
    used = _get(cluster, "resourcequota", "compute", namespace)["status"]["used"]
    assert used == {"limits.cpu": "600m", "requests.memory": "512Mi"}
    result = _apply(cluster, _pod("big", resources={"limits": {"cpu": "600m"}, "requests": {"memory": "1Mi"}}),
                    namespace, False)
    assert ("exceeded quota: compute, requested: limits.cpu=600m, used: limits.cpu=600m, limited: limits.cpu=1"
            in result.stderr)


def _wait_for_root_ca(cluster: Cluster, namespace: str) -> None:
    """Every namespace gets the kube-root-ca.crt ConfigMap, which quotas count like any other."""
    eventually(lambda: cluster.kubectl("get", "configmap", "kube-root-ca.crt", "-n", namespace,
                                       check=False).returncode == 0, timeout=60)


def test_quota_counts_other_kinds_and_ignores_dry_run(cluster: Cluster, namespace: str):
    _wait_for_root_ca(cluster, namespace)
    _quota(cluster, namespace, "counts", {"configmaps": "2", "count/secrets": "5"})
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}, "data": {"a": "b"}}
    # A server-side dry run is checked but charges nothing.
    _apply(cluster, config, namespace, True, "--dry-run=server")
    used = _get(cluster, "resourcequota", "counts", namespace)["status"]["used"]
    assert used["configmaps"] == "1"
    _apply(cluster, config, namespace)
    result = _apply(cluster, {**config, "metadata": {"name": "c2"}}, namespace, False)
    assert "exceeded quota: counts, requested: configmaps=1, used: configmaps=2, limited: configmaps=2" in (
        result.stderr)
    dry = _apply(cluster, {**config, "metadata": {"name": "c2"}}, namespace, False, "--dry-run=server")
    assert dry.returncode != 0 and "exceeded quota: counts" in dry.stderr


def test_concurrent_creates_do_not_overshoot(cluster: Cluster, namespace: str, api_client):
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    _wait_for_root_ca(cluster, namespace)
    _quota(cluster, namespace, "burst", {"count/configmaps": "4"})  # kube-root-ca.crt and three more
    core = client.CoreV1Api(api_client)

    def create(i: int) -> int:
        try:
            core.create_namespaced_config_map(namespace, {"metadata": {"name": f"cm-{i}"}})
            return 201
        except ApiException as exc:
            assert "exceeded quota: burst" in exc.body
            return exc.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(create, range(10)))
    assert sorted(codes) == [201] * 3 + [403] * 7
    assert len([c for c in core.list_namespaced_config_map(namespace).items
                if c.metadata.name.startswith("cm-")]) == 3
    assert _get(cluster, "resourcequota", "burst", namespace)["status"]["used"] == {"count/configmaps": "4"}


def test_quota_scopes_select_pods(cluster: Cluster, namespace: str):
    _quota(cluster, namespace, "best-effort", {"pods": "1"}, scopes=["BestEffort"])
    _apply(cluster, _pod("be-1"), namespace)
    sized = _pod("sized", resources={"requests": {"cpu": "10m"}})
    _apply(cluster, sized, namespace)  # not BestEffort: outside the quota's scope
    result = _apply(cluster, _pod("be-2"), namespace, False)
    assert "exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1" in result.stderr


# ---- Priority --------------------------------------------------------------------------------


def test_priority_resolution(cluster: Cluster, namespace: str):
    names = [pc["metadata"]["name"] for pc in cluster.kubectl_json("get", "priorityclasses")["items"]]
    assert {"system-node-critical", "system-cluster-critical"} <= set(names)
    pc_name = f"high-{namespace}"[:63]
    _apply(cluster, {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": pc_name},
                     "value": 1000, "preemptionPolicy": "Never"})
    try:
        pod = _pod("important")
        pod["spec"]["priorityClassName"] = pc_name
        _apply(cluster, pod, namespace)
        spec = _get(cluster, "pod", "important", namespace)["spec"]
        assert (spec["priority"], spec["preemptionPolicy"]) == (1000, "Never")

        _apply(cluster, _pod("ordinary"), namespace)
        spec = _get(cluster, "pod", "ordinary", namespace)["spec"]
        assert (spec["priority"], spec["preemptionPolicy"]) == (0, "PreemptLowerPriority")

        critical = _pod("critical")
        critical["spec"]["priorityClassName"] = "system-node-critical"
        _apply(cluster, critical, namespace)
        assert _get(cluster, "pod", "critical", namespace)["spec"]["priority"] == 2000001000

        unknown = _pod("lost")
        unknown["spec"]["priorityClassName"] = "nope"
        result = _apply(cluster, unknown, namespace, False)
        assert 'pods "lost" is forbidden: no PriorityClass with name nope was found' in result.stderr
        assert _missing(cluster, "pod", "lost", namespace)
    finally:
        cluster.kubectl("delete", "priorityclass", pc_name, check=False)


# ---- ServiceAccount, DefaultTolerationSeconds ------------------------------------------------


def test_pods_get_service_account_credentials_and_default_tolerations(cluster: Cluster, namespace: str):
    _apply(cluster, _pod("creds"), namespace)
    spec = _get(cluster, "pod", "creds", namespace)["spec"]
    assert spec["serviceAccountName"] == "default"
    volume = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    assert len(volume["name"]) == len("kube-api-access-") + 5
    sources = volume["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    assert {(t["key"], t.get("tolerationSeconds")) for t in spec["tolerations"]} == {
        ("node.kubernetes.io/not-ready", 300), ("node.kubernetes.io/unreachable", 300)}

    opted_out = _pod("no-creds")
    opted_out["spec"]["automountServiceAccountToken"] = False
    _apply(cluster, opted_out, namespace)
    spec = _get(cluster, "pod", "no-creds", namespace)["spec"]
    assert not spec.get("volumes") and not spec["containers"][0].get("volumeMounts")


# ---- DefaultStorageClass, DefaultIngressClass ------------------------------------------------


def test_default_classes_newest_wins(cluster: Cluster, namespace: str):
    older, newer = f"older-{namespace}"[:63], f"newer-{namespace}"[:63]
    default = {"storageclass.kubernetes.io/is-default-class": "true"}
    try:
        for name in (older, newer):
            _apply(cluster, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                             "metadata": {"name": name, "annotations": default}, "provisioner": "example.com/x"})
            time.sleep(1.1)  # creationTimestamp has one-second resolution: the two must differ
        _apply(cluster, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
               namespace)
        assert _get(cluster, "pvc", "data", namespace)["spec"]["storageClassName"] == newer
    finally:
        cluster.kubectl("delete", "storageclass", older, newer, check=False)

    ingress_class = f"default-{namespace}"[:63]
    try:
        _apply(cluster, {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                         "metadata": {"name": ingress_class,
                                      "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                         "spec": {"controller": "example.com/ingress"}})
        _apply(cluster, {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
                         "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}}, namespace)
        assert _get(cluster, "ingress", "web", namespace)["spec"]["ingressClassName"] == ingress_class
    finally:
        cluster.kubectl("delete", "ingressclass", ingress_class, check=False)


# ---- PodSecurity -----------------------------------------------------------------------------

PRIVILEGED_POD = _pod("root", securityContext={"privileged": True})


def test_pod_security_enforce_restricted(cluster: Cluster, namespace: str):
    _label(cluster, namespace, "pod-security.kubernetes.io/enforce=restricted")
    result = _apply(cluster, PRIVILEGED_POD, namespace, False)
    assert result.returncode != 0
    assert ('pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not '
            'set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set '
            'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set '
            'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
            'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")') in result.stderr
    assert _missing(cluster, "pod", "root", namespace)
    compliant = _pod("compliant", securityContext={"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                                   "capabilities": {"drop": ["ALL"]},
                                                   "seccompProfile": {"type": "RuntimeDefault"}})
    _apply(cluster, compliant, namespace)


def test_pod_security_baseline_and_warnings(cluster: Cluster, namespace: str):
    _label(cluster, namespace, "pod-security.kubernetes.io/enforce=baseline",
           "pod-security.kubernetes.io/warn=restricted", "pod-security.kubernetes.io/warn-version=v1.32")
    result = _apply(cluster, _pod("plain"), namespace)
    assert ('Warning: would violate PodSecurity "restricted:v1.32": allowPrivilegeEscalation != false '
            '(container "c" must set securityContext.allowPrivilegeEscalation=false)') in result.stderr
    result = _apply(cluster, _pod("ports", ports=[{"containerPort": 80, "hostPort": 8080}]), namespace, False)
    assert ('violates PodSecurity "baseline:latest": hostPort (container "c" uses hostPort 8080)'
            in result.stderr)
    # Workloads are checked in warn mode only: the Deployment is stored, with a warning.
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": PRIVILEGED_POD["spec"]}}}
    result = _apply(cluster, deployment, namespace)
    assert 'Warning: would violate PodSecurity "restricted:v1.32": privileged' in result.stderr
    # Tightening enforce warns about the pods already running that would not be admitted now.
    result = cluster.kubectl("label", "namespace", namespace, "--overwrite",
                             "pod-security.kubernetes.io/enforce=restricted")
    assert (f'Warning: existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
            '"restricted:latest"') in result.stderr
    assert "Warning: plain: allowPrivilegeEscalation != false" in result.stderr


def test_pod_security_rejects_invalid_labels(cluster: Cluster, namespace: str):
    result = cluster.kubectl("label", "namespace", namespace, "pod-security.kubernetes.io/enforce=strict",
                             check=False)
    assert result.returncode != 0
    assert ('metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of '
            "privileged, baseline, restricted") in result.stderr


@pytest.mark.parametrize("level", ["privileged", "baseline", "restricted"])
def test_pod_security_levels(cluster: Cluster, namespace: str, level: str):
    _label(cluster, namespace, f"pod-security.kubernetes.io/enforce={level}")
    host = _pod("host")
    host["spec"]["hostNetwork"] = True
    result = _apply(cluster, host, namespace, False)
    if level == "privileged":
        assert result.returncode == 0
    else:
        assert f'violates PodSecurity "{level}:latest": host namespaces (hostNetwork=true)' in result.stderr


# ---- admission webhooks ----------------------------------------------------------------------


class WebhookServer:
    """An HTTPS AdmissionReview server on 127.0.0.1 with its own self-signed CA; each path is a behaviour."""

    def __init__(self, tmp_path):
        import datetime
        import ipaddress
        import ssl
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        now = datetime.datetime.now(datetime.UTC)
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook-test-ca")])
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
              .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(hours=1))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .sign(ca_key, hashes.SHA256()))
        cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hook")]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(2).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(hours=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        (tmp_path / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (tmp_path / "tls.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
        self.ca_bundle = base64.b64encode(ca.public_bytes(serialization.Encoding.PEM)).decode()
        self.reviews: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                path = self.path.split("?")[0]
                server.reviews.append((self.path, review["request"]))
                response = server.answer(path, review["request"])
                if response is None:
                    time.sleep(3)  # longer than the webhook's timeout
                    response = {"allowed": True}
                body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                   "response": {"uid": review["request"]["uid"], **response}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def answer(path: str, request: dict) -> dict | None:
        name = (request.get("object") or {}).get("metadata", {}).get("name", "")
        if path == "/deny":
            if name.startswith("bad"):
                return {"allowed": False, "status": {"code": 403, "reason": "Forbidden",
                                                     "message": f"no configmaps named {name}"}}
            return {"allowed": True}
        if path == "/patch":
            patch = [{"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}}]
            if (request["object"]["metadata"].get("labels") or {}):
                patch = [{"op": "add", "path": "/metadata/labels/patched", "value": "yes"}]
            return {"allowed": True, "patchType": "JSONPatch", "warnings": ["patched by the test webhook"],
                    "patch": base64.b64encode(json.dumps(patch).encode()).decode()}
        if path == "/count":  # reports how many times it saw this object's current labels
            labels = request["object"]["metadata"].get("labels") or {}
            return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(
                [{"op": "add", "path": "/metadata/annotations", "value": {"seen-labels": ",".join(sorted(labels))}}]
            ).encode()).decode()}
        if path == "/slow":
            return None
        return {"allowed": True}

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook_server(tmp_path):
    server = WebhookServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def webhooks(cluster: Cluster, namespace: str, webhook_server: WebhookServer):
    """Registers webhook configurations limited to this test's namespace and removes them afterwards."""
    _label(cluster, namespace, f"webhook-test={namespace}")
    created: list[tuple[str, str]] = []

    def register(kind: str, path: str, *, name: str = "", failure: str = "Fail", timeout: int = 5,
                 side_effects: str = "None", conditions: list | None = None, **extra) -> str:
        resource = f"{kind.lower()}webhookconfigurations"
        config_name = f"{namespace}-{path.strip('/')}-{len(created)}"[:63]
        hook_name = name or f"{path.strip('/')}.example.com"
        webhook = {"name": hook_name, "admissionReviewVersions": ["v1"], "sideEffects": side_effects,
                   "failurePolicy": failure, "timeoutSeconds": timeout,
                   "clientConfig": {"url": webhook_server.url(path), "caBundle": webhook_server.ca_bundle},
                   "namespaceSelector": {"matchLabels": {"webhook-test": namespace}},
                   "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                              "resources": ["configmaps"]}], **extra}
        if conditions:
            webhook["matchConditions"] = conditions
        _apply(cluster, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": f"{kind}WebhookConfiguration",
                         "metadata": {"name": config_name}, "webhooks": [webhook]})
        created.append((resource, config_name))
        return hook_name

    yield register
    for resource, config_name in created:
        cluster.kubectl("delete", resource, config_name, check=False)


def _configmap(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"a": "b"}}


def test_validating_webhook_allows_and_denies(cluster: Cluster, namespace: str, webhooks, webhook_server):
    config = webhooks("Validating", "/deny")
    table = cluster.kubectl("get", "validatingwebhookconfigurations").stdout.splitlines()
    assert table[0].split() == ["NAME", "WEBHOOKS", "AGE"]
    assert any(line.split()[1] == "1" for line in table[1:]) and config == "deny.example.com"
    _apply(cluster, _configmap("good"), namespace)
    result = _apply(cluster, _configmap("bad-one"), namespace, False)
    assert result.returncode != 0
    assert ('admission webhook "deny.example.com" denied the request: no configmaps named bad-one'
            in result.stderr)
    assert _missing(cluster, "configmap", "bad-one", namespace)
    path, request = webhook_server.reviews[-1]
    assert path == "/deny?timeout=5s"
    assert (request["operation"], request["namespace"], request["resource"]["resource"]) == (
        "CREATE", namespace, "configmaps")
    assert request["userInfo"]["username"] and request["dryRun"] is False


def test_mutating_webhook_patches_and_warns(cluster: Cluster, namespace: str, webhooks):
    webhooks("Mutating", "/patch")
    result = _apply(cluster, _configmap("mutated", app="web"), namespace)
    assert "Warning: patched by the test webhook" in result.stderr
    assert _get(cluster, "configmap", "mutated", namespace)["metadata"]["labels"] == {"app": "web", "patched": "yes"}


def test_mutating_webhook_reinvocation(cluster: Cluster, namespace: str, webhooks):
    # "count" runs first (config names sort by path) and asks to see later changes: it is called again after
    # "patch" added a label, so its annotation reflects the final labels.
    webhooks("Mutating", "/count", reinvocationPolicy="IfNeeded")
    webhooks("Mutating", "/patch")
    _apply(cluster, _configmap("again"), namespace)
    stored = _get(cluster, "configmap", "again", namespace)
    assert stored["metadata"]["annotations"]["seen-labels"] == "patched"


def test_webhook_timeout_with_fail_and_ignore(cluster: Cluster, namespace: str, webhooks, webhook_server):
    webhooks("Validating", "/slow", timeout=1)
    result = _apply(cluster, _configmap("late"), namespace, False)
    assert result.returncode != 0
    assert ('Internal error occurred: failed calling webhook "slow.example.com": failed to call webhook: '
            f'Post "{webhook_server.url("/slow")}?timeout=1s": context deadline exceeded') in result.stderr
    assert _missing(cluster, "configmap", "late", namespace)


def test_webhook_failures_ignored_under_ignore(cluster: Cluster, namespace: str, webhooks):
    webhooks("Validating", "/slow", timeout=1, failure="Ignore")
    webhooks("Mutating", "/unreachable", failure="Ignore",
             clientConfig={"url": "https://127.0.0.1:1/unreachable"})
    _apply(cluster, _configmap("tolerated"), namespace)
    assert _get(cluster, "configmap", "tolerated", namespace)["metadata"]["name"] == "tolerated"


def test_webhook_match_conditions_and_dry_run(cluster: Cluster, namespace: str, webhooks, webhook_server):
    webhooks("Validating", "/deny", conditions=[{"name": "guarded-only",
                                                 "expression": "object.metadata.name.startsWith('bad-guarded')"}])
    _apply(cluster, _configmap("bad-but-unguarded"), namespace)  # the condition is false: not called
    assert all(r[1]["name"] != "bad-but-unguarded" for r in webhook_server.reviews)
    result = _apply(cluster, _configmap("bad-guarded"), namespace, False)
    assert "denied the request: no configmaps named bad-guarded" in result.stderr

    webhooks("Validating", "/allow", side_effects="NoneOnDryRun")
    _apply(cluster, _configmap("dry"), namespace, True, "--dry-run=server")
    assert webhook_server.reviews[-1][1]["dryRun"] is True
    assert _missing(cluster, "configmap", "dry", namespace)


def test_webhook_configuration_validation(cluster: Cluster):
    bad = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
           "metadata": {"name": "invalid-hooks"},
           "webhooks": [{"name": "short.name", "admissionReviewVersions": ["v1"], "sideEffects": "Unknown",
                         "timeoutSeconds": 31, "clientConfig": {"url": "http://127.0.0.1/x"}}]}
    result = _apply(cluster, bad, None, False)
    assert result.returncode != 0
    for expected in ('webhooks[0].name: Invalid value: "short.name": should be a domain with at least three '
                     "segments separated by dots",
                     'webhooks[0].sideEffects: Unsupported value: "Unknown": supported values: "None", "NoneOnDryRun"',
                     "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 "
                     "seconds",
                     """webhooks[0].clientConfig.url: Invalid value: "http://127.0.0.1/x": 'https' is the only """
                     "allowed URL scheme"):
        assert expected in result.stderr


# ---- ValidatingAdmissionPolicy -----------------------------------------------------------------


def test_validating_admission_policy_deny_and_warn(cluster: Cluster, namespace: str):
    _label(cluster, namespace, f"policy-test={namespace}")
    policy, deny, warn = (f"{namespace}-small"[:63], f"{namespace}-deny"[:63], f"{namespace}-warn"[:63])
    _apply(cluster, {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                     "metadata": {"name": policy},
                     "spec": {"matchConstraints": {"resourceRules": [
                         {"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                          "resources": ["configmaps"]}]},
                         "validations": [{"expression": "!has(object.data) || object.data.size() <= 1"},
                                         {"expression": "!object.metadata.name.startsWith('tmp')",
                                          "messageExpression": "'temporary names are not allowed: ' + "
                                                               "object.metadata.name"}]}})
    try:
        for binding, actions in ((deny, ["Deny"]), (warn, ["Warn"])):
            selector = {"matchLabels": {"policy-test": namespace}}
            if binding == warn:  # the warning binding only for objects labelled so
                extra = {"objectSelector": {"matchLabels": {"warn-only": "yes"}}}
            else:
                extra = {"objectSelector": {"matchExpressions": [{"key": "warn-only", "operator": "DoesNotExist"}]}}
            _apply(cluster, {"apiVersion": "admissionregistration.k8s.io/v1",
                             "kind": "ValidatingAdmissionPolicyBinding", "metadata": {"name": binding},
                             "spec": {"policyName": policy, "validationActions": actions,
                                      "matchResources": {"namespaceSelector": selector, **extra}}})
        tables = [cluster.kubectl("get", resource, name).stdout.splitlines()
                  for resource, name in (("validatingadmissionpolicies", policy),
                                         ("validatingadmissionpolicybindings", deny))]
        assert tables[0][0].split() == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"]
        assert tables[0][1].split()[1:3] == ["2", "<unset>"]
        assert tables[1][0].split() == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
        assert tables[1][1].split()[1:3] == [policy, "<unset>"]
        _apply(cluster, _configmap("fine"), namespace)
        big = {**_configmap("big"), "data": {"a": "1", "b": "2"}}
        result = _apply(cluster, big, namespace, False)
        assert result.returncode != 0
        assert (f"ValidatingAdmissionPolicy '{policy}' with binding '{deny}' denied request: failed expression: "
                "!has(object.data) || object.data.size() <= 1") in result.stderr
        assert _missing(cluster, "configmap", "big", namespace)
        result = _apply(cluster, _configmap("tmp-1"), namespace, False)
        assert "denied request: temporary names are not allowed: tmp-1" in result.stderr
        warned = {**_configmap("tmp-2", **{"warn-only": "yes"})}
        result = _apply(cluster, warned, namespace)
        assert (f"Warning: Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{warn}': "
                "temporary names are not allowed: tmp-2") in result.stderr
    finally:
        cluster.kubectl("delete", "validatingadmissionpolicybindings", deny, warn, check=False)
        cluster.kubectl("delete", "validatingadmissionpolicies", policy, check=False)


# ---- server flags ------------------------------------------------------------------------------


def test_admission_flags_and_configuration_file(tmp_path_factory):
    config = tmp_path_factory.mktemp("admission-config") / "admission.yaml"
    config.write_text("""apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: baseline, enforce-version: latest}
    exemptions: {namespaces: [kube-system]}
""")
    server = Cluster(tmp_path_factory.mktemp("flags"), (*BARE, "--admission-control-config-file", str(config),
                                                        "--enable-admission-plugins", "StorageObjectInUseProtection",
                                                        "--disable-admission-plugins", "Priority"))
    server.start()
    try:
        result = _apply(server, PRIVILEGED_POD, "default", False)
        assert 'violates PodSecurity "baseline:latest": privileged' in result.stderr
        _apply(server, PRIVILEGED_POD, "kube-system")  # exempt
        assert "priority" not in _get(server, "pod", "root", "kube-system")["spec"]  # Priority is off
        _apply(server, {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
               "default")
        assert _get(server, "pvc", "data", "default")["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    finally:
        server.stop()
