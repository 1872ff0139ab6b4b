"""The nftables proxier: informer events → one rate-limited sync → render → one `nft -f` transaction.

As upstream (pkg/proxy/nftables/proxier.go), nothing is written until the Service and EndpointSlice
caches have synced; the first sync and any sync after a failure replace the whole table, later ones
apply only the difference from the ruleset last installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import socket
import tempfile
import time
from collections.abc import Mapping, Sequence

import psutil

from ..client import REAL_CLOCK, Clock, DeletedFinalStateUnknown, object_key
from .healthcheck import ServiceHealthServer, health_checks
from .render import ProxyConfig, Ruleset, render, script
from .runner import BoundedFrequencyRunner
from .servicemodel import slices_by_service

log = logging.getLogger("pyk8s.proxy")

NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")
# Replace the whole table this often even when nothing seems to have changed, in case something else
# altered it (upstream's full-sync period).
FULL_SYNC_PERIOD = 3600.0


class CommandError(RuntimeError):
    pass


async def run_command(argv: Sequence[str], stdin: bytes = b"") -> str:
    # The input goes through a file, not a pipe: a command that exits before reading all of it (nft on
    # an error, `ip` that reads nothing) must not turn into a write on a closed pipe.
    with tempfile.TemporaryFile() as source:
        source.write(stdin)
        source.seek(0)
        process = await asyncio.create_subprocess_exec(*argv, stdin=source, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
    if process.returncode != 0:
        raise CommandError(f"{' '.join(argv[:4])} failed ({process.returncode}): {err.decode().strip()[-2000:]}")
    return out.decode()


class NftApplier:
    """Runs `nft -f -`; `prefix` puts it elsewhere (tests use `ip netns exec <ns>`)."""

    def __init__(self, prefix: Sequence[str] = ()):
        self.prefix = tuple(prefix)

    async def apply(self, text: str) -> None:
        await run_command([*self.prefix, "nft", "-f", "-"], text.encode())

    async def ensure_local_route(self, cidr: str) -> None:
        """Make every address of the service CIDR a local address of this node (an AnyIP route).

        There is no dummy device on every kernel; with this route the node's own connections to a
        ClusterIP have a route before the nat output hook DNATs them, and a connection to a service
        without endpoints reaches the input chain that rejects it, instead of "network unreachable".
        """
        await run_command([*self.prefix, "ip", "route", "replace", "local", cidr, "dev", "lo", "table", "local"])


def node_port_addresses(setting: str, node: Mapping | None) -> tuple[str, ...] | None:
    """The addresses that accept NodePorts for `--nodeport-addresses` (None: every local address).

    "primary" (the default) takes the Node's InternalIP/ExternalIP addresses, or every local
    address until the Node is known; a list of CIDRs takes this machine's addresses inside them.
    """
    if setting == "primary":
        if node is None:
            return None
        addresses = ((node.get("status") or {}).get("addresses")) or []
        ips = sorted({a["address"] for a in addresses
                      if a.get("type") in NODE_ADDRESS_TYPES and ":" not in a.get("address", "")})
        return tuple(ips) or None
    networks = [ipaddress.ip_network(cidr.strip(), strict=False) for cidr in setting.split(",") if cidr.strip()]
    if any(net.prefixlen == 0 for net in networks if net.version == 4):
        return None
    local = {addr.address for addrs in psutil.net_if_addrs().values() for addr in addrs
             if addr.family == socket.AF_INET}
    return tuple(sorted(ip for ip in local if any(ipaddress.ip_address(ip) in net for net in networks
                                                  if net.version == 4)))


class NftablesProxier:
    def __init__(self, config: ProxyConfig, applier: NftApplier, *, node_port_setting: str = "primary",
                 min_sync_period: float = 1.0, sync_period: float = 30.0, clock: Clock = REAL_CLOCK):
        self.config = config
        self.applier = applier
        # Set by the caller once the proxier exists (the server reports the proxier's own health).
        self.health_server: ServiceHealthServer | None = None
        self.node_port_setting = node_port_setting
        self.sync_period = sync_period
        self.services: dict[str, dict] = {}
        self.endpoint_slices: dict[str, dict] = {}
        self.node: dict | None = None
        self.services_synced = self.endpoint_slices_synced = False
        self.installed: Ruleset | None = None
        self.last_full_sync = 0.0
        self.runner = BoundedFrequencyRunner("nftables sync", self.sync_proxy_rules, min_interval=min_sync_period,
                                             retry_interval=sync_period, max_interval=sync_period, clock=clock)
        # Health, as upstream's proxier health server sees it: when an update was first left pending and
        # when the rules were last written.
        self.oldest_pending_update = 0.0
        self.last_updated = 0.0
        self.syncs = 0
        self.sync_failures = 0
        self.last_sync_seconds = 0.0

    # ---- informer handlers (sync and cheap: record, ring the doorbell) -----------------------

    def _changed(self) -> None:
        if not self.oldest_pending_update:
            self.oldest_pending_update = time.time()
        if self.services_synced and self.endpoint_slices_synced:
            self.runner.run()

    @staticmethod
    def _store(cache: dict[str, dict], obj: dict | DeletedFinalStateUnknown, deleted: bool) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            cache.pop(obj.key, None)
        elif deleted:
            cache.pop(object_key(obj), None)
        else:
            cache[object_key(obj)] = obj

    def on_service_update(self, obj: dict, deleted: bool = False) -> None:
        self._store(self.services, obj, deleted)
        self._changed()

    def on_endpoint_slice_update(self, obj: dict, deleted: bool = False) -> None:
        self._store(self.endpoint_slices, obj, deleted)
        self._changed()

    def on_node_update(self, obj: dict | None) -> None:
        self.node = obj
        self._changed()

    def on_services_synced(self) -> None:
        self.services_synced = True
        self._changed()

    def on_endpoint_slices_synced(self) -> None:
        self.endpoint_slices_synced = True
        self._changed()

    # ---- sync ----------------------------------------------------------------------------

    def desired(self) -> Ruleset:
        config = dataclasses.replace(self.config,
                                     node_port_ips=node_port_addresses(self.node_port_setting, self.node))
        return render(self.services.values(), self.endpoint_slices.values(), config)

    async def sync_proxy_rules(self) -> None:
        if not (self.services_synced and self.endpoint_slices_synced):
            return
        started = time.monotonic()
        pending_since = self.oldest_pending_update
        self.oldest_pending_update = 0.0
        if started - self.last_full_sync > FULL_SYNC_PERIOD:
            self.installed = None
        full = self.installed is None
        desired = self.desired()
        if self.health_server is not None:
            await self.health_server.sync(health_checks(
                self.services.values(), slices_by_service(self.endpoint_slices.values()), self.config.node_name))
        text = script(desired, self.installed)
        if text:
            try:
                await self.applier.apply(text)
            except Exception:
                # Whatever state the table is in now, the next attempt replaces all of it.
                self.installed = None
                self.sync_failures += 1
                self.oldest_pending_update = self.oldest_pending_update or pending_since or time.time()
                raise
            log.info("proxy: %s sync of %d services, %d endpoint slices, %d chains in %.3fs",
                     "full" if full else "partial", len(self.services),
                     len(self.endpoint_slices), len(desired.chains), time.monotonic() - started)
        self.installed = desired
        if full:
            self.last_full_sync = started
        self.syncs += 1
        self.last_updated = time.time()
        self.last_sync_seconds = time.monotonic() - started

    def healthy(self, now: float | None = None) -> bool:
        """Rules written at least once, and no change has waited longer than two sync periods."""
        now = time.time() if now is None else now
        if not self.last_updated:
            return False
        return not (self.oldest_pending_update and now - self.oldest_pending_update > 2 * self.sync_period)
