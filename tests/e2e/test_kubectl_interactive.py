"""kubectl's interactive commands against a whole cluster on real containers (the `netns_cluster` fixture):
`kubectl debug` (an ephemeral container in its target's PID namespace), `attach`, `run -i --rm`, `exec -it`
with a terminal (kubectl runs on a pseudo-terminal the test drives), and `logs -f` / `logs --previous`."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest

from pyk8s.kubelet.runtime.containerd import configured_snapshotter
from pyk8s.kubelet.runtime.images import import_archive
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import KUBECTL, NetnsCluster, eventually_async

IMAGE = "pyk8s.local/busybox-interactive:1.0"


@pytest.fixture
async def cluster(netns_cluster: NetnsCluster, tmp_path: Path) -> NetnsCluster:
    """The cluster with its node Ready and a busybox image in the node's containerd."""
    c = netns_cluster

    async def registered() -> bool:
        return c.kubectl("get", "node", c.node_name, check=False).returncode == 0
    await eventually_async(registered, timeout=90, interval=1)
    await asyncio.to_thread(c.kubectl, "wait", "--for=condition=Ready", f"node/{c.node_name}", "--timeout=120s",
                            timeout=150)
    build_oci_archive(busybox_image(IMAGE), tmp_path / "busybox.tar")
    await import_archive(tmp_path / "busybox.tar", c.agent_dir / "containerd" / "containerd.sock",
                         configured_snapshotter(c.agent_dir))
    await asyncio.to_thread(c.kubectl, "wait", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90)
    return c


def pod(name: str, script: str, restart_policy: str = "Always", **container) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"restartPolicy": restart_policy, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": name, "image": IMAGE, "command": ["sh", "-c", script], **container}]}}


def create_and_wait(c: NetnsCluster, *pods: dict) -> None:
    c.kubectl("apply", "-f", "-", input="\n---\n".join(json.dumps(p) for p in pods))
    for p in pods:
        result = c.kubectl("wait", "--for=condition=Ready", f"pod/{p['metadata']['name']}", "--timeout=120s",
                           timeout=150, check=False)
        if result.returncode != 0:
            described = c.kubectl("describe", "pod", p["metadata"]["name"], check=False).stdout
            raise AssertionError(f"{p['metadata']['name']} not ready: {result.stderr}\n{described}\n"
                                 f"{c.server_log()}")


def on_terminal(c: NetnsCluster, args: list[str], replies: list[tuple[bytes, bytes]], timeout: float = 90) -> bytes:
    """Run kubectl with a pseudo-terminal as its stdin/stdout/stderr; each time the output so far contains a
    `replies` prompt, type its answer. Everything kubectl wrote, once it exits."""
    master, slave = os.openpty()
    argv = [KUBECTL, "--kubeconfig", str(c.kubeconfig), "--cache-dir", str(c.data_dir.parent / "kcache"), *args]
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output = b""
    pending = list(replies)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if pending and pending[0][0] in output:
                os.write(master, pending.pop(0)[1])
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: kubectl exited and the terminal closed
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        else:
            raise AssertionError(f"kubectl {' '.join(args)} did not finish; output so far: {output!r}")
        assert process.wait(timeout=30) == 0, output
        return output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        os.close(master)


async def test_debug_attach_run_and_exec_tty(cluster: NetnsCluster) -> None:
    c = cluster
    target = pod("target", "echo started; exec sleep 3600")
    reader = pod("reader", "while read line; do echo got:$line; done; echo bye", restart_policy="Never",
                 stdin=True, stdinOnce=True)
    await asyncio.to_thread(create_and_wait, c, target, reader)

    # kubectl debug -it: an ephemeral container sharing the target's PID namespace, attached to on a terminal
    # (its stdin must stay open while it runs: a closed stdin detaches a container without stdinOnce).
    debug = await asyncio.to_thread(
        on_terminal, c, ["debug", "-it", "target", f"--image={IMAGE}", "--target=target", "-c", "dbg", "--",
                         "sh", "-c", "read x; echo got-$x; ps"], [(b"try pressing enter", b"hello\r")], 150)
    assert b"got-hello" in debug, debug
    assert b"    1 root     sleep 3600" in debug, debug  # the target's process, seen from the debugger
    assert b"the ephemeral container will not be restarted" in debug
    status = c.kubectl_json("get", "pod", "target")["status"]
    [debugger] = status["ephemeralContainerStatuses"]
    assert debugger["name"] == "dbg" and debugger["ready"] is False
    assert debugger["containerID"].startswith("containerd://") and debugger["imageID"]

    async def terminated() -> dict | None:
        statuses = c.kubectl_json("get", "pod", "target")["status"]["ephemeralContainerStatuses"]
        return statuses[0]["state"].get("terminated")
    finished = await eventually_async(terminated, timeout=60, interval=1)
    assert finished["exitCode"] == 0 and finished["reason"] == "Completed"
    # Its log has the terminal's echo of what was typed, then what it printed.
    assert c.kubectl("logs", "target", "-c", "dbg").stdout.startswith("hello\ngot-hello\n")
    events = c.kubectl_json("get", "events", "--field-selector", "involvedObject.name=target")["items"]
    assert any(e["reason"] == "Started" and e["involvedObject"].get("fieldPath") == "spec.ephemeralContainers{dbg}"
               for e in events)
    # Never restarted; the pod keeps running.
    status = c.kubectl_json("get", "pod", "target")["status"]
    assert status["phase"] == "Running" and status["ephemeralContainerStatuses"][0]["restartCount"] == 0

    # kubectl debug, non-interactive, then its logs.
    c.kubectl("debug", "target", f"--image={IMAGE}", "--target=target", "-c", "dbg2", "--", "sh", "-c",
              "echo quiet-debugger")

    async def debugger_logs() -> str | None:
        result = c.kubectl("logs", "target", "-c", "dbg2", check=False)
        return result.stdout if result.returncode == 0 and result.stdout else None
    assert await eventually_async(debugger_logs, timeout=90, interval=1) == "quiet-debugger\n"

    # kubectl attach to a running container reading its stdin; stdinOnce ends it when kubectl's input ends.
    attached = await asyncio.to_thread(c.kubectl, "attach", "-i", "reader", "-c", "reader", input="one\ntwo\n",
                                       timeout=90)
    assert "got:one\ngot:two\nbye\n" in attached.stdout, (attached.stdout, attached.stderr)

    # kubectl run -i --rm: prints what the pod wrote, then deletes the pod.
    run = await asyncio.to_thread(c.kubectl, "run", "-i", "--rm", "--restart=Never", "once", f"--image={IMAGE}",
                                  "--", "sh", "-c", "echo out-of-once", input="", timeout=150)
    assert "out-of-once" in run.stdout, (run.stdout, run.stderr)
    assert 'pod "once" deleted' in run.stdout + run.stderr

    async def gone() -> bool:
        return c.kubectl("get", "pod", "once", check=False).returncode != 0
    await eventually_async(gone, timeout=60, interval=1)

    # kubectl exec -it on a terminal: the container sees a TTY and gets what is typed.
    output = await asyncio.to_thread(
        on_terminal, c, ["exec", "-it", "target", "--", "sh", "-c",
                         "test -t 0 && echo is-a-tty; read x; echo typed-$x"], [(b"is-a-tty", b"abc\r")])
    assert b"is-a-tty" in output and b"typed-abc" in output, output


async def test_logs_follow_and_previous(cluster: NetnsCluster) -> None:
    c = cluster
    script = ("n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; echo run-$n; "
              "if [ $n -lt 2 ]; then exit 1; fi; i=0; while true; do echo tick-$i; i=$((i+1)); sleep 1; done")
    crashy = pod("crashy", script, volumeMounts=[{"name": "state", "mountPath": "/state"}])
    crashy["spec"]["volumes"] = [{"name": "state", "emptyDir": {}}]
    c.kubectl("apply", "-f", "-", input=json.dumps(crashy))

    async def restarted_and_running() -> bool:
        statuses = c.kubectl_json("get", "pod", "crashy")["status"].get("containerStatuses") or []
        return bool(statuses) and statuses[0]["restartCount"] >= 1 and "running" in statuses[0]["state"]
    await eventually_async(restarted_and_running, timeout=120, interval=1)
    assert c.kubectl("logs", "crashy", "--previous").stdout == "run-1\n"

    follow = subprocess.Popen([KUBECTL, "--kubeconfig", str(c.kubeconfig), "logs", "-f", "crashy"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "tick-3" not in lines:
            line = await asyncio.wait_for(asyncio.to_thread(follow.stdout.readline),
                                          max(deadline - time.monotonic(), 0.1))
            if not line:
                break
            lines.append(line.rstrip("\n"))
        assert lines[:2] == ["run-2", "tick-0"] and "tick-3" in lines, (lines, follow.poll())
    finally:
        follow.terminate()
        follow.wait(timeout=30)
