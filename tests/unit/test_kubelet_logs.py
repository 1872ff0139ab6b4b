"""CRI log files as `kubectl logs` reads them: the record format, partial lines and every PodLogOptions option."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pyk8s.kubelet import logs
from pyk8s.kubelet.logs import LogFormatError, LogOptions, LogOptionsError, options_from_query, parse_record, read_log

LINES = [
    b"2026-11-26T10:00:00.000000001Z stdout F first",
    b"2026-11-26T10:00:01.500000000Z stderr F second",
    b"2026-11-26T10:00:02.000000000Z stdout P thi",
    b"2026-11-26T10:00:02.100000000Z stdout P rd pie",
    b"2026-11-26T10:00:02.200000000Z stdout F ce",
    b"2026-11-26T10:00:03.999999999Z stdout F ",
    b"2026-11-26T10:00:04.000000000Z stdout F fifth with  spaces",
]


def _write(path: Path, lines: list[bytes], trailing: bytes = b"") -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines) + trailing)
    return path


def _read(path: Path, options: LogOptions) -> bytes:
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    asyncio.run(read_log(path, options, write))
    return b"".join(out)


def test_parse_record():
    record = parse_record(b"2026-11-26T10:00:00.123456789Z stderr P a b  c")
    assert (record.timestamp, record.stream, record.partial, record.text) == (
        "2026-11-26T10:00:00.123456789Z", "stderr", True, b"a b  c")
    assert record.time == datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_record(b"2026-11-26T10:00:00Z stdout F").text == b""
    for bad in (b"garbage", b"2026-11-26T10:00:00Z stdin F x", b"2026-11-26T10:00:00Z stdout X x"):
        with pytest.raises(LogFormatError):
            parse_record(bad)


def test_whole_log_joins_partial_lines(tmp_path):
    path = _write(tmp_path / "0.log", LINES)
    assert _read(path, LogOptions()) == b"first\nsecond\nthird piece\n\nfifth with  spaces\n"


def test_timestamps_prefix_each_line_with_its_first_record_time(tmp_path):
    path = _write(tmp_path / "0.log", LINES[:5])
    assert _read(path, LogOptions(timestamps=True)) == (
        b"2026-11-26T10:00:00.000000001Z first\n"
        b"2026-11-26T10:00:01.500000000Z second\n"
        b"2026-11-26T10:00:02.000000000Z third piece\n")


@pytest.mark.parametrize(("tail", "expected"), [
    (0, b""),
    (1, b"fifth with  spaces\n"),
    (3, b"third piece\n\nfifth with  spaces\n"),
    (4, b"second\nthird piece\n\nfifth with  spaces\n"),
    (5, b"first\nsecond\nthird piece\n\nfifth with  spaces\n"),
    (50, b"first\nsecond\nthird piece\n\nfifth with  spaces\n"),
])
def test_tail_lines_counts_joined_lines(tmp_path, tail, expected):
    path = _write(tmp_path / "0.log", LINES)
    assert _read(path, LogOptions(tail_lines=tail)) == expected


def test_tail_across_read_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "_READ_BLOCK", 7)  # records straddle many blocks
    lines = [f"2026-11-26T10:00:{i:02d}Z stdout F line {i}".encode() for i in range(40)]
    path = _write(tmp_path / "0.log", lines)
    assert _read(path, LogOptions(tail_lines=3)) == b"line 37\nline 38\nline 39\n"
    assert _read(path, LogOptions(tail_lines=40)).count(b"\n") == 40


def test_incomplete_last_record_is_not_read(tmp_path):
    path = _write(tmp_path / "0.log", LINES[:2], trailing=b"2026-11-26T10:00:09Z stdout F half-wri")
    assert _read(path, LogOptions()) == b"first\nsecond\n"
    assert _read(path, LogOptions(tail_lines=1)) == b"second\n"


def test_since_time_drops_older_lines(tmp_path):
    path = _write(tmp_path / "0.log", LINES)
    since = datetime(2026, 11, 26, 10, 0, 2, tzinfo=UTC)
    assert _read(path, LogOptions(since_time=since)) == b"third piece\n\nfifth with  spaces\n"


def test_limit_bytes_cuts_the_output(tmp_path):
    path = _write(tmp_path / "0.log", LINES)
    assert _read(path, LogOptions(limit_bytes=9)) == b"first\nsec"
    assert _read(path, LogOptions(limit_bytes=12, timestamps=True)) == b"2026-11-26T1"


def test_options_from_query():
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    opts = options_from_query({"follow": "true", "tailLines": "10", "timestamps": "1", "limitBytes": "100",
                               "sinceSeconds": "60", "previous": "false"}, now)
    assert opts == LogOptions(follow=True, tail_lines=10, timestamps=True, limit_bytes=100,
                              since_time=datetime(2026, 11, 26, 11, 59, tzinfo=UTC))
    assert options_from_query({"sinceTime": "2026-11-26T11:00:00Z"}).since_time == datetime(
        2026, 11, 26, 11, tzinfo=UTC)
    assert options_from_query({}) == LogOptions()


@pytest.mark.parametrize(("query", "field", "message", "decode"), [
    ({"tailLines": "-1"}, "tailLines", "must be greater than or equal to 0", False),
    ({"limitBytes": "0"}, "limitBytes", "must be greater than 0", False),
    ({"sinceSeconds": "0"}, "sinceSeconds", "must be greater than 0", False),
    ({"sinceSeconds": "5", "sinceTime": "2026-11-26T11:00:00Z"}, "",
     "at most one of `sinceTime` or `sinceSeconds` may be specified", False),
    ({"tailLines": "ten"}, "tailLines", 'strconv.ParseInt: parsing "ten": invalid syntax', True),
    ({"follow": "yes"}, "follow", 'strconv.ParseBool: parsing "yes": invalid syntax', True),
    ({"sinceTime": "yesterday"}, "sinceTime", "cannot parse", True),
])
def test_bad_options(query, field, message, decode):
    with pytest.raises(LogOptionsError) as info:
        options_from_query(query)
    assert info.value.field == field
    assert message in info.value.message
    assert info.value.decode is decode


def test_follow_sees_new_lines_and_a_rotation_then_stops_with_the_container(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL_SECONDS", 0.01)
    monkeypatch.setattr(logs, "RUNNING_CHECK_SECONDS", 0.01)
    path = _write(tmp_path / "0.log", LINES[:1])
    running = True
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    async def is_running() -> bool:
        return running

    async def wait_for(text: bytes) -> None:
        for _ in range(3000):
            if text in b"".join(out):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{text!r} never arrived; got {b''.join(out)!r}")

    async def scenario() -> None:
        nonlocal running
        follower = asyncio.create_task(read_log(path, LogOptions(follow=True), write, is_running))
        await wait_for(b"first\n")
        with path.open("ab") as f:
            f.write(b"2026-11-26T10:00:05Z stdout P half \n2026-11-26T10:00:05Z stdout F li")
            f.flush()
            await asyncio.sleep(0.05)
            assert b"half" not in b"".join(out)  # a partial line waits for its end
            f.write(b"ne\n2026-11-26T10:00:06Z stdout F before rotation\n")
        await wait_for(b"half line\nbefore rotation\n")
        # The kubelet's rotation: rename, then the runtime reopens a fresh file at the same path.
        os.rename(path, tmp_path / "0.log.20261126-100007")
        with (tmp_path / "0.log.20261126-100007").open("ab") as f:
            f.write(b"2026-11-26T10:00:07Z stdout F last in old file\n")
        _write(path, [b"2026-11-26T10:00:08Z stdout F in new file"])
        await wait_for(b"in new file\n")
        assert not follower.done()
        running = False
        await asyncio.wait_for(follower, 30)

    asyncio.run(scenario())
    assert b"".join(out) == b"first\nhalf line\nbefore rotation\nlast in old file\nin new file\n"


def test_follow_reads_lines_written_just_before_the_container_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(logs, "FOLLOW_POLL_SECONDS", 0.01)
    path = _write(tmp_path / "0.log", LINES[:1])
    checks = 0

    async def is_running() -> bool:
        nonlocal checks
        checks += 1
        if checks == 1:
            with path.open("ab") as f:
                f.write(b"2026-11-26T10:00:05Z stdout F goodbye\n")
        return False

    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    asyncio.run(asyncio.wait_for(read_log(path, LogOptions(follow=True, tail_lines=0), write, is_running), 30))
    assert b"".join(out) == b"goodbye\n"
