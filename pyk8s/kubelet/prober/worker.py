"""One probe worker per (pod, container, probe kind), with upstream's rules (pkg/kubelet/prober/worker.go).

- A new container (its ID changed) starts from the kind's initial result: readiness Failure, liveness
  Success, startup Unknown; a worker put on hold by a liveness/startup failure resumes with it.
- A container that is not running reads as Failure; the worker stops when the pod is finished or the
  container is done for good (terminated under restartPolicy Never).
- Liveness and startup stop when the pod is being deleted; nothing but startup runs before the container
  has started, and startup stops probing once it has.
- initialDelaySeconds counts from the container's start; results change only after successThreshold or
  failureThreshold equal attempts in a row.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from ...api.meta import parse_time
from .probes import ProbeError, ProbeOutcome, Result

log = logging.getLogger("pyk8s.kubelet.prober")


class Kind(enum.Enum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"

    @property
    def field(self) -> str:
        return {"Liveness": "livenessProbe", "Readiness": "readinessProbe", "Startup": "startupProbe"}[self.value]


class State(enum.Enum):
    UNKNOWN = "unknown"
    SUCCESS = "success"
    FAILURE = "failure"


INITIAL = {Kind.READINESS: State.FAILURE, Kind.LIVENESS: State.SUCCESS, Kind.STARTUP: State.UNKNOWN}

# (pod, container, container ID, probe) -> one attempt's outcome
Prober = Callable[[Mapping, Mapping, str, Mapping], Awaitable[ProbeOutcome]]


def container_status(pod_status: Mapping, name: str) -> Mapping | None:
    for status in pod_status.get("containerStatuses") or ():
        if status.get("name") == name:
            return status
    for status in pod_status.get("initContainerStatuses") or ():  # sidecars carry probes too
        if status.get("name") == name:
            return status
    return None


@dataclass
class ProbeWorker:
    kind: Kind
    pod: Mapping
    container: Mapping
    prober: Prober
    on_change: Callable[[], None]
    wall: Callable[[], float] = time.time
    container_id: str = ""
    state: State = State.UNKNOWN
    on_hold: bool = False
    last_passed: bool | None = None
    run_length: int = 0
    spec: Mapping = field(init=False)

    def __post_init__(self) -> None:
        self.spec = self.container.get(self.kind.field) or {}
        self.state = INITIAL[self.kind]

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds") or 10)

    def _set(self, state: State) -> None:
        if state is not self.state:
            self.state = state
            self.on_change()

    async def step(self, pod_status: Mapping | None) -> bool:
        """One tick: maybe probe, maybe change the result. False = this worker is done."""
        if pod_status is None:
            return True
        if pod_status.get("phase") in ("Succeeded", "Failed"):
            return False
        status = container_status(pod_status, self.container["name"])
        if status is None or not status.get("containerID"):
            return True
        if status["containerID"] != self.container_id:
            self.container_id = status["containerID"]
            self.on_hold = False
            self.last_passed, self.run_length = None, 0
            self._set(INITIAL[self.kind])
        if self.on_hold:
            return True
        state = status.get("state") or {}
        running = state.get("running")
        if running is None:
            self._set(State.FAILURE)
            restart_policy = (self.pod.get("spec") or {}).get("restartPolicy") or "Always"
            return "terminated" not in state or restart_policy != "Never"
        if (self.pod.get("metadata") or {}).get("deletionTimestamp") and self.kind is not Kind.READINESS:
            if self.kind is Kind.STARTUP:
                self._set(State.UNKNOWN)
            return False
        started_at = running.get("startedAt")
        delay = int(self.spec.get("initialDelaySeconds") or 0)
        if started_at and self.wall() - parse_time(started_at).timestamp() < delay:
            return True
        if status.get("started"):
            if self.kind is Kind.STARTUP:
                return True
        elif self.kind is not Kind.STARTUP:
            return True
        try:
            outcome = await self.prober(self.pod, self.container, self.container_id.split("://", 1)[-1], self.spec)
        except ProbeError as exc:
            log.info("%s probe of %s/%s container %s not run: %s", self.kind.value, _ns(self.pod), _name(self.pod),
                     self.container["name"], exc)
            return True
        self.record(outcome)
        return True

    def record(self, outcome: ProbeOutcome) -> None:
        passed = outcome.result is not Result.FAILURE
        if passed == self.last_passed:
            self.run_length += 1
        else:
            self.last_passed, self.run_length = passed, 1
        threshold = int(self.spec.get("successThreshold") or 1) if passed else \
            int(self.spec.get("failureThreshold") or 3)
        if self.run_length < threshold:
            return
        self._set(State.SUCCESS if passed else State.FAILURE)
        if not passed and self.kind in (Kind.LIVENESS, Kind.STARTUP):
            # The container will be restarted: stop probing until a new container ID shows up.
            self.on_hold = True
            self.run_length = 0

    async def run(self, latest_status: Callable[[], Mapping | None], kubelet_started: float) -> None:
        period = self.period
        # Right after a kubelet (re)start, spread the workers' first probes over one period.
        if time.monotonic() - kubelet_started < period:
            await asyncio.sleep(random.random() * period)
        while await self.step(latest_status()):
            await asyncio.sleep(period)


def _ns(pod: Mapping) -> str:
    return (pod.get("metadata") or {}).get("namespace", "")


def _name(pod: Mapping) -> str:
    return (pod.get("metadata") or {}).get("name", "")
