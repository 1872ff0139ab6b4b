"""Wire-level behaviour that clients depend on: auth, Status shapes, discovery, watch expiry, limits."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import Cluster


def _contexts(cluster: Cluster) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(anonymous, admin) TLS contexts trusting the cluster CA."""
    ca = str(cluster.data_dir / "tls" / "ca.crt")
    anonymous = ssl.create_default_context(cafile=ca)
    admin = ssl.create_default_context(cafile=ca)
    admin.load_cert_chain(str(cluster.data_dir / "tls" / "admin.crt"), str(cluster.data_dir / "tls" / "admin.key"))
    return anonymous, admin


def request(cluster: Cluster, path: str, *, method: str = "GET", body: bytes | None = None,
            headers: dict | None = None, admin: bool = True) -> tuple[int, dict, bytes]:
    anonymous, admin_ctx = _contexts(cluster)
    req = urllib.request.Request(cluster.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, context=admin_ctx if admin else anonymous, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_anonymous_reaches_only_version_and_health(cluster: Cluster):
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert request(cluster, path, admin=False)[0] == 200
    code, _, body = request(cluster, "/api/v1/namespaces", admin=False)
    status = json.loads(body)
    assert code == 403 and status["reason"] == "Forbidden"
    assert 'User "system:anonymous" cannot list resource "namespaces"' in status["message"]
    code, _, body = request(cluster, "/api", headers={"Authorization": "Bearer nope"}, admin=False)
    assert code == 401 and json.loads(body)["reason"] == "Unauthorized"


def test_not_found_status_shape(cluster: Cluster):
    code, headers, body = request(cluster, "/apis/apps/v1/namespaces/default/deployments/missing")
    assert code == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": 'deployments.apps "missing" not found', "reason": "NotFound",
        "details": {"name": "missing", "group": "apps", "kind": "deployments"}, "code": 404}


def test_aggregated_and_legacy_discovery(cluster: Cluster):
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    code, headers, body = request(cluster, "/apis", headers={"Accept": accept})
    assert code == 200
    assert headers["Content-Type"] == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    groups = {g["metadata"]["name"]: g for g in json.loads(body)["items"]}
    apps = groups["apps"]["versions"][0]["resources"]
    deployments = next(r for r in apps if r["resource"] == "deployments")
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    code, headers, body = request(cluster, "/apis")
    assert headers["Content-Type"] == "application/json" and json.loads(body)["kind"] == "APIGroupList"
    resources = json.loads(request(cluster, "/api/v1")[2])["resources"]
    binding = next(r for r in resources if r["name"] == "pods/binding")
    assert binding["kind"] == "Binding" and binding["verbs"] == ["create"]


def test_watch_timeout_and_bookmark_free_stream(cluster: Cluster):
    code, _, body = request(cluster, "/api/v1/namespaces?watch=1&timeoutSeconds=1")
    events = [json.loads(line) for line in body.splitlines()]
    assert code == 200 and {e["type"] for e in events} == {"ADDED"}
    assert "default" in [e["object"]["metadata"]["name"] for e in events]


def test_send_initial_events_ends_with_a_bookmark(cluster: Cluster):
    code, _, body = request(cluster, "/api/v1/namespaces?watch=1&timeoutSeconds=1&sendInitialEvents=true"
                                     "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")
    events = [json.loads(line) for line in body.splitlines()]
    bookmark = next(e for e in events if e["type"] == "BOOKMARK")
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_body_limits_and_mismatches(cluster: Cluster):
    big = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                      "data": {"a": "x" * (3 * 1024 * 1024 + 10)}}).encode()
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps", method="POST", body=big,
                            headers={"Content-Type": "application/json"})
    assert code == 413
    wrong_ns = json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": "x", "namespace": "kube-system"}}).encode()
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps", method="POST", body=wrong_ns,
                            headers={"Content-Type": "application/json"})
    assert code == 400 and "does not match the namespace" in json.loads(body)["message"]
    wrong_kind = json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}).encode()
    code, _, _ = request(cluster, "/api/v1/namespaces/default/configmaps", method="POST", body=wrong_kind,
                         headers={"Content-Type": "application/json"})
    assert code == 400
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps", method="POST",
                            body=b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d","name":"e"}}',
                            headers={"Content-Type": "application/json"})
    assert code == 201  # fieldValidation defaults to Warn
    code, headers, body = request(cluster, "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
                                  method="POST",
                                  body=b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"f","name":"g"}}',
                                  headers={"Content-Type": "application/json"})
    assert code == 400 and 'duplicate field "metadata.name"' in json.loads(body)["message"]


def test_yaml_request_bodies(cluster: Cluster):
    body = yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-yaml"},
                           "data": {"on": "yes"}}).encode()
    code, _, out = request(cluster, "/api/v1/namespaces/default/configmaps", method="POST", body=body,
                           headers={"Content-Type": "application/yaml"})
    assert code == 201 and json.loads(out)["data"] == {"on": "yes"}


def test_table_rows_carry_partial_object_metadata(cluster: Cluster):
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    code, _, body = request(cluster, "/api/v1/namespaces?limit=500", headers={"Accept": accept})
    table = json.loads(body)
    assert code == 200 and table["kind"] == "Table" and table["metadata"]["resourceVersion"]
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age"]
    row = next(r for r in table["rows"] if r["cells"][0] == "default")
    assert row["object"]["kind"] == "PartialObjectMetadata" and row["object"]["metadata"]["uid"]


@pytest.mark.parametrize("path", ["/metrics"])
def test_metrics(cluster: Cluster, path: str):
    request(cluster, "/api/v1/namespaces")
    code, _, body = request(cluster, path)
    text = body.decode()
    assert code == 200
    assert 'apiserver_request_total{code="200",group="",resource="namespaces",subresource="",verb="list"}' in text
    assert "pyk8s_store_revision" in text and "apiserver_request_duration_seconds_bucket" in text


def test_openapi_index_and_documents(cluster: Cluster):
    index = json.loads(request(cluster, "/openapi/v3")[2])
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    code, headers, body = request(cluster, url)
    doc = json.loads(body)
    assert code == 200 and "io.k8s.api.apps.v1.Deployment" in doc["components"]["schemas"]


def _post(cluster: Cluster, path: str, obj: dict) -> tuple[int, dict]:
    code, _, body = request(cluster, path, method="POST", body=json.dumps(obj).encode(),
                            headers={"Content-Type": "application/json"})
    return code, json.loads(body)


def test_generate_name(cluster: Cluster):
    code, obj = _post(cluster, "/api/v1/namespaces/default/configmaps",
                      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})
    assert code == 201 and obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9


def test_terminating_namespace_refuses_new_content(cluster: Cluster):
    code, _ = _post(cluster, "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": "doomed"}})
    assert code == 201
    code, _, body = request(cluster, "/api/v1/namespaces/doomed", method="DELETE")
    ns = json.loads(body)
    assert code == 200 and ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    code, status = _post(cluster, "/api/v1/namespaces/doomed/configmaps",
                         {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}})
    assert code == 403 and status["reason"] == "Forbidden"
    assert "because it is being terminated" in status["message"]
    # The namespace controller's last step: emptying spec.finalizers removes the namespace.
    ns["spec"]["finalizers"] = []
    code, _, _ = request(cluster, "/api/v1/namespaces/doomed/finalize", method="PUT", body=json.dumps(ns).encode(),
                         headers={"Content-Type": "application/json"})
    assert code == 200
    assert request(cluster, "/api/v1/namespaces/doomed")[0] == 404


def test_list_at_an_exact_older_revision(cluster: Cluster):
    code, first = _post(cluster, "/api/v1/namespaces/default/configmaps",
                        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "exact-1"}})
    revision = first["metadata"]["resourceVersion"]
    _post(cluster, "/api/v1/namespaces/default/configmaps",
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "exact-2"}})
    _, _, body = request(cluster, f"/api/v1/namespaces/default/configmaps?resourceVersion={revision}"
                                  "&resourceVersionMatch=Exact")
    listed = json.loads(body)
    names = [i["metadata"]["name"] for i in listed["items"]]
    assert listed["metadata"]["resourceVersion"] == revision
    assert "exact-1" in names and "exact-2" not in names


def test_delete_answers_status_or_object_like_upstream(cluster: Cluster):
    code, _ = _post(cluster, "/api/v1/namespaces/default/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gone"}})
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps/gone", method="DELETE")
    status = json.loads(body)
    assert code == 200 and status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "gone" and status["details"]["kind"] == "configmaps"
    _post(cluster, "/api/v1/namespaces/default/serviceaccounts",
          {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "gone"}})
    code, _, body = request(cluster, "/api/v1/namespaces/default/serviceaccounts/gone", method="DELETE")
    assert code == 200 and json.loads(body)["kind"] == "ServiceAccount"
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps/gone", method="DELETE")
    assert code == 404


def test_immutable_fields_and_preconditions(cluster: Cluster):
    _post(cluster, "/api/v1/namespaces/default/configmaps",
          {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "frozen"}, "data": {"a": "1"},
           "immutable": True})
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps/frozen", method="PATCH",
                            body=b'{"data":{"a":"2"}}', headers={"Content-Type": "application/merge-patch+json"})
    status = json.loads(body)
    assert code == 422 and status["reason"] == "Invalid" and status["details"]["causes"][0]["field"] == "data"
    delete = json.dumps({"preconditions": {"uid": "not-the-uid"}}).encode()
    code, _, body = request(cluster, "/api/v1/namespaces/default/configmaps/frozen", method="DELETE", body=delete,
                            headers={"Content-Type": "application/json"})
    assert code == 409 and "Precondition failed: UID in precondition" in json.loads(body)["message"]


def test_large_bodies_arrive_whole(cluster: Cluster):
    # Bodies arrive in many TCP reads; a 900 KB ConfigMap (under ConfigMaps' 1 MiB limit) must be read in full.
    data = {f"k{i}": "x" * 1000 for i in range(900)}
    code, obj = _post(cluster, "/api/v1/namespaces/default/configmaps",
                      {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "large"}, "data": data})
    assert code == 201 and len(obj["data"]) == 900
