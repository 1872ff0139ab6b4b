"""helm 4 (server-side apply by default, release Secrets) against pyk8s: install, upgrade, rollback, uninstall."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import Cluster

HELM = str(Path(sys.executable).parent / "helm")  # put there by scripts/install.sh --test


def helm(cluster: Cluster, *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"KUBECONFIG": str(cluster.kubeconfig), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
           "HELM_CACHE_HOME": str(tmp_path / "cache"), "HELM_CONFIG_HOME": str(tmp_path / "config"),
           "HELM_DATA_HOME": str(tmp_path / "data")}
    result = subprocess.run([HELM, *args], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def test_helm_release_lifecycle(cluster: Cluster, namespace: str, tmp_path: Path):
    chart = tmp_path / "chart"
    helm(cluster, "create", str(chart), tmp_path=tmp_path)
    helm(cluster, "install", "demo", str(chart), "-n", namespace, tmp_path=tmp_path)
    deployment = cluster.kubectl_json("get", "deploy", "demo-chart", "-n", namespace)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert cluster.kubectl_json("get", "svc", "demo-chart", "-n", namespace)["spec"]["clusterIP"].startswith("10.43.")

    helm(cluster, "upgrade", "demo", str(chart), "-n", namespace, "--set", "replicaCount=3", tmp_path=tmp_path)
    assert cluster.kubectl_json("get", "deploy", "demo-chart", "-n", namespace)["spec"]["replicas"] == 3
    helm(cluster, "rollback", "demo", "1", "-n", namespace, tmp_path=tmp_path)
    assert cluster.kubectl_json("get", "deploy", "demo-chart", "-n", namespace)["spec"]["replicas"] == 1
    history = json.loads(helm(cluster, "history", "demo", "-n", namespace, "-o", "json", tmp_path=tmp_path).stdout)
    assert [h["revision"] for h in history] == [1, 2, 3] and history[-1]["status"] == "deployed"
    releases = cluster.kubectl_json("get", "secrets", "-n", namespace, "-l", "owner=helm")["items"]
    assert len(releases) == 3 and all(s["type"] == "helm.sh/release.v1" for s in releases)

    helm(cluster, "uninstall", "demo", "-n", namespace, tmp_path=tmp_path)
    assert cluster.kubectl("get", "deploy", "demo-chart", "-n", namespace, check=False).returncode != 0
    assert cluster.kubectl_json("get", "secrets", "-n", namespace, "-l", "owner=helm")["items"] == []
