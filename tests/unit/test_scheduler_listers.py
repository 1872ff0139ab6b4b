"""The scheduler's listers: default spread selector from Services and controllers, PriorityClass resolution."""

from __future__ import annotations

from pyk8s.scheduler.listers import ClusterListers


class FakeInformer:
    def __init__(self, objects: list[dict]):
        self.objects = objects

    def _key(self, obj: dict) -> str:
        meta = obj["metadata"]
        return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]

    def get(self, key: str) -> dict | None:
        return next((o for o in self.objects if self._key(o) == key), None)

    def list(self, namespace: str | None = None) -> list[dict]:
        return [o for o in self.objects if namespace is None or o["metadata"].get("namespace") == namespace]


class FakeFactory:
    def __init__(self, objects: dict[str, list[dict]]):
        self.objects = objects

    def informer(self, plural: str) -> FakeInformer:
        return FakeInformer(self.objects.get(plural, []))


def meta(name: str, namespace: str | None = "ns", **extra) -> dict:
    return {"name": name, **({"namespace": namespace} if namespace else {}), **extra}


def pod(**metadata) -> dict:
    return {"metadata": meta("p", labels={"app": "web", "tier": "front"}, **metadata), "spec": {}}


def test_default_selector_joins_services_and_the_controller():
    listers = ClusterListers(FakeFactory({
        "services": [{"metadata": meta("web"), "spec": {"selector": {"app": "web"}}},
                     {"metadata": meta("other"), "spec": {"selector": {"app": "db"}}},
                     {"metadata": meta("elsewhere", "ns2"), "spec": {"selector": {"app": "web"}}}],
        "replicasets": [{"metadata": meta("web-rs"), "spec": {"selector": {"matchLabels": {"tier": "front"}}}}],
    }))
    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "controller": True}]
    selector = listers.default_selector(pod(ownerReferences=owner))
    assert str(selector) == "app=web,tier=front"
    assert str(listers.default_selector(pod())) == "app=web"
    lone = {"metadata": meta("lone", labels={"x": "y"}), "spec": {}}
    assert listers.default_selector(lone) is None
