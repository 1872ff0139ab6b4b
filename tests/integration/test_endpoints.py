"""Endpoints, EndpointSlices and their mirroring on an all-in-one `pyk8s server --simulated-nodes 3` (pods get IPs
and become Ready on the simulated nodes), seen through the real kubectl."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest

from conftest import Cluster, eventually

IMAGE = "nginx:1.27"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
TIMEOUT = 60


@pytest.fixture(scope="module")
def net_cluster(tmp_path_factory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("endpoints"), ("--simulated-nodes", "3"))
    cluster.start()
    eventually(lambda: len(cluster.kubectl_json("get", "nodes")["items"]) == 3, timeout=TIMEOUT)
    cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", timeout=90)
    yield cluster
    cluster.stop()


def make_namespace(cluster: Cluster, name: str) -> str:
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": name}}))
    return name


def deployment(name: str, replicas: int, annotations: dict | None = None) -> dict:
    template_meta: dict = {"labels": {"app": name}}
    if annotations:
        template_meta["annotations"] = annotations
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": template_meta, "spec": {"containers": [{
                         "name": "web", "image": IMAGE,
                         "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def apply(cluster: Cluster, ns: str, *objs: dict) -> None:
    cluster.kubectl("apply", "-n", ns, "-f", "-", input="\n---\n".join(json.dumps(o) for o in objs))


def get(cluster: Cluster, ns: str, *args: str) -> dict:
    return cluster.kubectl_json("get", "-n", ns, *args)


def slices_of(cluster: Cluster, ns: str, service: str) -> list[dict]:
    return get(cluster, ns, "endpointslices", "-l", f"kubernetes.io/service-name={service}")["items"]


def slice_endpoints(cluster: Cluster, ns: str, service: str) -> list[dict]:
    return [e for s in slices_of(cluster, ns, service) for e in s.get("endpoints") or ()]


def pod_ips(cluster: Cluster, ns: str, app: str) -> set[str]:
    return {p["status"]["podIP"] for p in get(cluster, ns, "pods", "-l", f"app={app}")["items"]
            if p["status"].get("podIP") and not p["metadata"].get("deletionTimestamp")}


def ready_addresses(cluster: Cluster, ns: str, name: str) -> set[str]:
    """The ready IPs in the Endpoints `name` (none while it does not exist yet)."""
    items = get(cluster, ns, "endpoints", "--field-selector", f"metadata.name={name}")["items"]
    if not items:
        return set()
    endpoints = items[0]
    return {a["ip"] for s in endpoints.get("subsets") or () for a in s.get("addresses") or ()}


def rollout(cluster: Cluster, ns: str, name: str) -> None:
    out = cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, f"--timeout={TIMEOUT}s",
                          timeout=TIMEOUT + 30, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_expose_deployment_publishes_endpoints_and_slices(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-expose")
    apply(c, ns, deployment("web", 3))
    rollout(c, ns, "web")
    c.kubectl("expose", "deployment", "web", "-n", ns, "--port=80", "--target-port=http")
    ips = pod_ips(c, ns, "web")
    assert len(ips) == 3

    eventually(lambda: ready_addresses(c, ns, "web") == ips, timeout=TIMEOUT)
    endpoints = get(c, ns, "endpoints", "web")
    [subset] = endpoints["subsets"]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP"}]  # the named targetPort, resolved per pod
    pods = {p["metadata"]["name"]: p for p in get(c, ns, "pods", "-l", "app=web")["items"]}
    for address in subset["addresses"]:
        pod = pods[address["targetRef"]["name"]]
        assert address["nodeName"] == pod["spec"]["nodeName"] and address["ip"] == pod["status"]["podIP"]
        assert address["targetRef"] == {"kind": "Pod", "namespace": ns, "name": pod["metadata"]["name"],
                                        "uid": pod["metadata"]["uid"]}
    assert endpoints["metadata"]["labels"] == {"app": "web"}
    service = get(c, ns, "service", "web")
    # The pods were ready before the Service existed: the change that made these endpoints is its creation.
    assert endpoints["metadata"]["annotations"][TRIGGER_TIME] == service["metadata"]["creationTimestamp"]

    eventually(lambda: {a for e in slice_endpoints(c, ns, "web") for a in e["addresses"]} == ips, timeout=TIMEOUT)
    [slice_] = slices_of(c, ns, "web")
    meta = slice_["metadata"]
    assert meta["generateName"] == "web-" and meta["name"].startswith("web-")
    assert meta["labels"] == {"app": "web", "kubernetes.io/service-name": "web", MANAGED_BY: SLICE_CONTROLLER}
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Service", "name": "web",
                                        "uid": service["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
    assert meta["annotations"][TRIGGER_TIME] == service["metadata"]["creationTimestamp"]
    assert slice_["addressType"] == "IPv4" and slice_["ports"] == [{"name": "", "port": 8080, "protocol": "TCP"}]
    nodes = {n["metadata"]["name"]: n for n in c.kubectl_json("get", "nodes")["items"]}
    for endpoint in slice_["endpoints"]:
        assert endpoint["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert endpoint["zone"] == nodes[endpoint["nodeName"]]["metadata"]["labels"]["topology.kubernetes.io/zone"]
        assert endpoint["targetRef"]["kind"] == "Pod"

    # What a user sees.
    rows = c.kubectl("get", "endpoints", "web", "-n", ns).stdout.splitlines()
    assert rows[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    listed = rows[1].split()[1]
    assert re.fullmatch(r"(\d+\.\d+\.\d+\.\d+:8080,){2}\d+\.\d+\.\d+\.\d+:8080", listed), listed
    rows = c.kubectl("get", "endpointslices", "-n", ns).stdout.splitlines()
    assert rows[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    name, address_type, ports, addresses, _age = rows[1].split()
    assert (name, address_type, ports) == (meta["name"], "IPv4", "8080") and set(addresses.split(",")) == ips
    describe = c.kubectl("describe", "service", "web", "-n", ns).stdout
    line = next(x for x in describe.splitlines() if x.startswith("Endpoints:"))
    assert set(line.split()[1].split(",")) == {f"{ip}:8080" for ip in ips}, describe


def test_scaling_changes_endpoints_and_slices(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-scale")
    apply(c, ns, deployment("api", 2), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"},
                                        "spec": {"selector": {"app": "api"}, "ports": [{"port": 80,
                                                                                         "targetPort": 8080}]}})
    rollout(c, ns, "api")
    eventually(lambda: ready_addresses(c, ns, "api") == pod_ips(c, ns, "api") and len(pod_ips(c, ns, "api")) == 2,
               timeout=TIMEOUT)
    c.kubectl("scale", "deployment", "api", "-n", ns, "--replicas=6")
    rollout(c, ns, "api")

    def scaled_to(n: int) -> bool:
        ips = pod_ips(c, ns, "api")
        slice_ips = {a for e in slice_endpoints(c, ns, "api") if e["conditions"]["ready"] for a in e["addresses"]}
        return len(ips) == n and ready_addresses(c, ns, "api") == ips and slice_ips == ips

    eventually(lambda: scaled_to(6), timeout=TIMEOUT)
    assert len(slices_of(c, ns, "api")) == 1  # six endpoints fit one slice
    c.kubectl("scale", "deployment", "api", "-n", ns, "--replicas=1")
    eventually(lambda: scaled_to(1), timeout=TIMEOUT)
    # Pods on their way out stay in the slices as terminating (not ready) until they are gone.
    [survivor] = pod_ips(c, ns, "api")
    for endpoint in slice_endpoints(c, ns, "api"):
        if endpoint["addresses"] != [survivor]:
            assert endpoint["conditions"]["terminating"] and not endpoint["conditions"]["ready"], endpoint
    eventually(lambda: [e["addresses"] for e in slice_endpoints(c, ns, "api")] == [[survivor]], timeout=TIMEOUT)


def test_not_ready_pods_and_publish_not_ready_addresses(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-notready")
    apply(c, ns, deployment("slow", 2, annotations={"sim.pyk8s.io/ready": "false"}),
          {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "slow"},
           "spec": {"selector": {"app": "slow"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}})
    eventually(lambda: len(pod_ips(c, ns, "slow")) == 2, timeout=TIMEOUT)
    ips = pod_ips(c, ns, "slow")

    def not_ready_published() -> bool:
        subsets = get(c, ns, "endpoints", "slow").get("subsets") or ()
        not_ready = {a["ip"] for s in subsets for a in s.get("notReadyAddresses") or ()}
        return not_ready == ips and not any(s.get("addresses") for s in subsets)

    eventually(not_ready_published, timeout=TIMEOUT)
    eventually(lambda: {a for e in slice_endpoints(c, ns, "slow") for a in e["addresses"]} == ips, timeout=TIMEOUT)
    for endpoint in slice_endpoints(c, ns, "slow"):
        assert endpoint["conditions"] == {"ready": False, "serving": False, "terminating": False}
    [slice_] = slices_of(c, ns, "slow")
    assert slice_["ports"] == [{"name": "web", "port": 8080, "protocol": "TCP"}]

    c.kubectl("patch", "service", "slow", "-n", ns, "-p", '{"spec":{"publishNotReadyAddresses":true}}')
    eventually(lambda: ready_addresses(c, ns, "slow") == ips, timeout=TIMEOUT)
    eventually(lambda: all(e["conditions"] == {"ready": True, "serving": False, "terminating": False}
                           for e in slice_endpoints(c, ns, "slow")), timeout=TIMEOUT)


def test_deleting_the_service_removes_its_endpoints_and_slices(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-delete")
    apply(c, ns, deployment("gone", 1), {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gone"},
                                         "spec": {"selector": {"app": "gone"}, "ports": [{"port": 80}]}})
    eventually(lambda: slices_of(c, ns, "gone") and get(c, ns, "endpoints").get("items"), timeout=TIMEOUT)
    c.kubectl("delete", "service", "gone", "-n", ns)
    eventually(lambda: not slices_of(c, ns, "gone") and not get(c, ns, "endpoints")["items"], timeout=TIMEOUT)


def test_service_without_pods_gets_a_placeholder_slice(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-empty")
    apply(c, ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nobody"},
                  "spec": {"selector": {"app": "nobody"}, "ports": [{"port": 80}]}})
    [placeholder] = eventually(lambda: slices_of(c, ns, "nobody"), timeout=TIMEOUT)
    assert placeholder["endpoints"] == [] and not placeholder.get("ports")
    endpoints = eventually(lambda: get(c, ns, "endpoints").get("items"), timeout=TIMEOUT)
    assert [e["metadata"]["name"] for e in endpoints] == ["nobody"] and not endpoints[0].get("subsets")
    assert c.kubectl("get", "endpoints", "nobody", "-n", ns).stdout.splitlines()[1].split()[1] == "<none>"


def test_selectorless_service_endpoints_are_mirrored_into_slices(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-mirror")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
               "spec": {"ports": [{"name": "pg", "port": 5432}]}}
    endpoints = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "db", "labels": {"team": "data"}},
                 "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "192.0.2.11"}],
                              "notReadyAddresses": [{"ip": "192.0.2.12"}],
                              "ports": [{"name": "pg", "port": 5432}]}]}
    apply(c, ns, service, endpoints)
    [mirrored] = eventually(lambda: slices_of(c, ns, "db"), timeout=TIMEOUT)
    ep_uid = get(c, ns, "endpoints", "db")["metadata"]["uid"]
    assert mirrored["metadata"]["labels"] == {"team": "data", "kubernetes.io/service-name": "db",
                                              MANAGED_BY: MIRROR_CONTROLLER}
    assert mirrored["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert mirrored["metadata"]["ownerReferences"][0]["uid"] == ep_uid
    assert "kubectl.kubernetes.io/last-applied-configuration" not in (mirrored["metadata"].get("annotations") or {})
    assert mirrored["ports"] == [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    assert sorted((e["addresses"][0], e["conditions"]["ready"]) for e in mirrored["endpoints"]) == [
        ("192.0.2.10", True), ("192.0.2.11", True), ("192.0.2.12", False)]
    # The Endpoints controller leaves a selector-less Service's Endpoints as the user wrote them.
    assert ready_addresses(c, ns, "db") == {"192.0.2.10", "192.0.2.11"}

    endpoints["subsets"][0]["addresses"] = [{"ip": "192.0.2.20"}]
    endpoints["subsets"][0].pop("notReadyAddresses")
    apply(c, ns, endpoints)
    eventually(lambda: [e["addresses"] for e in slice_endpoints(c, ns, "db")] == [["192.0.2.20"]], timeout=TIMEOUT)
    assert [s["metadata"]["name"] for s in slices_of(c, ns, "db")] == [mirrored["metadata"]["name"]]  # updated

    c.kubectl("delete", "endpoints", "db", "-n", ns)
    eventually(lambda: not slices_of(c, ns, "db"), timeout=TIMEOUT)


def test_the_kubernetes_service_keeps_the_apiservers_endpoints(net_cluster: Cluster):
    c = net_cluster
    slices = slices_of(c, "default", "kubernetes")
    assert [s["metadata"]["name"] for s in slices] == ["kubernetes"]  # nothing mirrored beside it
    assert MANAGED_BY not in slices[0]["metadata"].get("labels", {})
    assert get(c, "default", "endpoints", "kubernetes")["subsets"][0]["addresses"]


def test_headless_service_publishes_pod_hostnames(net_cluster: Cluster):
    c = net_cluster
    ns = make_namespace(c, "ep-headless")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
               "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 5432}]}}
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"db-{i}", "labels": {"app": "db"}},
             "spec": {"hostname": f"db-{i}", "subdomain": "db" if i == 0 else "elsewhere",
                      "containers": [{"name": "db", "image": IMAGE}]}} for i in range(2)]
    apply(c, ns, service, *pods)
    eventually(lambda: len(ready_addresses(c, ns, "db")) == 2, timeout=TIMEOUT)
    endpoints = get(c, ns, "endpoints", "db")
    assert endpoints["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
    hostnames = {a["targetRef"]["name"]: a.get("hostname") for a in endpoints["subsets"][0]["addresses"]}
    assert hostnames == {"db-0": "db-0", "db-1": None}  # only the pod whose subdomain names the Service
    eventually(lambda: len(slice_endpoints(c, ns, "db")) == 2, timeout=TIMEOUT)
    [slice_] = slices_of(c, ns, "db")
    assert slice_["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
    assert {e["targetRef"]["name"]: e.get("hostname") for e in slice_["endpoints"]} == hostnames
