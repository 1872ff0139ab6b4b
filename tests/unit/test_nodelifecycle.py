"""The node lifecycle, node IPAM and pod GC decisions, without a server."""

from __future__ import annotations

import math

import pytest

from pyk8s.client import APIConnectionError, APIStatusError, SharedInformerFactory
from pyk8s.client.workqueue import FakeClock
from pyk8s.controllers.nodeipam import CIDRFull, CIDRSet
from pyk8s.controllers.nodelifecycle import (
    MESSAGE_UNKNOWN,
    REASON_UNKNOWN,
    TAINT_MEMORY_PRESSURE,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    NodeLifecycleController,
    eviction_time,
    is_stale,
    observed_ready,
    parse_timestamp,
    pod_not_ready_patch,
    reconcile_taints,
    rfc3339,
    tolerates,
    unknown_conditions,
    wanted_taints,
)
from pyk8s.controllers.nodezones import (
    STATE_FULL,
    STATE_NORMAL,
    STATE_PARTIAL,
    TokenBucket,
    Zones,
    compute_zone_state,
    excluded_from_disruption,
    zone_key,
)
from pyk8s.controllers.podgc import orphaned, terminated_to_delete

T0 = 1_700_000_000.0


def node(ready: str = "True", heartbeat: float = T0, *, unschedulable: bool = False, taints: list | None = None,
         extra: tuple[tuple[str, str], ...] = ()) -> dict:
    conditions = [{"type": t, "status": s, "lastHeartbeatTime": rfc3339(heartbeat),
                   "lastTransitionTime": rfc3339(T0 - 100), "reason": "KubeletReady", "message": "ok"}
                  for t, s in (("Ready", ready), ("MemoryPressure", "False"), ("DiskPressure", "False"),
                               ("PIDPressure", "False"), *extra)]
    return {"metadata": {"name": "n1", "creationTimestamp": rfc3339(T0 - 1000)},
            "spec": {"unschedulable": unschedulable, "taints": taints or []}, "status": {"conditions": conditions}}


def lease(renew: float) -> dict:
    stamp = rfc3339(renew)[:-1] + ".123456Z"
    return {"spec": {"holderIdentity": "n1", "renewTime": stamp}}


def test_parse_timestamp_micro_and_plain():
    assert parse_timestamp("2023-11-14T22:13:20Z") == T0
    assert parse_timestamp("2023-11-14T22:13:20.500000Z") == T0 + 0.5
    assert parse_timestamp(None) is None and parse_timestamp("garbage") is None


def test_fresh_lease_keeps_node_healthy_even_with_old_status_heartbeat():
    assert not is_stale(node(heartbeat=T0 - 300), lease(T0 - 5), T0, 40)
    assert not is_stale(node(heartbeat=T0 - 5), None, T0, 40)
    assert is_stale(node(heartbeat=T0 - 300), lease(T0 - 41), T0, 40)


def test_node_without_any_heartbeat_counts_from_creation():
    fresh = {"metadata": {"creationTimestamp": rfc3339(T0 - 10)}, "status": {}}
    assert not is_stale(fresh, None, T0, 40)
    assert is_stale(fresh, None, T0 + 60, 40)


def test_unknown_conditions_keep_transition_rules():
    n = node()
    n["status"]["conditions"].append({"type": "NetworkUnavailable", "status": "False"})
    conditions = {c["type"]: c for c in unknown_conditions(n, T0)}
    for type_ in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
        c = conditions[type_]
        assert (c["status"], c["reason"], c["message"]) == ("Unknown", REASON_UNKNOWN, MESSAGE_UNKNOWN)
        assert c["lastTransitionTime"] == rfc3339(T0)
        assert c["lastHeartbeatTime"] == rfc3339(T0)  # the kubelet's last heartbeat is kept
    assert conditions["NetworkUnavailable"]["status"] == "False"
    # already Unknown: nothing to write, and the transition time stays
    n["status"]["conditions"] = list(conditions.values())
    assert unknown_conditions(n, T0 + 30) is None


def test_unknown_conditions_adds_missing_ones():
    conditions = unknown_conditions({"metadata": {}, "status": {}}, T0)
    assert {c["type"] for c in conditions} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert all(c["reason"] == "NodeStatusNeverUpdated" for c in conditions)


def test_wanted_taints():
    assert wanted_taints(node()) == set()
    assert wanted_taints(node("Unknown")) == {(TAINT_UNREACHABLE, "NoExecute"), (TAINT_UNREACHABLE, "NoSchedule")}
    assert wanted_taints(node("False")) == {(TAINT_NOT_READY, "NoExecute"), (TAINT_NOT_READY, "NoSchedule")}
    assert wanted_taints(node(unschedulable=True)) == {(TAINT_UNSCHEDULABLE, "NoSchedule")}
    pressured = node(extra=(("NetworkUnavailable", "True"),))
    pressured["status"]["conditions"][1]["status"] = "True"
    assert wanted_taints(pressured) == {(TAINT_MEMORY_PRESSURE, "NoSchedule"),
                                        ("node.kubernetes.io/network-unavailable", "NoSchedule")}


def test_reconcile_taints_adds_keeps_and_removes():
    user = {"key": "example.com/gpu", "value": "yes", "effect": "NoSchedule"}
    added = reconcile_taints([user], {(TAINT_UNREACHABLE, "NoExecute")}, T0)
    assert added == [user, {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)}]
    # unchanged: None, and timeAdded is not refreshed
    assert reconcile_taints(added, {(TAINT_UNREACHABLE, "NoExecute")}, T0 + 50) is None
    # healthy again: only the user's taint is left
    assert reconcile_taints(added, set(), T0 + 60) == [user]


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"operator": "Exists"}, {"key": "a", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Exists"}, {"key": "a", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Exists", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}, False),
    ({"key": "a", "value": "x"}, {"key": "a", "value": "x", "effect": "NoExecute"}, True),
    ({"key": "a", "operator": "Equal", "value": "y"}, {"key": "a", "value": "x", "effect": "NoExecute"}, False),
    ({"key": "b", "operator": "Exists"}, {"key": "a", "effect": "NoExecute"}, False),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute"}, {"key": "a", "effect": "NoExecute"}, True),
])
def test_tolerates(toleration, taint, expected):
    assert tolerates(toleration, taint) is expected


def _pod(*tolerations: dict) -> dict:
    return {"spec": {"tolerations": list(tolerations)}}


UNREACHABLE = {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)}


def test_eviction_time():
    assert eviction_time(_pod(), [UNREACHABLE]) == -math.inf
    assert eviction_time(_pod(), [{"key": TAINT_UNREACHABLE, "effect": "NoSchedule"}]) is None
    assert eviction_time(_pod({"key": TAINT_UNREACHABLE, "operator": "Exists"}), [UNREACHABLE]) is None
    tolerate5 = {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
    assert eviction_time(_pod(tolerate5), [UNREACHABLE]) == T0 + 5
    # the smallest matching tolerationSeconds wins; zero or less means at once
    assert eviction_time(_pod(tolerate5, {"operator": "Exists", "tolerationSeconds": 3}), [UNREACHABLE]) == T0 + 3
    assert eviction_time(_pod({**tolerate5, "tolerationSeconds": 0}), [UNREACHABLE]) == -math.inf
    # an untolerated second taint evicts at once
    other = {"key": "example.com/x", "effect": "NoExecute", "timeAdded": rfc3339(T0)}
    assert eviction_time(_pod(tolerate5), [UNREACHABLE, other]) == -math.inf


def test_pod_not_ready_patch():
    patch = pod_not_ready_patch({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, T0)
    assert patch == {"status": {"conditions": [{"type": "Ready", "status": "False",
                                                "lastTransitionTime": rfc3339(T0)}]}}
    assert pod_not_ready_patch({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}, T0) is None


def test_cidr_set_allocates_distinct_and_reuses_released():
    cidrs = CIDRSet("10.42.0.0/16")
    assert cidrs.occupy("10.42.1.0/24") and not cidrs.occupy("10.43.0.0/24")
    got = [cidrs.allocate() for _ in range(3)]
    assert got == ["10.42.0.0/24", "10.42.2.0/24", "10.42.3.0/24"]
    cidrs.release("10.42.0.0/24")
    rest = [cidrs.allocate() for _ in range(253)]  # round from the last one, wrapping to the released one
    assert rest[-1] == "10.42.0.0/24" and len(set(rest) | set(got) | {"10.42.1.0/24"}) == 256
    cidrs.release("10.42.9.0/24")
    assert cidrs.allocate() == "10.42.9.0/24"
    with pytest.raises(CIDRFull):
        cidrs.allocate()


def test_pod_gc_decisions():
    def pod(name: str, phase: str, created: int, node: str = "n1") -> dict:
        return {"metadata": {"name": name, "creationTimestamp": rfc3339(T0 + created)},
                "spec": {"nodeName": node}, "status": {"phase": phase}}

    pods = [pod("a", "Succeeded", 3), pod("b", "Failed", 1), pod("c", "Running", 0), pod("d", "Succeeded", 2)]
    assert [p["metadata"]["name"] for p in terminated_to_delete(pods, 1)] == ["b", "d"]
    assert terminated_to_delete(pods, 3) == []
    assert [p["metadata"]["name"] for p in orphaned(pods + [pod("e", "Running", 0, "gone")], {"n1"})] == ["e"]


# ---- zone-aware eviction (pyk8s.controllers.nodezones and the controller's use of it) -----------


@pytest.mark.parametrize(("statuses", "expected"), [
    (["True"] * 5, (0, STATE_NORMAL)),
    (["Unknown"] * 3, (3, STATE_FULL)),
    (["False", "Unknown"], (2, STATE_FULL)),  # no ready node at all
    (["True", "Unknown", "Unknown"], (2, STATE_NORMAL)),  # two not ready never make a partial disruption
    (["True", "True", "Unknown", "Unknown", "Unknown"], (3, STATE_PARTIAL)),  # 0.6 >= 0.55
    (["True", "True", "True", "Unknown", "Unknown", "Unknown"], (3, STATE_NORMAL)),  # 0.5 < 0.55
    (["True"] * 9 + ["False"] * 11, (11, STATE_PARTIAL)),  # exactly 0.55
    ([], (0, STATE_NORMAL)),
])
def test_zone_states(statuses, expected):
    assert compute_zone_state(statuses) == expected


def test_zone_key_and_exclusion_labels():
    def labelled(**labels: str) -> dict:
        return {"metadata": {"labels": labels}}

    assert zone_key(labelled()) == ""
    assert zone_key(labelled(**{"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "a"})) == \
        "r:\x00:a"
    assert zone_key(labelled(**{"failure-domain.beta.kubernetes.io/zone": "b"})) == ":\x00:b"
    assert excluded_from_disruption(labelled(**{"node.kubernetes.io/exclude-disruption": ""}))
    assert not excluded_from_disruption(labelled())


def test_token_bucket_paces_and_zero_never_accepts():
    bucket = TokenBucket(0.1, now=0.0)
    assert bucket.try_accept(0.0)  # the burst of one
    assert not bucket.try_accept(5.0)
    assert bucket.try_accept(10.0)
    assert not TokenBucket(0.0, now=0.0).try_accept(100.0)


def _zone(size: int, not_ready: int) -> list[str]:
    return ["True"] * (size - not_ready) + ["Unknown"] * not_ready


@pytest.mark.parametrize(("size", "qps"), [(10, 0.0), (60, 0.01)])
def test_partial_disruption_rates_depend_on_cluster_size(size, qps):
    zones = Zones()
    zones.observe({"a": _zone(size, size * 6 // 10), "b": _zone(4, 0)}, now=0.0)
    assert zones.states == {"a": STATE_PARTIAL, "b": STATE_NORMAL}
    assert zones.tainters["a"].limiter.qps == qps
    assert zones.tainters["b"].limiter.qps == 0.1


def test_one_zone_down_keeps_normal_rate_and_all_zones_down_stops_tainting():
    zones = Zones()
    assert not zones.observe({"a": _zone(3, 3), "b": _zone(3, 0)}, now=0.0)
    assert zones.states == {"a": STATE_FULL, "b": STATE_NORMAL} and zones.tainters["a"].limiter.qps == 0.1
    zones.tainters["a"].add("n1")
    assert zones.observe({"a": _zone(3, 3), "b": _zone(3, 3)}, now=1.0)  # entering cluster-wide disruption
    assert zones.all_fully_disrupted and all(t.limiter.qps == 0 for t in zones.tainters.values())
    assert not zones.tainters["a"].queue
    assert not zones.observe({"a": _zone(3, 3), "b": _zone(3, 3)}, now=2.0)  # staying: nothing new
    assert not zones.observe({"a": _zone(3, 3), "b": _zone(3, 1)}, now=3.0)  # leaving it
    assert zones.states == {"a": STATE_FULL, "b": STATE_NORMAL}
    assert [t.limiter.qps for t in zones.tainters.values()] == [0.1, 0.1]


class _FakeAPI:
    """Records node updates; answers with the object as written."""

    def __init__(self):
        self.updates: list[dict] = []

    async def update(self, obj: dict, **_kwargs) -> dict:
        self.updates.append(obj)
        return obj

    async def update_status(self, obj: dict, **_kwargs) -> dict:
        return obj


def _named(name: str, ready: str, zone: str = "a", labels: dict | None = None, taints: list | None = None) -> dict:
    obj = node(ready, T0, taints=taints)
    obj["metadata"] = {"name": name, "creationTimestamp": rfc3339(T0 - 1000),
                       "labels": {"topology.kubernetes.io/zone": zone, **(labels or {})}}
    return obj


def _controller(nodes: list[dict], clock: FakeClock, qps: float = 0.1) -> tuple[NodeLifecycleController, _FakeAPI]:
    api = _FakeAPI()
    controller = NodeLifecycleController(api, SharedInformerFactory(api), zones=Zones(eviction_qps=qps),  # type: ignore
                                         clock=clock, wall_clock=lambda: T0 + 1)
    for obj in nodes:
        controller.nodes.indexer.upsert(obj["metadata"]["name"], obj)
    return controller, api


def _no_execute(api: _FakeAPI, name: str) -> list[str]:
    last = [u for u in api.updates if u["metadata"]["name"] == name][-1:]
    return [t["key"] for t in (last[0]["spec"].get("taints") or []) if t["effect"] == "NoExecute"] if last else []


async def test_no_execute_taints_are_paced_per_zone():
    clock = FakeClock(0.0)
    down = [_named(f"d{i}", "Unknown") for i in range(2)]
    controller, api = _controller([*down, _named("up1", "True"), _named("up2", "True")], clock)
    controller.observe_zones()
    for obj in down:
        await controller.sync_node(obj["metadata"]["name"])
    # Only the NoSchedule taint so far; both nodes queue in zone a.
    assert _no_execute(api, "d0") == [] and list(controller.zones.tainters[zone_key(down[0])].queue) == ["d0", "d1"]
    await controller.tainting_pass()
    assert _no_execute(api, "d0") == [TAINT_UNREACHABLE] and _no_execute(api, "d1") == []
    clock.step(5)
    await controller.tainting_pass()
    assert _no_execute(api, "d1") == []  # 0.1/s: the next token is 10 s after the first
    clock.step(5)
    await controller.tainting_pass()
    assert _no_execute(api, "d1") == [TAINT_UNREACHABLE]


class _ConflictingAPI(_FakeAPI):
    """Refuses the first `conflicts` node updates with 409 (another writer got there first) and serves
    the node as the server has it."""

    def __init__(self, conflicts: int, fresh: dict):
        super().__init__()
        self.conflicts = conflicts
        self.fresh = fresh
        self.gets = 0

    async def update(self, obj: dict, **kwargs) -> dict:
        if self.conflicts:
            self.conflicts -= 1
            raise APIStatusError({"kind": "Status", "code": 409, "reason": "Conflict",
                                       "message": "the object has been modified"})
        return await super().update(obj, **kwargs)

    async def get(self, resource: str, name: str, *_args, **_kwargs) -> dict:
        self.gets += 1
        return self.fresh


async def test_a_conflicting_no_execute_taint_is_retried_on_the_fresh_node_within_one_token():
    clock = FakeClock(0.0)
    cached = _named("d0", "Unknown")
    fresh = _named("d0", "Unknown", taints=[{"key": TAINT_UNREACHABLE, "effect": "NoSchedule",
                                             "timeAdded": rfc3339(T0)}])
    controller, _ = _controller([cached, _named("up1", "True"), _named("up2", "True")], clock)
    api = _ConflictingAPI(conflicts=2, fresh=fresh)
    controller.client = api  # type: ignore[assignment]
    controller.observe_zones()
    controller.zones.tainters[zone_key(cached)].add("d0")
    await controller.tainting_pass()
    assert api.gets == 2 and _no_execute(api, "d0") == [TAINT_UNREACHABLE]
    assert {t["effect"] for t in api.updates[-1]["spec"]["taints"]} == {"NoSchedule", "NoExecute"}
    assert not controller.zones.tainters[zone_key(cached)].queue


async def test_a_taint_that_cannot_be_written_stays_queued():
    clock = FakeClock(0.0)
    cached = _named("d0", "Unknown")
    controller, _ = _controller([cached, _named("up1", "True"), _named("up2", "True")], clock)
    api = _ConflictingAPI(conflicts=1, fresh=cached)

    async def unreachable(*_args, **_kwargs) -> dict:
        raise APIConnectionError("GET /api/v1/nodes/d0: connection refused")

    api.get = unreachable  # type: ignore[method-assign]
    controller.client = api  # type: ignore[assignment]
    controller.observe_zones()
    controller.zones.tainters[zone_key(cached)].add("d0")
    await controller.tainting_pass()
    assert api.updates == [] and list(controller.zones.tainters[zone_key(cached)].queue) == ["d0"]


async def test_cluster_wide_disruption_takes_no_execute_taints_off():
    clock = FakeClock(0.0)
    tainted = [{"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)},
               {"key": TAINT_UNREACHABLE, "effect": "NoSchedule", "timeAdded": rfc3339(T0)}]
    nodes = [_named("a1", "Unknown", "a", taints=tainted), _named("b1", "Unknown", "b")]
    controller, api = _controller(nodes, clock)
    controller.observe_zones()
    assert controller.zones.all_fully_disrupted
    await controller.sync_node("a1")
    assert [t["key"] + ":" + t["effect"] for t in api.updates[-1]["spec"]["taints"]] == [
        f"{TAINT_UNREACHABLE}:NoSchedule"]
    await controller.sync_node("b1")
    await controller.tainting_pass()
    assert _no_execute(api, "b1") == []


async def test_excluded_nodes_do_not_count_towards_the_zone_state():
    clock = FakeClock(0.0)
    excluded = {"node.kubernetes.io/exclude-disruption": "true"}
    nodes = [_named("x1", "True", labels=excluded), _named("x2", "True", labels=excluded), _named("n1", "Unknown")]
    controller, _ = _controller(nodes, clock)
    controller.observe_zones()
    assert controller.zones.states == {zone_key(nodes[0]): STATE_FULL}  # only n1 counts: fully disrupted


def test_observed_ready_treats_stale_nodes_as_unknown():
    assert observed_ready(node("True", T0), None, T0 + 100, 40) == "Unknown"
    assert observed_ready(node("False", T0), None, T0 + 10, 40) == "False"


def test_zones_without_nodes_change_nothing_and_new_zones_start_at_the_normal_rate():
    zones = Zones(eviction_qps=0.5)
    assert not zones.observe({}, now=0.0) and zones.states == {}
    assert not zones.observe({"a": _zone(5, 1)}, now=1.0)
    assert zones.states == {"a": STATE_NORMAL} and zones.tainters["a"].limiter.qps == 0.5
    assert not zones.observe({"b": _zone(2, 0)}, now=2.0)  # zone a's nodes are gone: so is zone a
    assert list(zones.states) == ["b"]
