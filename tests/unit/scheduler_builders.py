"""Builders for scheduler unit tests (nodes as NodeInfo, pods as dicts), like upstream's testing wrappers."""

from __future__ import annotations

import itertools

from pyk8s.scheduler.cache import NodeInfo

_uid = itertools.count()


def make_node(name: str = "n1", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110", zone: str | None = None,
              labels: dict | None = None, taints: list | None = None, images: list | None = None) -> NodeInfo:
    all_labels = {"kubernetes.io/hostname": name, **({"topology.kubernetes.io/zone": zone} if zone else {}),
                  **(labels or {})}
    status: dict = {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods}}
    if images:
        status["images"] = images
    return NodeInfo(name, {"metadata": {"name": name, "labels": all_labels}, "spec": {"taints": taints or []},
                           "status": status})


def make_pod(name: str = "p", *, namespace: str = "ns", labels: dict | None = None, cpu: str | None = None,
             priority: int | None = None, node: str | None = None, start: str | None = None, **spec) -> dict:
    requests = {"cpu": cpu} if cpu else {}
    s: dict = {"containers": [{"name": "c", "image": spec.pop("image", "app:1"),
                               "resources": {"requests": requests}}], **spec}
    if priority is not None:
        s["priority"] = priority
    if node:
        s["nodeName"] = node
    pod = {"metadata": {"name": name, "namespace": namespace, "uid": f"{name}-{next(_uid)}",
                        "labels": labels or {}}, "spec": s, "status": {}}
    if start:
        pod["status"]["startTime"] = start
    return pod


def place(node: NodeInfo, *pods: dict) -> NodeInfo:
    for p in pods:
        p["spec"]["nodeName"] = node.name
        node.add_pod(p)
    return node


def selector(**labels: str) -> dict:
    return {"matchLabels": labels}


def term(key: str = "kubernetes.io/hostname", **labels: str) -> dict:
    return {"topologyKey": key, "labelSelector": selector(**labels)}


def anti_affinity(*terms: dict, preferred: list | None = None) -> dict:
    out: dict = {}
    if terms:
        out["requiredDuringSchedulingIgnoredDuringExecution"] = list(terms)
    if preferred:
        out["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"podAntiAffinity": out}


def affinity(*terms: dict, preferred: list | None = None) -> dict:
    out: dict = {}
    if terms:
        out["requiredDuringSchedulingIgnoredDuringExecution"] = list(terms)
    if preferred:
        out["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return {"podAffinity": out}
