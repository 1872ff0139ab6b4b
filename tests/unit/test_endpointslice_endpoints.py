"""Endpoints-controller pieces without a server: which pods count, readiness buckets, named target ports,
hostnames, RepackSubsets, over-capacity truncation, trigger times and which Services a pod change concerns."""

from __future__ import annotations

from datetime import UTC, datetime

from pyk8s.controllers.endpoints import desired_labels, desired_subsets, repack_subsets, truncate_subsets
from pyk8s.controllers.endpoints_util import (
    TriggerTimeTracker,
    find_port,
    format_trigger_time,
    pod_endpoints_changed,
    should_pod_be_in_endpoints,
)


def make_pod(name: str, ip: str | None = "10.42.0.5", *, ready: bool = True, phase: str = "Running",
             node: str = "n1", labels: dict | None = None, ports: list[dict] | None = None,
             restart_policy: str = "Always", deleting: bool = False, hostname: str | None = None,
             subdomain: str | None = None, ready_since: str = "2026-01-01T00:00:10Z", ips: list[str] | None = None,
             namespace: str = "ns") -> dict:
    meta: dict = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {"app": "web"},
                  "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    spec: dict = {"nodeName": node, "restartPolicy": restart_policy,
                  "containers": [{"name": "c", "image": "nginx", "ports": ports or []}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    status: dict = {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ready_since}]}
    if ips is not None:
        status["podIP"] = ips[0]
        status["podIPs"] = [{"ip": i} for i in ips]
    elif ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def make_service(name: str = "web", *, ports: list[dict] | None = None, selector: dict | None = None,
                 cluster_ip: str = "10.43.0.20", families: list[str] | None = None, publish: bool = False,
                 labels: dict | None = None) -> dict:
    spec: dict = {"selector": selector if selector is not None else {"app": "web"}, "clusterIP": cluster_ip,
                  "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": 8080,
                                                             "protocol": "TCP"}],
                  "ipFamilies": families or ["IPv4"]}
    if publish:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "ns", "uid": f"svc-{name}", "labels": labels or {},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec}


def ips(addresses: list[dict] | None) -> list[str]:
    return [a["ip"] for a in addresses or ()]


def test_ready_and_not_ready_pods_split_into_addresses_and_not_ready_addresses():
    pods = [make_pod("a", "10.42.0.2"), make_pod("b", "10.42.0.3", ready=False), make_pod("c", "10.42.0.1")]
    [subset] = desired_subsets(make_service(), pods)
    assert ips(subset["addresses"]) == ["10.42.0.1", "10.42.0.2"]  # sorted
    assert ips(subset["notReadyAddresses"]) == ["10.42.0.3"]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert subset["addresses"][0] == {"ip": "10.42.0.1", "nodeName": "n1",
                                      "targetRef": {"kind": "Pod", "namespace": "ns", "name": "c", "uid": "uid-c"}}


def test_publish_not_ready_addresses_puts_everyone_in_addresses_including_terminating():
    pods = [make_pod("a", "10.42.0.2", ready=False), make_pod("b", "10.42.0.3", deleting=True)]
    [subset] = desired_subsets(make_service(publish=True), pods)
    assert ips(subset["addresses"]) == ["10.42.0.2", "10.42.0.3"]
    assert "notReadyAddresses" not in subset


def test_terminating_finished_and_ipless_pods_are_left_out():
    pods = [make_pod("term", "10.42.0.2", deleting=True), make_pod("noip", None),
            make_pod("done", "10.42.0.4", phase="Succeeded", ready=False, restart_policy="OnFailure"),
            make_pod("failed-never", "10.42.0.5", phase="Failed", ready=False, restart_policy="Never"),
            make_pod("failed-onfailure", "10.42.0.6", phase="Failed", ready=False, restart_policy="OnFailure")]
    [subset] = desired_subsets(make_service(), pods)
    # Only the OnFailure pod that failed will be restarted, so it stays (not ready).
    assert ips(subset.get("notReadyAddresses")) == ["10.42.0.6"] and "addresses" not in subset
    assert should_pod_be_in_endpoints(pods[0], include_terminating=True)
    assert not should_pod_be_in_endpoints(pods[0], include_terminating=False)


def test_named_target_port_resolves_per_pod_and_splits_subsets():
    service = make_service(ports=[{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}])
    pods = [make_pod("a", "10.42.0.2", ports=[{"name": "web", "containerPort": 8080, "protocol": "TCP"}]),
            make_pod("b", "10.42.0.3", ports=[{"name": "web", "containerPort": 9090}]),
            make_pod("c", "10.42.0.4", ports=[{"name": "other", "containerPort": 7070}])]
    subsets = desired_subsets(service, pods)
    assert [(ips(s["addresses"]), s["ports"][0]["port"]) for s in subsets] == [(["10.42.0.2"], 8080),
                                                                              (["10.42.0.3"], 9090)]


def test_find_port_matches_protocol_and_sidecars():
    pod = make_pod("a", ports=[{"name": "dns", "containerPort": 53, "protocol": "UDP"}])
    pod["spec"]["initContainers"] = [{"name": "side", "restartPolicy": "Always",
                                      "ports": [{"name": "metrics", "containerPort": 9100}]},
                                     {"name": "init", "ports": [{"name": "setup", "containerPort": 1}]}]
    assert find_port(pod, {"port": 53, "targetPort": "dns", "protocol": "UDP"}) == 53
    assert find_port(pod, {"port": 53, "targetPort": "dns", "protocol": "TCP"}) is None
    assert find_port(pod, {"port": 9100, "targetPort": "metrics"}) == 9100
    assert find_port(pod, {"port": 1, "targetPort": "setup"}) is None  # a plain init container has exited
    assert find_port(pod, {"port": 80}) == 80  # targetPort defaults to port


def test_multiple_ports_share_one_subset_and_hostname_needs_matching_subdomain():
    service = make_service(ports=[{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"}])
    pods = [make_pod("a", "10.42.0.2", hostname="a", subdomain="web"),
            make_pod("b", "10.42.0.3", hostname="b", subdomain="other")]
    [subset] = desired_subsets(service, pods)
    assert [p["name"] for p in subset["ports"]] == ["http", "metrics"]
    assert subset["addresses"][0]["hostname"] == "a" and "hostname" not in subset["addresses"][1]


def test_ip_family_of_the_service_picks_the_pod_ip():
    pod = make_pod("a", ips=["10.42.0.2", "fd00::2"])
    [v6] = desired_subsets(make_service(families=["IPv6"], cluster_ip="fd00:43::20"), [pod])
    assert ips(v6["addresses"]) == ["fd00::2"]
    assert desired_subsets(make_service(families=["IPv6"]), [make_pod("b", "10.42.0.3")]) == []


def test_headless_service_without_ports_publishes_addresses_without_ports():
    service = make_service(ports=[], cluster_ip="None")
    [subset] = desired_subsets(service, [make_pod("a", "10.42.0.2")])
    assert ips(subset["addresses"]) == ["10.42.0.2"] and "ports" not in subset
    assert desired_subsets(make_service(ports=[]), [make_pod("a", "10.42.0.2")]) == []  # not headless: nothing
    assert desired_labels(service) == {"service.kubernetes.io/headless": ""}
    assert desired_labels(make_service(labels={"tier": "x", "service.kubernetes.io/headless": ""})) == {"tier": "x"}


def test_repack_groups_addresses_by_identical_port_sets_and_ready_wins():
    a = {"ip": "10.0.0.1"}
    b = {"ip": "10.0.0.2"}
    p80 = {"name": "a", "port": 80, "protocol": "TCP"}
    p81 = {"name": "b", "port": 81, "protocol": "TCP"}
    subsets = [{"addresses": [a], "ports": [p80]}, {"addresses": [a], "ports": [p81]},
               {"notReadyAddresses": [b], "ports": [p80]}, {"addresses": [b], "ports": [p80]},
               {"notReadyAddresses": [a], "ports": [p80]}]
    packed = repack_subsets(subsets)
    assert packed == [{"addresses": [a, b], "ports": [p80]}, {"addresses": [a], "ports": [p81]}]
    assert repack_subsets(list(reversed(subsets))) == packed  # order of input does not matter


def test_truncation_keeps_ready_first_and_spreads_proportionally():
    def addrs(prefix: str, n: int) -> list[dict]:
        return [{"ip": f"{prefix}.{i // 250}.{i % 250}"} for i in range(n)]

    subsets = [{"addresses": addrs("10.1", 600), "notReadyAddresses": addrs("10.2", 300)},
               {"addresses": addrs("10.3", 300), "notReadyAddresses": addrs("10.4", 100)}]
    kept, truncated = truncate_subsets(subsets, 1000)
    assert truncated
    assert [len(s["addresses"]) for s in kept] == [600, 300]  # all 900 ready survive
    assert [len(s.get("notReadyAddresses", [])) for s in kept] == [75, 25]  # 100 left, split 3:1
    many = [{"addresses": addrs("10.5", 1500)},
            {"addresses": addrs("10.6", 500), "notReadyAddresses": addrs("10.7", 9)}]
    kept, truncated = truncate_subsets(many, 1000)
    assert truncated and [len(s["addresses"]) for s in kept] == [750, 250]
    assert all("notReadyAddresses" not in s for s in kept)
    assert truncate_subsets(subsets[1:], 1000) == (subsets[1:], False)


def test_trigger_time_is_service_creation_first_then_earliest_changed_pod():
    tracker = TriggerTimeTracker()
    service = make_service()
    pods = [make_pod("a", ready_since="2026-01-01T00:00:10Z"), make_pod("b", ready_since="2026-01-01T00:00:20Z")]
    assert tracker.compute("ns/web", service, pods) == datetime(2026, 1, 1, tzinfo=UTC)  # first sight: creation
    assert tracker.compute("ns/web", service, pods) is None  # nothing changed since
    pods[1] = make_pod("b", ready_since="2026-01-01T00:05:00Z")
    pods.append(make_pod("c", ready_since="2026-01-01T00:04:00.250Z"))
    assert tracker.compute("ns/web", service, pods) == datetime(2026, 1, 1, 0, 4, 0, 250000, tzinfo=UTC)
    assert format_trigger_time(datetime(2026, 1, 1, 0, 4, 0, 250000, tzinfo=UTC)) == "2026-01-01T00:04:00.25Z"
    assert format_trigger_time(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"


def test_pod_changes_that_matter_to_endpoints():
    old = make_pod("a")
    assert pod_endpoints_changed(old, {**old, "metadata": {**old["metadata"], "annotations": {"x": "y"}}}) == (
        False, False)
    assert pod_endpoints_changed(old, make_pod("a", ready=False)) == (True, False)
    assert pod_endpoints_changed(old, make_pod("a", "10.42.0.9")) == (True, False)
    assert pod_endpoints_changed(old, make_pod("a", labels={"app": "other"})) == (False, True)
    assert pod_endpoints_changed(old, make_pod("a", hostname="h", subdomain="web")) == (False, True)
    assert pod_endpoints_changed(old, make_pod("a", deleting=True)) == (True, False)
