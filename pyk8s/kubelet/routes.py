"""Pod traffic between nodes, host-gateway style (flannel's host-gw backend, kube-router's direct routes).

Every node's pods live on the node's own bridge (`cni0`, the node's spec.podCIDR). For a pod on node A to reach
a pod on node B, node A needs one route per other node: `<B's podCIDR> via <B's InternalIP>`, and node B must
forward what arrives for its bridge. `HostGatewayRoutes` keeps those routes in the main routing table of one
network namespace (the agent's own by default) from an informer on Nodes:

- routes it installs carry a routing protocol number of their own (`ROUTE_PROTO`, like kube-router's 0x11 or
  Calico's 80), so it recognises and removes only its own routes and never replaces a route someone else made
  for the same destination;
- a node that is deleted, or whose podCIDR or InternalIP changes, has its route removed or replaced;
- the table is re-read every `resync_period` seconds, so routes the kernel dropped (an interface going down
  drops every route through it) come back;
- it turns on IP forwarding (a per-network-namespace sysctl) and, given the cluster CIDR, masquerades pod traffic
  leaving the cluster CIDR while pod-to-pod traffic keeps its pod source address (flannel's --ip-masq rules,
  in an nftables table of its own).

Routes are left in place when the agent stops, so pods keep talking across nodes while it restarts;
`remove_all()` takes everything it made away (for an uninstall).

The pure parts (`desired_routes`, `plan_routes`, `parse_ip_routes`, `route_batch`, `masquerade_script`) hold
every decision; `NodeNetwork` only runs `ip`, `sysctl` and `nft`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..client import APIClient, Informer

log = logging.getLogger("pyk8s.kubelet.routes")

# Unassigned in iproute2's rt_protos (kube-router uses 17, Calico 80, BIRD 12): marks the routes this module owns.
ROUTE_PROTO = 107
NFT_TABLE = "pyk8s-hostgw"
DEFAULT_RESYNC_PERIOD = 10.0  # how soon a route the kernel dropped comes back
COMMAND_TIMEOUT = 30.0
MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
FORWARDING_SYSCTL = {4: "net.ipv4.ip_forward", 6: "net.ipv6.conf.all.forwarding"}


@dataclass(frozen=True, order=True)
class PodRoute:
    """`dst via gateway`: one other node's pod subnet reached through that node's address."""

    dst: str  # normalised network, e.g. "10.42.1.0/24"
    gateway: str

    @property
    def family(self) -> int:
        return ipaddress.ip_network(self.dst).version


@dataclass
class DesiredRoutes:
    routes: dict[str, PodRoute] = field(default_factory=dict)  # by dst
    problems: list[str] = field(default_factory=list)  # node CIDRs that get no route, and why


@dataclass
class InstalledRoutes:
    ours: dict[str, PodRoute] = field(default_factory=dict)  # by dst: routes carrying ROUTE_PROTO
    foreign: set[str] = field(default_factory=set)  # destinations of every other route in the table


@dataclass
class RoutePlan:
    replace: list[PodRoute] = field(default_factory=list)
    delete: list[PodRoute] = field(default_factory=list)
    conflicts: list[PodRoute] = field(default_factory=list)  # wanted, but another route owns the destination

    @property
    def empty(self) -> bool:
        return not (self.replace or self.delete)


# ---- pure decisions ----------------------------------------------------------------------------------------


def node_pod_cidrs(node: Mapping) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


def node_internal_ips(node: Mapping) -> dict[int, str]:
    """The first InternalIP of each IP family (a dual-stack node routes each family through its own address)."""
    found: dict[int, str] = {}
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") != "InternalIP":
            continue
        try:
            ip = ipaddress.ip_address(address.get("address", ""))
        except ValueError:
            continue
        found.setdefault(ip.version, str(ip))
    return found


def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


def parse_cluster_cidrs(cidrs: Iterable[str]) -> list[str]:
    """The cluster CIDR(s) normalised; ValueError naming the first one that is not a CIDR."""
    parsed = []
    for cidr in cidrs:
        net = _network(cidr)
        if net is None:
            raise ValueError(f"cluster CIDR {cidr!r} is not a CIDR")
        parsed.append(str(net))
    return parsed


def desired_routes(nodes: Iterable[Mapping], own_node: str) -> DesiredRoutes:
    """One route per pod CIDR of every other node that has an InternalIP of the CIDR's family.

    A CIDR gets no route (and a line in `problems`) when it is malformed, overlaps this node's own pod CIDRs
    (the bridge's connected route must stay in charge of those), is claimed by two nodes (the first by name
    wins, as a deterministic choice until IPAM sorts it out), or points at one of this node's own addresses.
    """
    nodes = sorted(nodes, key=lambda n: (n.get("metadata") or {}).get("name", ""))
    own = next((n for n in nodes if (n.get("metadata") or {}).get("name") == own_node), None)
    own_cidrs = [net for net in map(_network, node_pod_cidrs(own)) if net is not None] if own else []
    own_ips = set(node_internal_ips(own).values()) if own else set()
    result = DesiredRoutes()
    owners: dict[str, str] = {}
    for node in nodes:
        name = (node.get("metadata") or {}).get("name", "")
        if name == own_node:
            continue
        ips = node_internal_ips(node)
        for cidr in node_pod_cidrs(node):
            net = _network(cidr)
            if net is None:
                result.problems.append(f"node {name}: podCIDR {cidr!r} is not a CIDR")
                continue
            dst = str(net)
            gateway = ips.get(net.version)
            if gateway is None:
                result.problems.append(f"node {name}: no IPv{net.version} InternalIP to route {dst} through")
            elif gateway in own_ips:
                result.problems.append(f"node {name}: InternalIP {gateway} is this node's own address")
            elif any(net.version == mine.version and net.overlaps(mine) for mine in own_cidrs):
                result.problems.append(f"node {name}: podCIDR {dst} overlaps this node's podCIDR")
            elif dst in owners:
                result.problems.append(f"node {name}: podCIDR {dst} is also node {owners[dst]}'s")
            else:
                owners[dst] = name
                result.routes[dst] = PodRoute(dst, gateway)
    return result


def plan_routes(desired: Mapping[str, PodRoute], installed: InstalledRoutes) -> RoutePlan:
    """What turns the installed routes into the desired ones, touching only routes of our own.

    A destination that only a foreign route (static, kernel, another daemon) covers is a conflict: ours would
    replace or shadow it, so it is left alone and reported instead.
    """
    plan = RoutePlan()
    for dst, route in sorted(desired.items()):
        current = installed.ours.get(dst)
        if current == route:
            continue
        if current is None and dst in installed.foreign:
            plan.conflicts.append(route)
        else:
            plan.replace.append(route)
    plan.delete = [route for dst, route in sorted(installed.ours.items()) if dst not in desired]
    return plan


def parse_ip_routes(output: str, family: int, proto: int = ROUTE_PROTO) -> InstalledRoutes:
    """`ip -N -j -<family> route show table main` output split into our routes and everyone else's."""
    installed = InstalledRoutes()
    for entry in json.loads(output or "[]"):
        dst = entry.get("dst", "")
        if dst == "default":
            dst = "::/0" if family == 6 else "0.0.0.0/0"
        net = _network(dst)
        if net is None:
            continue
        if entry.get("protocol") == str(proto) and entry.get("gateway"):
            installed.ours[str(net)] = PodRoute(str(net), entry["gateway"])
        else:
            installed.foreign.add(str(net))
    return installed


def route_batch(plan: RoutePlan, proto: int = ROUTE_PROTO) -> str:
    """The plan as `ip -batch` lines: one `ip` process for any number of routes (1000 routes in ~40 ms, where
    one `ip` per route takes ~8 ms each). Deletes name the gateway and proto so the kernel matches only our
    route, never another one to the same destination."""
    lines = [f"route del {r.dst} via {r.gateway} proto {proto}" for r in plan.delete]
    lines += [f"route replace {r.dst} via {r.gateway} proto {proto}" for r in plan.replace]
    return "".join(line + "\n" for line in lines)


def describe_batch_failure(script: str, stderr: str) -> str:
    """`ip -force -batch` reports `<error>` then `Command failed -:<line>` for each failing line: name the routes."""
    commands = script.splitlines()
    problems: list[str] = []
    errors: list[str] = []
    for line in stderr.splitlines():
        failed = re.match(r"Command failed -:(\d+)", line.strip())
        if failed is None:
            if line.strip():
                errors.append(line.strip())
            continue
        number = int(failed.group(1))
        command = commands[number - 1] if 0 < number <= len(commands) else f"line {number}"
        problems.append(f"{command}: {' '.join(errors) or 'failed'}")
        errors = []
    return "; ".join(problems) or stderr.strip()


def masquerade_script(cluster_cidrs: Sequence[str], table: str = NFT_TABLE) -> str:
    """One `nft -f` transaction (re)creating our NAT table: pod traffic that leaves the cluster CIDR (and is not
    multicast) takes the node's address; traffic between pods, on any node, keeps its pod source address."""
    lines = [f"add table inet {table}", f"delete table inet {table}",
             f'add table inet {table} {{ comment "pod traffic leaving the cluster CIDR (pyk8s host-gw)" ; }}',
             f"add chain inet {table} postrouting {{ type nat hook postrouting priority srcnat ; policy accept ; }}"]
    for cidr in parse_cluster_cidrs(cluster_cidrs):
        net = ipaddress.ip_network(cidr)
        ip = "ip" if net.version == 4 else "ip6"
        lines.append(f"add rule inet {table} postrouting {ip} saddr {net} {ip} daddr {net} return")
        lines.append(f"add rule inet {table} postrouting {ip} saddr {net} {ip} daddr != {MULTICAST[net.version]} "
                     "masquerade fully-random")
    return "\n".join(lines) + "\n"


# ---- the kernel side ---------------------------------------------------------------------------------------


class NetworkCommandError(Exception):
    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: str):
        self.argv, self.returncode, self.stderr = list(argv), returncode, stderr.strip()
        super().__init__(f"{' '.join(self.argv)} failed ({returncode}): {self.stderr}")


class NodeNetwork:
    """`ip`, `sysctl` and `nft` in one network namespace: a named one (`ip netns`), or this process's own."""

    def __init__(self, netns: str | None = None, proto: int = ROUTE_PROTO, nft_table: str = NFT_TABLE):
        self.netns = netns
        self.proto = proto
        self.nft_table = nft_table

    def _in_netns(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def _ip(self, *args: str) -> list[str]:
        return ["ip", *(["-n", self.netns] if self.netns else []), *args]

    async def _run(self, argv: list[str], stdin: str | None = None) -> str:
        process = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):
                out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise NetworkCommandError(argv, None, f"timed out after {COMMAND_TIMEOUT}s") from None
        if process.returncode != 0:
            raise NetworkCommandError(argv, process.returncode, err.decode(errors="replace"))
        return out.decode()

    async def installed_routes(self) -> InstalledRoutes:
        installed = InstalledRoutes()
        for family in (4, 6):
            try:
                output = await self._run(self._ip("-N", "-j", f"-{family}", "route", "show", "table", "main"))
            except NetworkCommandError as err:
                if family == 6 and "not supported" in err.stderr.lower():
                    continue  # IPv6 switched off in this kernel: no IPv6 routes of anyone's
                raise
            part = parse_ip_routes(output, family, self.proto)
            installed.ours.update(part.ours)
            installed.foreign |= part.foreign
        return installed

    async def apply(self, plan: RoutePlan) -> None:
        """Every change in the plan, in one `ip -batch`; `-force` carries on past a failing line (say, a gateway
        not on any connected subnet) so one bad node does not hold the others' routes back."""
        if plan.empty:
            return
        script = route_batch(plan, self.proto)
        try:
            await self._run(self._ip("-force", "-batch", "-"), stdin=script)
        except NetworkCommandError as err:
            raise NetworkCommandError(err.argv, err.returncode, describe_batch_failure(script, err.stderr)) from None

    async def enable_forwarding(self, family: int) -> None:
        key = FORWARDING_SYSCTL[family]
        if self.netns:
            await self._run(self._in_netns(["sysctl", "-q", "-w", f"{key}=1"]))
            return
        # /proc/sys/net shows the network namespace of the process that opens it: ours here.
        path = Path("/proc/sys") / key.replace(".", "/")
        if path.read_text().strip() != "1":
            path.write_text("1\n")

    async def load_masquerade(self, cluster_cidrs: Sequence[str]) -> None:
        await self._run(self._in_netns(["nft", "-f", "-"]), stdin=masquerade_script(cluster_cidrs, self.nft_table))

    async def remove_masquerade(self) -> None:
        await self._run(self._in_netns(["nft", "-f", "-"]),
                        stdin=f"add table inet {self.nft_table}\ndelete table inet {self.nft_table}\n")


# ---- the controller ----------------------------------------------------------------------------------------


class RouteSyncError(Exception):
    pass


class HostGatewayRoutes:
    """Keeps `<podCIDR> via <InternalIP>` for every other node in the network namespace `netns` (None: the
    one this process runs in) from an informer on Nodes, until `stop()` or cancellation."""

    def __init__(self, client: APIClient, node_name: str, *, cluster_cidrs: Sequence[str] = (),
                 netns: str | None = None, resync_period: float = DEFAULT_RESYNC_PERIOD,
                 network: NodeNetwork | None = None):
        self.node_name = node_name
        self.cluster_cidrs = parse_cluster_cidrs(cluster_cidrs)
        self.network = network or NodeNetwork(netns)
        self.resync_period = resync_period
        self.informer = Informer(client, "nodes")
        self._dirty = asyncio.Event()
        self.informer.add_handler(lambda _node: self._dirty.set(), lambda _old, _new: self._dirty.set(),
                                  lambda _node: self._dirty.set())
        self._stop = asyncio.Event()
        self._finished = asyncio.Event()
        self._finished.set()
        self._applied: dict[str, PodRoute] | None = None  # what the last successful sync made the table hold
        self._last_full_sync = float("-inf")
        self._forwarding: set[int] = set()  # families whose forwarding sysctl this resync period has asserted
        self._masquerade_loaded = False
        self._problems: set[str] = set()
        self._conflicts: set[PodRoute] = set()
        self.synced = asyncio.Event()  # set after the first successful sync

    async def run(self) -> None:
        self._stop.clear()
        self._finished.clear()
        self.informer.start()
        try:
            # An empty cache would look like "every node is gone": touch nothing before the first full list.
            while not await self.informer.wait_for_sync(timeout=1.0):
                if self._stop.is_set():
                    return
            await self._loop()
        finally:
            await self.informer.stop()
            self._finished.set()

    async def stop(self) -> None:
        """End `run()` and wait for it; the routes stay (see the module docstring)."""
        self._stop.set()
        self._dirty.set()
        await self._finished.wait()

    async def remove_all(self) -> None:
        """Delete every route this module made in the namespace and its NAT table (uninstalling a node)."""
        installed = await self.network.installed_routes()
        await self.network.apply(RoutePlan(delete=sorted(installed.ours.values())))
        await self.network.remove_masquerade()
        self._applied = None
        self._masquerade_loaded = False

    async def _loop(self) -> None:
        retry_delay = 0.0
        while not self._stop.is_set():
            timeout = retry_delay or max(0.0, self._last_full_sync + self.resync_period - time.monotonic())
            try:
                async with asyncio.timeout(timeout):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            self._dirty.clear()
            if self._stop.is_set():
                return
            try:
                await self.sync()
                retry_delay = 0.0
            except (RouteSyncError, NetworkCommandError, OSError) as err:
                retry_delay = min(self.resync_period, max(0.5, retry_delay * 2))
                log.warning("node %s: route sync failed (retrying in %.1fs): %s", self.node_name, retry_delay, err)

    async def sync(self) -> None:
        """Bring the routing table in line with the informer's nodes (reads the table only when something
        changed or a resync is due)."""
        desired = desired_routes(self.informer.list(), self.node_name)
        self._report(desired.problems)
        resync_due = time.monotonic() - self._last_full_sync >= self.resync_period
        if desired.routes == self._applied and not resync_due:
            return
        if resync_due:
            # Someone may have switched forwarding off or flushed the nftables ruleset: assert both again.
            self._forwarding.clear()
            self._masquerade_loaded = False
        await self._ensure_node_setup({route.family for route in desired.routes.values()})
        plan = plan_routes(desired.routes, await self.network.installed_routes())
        new_conflicts = set(plan.conflicts) - self._conflicts
        for route in sorted(new_conflicts):
            log.warning("node %s: not routing %s via %s: a route to %s that pyk8s did not make exists",
                        self.node_name, route.dst, route.gateway, route.dst)
        self._conflicts = set(plan.conflicts)
        try:
            await self.network.apply(plan)
        except NetworkCommandError as err:
            # Some lines may have gone in: the next attempt re-reads the table and plans only what is left.
            self._applied = None
            raise RouteSyncError(str(err)) from err
        if not plan.empty:
            log.info("node %s: %d pod routes set, %d removed", self.node_name, len(plan.replace), len(plan.delete))
        for route in plan.delete:
            log.debug("node %s: removed route %s via %s", self.node_name, route.dst, route.gateway)
        for route in plan.replace:
            log.debug("node %s: route %s via %s", self.node_name, route.dst, route.gateway)
        self._applied = desired.routes
        self._last_full_sync = time.monotonic()
        self.synced.set()

    async def _ensure_node_setup(self, route_families: set[int]) -> None:
        """Forwarding on for every family in use (pods' traffic leaves through this node, other nodes' traffic
        for our pods arrives through it) and the masquerade table loaded."""
        families = route_families | {ipaddress.ip_network(cidr).version for cidr in self.cluster_cidrs} or {4}
        for family in sorted(families - self._forwarding):
            await self.network.enable_forwarding(family)
            self._forwarding.add(family)
        if self.cluster_cidrs and not self._masquerade_loaded:
            await self.network.load_masquerade(self.cluster_cidrs)
            self._masquerade_loaded = True

    def _report(self, problems: list[str]) -> None:
        current = set(problems)
        for problem in sorted(current - self._problems):
            log.warning("node %s: %s", self.node_name, problem)
        self._problems = current
