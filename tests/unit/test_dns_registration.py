"""The kube-dns Service and this DNS server's endpoints, against an in-memory API."""

from __future__ import annotations

import copy

from pyk8s.client import APIStatusError
from pyk8s.client.api import resolve
from pyk8s.dns.registration import DNSRegistration


class FakeAPI:
    """get/create/update/patch(merge of spec)/delete over a dict, with 404/409 Statuses."""

    def __init__(self):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.rv = 0

    @staticmethod
    def _key(resource, namespace: str, name: str) -> tuple[str, str, str]:
        return resolve(resource).plural, namespace, name

    def _missing(self, key) -> APIStatusError:
        return APIStatusError({"code": 404, "reason": "NotFound", "message": f"{key} not found"})

    async def get(self, resource, name, namespace=None):
        key = self._key(resource, namespace, name)
        if key not in self.objects:
            raise self._missing(key)
        return copy.deepcopy(self.objects[key])

    def _store(self, obj: dict) -> dict:
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        meta = obj["metadata"]
        self.objects[self._key((obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"])] = obj
        return obj

    async def create(self, obj: dict) -> dict:
        meta = obj["metadata"]
        if self._key((obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"]) in self.objects:
            raise APIStatusError({"code": 409, "reason": "AlreadyExists"})
        return self._store(obj)

    async def update(self, obj: dict) -> dict:
        meta = obj["metadata"]
        current = self.objects[self._key((obj["apiVersion"], obj["kind"]), meta["namespace"], meta["name"])]
        if meta.get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise APIStatusError({"code": 409, "reason": "Conflict"})
        return self._store(obj)

    async def patch(self, resource, name, patch, namespace=None, *, patch_type="merge"):
        current = await self.get(resource, name, namespace)
        current["spec"].update(patch["spec"])
        return self._store(current)

    async def delete(self, resource, name, namespace=None):
        key = self._key(resource, namespace, name)
        if self.objects.pop(key, None) is None:
            raise self._missing(key)


def registration(api: FakeAPI, address: str = "10.0.0.5", instance: str = "node-1") -> DNSRegistration:
    return DNSRegistration(api, cluster_ip="10.43.0.10", address=address, dns_port=53, metrics_port=9153,
                           instance=instance, node_name=instance)


async def test_creates_the_service_and_both_endpoint_objects():
    api = FakeAPI()
    await registration(api).ensure()
    service = api.objects[("services", "kube-system", "kube-dns")]
    assert service["spec"]["clusterIP"] == "10.43.0.10" and "selector" not in service["spec"]
    assert [p["name"] for p in service["spec"]["ports"]] == ["dns", "dns-tcp", "metrics"]
    endpoint_slice = api.objects[("endpointslices", "kube-system", "kube-dns-node-1")]
    assert endpoint_slice["endpoints"][0]["addresses"] == ["10.0.0.5"]
    endpoints = api.objects[("endpoints", "kube-system", "kube-dns")]
    assert endpoints["subsets"][0]["addresses"] == [{"ip": "10.0.0.5", "nodeName": "node-1"}]
    rv = api.rv
    await registration(api).ensure()  # nothing drifted: nothing written
    assert api.rv == rv


async def test_two_instances_share_the_endpoints_and_each_withdraws_its_own():
    api = FakeAPI()
    first, second = registration(api), registration(api, "10.0.0.6", "node-2")
    await first.ensure()
    await second.ensure()
    endpoints = api.objects[("endpoints", "kube-system", "kube-dns")]
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == ["10.0.0.5", "10.0.0.6"]
    await first.withdraw()
    assert ("endpointslices", "kube-system", "kube-dns-node-1") not in api.objects
    assert ("endpointslices", "kube-system", "kube-dns-node-2") in api.objects
    endpoints = api.objects[("endpoints", "kube-system", "kube-dns")]
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == ["10.0.0.6"]


async def test_drifted_ports_are_corrected_and_a_selector_means_hands_off():
    api = FakeAPI()
    await registration(api).ensure()
    api.objects[("services", "kube-system", "kube-dns")]["spec"]["ports"][0]["targetPort"] = 5353
    await registration(api).ensure()
    assert api.objects[("services", "kube-system", "kube-dns")]["spec"]["ports"][0]["targetPort"] == 53

    other = FakeAPI()
    await other.create({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": "kube-dns", "namespace": "kube-system"},
                        "spec": {"clusterIP": "10.43.0.10", "selector": {"k8s-app": "kube-dns"}, "ports": []}})
    await registration(other).ensure()
    assert set(other.objects) == {("services", "kube-system", "kube-dns")}
