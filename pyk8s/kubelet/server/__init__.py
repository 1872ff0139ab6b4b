"""The kubelet's authenticated HTTPS server (contract 6 of the real-kubelet work)."""

from .server import KUBELET_PORT, KubeletServer

__all__ = ["KUBELET_PORT", "KubeletServer"]
