"""Node faults on a real node (issue #6, "Faults and bad input"): the node's containerd killed under running
pods, the node agent (the kubelet) killed, and the node rebooting. A whole cluster (`netns_cluster`) runs inside
the test's network namespace.

A reboot is simulated inside that namespace as a power cut of the node: the agent is frozen (from then on it acts
on nothing), containerd, its shims (found by the socket address each was started with) and every container (found
through the node's pod cgroup tree) are killed by PID, and what a reboot wipes goes: every mount under the node's
data dir (the containers' rootfs, the sandboxes' /dev/shm, memory-backed volumes), containerd's state dir, the pod
network namespaces (the `ip netns` entries of the killed containers), the CNI bridge and the pod cgroups. What
survives a reboot stays: containerd's root (images, container and sandbox metadata), the kubelet's pod directories
and the CNI IPAM files. Then the frozen agent is killed by PID and the server's supervisor starts it again on the
same data dir: the boot. (The server's other components, the service proxy and cluster DNS among them, keep
running: the node reboots, the control plane does not.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.containerd import configured_snapshotter
from pyk8s.kubelet.runtime.cri import CRIClient, pb
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image
from pyk8s.kubelet.runtime_state import POD_UID_LABEL
from pyk8s.kubelet.volumes.mounts import mount_points_under

from conftest import (
    CGROUP_ROOT,
    NetnsCluster,
    _ip,
    _remove_cgroup_tree,
    eventually_async,
    find_containerd_pid,
    process_argvs,
)

IMAGE = "pyk8s.local/busybox-faults:1.0"
NETNS_DIR = Path("/var/run/netns")


@pytest.fixture
def unmount_leftovers(node_netns: str) -> Iterator[None]:
    """After `netns_cluster` is torn down: unmount what a failed test left mounted under the node's data dir (a
    memory-backed volume the kubelet had no chance to unmount) and remove the dir."""
    yield
    data_dir = Path(f"/tmp/pyk8s-e2e-{node_netns.rsplit('-', 1)[-1]}")
    for point in mount_points_under(data_dir):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def cluster(unmount_leftovers: None, netns_cluster: NetnsCluster, tmp_path: Path) -> NetnsCluster:
    """The cluster with its node Ready and a busybox image in the node's containerd."""
    c = netns_cluster
    await wait_node_ready(c)
    build_oci_archive(busybox_image(IMAGE), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", c.agent_dir / "containerd" / "containerd.sock",
                         configured_snapshotter(c.agent_dir))
    await asyncio.to_thread(c.kubectl, "wait", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90)
    return c


# ---- the cluster through kubectl ---------------------------------------------------------------------------


async def wait_node_ready(c: NetnsCluster, timeout: float = 90) -> dict:
    async def ready() -> dict | None:
        result = c.kubectl("get", "node", c.node_name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        node = json.loads(result.stdout)
        conditions = {cond["type"]: cond["status"] for cond in node["status"].get("conditions") or []}
        return node if conditions.get("Ready") == "True" else None

    try:
        return await eventually_async(ready, timeout=timeout, interval=1)
    except AssertionError:
        raise AssertionError(f"node not Ready:\n{c.server_log()}") from None


def apply(c: NetnsCluster, *objects: dict) -> None:
    c.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objects))


def container(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **extra}


def deployment(name: str, pod_spec: dict) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 2, **pod_spec}}}}


def pods(c: NetnsCluster, selector: str) -> list[dict]:
    return c.kubectl_json("get", "pods", "-l", selector)["items"]


def statuses(pod: dict, kind: str = "containerStatuses") -> dict[str, dict]:
    return {s["name"]: s for s in (pod.get("status") or {}).get(kind) or []}


def is_ready(pod: dict) -> bool:
    return any(cond["type"] == "Ready" and cond["status"] == "True"
               for cond in (pod.get("status") or {}).get("conditions") or [])


async def wait_pod(c: NetnsCluster, name: str, check, timeout: float = 90) -> dict:
    last: dict = {}

    async def current() -> dict | None:
        last["pod"] = c.kubectl_json("get", "pod", name)
        return last["pod"] if check(last["pod"]) else None

    try:
        return await eventually_async(current, timeout=timeout, interval=1)
    except AssertionError:
        events = c.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout
        raise AssertionError(f"pod {name}: condition not met; status {last.get('pod', {}).get('status')}\n"
                             f"{events}\n{c.server_log()}") from None


def events_of(c: NetnsCluster, name: str) -> list[tuple[str, str]]:
    events = c.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [(event["reason"], event["message"]) for event in events]


def exec_out(c: NetnsCluster, pod: str, *command: str) -> str:
    return c.kubectl("exec", pod, "--", *command).stdout


# ---- the node, from inside ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def node_runtime(c: NetnsCluster):
    cri = CRIClient(f"unix://{c.agent_dir / 'containerd' / 'containerd.sock'}", timeout=30)
    try:
        yield cri
    finally:
        await cri.close()


async def pod_sandboxes(c: NetnsCluster, uid: str) -> list[pb.PodSandbox]:
    async with node_runtime(c) as cri:
        return await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={POD_UID_LABEL: uid}))


def containerd_state_dir(c: NetnsCluster) -> Path:
    return c.agent_dir / "containerd" / "state"


def shim_pids(c: NetnsCluster) -> set[int]:
    """The shims of the node's containerd: each is started with `-address <that containerd's socket>`."""
    socket = str(c.agent_dir / "containerd" / "containerd.sock").encode()
    return {pid for pid, argv in process_argvs()
            if any(flag == b"-address" and value == socket for flag, value in zip(argv, argv[1:], strict=False))}


def cgroup_pids(relative: str) -> set[int]:
    """Every process in the cgroup tree `relative` (each v1 hierarchy and the v2 tree)."""
    pids = set()
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / relative.lstrip("/")
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(line) for line in procs.read_text().split())
    return pids


def pod_cgroups(c: NetnsCluster) -> set[str]:
    """The pod cgroups (`pod<uid>`) under the node's kubepods, in any hierarchy."""
    found = set()
    for hierarchy in CGROUP_ROOT.iterdir():
        kubepods = hierarchy / c.cgroup_root.lstrip("/") / "kubepods"
        if kubepods.is_dir():
            found.update(entry.name for entry in kubepods.iterdir() if entry.is_dir() and entry.name.startswith("pod"))
    return found


def netns_entries_of(pids: set[int]) -> set[str]:
    """The named network namespaces (`ip netns` entries) these processes live in."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            ns = os.stat(f"/proc/{pid}/ns/net")
            inodes.add((ns.st_dev, ns.st_ino))
    names = set()
    for entry in NETNS_DIR.iterdir() if NETNS_DIR.is_dir() else []:
        with contextlib.suppress(OSError):
            ns = os.stat(entry)
            if (ns.st_dev, ns.st_ino) in inodes:
                names.add(entry.name)
    return names


def ipam_reservations(c: NetnsCluster) -> dict[str, str]:
    """host-local's reserved addresses in the node's CNI IPAM dir: IP -> the sandbox (container) ID holding it."""
    reserved = {}
    for network in (c.agent_dir / "containerd" / "cni" / "ipam").iterdir():
        for entry in network.iterdir():
            if entry.name[0].isdigit() and not entry.name.startswith("last_reserved_ip"):
                reserved[entry.name] = entry.read_text().split()[0]
    return reserved


def node_links(c: NetnsCluster) -> set[str]:
    out = c.exec_in_netns("ip", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Reboot:
    """What the simulated power cut wiped."""

    pod_netns: set[str]  # the `ip netns` entries of the pods
    mounts: list[str]  # the mount points under the node's data dir


def power_cut(c: NetnsCluster) -> Reboot:
    """Everything of the node dies at once and what lives in memory is lost (see the module docstring). The agent
    stays frozen: `boot` starts it again."""
    agent = c.agent_pid()
    assert agent is not None
    os.kill(agent, signal.SIGSTOP)
    pods_cgroup = f"{c.cgroup_root}/kubepods"
    containerd = find_containerd_pid(c.agent_dir)
    shims = shim_pids(c)
    containers = cgroup_pids(pods_cgroup)
    pod_netns = netns_entries_of(containers)
    assert containerd is not None and shims and containers and pod_netns
    _kill({containerd, *shims, *containers})
    deadline = time.monotonic() + 30
    while (left := {p for p in {containerd, *shims} | cgroup_pids(pods_cgroup) if alive(p)}):
        assert time.monotonic() < deadline, f"processes {left} survived SIGKILL"
        _kill(left)
        time.sleep(0.05)
    mounts = mount_points_under(c.agent_dir)  # deepest first
    for point in mounts:
        subprocess.run(["umount", point], check=True, capture_output=True, timeout=30)
    for name in pod_netns:
        _ip("netns", "delete", name, check=False)
    _ip("-n", c.netns, "link", "delete", "cni0", check=False)
    subprocess.run(["rm", "-rf", "--one-file-system", str(containerd_state_dir(c))], check=True, timeout=60)
    _remove_cgroup_tree(c.cgroup_root)
    return Reboot(pod_netns=pod_netns, mounts=mounts)


def boot(c: NetnsCluster) -> None:
    """Kill the frozen agent by PID: the server's supervisor starts it again on the same data dir."""
    agent = c.agent_pid()
    assert agent is not None
    os.kill(agent, signal.SIGKILL)


# ---- tests -------------------------------------------------------------------------------------------------


async def test_killed_containerd_and_killed_agent_leave_pods_running(cluster: NetnsCluster) -> None:
    c = cluster
    await asyncio.to_thread(apply, c, deployment("steady", {"containers": [container("main", "exec sleep 3600")]}))
    [pod] = await eventually_async(lambda: _running(c, "app=steady"), timeout=90, interval=1)
    [sandbox] = await pod_sandboxes(c, pod["metadata"]["uid"])
    shims = shim_pids(c)
    ipam = ipam_reservations(c)
    assert set(ipam.values()) == {sandbox.id}

    # containerd killed: the agent's supervisor starts it again; the node is (or is again) Ready.
    first = find_containerd_pid(c.agent_dir)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    second = await eventually_async(lambda: _new_containerd(c, first), timeout=60, interval=0.5)
    await wait_node_ready(c)
    # A pod created afterwards runs: the kubelet works with the new containerd.
    await asyncio.to_thread(apply, c, bare_pod("fresh"))
    await wait_pod(c, "fresh", is_ready)
    # The shims outlived containerd, so the pod's container kept running: same container, same sandbox, no
    # restart, nothing re-created, no address taken or given back.
    await assert_untouched(c, pod, sandbox)
    assert shims <= {pid for pid in shim_pids(c) if alive(pid)}
    assert ipam_reservations(c).items() >= ipam.items()

    # The agent killed (the kubelet with it): the server's supervisor starts it again; it stops the containerd
    # the dead agent left and starts its own, which adopts the running containers once more.
    fresh = c.kubectl_json("get", "pod", "fresh")
    [fresh_sandbox] = await pod_sandboxes(c, fresh["metadata"]["uid"])
    agent = c.agent_pid()
    assert agent is not None
    os.kill(agent, signal.SIGKILL)
    await eventually_async(lambda: _new_containerd(c, second), timeout=90, interval=0.5)
    await wait_node_ready(c)
    await asyncio.to_thread(apply, c, bare_pod("later"))
    await wait_pod(c, "later", is_ready)
    await assert_untouched(c, pod, sandbox)
    await assert_untouched(c, fresh, fresh_sandbox)
    assert shims <= {pid for pid in shim_pids(c) if alive(pid)}


def bare_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [container("main", "exec sleep 3600")], "terminationGracePeriodSeconds": 1}}


async def _new_containerd(c: NetnsCluster, old: int) -> int | None:
    pid = find_containerd_pid(c.agent_dir)
    return pid if pid not in (None, old) and alive(pid) else None


async def assert_untouched(c: NetnsCluster, before: dict, sandbox: pb.PodSandbox) -> None:
    """The pod runs on as it did: same container (never restarted), same address, same single sandbox."""
    name = before["metadata"]["name"]
    pod = c.kubectl_json("get", "pod", name)
    then, now = statuses(before)["main"], statuses(pod)["main"]
    assert now["containerID"] == then["containerID"] and now["restartCount"] == 0
    assert now["state"] == then["state"] and "running" in now["state"]
    assert pod["status"]["podIP"] == before["status"]["podIP"] and is_ready(pod)
    assert [(s.id, s.state) for s in await pod_sandboxes(c, pod["metadata"]["uid"])] == [
        (sandbox.id, pb.SANDBOX_READY)]
    reasons = [reason for reason, _ in events_of(c, name)]
    assert "SandboxChanged" not in reasons and reasons.count("Started") == 1


async def _running(c: NetnsCluster, selector: str) -> list[dict] | None:
    found = [p for p in pods(c, selector) if not p["metadata"].get("deletionTimestamp")]
    return found if found and all(is_ready(p) for p in found) else None


async def test_node_reboot_recreates_sandboxes_and_leaks_nothing(cluster: NetnsCluster) -> None:
    c = cluster
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "default"},
                  "data": {"greeting": "hello"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "default"},
              "stringData": {"password": "s3cret"}}
    volumes = [{"name": "settings", "configMap": {"name": "settings"}},
               {"name": "creds", "secret": {"secretName": "creds"}},
               {"name": "info", "projected": {"sources": [
                   {"configMap": {"name": "settings", "items": [{"key": "greeting", "path": "greeting"}]}},
                   {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                   {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}]}},
               {"name": "disk", "emptyDir": {}},
               {"name": "memory", "emptyDir": {"medium": "Memory"}}]
    mounts = [{"name": "settings", "mountPath": "/etc/settings"}, {"name": "creds", "mountPath": "/etc/creds"},
              {"name": "info", "mountPath": "/etc/info"}, {"name": "disk", "mountPath": "/disk"},
              {"name": "memory", "mountPath": "/memory"}]
    web = deployment("web", {
        "initContainers": [container("init", "echo init >> /disk/inits", volumeMounts=mounts)],
        "containers": [container("main", "echo boot >> /disk/boots; echo boot >> /memory/boots; exec sleep 3600",
                                 volumeMounts=mounts)],
        "volumes": volumes})
    once = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "once", "namespace": "default"},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [container("main", "exec sleep 3600")]}}
    await asyncio.to_thread(apply, c, config_map, secret, web, once)
    [pod] = await eventually_async(lambda: _running(c, "app=web"), timeout=90, interval=1)
    await wait_pod(c, "once", is_ready)
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    once_uid = c.kubectl_json("get", "pod", "once")["metadata"]["uid"]
    before = statuses(pod)["main"]
    [old_sandbox] = await pod_sandboxes(c, uid)
    [old_once_sandbox] = await pod_sandboxes(c, once_uid)
    assert exec_out(c, name, "cat", "/disk/boots", "/memory/boots") == "boot\nboot\n"

    wiped = power_cut(c)
    # The memory-backed volume was a mount, and it went with the reboot.
    memory_volume = KubeletPaths(c.agent_dir).volume_dir(uid, "kubernetes.io~empty-dir", "memory")
    assert str(memory_volume) in wiped.mounts
    # The kernel's boot ID cannot change here: the Node is made to show another one, as after a real reboot.
    c.kubectl("patch", "node", c.node_name, "--subresource=status", "--type=merge",
              "-p", json.dumps({"status": {"nodeInfo": {"bootID": "the-boot-before-the-power-cut"}}}))
    boot(c)
    await eventually_async(lambda: _containerd_up(c), timeout=60, interval=0.5)
    await wait_node_ready(c)
    boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()

    rebooted = ("Rebooted", f"Node {c.node_name} has been rebooted, boot id: {boot_id}")

    async def reboot_recorded() -> bool:
        return rebooted in events_of(c, c.node_name)

    await eventually_async(reboot_recorded, timeout=30, interval=1)

    # The Deployment's pod is the same pod object, Running again in a new sandbox; its containers ran again
    # and count a restart; the old instance shows how the reboot ended it (containerd: exit 255, Unknown).
    pod = await wait_pod(c, name, lambda p: is_ready(p) and statuses(p)["main"]["restartCount"] == 1)
    assert pod["metadata"]["uid"] == uid
    after = statuses(pod)["main"]
    assert after["containerID"] != before["containerID"]
    assert after["lastState"]["terminated"]["exitCode"] == 255
    assert after["lastState"]["terminated"]["reason"] == "Unknown"
    assert [p["metadata"]["name"] for p in pods(c, "app=web")] == [name]
    sandboxes = {s.id: s for s in await pod_sandboxes(c, uid)}
    ready = [s for s in sandboxes.values() if s.state == pb.SANDBOX_READY]
    assert len(ready) == 1 and ready[0].id != old_sandbox.id and ready[0].metadata.attempt == 1
    assert ("SandboxChanged", "Pod sandbox changed, it will be killed and re-created.") in events_of(c, name)

    # Volumes are back with their content; the init container ran again (a new sandbox starts over); the disk
    # emptyDir kept what was written before the reboot, the memory-backed one is a new, empty tmpfs.
    assert exec_out(c, name, "cat", "/etc/settings/greeting") == "hello"
    assert exec_out(c, name, "cat", "/etc/creds/password") == "s3cret"
    assert exec_out(c, name, "cat", "/etc/info/greeting", "/etc/info/name") == f"hello{name}"
    assert exec_out(c, name, "cat", "/etc/info/token").count(".") == 2
    assert exec_out(c, name, "cat", "/disk/inits", "/disk/boots") == "init\ninit\nboot\nboot\n"
    assert exec_out(c, name, "cat", "/memory/boots") == "boot\n"
    assert str(memory_volume) in mount_points_under(memory_volume)

    # A pod that may not restart (restartPolicy Never) ends Failed with the reboot's exit, as upstream.
    once_pod = await wait_pod(c, "once", lambda p: p["status"].get("phase") == "Failed")
    terminated = statuses(once_pod)["main"]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (255, "Unknown")

    # Nothing of the old boot leaks: the stale IPAM reservations were released (the addresses held are the
    # running sandboxes'), the old sandboxes are stopped, and the node has one veth per running pod.
    async def released() -> bool:
        running = {s.id for s in await _ready_sandboxes(c)}
        seen["reserved"], seen["running"] = ipam_reservations(c), running
        return set(seen["reserved"].values()) == running

    seen: dict = {}
    try:
        await eventually_async(released, timeout=30, interval=1)
    except AssertionError:
        raise AssertionError(f"IPAM holds {seen['reserved']}; running sandboxes {seen['running']}") from None
    async with node_runtime(c) as cri:
        for sandbox_id in (old_sandbox.id, old_once_sandbox.id):
            status = (await cri.pod_sandbox_status(sandbox_id)).status
            assert status.state == pb.SANDBOX_NOTREADY
    links = node_links(c)
    assert "cni0" in links
    new_netns = netns_entries_of(cgroup_pids(f"{c.cgroup_root}/kubepods"))
    assert len(new_netns) == len([link for link in links if link.startswith("veth")]) == 1

    # Deleting the pods leaves no sandboxes, mounts, cgroups, network namespaces or interfaces behind.
    c.kubectl("delete", "deployment", "web", "--wait=false")
    c.kubectl("delete", "pod", "once", "--wait=false")

    async def cleaned() -> bool:
        async with node_runtime(c) as cri:
            sandboxes = [s.id for s in await cri.list_pod_sandbox()]
        left = {"sandboxes": sandboxes, "mounts": mount_points_under(c.agent_dir), "cgroups": pod_cgroups(c),
                "netns": (wiped.pod_netns | new_netns) & {entry.name for entry in NETNS_DIR.iterdir()},
                "veths": [link for link in node_links(c) if link.startswith("veth")]}
        seen["left"] = left
        return not any(left.values())

    try:
        await eventually_async(cleaned, timeout=60, interval=1)
    except AssertionError:
        raise AssertionError(f"left behind: {seen['left']}") from None


async def _containerd_up(c: NetnsCluster) -> bool:
    pid = find_containerd_pid(c.agent_dir)
    return pid is not None and alive(pid)


async def _ready_sandboxes(c: NetnsCluster) -> list[pb.PodSandbox]:
    async with node_runtime(c) as cri:
        return [s for s in await cri.list_pod_sandbox() if s.state == pb.SANDBOX_READY]
