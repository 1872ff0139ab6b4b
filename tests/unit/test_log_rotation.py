"""Container log rotation (upstream's ContainerLogManager) against a fake CRI runtime and real files."""

from __future__ import annotations

import asyncio
import gzip
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner

from pyk8s.cli import main
from pyk8s.kubelet import logs
from pyk8s.kubelet.log_rotation import (
    ContainerLogManager,
    container_log_manager,
    parse_max_size,
    validate_max_files,
)
from pyk8s.kubelet.logs import LogOptions, read_log
from pyk8s.kubelet.runtime.cri import CRIError, pb
from pyk8s.server.launcher import ServerOptions, _components
from pyk8s.server.pki import ensure_pki

START = datetime(2026, 11, 27, 1, 2, 3)


class FakeRuntime:
    """The three CRI calls the manager makes. ReopenContainerLog creates a fresh live file as containerd does
    (unless `reopen_fails`), and later writes through `write` go to whatever file the path names then."""

    def __init__(self) -> None:
        self.containers: dict[str, tuple[int, Path]] = {}
        self.reopen_fails = False
        self.reopened: list[str] = []
        self.status_calls: list[str] = []
        self.removed: set[str] = set()  # listed, but gone when their status is asked for

    def add(self, container_id: str, path: Path, state: int = pb.CONTAINER_RUNNING) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        self.containers[container_id] = (state, path)

    async def list_containers(self, filter=None, timeout=None) -> list[pb.Container]:
        return [pb.Container(id=cid, state=state) for cid, (state, _) in self.containers.items()]

    async def container_status(self, container_id: str, verbose=False, timeout=None) -> pb.ContainerStatusResponse:
        self.status_calls.append(container_id)
        if container_id in self.removed:
            raise CRIError("ContainerStatus", grpc.StatusCode.NOT_FOUND, f"container {container_id!r} not found")
        state, path = self.containers[container_id]
        return pb.ContainerStatusResponse(status=pb.ContainerStatus(id=container_id, state=state, log_path=str(path)))

    async def reopen_container_log(self, container_id: str, timeout=None) -> None:
        self.reopened.append(container_id)
        if self.reopen_fails:
            raise CRIError("ReopenContainerLog", grpc.StatusCode.UNKNOWN, "failed to create and open log file")
        self.containers[container_id][1].touch()


def _record(n: int) -> bytes:
    return f"2026-11-27T01:02:03.{n:09d}Z stdout F line {n}\n".encode()


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: int = 1) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def runtime() -> FakeRuntime:
    return FakeRuntime()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _manager(runtime: FakeRuntime, clock: Clock, max_size: int = 100, max_files: int = 5) -> ContainerLogManager:
    return ContainerLogManager(runtime, max_size, max_files, monitor_period=0.01, clock=clock)  # type: ignore[arg-type]


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


async def test_rotates_at_max_size_and_reopens(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock)
    live.write_bytes(b"x" * 99)
    assert (await manager.rotate_once()).rotated == 0
    assert _listing(live) == ["0.log"] and runtime.reopened == []

    live.write_bytes(b"x" * 100)  # exactly the maximum rotates, as upstream (size < max does not)
    result = await manager.rotate_once()
    assert (result.checked, result.rotated, result.failed) == (1, 1, 0)
    assert _listing(live) == ["0.log", "0.log.20261127-010203"]
    assert (live.parent / "0.log.20261127-010203").read_bytes() == b"x" * 100
    assert live.stat().st_size == 0  # the fresh file the runtime opened
    assert runtime.reopened == ["c1"]


async def test_older_rotated_files_are_compressed(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock)
    first = b"".join(_record(n) for n in range(5))
    live.write_bytes(first)
    await manager.rotate_once()
    clock.tick(30)
    second = b"".join(_record(n) for n in range(5, 10))
    live.write_bytes(second)
    await manager.rotate_once()
    # The most recent rotated file stays plain (a follower may still be reading it); the older one is gzipped.
    assert _listing(live) == ["0.log", "0.log.20261127-010203.gz", "0.log.20261127-010233"]
    with gzip.open(live.parent / "0.log.20261127-010203.gz") as compressed:
        assert compressed.read() == first
    assert (live.parent / "0.log.20261127-010233").read_bytes() == second
    mode = (live.parent / "0.log.20261127-010233").stat().st_mode & 0o777
    assert (live.parent / "0.log.20261127-010203.gz").stat().st_mode & 0o777 == mode


async def test_keeps_at_most_max_files(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock, max_files=3)
    names = []
    for n in range(6):
        names.append(f"0.log.{clock().strftime('%Y%m%d-%H%M%S')}")
        live.write_bytes(b"%d" % n * 200)
        await manager.rotate_once()
        assert len(_listing(live)) <= 3
        clock.tick(10)
    # The live file, the newest rotated one and one compressed one: the oldest went first.
    assert _listing(live) == ["0.log", f"{names[-2]}.gz", names[-1]]
    with gzip.open(live.parent / f"{names[-2]}.gz") as compressed:
        assert compressed.read() == b"4" * 200


async def test_leftovers_of_a_failed_pass_are_removed(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    # A compression that died half way (.tmp) and one that finished without removing its original.
    (live.parent / "0.log.20261126-000000.tmp").write_bytes(b"partial")
    (live.parent / "0.log.20261126-000001").write_bytes(b"done")
    (live.parent / "0.log.20261126-000001.gz").write_bytes(gzip.compress(b"done"))
    (live.parent / "1.log.20261126-000001").write_bytes(b"another restart's file is not this log's")
    live.write_bytes(b"y" * 150)
    await _manager(runtime, clock).rotate_once()
    assert _listing(live) == ["0.log", "0.log.20261126-000001.gz", "0.log.20261127-010203",
                              "1.log.20261126-000001"]


async def test_reopen_failure_renames_the_log_back(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    runtime.reopen_fails = True
    live.write_bytes(b"z" * 120)
    manager = _manager(runtime, clock)
    result = await manager.rotate_once()
    assert (result.rotated, result.failed) == (0, 1)
    assert _listing(live) == ["0.log"] and live.read_bytes() == b"z" * 120
    # The next pass tries again and succeeds once the runtime can reopen.
    runtime.reopen_fails = False
    clock.tick()
    assert (await manager.rotate_once()).rotated == 1
    assert _listing(live) == ["0.log", "0.log.20261127-010204"]


async def test_a_missing_live_file_is_reopened(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    live.unlink()
    assert (await _manager(runtime, clock).rotate_once()).rotated == 0
    assert runtime.reopened == ["c1"] and live.exists()


async def test_only_running_containers_are_rotated(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    for cid, state in (("exited", pb.CONTAINER_EXITED), ("created", pb.CONTAINER_CREATED),
                       ("unknown", pb.CONTAINER_UNKNOWN), ("running", pb.CONTAINER_RUNNING)):
        runtime.add(cid, tmp_path / cid / "0.log", state)
        (tmp_path / cid / "0.log").write_bytes(b"w" * 500)
    result = await _manager(runtime, clock).rotate_once()
    assert (result.checked, result.rotated) == (1, 1)
    assert runtime.status_calls == ["running"] and runtime.reopened == ["running"]
    for cid in ("exited", "created", "unknown"):
        assert _listing(tmp_path / cid / "0.log") == ["0.log"]


async def test_a_container_removed_meanwhile_is_skipped(runtime: FakeRuntime, clock: Clock,
                                                        tmp_path: Path) -> None:
    runtime.add("gone", tmp_path / "gone" / "0.log")
    (tmp_path / "gone" / "0.log").write_bytes(b"g" * 200)
    runtime.removed.add("gone")
    result = await _manager(runtime, clock).rotate_once()
    assert (result.checked, result.rotated, result.failed) == (1, 0, 0)
    assert _listing(tmp_path / "gone" / "0.log") == ["0.log"]


async def test_a_second_pass_changes_nothing(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock)
    live.write_bytes(b"v" * 300)
    await manager.rotate_once()
    before = {p.name: p.read_bytes() for p in live.parent.iterdir()}
    assert (await manager.rotate_once()).rotated == 0
    assert {p.name: p.read_bytes() for p in live.parent.iterdir()} == before
    assert runtime.reopened == ["c1"]


async def test_no_second_rotation_in_the_same_second(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock)
    live.write_bytes(b"a" * 100)
    await manager.rotate_once()
    live.write_bytes(b"b" * 100)
    # The name this second would get is taken (by its compressed form now): the next pass rotates instead.
    assert (await manager.rotate_once()).rotated == 0
    assert _listing(live) == ["0.log", "0.log.20261127-010203.gz"] and live.read_bytes() == b"b" * 100
    clock.tick()
    assert (await manager.rotate_once()).rotated == 1
    with gzip.open(live.parent / "0.log.20261127-010203.gz") as compressed:
        assert compressed.read() == b"a" * 100
    assert (live.parent / "0.log.20261127-010204").read_bytes() == b"b" * 100


async def test_workers_share_the_containers(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    for n in range(5):
        runtime.add(f"c{n}", tmp_path / f"c{n}" / "0.log")
        (tmp_path / f"c{n}" / "0.log").write_bytes(b"q" * 200)
    manager = ContainerLogManager(runtime, 100, 5, workers=2, clock=clock)  # type: ignore[arg-type]
    result = await manager.rotate_once()
    assert (result.checked, result.rotated) == (5, 5)
    assert sorted(runtime.reopened) == [f"c{n}" for n in range(5)]


async def test_the_loop_rotates_until_stopped(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock)
    manager.start()
    try:
        live.write_bytes(b"s" * 100)
        deadline = asyncio.get_running_loop().time() + 30
        while not runtime.reopened:
            assert asyncio.get_running_loop().time() < deadline, "no rotation within 30 s"
            await asyncio.sleep(0.01)
    finally:
        await manager.stop()
    assert _listing(live) == ["0.log", "0.log.20261127-010203"]


async def test_follow_reads_across_rotations_and_compression(runtime: FakeRuntime, clock: Clock,
                                                             tmp_path: Path) -> None:
    """`kubectl logs -f` while the manager rotates: every line once, in order, although the file the follower
    started on is compressed and removed while it reads."""
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    manager = _manager(runtime, clock, max_size=len(_record(0)) * 3, max_files=3)
    out: list[bytes] = []
    writing_done = asyncio.Event()

    async def write(data: bytes) -> None:
        out.append(data)

    async def running() -> bool:
        return not writing_done.is_set()

    follower = asyncio.create_task(read_log(live, LogOptions(follow=True), write, running))
    for n in range(40):
        with live.open("ab") as f:  # the runtime's writes go to whatever file the live path names
            f.write(_record(n))
        if n % 4 == 3:
            await asyncio.sleep(logs.FOLLOW_POLL_SECONDS * 3)  # let the follower reach the end of the file
            await manager.rotate_once()
            clock.tick()
    writing_done.set()
    await asyncio.wait_for(follower, timeout=60)
    assert b"".join(out) == b"".join(f"line {n}\n".encode() for n in range(40))
    assert len(_listing(live)) == 3 and any(name.endswith(".gz") for name in _listing(live))


def test_non_follow_reads_only_the_live_file(runtime: FakeRuntime, clock: Clock, tmp_path: Path) -> None:
    """As upstream's ReadLogs: a plain read (and --tail) covers the live file only, not the rotated ones."""
    live = tmp_path / "web" / "0.log"
    runtime.add("c1", live)
    live.write_bytes(_record(1) * 10)
    asyncio.run(_manager(runtime, clock).rotate_once())
    live.write_bytes(_record(2))
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    asyncio.run(read_log(live, LogOptions(), write))
    assert out == [b"line 2\n"]


# ---- settings ----

@pytest.mark.parametrize("text, expected", [("10Mi", 10 * 1024 * 1024), ("64Ki", 65536), ("1G", 10**9),
                                            ("1500", 1500), ("-1", -1), ("0", 0)])
def test_parse_max_size(text: str, expected: int) -> None:
    assert parse_max_size(text) == expected


@pytest.mark.parametrize("text, message", [
    ("ten", 'failed to parse container log max size "ten": quantities must match the regular expression'),
    ("1.5", 'failed to parse container log max size "1.5": invalid max log size'),
])
def test_parse_max_size_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        parse_max_size(text)


def test_max_files_validation() -> None:
    validate_max_files(2)
    with pytest.raises(ValueError, match="^invalid configuration: containerLogMaxFiles must be greater than 1$"):
        validate_max_files(1)
    with pytest.raises(ValueError, match=r"^invalid MaxFiles 1, must be > 1$"):
        ContainerLogManager(FakeRuntime(), 100, 1)  # type: ignore[arg-type]


def test_negative_max_size_disables_rotation() -> None:
    assert container_log_manager(FakeRuntime(), -1, 5) is None  # type: ignore[arg-type]
    manager = container_log_manager(FakeRuntime(), 0, 5)  # type: ignore[arg-type]
    assert manager is not None and manager.monitor_period == 10.0 and manager.workers == 1


@pytest.mark.parametrize("command, args, message", [
    ("agent", ["--container-log-max-files", "1"],
     "Invalid value for --container-log-max-files: invalid configuration: containerLogMaxFiles must be greater "
     "than 1"),
    ("agent", ["--container-log-max-size", "lots"],
     'Invalid value for --container-log-max-size: failed to parse container log max size "lots"'),
    ("server", ["--container-log-max-files", "0"], "containerLogMaxFiles must be greater than 1"),
    ("server", ["--container-log-max-size", "0.5"], "invalid max log size"),
])
def test_cli_rejects_bad_log_flags(tmp_path: Path, command: str, args: list[str], message: str) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text("{}")
    extra = ["--kubeconfig", str(kubeconfig)] if command == "agent" else ["--data-dir", str(tmp_path)]
    result = CliRunner().invoke(main, [command, *extra, *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_server_passes_log_flags_to_its_agent(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("pyk8s.server.launcher.os.geteuid", lambda: 0)
    pki = ensure_pki(tmp_path, hostnames=[], ips=[])
    opts = ServerOptions(data_dir=tmp_path, container_log_max_size="64Ki", container_log_max_files=3)
    argv = _components(opts, pki, "https://127.0.0.1:6443", "10.0.0.5").children["agent"].argv
    assert argv[argv.index("--container-log-max-size") + 1] == "64Ki"
    assert argv[argv.index("--container-log-max-files") + 1] == "3"
    default = _components(ServerOptions(data_dir=tmp_path), pki, "https://x", "10.0.0.5").children["agent"].argv
    assert "--container-log-max-size" not in default and "--container-log-max-files" not in default


async def test_a_failing_container_does_not_stop_the_others(runtime: FakeRuntime, clock: Clock,
                                                            tmp_path: Path) -> None:
    broken = tmp_path / "broken" / "0.log"
    runtime.add("broken", broken)
    broken.write_bytes(b"l" * 200)
    (broken.parent / "0.log.20261126-000000").mkdir()  # cannot be compressed
    runtime.add("fine", tmp_path / "fine" / "0.log")
    (tmp_path / "fine" / "0.log").write_bytes(b"f" * 200)
    result = await _manager(runtime, clock).rotate_once()
    assert (result.checked, result.rotated, result.failed) == (2, 1, 1)
    assert _listing(broken) == ["0.log", "0.log.20261126-000000"] and runtime.reopened == ["fine"]
