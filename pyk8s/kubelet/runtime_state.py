"""What the kubelet knows about one pod from the container runtime alone (CRI), as plain values.

`PodRuntimeStatus` is the input of the pure parts (`pod_actions.compute_pod_actions`, `pod_status`): the pod's
sandboxes and every container the runtime still has for it, newest first, so "the latest instance of container
X" and "the one before it" (lastState) are simple lookups. It is built from CRI answers by the runtime manager
and never from the API, which is what lets a restarted kubelet pick up running pods where it left them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Labels and annotations on CRI objects: upstream's names, so any part (or a restarted kubelet) finds pods by them.
POD_NAME_LABEL = "io.kubernetes.pod.name"
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
RESTART_COUNT_ANNOTATION = "io.kubernetes.container.restartCount"
HASH_ANNOTATION = "io.kubernetes.container.hash"
TERMINATION_MESSAGE_PATH_ANNOTATION = "io.kubernetes.container.terminationMessagePath"
TERMINATION_MESSAGE_POLICY_ANNOTATION = "io.kubernetes.container.terminationMessagePolicy"
GRACE_PERIOD_ANNOTATION = "io.kubernetes.pod.terminationGracePeriod"

CREATED, RUNNING, EXITED, UNKNOWN = "created", "running", "exited", "unknown"


@dataclass(frozen=True)
class SandboxState:
    id: str
    attempt: int
    ready: bool
    created_at: float  # epoch seconds
    ips: tuple[str, ...] = ()  # the primary first; empty for a host-network pod or a stopped sandbox


@dataclass(frozen=True)
class ContainerState:
    """One container instance (one run of one container spec) as the runtime reports it."""

    id: str
    name: str
    restart_count: int
    state: str  # CREATED, RUNNING, EXITED or UNKNOWN
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # the runtime's (e.g. "OOMKilled")
    message: str = ""  # the termination message when the container wrote one
    image: str = ""
    image_ref: str = ""
    hash: str = ""
    sandbox_id: str = ""

    @property
    def running(self) -> bool:
        return self.state == RUNNING

    @property
    def exited(self) -> bool:
        return self.state in (EXITED, UNKNOWN)


@dataclass
class PodRuntimeStatus:
    uid: str
    name: str = ""
    namespace: str = ""
    sandboxes: list[SandboxState] = field(default_factory=list)  # newest first
    containers: list[ContainerState] = field(default_factory=list)  # newest first

    @property
    def latest_sandbox(self) -> SandboxState | None:
        return self.sandboxes[0] if self.sandboxes else None

    @property
    def ips(self) -> tuple[str, ...]:
        sandbox = self.latest_sandbox
        return sandbox.ips if sandbox is not None and sandbox.ready else ()

    def instances(self, name: str) -> list[ContainerState]:
        """Every instance of the named container, newest first."""
        return [c for c in self.containers if c.name == name]

    def latest(self, name: str) -> ContainerState | None:
        for c in self.containers:
            if c.name == name:
                return c
        return None

    def previous(self, name: str) -> ContainerState | None:
        instances = self.instances(name)
        return instances[1] if len(instances) > 1 else None

    @property
    def running_containers(self) -> list[ContainerState]:
        return [c for c in self.containers if c.running]
