"""`pyk8s server --simulated-nodes N`: the all-in-one cluster with its supervised components."""

from __future__ import annotations

import os
import signal
import time

import psutil

from conftest import Cluster, eventually


def test_all_in_one_cluster_runs_pods_and_restarts_dead_components(tmp_path):
    cluster = Cluster(tmp_path, ("--simulated-nodes", "2"))
    cluster.start()
    try:
        deadline = time.monotonic() + 30
        while len(cluster.kubectl_json("get", "nodes")["items"]) < 2:
            assert time.monotonic() < deadline, "simulated nodes did not register"
            time.sleep(0.3)
        cluster.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s")
        # node IPAM (in the controller-manager) gives each node its podCIDR soon after it registers
        nodes = eventually(lambda: (items := cluster.kubectl_json("get", "nodes")["items"]) and len(items) == 2
                           and all(n["spec"].get("podCIDR") for n in items) and items, timeout=60)
        cluster.kubectl("create", "namespace", "app")
        cluster.kubectl("run", "web", "--image=nginx:1.27", "-n", "app")
        cluster.kubectl("wait", "--for=condition=Ready", "pod/web", "-n", "app", "--timeout=60s")
        pod = cluster.kubectl_json("get", "pod", "web", "-n", "app")
        assert pod["status"]["phase"] == "Running" and pod["spec"]["nodeName"] in {n["metadata"]["name"] for n in nodes}
        events = cluster.kubectl_json("get", "events", "-n", "app")["items"]
        assert any(e["reason"] == "Scheduled" for e in events)

        # A component that dies is started again by the server (found among the server's own children).
        children = psutil.Process(cluster.process.pid).children()
        scheduler = [c for c in children if "scheduler" in c.cmdline()]
        assert len(scheduler) == 1, [c.cmdline() for c in children]
        os.kill(scheduler[0].pid, signal.SIGKILL)
        cluster.kubectl("run", "second", "--image=nginx:1.27", "-n", "app")
        cluster.kubectl("wait", "--for=condition=Ready", "pod/second", "-n", "app", "--timeout=60s")

        # Namespace deletion completes through the controller-manager.
        cluster.kubectl("delete", "namespace", "app", "--timeout=90s", timeout=120)
        deadline = time.monotonic() + 30
        while cluster.kubectl("get", "namespace", "app", check=False).returncode == 0:
            assert time.monotonic() < deadline, "namespace app was not removed"
            time.sleep(0.5)
    finally:
        cluster.stop()
