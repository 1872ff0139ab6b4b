"""Simulated nodes (kwok-style): one process holds many fake nodes that register, heartbeat and
"run" the pods bound to them without running any process.

Two parts:

- The pod model (pure, no I/O): `PodRun` advances one pod's simulated containers to a given
  time and `build_pod_status` turns that into the kubelet's pod status, following upstream's
  rules for phase (kubelet getPhase), conditions (pkg/kubelet/status/generate.go) and crash-loop
  backoff (10 s doubling to 5 min; the first restart is immediate). Annotations steer it:
  `sim.pyk8s.io/run-seconds` makes containers exit after N seconds with `sim.pyk8s.io/exit-code`
  (default 0), and `sim.pyk8s.io/ready: "false"` keeps them running but not ready.
- The agent: `SimulatedNodes` registers the nodes and their Leases, renews every Lease each 10 s
  (spread with jitter, through a bounded pool of workers on its own connection pool so heartbeats
  never queue behind pod traffic), reports node status when it changed or every 5 minutes, and
  drives bound pods from one shared pod informer (`spec.nodeName!=`). A node's heartbeats stop
  with `fail()` or the node annotation `sim.pyk8s.io/heartbeat: "stopped"`; its pods are then
  left alone, as a dead kubelet would leave them.

Pod CIDRs: a node keeps the spec.podCIDR a node IPAM controller gives it. When none arrives
within `ipam_wait` seconds the agent sets one itself, index-based from `cluster_cidr` (see
`fallback_pod_cidr`), so pods always get addresses unique per node.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import heapq
import itertools
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..api.meta import parse_time
from ..client import (
    APIClient,
    APIConnectionError,
    APIStatusError,
    ClientConfig,
    Controller,
    DeletedFinalStateUnknown,
    Informer,
    RequeueAfter,
    is_already_exists,
    is_conflict,
    is_not_found,
    object_key,
)
from .node_status import (
    DEFAULT_CAPACITY,
    HEARTBEAT_ANNOTATION,
    HEARTBEAT_STOPPED,
    INSTANCE_TYPE,
    INSTANCE_TYPE_LABEL,
    LEASE_NAMESPACE,
    NODE_STATUS_REPORT_FREQUENCY,
    RENEW_INTERVAL,
    NodeIdentity,
    PodIPAllocator,
    fallback_pod_cidr,
    lease_object,
    node_labels,
    node_object,
    node_status,
    renewed_lease,
    rfc3339,
    status_needs_update,
)
from .pod_status import pod_condition, readiness_gates_message

log = logging.getLogger("pyk8s.kubelet.simulated")


RUN_SECONDS_ANNOTATION = "sim.pyk8s.io/run-seconds"
EXIT_CODE_ANNOTATION = "sim.pyk8s.io/exit-code"
READY_ANNOTATION = "sim.pyk8s.io/ready"

INITIAL_BACKOFF = 10.0  # upstream kubelet's crash-loop backoff: 10 s doubling ...
MAX_BACKOFF = 300.0  # ... to 5 minutes; forgotten after 2 x max without a crash
LEASE_JITTER = 0.04  # upstream renews with JitterUntil(renewInterval, 0.04)
HEARTBEAT_RETRY_INITIAL = 0.2  # upstream lease controller backoff: 200 ms doubling ...
HEARTBEAT_RETRY_MAX = 7.0  # ... to 7 s
HEARTBEAT_BATCH = 0.05  # heartbeats due within this window are released to the workers together
NOT_LOCATED_MESSAGE = "The container could not be located when the pod was terminated"


# ---- the pod model (pure) ----------------------------------------------------------------


@dataclass(frozen=True)
class PodTiming:
    """How long the simulated runtime takes; seconds."""

    start_seconds: float = 0.5  # sandbox, image and container creation before a container runs
    init_seconds: float = 0.2  # how long each (non-sidecar) init container runs before it completes
    stop_seconds: float = 0.5  # how long containers take to stop on deletion (at most the grace period)


@dataclass
class CrashBackoff:
    """Per-container restart backoff with upstream's semantics (flowcontrol.Backoff as the kubelet
    uses it): no entry → restart at once and start a 10 s window; in a window → wait it out, then
    double it (capped at 5 min); a crash long after the last restart starts over."""

    duration: float | None = None
    last_update: float = 0.0

    def _expired(self, finished_at: float) -> bool:
        return self.duration is None or finished_at - self.last_update > 2 * MAX_BACKOFF

    def delay(self, finished_at: float) -> float:
        """Seconds to wait after a crash at `finished_at` before restarting."""
        return 0.0 if self._expired(finished_at) else float(self.duration or 0.0)

    def record_restart(self, finished_at: float, restart_at: float) -> None:
        if self._expired(finished_at):
            self.duration = INITIAL_BACKOFF
        else:
            self.duration = min((self.duration or INITIAL_BACKOFF) * 2, MAX_BACKOFF)
        self.last_update = restart_at


@dataclass
class Termination:
    started_at: float
    finished_at: float
    exit_code: int
    reason: str
    container_id: str
    message: str = ""

    def to_api(self) -> dict:
        terminated = {"exitCode": self.exit_code, "reason": self.reason}
        if self.message:
            terminated["message"] = self.message
        terminated["startedAt"] = rfc3339(self.started_at)
        terminated["finishedAt"] = rfc3339(self.finished_at)
        if self.container_id:
            terminated["containerID"] = self.container_id
        return {"terminated": terminated}


@dataclass
class ContainerRun:
    """One container's simulated life: the current run, the previous one and the restart plan."""

    name: str
    image: str
    role: str  # "init", "sidecar" (restartable init container) or "app"
    restart_count: int = 0
    started_at: float | None = None
    ended: Termination | None = None  # the current run's end
    last: Termination | None = None  # the previous run's end (lastState)
    next_start: float | None = None  # when the next (re)start happens
    waiting_backoff: float = 0.0  # the backoff being waited out (for the CrashLoopBackOff message)
    done: bool = False  # terminated for good
    backoff: CrashBackoff = field(default_factory=CrashBackoff)
    pod_uid: str = ""

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.ended is None

    @property
    def container_id(self) -> str:
        digest = hashlib.sha256(f"{self.pod_uid}/{self.name}/{self.restart_count}".encode()).hexdigest()
        return f"simulated://{digest}"

    def start(self, at: float) -> None:
        if self.started_at is not None or self.last is not None:
            self.restart_count += 1
        self.started_at, self.ended, self.next_start = at, None, None

    def finish(self, at: float, exit_code: int, reason: str | None = None, message: str = "") -> None:
        assert self.started_at is not None
        reason = reason or ("Completed" if exit_code == 0 else "Error")
        self.ended = Termination(self.started_at, at, exit_code, reason, self.container_id, message)


def _annotation(pod: Mapping, key: str) -> str | None:
    return ((pod.get("metadata") or {}).get("annotations") or {}).get(key)


def run_seconds(pod: Mapping) -> float | None:
    raw = _annotation(pod, RUN_SECONDS_ANNOTATION)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


def exit_code(pod: Mapping) -> int:
    try:
        return int(_annotation(pod, EXIT_CODE_ANNOTATION) or 0)
    except ValueError:
        return 1


def containers_ready_wanted(pod: Mapping) -> bool:
    return (_annotation(pod, READY_ANNOTATION) or "").lower() != "false"


def should_restart(restart_policy: str, code: int) -> bool:
    return restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)


def normalize_image(image: str) -> tuple[str, str]:
    """(reference, repository) as containerd reports them: "nginx" → ("docker.io/library/nginx:latest",
    "docker.io/library/nginx")."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = ""
    if ":" in last:
        name, _, tag = name.rpartition(":")
    first, _, rest = name.partition("/")
    if not rest:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    if digest:
        return f"{name}@{digest}", name
    return f"{name}:{tag or 'latest'}", name


def image_id(image: str) -> str:
    reference, repository = normalize_image(image)
    return f"{repository}@sha256:{hashlib.sha256(reference.encode()).hexdigest()}"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole seconds: 10s, 1m20s, 5m0s."""
    total = int(seconds)
    minutes, secs = divmod(total, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass
class PodRun:
    """The simulated runtime state of one pod on one node."""

    uid: str
    sandbox_at: float  # when the node took the pod (startTime)
    pod_ip: str | None
    init: list[ContainerRun]
    app: list[ContainerRun]
    restart_policy: str = "Always"
    node_name: str = ""
    not_before: float = -math.inf  # no container starts before this (set when resuming)
    stop_at: float | None = None
    stopped: bool = False  # stopped on deletion: final status, then the pod is deleted
    reported: dict | None = None  # the status last written to the server

    @classmethod
    def for_pod(cls, pod: Mapping, at: float, pod_ip: str | None) -> PodRun:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        uid = meta.get("uid", "")
        init = [ContainerRun(c.get("name", ""), c.get("image", ""),
                             "sidecar" if c.get("restartPolicy") == "Always" else "init", pod_uid=uid)
                for c in spec.get("initContainers") or []]
        app = [ContainerRun(c.get("name", ""), c.get("image", ""), "app", pod_uid=uid)
               for c in spec.get("containers") or []]
        return cls(uid=uid, sandbox_at=at, pod_ip=pod_ip, init=init, app=app,
                   restart_policy=spec.get("restartPolicy") or "Always")

    def resume_from(self, status: Mapping, now: float) -> None:
        """Take over containers an earlier agent process reported (the agent restarted): running and
        terminated ones keep their times, crash-looping ones restart now and the rest start from now
        (the simulated past is not replayed)."""

        def stamp(value: str | None, default: float) -> float:
            return parse_time(value).timestamp() if value else default

        self.sandbox_at = stamp(status.get("startTime"), self.sandbox_at)
        reported = {c.get("name"): c for c in (status.get("initContainerStatuses") or [])
                    + (status.get("containerStatuses") or [])}
        for c in self.init + self.app:
            seen = reported.get(c.name)
            if not seen:
                continue
            state = seen.get("state") or {}
            c.restart_count = int(seen.get("restartCount") or 0)
            if "running" in state:
                c.started_at = stamp(state["running"].get("startedAt"), self.sandbox_at)
            elif "terminated" in state:
                t = state["terminated"]
                c.started_at = stamp(t.get("startedAt"), self.sandbox_at)
                finished = stamp(t.get("finishedAt"), c.started_at)
                c.ended = Termination(c.started_at, finished, int(t.get("exitCode") or 0), t.get("reason") or "Error",
                                      t.get("containerID") or "", t.get("message") or "")
            elif "terminated" in (seen.get("lastState") or {}):
                t = seen["lastState"]["terminated"]
                c.started_at = stamp(t.get("startedAt"), self.sandbox_at)
                c.ended = c.last = Termination(c.started_at, stamp(t.get("finishedAt"), c.started_at),
                                               int(t.get("exitCode") or 0), t.get("reason") or "Error",
                                               t.get("containerID") or "", t.get("message") or "")
                c.next_start = now
        self.not_before = now

    # -- advancing time --

    def advance(self, pod: Mapping, now: float, timing: PodTiming) -> float | None:
        """Move the simulated containers forward to `now`; returns when the next change is due."""
        if self.stopped:
            return None
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") and self.stop_at is None:
            grace = float(meta.get("deletionGracePeriodSeconds") or 0)
            self.stop_at = now + min(grace, timing.stop_seconds)
        horizon = now if self.stop_at is None else min(now, self.stop_at)
        wake = self._progress(pod, horizon, timing)
        if self.stop_at is not None:
            if now >= self.stop_at:
                self._stop_all(self.stop_at)
                return None
            return min(wake if wake is not None else math.inf, self.stop_at)
        return wake

    def _progress(self, pod: Mapping, t: float, timing: PodTiming) -> float | None:
        cursor = self.sandbox_at
        for c in self.init:
            if c.started_at is None:
                if c.next_start is None:
                    c.next_start = max(cursor, self.not_before) + timing.start_seconds
                if c.next_start > t:
                    return c.next_start
                c.start(c.next_start)
            assert c.started_at is not None
            if c.role == "sidecar":
                cursor = c.started_at
                continue
            if c.ended is None:
                end = c.started_at + timing.init_seconds
                if end > t:
                    return end
                c.finish(end, 0)
                c.done = True
            cursor = c.ended.finished_at
        wakes = [w for c in self.app if (w := self._progress_app(c, pod, cursor, t, timing)) is not None]
        if self.app and all(c.done for c in self.app):
            # The main containers finished for good: sidecars are stopped after them.
            finished = max(c.ended.finished_at for c in self.app if c.ended is not None)
            for c in self.init:
                if c.role == "sidecar" and c.running:
                    c.finish(max(finished, c.started_at or finished), 0)
                    c.done = True
        return min(wakes) if wakes else None

    def _progress_app(self, c: ContainerRun, pod: Mapping, cursor: float, t: float,
                      timing: PodTiming) -> float | None:
        while not c.done:
            if c.started_at is None or (c.ended is not None and c.next_start is not None):
                if c.next_start is None:
                    c.next_start = max(cursor, self.not_before) + timing.start_seconds
                if c.next_start > t:
                    return c.next_start
                c.start(c.next_start)
            if c.ended is None:
                lifetime = run_seconds(pod)
                if lifetime is None:
                    return None  # runs until the pod is deleted
                assert c.started_at is not None
                end = c.started_at + lifetime
                if end > t:
                    return end
                c.finish(end, exit_code(pod))
            assert c.ended is not None
            if not should_restart(self.restart_policy, c.ended.exit_code):
                c.done = True
                return None
            delay = c.backoff.delay(c.ended.finished_at)
            c.backoff.record_restart(c.ended.finished_at, c.ended.finished_at + delay)
            c.waiting_backoff = delay
            c.last, c.next_start = c.ended, c.ended.finished_at + delay
        return None

    def _stop_all(self, at: float) -> None:
        """Deletion: running containers stop (they exit 0 on SIGTERM); ones never started are
        reported as upstream reports containers it cannot find at termination."""
        for c in self.init + self.app:
            if c.running:
                c.finish(at, 0)
            elif c.ended is not None and c.next_start is not None:
                c.next_start, c.last = None, None  # crash-looping: the restart never comes; the last run stays
            elif c.ended is None and c.role == "app":
                c.ended = Termination(at, at, 137, "ContainerStatusUnknown", "", NOT_LOCATED_MESSAGE)
            c.done = True
        self.stopped = True

    # -- status --

    def phase(self) -> str:
        """Upstream getPhase over the simulated containers."""
        for c in self.init:
            if (c.role == "sidecar" and c.started_at is None) or (
                    c.role == "init" and (c.ended is None or c.ended.exit_code != 0)):
                return "Failed" if self.stopped else "Pending"
        running = waiting = stopped = succeeded = 0
        for c in self.app:
            if c.running:
                running += 1
            elif c.ended is not None:
                stopped += 1
                if c.ended.exit_code == 0 and c.done:
                    succeeded += 1
            else:
                waiting += 1
        if waiting:
            return "Pending"
        if running:
            return "Running"
        if not stopped:
            return "Pending"
        if self.restart_policy == "Always" and not self.stopped:
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if self.restart_policy == "Never" or self.stopped:
            return "Failed"
        return "Running"


def _container_status(c: ContainerRun, run: PodRun, pod: Mapping, waiting_reason: str) -> dict:
    meta = pod.get("metadata") or {}
    created = c.started_at is not None
    restarting = c.ended is not None and c.next_start is not None and not c.done
    if c.running:
        assert c.started_at is not None
        state: dict = {"running": {"startedAt": rfc3339(c.started_at)}}
    elif restarting:
        pod_ref = f"{meta.get('name', '')}_{meta.get('namespace', '')}({run.uid})"
        state = {"waiting": {"reason": "CrashLoopBackOff",
                             "message": f"back-off {go_duration(c.waiting_backoff)} restarting failed "
                                        f"container={c.name} pod={pod_ref}"}}
    elif c.ended is not None:
        state = c.ended.to_api()
    else:
        state = {"waiting": {"reason": waiting_reason}}
    if c.role == "init":
        ready = c.ended is not None and c.ended.exit_code == 0
    elif c.role == "sidecar":
        ready = c.running
    else:
        ready = c.running and containers_ready_wanted(pod)
    status: dict = {"name": c.name, "state": state, "lastState": c.last.to_api() if c.last else {},
                    "ready": ready, "restartCount": c.restart_count}
    if created:
        status["image"] = normalize_image(c.image)[0]
        status["imageID"] = image_id(c.image)
        status["containerID"] = c.container_id  # the current run's, or the dead one's while it waits
    else:
        status["image"] = c.image
        status["imageID"] = ""
    status["started"] = c.running
    return status


def build_pod_status(pod: Mapping, run: PodRun, host_ip: str, now: float, previous: Mapping | None = None) -> dict:
    """The part of pod status the kubelet owns; `previous` (the last reported or the server's
    status) keeps lastTransitionTime of conditions that did not change."""
    previous = previous or {}
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    server_conditions = {c.get("type"): c for c in ((pod.get("status") or {}).get("conditions") or [])}
    phase = run.phase()
    has_init = bool(run.init)
    app_waiting = "PodInitializing" if has_init else "ContainerCreating"
    init_statuses = [_container_status(c, run, pod, "PodInitializing") for c in run.init]
    app_statuses = [_container_status(c, run, pod, app_waiting) for c in run.app]

    terminal = phase in ("Succeeded", "Failed")
    sandbox_ready = not run.stopped and not terminal
    if not has_init:
        initialized = pod_condition("Initialized", True, now, before)
    elif phase == "Succeeded":
        initialized = pod_condition("Initialized", True, now, before, "PodCompleted")
    else:
        incomplete = [c.name for c in run.init
                      if not ((c.role == "init" and c.ended is not None and c.ended.exit_code == 0)
                              or (c.role == "sidecar" and c.started_at is not None))]
        any_app_started = any(c.started_at is not None for c in run.app)
        if incomplete and not any_app_started:
            initialized = pod_condition("Initialized", False, now, before, "ContainersNotInitialized",
                                     f"containers with incomplete status: [{' '.join(incomplete)}]")
        else:
            initialized = pod_condition("Initialized", True, now, before)

    if phase == "Succeeded":
        containers_ready = pod_condition("ContainersReady", False, now, before, "PodCompleted")
    elif phase == "Failed":
        containers_ready = pod_condition("ContainersReady", False, now, before, "PodFailed")
    else:
        unready = [s["name"] for s, c in zip(init_statuses, run.init, strict=True)
                   if c.role == "sidecar" and not s["ready"]]
        unready += [s["name"] for s in app_statuses if not s["ready"]]
        if unready:
            containers_ready = pod_condition("ContainersReady", False, now, before, "ContainersNotReady",
                                          f"containers with unready status: [{' '.join(unready)}]")
        else:
            containers_ready = pod_condition("ContainersReady", True, now, before)
    if containers_ready["status"] != "True":
        ready = pod_condition("Ready", False, now, before, containers_ready.get("reason", ""),
                           containers_ready.get("message", ""))
    elif gates := readiness_gates_message(pod, server_conditions):
        ready = pod_condition("Ready", False, now, before, "ReadinessGatesNotReady", gates)
    else:
        ready = pod_condition("Ready", True, now, before)

    status: dict = {
        "phase": phase,
        "conditions": [pod_condition("PodReadyToStartContainers", sandbox_ready, now, before),
                       initialized, ready, containers_ready],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
    }
    if run.pod_ip:
        status["podIP"] = run.pod_ip
        status["podIPs"] = [{"ip": run.pod_ip}]
    status["startTime"] = rfc3339(run.sandbox_at)
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    status["containerStatuses"] = app_statuses
    return status


def status_patch(status: Mapping) -> dict:
    """A strategic merge patch that sets `status`: conditions merge by type, so a reason or message
    that no longer applies must be deleted explicitly (null), as the kubelet's computed patch does."""
    body = dict(status)
    body["conditions"] = [{"reason": None, "message": None, **c} for c in status.get("conditions") or []]
    return {"status": body}


# ---- the agent ---------------------------------------------------------------------------


@dataclass
class SimNode:
    identity: NodeIdentity
    uid: str = ""
    registered: bool = False
    failed_locally: bool = False  # fail() / recover()
    failed_by_annotation: bool = False  # sim.pyk8s.io/heartbeat: "stopped"
    deleted: bool = False  # someone deleted the Node object
    lease: dict | None = None
    last_report: float = -math.inf  # monotonic time of the last node status write
    failures: int = 0
    heartbeat_seq: int = -1  # the planned heartbeat that is current (older heap entries are stale)
    pod_cidr: str | None = None
    ips: PodIPAllocator | None = None
    lease_renewals: int = 0

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def alive(self) -> bool:
        return self.registered and not (self.failed_locally or self.failed_by_annotation or self.deleted)

    def use_cidr(self, cidr: str) -> None:
        if cidr and cidr != self.pod_cidr:
            self.pod_cidr = cidr
            self.ips = PodIPAllocator(cidr)


def _node_index(pod: dict) -> list[str]:
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _pod_changed(old: Mapping, new: Mapping) -> bool:
    """Changes a kubelet acts on; status-only updates (mostly our own writes) are not among them,
    except condition changes of a pod with readiness gates (another controller sets those)."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    new_spec = new.get("spec") or {}
    return (old_meta.get("uid") != new_meta.get("uid")
            or old_meta.get("deletionTimestamp") != new_meta.get("deletionTimestamp")
            or old_meta.get("deletionGracePeriodSeconds") != new_meta.get("deletionGracePeriodSeconds")
            or old_meta.get("annotations") != new_meta.get("annotations")
            or (old.get("spec") or {}).get("nodeName") != new_spec.get("nodeName")
            or (bool(new_spec.get("readinessGates"))
                and (old.get("status") or {}).get("conditions") != (new.get("status") or {}).get("conditions")))


class SimulatedNodes:
    """`count` simulated nodes named `<name_prefix><index>` driven through `client`.

    Pod status writes and informers use `client` (its QPS limit applies to them); registration
    and heartbeats go through a second client on its own connection pool, without a QPS limit,
    bounded by `heartbeat_workers` concurrent requests. Heartbeats are kept on one timer heap
    and released to the workers in batches (every `HEARTBEAT_BATCH` seconds at most), so 1,000
    nodes cost a few wake-ups per second rather than one timer per node.
    """

    def __init__(self, client: APIClient, count: int, *, name_prefix: str = "sim-",
                 capacity: Mapping[str, str] | None = None, zones: int = 3, cluster_cidr: str = "10.42.0.0/16",
                 timing: PodTiming | None = None, start_index: int = 0, heartbeat_workers: int = 8,
                 pod_workers: int = 16, register_concurrency: int = 32, ipam_wait: float = 2.0,
                 renew_interval: float = RENEW_INTERVAL, report_frequency: float = NODE_STATUS_REPORT_FREQUENCY,
                 wall_clock: Callable[[], float] = time.time):
        self.client = client
        self.count = count
        self.start_index = start_index
        self.cluster_cidr = cluster_cidr
        self.timing = timing or PodTiming()
        self.heartbeat_workers = heartbeat_workers
        self.pod_workers = pod_workers
        self.register_concurrency = register_concurrency
        self.ipam_wait = ipam_wait
        self.renew_interval = renew_interval
        self.report_frequency = report_frequency
        self.wall = wall_clock
        capacity = {**DEFAULT_CAPACITY, **(capacity or {})}  # resources not given keep their defaults
        self.nodes: dict[str, SimNode] = {}
        for i in range(start_index, start_index + count):
            name = f"{name_prefix}{i}"
            self.nodes[name] = SimNode(NodeIdentity.make(name, i, zones=zones, capacity=capacity))
        self.runs: dict[str, PodRun] = {}
        heartbeat_config = copy.copy(client.config)
        heartbeat_config.qps = 0
        self._heartbeat_client = APIClient(heartbeat_config)
        self.node_informer = Informer(client, "nodes", label_selector={INSTANCE_TYPE_LABEL: INSTANCE_TYPE})
        self.pod_informer = Informer(client, "pods", field_selector="spec.nodeName!=",
                                     indexers={"node": _node_index})
        self._heartbeats: Controller[str] = Controller("sim-heartbeats", self._heartbeat, workers=heartbeat_workers)
        self._heartbeat_due: list[tuple[float, int, str]] = []  # (monotonic due time, seq, node name)
        self._heartbeat_seq = itertools.count()
        self._pods: Controller[str] = Controller("sim-pods", self._sync_pod, workers=pod_workers)
        self.registered = asyncio.Event()
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False

    # ---- public controls ------------------------------------------------------------------

    def fail(self, node_name: str) -> None:
        """Stop one node's heartbeats (lease renewals and status reports), as if its kubelet died."""
        node = self.nodes[node_name]
        node.failed_locally = True
        log.info("simulated node %s: heartbeats stopped", node_name)

    def recover(self, node_name: str) -> None:
        """Resume a failed node's heartbeats (at once) and its pods."""
        node = self.nodes[node_name]
        was_alive = node.alive
        node.failed_locally = False
        if node.alive and not was_alive:
            self._resume(node)

    async def wait_registered(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.registered.wait()

    async def stop(self) -> None:
        """Stop `run()` and wait until it has cleaned up; nothing to do if it is not running."""
        self._stop.set()
        if self._running:
            await self._done.wait()

    # ---- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Register every node, then heartbeat and run pods until `stop()` or cancellation."""
        self._stop.clear()
        self._done.clear()
        self._running = True
        self.node_informer.add_handler(self._on_node, lambda _old, new: self._on_node(new), self._on_node_deleted)
        self.pod_informer.add_handler(self._on_pod_added, self._on_pod_updated, self._on_pod_deleted)
        tasks: list[asyncio.Task] = []
        try:
            self.node_informer.start()
            started = time.monotonic()
            await self._register_all()
            log.info("simulated nodes: %d registered in %.1fs", len(self.nodes), time.monotonic() - started)
            self.registered.set()
            self.pod_informer.start()
            for node in self.nodes.values():
                # Spread the first renewals over one interval; later ones keep that spread.
                self._schedule_heartbeat(node.name, random.uniform(0, self.renew_interval))
            tasks = [asyncio.create_task(self._heartbeats.run(), name="sim-heartbeats"),
                     asyncio.create_task(self._pods.run(), name="sim-pods"),
                     asyncio.create_task(self._heartbeat_clock(), name="sim-heartbeat-clock"),
                     asyncio.create_task(self._assign_missing_cidrs(), name="sim-cidrs")]
            stop = asyncio.create_task(self._stop.wait())
            await asyncio.wait([stop, *tasks[:2]], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for task in tasks[:2]:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.pod_informer.stop()
            await self.node_informer.stop()
            await self._heartbeat_client.close()
            self._running = False
            self._done.set()

    # ---- registration ---------------------------------------------------------------------

    async def _register_all(self) -> None:
        gate = asyncio.Semaphore(self.register_concurrency)

        async def register(node: SimNode) -> None:
            async with gate:
                await self._register(node)

        await asyncio.gather(*(register(node) for node in self.nodes.values()))

    async def _register(self, node: SimNode) -> None:
        """Create the Node (or adopt an existing one) and its Lease; retries until it succeeds,
        as the kubelet does (100 ms doubling to 7 s)."""
        delay = 0.1
        while True:
            try:
                await self._register_once(node)
                return
            except (APIStatusError, APIConnectionError) as exc:
                log.warning("simulated node %s: registration failed (%s); retrying in %.1fs", node.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def _register_once(self, node: SimNode) -> None:
        client = self._heartbeat_client
        now = self.wall()
        try:
            obj = await client.create(node_object(node.identity, now))
        except APIStatusError as exc:
            if not is_already_exists(exc):
                raise
            # Re-registration: reconcile labels and the ttl annotation, then report status.
            obj = await client.patch("nodes", node.name, {"metadata": {
                "labels": node_labels(node.identity), "annotations": {"node.alpha.kubernetes.io/ttl": "0"}}})
            status = node_status(node.identity, now, obj.get("status"))
            obj = await client.patch_status("nodes", node.name, {"status": status}, patch_type="strategic")
        meta = obj.get("metadata") or {}
        node.uid = meta.get("uid", "")
        node.failed_by_annotation = (meta.get("annotations") or {}).get(HEARTBEAT_ANNOTATION) == HEARTBEAT_STOPPED
        node.use_cidr((obj.get("spec") or {}).get("podCIDR") or "")
        node.last_report = time.monotonic()
        try:
            node.lease = await client.create(lease_object(node.name, node.uid, now))
        except APIStatusError as exc:
            if not is_already_exists(exc):
                raise
            node.lease = await client.get("leases", node.name, LEASE_NAMESPACE)
        node.deleted = False
        node.registered = True

    async def _assign_missing_cidrs(self) -> None:
        """Nodes that no IPAM controller gave a pod CIDR within `ipam_wait` get one from us."""
        await asyncio.sleep(self.ipam_wait)
        gate = asyncio.Semaphore(self.register_concurrency)
        blocks = self.start_index + self.count

        async def assign(node: SimNode) -> None:
            server = self.node_informer.get(node.name) or {}
            existing = (server.get("spec") or {}).get("podCIDR")
            if existing:
                self._set_cidr(node, existing)
                return
            cidr = fallback_pod_cidr(self.cluster_cidr, node.identity.index, blocks)
            async with gate:
                try:
                    obj = await self._heartbeat_client.patch("nodes", node.name,
                                                             {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
                except APIStatusError as exc:
                    if is_not_found(exc):
                        return
                    # Set by someone else meanwhile (the change is then refused): take theirs.
                    obj = await self._heartbeat_client.get("nodes", node.name)
            self._set_cidr(node, (obj.get("spec") or {}).get("podCIDR") or "")

        pending = [node for node in self.nodes.values() if node.pod_cidr is None]
        if pending:
            log.info("simulated nodes: %d nodes have no pod CIDR after %.1fs; assigning from %s", len(pending),
                     self.ipam_wait, self.cluster_cidr)
        await asyncio.gather(*(assign(node) for node in pending))

    def _set_cidr(self, node: SimNode, cidr: str) -> None:
        if not cidr or cidr == node.pod_cidr:
            return
        first = node.pod_cidr is None
        node.use_cidr(cidr)
        if first and node.alive:
            self._enqueue_node_pods(node)  # pods waiting for addresses

    # ---- heartbeats -----------------------------------------------------------------------

    def _schedule_heartbeat(self, name: str, delay: float) -> None:
        """Plan the node's next heartbeat; it replaces any planned before (recover() may have run
        one early), so each node keeps one cycle."""
        seq = next(self._heartbeat_seq)
        self.nodes[name].heartbeat_seq = seq
        heapq.heappush(self._heartbeat_due, (time.monotonic() + delay, seq, name))

    async def _heartbeat_clock(self) -> None:
        """Release due heartbeats to the workers, a batch at a time."""
        due = self._heartbeat_due
        while True:
            now = time.monotonic()
            while due and due[0][0] <= now + HEARTBEAT_BATCH / 2:
                _, seq, name = heapq.heappop(due)
                if self.nodes[name].heartbeat_seq == seq:
                    self._heartbeats.queue.add(name)
            wait = due[0][0] - now if due else 1.0
            await asyncio.sleep(min(max(wait, HEARTBEAT_BATCH), 1.0))

    async def _heartbeat(self, name: str) -> None:
        node = self.nodes[name]
        if not node.alive:
            return  # recover() (or the annotation's removal) queues it again
        now = self.wall()
        try:
            await self._renew_lease(node, now)
            await self._report_status(node, now)
        except (APIStatusError, APIConnectionError) as exc:
            node.failures += 1
            delay = min(HEARTBEAT_RETRY_INITIAL * 2 ** (node.failures - 1), HEARTBEAT_RETRY_MAX)
            log.warning("simulated node %s: heartbeat failed (%s); retrying in %.1fs", name, exc, delay)
            self._schedule_heartbeat(name, delay)
            return
        node.failures = 0
        self._schedule_heartbeat(name, self.renew_interval * (1 + random.uniform(0, LEASE_JITTER)))

    async def _renew_lease(self, node: SimNode, now: float) -> None:
        client = self._heartbeat_client
        if node.lease is None:
            node.lease = await client.get("leases", node.name, LEASE_NAMESPACE)
        try:
            node.lease = await client.update(renewed_lease(node.lease, node.name, now))
        except APIStatusError as exc:
            if is_not_found(exc):
                node.lease = await client.create(lease_object(node.name, node.uid, now))
            elif is_conflict(exc):
                # Someone else wrote it: renew on top of the current version next time round.
                fresh = await client.get("leases", node.name, LEASE_NAMESPACE)
                node.lease = await client.update(renewed_lease(fresh, node.name, now))
            else:
                raise
        node.lease_renewals += 1

    async def _report_status(self, node: SimNode, now: float) -> None:
        """Upstream's rule: write when anything but heartbeat times changed, else every 5 min."""
        server = self.node_informer.get(node.name)
        if server is None:
            return  # not in the cache yet (or deleted: the informer handler notices)
        reported = server.get("status") or {}
        desired = node_status(node.identity, now, reported)
        due = time.monotonic() - node.last_report >= self.report_frequency
        if not (due or status_needs_update(reported, desired)):
            return
        await self._heartbeat_client.patch_status("nodes", node.name, {"status": desired}, patch_type="strategic")
        node.last_report = time.monotonic()

    # ---- node events ----------------------------------------------------------------------

    def _on_node(self, obj: dict) -> None:
        node = self.nodes.get((obj.get("metadata") or {}).get("name", ""))
        if node is None:
            return
        was_alive = node.alive
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        stopped = annotations.get(HEARTBEAT_ANNOTATION) == HEARTBEAT_STOPPED
        if stopped != node.failed_by_annotation:
            log.info("simulated node %s: heartbeats %s by annotation", node.name,
                     "stopped" if stopped else "resumed")
        node.failed_by_annotation = stopped
        cidr = (obj.get("spec") or {}).get("podCIDR")
        if cidr:
            self._set_cidr(node, cidr)
        if node.alive and not was_alive and node.lease is not None:
            self._resume(node)

    def _on_node_deleted(self, obj: dict | DeletedFinalStateUnknown) -> None:
        node = self.nodes.get(object_key(obj))
        if node is not None and node.registered:
            # Upstream's kubelet does not re-register a deleted node until it restarts; neither do we.
            log.warning("simulated node %s: the Node was deleted; its heartbeats stop", node.name)
            node.deleted = True

    def _resume(self, node: SimNode) -> None:
        log.info("simulated node %s: heartbeats resumed", node.name)
        self._heartbeats.queue.add(node.name)
        self._enqueue_node_pods(node)

    def _enqueue_node_pods(self, node: SimNode) -> None:
        if not self.pod_informer.has_synced:
            return
        for pod in self.pod_informer.by_index("node", node.name):
            self._pods.queue.add(object_key(pod))

    # ---- pods -----------------------------------------------------------------------------

    def _ours(self, pod: Mapping) -> bool:
        return (pod.get("spec") or {}).get("nodeName") in self.nodes

    def _on_pod_added(self, pod: dict) -> None:
        if self._ours(pod):
            self._pods.queue.add(object_key(pod))

    def _on_pod_updated(self, old: dict, new: dict) -> None:
        key = object_key(new)
        if self._ours(new) and (key not in self.runs or _pod_changed(old, new)):
            self._pods.queue.add(key)

    def _on_pod_deleted(self, pod: dict | DeletedFinalStateUnknown) -> None:
        self._forget(object_key(pod))

    def _forget(self, key: str) -> None:
        run = self.runs.pop(key, None)
        node = self.nodes.get(run.node_name) if run is not None else None
        if run is not None and node is not None and node.ips is not None:
            node.ips.release(run.pod_ip)

    def _start_run(self, pod: dict, node: SimNode, now: float) -> PodRun | None:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if spec.get("hostNetwork"):
            ip: str | None = node.identity.internal_ip
        else:
            if node.ips is None:
                return None  # no pod CIDR yet: the pod stays Pending until one arrives (that queues it)
            previous_ip = status.get("podIP")
            if previous_ip and node.ips.claim(previous_ip):
                ip = previous_ip
            else:
                ip = node.ips.allocate()
                if ip is None:
                    log.warning("simulated node %s: pod CIDR %s is exhausted; pod %s waits", node.name,
                                node.pod_cidr, object_key(pod))
                    raise RequeueAfter(5.0)
        run = PodRun.for_pod(pod, now, ip)
        run.node_name = node.name
        if status.get("startTime") or status.get("phase") in ("Succeeded", "Failed"):
            run.resume_from(status, now)
        return run

    async def _sync_pod(self, key: str) -> None:
        pod = self.pod_informer.get(key)
        if pod is None:
            self._forget(key)
            return
        node = self.nodes.get((pod.get("spec") or {}).get("nodeName", ""))
        if node is None or not node.alive:
            return  # a failed node's pods are left alone; recover() queues them again
        meta = pod.get("metadata") or {}
        namespace, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
        now = self.wall()
        run = self.runs.get(key)
        if run is not None and run.uid != uid:
            self._forget(key)
            run = None
        if run is None:
            run = self._start_run(pod, node, now)
            if run is None:
                return
            self.runs[key] = run
        wake = run.advance(pod, now, self.timing)
        status = build_pod_status(pod, run, node.identity.internal_ip, now, run.reported or pod.get("status"))
        try:
            if status != run.reported:
                await self.client.patch_status("pods", name, status_patch(status), namespace, patch_type="strategic")
                run.reported = status
            if run.stopped and meta.get("deletionTimestamp"):
                # Containers are stopped and the final status is written: finish the deletion.
                await self.client.delete("pods", name, namespace, grace_period_seconds=0,
                                         preconditions={"uid": uid})
                return
        except APIStatusError as exc:
            if is_not_found(exc):
                self._forget(key)
                return
            if is_conflict(exc) and run.stopped:
                return  # the uid precondition failed: a new pod took the name
            raise
        if wake is not None:
            raise RequeueAfter(max(wake - self.wall(), 0.0))


# ---- entry point -----------------------------------------------------------------------------


def simulated_client_config(kubeconfig: Path, count: int) -> ClientConfig:
    """The kubeconfig's credentials, with a QPS limit sized for `count` nodes' pod traffic."""
    config = ClientConfig.from_kubeconfig(kubeconfig)
    config.qps = max(config.qps, 50.0 + count / 5)
    config.burst = max(config.burst, 100 + count)
    config.user_agent = config.user_agent.replace("client", "simulated-nodes")
    return config


async def run_simulated_agent(kubeconfig: Path, count: int, capacity: dict, name_prefix: str) -> None:
    """Run `count` simulated nodes against the apiserver in `kubeconfig` until cancelled."""
    async with APIClient(simulated_client_config(kubeconfig, count)) as client:
        nodes = SimulatedNodes(client, count, name_prefix=name_prefix, capacity=capacity or None)
        await nodes.run()
