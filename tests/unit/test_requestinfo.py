import pytest

from pyk8s.apiserver.negotiation import parse_bool
from pyk8s.apiserver.requestinfo import parse_request_info


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/default/pods", {}, ("list", "", "v1", "default", "pods", "", "")),
        ("GET", "/api/v1/pods", {"watch": "True"}, ("watch", "", "v1", "", "pods", "", "")),
        ("GET", "/api/v1/namespaces/ns/pods/web", {}, ("get", "", "v1", "ns", "pods", "web", "")),
        ("GET", "/api/v1/namespaces/ns/pods/web", {"watch": "1"}, ("watch", "", "v1", "ns", "pods", "web", "")),
        ("PUT", "/api/v1/namespaces/ns/pods/web/status", {}, ("update", "", "v1", "ns", "pods", "web", "status")),
        ("GET", "/api/v1/namespaces/kube-system", {}, ("get", "", "v1", "", "namespaces", "kube-system", "")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "", "v1", "", "namespaces", "x", "finalize")),
        ("GET", "/api/v1/namespaces", {}, ("list", "", "v1", "", "namespaces", "", "")),
        ("DELETE", "/apis/apps/v1/namespaces/a/deployments", {},
         ("deletecollection", "apps", "v1", "a", "deployments", "", "")),
        ("PATCH", "/apis/apps/v1/namespaces/a/deployments/d/scale", {},
         ("patch", "apps", "v1", "a", "deployments", "d", "scale")),
        ("POST", "/api/v1/namespaces/a/pods/p/binding", {}, ("create", "", "v1", "a", "pods", "p", "binding")),
        ("GET", "/api/v1/nodes/n1", {}, ("get", "", "v1", "", "nodes", "n1", "")),
    ],
)
def test_resource_requests(method, path, query, expected):
    info = parse_request_info(method, path, query, parse_bool)
    assert info.is_resource_request
    assert (info.verb, info.group, info.version, info.namespace, info.resource, info.name,
            info.subresource) == expected


@pytest.mark.parametrize("path", ["/version", "/api", "/apis", "/apis/apps", "/apis/apps/v1", "/api/v1", "/healthz",
                                  "/openapi/v3/apis/apps/v1"])
def test_non_resource_requests(path):
    assert not parse_request_info("GET", path, {}, parse_bool).is_resource_request


@pytest.mark.parametrize("value", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true_like_go(value):
    assert parse_bool(value)


@pytest.mark.parametrize("value", ["0", "f", "F", "FALSE", "false", "False", "yes", "tRuE", ""])
def test_parse_bool_false_like_go(value):
    assert not parse_bool(value)


def test_deprecated_watch_prefix():
    info = parse_request_info("GET", "/api/v1/watch/namespaces/ns/pods/p", {}, parse_bool)
    assert (info.verb, info.namespace, info.resource, info.name) == ("watch", "ns", "pods", "p")
    info = parse_request_info("GET", "/apis/apps/v1/watch/deployments", {}, parse_bool)
    assert (info.verb, info.resource) == ("watch", "deployments")
