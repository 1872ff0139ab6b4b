"""`pyk8s controller-manager`: one process running the built-in controllers (kube-controller-manager).

One API client and one shared informer factory serve every controller. With leader election (the
default) the process campaigns for the Lease kube-system/kube-controller-manager under the identity
`<hostname>_<uuid>`; only the holder builds its informers and runs controllers, and losing the lease
ends the process (`LeaderElectionLost`) so its supervisor starts a fresh candidate, as upstream exits.

`--controllers` takes upstream's syntax: a comma-separated list where "*" enables every controller
that is on by default, "foo" enables foo and "-foo" disables it; the first entry naming a controller
decides. Names are upstream's ("namespace-controller"), and their older aliases ("namespace") work.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib.metadata
import logging
import signal
import socket
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..client import APIClient, ClientConfig, EventRecorder, LeaderElector, SharedInformerFactory
from ..client.workqueue import REAL_CLOCK, Clock
from .certificates import CSRApprovingController, CSRSigningController
from .clusterroleaggregation import ClusterRoleAggregationController
from .cronjob import CronJobController
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .disruption import DisruptionController
from .endpoints import EndpointsController
from .endpointslice import EndpointSliceController
from .endpointslicemirroring import EndpointSliceMirroringController
from .garbagecollector import GarbageCollector
from .job import JobController
from .namespace import NamespaceController
from .nodeipam import NodeIPAMController
from .nodelifecycle import NodeLifecycleController
from .podgc import PodGCController
from .replicaset import ReplicaSetController, replication_controller
from .resourcequota import ResourceQuotaController
from .rootcacert import RootCACertPublisher
from .serviceaccount import ServiceAccountsController
from .serviceaccount_tokens import TokensController
from .statefulset import StatefulSetController
from .ttlafterfinished import TTLAfterFinishedController

log = logging.getLogger("pyk8s.controllers.manager")

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "kube-controller-manager"
COMPONENT = "kube-controller-manager"
try:
    _VERSION = importlib.metadata.version("pyk8s")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    _VERSION = "0.0.0"


class RunnableController(Protocol):
    name: str

    async def run(self) -> None: ...


@dataclass
class ControllerContext:
    """What every controller is built from: the shared client, informers and event recorder."""

    client: APIClient
    factory: SharedInformerFactory
    recorder: EventRecorder
    clock: Clock = REAL_CLOCK
    options: dict[str, object] | None = None  # per-controller settings, e.g. {"cluster_cidr": ...}


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    build: Callable[[ControllerContext], RunnableController]
    aliases: tuple[str, ...] = ()
    disabled_by_default: bool = False


CONTROLLERS: dict[str, ControllerSpec] = {spec.name: spec for spec in (
    ControllerSpec("certificatesigningrequest-approving-controller", CSRApprovingController.from_context,
                   aliases=("csrapproving", "csrapproving-controller")),
    ControllerSpec("certificatesigningrequest-signing-controller", CSRSigningController.from_context,
                   aliases=("csrsigning", "csrsigning-controller")),
    ControllerSpec("clusterrole-aggregation-controller", ClusterRoleAggregationController.from_context,
                   aliases=("clusterrole-aggregation",)),
    ControllerSpec("disruption-controller", DisruptionController.from_context, aliases=("disruption",)),
    ControllerSpec("endpoints-controller", EndpointsController.from_context, aliases=("endpoint",)),
    ControllerSpec("endpointslice-controller", EndpointSliceController.from_context, aliases=("endpointslice",)),
    ControllerSpec("endpointslice-mirroring-controller", EndpointSliceMirroringController.from_context,
                   aliases=("endpointslicemirroring",)),
    ControllerSpec("garbage-collector-controller",
                   lambda ctx: GarbageCollector(ctx.client, ctx.factory, recorder=ctx.recorder, clock=ctx.clock),
                   aliases=("garbagecollector",)),
    ControllerSpec("namespace-controller", lambda ctx: NamespaceController(ctx.client, ctx.factory, clock=ctx.clock),
                   aliases=("namespace",)),
    ControllerSpec("node-ipam-controller", NodeIPAMController.from_context, aliases=("nodeipam",)),
    ControllerSpec("node-lifecycle-controller", NodeLifecycleController.from_context, aliases=("nodelifecycle",)),
    ControllerSpec("pod-garbage-collector-controller", PodGCController.from_context, aliases=("podgc",)),
    ControllerSpec("resourcequota-controller", ResourceQuotaController.from_context, aliases=("resourcequota",)),
    ControllerSpec("replicaset-controller",
                   lambda ctx: ReplicaSetController(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock),
                   aliases=("replicaset",)),
    ControllerSpec("replicationcontroller-controller",
                   lambda ctx: replication_controller(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock),
                   aliases=("replicationcontroller",)),
    ControllerSpec("deployment-controller", DeploymentController.from_context, aliases=("deployment",)),
    ControllerSpec("daemonset-controller", DaemonSetController.from_context, aliases=("daemonset",)),
    ControllerSpec("statefulset-controller", StatefulSetController.from_context, aliases=("statefulset",)),
    ControllerSpec("job-controller", JobController.from_context, aliases=("job",)),
    ControllerSpec("cronjob-controller", CronJobController.from_context, aliases=("cronjob",)),
    ControllerSpec("ttl-after-finished-controller", TTLAfterFinishedController.from_context,
                   aliases=("ttl-after-finished",)),
    ControllerSpec("root-ca-certificate-publisher-controller", RootCACertPublisher.from_context,
                   aliases=("root-ca-cert-publisher",)),
    ControllerSpec("serviceaccount-controller", ServiceAccountsController.from_context, aliases=("serviceaccount",)),
    ControllerSpec("serviceaccount-token-controller", TokensController.from_context,
                   aliases=("serviceaccount-token",)),
)}


def _canonical(name: str) -> str | None:
    for spec in CONTROLLERS.values():
        if name == spec.name or name in spec.aliases:
            return spec.name
    return None


def parse_controllers(selection: str | Sequence[str]) -> list[str]:
    """The entries of a --controllers value, validated; names are turned into canonical names."""
    entries = [e.strip() for e in (selection.split(",") if isinstance(selection, str) else selection) if e.strip()]
    parsed = []
    for entry in entries:
        if entry == "*":
            parsed.append(entry)
            continue
        negated = entry.startswith("-")
        name = _canonical(entry[1:] if negated else entry)
        if name is None:
            known = sorted(CONTROLLERS) + sorted(a for s in CONTROLLERS.values() for a in s.aliases)
            raise ValueError(f'"{entry.lstrip("-")}" is not in the list of known controllers: {", ".join(known)}')
        parsed.append(f"-{name}" if negated else name)
    return parsed


def is_enabled(name: str, entries: Sequence[str]) -> bool:
    """Upstream's rule: the first explicit "name" or "-name" wins; otherwise "*" means on-by-default."""
    star = False
    for entry in entries:
        if entry == name:
            return True
        if entry == f"-{name}":
            return False
        if entry == "*":
            star = True
    return star and not CONTROLLERS[name].disabled_by_default


def enabled_controllers(selection: str | Sequence[str]) -> list[str]:
    entries = parse_controllers(selection)
    return [name for name in CONTROLLERS if is_enabled(name, entries)]


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


class LeaderElectionLost(RuntimeError):
    """We held the lease and lost it: this process must stop acting (and exit)."""


class ControllerManager:
    """Runs the selected controllers, behind leader election unless it is turned off."""

    def __init__(self, client: APIClient, *, controllers: str | Sequence[str] = "*", leader_elect: bool = True,
                 identity: str | None = None, lease_name: str = LEASE_NAME,
                 lease_namespace: str = LEASE_NAMESPACE, lease_duration: float = 15, renew_deadline: float = 10,
                 retry_period: float = 2, clock: Clock = REAL_CLOCK, options: dict[str, object] | None = None):
        self.client = client
        self.options = options
        self.enabled = enabled_controllers(controllers)
        self.leader_elect = leader_elect
        self.identity = identity or default_identity()
        self.clock = clock
        self.elector: LeaderElector | None = None
        if leader_elect:
            self.elector = LeaderElector(client, lease_namespace, lease_name, self.identity,
                                         lease_duration=lease_duration, renew_deadline=renew_deadline,
                                         retry_period=retry_period, on_started_leading=self._run_controllers,
                                         on_new_leader=self._new_leader, clock=clock)
        self.running = asyncio.Event()  # set while this process's controllers run
        self.controllers: dict[str, RunnableController] = {}

    def _new_leader(self, identity: str) -> None:
        if identity != self.identity:
            log.info("controller manager %s: the leader is %s", self.identity, identity)

    async def run(self) -> None:
        """Run until cancelled; raises LeaderElectionLost if leadership ends otherwise."""
        log.info("controller manager %s: controllers %s", self.identity, ", ".join(self.enabled) or "(none)")
        if self.elector is None:
            await self._run_controllers()
            return
        log.info("controller manager %s: campaigning for lease %s/%s", self.identity, self.elector.namespace,
                 self.elector.name)
        await self.elector.run()
        raise LeaderElectionLost(f"leaderelection lost ({self.identity})")

    def _client_for(self, name: str) -> APIClient:
        """The controller's own client, as upstream's ClientBuilder gives each controller: its own
        rate limiter (so one busy controller cannot starve the others) and a User-Agent naming it."""
        config = dataclasses.replace(self.client.config, user_agent=f"{self.client.config.user_agent}/{name}")
        return APIClient(config, clock=self.client.clock)

    async def _run_controllers(self) -> None:
        factory = SharedInformerFactory(self.client, clock=self.clock)
        recorder = EventRecorder(self.client, COMPONENT)
        clients = {name: self._client_for(name) for name in self.enabled}
        # Build everything (registering every handler) before any informer starts, so none misses events.
        self.controllers = {
            name: CONTROLLERS[name].build(ControllerContext(clients[name], factory, recorder, self.clock,
                                                            self.options))
            for name in self.enabled}
        factory.start()
        self.running.set()
        try:
            async with asyncio.TaskGroup() as group:
                for name, controller in self.controllers.items():
                    log.info("controller manager: started %s", name)
                    group.create_task(controller.run(), name=name)
        finally:
            self.running.clear()
            self.controllers = {}
            await factory.stop()
            await recorder.close(timeout=2.0)
            for client in clients.values():
                await client.close()


async def run_controller_manager(kubeconfig: Path, controllers: str = "*", leader_elect: bool = True, *,
                                 identity: str | None = None, stop: asyncio.Event | None = None,
                                 options: dict[str, object] | None = None, qps: float | None = None,
                                 burst: int | None = None) -> None:
    """The controller-manager process's body. Without `stop`, SIGTERM/SIGINT stop it (releasing the lease).
    `qps`/`burst` (upstream's --kube-api-qps/--kube-api-burst) set each controller's client rate limit."""
    config = ClientConfig.from_kubeconfig(str(kubeconfig))
    if qps is not None:
        config.qps = qps
    if burst is not None:
        config.burst = burst
    config.user_agent = f"pyk8s-controller-manager/{_VERSION} (python)"
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
    async with APIClient(config) as client:
        manager = ControllerManager(client, controllers=controllers, leader_elect=leader_elect, identity=identity,
                                    options=options)
        work = asyncio.ensure_future(manager.run())
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            if not work.done():
                log.info("controller manager: stopping")
                work.cancel()
                try:
                    await work
                except asyncio.CancelledError:
                    pass
        if not work.cancelled():
            work.result()  # re-raise LeaderElectionLost or a controller's failure
        log.info("controller manager: stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry point: `python -m pyk8s.controllers.manager --kubeconfig K [...]`."""
    parser = argparse.ArgumentParser(prog="pyk8s controller-manager", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--controllers", default="*")
    parser.add_argument("--leader-elect", default="true", nargs="?", const="true", choices=("true", "false"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        enabled_controllers(args.controllers)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(run_controller_manager(args.kubeconfig, args.controllers, args.leader_elect == "true"))
    except LeaderElectionLost as exc:
        log.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
