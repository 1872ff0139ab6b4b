"""The real node agent: `pyk8s server` runs this machine's node (containerd included) inside the test's network
namespace; the node registers with what the host really has, reports Ready, renews its Lease and stops its
containerd when it stops."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import platform
import shutil
import signal
import struct
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import psutil
from cryptography import x509

from pyk8s.api.quantity import parse
from pyk8s.kubelet.agent import containerd_processes
from pyk8s.kubelet.node import cpu_capacity, os_image
from pyk8s.kubelet.runtime.containerd import ContainerdConfig
from pyk8s.kubelet.runtime.cri import CRIClient, pb

from conftest import (
    REPO_ROOT,
    NetnsCluster,
    _ip,
    _remove_cgroup_tree,
    eventually_async,
    find_containerd_pid,
    processes_in_netns,
)


def _condition(node: dict, type_: str) -> dict:
    return next(c for c in node["status"]["conditions"] if c["type"] == type_)


async def _ready_node(cluster: NetnsCluster, timeout: float = 120) -> dict:
    async def ready() -> dict | None:
        result = cluster.kubectl("get", "node", cluster.node_name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        node = json.loads(result.stdout)
        return node if _condition(node, "Ready")["status"] == "True" else None

    try:
        return await eventually_async(ready, timeout=timeout, interval=1)
    except AssertionError:
        raise AssertionError(f"node not Ready:\n{cluster.server_log()}") from None


async def test_server_runs_a_real_node_that_registers_ready(netns_cluster: NetnsCluster) -> None:
    cluster = netns_cluster
    node = await _ready_node(cluster)
    status = node["status"]

    # Capacity is the host's; allocatable keeps back upstream's hard eviction thresholds.
    capacity, allocatable = status["capacity"], status["allocatable"]
    assert capacity["cpu"] == str(cpu_capacity())
    assert capacity["pods"] == "110"
    memory = parse(capacity["memory"]).value
    hugepages = sum(parse(v).value for k, v in capacity.items() if k.startswith("hugepages-"))
    assert memory + hugepages == psutil.virtual_memory().total
    assert memory - parse(allocatable["memory"]).value == 100 * 1024 * 1024
    storage = parse(capacity["ephemeral-storage"]).value
    stats = os.statvfs(cluster.data_dir)
    assert storage == stats.f_blocks * stats.f_frsize
    # nodefs.available<10%, with the percentage a float32 as upstream keeps it.
    ten_percent = struct.unpack("f", struct.pack("f", 0.10))[0]
    assert parse(allocatable["ephemeral-storage"]).value == storage - int(float(storage) * ten_percent)

    info = status["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert info["kernelVersion"] == platform.release()
    assert info["osImage"] == os_image()
    assert info["kubeletVersion"] == "v1.32.0+pyk8s"
    assert info["operatingSystem"] == "linux" and info["architecture"] in ("amd64", "arm64")
    assert info["bootID"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert {"type": "InternalIP", "address": cluster.node_ip} in status["addresses"]
    assert {"type": "Hostname", "address": cluster.node_name} in status["addresses"]
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10250
    image_names = {name for image in status["images"] for name in image["names"]}
    assert "registry.k8s.io/pause:3.10" in image_names
    for type_, reason in (("MemoryPressure", "KubeletHasSufficientMemory"),
                          ("DiskPressure", "KubeletHasNoDiskPressure"),
                          ("PIDPressure", "KubeletHasSufficientPID")):
        assert _condition(node, type_)["status"] == "False" and _condition(node, type_)["reason"] == reason
    assert _condition(node, "Ready")["message"] == "kubelet is posting ready status"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == cluster.node_name

    # The server, not the kubelet (NodeRestriction), gives its node the control-plane role labels.
    async def labelled() -> bool:
        labels = cluster.kubectl_json("get", "node", cluster.node_name)["metadata"]["labels"]
        return labels.get("node-role.kubernetes.io/control-plane") == "true"
    await eventually_async(labelled, timeout=30, interval=0.5)

    # The pod CIDR the node IPAM controller assigned reached containerd's CNI configuration.
    pod_cidr = node["spec"]["podCIDR"]
    conflists = list((cluster.agent_dir / "containerd" / "cni" / "conf.d").glob("*.conflist"))
    assert len(conflists) == 1
    ranges = json.loads(conflists[0].read_text())["plugins"][0]["ipam"]["ranges"]
    assert ranges == [[{"subnet": pod_cidr}]]
    # containerd started before the CIDR was known and picked the new network up without a restart: a sandbox
    # run on it now gets an address from the node's pod CIDR.
    cri = CRIClient(f"unix://{cluster.agent_dir / 'containerd' / 'containerd.sock'}")
    try:
        uid = "agent-e2e-uid"
        sandbox_id = await cri.run_pod_sandbox(pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name="probe", uid=uid, namespace="default"), hostname="probe",
            log_directory=str(cluster.agent_dir / "logs" / "probe"),
            linux=pb.LinuxPodSandboxConfig(cgroup_parent=f"{cluster.cgroup_root}/kubepods/pod{uid}")))
        sandbox = (await cri.pod_sandbox_status(sandbox_id)).status
        assert ipaddress.ip_address(sandbox.network.ip) in ipaddress.ip_network(pod_cidr)
        await cri.stop_pod_sandbox(sandbox_id)
        await cri.remove_pod_sandbox(sandbox_id)
    finally:
        await cri.close()

    # A deleted Node registers again; the pod CIDR IPAM gives it then reaches containerd's CNI config too.
    cluster.kubectl("delete", "node", cluster.node_name)

    async def reregistered() -> dict | None:
        result = cluster.kubectl("get", "node", cluster.node_name, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        again = json.loads(result.stdout)
        fresh = again["metadata"]["uid"] != node["metadata"]["uid"] and again["spec"].get("podCIDR")
        return again if fresh and _condition(again, "Ready")["status"] == "True" else None

    node = await eventually_async(reregistered, timeout=90, interval=1)
    pod_cidr = node["spec"]["podCIDR"]

    async def cni_follows() -> bool:
        conflist = json.loads(conflists[0].read_text())
        return conflist["plugins"][0]["ipam"]["ranges"] == [[{"subnet": pod_cidr}]]

    await eventually_async(cni_follows, timeout=30, interval=0.5)

    # kubectl shows it the usual way (the server labels the registered-again node with its role again).
    async def listed() -> str | None:
        table = cluster.kubectl("get", "nodes").stdout
        return table if "control-plane" in table else None
    table = await eventually_async(listed, timeout=30, interval=0.5)
    assert cluster.node_name in table and " Ready " in table
    described = cluster.kubectl("describe", "node", cluster.node_name).stdout
    assert f"Container Runtime Version:  {info['containerRuntimeVersion']}" in described
    assert f"PodCIDR:                      {pod_cidr}" in described

    # The kubelet's node events (written in the background, so they may trail the status a little).
    async def node_events() -> set[str] | None:
        events = cluster.kubectl_json("get", "events", "-n", "default",
                                      "--field-selector", f"involvedObject.name={cluster.node_name}")
        reasons = {event["reason"] for event in events["items"]}
        return reasons if {"Starting", "NodeReady", "NodeHasSufficientMemory"} <= reasons else None

    await eventually_async(node_events, timeout=30, interval=1)


async def test_lease_renews_and_agent_stop_stops_its_containerd(netns_cluster: NetnsCluster) -> None:
    cluster = netns_cluster
    await _ready_node(cluster)

    def renew_time() -> datetime:
        lease = cluster.kubectl_json("get", "lease", "-n", "kube-node-lease", cluster.node_name)
        assert lease["spec"]["holderIdentity"] == cluster.node_name
        assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
        return datetime.strptime(lease["spec"]["renewTime"], "%Y-%m-%dT%H:%M:%S.%fZ")

    first = renew_time()

    async def renewed() -> bool:
        return renew_time() > first

    await eventually_async(renewed, timeout=60, interval=1)

    # The agent owns its containerd: stopping the agent (SIGTERM, as the server's supervisor does) stops that
    # containerd by PID; the supervisor then starts the agent again, which starts a new containerd and adopts
    # the same Node.
    node_uid = cluster.kubectl_json("get", "node", cluster.node_name)["metadata"]["uid"]
    containerd_pid = find_containerd_pid(cluster.agent_dir)
    agent_pid = cluster.agent_pid()
    assert containerd_pid is not None and agent_pid is not None
    os.kill(agent_pid, signal.SIGTERM)

    async def containerd_gone() -> bool:
        return not psutil.pid_exists(containerd_pid) or psutil.Process(containerd_pid).status() == "zombie"

    await eventually_async(containerd_gone, timeout=60, interval=0.5)

    async def restarted() -> int | None:
        pid = find_containerd_pid(cluster.agent_dir)
        return pid if pid not in (None, containerd_pid) else None

    await eventually_async(restarted, timeout=90, interval=1)
    node = await _ready_node(cluster)
    assert node["metadata"]["uid"] == node_uid

    # A killed agent leaves its containerd running; the agent the supervisor starts next stops that one (by
    # PID) before it starts its own, so one containerd serves the node's root.
    orphan = find_containerd_pid(cluster.agent_dir)
    agent_pid = cluster.agent_pid()
    assert orphan is not None and agent_pid is not None
    os.kill(agent_pid, signal.SIGKILL)

    async def replaced() -> bool:
        current = containerd_processes(ContainerdConfig(data_dir=cluster.agent_dir))
        return len(current) == 1 and current[0] != orphan and not psutil.pid_exists(orphan)

    await eventually_async(replaced, timeout=90, interval=1)
    await _ready_node(cluster)

    # Stopping the whole server stops the agent and its containerd too.
    last_containerd = find_containerd_pid(cluster.agent_dir)
    assert cluster.stop() == 0
    assert last_containerd is not None and not psutil.pid_exists(last_containerd)


async def test_agent_joins_with_a_token_from_another_network_namespace(netns_cluster: NetnsCluster,
                                                                       peer_netns: str) -> None:
    """`pyk8s agent --server --token` on a second "machine" (its own namespace, linked to the server's by a
    veth pair): TLS bootstrap, a client certificate through an auto-approved CSR, registration, its own pod
    CIDR, and a serving certificate the server approves."""
    cluster = netns_cluster
    await _ready_node(cluster)
    suffix = peer_netns.rsplit("-", 1)[-1]
    _ip("-n", cluster.netns, "link", "add", "join0", "type", "veth", "peer", "name", "join1", "netns", peer_netns)
    _ip("-n", cluster.netns, "addr", "add", "10.254.1.1/24", "dev", "join0")
    _ip("-n", cluster.netns, "link", "set", "join0", "up")
    _ip("-n", peer_netns, "addr", "add", "10.254.1.2/24", "dev", "join1")
    _ip("-n", peer_netns, "link", "set", "join1", "up")
    _ip("-n", peer_netns, "route", "add", "10.254.0.0/24", "via", "10.254.1.1")

    worker = f"worker-{suffix}"
    agent_dir = Path(f"/tmp/pyk8s-e2e-{suffix}")
    cgroup_root = f"/pyk8s-e2e-{suffix}"
    token = (cluster.data_dir / "token").read_text().strip()
    log_path = agent_dir.parent / f"pyk8s-e2e-{suffix}.log"
    agent_dir.mkdir()
    with open(log_path, "ab") as log:
        agent = subprocess.Popen(
            ["nsenter", f"--net=/var/run/netns/{peer_netns}", sys.executable, "-m", "pyk8s.cli", "agent",
             "--server", f"https://{cluster.node_ip}:6443", "--node-name", worker, "--node-ip", "10.254.1.2",
             "--data-dir", str(agent_dir), "--cgroup-root", cgroup_root],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_ROOT,
            env={**os.environ, "PYK8S_TOKEN": token})

    async def worker_ready() -> dict | None:
        if agent.poll() is not None:
            raise AssertionError(f"agent exited {agent.returncode}:\n{log_path.read_text()[-4000:]}")
        result = cluster.kubectl("get", "node", worker, "-o", "json", check=False)
        if result.returncode != 0:
            return None
        node = json.loads(result.stdout)
        return node if _condition(node, "Ready")["status"] == "True" else None

    try:
        try:
            node = await eventually_async(worker_ready, timeout=180, interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{log_path.read_text()[-4000:]}\n{cluster.server_log()}") from None
        server_node = cluster.kubectl_json("get", "node", cluster.node_name)
        assert {"type": "InternalIP", "address": "10.254.1.2"} in node["status"]["addresses"]
        assert node["spec"]["podCIDR"] and node["spec"]["podCIDR"] != server_node["spec"]["podCIDR"]
        assert "node-role.kubernetes.io/control-plane" not in node["metadata"]["labels"]

        # Two CSRs, both issued: the client certificate (approved by the controller-manager) and the kubelet
        # serving certificate (approved by the server for the node's own names and addresses).
        async def serving_issued() -> bool:
            return (agent_dir / "kubelet" / "pki" / "kubelet.crt").exists()

        await eventually_async(serving_issued, timeout=60, interval=1)
        csrs = cluster.kubectl_json("get", "csr")["items"]
        by_signer = {csr["spec"]["signerName"]: csr for csr in csrs}
        serving = by_signer["kubernetes.io/kubelet-serving"]
        assert serving["spec"]["username"] == f"system:node:{worker}"
        assert [c["type"] for c in serving["status"]["conditions"]] == ["Approved"]
        assert by_signer["kubernetes.io/kube-apiserver-client-kubelet"]["status"]["certificate"]
        cert = x509.load_pem_x509_certificate((agent_dir / "kubelet" / "pki" / "kubelet.crt").read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.254.1.2"]

        # Stopping the agent stops its containerd.
        containerd_pid = find_containerd_pid(agent_dir)
        assert containerd_pid is not None
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=60) == 0
        assert not psutil.pid_exists(containerd_pid)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(timeout=30)
        for pid in processes_in_netns(peer_netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _remove_cgroup_tree(cgroup_root)
        shutil.rmtree(agent_dir, ignore_errors=True)
        log_path.unlink(missing_ok=True)
