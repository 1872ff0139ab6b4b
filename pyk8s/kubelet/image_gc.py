"""Image garbage collection by disk thresholds (upstream pkg/kubelet/images/image_gc_manager.go).

The kubelet remembers when it first saw each image and when a container last used it. Every 5 minutes, when the
image filesystem is at least `high_threshold_percent` full, it removes unused images, least recently used first and
only those first seen at least `min_age` ago, until usage is back under `low_threshold_percent`. Images in use are
those of any container the runtime knows (running or exited), the pod sandbox image, pinned images, and whatever
the `in_use` callable names (the kubelet's pods' images, by name or ID). The eviction manager calls
`delete_unused_images()` under disk pressure to free everything it may.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..client import WARNING
from .runtime.cri import CRIClient, CRIError, pb

if TYPE_CHECKING:
    from ..client import EventRecorder
    from .eviction.signals import FsStats

log = logging.getLogger(__name__)

IMAGE_GC_PERIOD = 300.0
FREE_DISK_SPACE_FAILED = "FreeDiskSpaceFailed"
IMAGE_GC_FAILED = "ImageGCFailed"
INVALID_DISK_CAPACITY = "InvalidDiskCapacity"


class ImageGCError(Exception):
    """A collection that failed; the message is upstream's."""


@dataclass(frozen=True)
class ImageGCPolicy:
    high_threshold_percent: int = 85  # --image-gc-high-threshold
    low_threshold_percent: int = 80  # --image-gc-low-threshold
    min_age: float = 120.0  # --minimum-image-ttl-duration (imageMinimumGCAge), seconds
    max_age: float = 0.0  # imageMaximumGCAge, seconds; 0 disables age-based collection

    def __post_init__(self) -> None:
        if not 0 <= self.high_threshold_percent <= 100:
            raise ValueError(f"invalid HighThresholdPercent {self.high_threshold_percent}, must be in range [0-100]")
        if not 0 <= self.low_threshold_percent <= 100:
            raise ValueError(f"invalid LowThresholdPercent {self.low_threshold_percent}, must be in range [0-100]")
        if self.low_threshold_percent > self.high_threshold_percent:
            raise ValueError(f"LowThresholdPercent {self.low_threshold_percent} can not be higher than "
                             f"HighThresholdPercent {self.high_threshold_percent}")

    @property
    def disabled(self) -> bool:
        """Upstream does not run image GC at all with a 100% high threshold and no maximum age."""
        return self.high_threshold_percent == 100 and not self.max_age


@dataclass
class ImageRecord:
    first_detected: float
    last_used: float = 0.0
    size: int = 0
    pinned: bool = False
    names: set[str] = field(default_factory=set)  # tags and digests


class ImageGC:
    def __init__(self, runtime: CRIClient, config: ImageGCPolicy, in_use: Callable[[], set[str]], *,
                 image_fs: Callable[[], Awaitable[FsStats | None]], sandbox_image: str | None = None,
                 recorder: EventRecorder | None = None, node_name: str = "", period: float = IMAGE_GC_PERIOD,
                 clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.policy = config
        self.in_use = in_use
        self.image_fs = image_fs
        self.sandbox_image = sandbox_image
        self.recorder = recorder
        self.node_name = node_name
        self.period = period
        self.clock = clock
        self.records: dict[str, ImageRecord] = {}
        self.began = clock()

    async def run(self) -> None:
        """garbage_collect() every period (5 minutes) until cancelled; repeated failures become ImageGCFailed
        events."""
        if self.policy.disabled:
            log.info("image GC disabled: high threshold 100%% and no maximum age")
            return
        failed_before = False
        while True:
            try:
                await self.garbage_collect()
                failed_before = False
            except Exception as exc:  # any failure (runtime down, stats missing) is retried next period
                if failed_before:
                    log.error("image garbage collection failed multiple times in a row: %s", exc)
                    self._node_event(IMAGE_GC_FAILED, str(exc))
                else:
                    log.warning("image garbage collection failed once: %s", exc)
                failed_before = True
            await asyncio.sleep(self.period)

    # ---- detection ----------------------------------------------------------------------------------

    async def _images_in_use(self) -> set[str]:
        """Image IDs and names in use: every container the runtime has (any state), the sandbox image and the
        kubelet's own list."""
        used: set[str] = set()
        for container in await self.runtime.list_containers():
            used |= {name for name in (container.image_ref, container.image.image) if name}
        used |= set(self.in_use())
        if self.sandbox_image:
            used.add(self.sandbox_image)
        return used

    async def detect_images(self, detect_time: float) -> set[str]:
        """Refresh the records from the runtime; returns the IDs of images in use."""
        images: list[pb.Image] = await self.runtime.list_images()
        used_names = await self._images_in_use()
        now = self.clock()
        in_use: set[str] = set()
        current = set()
        for image in images:
            current.add(image.id)
            record = self.records.setdefault(image.id, ImageRecord(first_detected=detect_time))
            record.names = {*image.repo_tags, *image.repo_digests}
            record.size = image.size
            record.pinned = image.pinned
            if image.id in used_names or record.names & used_names:
                record.last_used = now
                in_use.add(image.id)
        for image_id in set(self.records) - current:
            del self.records[image_id]
        return in_use

    async def images_in_eviction_order(self, free_time: float) -> list[tuple[str, ImageRecord]]:
        in_use = await self.detect_images(free_time)
        candidates = [(image_id, record) for image_id, record in self.records.items()
                      if image_id not in in_use and not record.pinned]
        return sorted(candidates, key=lambda item: (item[1].last_used, item[1].first_detected))

    # ---- collection ---------------------------------------------------------------------------------

    async def garbage_collect(self) -> None:
        """Free images down to the low threshold when the image filesystem is over the high one."""
        free_time = self.clock()
        candidates = await self.images_in_eviction_order(free_time)
        candidates = await self._free_old_images(candidates, free_time)
        fs = await self.image_fs()
        if fs is None:
            raise ImageGCError("failed to get image filesystem stats")
        capacity, available = fs.capacity_bytes, min(fs.available_bytes, fs.capacity_bytes)
        if capacity == 0:
            message = "invalid capacity 0 on image filesystem"
            self._node_event(INVALID_DISK_CAPACITY, message)
            raise ImageGCError(message)
        usage_percent = 100 - available * 100 // capacity
        if usage_percent < self.policy.high_threshold_percent:
            return
        to_free = capacity * (100 - self.policy.low_threshold_percent) // 100 - available
        log.info("disk usage on image filesystem is %d%% (high threshold %d%%): freeing %d bytes to reach %d%%",
                 usage_percent, self.policy.high_threshold_percent, to_free, self.policy.low_threshold_percent)
        freed = await self._free_space(to_free, free_time, candidates)
        if freed < to_free:
            message = (f"Failed to garbage collect required amount of images. Attempted to free {to_free} bytes, "
                       f"but only found {freed} bytes eligible to free.")
            self._node_event(FREE_DISK_SPACE_FAILED, message)
            raise ImageGCError(message)

    async def delete_unused_images(self) -> int:
        """Remove every image that may go (the eviction manager's node-level reclaim); returns bytes freed."""
        log.info("attempting to delete unused images")
        free_time = self.clock()
        return await self._free_space(None, free_time, await self.images_in_eviction_order(free_time))

    async def _free_old_images(self, candidates: list[tuple[str, ImageRecord]], free_time: float
                               ) -> list[tuple[str, ImageRecord]]:
        """Unused images older than max_age go regardless of disk usage (once the kubelet has run that long)."""
        if not self.policy.max_age or free_time - self.began <= self.policy.max_age:
            return candidates
        remaining, errors = [], []
        for image_id, record in candidates:
            if free_time - record.last_used <= self.policy.max_age:
                remaining.append((image_id, record))
                continue
            try:
                await self._remove(image_id)
            except CRIError as exc:
                errors.append(str(exc))
                remaining.append((image_id, record))
        if errors:
            raise ImageGCError(f"[{', '.join(errors)}]")
        return remaining

    async def _free_space(self, to_free: int | None, free_time: float,
                          candidates: list[tuple[str, ImageRecord]]) -> int:
        freed = 0
        errors = []
        for image_id, record in candidates:
            if record.last_used >= free_time:
                continue  # used during this pass
            if free_time - record.first_detected < self.policy.min_age:
                continue  # may have just been pulled for a container about to start
            try:
                await self._remove(image_id)
            except CRIError as exc:
                errors.append(str(exc))
                continue
            freed += record.size
            if to_free is not None and freed >= to_free:
                break
        if errors:
            wanted = to_free if to_free is not None else 2**63 - 1
            raise ImageGCError(f"wanted to free {wanted} bytes, but freed {freed} bytes space with errors in image "
                               f"deletion: [{', '.join(errors)}]")
        return freed

    async def _remove(self, image_id: str) -> None:
        log.info("removing image %s to free %d bytes", image_id, self.records[image_id].size)
        await self.runtime.remove_image(image_id)
        self.records.pop(image_id, None)

    def _node_event(self, reason: str, message: str) -> None:
        if self.recorder is not None and self.node_name:
            node = {"kind": "Node", "name": self.node_name, "uid": self.node_name}
            self.recorder.event(node, WARNING, reason, message)
