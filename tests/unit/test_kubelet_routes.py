"""Host-gateway pod routes: the pure decisions (desired routes, the diff against the table, parsing `ip -j`,
the masquerade ruleset) and the controller's sync against an in-memory routing table."""

from __future__ import annotations

import json

import pytest

from pyk8s.kubelet.routes import (
    ROUTE_PROTO,
    HostGatewayRoutes,
    InstalledRoutes,
    NetworkCommandError,
    NodeNetwork,
    PodRoute,
    RoutePlan,
    RouteSyncError,
    describe_batch_failure,
    desired_routes,
    masquerade_script,
    node_internal_ips,
    parse_ip_routes,
    plan_routes,
    route_batch,
)


def node(name: str, cidrs: list[str] | None = None, ips: list[str] | None = None, *, legacy: str | None = None) -> dict:
    spec: dict = {}
    if cidrs is not None:
        spec["podCIDRs"] = cidrs
        spec["podCIDR"] = cidrs[0] if cidrs else None
    if legacy is not None:
        spec["podCIDR"] = legacy
    addresses = [{"type": "Hostname", "address": name}] + [{"type": "InternalIP", "address": ip} for ip in ips or []]
    return {"metadata": {"name": name}, "spec": spec, "status": {"addresses": addresses}}


# ---- desired_routes ------------------------------------------------------------------------------------------


def test_every_other_node_gets_a_route_through_its_internal_ip():
    nodes = [node("a", ["10.42.0.0/24"], ["192.168.1.1"]), node("b", ["10.42.1.0/24"], ["192.168.1.2"]),
             node("c", ["10.42.2.0/24"], ["192.168.1.3"])]
    desired = desired_routes(nodes, "a")
    assert desired.routes == {"10.42.1.0/24": PodRoute("10.42.1.0/24", "192.168.1.2"),
                              "10.42.2.0/24": PodRoute("10.42.2.0/24", "192.168.1.3")}
    assert desired.problems == []


def test_nodes_without_cidr_or_address_get_no_route_and_are_reported():
    nodes = [node("a", ["10.42.0.0/24"], ["192.168.1.1"]), node("no-cidr", None, ["192.168.1.2"]),
             node("no-ip", ["10.42.2.0/24"], [])]
    desired = desired_routes(nodes, "a")
    assert desired.routes == {}
    assert desired.problems == ["node no-ip: no IPv4 InternalIP to route 10.42.2.0/24 through"]


def test_legacy_pod_cidr_field_alone_is_used():
    desired = desired_routes([node("b", ips=["192.168.1.2"], legacy="10.42.1.0/24")], "a")
    assert desired.routes == {"10.42.1.0/24": PodRoute("10.42.1.0/24", "192.168.1.2")}


def test_dual_stack_routes_each_family_through_its_own_address():
    nodes = [node("b", ["10.42.1.0/24", "fd00:42:0:1::/64"], ["fd00:1::2", "192.168.1.2", "192.168.1.20"])]
    assert node_internal_ips(nodes[0]) == {6: "fd00:1::2", 4: "192.168.1.2"}
    assert desired_routes(nodes, "a").routes == {
        "10.42.1.0/24": PodRoute("10.42.1.0/24", "192.168.1.2"),
        "fd00:42:0:1::/64": PodRoute("fd00:42:0:1::/64", "fd00:1::2")}


def test_cidrs_are_normalised_and_malformed_ones_reported():
    desired = desired_routes([node("b", ["10.42.1.7/24"], ["192.168.1.2"]), node("c", ["bogus"], ["192.168.1.3"])],
                             "a")
    assert list(desired.routes) == ["10.42.1.0/24"]
    assert desired.problems == ["node c: podCIDR 'bogus' is not a CIDR"]


def test_a_cidr_overlapping_our_own_is_never_routed_away_from_our_bridge():
    nodes = [node("a", ["10.42.0.0/24"], ["192.168.1.1"]), node("b", ["10.42.0.0/23"], ["192.168.1.2"])]
    desired = desired_routes(nodes, "a")
    assert desired.routes == {}
    assert desired.problems == ["node b: podCIDR 10.42.0.0/23 overlaps this node's podCIDR"]


def test_a_cidr_claimed_twice_goes_to_the_first_node_by_name():
    nodes = [node("z", ["10.42.5.0/24"], ["192.168.1.26"]), node("m", ["10.42.5.0/24"], ["192.168.1.13"])]
    desired = desired_routes(nodes, "a")
    assert desired.routes == {"10.42.5.0/24": PodRoute("10.42.5.0/24", "192.168.1.13")}
    assert desired.problems == ["node z: podCIDR 10.42.5.0/24 is also node m's"]


def test_a_node_claiming_our_address_is_not_a_gateway():
    nodes = [node("a", ["10.42.0.0/24"], ["192.168.1.1"]), node("b", ["10.42.1.0/24"], ["192.168.1.1"])]
    desired = desired_routes(nodes, "a")
    assert desired.routes == {}
    assert desired.problems == ["node b: InternalIP 192.168.1.1 is this node's own address"]


def test_before_our_own_node_exists_the_others_are_still_routed():
    assert list(desired_routes([node("b", ["10.42.1.0/24"], ["192.168.1.2"])], "a").routes) == ["10.42.1.0/24"]


# ---- plan_routes ---------------------------------------------------------------------------------------------


B = PodRoute("10.42.1.0/24", "192.168.1.2")
C = PodRoute("10.42.2.0/24", "192.168.1.3")


def test_plan_adds_missing_replaces_changed_and_deletes_stale_routes_of_ours():
    moved = PodRoute("10.42.1.0/24", "192.168.1.9")
    gone = PodRoute("10.42.7.0/24", "192.168.1.7")
    installed = InstalledRoutes(ours={B.dst: moved, gone.dst: gone}, foreign={"192.168.1.0/24", "0.0.0.0/0"})
    plan = plan_routes({B.dst: B, C.dst: C}, installed)
    assert plan.replace == [B, C]
    assert plan.delete == [gone]
    assert plan.conflicts == []


def test_plan_is_empty_when_the_table_already_matches():
    plan = plan_routes({B.dst: B}, InstalledRoutes(ours={B.dst: B}))
    assert plan.empty and plan.conflicts == []


def test_plan_never_overrides_a_foreign_route_to_the_same_destination():
    plan = plan_routes({B.dst: B}, InstalledRoutes(foreign={B.dst}))
    assert plan.replace == [] and plan.delete == []
    assert plan.conflicts == [B]


def test_plan_keeps_managing_our_route_beside_a_foreign_one():
    moved = PodRoute(B.dst, "192.168.1.9")
    plan = plan_routes({B.dst: B}, InstalledRoutes(ours={B.dst: moved}, foreign={B.dst}))
    assert plan.replace == [B]


# ---- parse_ip_routes -----------------------------------------------------------------------------------------


def test_parse_splits_our_routes_from_everyone_elses():
    output = json.dumps([
        {"dst": "default", "gateway": "192.168.1.254", "dev": "eth0", "flags": []},
        {"dst": "10.1.1.1", "gateway": "192.168.1.2", "dev": "eth0", "metric": 5, "flags": []},
        {"dst": "10.42.1.0/24", "gateway": "192.168.1.2", "dev": "eth0", "protocol": str(ROUTE_PROTO), "flags": []},
        {"dst": "10.42.2.0/24", "gateway": "192.168.1.3", "dev": "eth0", "protocol": "12", "flags": []},
        {"dst": "192.168.1.0/24", "dev": "eth0", "protocol": "2", "scope": "253", "prefsrc": "192.168.1.1"},
    ])
    installed = parse_ip_routes(output, 4)
    assert installed.ours == {"10.42.1.0/24": PodRoute("10.42.1.0/24", "192.168.1.2")}
    assert installed.foreign == {"0.0.0.0/0", "10.1.1.1/32", "10.42.2.0/24", "192.168.1.0/24"}


def test_parse_ipv6_default_and_empty_output():
    output = json.dumps([{"dst": "default", "gateway": "fe80::1", "dev": "eth0", "metric": 1024},
                         {"dst": "fd00:42::/64", "gateway": "fd00:1::2", "protocol": str(ROUTE_PROTO)}])
    installed = parse_ip_routes(output, 6)
    assert installed.foreign == {"::/0"}
    assert installed.ours == {"fd00:42::/64": PodRoute("fd00:42::/64", "fd00:1::2")}
    assert parse_ip_routes("", 4) == InstalledRoutes()


# ---- masquerade_script ---------------------------------------------------------------------------------------


def test_masquerade_script_keeps_pod_to_pod_sources_and_masquerades_the_rest():
    script = masquerade_script(["10.42.0.0/16", "fd00:42::/56"], table="t")
    lines = script.splitlines()
    # Re-creating the table atomically: add (so delete cannot fail), delete, add with the fresh rules.
    assert lines[:2] == ["add table inet t", "delete table inet t"]
    assert "add chain inet t postrouting { type nat hook postrouting priority srcnat ; policy accept ; }" in lines
    assert lines[-4:] == [
        "add rule inet t postrouting ip saddr 10.42.0.0/16 ip daddr 10.42.0.0/16 return",
        "add rule inet t postrouting ip saddr 10.42.0.0/16 ip daddr != 224.0.0.0/4 masquerade fully-random",
        "add rule inet t postrouting ip6 saddr fd00:42::/56 ip6 daddr fd00:42::/56 return",
        "add rule inet t postrouting ip6 saddr fd00:42::/56 ip6 daddr != ff00::/8 masquerade fully-random",
    ]


def test_masquerade_script_rejects_a_bad_cluster_cidr():
    with pytest.raises(ValueError, match="'10.42.0.0/99' is not a CIDR"):
        masquerade_script(["10.42.0.0/99"])


def test_route_batch_deletes_only_our_route_then_replaces():
    gone = PodRoute("10.42.7.0/24", "192.168.1.7")
    assert route_batch(RoutePlan(replace=[B, C], delete=[gone]), proto=107).splitlines() == [
        "route del 10.42.7.0/24 via 192.168.1.7 proto 107",
        "route replace 10.42.1.0/24 via 192.168.1.2 proto 107",
        "route replace 10.42.2.0/24 via 192.168.1.3 proto 107"]
    assert route_batch(RoutePlan()) == ""


def test_batch_failures_name_the_routes_that_failed():
    script = route_batch(RoutePlan(replace=[B, C]))
    stderr = "Error: Nexthop has invalid gateway.\nCommand failed -:2\n"
    assert describe_batch_failure(script, stderr) == (
        f"route replace 10.42.2.0/24 via 192.168.1.3 proto {ROUTE_PROTO}: Error: Nexthop has invalid gateway.")
    assert describe_batch_failure(script, "Object \"x\" is unknown") == 'Object "x" is unknown'


# ---- NodeNetwork command lines -------------------------------------------------------------------------------


class RecordingNetwork(NodeNetwork):
    def __init__(self, netns: str | None):
        super().__init__(netns)
        self.commands: list[tuple[list[str], str | None]] = []

    async def _run(self, argv: list[str], stdin: str | None = None) -> str:
        self.commands.append((argv, stdin))
        return "[]"


async def test_route_commands_name_the_namespace_gateway_and_our_proto():
    network = RecordingNetwork("node-a")
    plan = RoutePlan(replace=[B], delete=[C])
    await network.apply(plan)
    await network.apply(RoutePlan())  # nothing to do: no command at all
    await network.enable_forwarding(4)
    await network.load_masquerade(["10.42.0.0/16"])
    assert network.commands == [
        (["ip", "-n", "node-a", "-force", "-batch", "-"], route_batch(plan)),
        (["ip", "netns", "exec", "node-a", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], None),
        (["ip", "netns", "exec", "node-a", "nft", "-f", "-"], masquerade_script(["10.42.0.0/16"]))]


async def test_without_a_namespace_commands_run_in_our_own():
    network = RecordingNetwork(None)
    await network.apply(RoutePlan(replace=[B]))
    await network.installed_routes()
    assert [argv for argv, _ in network.commands] == [
        ["ip", "-force", "-batch", "-"],
        ["ip", "-N", "-j", "-4", "route", "show", "table", "main"],
        ["ip", "-N", "-j", "-6", "route", "show", "table", "main"]]


# ---- the controller's sync -----------------------------------------------------------------------------------


class FakeNetwork(NodeNetwork):
    """An in-memory main table: ours by dst, foreign destinations; optionally unreachable gateways."""

    def __init__(self):
        super().__init__(None)
        self.ours: dict[str, PodRoute] = {}
        self.foreign: set[str] = {"192.168.1.0/24"}
        self.unreachable: set[str] = set()
        self.forwarding: set[int] = set()
        self.masquerade_loads: list[list[str]] = []
        self.reads = 0

    async def installed_routes(self) -> InstalledRoutes:
        self.reads += 1
        return InstalledRoutes(ours=dict(self.ours), foreign=set(self.foreign))

    async def apply(self, plan: RoutePlan) -> None:
        # Like `ip -force -batch`: every line is tried, a failing one fails the whole command.
        for route in plan.delete:
            assert self.ours.pop(route.dst) == route
        failed = False
        for route in plan.replace:
            if route.gateway in self.unreachable:
                failed = True
            else:
                self.ours[route.dst] = route
        if failed:
            raise NetworkCommandError(["ip", "-batch"], 1, "Error: Nexthop has invalid gateway.\nCommand failed -:2")

    async def enable_forwarding(self, family: int) -> None:
        self.forwarding.add(family)

    async def load_masquerade(self, cluster_cidrs) -> None:
        self.masquerade_loads.append(list(cluster_cidrs))


def controller(network: FakeNetwork, nodes: list[dict], cluster_cidrs: tuple[str, ...] = ()) -> HostGatewayRoutes:
    routes = HostGatewayRoutes(None, "a", network=network, resync_period=3600,  # type: ignore[arg-type]
                               cluster_cidrs=cluster_cidrs)
    for n in nodes:
        routes.informer.indexer.upsert(n["metadata"]["name"], n)
    return routes


async def test_sync_installs_updates_and_removes_routes_as_nodes_change():
    network = FakeNetwork()
    network.foreign.add("10.99.0.0/24")  # an admin's static route: never touched
    routes = controller(network, [node("a", ["10.42.0.0/24"], ["192.168.1.1"]),
                                  node("b", ["10.42.1.0/24"], ["192.168.1.2"])])
    await routes.sync()
    assert network.ours == {B.dst: B}
    assert network.forwarding == {4}
    assert routes.synced.is_set()

    routes.informer.indexer.upsert("b", node("b", ["10.42.1.0/24"], ["192.168.1.22"]))
    routes.informer.indexer.upsert("c", node("c", ["10.42.2.0/24"], ["192.168.1.3"]))
    await routes.sync()
    assert network.ours == {B.dst: PodRoute(B.dst, "192.168.1.22"), C.dst: C}

    routes.informer.indexer.remove("b")
    await routes.sync()
    assert network.ours == {C.dst: C}
    assert "10.99.0.0/24" in network.foreign


async def test_sync_reads_the_table_only_when_nodes_changed_or_a_resync_is_due():
    network = FakeNetwork()
    routes = controller(network, [node("b", ["10.42.1.0/24"], ["192.168.1.2"])])
    await routes.sync()
    await routes.sync()  # a node status update that changes no route
    assert network.reads == 1
    network.ours.clear()  # the kernel dropped the route (its interface went down)
    routes.resync_period = 0
    await routes.sync()
    assert network.reads == 2 and network.ours == {B.dst: B}


async def test_forwarding_and_masquerade_are_set_up_once_and_again_at_each_resync():
    network = FakeNetwork()
    routes = controller(network, [node("b", ["10.42.1.0/24", "fd00:42:0:1::/64"], ["192.168.1.2", "fd00:1::2"])],
                        cluster_cidrs=("10.42.0.0/16",))
    await routes.sync()
    assert network.forwarding == {4, 6}
    assert network.masquerade_loads == [["10.42.0.0/16"]]
    routes.informer.indexer.upsert("c", node("c", ["10.42.2.0/24"], ["192.168.1.3"]))
    await routes.sync()  # a route change, no resync: the node setup is not redone
    assert network.masquerade_loads == [["10.42.0.0/16"]]
    network.forwarding.clear()  # someone switched forwarding off
    routes.resync_period = 0
    await routes.sync()
    assert network.forwarding == {4, 6}
    assert len(network.masquerade_loads) == 2


async def test_without_routes_or_cluster_cidr_ipv4_forwarding_is_still_on():
    network = FakeNetwork()
    await controller(network, []).sync()
    assert network.forwarding == {4} and network.masquerade_loads == []


async def test_a_failed_route_fails_the_sync_and_the_next_one_retries_it():
    network = FakeNetwork()
    network.unreachable.add("192.168.1.3")
    routes = controller(network, [node("b", ["10.42.1.0/24"], ["192.168.1.2"]),
                                  node("c", ["10.42.2.0/24"], ["192.168.1.3"])])
    with pytest.raises(RouteSyncError, match="invalid gateway"):
        await routes.sync()
    assert network.ours == {B.dst: B}  # the other routes still went in
    network.unreachable.clear()
    await routes.sync()
    assert network.ours == {B.dst: B, C.dst: C}


async def test_a_conflicting_foreign_route_is_left_alone_until_it_goes():
    network = FakeNetwork()
    network.foreign.add(B.dst)
    routes = controller(network, [node("b", ["10.42.1.0/24"], ["192.168.1.2"])])
    await routes.sync()
    assert network.ours == {}
    network.foreign.discard(B.dst)
    routes.resync_period = 0
    await routes.sync()
    assert network.ours == {B.dst: B}


async def test_remove_all_deletes_only_our_routes():
    network = FakeNetwork()
    removed_tables: list[bool] = []

    async def remove_masquerade() -> None:
        removed_tables.append(True)

    network.remove_masquerade = remove_masquerade  # type: ignore[method-assign]
    network.ours = {B.dst: B, C.dst: C}
    routes = controller(network, [])
    await routes.remove_all()
    assert network.ours == {} and network.foreign == {"192.168.1.0/24"}
    assert removed_tables == [True]


def test_a_bad_cluster_cidr_is_refused_up_front():
    with pytest.raises(ValueError, match="not a CIDR"):
        HostGatewayRoutes(None, "a", cluster_cidrs=["10.42.0.0/33"])  # type: ignore[arg-type]
