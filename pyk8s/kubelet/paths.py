"""Where a real node keeps its files, the same tree upstream's kubelet uses under --root-dir and /var/log/pods.

Everything lives under the agent's data dir so one machine can hold several test nodes and nothing
is left outside it:

    <data-dir>/kubelet/pods/<uid>/volumes/<plugin~name>/<volume>   volume contents (kubernetes.io~configmap, ...)
    <data-dir>/kubelet/pods/<uid>/etc-hosts                         the pod's /etc/hosts
    <data-dir>/kubelet/pods/<uid>/containers/<container>/<n>        termination-message files
    <data-dir>/kubelet/pki/                                         the kubelet's serving certificate
    <data-dir>/logs/pods/<namespace>_<pod>_<uid>/<container>/<restartCount>.log   CRI container logs
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class KubeletPaths:
    data_dir: Path

    @property
    def root(self) -> Path:
        return self.data_dir / "kubelet"

    @property
    def pods(self) -> Path:
        return self.root / "pods"

    def pod_dir(self, pod_uid: str) -> Path:
        return self.pods / pod_uid

    def pod_volumes_dir(self, pod_uid: str) -> Path:
        return self.pod_dir(pod_uid) / "volumes"

    def volume_dir(self, pod_uid: str, plugin: str, volume: str) -> Path:
        """plugin as upstream spells it on disk, e.g. "kubernetes.io~configmap"."""
        return self.pod_volumes_dir(pod_uid) / plugin / volume

    def etc_hosts(self, pod_uid: str) -> Path:
        return self.pod_dir(pod_uid) / "etc-hosts"

    def termination_message_dir(self, pod_uid: str, container: str) -> Path:
        return self.pod_dir(pod_uid) / "containers" / container

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def pod_logs(self) -> Path:
        return self.data_dir / "logs" / "pods"

    def pod_log_dir(self, namespace: str, name: str, uid: str) -> Path:
        """A sandbox's CRI log_directory; containers log to `<container>/<restartCount>.log` under it."""
        return self.pod_logs / f"{namespace}_{name}_{uid}"

    @staticmethod
    def container_log_path(container: str, restart_count: int) -> str:
        """ContainerConfig.log_path, relative to the sandbox's log directory."""
        return f"{container}/{restart_count}.log"
