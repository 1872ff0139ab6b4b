"""compute_pod_actions as table tests, after upstream's TestComputePodActions (kuberuntime_manager_test.go)."""

from __future__ import annotations

import pytest

from pyk8s.kubelet.backoff import Backoff
from pyk8s.kubelet.pod_actions import PodActions, compute_pod_actions, container_hash, sandbox_changed
from pyk8s.kubelet.runtime_state import CREATED, EXITED, RUNNING, ContainerState, PodRuntimeStatus, SandboxState


def make_pod(containers=("foo1", "foo2", "foo3"), init=(), sidecars=(), restart_policy="Always", **spec) -> dict:
    def container(name: str, **extra) -> dict:
        return {"name": name, "image": "busybox", **extra}
    init_containers = [container(n) for n in init] + [container(n, restartPolicy="Always") for n in sidecars]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
            "spec": {"containers": [container(n) for n in containers], "initContainers": init_containers,
                     "restartPolicy": restart_policy, **spec}}


def spec_of(pod: dict, name: str) -> dict:
    for c in pod["spec"]["initContainers"] + pod["spec"]["containers"]:
        if c["name"] == name:
            return c
    raise KeyError(name)


def instance(pod: dict, name: str, state: str = RUNNING, exit_code: int = 0, restarts: int = 0, created: float = 1.0,
             hash_: str | None = None) -> ContainerState:
    return ContainerState(id=f"{name}-{restarts}", name=name, restart_count=restarts, state=state,
                          created_at=created, exit_code=exit_code,
                          hash=container_hash(spec_of(pod, name)) if hash_ is None else hash_)


def runtime(pod: dict, *containers: ContainerState, sandbox_ready: bool = True, ips=("10.0.0.5",),
            sandboxes: list[SandboxState] | None = None) -> PodRuntimeStatus:
    if sandboxes is None:
        sandboxes = [SandboxState("sb-0", 0, sandbox_ready, 1.0, ips if sandbox_ready else ())]
    return PodRuntimeStatus(uid="uid-1", sandboxes=sandboxes,
                            containers=sorted(containers, key=lambda c: c.created_at, reverse=True))


def all_running(pod: dict) -> PodRuntimeStatus:
    return runtime(pod, *(instance(pod, c["name"]) for c in pod["spec"]["containers"]))


def test_start_everything_in_a_new_sandbox() -> None:
    pod = make_pod()
    actions = compute_pod_actions(pod, PodRuntimeStatus(uid="uid-1"))
    assert actions == PodActions(kill_pod=True, create_sandbox=True, attempt=0,
                                 containers_to_start=["foo1", "foo2", "foo3"])


def test_nothing_to_do_when_everything_runs() -> None:
    pod = make_pod()
    assert compute_pod_actions(pod, all_running(pod)) == PodActions(sandbox_id="sb-0")


@pytest.mark.parametrize(("policy", "exit_code", "restart"), [
    ("Always", 0, True), ("Always", 1, True), ("OnFailure", 0, False), ("OnFailure", 1, True),
    ("Never", 0, False), ("Never", 1, False)])
def test_exited_container_restarts_by_policy(policy: str, exit_code: int, restart: bool) -> None:
    pod = make_pod(restart_policy=policy)
    status = runtime(pod, instance(pod, "foo1", EXITED, exit_code), instance(pod, "foo2"), instance(pod, "foo3"))
    actions = compute_pod_actions(pod, status)
    assert actions.containers_to_start == (["foo1"] if restart else [])
    assert not actions.kill_pod and not actions.create_sandbox


@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
def test_pod_is_killed_when_nothing_runs_or_will(policy: str) -> None:
    pod = make_pod(restart_policy=policy)
    status = runtime(pod, *(instance(pod, n, EXITED, 0) for n in ("foo1", "foo2", "foo3")))
    actions = compute_pod_actions(pod, status)
    assert actions.kill_pod and not actions.create_sandbox and not actions.containers_to_start


def test_dead_sandbox_is_recreated_and_everything_restarted() -> None:
    pod = make_pod()
    status = runtime(pod, instance(pod, "foo1", EXITED, 0), sandbox_ready=False)
    actions = compute_pod_actions(pod, status)
    assert actions.kill_pod and actions.create_sandbox and actions.attempt == 1 and actions.sandbox_id == "sb-0"
    assert actions.containers_to_start == ["foo1", "foo2", "foo3"]


def test_dead_sandbox_with_on_failure_skips_succeeded_containers() -> None:
    pod = make_pod(restart_policy="OnFailure")
    status = runtime(pod, instance(pod, "foo1", EXITED, 0), instance(pod, "foo2", EXITED, 1), sandbox_ready=False)
    assert compute_pod_actions(pod, status).containers_to_start == ["foo2", "foo3"]


def test_dead_sandbox_of_a_never_pod_that_ran_is_not_recreated() -> None:
    pod = make_pod(restart_policy="Never")
    status = runtime(pod, instance(pod, "foo1", EXITED, 1), sandbox_ready=False)
    actions = compute_pod_actions(pod, status)
    assert actions.kill_pod and not actions.create_sandbox and not actions.containers_to_start


def test_sandbox_without_ip_is_recreated_unless_host_network() -> None:
    pod = make_pod()
    status = runtime(pod, *(instance(pod, c) for c in ("foo1", "foo2", "foo3")), ips=())
    assert sandbox_changed(pod, status)[0]
    pod["spec"]["hostNetwork"] = True
    assert not sandbox_changed(pod, status)[0]


def test_two_ready_sandboxes_are_replaced() -> None:
    pod = make_pod()
    sandboxes = [SandboxState("sb-1", 1, True, 2.0, ("10.0.0.6",)), SandboxState("sb-0", 0, True, 1.0, ("10.0.0.5",))]
    assert sandbox_changed(pod, runtime(pod, sandboxes=sandboxes)) == (True, 2, "sb-1")


def test_changed_spec_restarts_the_container() -> None:
    pod = make_pod()
    status = runtime(pod, instance(pod, "foo1", hash_="stale"), instance(pod, "foo2"), instance(pod, "foo3"))
    actions = compute_pod_actions(pod, status)
    assert [k.container.name for k in actions.containers_to_kill] == ["foo1"]
    assert actions.containers_to_kill[0].message == "Container foo1 definition changed, will be restarted"
    assert actions.containers_to_start == ["foo1"]


def test_failed_liveness_restarts_the_container_unless_never() -> None:
    pod = make_pod()
    actions = compute_pod_actions(pod, all_running(pod), liveness_failed=lambda name, _id: name == "foo2")
    assert [k.container.name for k in actions.containers_to_kill] == ["foo2"]
    assert actions.containers_to_start == ["foo2"]
    pod = make_pod(restart_policy="Never")
    actions = compute_pod_actions(pod, all_running(pod), liveness_failed=lambda name, _id: name == "foo2")
    assert [k.container.name for k in actions.containers_to_kill] == ["foo2"] and not actions.containers_to_start


def test_init_containers_run_one_at_a_time_in_order() -> None:
    pod = make_pod(init=("init1", "init2"))
    assert compute_pod_actions(pod, PodRuntimeStatus(uid="uid-1")).init_containers_to_start == ["init1"]
    assert compute_pod_actions(pod, runtime(pod)).init_containers_to_start == ["init1"]
    running = runtime(pod, instance(pod, "init1"))
    assert compute_pod_actions(pod, running) == PodActions(sandbox_id="sb-0")
    first_done = runtime(pod, instance(pod, "init1", EXITED, 0))
    assert compute_pod_actions(pod, first_done).init_containers_to_start == ["init2"]
    all_done = runtime(pod, instance(pod, "init1", EXITED, 0), instance(pod, "init2", EXITED, 0, created=2))
    actions = compute_pod_actions(pod, all_done)
    assert actions.init_containers_to_start == [] and actions.containers_to_start == ["foo1", "foo2", "foo3"]


def test_failed_init_container_restarts_or_fails_the_pod() -> None:
    pod = make_pod(init=("init1",))
    failed = runtime(pod, instance(pod, "init1", EXITED, 1))
    assert compute_pod_actions(pod, failed).init_containers_to_start == ["init1"]
    pod = make_pod(init=("init1",), restart_policy="Never")
    actions = compute_pod_actions(pod, runtime(pod, instance(pod, "init1", EXITED, 1)))
    assert actions.kill_pod and not actions.init_containers_to_start and not actions.containers_to_start


def test_created_but_not_started_init_container_is_waited_for() -> None:
    pod = make_pod(init=("init1",))
    assert compute_pod_actions(pod, runtime(pod, instance(pod, "init1", CREATED))) == PodActions(sandbox_id="sb-0")


def test_sidecar_starts_before_the_next_init_container_and_stays_up() -> None:
    pod = make_pod(init=("init1",), sidecars=())
    pod["spec"]["initContainers"] = [{"name": "sidecar", "image": "b", "restartPolicy": "Always"},
                                     {"name": "init1", "image": "b"}]
    assert compute_pod_actions(pod, runtime(pod)).init_containers_to_start == ["sidecar"]
    sidecar_up = runtime(pod, instance(pod, "sidecar"))
    assert compute_pod_actions(pod, sidecar_up).init_containers_to_start == ["init1"]
    initialized = runtime(pod, instance(pod, "sidecar"), instance(pod, "init1", EXITED, 0, created=2))
    actions = compute_pod_actions(pod, initialized)
    assert actions.init_containers_to_start == [] and actions.containers_to_start == ["foo1", "foo2", "foo3"]


def test_exited_sidecar_restarts_even_for_never_pods() -> None:
    pod = make_pod(sidecars=("sidecar",), restart_policy="Never")
    status = runtime(pod, instance(pod, "sidecar", EXITED, 1), *(instance(pod, c, created=2)
                                                                 for c in ("foo1", "foo2", "foo3")))
    actions = compute_pod_actions(pod, status)
    assert actions.init_containers_to_start == ["sidecar"] and not actions.kill_pod


def test_sidecars_do_not_keep_a_finished_pod_alive() -> None:
    pod = make_pod(containers=("main",), sidecars=("sidecar",), restart_policy="Never")
    status = runtime(pod, instance(pod, "sidecar"), instance(pod, "main", EXITED, 0, created=2))
    actions = compute_pod_actions(pod, status)
    assert actions.kill_pod and actions.init_containers_to_start == [] and not actions.create_sandbox


def test_backoff_arithmetic_like_upstream() -> None:
    backoff = Backoff()
    # First crash: not in backoff, restart now and open a 10 s window.
    assert not backoff.in_backoff_since("c", event_time=100.0, now=100.0)
    backoff.next("c", event_time=100.0, now=100.0)
    # Second crash at 105: wait until 115; then the window doubles.
    assert backoff.in_backoff_since("c", event_time=105.0, now=110.0)
    assert backoff.remaining("c", event_time=105.0, now=110.0) == pytest.approx(5.0)
    assert not backoff.in_backoff_since("c", event_time=105.0, now=115.0)
    backoff.next("c", event_time=105.0, now=115.0)
    assert backoff.duration("c") == 20.0
    for step in range(10):
        backoff.next("c", event_time=116.0 + step, now=116.0 + step)
    assert backoff.duration("c") == 300.0  # capped at 5 minutes
    # A crash more than 10 minutes after the last restart starts over.
    assert not backoff.in_backoff_since("c", event_time=125.0 + 601, now=125.0 + 601)
    backoff.next("c", event_time=125.0 + 601, now=125.0 + 601)
    assert backoff.duration("c") == 10.0


def test_image_pull_backoff_counts_from_the_last_attempt() -> None:
    backoff = Backoff()
    backoff.next("img", 50.0, 50.0)
    assert backoff.in_backoff_since_update("img", 55.0)
    assert backoff.remaining_since_update("img", 55.0) == pytest.approx(5.0)
    assert not backoff.in_backoff_since_update("img", 60.0)
    backoff.forget_prefix("im")
    assert not backoff.in_backoff_since_update("img", 50.0)
