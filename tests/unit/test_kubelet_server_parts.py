"""Pure parts of the kubelet server and the apiserver's node proxy: authorization attributes, certificate
identities, cgroup usage (v1 and v2 trees), the resource metrics text and the proxy's name/port parsing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyk8s.api.errors import APIError
from pyk8s.apiserver.node_proxy import _kubelet_error, _pick_container, split_scheme_name_port
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.server.auth import certificate_caller, request_attributes
from pyk8s.kubelet.server.server import log_container_id
from pyk8s.kubelet.server.stats import ContainerSample, StatsProvider, Usage, cgroup_usage


@pytest.mark.parametrize(("method", "path", "verb", "subresource"), [
    ("GET", "/stats/summary", "get", "stats"),
    ("GET", "/stats", "get", "stats"),
    ("GET", "/metrics/resource", "get", "metrics"),
    ("GET", "/logs/syslog", "get", "log"),
    ("GET", "/containerLogs/ns/p/c", "get", "proxy"),
    ("POST", "/exec/ns/p/c", "create", "proxy"),
    ("GET", "/statsfoo", "get", "proxy"),
    ("DELETE", "/pods", "delete", "proxy"),
])
def test_request_attributes_follow_upstreams_node_authorizer_attributes(method, path, verb, subresource):
    assert request_attributes(method, path, "n1") == {"verb": verb, "group": "", "version": "v1",
                                                      "resource": "nodes", "subresource": subresource, "name": "n1"}


def test_certificate_caller():
    peer = {"subject": ((("organizationName", "system:masters"),), (("organizationName", "ops"),),
                        (("commonName", "alice"),))}
    caller = certificate_caller(peer)
    assert caller is not None
    assert (caller.name, caller.groups) == ("alice", ("system:masters", "ops", "system:authenticated"))
    assert certificate_caller({"subject": ((("organizationName", "x"),),)}) is None
    assert certificate_caller(None) is None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_usage(tmp_path):
    _write(tmp_path / "memory/pods/c1/memory.usage_in_bytes", "1000\n")
    _write(tmp_path / "memory/pods/c1/memory.stat",
           "cache 5\ntotal_inactive_file 300\ntotal_rss 600\ntotal_pgfault 7\ntotal_pgmajfault 1\n")
    _write(tmp_path / "cpuacct/pods/c1/cpuacct.usage", "123456789\n")
    usage = cgroup_usage("/pods/c1", tmp_path)
    assert usage is not None
    assert (usage.cpu_ns, usage.memory_usage, usage.working_set, usage.rss, usage.page_faults,
            usage.major_page_faults) == (123456789, 1000, 700, 600, 7, 1)
    assert cgroup_usage("/pods/gone", tmp_path) is None


def test_cgroup_v2_usage(tmp_path):
    _write(tmp_path / "pods/c1/cgroup.controllers", "cpu memory\n")
    _write(tmp_path / "pods/c1/cpu.stat", "usage_usec 2500\nuser_usec 2000\n")
    _write(tmp_path / "pods/c1/memory.current", "4096\n")
    _write(tmp_path / "pods/c1/memory.stat", "anon 1024\ninactive_file 96\npgfault 3\npgmajfault 0\n")
    usage = cgroup_usage("pods/c1", tmp_path)
    assert usage is not None
    assert (usage.cpu_ns, usage.memory_usage, usage.working_set, usage.rss) == (2_500_000, 4096, 4000, 1024)


def test_resource_metrics_text(tmp_path, monkeypatch):
    provider = StatsProvider(runtime=None, paths=KubeletPaths(tmp_path), node_name="n1")  # type: ignore[arg-type]
    samples = [ContainerSample("ns", "web", "u1", "app", "c1", 1700000000.0, Usage(1.0, 1_500_000_000, 10, 8)),
               ContainerSample("ns", "web", "u1", "side", "c2", 1700000001.0, Usage(1.0, 500_000_000, 4, 2))]

    async def running_containers():
        return samples

    monkeypatch.setattr(provider, "running_containers", running_containers)
    text = asyncio.run(provider.resource_metrics())
    rows = {line.rsplit(" ", 2)[0]: line.rsplit(" ", 2)[1] for line in text.splitlines()
            if line and not line.startswith("#") and line.count(" ") == 2}
    assert rows['container_cpu_usage_seconds_total{container="app",namespace="ns",pod="web"}'] == "1.5"
    assert rows['container_memory_working_set_bytes{container="side",namespace="ns",pod="web"}'] == "2"
    assert rows['pod_cpu_usage_seconds_total{namespace="ns",pod="web"}'] == "2"
    assert rows['pod_memory_working_set_bytes{namespace="ns",pod="web"}'] == "10"
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    assert text.endswith("resource_scrape_error 0\n")


def _pod(status: dict) -> dict:
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [{"name": "c", **status}]}}


def test_log_container_id_picks_the_instance_like_the_kubelet():
    running = {"containerID": "containerd://now", "state": {"running": {}},
               "lastState": {"terminated": {"containerID": "containerd://before"}}}
    assert log_container_id(_pod(running), "c", previous=False) == "containerd://now"
    assert log_container_id(_pod(running), "c", previous=True) == "containerd://before"
    crashed = {"state": {"waiting": {"reason": "CrashLoopBackOff"}},
               "lastState": {"terminated": {"containerID": "containerd://before"}}}
    assert log_container_id(_pod(crashed), "c", previous=False) == "containerd://before"
    for status, message in (
            ({"state": {"waiting": {"reason": "ErrImagePull"}}},
             'container "c" in pod "p" is waiting to start: image can\'t be pulled'),
            ({"state": {"waiting": {"reason": "ContainerCreating"}}},
             'container "c" in pod "p" is waiting to start: ContainerCreating'),
            ({"state": {}}, 'container "c" in pod "p" is waiting to start - no logs yet')):
        with pytest.raises(ValueError, match="^" + message.replace("(", r"\(") + "$"):
            log_container_id(_pod(status), "c", previous=False)
    with pytest.raises(ValueError, match='previous terminated container "c" in pod "p" not found'):
        log_container_id(_pod({"state": {"running": {}}}), "c", previous=True)
    with pytest.raises(ValueError, match='container "x" in pod "p" is not available'):
        log_container_id(_pod(running), "x", previous=False)


def test_split_scheme_name_port():
    assert split_scheme_name_port("web") == ("", "web", "")
    assert split_scheme_name_port("web:8080") == ("", "web", "8080")
    assert split_scheme_name_port("https:web:8443") == ("https", "web", "8443")
    assert split_scheme_name_port("ftp:web:21") is None
    assert split_scheme_name_port(":80") is None
    assert split_scheme_name_port("a:b:c:d") is None


def test_pick_container_errors():
    pod = {"spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "init"}]}}
    assert _pick_container(pod, "p", "init") == "init"
    with pytest.raises(APIError) as info:
        _pick_container(pod, "p", "")
    assert (info.value.code, info.value.message) == (
        400, "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: "
             "[init]")
    assert _pick_container({"spec": {"containers": [{"name": "only"}]}}, "p", "") == "only"


def test_kubelet_errors_become_statuses_like_upstreams_response_checker():
    bad = _kubelet_error(400, b'container "c" in pod "p" is waiting to start: ContainerCreating\n', "pods/log", "p")
    assert (bad.code, bad.reason, bad.message) == (
        400, "BadRequest", 'container "c" in pod "p" is waiting to start: ContainerCreating')
    missing = _kubelet_error(404, b'pod "p" does not exist', "pods/log", "p")
    assert (missing.code, missing.reason) == (404, "NotFound")
    assert missing.message == "the server could not find the requested resource ( pods/log p)"
    assert missing.details["causes"] == [{"reason": "UnexpectedServerResponse", "message": 'pod "p" does not exist'}]
    assert _kubelet_error(500, b"boom", "pods/log", "p").message == "Internal error occurred: boom"
