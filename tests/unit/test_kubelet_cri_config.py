"""Pod → CRI configs (pure): DNS, /etc/hosts, sandbox, resources, OOM scores, security context, $(VAR)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyk8s.kubelet import cri_config
from pyk8s.kubelet.config import KubeletConfig
from pyk8s.kubelet.images import default_pull_policy, go_duration
from pyk8s.kubelet.paths import KubeletPaths
from pyk8s.kubelet.runtime.cri import pb

HOST_RESOLV = "nameserver 192.0.2.53\nsearch corp.example\noptions timeout:2\n"
GIB = 1024**3


def config(**overrides) -> KubeletConfig:
    return KubeletConfig(node_name="n1", paths=KubeletPaths(Path("/data")), hostname="node-1",
                         memory_capacity=4 * GIB, **overrides)


def make_pod(**spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"},
                         "annotations": {"note": "x"}},
            "spec": {"containers": [{"name": "app", "image": "busybox"}], **spec}}


def test_cluster_first_dns() -> None:
    dns = cri_config.dns_config(make_pod(), config(), HOST_RESOLV)
    assert list(dns.servers) == ["10.43.0.10"]
    assert list(dns.searches) == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"]
    assert list(dns.options) == ["ndots:5"]


@pytest.mark.parametrize(("spec", "servers"), [
    ({"dnsPolicy": "Default"}, ["192.0.2.53"]),
    ({"hostNetwork": True}, ["192.0.2.53"]),  # ClusterFirst on the host network falls back to the node's
    ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, ["10.43.0.10"]),
])
def test_dns_policies(spec: dict, servers: list[str]) -> None:
    assert list(cri_config.dns_config(make_pod(**spec), config(), HOST_RESOLV).servers) == servers


def test_dns_none_with_dns_config_and_option_merge() -> None:
    pod = make_pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                                "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    dns = cri_config.dns_config(pod, config(), HOST_RESOLV)
    assert (list(dns.servers), list(dns.searches), list(dns.options)) == (["1.1.1.1"], ["a.example"],
                                                                          ["ndots:2", "edns0"])
    merged = cri_config.dns_config(make_pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}]}), config())
    assert list(merged.options) == ["ndots:1"]


def test_sandbox_config() -> None:
    pod = make_pod(containers=[{"name": "app", "image": "b", "ports": [
        {"containerPort": 80, "hostPort": 8080}, {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
        {"containerPort": 9000}]}], securityContext={"runAsUser": 1000, "fsGroup": 2000,
                                                     "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}]})
    sandbox = cri_config.sandbox_config(pod, 2, config(cgroup_parent="/kubepods"))
    assert (sandbox.metadata.name, sandbox.metadata.uid, sandbox.metadata.namespace, sandbox.metadata.attempt) == (
        "web", "u-1", "shop", 2)
    assert sandbox.hostname == "web"
    assert sandbox.log_directory == "/data/logs/pods/shop_web_u-1"
    assert dict(sandbox.labels) == {"app": "web", "io.kubernetes.pod.name": "web",
                                    "io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.uid": "u-1"}
    assert dict(sandbox.annotations) == {"note": "x"}
    assert sandbox.linux.cgroup_parent == "/kubepods/podu-1"
    assert [(m.protocol, m.container_port, m.host_port) for m in sandbox.port_mappings] == [
        (pb.TCP, 80, 8080), (pb.UDP, 53, 5353)]
    security = sandbox.linux.security_context
    assert security.run_as_user.value == 1000 and list(security.supplemental_groups) == [2000]
    assert security.namespace_options.network == pb.POD and security.namespace_options.pid == pb.CONTAINER
    assert dict(sandbox.linux.sysctls) == {"net.core.somaxconn": "1024"}
    host = cri_config.sandbox_config(make_pod(hostNetwork=True, hostPID=True), 0, config())
    assert host.hostname == ""  # the node's own (shared UTS namespace)
    assert host.linux.security_context.namespace_options.network == pb.NODE
    assert host.linux.security_context.namespace_options.pid == pb.NODE


def test_managed_hosts_file() -> None:
    pod = make_pod(hostname="db-0", subdomain="db", hostAliases=[{"ip": "10.1.1.1", "hostnames": ["a", "b"]}])
    content = cri_config.managed_hosts_file(pod, ["10.88.0.9"], config())
    lines = content.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file." and "127.0.0.1\tlocalhost" in lines
    assert "10.88.0.9\tdb-0.db.shop.svc.cluster.local\tdb-0" in lines
    assert lines[-2:] == ["# Entries added by HostAliases.", "10.1.1.1\ta\tb"]
    host = cri_config.managed_hosts_file(make_pod(hostNetwork=True), [], config(), "127.0.0.1 localhost\n")
    assert host == "127.0.0.1 localhost\n"


@pytest.mark.parametrize(("milli", "shares", "quota"), [(0, 2, 0), (1, 2, 1000), (250, 256, 25000),
                                                        (1000, 1024, 100000), (300000, 262144, 30000000)])
def test_cpu_arithmetic(milli: int, shares: int, quota: int) -> None:
    assert cri_config.milli_cpu_to_shares(milli) == shares
    assert cri_config.milli_cpu_to_quota(milli) == quota


def test_container_resources_and_oom_scores() -> None:
    guaranteed = make_pod(containers=[{"name": "app", "image": "b", "resources": {
        "limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": "500m", "memory": "64Mi"}}}])
    resources = cri_config.container_resources(guaranteed, guaranteed["spec"]["containers"][0], config())
    assert (resources.cpu_shares, resources.cpu_quota, resources.cpu_period) == (512, 50000, 100000)
    assert resources.memory_limit_in_bytes == 64 * 1024**2
    assert resources.oom_score_adj == 0  # -997 raised: the runtime cannot lower scores here
    unrestricted = cri_config.container_resources(guaranteed, guaranteed["spec"]["containers"][0],
                                                  config(restrict_oom_score_adj=False))
    assert unrestricted.oom_score_adj == -997
    best_effort = make_pod()
    assert cri_config.container_resources(best_effort, best_effort["spec"]["containers"][0],
                                          config()).oom_score_adj == 1000
    burstable = make_pod(containers=[{"name": "app", "image": "b", "resources": {"requests": {"memory": "1Gi"}}}])
    resources = cri_config.container_resources(burstable, burstable["spec"]["containers"][0], config())
    assert resources.oom_score_adj == 750 and resources.cpu_shares == 2 and resources.cpu_quota == 0
    tiny = make_pod(containers=[{"name": "app", "image": "b", "resources": {"requests": {"memory": "1"}}}])
    assert cri_config.oom_score_adj(tiny, tiny["spec"]["containers"][0], 4 * GIB) == 999
    huge = make_pod(containers=[{"name": "app", "image": "b", "resources": {"requests": {"memory": "8Gi"}}}])
    assert cri_config.oom_score_adj(huge, huge["spec"]["containers"][0], 4 * GIB) == 3


def test_security_context() -> None:
    pod = make_pod(securityContext={"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000]})
    container = {"name": "app", "image": "b", "securityContext": {
        "runAsUser": 2000, "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    sc = cri_config.container_security_context(pod, container)
    assert (sc.run_as_user.value, sc.run_as_group.value) == (2000, 3000)
    assert sc.readonly_rootfs and sc.no_new_privs and not sc.privileged
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert list(sc.capabilities.drop_capabilities) == ["ALL"]
    assert list(sc.supplemental_groups) == [4000]
    default = cri_config.container_security_context(make_pod(), {"name": "app"})
    assert not default.no_new_privs and not default.HasField("run_as_user")
    privileged = cri_config.container_security_context(make_pod(), {"securityContext": {"privileged": True}})
    assert privileged.privileged


def test_run_as_non_root() -> None:
    pod = make_pod(securityContext={"runAsNonRoot": True})
    container = {"name": "app"}
    assert "image will run as root" in cri_config.verify_run_as_non_root(pod, container, 0, "")
    assert cri_config.verify_run_as_non_root(pod, container, 1000, "") is None
    assert "breaks non-root policy" in cri_config.verify_run_as_non_root(
        pod, {"name": "app", "securityContext": {"runAsUser": 0}}, 1000, "")
    assert cri_config.verify_run_as_non_root(make_pod(), container, 0, "") is None


def test_expansion_of_command_and_args() -> None:
    env = {"NAME": "world", "EMPTY": ""}
    assert cri_config.expand("hello $(NAME)", env) == "hello world"
    assert cri_config.expand("$$(NAME) $(MISSING) $(EMPTY)x", env) == "$(NAME) $(MISSING) x"


def test_container_config() -> None:
    pod = make_pod(terminationGracePeriodSeconds=5)
    container = {"name": "app", "image": "busybox", "command": ["echo", "$(A)"], "args": ["$(B)"],
                 "workingDir": "/w", "tty": True}
    cfg = cri_config.container_config(pod, container, image_ref="sha256:1", restart_count=3, hash_="h",
                                      env=[("A", "1"), ("B", "2")], mounts=[], config=config())
    assert (cfg.metadata.name, cfg.metadata.attempt) == ("app", 3)
    assert (cfg.image.image, cfg.image.user_specified_image) == ("sha256:1", "busybox")
    assert (list(cfg.command), list(cfg.args), cfg.working_dir, cfg.tty) == (["echo", "1"], ["2"], "/w", True)
    assert cfg.log_path == "app/3.log"
    assert dict(cfg.labels)["io.kubernetes.container.name"] == "app"
    assert dict(cfg.annotations) == {
        "io.kubernetes.container.restartCount": "3", "io.kubernetes.container.hash": "h",
        "io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
        "io.kubernetes.container.terminationMessagePolicy": "File", "io.kubernetes.pod.terminationGracePeriod": "5"}


def test_pull_policy_defaults_and_durations() -> None:
    assert default_pull_policy("busybox") == "Always"
    assert default_pull_policy("busybox:latest") == "Always"
    assert default_pull_policy("busybox:1.35") == "IfNotPresent"
    assert default_pull_policy("reg:5000/busybox") == "Always"
    assert default_pull_policy("busybox@sha256:abc") == "IfNotPresent"
    assert go_duration(0.5234) == "523ms" and go_duration(1.25) == "1.25s" and go_duration(62.5) == "1m2.5s"
