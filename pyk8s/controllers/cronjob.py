"""The CronJob controller (upstream pkg/controller/cronjob, the v2 controller).

A sync of one CronJob: reconcile status.active with the Jobs it owns (SawCompletedJob, MissingJob,
UnexpectedJob, lastSuccessfulTime), delete finished Jobs beyond the history limits, then, unless
suspended, find the most recent schedule time that has passed without a Job. A time older than
startingDeadlineSeconds is missed (MissSchedule); more than 100 missed times are reported
(TooManyMissedTimes) and only the most recent one runs. concurrencyPolicy decides between another
Job (Allow), none while one is active (Forbid), or replacing the active ones (Replace). Jobs are named
`<cronjob>-<scheduled time in minutes since the epoch>` so a time is never run twice, and carry the
`batch.kubernetes.io/cronjob-scheduled-timestamp` annotation. After each sync the key is queued again
for the next schedule time (plus 100 ms), so nothing polls.

Schedules are standard 5-field cron (croniter) plus robfig/cron's descriptors (@yearly, @annually,
@monthly, @weekly, @daily, @midnight, @hourly, @every <duration>). They run in spec.timeZone (IANA, via
zoneinfo) or else in the controller's zone, UTC, as kube-controller-manager in a container does.
"""

from __future__ import annotations

import copy
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import format_datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from ..client import (
    NORMAL,
    WARNING,
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    EventRecorder,
    RequeueAfter,
    SharedInformerFactory,
    WorkQueue,
    is_already_exists,
    is_conflict,
    is_not_found,
    object_key,
)
from ..client.workqueue import REAL_CLOCK, Clock
from .job_util import find_condition, parse_time, rfc3339
from .replicaset import controller_ref

log = logging.getLogger("pyk8s.controllers.cronjob")

CONTROLLER_NAME = "cronjob-controller"
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED_SCHEDULES = 100
NEXT_SCHEDULE_DELTA = 0.1  # upstream nextScheduleDelta: wake a little after the time, never before
DEFAULT_WORKERS = 5
CONTROLLER_UID_INDEX = "cronjob-controller/by-controller-uid"  # its own name: informers are shared

_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    pass


def parse_go_duration(text: str) -> float:
    """Go's time.ParseDuration for the positive durations @every takes ("1h30m", "90s")."""
    text = text.strip()
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ScheduleError(f"time: invalid duration {text!r}")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text:
        raise ScheduleError("time: invalid duration \"\"")
    return total


class Schedule:
    """A parsed schedule in a time zone; `next(t)` is the first activation strictly after t."""

    def __init__(self, spec: str, zone: tzinfo):
        self.spec = spec.strip()
        self.zone = zone
        self.every: float | None = None
        if self.spec.startswith("@every "):
            delay = parse_go_duration(self.spec[len("@every "):])
            if delay < 1:
                delay = 1.0  # robfig/cron rounds sub-second delays up to one second
            self.every = float(int(delay))
            self.expr = ""
            return
        self.expr = _DESCRIPTORS.get(self.spec, self.spec)
        if self.expr.startswith("@") or len(self.expr.split()) != 5 or not croniter.is_valid(self.expr):
            raise ScheduleError(f"unparseable schedule {spec!r}")

    def times_after(self, after: datetime) -> Iterator[datetime]:
        """The activations strictly after `after`, in order (UTC). Ends only for a schedule that never fires."""
        if self.every is not None:
            # robfig ConstantDelaySchedule: whole seconds after the previous time, fractions dropped.
            t = after.replace(microsecond=0)
            while True:
                t += timedelta(seconds=self.every)
                yield t
        # Walk the schedule in local wall-clock time, as robfig/cron does: a wall time that a DST gap skips
        # never happens (that run is skipped), one that a DST fold repeats happens twice.
        wall = after.astimezone(self.zone).replace(tzinfo=None)
        # Near a fold the next activation can have an earlier wall time than `after` (01:30 EST after
        # 01:45 EDT): start the walk before the fold then. Elsewhere start right at `after`.
        around = [(after + timedelta(hours=h)).astimezone(self.zone).utcoffset() for h in (-_FOLD_WINDOW, 0,
                                                                                          _FOLD_WINDOW)]
        lookback = timedelta(hours=_FOLD_WINDOW) if len(set(around)) > 1 else timedelta(0)
        candidates = croniter(self.expr, wall - lookback - timedelta(seconds=1))
        while True:
            try:
                local = candidates.get_next(datetime)
            except CroniterBadDateError:
                return  # e.g. "0 0 30 2 *": no such day
            for instant in _instants(local, self.zone):
                if instant > after:
                    yield instant

    def next(self, after: datetime) -> datetime | None:
        return next(self.times_after(after), None)

    def latest_at_or_before(self, now: datetime) -> datetime | None:
        if self.every is not None:
            raise ValueError("a constant-delay schedule has no fixed grid; walk it from a known time")
        wall = (now.astimezone(self.zone).replace(tzinfo=None, microsecond=0) + timedelta(seconds=1))
        candidates = croniter(self.expr, wall)
        for _ in range(_MAX_STEPS_BACK):
            try:
                local = candidates.get_prev(datetime)
            except CroniterBadDateError:
                return None
            instants = [t for t in _instants(local, self.zone) if t <= now]
            if instants:
                return instants[-1]
        return None


_FOLD_WINDOW = 3  # hours; wider than any DST shift in the tz database
_MAX_STEPS_BACK = 10  # a few wall times may fall into a DST gap; more never do


def _instants(local: datetime, zone: tzinfo) -> list[datetime]:
    """The UTC instants at which a naive wall time occurs in `zone`: none in a DST gap, two in a fold."""
    found = []
    for fold in (0, 1):
        instant = local.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == local and instant not in found:
            found.append(instant)
    return sorted(found)


def most_recent_schedule_time(schedule: Schedule, earliest: datetime, now: datetime
                              ) -> tuple[datetime | None, int]:
    """The latest activation in (earliest, now] and how many there were (counting stops past 100)."""
    latest = None
    missed = 0
    for t in schedule.times_after(earliest):
        if t > now:
            break
        latest = t
        missed += 1
        if missed > MAX_MISSED_SCHEDULES:
            # Enough to warn: find the latest one directly instead of walking every missed time.
            if schedule.every is not None:
                steps = int((now - t).total_seconds() // schedule.every)
                latest = t + timedelta(seconds=steps * schedule.every)
            else:
                latest = schedule.latest_at_or_before(now) or t
            break
    return latest, missed


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Mapping, scheduled: datetime, zone: tzinfo) -> dict:
    meta = cronjob["metadata"]
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = scheduled.astimezone(zone).isoformat()
    job_meta: dict = {"name": job_name(meta["name"], scheduled), "namespace": meta.get("namespace"),
                      "annotations": annotations,
                      "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": meta["name"],
                                           "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]}
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def finished_condition(job: Mapping) -> str | None:
    for type_ in ("Complete", "Failed"):
        cond = find_condition(job.get("status") or {}, type_)
        if cond is not None and cond.get("status") == "True":
            return type_
    return None


def job_reference(job: Mapping) -> dict:
    meta = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"], "namespace": meta.get("namespace"),
            "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")}


def format_rfc1123z(t: datetime) -> str:
    return format_datetime(t.astimezone(UTC)).replace("-0000", "+0000")


def controller_uid_index(obj: Mapping) -> list[str]:
    ref = controller_ref(obj)
    return [ref["uid"]] if ref and ref.get("uid") else []


class CronJobController:
    """Creates Jobs on each CronJob's schedule."""

    name = CONTROLLER_NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, recorder: EventRecorder | None = None, *,
                 workers: int = DEFAULT_WORKERS, clock: Clock = REAL_CLOCK, wall: Callable[[], float] = time.time,
                 default_zone: tzinfo = UTC):
        self.client = client
        self.recorder = recorder
        self.wall = wall
        self.default_zone = default_zone
        self.cronjob_informer = factory.informer("cronjobs")
        self.job_informer = factory.informer("jobs", indexers={CONTROLLER_UID_INDEX: controller_uid_index})
        self.queue: WorkQueue[str] = WorkQueue(self.name, clock=clock)
        self.controller: Controller[str] = Controller(
            self.name, self.sync, workers=workers, queue=self.queue, clock=clock,
            wait_for=[self.cronjob_informer.wait_for_sync, self.job_informer.wait_for_sync])
        self.cronjob_informer.add_handler(on_add=self._enqueue, on_update=self._cronjob_updated,
                                          on_delete=self._enqueue)
        self.job_informer.add_handler(on_add=self._job_changed, on_update=lambda _old, new: self._job_changed(new),
                                      on_delete=self._job_changed)

    @classmethod
    def from_context(cls, ctx) -> CronJobController:
        return cls(ctx.client, ctx.factory, ctx.recorder, clock=ctx.clock)

    async def run(self) -> None:
        await self.controller.run()

    def _enqueue(self, obj: dict | DeletedFinalStateUnknown) -> None:
        self.queue.add(object_key(obj))

    def _cronjob_updated(self, old: dict, new: dict) -> None:
        self.queue.add(object_key(new))

    def _job_changed(self, job: dict | DeletedFinalStateUnknown) -> None:
        obj = job.obj if isinstance(job, DeletedFinalStateUnknown) else job
        ref = controller_ref(obj)
        if ref and ref.get("kind") == "CronJob":
            self.queue.add(f"{obj['metadata'].get('namespace', '')}/{ref.get('name')}")

    def event(self, cronjob: Mapping, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event({**cronjob, "apiVersion": "batch/v1", "kind": "CronJob"}, type_, reason, message)

    # ---- sync ----------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cronjob = self.cronjob_informer.get(key)
        if cronjob is None:
            return
        cronjob = copy.deepcopy(cronjob)
        jobs = [j for j in self.job_informer.by_index(CONTROLLER_UID_INDEX, cronjob["metadata"]["uid"])
                if (controller_ref(j) or {}).get("kind") == "CronJob"]
        original_status = copy.deepcopy(cronjob.get("status") or {})
        now = datetime.fromtimestamp(self.wall(), UTC)
        await self._reconcile_active(cronjob, jobs)
        requeue: float | None = None
        if not cronjob["metadata"].get("deletionTimestamp"):
            await self._cleanup_history(cronjob, jobs)
            requeue = await self._schedule(cronjob, now)
        if (cronjob.get("status") or {}) != original_status:
            await self._write_status(cronjob)
        if requeue is not None:
            raise RequeueAfter(requeue)

    async def _reconcile_active(self, cronjob: dict, jobs: list[dict]) -> None:
        status = cronjob.setdefault("status", {})
        active_uids = {ref.get("uid") for ref in status.get("active") or ()}
        by_uid = {j["metadata"]["uid"]: j for j in jobs}
        for job in jobs:
            uid = job["metadata"]["uid"]
            finished = finished_condition(job)
            if uid not in active_uids and finished is None:
                fresh = await self._fresh_cronjob(cronjob)
                if fresh is not None and uid in {r.get("uid") for r in (fresh.get("status") or {}).get("active")
                                                 or ()}:
                    continue  # our informer copy of the CronJob was older than the Job
                self.event(cronjob, WARNING, "UnexpectedJob",
                           f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}")
            elif uid in active_uids and finished is not None:
                status["active"] = [r for r in status.get("active") or () if r.get("uid") != uid]
                self.event(cronjob, NORMAL, "SawCompletedJob",
                           f"Saw completed job: {job['metadata']['name']}, condition: {finished}")
            if finished == "Complete":
                completed = parse_time((job.get("status") or {}).get("completionTime"))
                last = parse_time(status.get("lastSuccessfulTime"))
                if completed is not None and (last is None or completed > last):
                    status["lastSuccessfulTime"] = rfc3339(completed)
        for ref in list(status.get("active") or ()):
            if ref.get("uid") in by_uid:
                continue
            try:
                job = await self.client.get("jobs", ref.get("name", ""), ref.get("namespace"))
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise
                job = None
            if job is None or job["metadata"].get("uid") != ref.get("uid"):
                self.event(cronjob, NORMAL, "MissingJob", f"Active job went missing: {ref.get('name')}")
                status["active"] = [r for r in status.get("active") or () if r.get("uid") != ref.get("uid")]
        if not status.get("active"):
            status.pop("active", None)

    async def _fresh_cronjob(self, cronjob: dict) -> dict | None:
        meta = cronjob["metadata"]
        try:
            return await self.client.get("cronjobs", meta["name"], meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc):
                return None
            raise

    async def _cleanup_history(self, cronjob: dict, jobs: list[dict]) -> None:
        spec = cronjob.get("spec") or {}
        active_uids = {ref.get("uid") for ref in (cronjob.get("status") or {}).get("active") or ()}
        for wanted, limit in (("Complete", spec.get("successfulJobsHistoryLimit")),
                              ("Failed", spec.get("failedJobsHistoryLimit"))):
            if limit is None:
                continue
            done = [j for j in jobs if finished_condition(j) == wanted and j["metadata"]["uid"] not in active_uids
                    and not j["metadata"].get("deletionTimestamp")]
            if len(done) <= int(limit):
                continue
            done.sort(key=lambda j: (parse_time((j.get("status") or {}).get("startTime"))
                                     or parse_time(j["metadata"].get("creationTimestamp")) or 0.0))
            for job in done[:len(done) - int(limit)]:
                await self._delete_job(cronjob, job)

    async def _delete_job(self, cronjob: dict, job: dict) -> bool:
        meta = job["metadata"]
        try:
            await self.client.delete("jobs", meta["name"], meta.get("namespace"), propagation_policy="Background",
                                     preconditions={"uid": meta["uid"]})
        except APIStatusError as exc:
            if is_not_found(exc) or is_conflict(exc):
                return False
            self.event(cronjob, WARNING, "FailedDelete", f"Deleted job: {exc}")
            raise
        self.event(cronjob, NORMAL, "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    def _zone(self, cronjob: dict) -> tzinfo | None:
        name = (cronjob.get("spec") or {}).get("timeZone")
        if not name:
            return self.default_zone
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            self.event(cronjob, WARNING, "UnknownTimeZone", f"invalid timeZone: {name!r}: {exc}")
            return None

    async def _schedule(self, cronjob: dict, now: datetime) -> float | None:
        """Start the Job that is due, if any; returns seconds until the next schedule time."""
        spec = cronjob.get("spec") or {}
        status = cronjob.setdefault("status", {})
        if spec.get("suspend"):
            return None
        zone = self._zone(cronjob)
        if zone is None:
            return None
        try:
            schedule = Schedule(spec.get("schedule") or "", zone)
        except ScheduleError as exc:
            self.event(cronjob, WARNING, "UnparseableSchedule", f"unparseable schedule: {spec.get('schedule')!r} : "
                                                                f"{exc}")
            return None
        earliest = parse_time(status.get("lastScheduleTime")) or parse_time(cronjob["metadata"].get(
            "creationTimestamp")) or now.timestamp()
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now.timestamp() - int(deadline))
        scheduled, missed = most_recent_schedule_time(schedule, datetime.fromtimestamp(earliest, UTC), now)
        upcoming = schedule.next(now)
        until_next = None if upcoming is None else (upcoming - now).total_seconds() + NEXT_SCHEDULE_DELTA
        if missed > MAX_MISSED_SCHEDULES:
            self.event(cronjob, WARNING, "TooManyMissedTimes",
                       f"too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds "
                       f"or check clock skew")
        if scheduled is None:
            return until_next
        if deadline is not None and scheduled.timestamp() + int(deadline) < now.timestamp():
            self.event(cronjob, WARNING, "MissSchedule",
                       f"Missed scheduled time to start a job: {format_rfc1123z(scheduled)}")
            return until_next
        name = job_name(cronjob["metadata"]["name"], scheduled)
        if any(ref.get("name") == name for ref in status.get("active") or ()) or \
                parse_time(status.get("lastScheduleTime")) == scheduled.timestamp():
            return until_next  # this time was handled already
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and status.get("active"):
            self.event(cronjob, NORMAL, "JobAlreadyActive",
                       "Not starting job because prior execution is running and concurrency policy is Forbid")
            return until_next
        if policy == "Replace":
            for ref in list(status.get("active") or ()):
                job = {"metadata": {"name": ref.get("name"), "namespace": ref.get("namespace"), "uid": ref.get("uid")}}
                await self._delete_job(cronjob, job)
                status["active"] = [r for r in status.get("active") or () if r.get("uid") != ref.get("uid")]
            if not status.get("active"):
                status.pop("active", None)
        body = job_from_template(cronjob, scheduled, zone)
        try:
            job = await self.client.create(body)
        except APIStatusError as exc:
            if is_already_exists(exc):
                existing = await self.client.get("jobs", name, cronjob["metadata"].get("namespace"))
                if (controller_ref(existing) or {}).get("uid") != cronjob["metadata"]["uid"]:
                    raise
                job = existing  # we made it before a crash or a stale cache: adopt it into the status
            else:
                if exc.code == 403 and "being terminated" in str(exc):
                    return None
                self.event(cronjob, WARNING, "FailedCreate", f"Error creating job: {exc}")
                raise
        else:
            self.event(cronjob, NORMAL, "SuccessfulCreate", f"Created job {job['metadata']['name']}")
        if finished_condition(job) is None and not any(r.get("uid") == job["metadata"]["uid"]
                                                       for r in status.get("active") or ()):
            status.setdefault("active", []).append(job_reference(job))
        status["lastScheduleTime"] = rfc3339(scheduled.timestamp())
        return until_next

    async def _write_status(self, cronjob: dict) -> None:
        body = {**cronjob, "apiVersion": "batch/v1", "kind": "CronJob"}
        try:
            await self.client.update_status(body, resource="cronjobs")
        except APIStatusError as exc:
            if is_not_found(exc):
                return
            raise
