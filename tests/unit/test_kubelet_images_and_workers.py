"""Image pulls (policy, backoff, events) against a fake CRI, and the pod workers' state machine."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from pyk8s.kubelet.images import ImageManager, ImagePullError
from pyk8s.kubelet.pod_workers import PodWorkers, SyncOutcome
from pyk8s.kubelet.runtime.cri import CRIError, pb


class FakeImages:
    def __init__(self, present: set[str], pullable: set[str]) -> None:
        self.present = present
        self.pullable = pullable
        self.pulls: list[tuple[str, str]] = []

    async def image_status(self, image: str) -> pb.Image | None:
        return pb.Image(id=f"sha256:{image}", size=123) if image in self.present else None

    async def pull_image(self, image: str, auth=None, sandbox_config=None, timeout=None) -> str:
        self.pulls.append((image, auth.username if auth else ""))
        if image not in self.pullable:
            raise CRIError("PullImage", grpc.StatusCode.UNKNOWN, f"failed to resolve reference {image!r}")
        self.present.add(image)
        return image


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []

    def event(self, obj, type_, reason, message, field_path=None) -> None:
        self.seen.append((type_, reason, message))


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_pull_policies_and_events() -> None:
    runtime, events, clock = FakeImages({"here:1"}, {"remote:1", "here:1"}), Events(), Clock()
    images = ImageManager(runtime, events, clock=clock)  # type: ignore[arg-type]
    assert await images.ensure_image_exists(POD, {"image": "here:1", "imagePullPolicy": "IfNotPresent"}, "", []) == \
        "sha256:here:1"
    assert events.seen[-1] == ("Normal", "Pulled", 'Container image "here:1" already present on machine')
    assert runtime.pulls == []
    assert await images.ensure_image_exists(POD, {"image": "remote:1", "imagePullPolicy": "IfNotPresent"}, "",
                                            []) == "remote:1"
    assert [e[1] for e in events.seen[-2:]] == ["Pulling", "Pulled"]
    assert events.seen[-1][2].startswith('Successfully pulled image "remote:1" in ') and \
        events.seen[-1][2].endswith("Image size: 123 bytes.")
    await images.ensure_image_exists(POD, {"image": "here:1", "imagePullPolicy": "Always"}, "", [])
    assert runtime.pulls[-1] == ("here:1", "")  # Always pulls even when present
    with pytest.raises(ImagePullError) as never:
        await images.ensure_image_exists(POD, {"image": "absent:1", "imagePullPolicy": "Never"}, "", [])
    assert never.value.reason == "ErrImageNeverPull"
    assert events.seen[-1] == ("Warning", "ErrImageNeverPull",
                               'Container image "absent:1" is not present with pull policy of Never')


async def test_failed_pull_backs_off() -> None:
    runtime, events, clock = FakeImages(set(), set()), Events(), Clock()
    images = ImageManager(runtime, events, clock=clock)  # type: ignore[arg-type]
    container = {"image": "ghost:1", "imagePullPolicy": "IfNotPresent"}
    with pytest.raises(ImagePullError) as first:
        await images.ensure_image_exists(POD, container, "", [])
    assert first.value.reason == "ErrImagePull" and "ghost:1" in first.value.message
    assert events.seen[-1][:2] == ("Warning", "Failed")
    assert events.seen[-1][2].startswith('Failed to pull image "ghost:1": ')
    clock.now += 5
    with pytest.raises(ImagePullError) as backing_off:
        await images.ensure_image_exists(POD, container, "", [])
    # The waiting message carries the last pull's error; the event does not (as upstream since 1.32).
    assert (backing_off.value.reason, backing_off.value.message) == (
        "ImagePullBackOff", "Back-off pulling image \"ghost:1\": ErrImagePull: failed to resolve reference 'ghost:1'")
    assert events.seen[-1] == ("Normal", "BackOff", 'Back-off pulling image "ghost:1"')
    assert len(runtime.pulls) == 1
    clock.now += 6  # the 10 s window is over: pull again, fail again, window doubles
    with pytest.raises(ImagePullError):
        await images.ensure_image_exists(POD, container, "", [])
    assert len(runtime.pulls) == 2
    clock.now += 15
    with pytest.raises(ImagePullError) as still:
        await images.ensure_image_exists(POD, container, "", [])
    assert still.value.reason == "ImagePullBackOff"
    images.forget_pod("u1")
    with pytest.raises(ImagePullError) as fresh:
        await images.ensure_image_exists(POD, container, "", [])
    assert fresh.value.reason == "ErrImagePull"


class Syncer:
    def __init__(self) -> None:
        self.synced: list[str] = []
        self.terminating: list[tuple[str, int | None]] = []
        self.terminated: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.cancelled = 0
        self.terminal_after: int | None = None

    async def sync_pod(self, pod: dict) -> SyncOutcome:
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.synced.append(pod["metadata"]["resourceVersion"])
        terminal = self.terminal_after is not None and len(self.synced) >= self.terminal_after
        return SyncOutcome(terminal=terminal)

    async def sync_terminating_pod(self, pod: dict, grace: int | None) -> None:
        self.terminating.append((pod["metadata"]["resourceVersion"], grace))

    async def sync_terminated_pod(self, pod: dict) -> None:
        self.terminated.append(pod["metadata"]["resourceVersion"])


def pod(rv: str, **meta) -> dict:
    return {"metadata": {"uid": "u1", "resourceVersion": rv, **meta}}


async def eventually(check, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def test_latest_update_wins_and_kill_cancels_the_sync() -> None:
    syncer = Syncer()
    workers = PodWorkers(syncer, resync_interval=3600)
    syncer.gate.clear()
    workers.update_pod(pod("1"))
    await asyncio.sleep(0.05)
    for rv in ("2", "3", "4"):
        workers.update_pod(pod(rv))
    syncer.gate.set()
    await eventually(lambda: syncer.synced and syncer.synced[-1] == "4")
    assert syncer.synced == ["1", "4"]  # 2 and 3 were superseded before they were synced

    syncer.gate.clear()
    workers.update_pod(pod("5"))
    await asyncio.sleep(0.05)
    workers.kill_pod(pod("6", deletionTimestamp="now"), grace=30)
    workers.kill_pod(pod("7", deletionTimestamp="now"), grace=5)  # the grace period only shrinks ...
    workers.kill_pod(pod("8", deletionTimestamp="now"), grace=60)  # ... never grows
    await eventually(lambda: syncer.terminated)
    assert syncer.cancelled == 1
    assert syncer.terminating == [("8", 5)]
    assert workers.get("u1").terminated
    await workers.stop()
    assert workers.get("u1") is None


async def test_terminal_pod_is_terminated_once_and_deletion_finalizes_it() -> None:
    syncer = Syncer()
    syncer.terminal_after = 1
    workers = PodWorkers(syncer, resync_interval=3600)
    workers.update_pod(pod("1"))
    await eventually(lambda: syncer.terminated)
    assert syncer.terminating == [("1", None)] and syncer.terminated == ["1"]
    workers.update_pod(pod("2"))  # updates to a terminated pod do not run it again
    await asyncio.sleep(0.05)
    assert syncer.synced == ["1"]
    workers.kill_pod(pod("3", deletionTimestamp="now"), grace=30)
    await eventually(lambda: len(syncer.terminated) == 2)
    assert syncer.terminated == ["1", "3"] and syncer.terminating == [("1", None)]
    await workers.stop()


async def test_failed_sync_is_retried_after_the_backoff() -> None:
    class Failing(Syncer):
        async def sync_pod(self, pod: dict) -> SyncOutcome:
            self.synced.append(pod["metadata"]["resourceVersion"])
            if len(self.synced) == 1:
                raise RuntimeError("boom")
            return SyncOutcome()

    syncer = Failing()
    workers = PodWorkers(syncer, resync_interval=3600, error_backoff=0.05)
    workers.update_pod(pod("1"))
    await eventually(lambda: len(syncer.synced) >= 2)
    await workers.stop()
