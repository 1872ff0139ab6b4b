"""Image garbage collection rules (upstream image_gc_manager_test.go) against an in-memory CRI image service."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from pyk8s.kubelet.eviction.signals import FsStats
from pyk8s.kubelet.image_gc import ImageGC, ImageGCError, ImageGCPolicy
from pyk8s.kubelet.runtime.cri import CRIError, pb

MB = 1_000_000


class FakeRuntime:
    def __init__(self) -> None:
        self.images: dict[str, pb.Image] = {}
        self.containers: list[pb.Container] = []
        self.removed: list[str] = []
        self.refuse: set[str] = set()

    def add_image(self, image_id: str, size: int, *tags: str, pinned: bool = False) -> None:
        self.images[image_id] = pb.Image(id=image_id, size=size, repo_tags=list(tags), pinned=pinned)

    def run(self, image_id: str, state: int = pb.CONTAINER_RUNNING) -> None:
        self.containers.append(pb.Container(id=f"c{len(self.containers)}", image_ref=image_id, state=state))

    async def list_images(self) -> list[pb.Image]:
        return list(self.images.values())

    async def list_containers(self) -> list[pb.Container]:
        return list(self.containers)

    async def remove_image(self, image: str) -> None:
        if image in self.refuse:
            raise CRIError("RemoveImage", grpc.StatusCode.UNKNOWN, f"image {image} is busy")
        del self.images[image]
        self.removed.append(image)


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj: dict, type: str, reason: str, message: str) -> None:
        self.events.append((obj["name"], reason, message))


def _gc(runtime: FakeRuntime, *, capacity: int = 1000 * MB, available: int = 100 * MB, in_use: set[str] = frozenset(),
        period: float = 300, **policy: object) -> tuple[ImageGC, Clock, Recorder, list[FsStats]]:
    clock, recorder = Clock(), Recorder()
    fs = [FsStats(capacity, available)]

    async def image_fs() -> FsStats:
        # Freed images give their bytes back to the filesystem.
        freed = sum(size for image_id, size in sizes.items() if image_id not in runtime.images)
        return FsStats(fs[0].capacity_bytes, fs[0].available_bytes + freed)

    sizes = {image_id: image.size for image_id, image in runtime.images.items()}
    gc = ImageGC(runtime, ImageGCPolicy(**policy), lambda: set(in_use), image_fs=image_fs,
                 sandbox_image="pause:3.10", recorder=recorder, node_name="node-a", period=period, clock=clock)
    return gc, clock, recorder, fs


async def test_lru_unused_images_go_until_under_the_low_threshold() -> None:
    runtime = FakeRuntime()
    runtime.add_image("sha256:old", 60 * MB, "old:1")
    runtime.add_image("sha256:newer", 80 * MB, "newer:1")
    runtime.add_image("sha256:newest", 200 * MB, "newest:1")
    runtime.add_image("sha256:used", 300 * MB, "used:1")
    runtime.add_image("sha256:pause", 1 * MB, "pause:3.10")
    runtime.run("sha256:newer", state=pb.CONTAINER_RUNNING)
    gc, clock, _recorder, _fs = _gc(runtime, available=100 * MB, min_age=0)  # 90% used; 85/80 thresholds
    await gc.detect_images(clock())
    clock.now += 10
    runtime.containers.clear()
    runtime.run("sha256:newest")
    await gc.detect_images(clock())
    clock.now += 10
    # Now "old" was never used, "newer" was last used before "newest".
    runtime.containers.clear()
    runtime.run("sha256:used", state=pb.CONTAINER_EXITED)  # an exited container still holds its image
    await gc.garbage_collect()
    # To reach 80% usage, 100 MB must go: "old" (never used) then "newer" (used longest ago).
    assert runtime.removed == ["sha256:old", "sha256:newer"]
    assert set(runtime.images) == {"sha256:newest", "sha256:used", "sha256:pause"}


async def test_nothing_happens_below_the_high_threshold() -> None:
    runtime = FakeRuntime()
    runtime.add_image("sha256:a", 10 * MB, "a:1")
    gc, clock, _recorder, _fs = _gc(runtime, available=200 * MB, min_age=0)  # 80% used < 85%
    await gc.garbage_collect()
    assert runtime.removed == []


async def test_young_pinned_and_in_use_images_stay_and_failure_is_reported() -> None:
    runtime = FakeRuntime()
    runtime.add_image("sha256:young", 50 * MB, "young:1")
    runtime.add_image("sha256:pinned", 50 * MB, "pinned:1", pinned=True)
    runtime.add_image("sha256:wanted", 50 * MB, "wanted:1")
    runtime.add_image("sha256:old", 10 * MB, "old:1")
    gc, clock, recorder, _fs = _gc(runtime, available=50 * MB, in_use={"wanted:1"})  # min_age 2m
    await gc.detect_images(clock())
    runtime.add_image("sha256:young2", 5 * MB, "young2:1")
    clock.now += 120
    gc.records["sha256:young"].first_detected = clock.now - 60
    with pytest.raises(ImageGCError) as failure:
        await gc.garbage_collect()
    assert runtime.removed == ["sha256:old"]
    message = ("Failed to garbage collect required amount of images. Attempted to free 150000000 bytes, but only "
               "found 10000000 bytes eligible to free.")
    assert str(failure.value) == message
    assert recorder.events == [("node-a", "FreeDiskSpaceFailed", message)]


async def test_delete_unused_images_frees_everything_it_may() -> None:
    runtime = FakeRuntime()
    for name in ("a", "b", "c"):
        runtime.add_image(f"sha256:{name}", 10 * MB, f"{name}:1")
    runtime.run("sha256:b")
    gc, clock, _recorder, _fs = _gc(runtime, available=900 * MB, min_age=0)
    await gc.detect_images(clock() - 1)
    assert await gc.delete_unused_images() == 20 * MB
    assert sorted(runtime.removed) == ["sha256:a", "sha256:c"]


async def test_removal_errors_are_collected() -> None:
    runtime = FakeRuntime()
    runtime.add_image("sha256:busy", 10 * MB, "busy:1")
    runtime.add_image("sha256:free", 10 * MB, "free:1")
    runtime.refuse.add("sha256:busy")
    gc, clock, _recorder, _fs = _gc(runtime, min_age=0)
    with pytest.raises(ImageGCError) as failure:
        await gc.delete_unused_images()
    assert runtime.removed == ["sha256:free"]
    assert "freed 10000000 bytes space with errors in image deletion" in str(failure.value)
    assert "image sha256:busy is busy" in str(failure.value)


async def test_zero_capacity_is_an_invalid_disk_capacity_event() -> None:
    runtime = FakeRuntime()
    gc, _clock, recorder, _fs = _gc(runtime, capacity=0, available=0)
    with pytest.raises(ImageGCError, match="invalid capacity 0 on image filesystem"):
        await gc.garbage_collect()
    assert recorder.events == [("node-a", "InvalidDiskCapacity", "invalid capacity 0 on image filesystem")]


async def test_images_unused_longer_than_max_age_go_regardless_of_usage() -> None:
    runtime = FakeRuntime()
    runtime.add_image("sha256:stale", 10 * MB, "stale:1")
    runtime.add_image("sha256:recent", 10 * MB, "recent:1")
    gc, clock, _recorder, _fs = _gc(runtime, available=900 * MB, min_age=0, max_age=3600)
    runtime.run("sha256:recent")
    await gc.detect_images(clock())
    clock.now += 3601
    await gc.garbage_collect()
    assert runtime.removed == ["sha256:stale"]


@pytest.mark.parametrize(("policy", "message"), [
    ({"high_threshold_percent": 101}, "invalid HighThresholdPercent 101, must be in range [0-100]"),
    ({"low_threshold_percent": -1}, "invalid LowThresholdPercent -1, must be in range [0-100]"),
    ({"high_threshold_percent": 50, "low_threshold_percent": 60},
     "LowThresholdPercent 60 can not be higher than HighThresholdPercent 50"),
])
def test_policy_validation(policy: dict, message: str) -> None:
    with pytest.raises(ValueError) as failure:
        ImageGCPolicy(**policy)
    assert str(failure.value) == message


def test_a_full_high_threshold_without_max_age_disables_gc() -> None:
    assert ImageGCPolicy(high_threshold_percent=100, low_threshold_percent=90).disabled
    assert not ImageGCPolicy().disabled


async def test_repeated_failures_become_image_gc_failed_events() -> None:
    runtime = FakeRuntime()
    gc, _clock, recorder, _fs = _gc(runtime, capacity=0, available=0, period=0.01)
    task = asyncio.create_task(gc.run())
    deadline = asyncio.get_running_loop().time() + 30
    while len(recorder.events) < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # First failure: only the capacity event; from the second on, ImageGCFailed too.
    assert [reason for _, reason, _ in recorder.events[:3]] == ["InvalidDiskCapacity", "InvalidDiskCapacity",
                                                                "ImageGCFailed"]
    assert recorder.events[2][2] == "invalid capacity 0 on image filesystem"


async def test_disabled_gc_does_not_run() -> None:
    runtime = FakeRuntime()
    gc, _clock, recorder, _fs = _gc(runtime, capacity=0, high_threshold_percent=100, low_threshold_percent=80)
    await asyncio.wait_for(gc.run(), timeout=30)  # returns at once
    assert recorder.events == []
