"""The probe manager: starts one worker per probe of every container of the node's pods, keeps their
results, and tells the kubelet when a result changes (it then re-syncs the pod: a liveness or startup
failure restarts the container, readiness goes into the pod's status).

It is the kubelet's `ReadinessSource`: `None` from `is_ready`/`started` means the container has no probe
of that kind, so the kubelet's defaults apply. Like upstream's, the workers read each pod's latest status
(container IDs, states, pod IP) from the kubelet's status manager (`status_of`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from ...client.events import EventRecorder
from ..runtime.cri import CRIClient
from .probes import ProbeOutcome, Result, run_probe
from .worker import INITIAL, Kind, ProbeWorker, State

log = logging.getLogger("pyk8s.kubelet.prober")

WARNING = "Warning"


def _uid(pod: Mapping) -> str:
    return (pod.get("metadata") or {}).get("uid", "")


def _probed_containers(pod: Mapping) -> list[Mapping]:
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or () if c.get("restartPolicy") == "Always"]
    return [*sidecars, *(spec.get("containers") or ())]


class ProbeManager:
    def __init__(self, runtime: CRIClient, on_change: Callable[[str], None],
                 status_of: Callable[[str], Mapping | None], recorder: EventRecorder | None = None) -> None:
        self.runtime = runtime
        self.on_change = on_change
        self.status_of = status_of
        self.recorder = recorder
        self.created_at = time.monotonic()
        self._workers: dict[tuple[str, str, Kind], tuple[ProbeWorker, asyncio.Task]] = {}

    # ---- what the kubelet asks (ReadinessSource) ----

    def _state(self, uid: str, name: str, container_id: str, kind: Kind) -> State | None:
        """The result for this container instance: a worker that has not seen it yet has none (its kind's
        initial result applies, as upstream's results are keyed by container ID)."""
        entry = self._workers.get((uid, name, kind))
        if entry is None:
            return None
        worker = entry[0]
        if worker.container_id.split("://", 1)[-1] != container_id:
            return INITIAL[kind]
        return worker.state

    def is_ready(self, pod_uid: str, container_name: str, container_id: str) -> bool | None:
        state = self._state(pod_uid, container_name, container_id, Kind.READINESS)
        return None if state is None else state is State.SUCCESS

    def started(self, pod_uid: str, container_name: str, container_id: str) -> bool | None:
        state = self._state(pod_uid, container_name, container_id, Kind.STARTUP)
        return None if state is None else state is State.SUCCESS

    def liveness_failed(self, pod_uid: str, container_name: str, container_id: str) -> bool:
        return (self._state(pod_uid, container_name, container_id, Kind.LIVENESS) is State.FAILURE
                or self._state(pod_uid, container_name, container_id, Kind.STARTUP) is State.FAILURE)

    # ---- what the kubelet tells ----

    def add_pod(self, pod: Mapping) -> None:
        """A pod the kubelet runs (called on every sync, so idempotent): starts workers for its probes."""
        uid = _uid(pod)
        for container in _probed_containers(pod):
            for kind in Kind:
                key = (uid, container["name"], kind)
                if container.get(kind.field) and key not in self._workers:
                    self._start(key, pod, container, kind)

    def remove_pod(self, pod_uid: str) -> None:
        for key in [k for k in self._workers if k[0] == pod_uid]:
            _, task = self._workers.pop(key)
            task.cancel()

    async def stop(self) -> None:
        tasks = [task for _, task in self._workers.values()]
        self._workers.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- workers ----

    def _start(self, key: tuple[str, str, Kind], pod: Mapping, container: Mapping, kind: Kind) -> None:
        uid = key[0]

        async def probe(pod: Mapping, container: Mapping, container_id: str, spec: Mapping) -> ProbeOutcome:
            pod_ip = (self.status_of(uid) or {}).get("podIP")
            outcome = await run_probe(spec, container, container_id, pod_ip, self.runtime)
            self._record_event(pod, container, kind, outcome)
            return outcome

        worker = ProbeWorker(kind, pod, container, probe, lambda: self.on_change(uid))
        task = asyncio.create_task(self._run(key, worker), name=f"probe-{kind.value.lower()}-{uid}-"
                                                                 f"{container['name']}")
        self._workers[key] = (worker, task)

    async def _run(self, key: tuple[str, str, Kind], worker: ProbeWorker) -> None:
        try:
            await worker.run(lambda: self.status_of(key[0]), self.created_at)
        except asyncio.CancelledError:
            raise
        except Exception:  # a worker must never take the kubelet down
            log.exception("%s probe worker for %s/%s failed", worker.kind.value, key[0], key[1])

    def _record_event(self, pod: Mapping, container: Mapping, kind: Kind, outcome: ProbeOutcome) -> None:
        if self.recorder is None or outcome.result is Result.SUCCESS:
            return
        field_path = f"spec.containers{{{container['name']}}}"
        if outcome.result is Result.WARNING:
            self.recorder.event(pod, WARNING, "ProbeWarning", f"{kind.value} probe warning: {outcome.output}",
                                field_path=field_path)
        else:
            self.recorder.event(pod, WARNING, "Unhealthy", f"{kind.value} probe failed: {outcome.output}",
                                field_path=field_path)
