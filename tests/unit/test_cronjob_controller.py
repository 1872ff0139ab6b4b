"""CronJob schedules and the controller's decisions, with an injected wall clock and a fake API: cron
next-times in time zones across DST, descriptors, missed schedules, concurrency policies, history limits."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from pyk8s.client import APIStatusError, RequeueAfter, SharedInformerFactory
from pyk8s.controllers.cronjob import (
    CronJobController,
    Schedule,
    ScheduleError,
    format_rfc1123z,
    job_name,
    most_recent_schedule_time,
    parse_go_duration,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_next_time_follows_the_zone_across_dst():
    berlin = Schedule("0 9 * * *", ZoneInfo("Europe/Berlin"))
    # 09:00 in Berlin is 08:00 UTC in winter and 07:00 UTC from the last Sunday of March on.
    assert berlin.next(utc(2024, 3, 30, 12)) == utc(2024, 3, 31, 7)
    assert berlin.next(utc(2024, 3, 29, 12)) == utc(2024, 3, 30, 8)
    assert berlin.next(utc(2024, 10, 27, 6)) == utc(2024, 10, 27, 8)
    sydney = Schedule("30 6 * * 1", ZoneInfo("Australia/Sydney"))
    # Sydney leaves daylight time on 2024-04-07: Monday 06:30 is 19:30 UTC (AEDT) before, 20:30 UTC (AEST) after.
    assert sydney.next(utc(2024, 3, 31)) == utc(2024, 3, 31, 19, 30)
    assert sydney.next(utc(2024, 4, 2)) == utc(2024, 4, 7, 20, 30)


# robfig/cron v3's DST cases (spec_test.go TestNext), as the Kubernetes CronJob controller sees them:
# a wall time inside the spring-forward gap is skipped, one inside the fall-back fold happens twice.
@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("30 2 11 3 *", "2012-03-11T00:00:00-05:00", "2013-03-11T02:30:00-04:00"),
    ("0 * * * *", "2012-03-11T00:00:00-05:00", "2012-03-11T01:00:00-05:00"),
    ("0 * * * *", "2012-03-11T01:00:00-05:00", "2012-03-11T03:00:00-04:00"),
    ("0 1 * * *", "2012-03-11T01:00:00-05:00", "2012-03-12T01:00:00-04:00"),
    ("0 2 * * *", "2012-03-11T00:00:00-05:00", "2012-03-12T02:00:00-04:00"),
    ("30 2 4 11 *", "2012-11-04T00:00:00-04:00", "2012-11-04T02:30:00-05:00"),
    ("30 1 4 11 *", "2012-11-04T01:45:00-04:00", "2012-11-04T01:30:00-05:00"),
    ("0 * * * *", "2012-11-04T01:00:00-04:00", "2012-11-04T01:00:00-05:00"),
    ("0 * * * *", "2012-11-04T01:00:00-05:00", "2012-11-04T02:00:00-05:00"),
    ("0 1 * * *", "2012-11-04T00:00:00-04:00", "2012-11-04T01:00:00-04:00"),
    ("0 1 * * *", "2012-11-04T01:00:00-04:00", "2012-11-04T01:00:00-05:00"),
    ("0 1 * * *", "2012-11-04T01:00:00-05:00", "2012-11-05T01:00:00-05:00"),
    ("0 2 * * *", "2012-11-04T00:00:00-04:00", "2012-11-04T02:00:00-05:00"),
    ("0 3 * * *", "2012-11-04T00:00:00-04:00", "2012-11-04T03:00:00-05:00"),
    ("0 3 3 * *", "2012-11-04T00:00:00-04:00", "2012-12-03T03:00:00-05:00"),
])
def test_dst_like_robfig_cron_in_new_york(spec, after, expected):
    got = Schedule(spec, ZoneInfo("America/New_York")).next(datetime.fromisoformat(after))
    assert got == datetime.fromisoformat(expected)


def test_dst_making_midnight_invalid_in_sao_paulo():
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    assert Schedule("0 9 10 * *", sao_paulo).next(datetime.fromisoformat("2018-10-17T05:00:00-04:00")) == \
        datetime.fromisoformat("2018-11-10T06:00:00-05:00")
    assert Schedule("0 9 22 * *", sao_paulo).next(datetime.fromisoformat("2018-02-14T05:00:00-05:00")) == \
        datetime.fromisoformat("2018-02-22T07:00:00-05:00")


def test_a_schedule_that_never_fires():
    assert Schedule("0 0 30 2 *", UTC).next(utc(2024, 1, 1)) is None
    assert most_recent_schedule_time(Schedule("0 0 31 4 *", UTC), utc(2024, 1, 1), utc(2025, 1, 1)) == (None, 0)


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("@hourly", utc(2024, 1, 1, 10, 20), utc(2024, 1, 1, 11)),
    ("@daily", utc(2024, 1, 1, 10, 20), utc(2024, 1, 2)),
    ("@midnight", utc(2024, 1, 1, 10, 20), utc(2024, 1, 2)),
    ("@weekly", utc(2024, 1, 1, 10, 20), utc(2024, 1, 7)),  # Sunday
    ("@monthly", utc(2024, 1, 15), utc(2024, 2, 1)),
    ("@yearly", utc(2024, 1, 15), utc(2025, 1, 1)),
    ("@annually", utc(2024, 1, 15), utc(2025, 1, 1)),
    ("@every 1h30m", utc(2024, 1, 1, 10, 20, 5), utc(2024, 1, 1, 11, 50, 5)),
    ("*/15 * * * *", utc(2024, 1, 1, 10, 20), utc(2024, 1, 1, 10, 30)),
    ("0 0 13 * 5", utc(2024, 1, 1), utc(2024, 1, 5)),  # day-of-month OR day-of-week, as cron does
])
def test_descriptors_and_fields(spec, after, expected):
    assert Schedule(spec, UTC).next(after) == expected


@pytest.mark.parametrize("spec", ["", "* * * *", "61 * * * *", "@fortnightly", "@every xyz"])
def test_bad_schedules(spec):
    with pytest.raises(ScheduleError):
        Schedule(spec, UTC)


def test_go_durations():
    assert parse_go_duration("1h30m") == 5400
    assert parse_go_duration("1.5s") == 1.5
    assert parse_go_duration("500ms") == 0.5


def test_most_recent_schedule_time_and_missed_counts():
    every_minute = Schedule("* * * * *", UTC)
    assert most_recent_schedule_time(every_minute, utc(2024, 1, 1, 10, 0, 30), utc(2024, 1, 1, 10, 0, 59)) == (None, 0)
    assert most_recent_schedule_time(every_minute, utc(2024, 1, 1, 10), utc(2024, 1, 1, 10, 3, 5)) == \
        (utc(2024, 1, 1, 10, 3), 3)
    # A time exactly at `now` is due.
    assert most_recent_schedule_time(every_minute, utc(2024, 1, 1, 10), utc(2024, 1, 1, 10, 1)) == \
        (utc(2024, 1, 1, 10, 1), 1)
    # Days of misses: counting stops past 100, and the latest time is still found.
    latest, missed = most_recent_schedule_time(every_minute, utc(2024, 1, 1), utc(2024, 1, 3, 7, 42, 10))
    assert latest == utc(2024, 1, 3, 7, 42) and missed == 101
    every = Schedule("@every 7s", UTC)
    latest, missed = most_recent_schedule_time(every, utc(2024, 1, 1), utc(2024, 1, 1, 1))
    assert missed == 101 and latest == utc(2024, 1, 1, 0, 59, 58)  # 514 * 7 s


def test_miss_schedule_time_format_is_go_rfc1123z():
    assert format_rfc1123z(utc(2024, 1, 1, 10, 1)) == "Mon, 01 Jan 2024 10:01:00 +0000"
    assert format_rfc1123z(datetime(2024, 7, 4, 12, tzinfo=ZoneInfo("Europe/Berlin"))) == \
        "Thu, 04 Jul 2024 10:00:00 +0000"


def test_job_name_is_minutes_since_epoch():
    assert job_name("backup", utc(2024, 1, 1, 10, 1)) == f"backup-{int(utc(2024, 1, 1, 10, 1).timestamp()) // 60}"


# ---- the controller against a fake API ------------------------------------------------------------


class FakeAPI:
    def __init__(self):
        self.jobs: dict[str, dict] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.status_writes: list[dict] = []
        self.uids = itertools.count(1)

    async def create(self, body: dict) -> dict:
        name = body["metadata"]["name"]
        if name in self.jobs:
            raise APIStatusError({"kind": "Status", "code": 409, "reason": "AlreadyExists",
                                  "message": f'jobs.batch "{name}" already exists'})
        job = {**body, "metadata": {**body["metadata"], "uid": f"job-{next(self.uids)}", "resourceVersion": "1"}}
        self.jobs[name] = job
        self.created.append(name)
        return job

    async def get(self, resource: str, name: str, namespace: str | None = None) -> dict:
        if resource == "jobs" and name in self.jobs:
            return self.jobs[name]
        raise APIStatusError({"kind": "Status", "code": 404, "reason": "NotFound", "message": "not found"})

    async def delete(self, resource: str, name: str, namespace: str | None = None, **_: object) -> dict:
        self.deleted.append(name)
        self.jobs.pop(name, None)
        return {}

    async def update_status(self, obj: dict, **_: object) -> dict:
        self.status_writes.append(obj)
        return obj


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, str, str]] = []

    def event(self, obj, type_, reason, message):
        self.events.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.events]


class Harness:
    def __init__(self, now: datetime):
        self.now = now
        self.api = FakeAPI()
        self.recorder = Recorder()
        self.ctl = CronJobController(self.api, SharedInformerFactory(self.api), self.recorder,
                                     wall=lambda: self.now.timestamp())

    def add_cronjob(self, **spec) -> dict:
        cronjob = {"apiVersion": "batch/v1", "kind": "CronJob",
                   "metadata": {"name": "cj", "namespace": "ns", "uid": "cj-uid",
                                "creationTimestamp": spec.pop("created", "2024-01-01T10:00:30Z")},
                   "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Allow", "suspend": False,
                            "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                            "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}, **spec},
                   "status": spec.pop("status", {})}
        cronjob["status"] = cronjob["spec"].pop("status", {})
        self.ctl.cronjob_informer.indexer.upsert("ns/cj", cronjob)
        return cronjob

    def add_job(self, name: str, *, finished: str | None = None, completed: str = "2024-01-01T10:00:40Z",
                started: str = "2024-01-01T10:00:00Z") -> dict:
        status: dict = {"startTime": started}
        if finished:
            status["conditions"] = [{"type": finished, "status": "True"}]
            if finished == "Complete":
                status["completionTime"] = completed
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "cj",
                                                 "uid": "cj-uid", "controller": True}]},
               "status": status}
        self.api.jobs[name] = job
        self.ctl.job_informer.indexer.upsert(f"ns/{name}", job)
        return job

    async def sync(self) -> float | None:
        try:
            await self.ctl.sync("ns/cj")
        except RequeueAfter as requeue:
            return requeue.delay
        return None

    @property
    def status(self) -> dict:
        return self.api.status_writes[-1]["status"] if self.api.status_writes else {}


async def test_creates_the_due_job_and_requeues_for_the_next_minute():
    h = Harness(utc(2024, 1, 1, 10, 1, 5))
    h.add_cronjob(jobTemplate={"metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}},
                               "spec": {"template": {"spec": {"containers": []}}}}, timeZone="Europe/Berlin")
    delay = await h.sync()
    assert delay == pytest.approx(55.1)
    expected = job_name("cj", utc(2024, 1, 1, 10, 1))
    assert h.api.created == [expected]
    job = h.api.jobs[expected]
    assert job["metadata"]["labels"] == {"team": "a"}
    assert job["metadata"]["annotations"] == {"x": "y", "batch.kubernetes.io/cronjob-scheduled-timestamp":
                                              "2024-01-01T11:01:00+01:00"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "cj-uid"
    assert h.status["lastScheduleTime"] == "2024-01-01T10:01:00Z"
    assert [r["name"] for r in h.status["active"]] == [expected]
    assert h.recorder.events == [("Normal", "SuccessfulCreate", f"Created job {expected}")]


async def test_nothing_due_means_only_a_requeue():
    h = Harness(utc(2024, 1, 1, 10, 0, 45))
    h.add_cronjob()
    assert await h.sync() == pytest.approx(15.1)
    assert not h.api.created and not h.api.status_writes


async def test_a_time_already_scheduled_is_not_run_twice():
    h = Harness(utc(2024, 1, 1, 10, 1, 20))
    h.add_cronjob(status={"lastScheduleTime": "2024-01-01T10:01:00Z"})
    await h.sync()
    assert not h.api.created


async def test_job_created_before_a_crash_is_adopted_not_duplicated():
    h = Harness(utc(2024, 1, 1, 10, 1, 5))
    h.add_cronjob()
    name = job_name("cj", utc(2024, 1, 1, 10, 1))
    h.api.jobs[name] = {"metadata": {"name": name, "namespace": "ns", "uid": "early",
                                     "ownerReferences": [{"kind": "CronJob", "uid": "cj-uid", "controller": True,
                                                          "name": "cj"}]}}
    await h.sync()
    assert not h.api.created
    assert [r["uid"] for r in h.status["active"]] == ["early"]


async def test_forbid_skips_while_a_job_is_active():
    h = Harness(utc(2024, 1, 1, 10, 2, 5))
    h.add_cronjob(concurrencyPolicy="Forbid", status={
        "lastScheduleTime": "2024-01-01T10:01:00Z",
        "active": [{"kind": "Job", "name": "running", "namespace": "ns", "uid": "uid-running"}]})
    h.add_job("running")
    assert await h.sync() == pytest.approx(55.1)
    assert not h.api.created
    assert h.recorder.reasons() == ["JobAlreadyActive"]


async def test_replace_deletes_the_active_job_first():
    h = Harness(utc(2024, 1, 1, 10, 2, 5))
    h.add_cronjob(concurrencyPolicy="Replace", status={
        "lastScheduleTime": "2024-01-01T10:01:00Z",
        "active": [{"kind": "Job", "name": "running", "namespace": "ns", "uid": "uid-running"}]})
    h.add_job("running")
    await h.sync()
    assert h.api.deleted == ["running"]
    assert len(h.api.created) == 1
    assert [r["name"] for r in h.status["active"]] == h.api.created
    assert h.recorder.reasons() == ["SuccessfulDelete", "SuccessfulCreate"]


async def test_allow_runs_alongside_an_active_job():
    h = Harness(utc(2024, 1, 1, 10, 2, 5))
    h.add_cronjob(status={"lastScheduleTime": "2024-01-01T10:01:00Z",
                          "active": [{"kind": "Job", "name": "running", "namespace": "ns", "uid": "uid-running"}]})
    h.add_job("running")
    await h.sync()
    assert len(h.api.created) == 1 and len(h.status["active"]) == 2


async def test_more_than_100_missed_times_warns_and_runs_only_the_latest():
    h = Harness(utc(2024, 1, 1, 14, 0, 30))  # 240 minutes after creation
    h.add_cronjob()
    await h.sync()
    assert h.api.created == [job_name("cj", utc(2024, 1, 1, 14, 0))]
    warning = next(e for e in h.recorder.events if e[1] == "TooManyMissedTimes")
    assert warning == ("Warning", "TooManyMissedTimes", "too many missed start times: 101. Set or decrease "
                                                        ".spec.startingDeadlineSeconds or check clock skew")


async def test_starting_deadline_limits_how_far_back_a_missed_time_is_run():
    # The controller was away from 10:01 to 10:05:30: with a 20 s deadline nothing missed is started.
    h = Harness(utc(2024, 1, 1, 10, 5, 30))
    h.add_cronjob(startingDeadlineSeconds=20, status={"lastScheduleTime": "2024-01-01T10:01:00Z"})
    assert await h.sync() == pytest.approx(30.1)
    assert not h.api.created
    # Within the deadline the latest missed time runs, and only that one.
    h = Harness(utc(2024, 1, 1, 10, 5, 10))
    h.add_cronjob(startingDeadlineSeconds=20, status={"lastScheduleTime": "2024-01-01T10:01:00Z"})
    await h.sync()
    assert h.api.created == [job_name("cj", utc(2024, 1, 1, 10, 5))]


async def test_suspended_cronjob_starts_nothing_and_does_not_requeue():
    h = Harness(utc(2024, 1, 1, 10, 1, 5))
    h.add_cronjob(suspend=True)
    assert await h.sync() is None
    assert not h.api.created


async def test_unsatisfiable_schedule_is_never_requeued():
    h = Harness(utc(2024, 1, 1, 10, 1, 5))
    h.add_cronjob(schedule="0 0 30 2 *")
    assert await h.sync() is None
    assert not h.api.created


async def test_unknown_time_zone_and_bad_schedule_are_reported():
    h = Harness(utc(2024, 1, 1, 10, 1, 5))
    h.add_cronjob(timeZone="Mars/Olympus")
    assert await h.sync() is None
    assert h.recorder.reasons() == ["UnknownTimeZone"] and not h.api.created
    h = Harness(utc(2024, 1, 1, 10, 1, 5))
    h.add_cronjob(schedule="@fortnightly")
    await h.sync()
    assert h.recorder.reasons() == ["UnparseableSchedule"]


async def test_completed_job_leaves_active_and_sets_last_successful_time():
    h = Harness(utc(2024, 1, 1, 10, 1, 50))
    h.add_cronjob(status={"lastScheduleTime": "2024-01-01T10:01:00Z",
                          "active": [{"kind": "Job", "name": "done", "namespace": "ns", "uid": "uid-done"}]})
    h.add_job("done", finished="Complete", completed="2024-01-01T10:01:40Z")
    await h.sync()
    assert "active" not in h.status
    assert h.status["lastSuccessfulTime"] == "2024-01-01T10:01:40Z"
    assert h.recorder.events == [("Normal", "SawCompletedJob", "Saw completed job: done, condition: Complete")]


async def test_unexpected_and_missing_jobs():
    h = Harness(utc(2024, 1, 1, 10, 1, 50))
    h.add_cronjob(status={"lastScheduleTime": "2024-01-01T10:01:00Z",
                          "active": [{"kind": "Job", "name": "vanished", "namespace": "ns", "uid": "uid-v"}]})
    h.add_job("stranger")
    await h.sync()
    assert ("Warning", "UnexpectedJob", "Saw a job that the controller did not create or forgot: stranger") \
        in h.recorder.events
    assert ("Normal", "MissingJob", "Active job went missing: vanished") in h.recorder.events
    assert "active" not in h.status


async def test_history_limits_delete_the_oldest_finished_jobs():
    h = Harness(utc(2024, 1, 1, 10, 1, 50))
    h.add_cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=0,
                  status={"lastScheduleTime": "2024-01-01T10:01:00Z"})
    h.add_job("ok-old", finished="Complete", started="2024-01-01T08:00:00Z")
    h.add_job("ok-mid", finished="Complete", started="2024-01-01T09:00:00Z")
    h.add_job("ok-new", finished="Complete", started="2024-01-01T10:00:00Z")
    h.add_job("bad", finished="Failed", started="2024-01-01T09:30:00Z")
    h.add_job("running")
    await h.sync()
    assert sorted(h.api.deleted) == ["bad", "ok-mid", "ok-old"]
    assert h.recorder.reasons().count("SuccessfulDelete") == 3
