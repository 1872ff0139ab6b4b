"""The proxier's event → sync → nft cycle with a recording applier, and the bounded-frequency runner."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from pyk8s.client import FakeClock
from pyk8s.client.informer import DeletedFinalStateUnknown
from pyk8s.proxy.proxier import CommandError, NftablesProxier, node_port_addresses, run_command
from pyk8s.proxy.render import ProxyConfig
from pyk8s.proxy.runner import BoundedFrequencyRunner

from test_proxy_render import endpoint, endpoint_slice, service


class RecordingApplier:
    def __init__(self):
        self.scripts: list[str] = []
        self.fail_next = False

    async def apply(self, text: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("nft: Error: Could not process rule")
        self.scripts.append(text)


def make_proxier() -> tuple[NftablesProxier, RecordingApplier]:
    applier = RecordingApplier()
    return NftablesProxier(ProxyConfig(node_name="node-1", cluster_cidr="10.42.0.0/16"), applier,
                           sync_period=30), applier


async def test_nothing_is_written_until_both_caches_synced_then_full_then_partial():
    proxier, applier = make_proxier()
    proxier.on_service_update(service())
    await proxier.sync_proxy_rules()
    proxier.on_services_synced()
    await proxier.sync_proxy_rules()
    assert applier.scripts == [] and not proxier.healthy()

    proxier.on_endpoint_slice_update(endpoint_slice(endpoint("10.180.0.1")))
    proxier.on_endpoint_slices_synced()
    await proxier.sync_proxy_rules()
    assert applier.scripts[0].startswith("add table ip pyk8s") and "dnat to 10.180.0.1:80" in applier.scripts[0]
    assert proxier.healthy()

    await proxier.sync_proxy_rules()  # nothing changed: no transaction at all
    assert len(applier.scripts) == 1

    proxier.on_endpoint_slice_update(endpoint_slice(endpoint("10.180.0.1")), deleted=True)
    await proxier.sync_proxy_rules()
    partial = applier.scripts[1]
    assert not partial.startswith("add table") and "goto reject-chain" in partial


async def test_a_failed_sync_makes_the_next_one_full():
    proxier, applier = make_proxier()
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    await proxier.sync_proxy_rules()
    proxier.on_service_update(service())
    applier.fail_next = True
    with pytest.raises(RuntimeError):
        await proxier.sync_proxy_rules()
    assert proxier.sync_failures == 1 and proxier.oldest_pending_update
    await proxier.sync_proxy_rules()
    assert applier.scripts[-1].startswith("add table ip pyk8s")
    assert not proxier.oldest_pending_update


def test_deleted_final_state_unknown_removes_by_key():
    proxier, _ = make_proxier()
    proxier.on_service_update(service())
    proxier.on_service_update(DeletedFinalStateUnknown("ns1/svc1", service()), deleted=True)
    assert proxier.services == {}


def test_health_goes_bad_when_an_update_waits_too_long():
    proxier, _ = make_proxier()
    assert not proxier.healthy(now=1000)
    proxier.last_updated = 1000
    assert proxier.healthy(now=1001)
    proxier.oldest_pending_update = 1001
    assert proxier.healthy(now=1001 + 59)
    assert not proxier.healthy(now=1001 + 61)


def test_node_port_addresses():
    node = {"status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.2"},
                                     {"type": "InternalIP", "address": "fd00::2"},
                                     {"type": "Hostname", "address": "node-1"}]}}
    assert node_port_addresses("primary", node) == ("192.168.0.2",)
    assert node_port_addresses("primary", None) is None
    assert node_port_addresses("0.0.0.0/0", None) is None
    assert "127.0.0.1" in node_port_addresses("127.0.0.0/8", None)


async def test_runner_coalesces_rings_and_keeps_the_minimum_interval():
    clock = FakeClock()
    calls: list[float] = []

    async def sync() -> None:
        calls.append(clock.now())

    runner = BoundedFrequencyRunner("test", sync, min_interval=1.0, retry_interval=5.0, max_interval=60.0,
                                    clock=clock)
    task = asyncio.create_task(runner.loop())
    try:
        for _ in range(5):
            runner.run()
        await _settle()
        assert calls == [1000.0]
        runner.run()  # rings during the minimum interval wait for its end
        await _settle()
        assert calls == [1000.0]
        clock.step(1.0)
        await _settle()
        assert calls == [1000.0, 1001.0]
        clock.step(1.0)
        await _settle()
        clock.step(60.0)  # with no ring at all, it still runs every max_interval
        await _settle()
        assert calls == [1000.0, 1001.0, 1062.0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_runner_retries_after_a_failure():
    clock = FakeClock()
    attempts: list[float] = []

    async def sync() -> None:
        attempts.append(clock.now())
        if len(attempts) == 1:
            raise RuntimeError("boom")

    runner = BoundedFrequencyRunner("test", sync, min_interval=1.0, retry_interval=5.0, max_interval=60.0,
                                    clock=clock)
    task = asyncio.create_task(runner.loop())
    try:
        runner.run()
        await _settle()
        clock.step(1.0)
        await _settle()
        clock.step(5.0)
        await _settle()
        assert attempts == [1000.0, 1006.0]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_whole_table_is_rewritten_once_per_full_sync_period():
    proxier, applier = make_proxier()
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    await proxier.sync_proxy_rules()
    await proxier.sync_proxy_rules()
    assert len(applier.scripts) == 1
    proxier.last_full_sync -= 3601
    await proxier.sync_proxy_rules()
    assert len(applier.scripts) == 2 and applier.scripts[1].startswith("add table ip pyk8s")


def test_commands_that_exit_without_reading_their_input_do_not_break_the_loop():
    """Under uvloop (as `pyk8s proxy` runs) a pipe closed early used to raise on the write."""
    for data in (b"", b"x", b"x" * 1_000_000):  # the old pipe failed about one run in three
        for _ in range(10):
            assert uvloop.run(run_command(["true"], data)) == ""
    assert uvloop.run(run_command(["cat"], b"add table ip t\n")) == "add table ip t\n"
    with pytest.raises(CommandError, match="failed"):
        uvloop.run(run_command(["false"], b"input"))
