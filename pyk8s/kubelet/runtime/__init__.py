"""Container runtimes behind the kubelet, in the CRI's shape (sandboxes, containers, images).

Simulated nodes (`pyk8s.kubelet.simulated`) need no runtime: they model container lifecycles
in memory and write pod status directly.
"""
