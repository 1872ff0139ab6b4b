"""Custom resources found through discovery, for the namespace deleter and the garbage collector."""

from __future__ import annotations

from pyk8s.client import APIStatusError
from pyk8s.controllers.discovery import custom_resources

GROUPS = {"groups": [
    {"name": "events.k8s.io", "versions": [{"groupVersion": "events.k8s.io/v1", "version": "v1"}],
     "preferredVersion": {"groupVersion": "events.k8s.io/v1", "version": "v1"}},
    {"name": "apps", "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
     "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}},
    {"name": "example.com", "versions": [{"groupVersion": "example.com/v1", "version": "v1"},
                                         {"groupVersion": "example.com/v1beta1", "version": "v1beta1"}],
     "preferredVersion": {"groupVersion": "example.com/v1", "version": "v1"}},
    {"name": "broken.io", "versions": [{"groupVersion": "broken.io/v1", "version": "v1"}],
     "preferredVersion": {"groupVersion": "broken.io/v1", "version": "v1"}},
]}
VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def resources(version: str) -> dict:
    return {"groupVersion": f"example.com/{version}", "resources": [
        {"name": "widgets", "singularName": "widget", "namespaced": True, "kind": "Widget", "verbs": VERBS},
        {"name": "widgets/status", "singularName": "", "namespaced": True, "kind": "Widget",
         "verbs": ["get", "patch", "update"]},
        {"name": "gizmos", "singularName": "gizmo", "namespaced": False, "kind": "Gizmo", "verbs": VERBS}]}


class FakeClient:
    def __init__(self):
        self.paths: list[str] = []

    async def request(self, method: str, path: str) -> dict:
        self.paths.append(path)
        if path == "/apis":
            return GROUPS
        if path.startswith("/apis/example.com/"):
            return resources(path.rsplit("/", 1)[1])
        raise APIStatusError({"kind": "Status", "code": 503, "message": "service unavailable"})


async def test_custom_resources_skip_built_in_groups_and_subresources():
    client = FakeClient()
    found = await custom_resources(client)
    assert client.paths[0] == "/apis"
    assert not {"/apis/apps/v1", "/apis/events.k8s.io/v1"} & set(client.paths)  # the registry knows these
    assert [(k.api_version, k.plural, k.namespaced) for k in found.kinds] == [
        ("example.com/v1", "widgets", True), ("example.com/v1", "gizmos", False),
        ("example.com/v1beta1", "widgets", True), ("example.com/v1beta1", "gizmos", False)]
    assert [(k.version, k.kind) for k in found.preferred] == [("v1", "Widget"), ("v1", "Gizmo")]
    assert "delete" in found.preferred[0].verbs
    assert list(found.failures) == ["broken.io/v1"]
