"""Pod and container specs → CRI configs (pure): sandbox config (metadata, hostname, DNS, port mappings, labels, cgroup
parent, namespaces), container resources (upstream's milliCPUToShares/Quota, OOM score by QoS class), security
context (an ephemeral container's target PID namespace), the managed /etc/hosts file, and $(VAR) expansion of
command and args.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

from ..api import quantity
from ..api.quota import qos_class
from .config import KubeletConfig
from .runtime.cri import pb
from .runtime_state import (
    CONTAINER_NAME_LABEL,
    GRACE_PERIOD_ANNOTATION,
    HASH_ANNOTATION,
    POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
    POD_UID_LABEL,
    RESTART_COUNT_ANNOTATION,
    TERMINATION_MESSAGE_PATH_ANNOTATION,
    TERMINATION_MESSAGE_POLICY_ANNOTATION,
)

MIN_SHARES, MAX_SHARES, SHARES_PER_CPU = 2, 262144, 1024
QUOTA_PERIOD, MIN_QUOTA_PERIOD = 100000, 1000
GUARANTEED_OOM_SCORE_ADJ, BEST_EFFORT_OOM_SCORE_ADJ = -997, 1000
DEFAULT_GRACE_PERIOD = 30
MAX_DNS_SEARCHES = 32
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"


def pod_meta(pod: Mapping) -> tuple[str, str, str]:
    meta = pod.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")


def pod_ref(pod: Mapping) -> str:
    """Upstream's format.Pod: name_namespace(uid)."""
    namespace, name, uid = pod_meta(pod)
    return f"{name}_{namespace}({uid})"


def grace_period(pod: Mapping) -> int:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return DEFAULT_GRACE_PERIOD if value is None else int(value)


def pod_labels(pod: Mapping) -> dict[str, str]:
    namespace, name, uid = pod_meta(pod)
    labels = dict((pod.get("metadata") or {}).get("labels") or {})
    labels.update({POD_NAME_LABEL: name, POD_NAMESPACE_LABEL: namespace, POD_UID_LABEL: uid})
    return labels


# ---- DNS -------------------------------------------------------------------------------------------


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options += fields[1:]
    return servers, searches, options


def _merge_options(base: list[str], extra: list[dict]) -> list[str]:
    merged: dict[str, str] = {}
    for option in base:
        name, sep, value = option.partition(":")
        merged[name] = option
    for option in extra:
        name = option.get("name", "")
        if name:
            merged[name] = f"{name}:{option['value']}" if option.get("value") is not None else name
    return list(merged.values())


def dns_config(pod: Mapping, config: KubeletConfig, host_resolv: str = "") -> pb.DNSConfig:
    """Upstream's GetPodDNS: ClusterFirst → the cluster DNS with <ns>.svc.<domain>, svc.<domain>, <domain> and
    ndots:5; Default (and ClusterFirst on the host network) → the node's resolv.conf; None → dnsConfig only; any
    dnsConfig is merged on top."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_servers, host_searches, host_options = parse_resolv_conf(host_resolv)
    if policy == "ClusterFirst" and spec.get("hostNetwork"):
        policy = "Default"
    if policy == "ClusterFirstWithHostNet":
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and not config.cluster_dns:
        policy = "Default"  # upstream: no cluster DNS configured, fall back to the node's
    if policy == "ClusterFirst":
        domain = config.cluster_domain
        servers = list(config.cluster_dns)
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *host_searches]
        options = ["ndots:5"]
    elif policy == "Default":
        servers, searches, options = host_servers, list(host_searches), list(host_options)
    else:  # None
        servers, searches, options = [], [], []
    extra = spec.get("dnsConfig") or {}
    for server in extra.get("nameservers") or []:
        if server not in servers:
            servers.append(server)
    for search in extra.get("searches") or []:
        if search not in searches:
            searches.append(search)
    options = _merge_options(options, extra.get("options") or [])
    return pb.DNSConfig(servers=servers, searches=searches[:MAX_DNS_SEARCHES], options=options)


# ---- sandbox ---------------------------------------------------------------------------------------


def pod_hostname(pod: Mapping, config: KubeletConfig) -> str:
    spec = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        return config.hostname
    name = spec.get("hostname") or (pod.get("metadata") or {}).get("name", "")
    return name[:63].rstrip("-.")


def port_mappings(pod: Mapping) -> list[pb.PortMapping]:
    mappings = []
    protocols = {"TCP": pb.TCP, "UDP": pb.UDP, "SCTP": pb.SCTP}
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if not port.get("hostPort"):
                continue
            mappings.append(pb.PortMapping(protocol=protocols.get(port.get("protocol") or "TCP", pb.TCP),
                                           container_port=int(port["containerPort"]), host_port=int(port["hostPort"]),
                                           host_ip=port.get("hostIP", "")))
    return mappings


def namespace_options(pod: Mapping) -> pb.NamespaceOption:
    spec = pod.get("spec") or {}
    return pb.NamespaceOption(
        network=pb.NODE if spec.get("hostNetwork") else pb.POD,
        pid=pb.NODE if spec.get("hostPID") else (pb.POD if spec.get("shareProcessNamespace") else pb.CONTAINER),
        ipc=pb.NODE if spec.get("hostIPC") else pb.POD)


def pod_cgroup_parent(pod: Mapping, config: KubeletConfig) -> str:
    return f"{config.cgroup_parent.rstrip('/')}/pod{pod_meta(pod)[2]}"


def sandbox_config(pod: Mapping, attempt: int, config: KubeletConfig, host_resolv: str = "") -> pb.PodSandboxConfig:
    namespace, name, uid = pod_meta(pod)
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    privileged = any((c.get("securityContext") or {}).get("privileged")
                     for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []))
    security = pb.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod), privileged=bool(privileged),
        supplemental_groups=_supplemental_groups(pod_sc))
    if pod_sc.get("runAsUser") is not None:
        security.run_as_user.value = int(pod_sc["runAsUser"])
    if pod_sc.get("runAsGroup") is not None:
        security.run_as_group.value = int(pod_sc["runAsGroup"])
    sysctls = {s["name"]: str(s.get("value", "")) for s in pod_sc.get("sysctls") or [] if s.get("name")}
    annotations = dict((pod.get("metadata") or {}).get("annotations") or {})
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
        # A host-network pod shares the node's UTS namespace: the runtime may not set a hostname for it.
        hostname="" if spec.get("hostNetwork") else pod_hostname(pod, config),
        log_directory=str(config.paths.pod_log_dir(namespace, name, uid)),
        dns_config=dns_config(pod, config, host_resolv),
        port_mappings=port_mappings(pod),
        labels=pod_labels(pod), annotations=annotations,
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=pod_cgroup_parent(pod, config), security_context=security,
                                       sysctls=sysctls))


def _supplemental_groups(pod_sc: Mapping) -> list[int]:
    groups = [int(g) for g in pod_sc.get("supplementalGroups") or []]
    if pod_sc.get("fsGroup") is not None and int(pod_sc["fsGroup"]) not in groups:
        groups.append(int(pod_sc["fsGroup"]))
    return groups


# ---- /etc/hosts --------------------------------------------------------------------------------------


def managed_hosts_file(pod: Mapping, pod_ips: list[str], config: KubeletConfig, host_hosts: str = "") -> str:
    """Upstream's managed /etc/hosts: localhost entries, the pod's IPs with its hostname (and FQDN when it has a
    subdomain), then hostAliases. Host-network pods get the node's file with the aliases appended."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    if spec.get("hostNetwork"):
        lines = [host_hosts.rstrip("\n")] if host_hosts else []
    else:
        lines = ["# Kubernetes-managed hosts file.", "127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost "
                 "ip6-loopback", "fe00::0\tip6-localnet", "fe00::0\tip6-mcastprefix", "fe00::1\tip6-allnodes",
                 "fe00::2\tip6-allrouters"]
        hostname = pod_hostname(pod, config)
        subdomain = spec.get("subdomain")
        for ip in pod_ips:
            if subdomain:
                lines.append(f"{ip}\t{hostname}.{subdomain}.{namespace}.svc.{config.cluster_domain}\t{hostname}")
            else:
                lines.append(f"{ip}\t{hostname}")
    aliases = spec.get("hostAliases") or []
    if aliases:
        lines += ["", "# Entries added by HostAliases."]
        lines += [f"{a.get('ip', '')}\t{chr(9).join(a.get('hostnames') or [])}" for a in aliases]
    return "\n".join(lines) + "\n"


# ---- containers --------------------------------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: defined variables are replaced, $$ escapes a $, anything else stays."""
    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)
    return _VAR.sub(replace, text)


def _quantity(resources: Mapping, kind: str, name: str) -> quantity.Quantity | None:
    value = (resources.get(kind) or {}).get(name)
    return quantity.parse(value) if value is not None else None


def milli_value(q: quantity.Quantity | None) -> int:
    return math.ceil(q.value * 1000) if q is not None else 0


def milli_cpu_to_shares(milli: int) -> int:
    if milli == 0:
        return MIN_SHARES
    return max(MIN_SHARES, min(MAX_SHARES, milli * SHARES_PER_CPU // 1000))


def milli_cpu_to_quota(milli: int, period: int = QUOTA_PERIOD) -> int:
    if milli == 0:
        return 0
    return max(MIN_QUOTA_PERIOD, milli * period // 1000)


def oom_score_adj(pod: Mapping, container: Mapping, memory_capacity: int) -> int:
    """Upstream's GetContainerOOMScoreAdjust."""
    qos = qos_class(dict(pod.get("spec") or {}))
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    request = _quantity(container.get("resources") or {}, "requests", "memory")
    request_bytes = math.ceil(request.value) if request is not None else 0
    score = 1000 - (1000 * request_bytes) // memory_capacity if memory_capacity > 0 else 1000
    if score < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        score = 1000 + GUARANTEED_OOM_SCORE_ADJ
    if score == BEST_EFFORT_OOM_SCORE_ADJ:
        score -= 1
    return score


def container_resources(pod: Mapping, container: Mapping, config: KubeletConfig) -> pb.LinuxContainerResources:
    resources = container.get("resources") or {}
    cpu_request = milli_value(_quantity(resources, "requests", "cpu"))
    cpu_limit = milli_value(_quantity(resources, "limits", "cpu"))
    memory_limit = _quantity(resources, "limits", "memory")
    shares = milli_cpu_to_shares(cpu_limit if cpu_request == 0 and cpu_limit else cpu_request)
    score = oom_score_adj(pod, container, config.memory_capacity)
    if config.restrict_oom_score_adj:
        score = max(score, 0)
    result = pb.LinuxContainerResources(cpu_shares=shares, oom_score_adj=score)
    if cpu_limit:
        result.cpu_quota = milli_cpu_to_quota(cpu_limit)
        result.cpu_period = QUOTA_PERIOD
    if memory_limit is not None and memory_limit.value:
        result.memory_limit_in_bytes = math.ceil(memory_limit.value)
    return result


def effective_security_context(pod: Mapping, container: Mapping) -> dict:
    """The container's securityContext with the pod's user/group settings as defaults (upstream's
    DetermineEffectiveSecurityContext)."""
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    effective = {k: pod_sc[k] for k in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile") if k in pod_sc}
    effective.update(container.get("securityContext") or {})
    return effective


def container_security_context(pod: Mapping, container: Mapping,
                               target_id: str = "") -> pb.LinuxContainerSecurityContext:
    """`target_id`: an ephemeral container's target; it joins that container's PID namespace unless the pod
    shares one already (upstream's namespace option TARGET)."""
    sc = effective_security_context(pod, container)
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    capabilities = sc.get("capabilities") or {}
    result = pb.LinuxContainerSecurityContext(
        capabilities=pb.Capability(add_capabilities=list(capabilities.get("add") or []),
                                   drop_capabilities=list(capabilities.get("drop") or [])),
        privileged=bool(sc.get("privileged")),
        namespace_options=namespace_options(pod),
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        supplemental_groups=_supplemental_groups(pod_sc),
        # upstream's AddNoNewPrivileges: only an explicit allowPrivilegeEscalation: false sets it.
        no_new_privs=sc.get("allowPrivilegeEscalation") is False)
    if target_id and result.namespace_options.pid == pb.CONTAINER:
        result.namespace_options.pid = pb.TARGET
        result.namespace_options.target_id = target_id
    if sc.get("runAsUser") is not None:
        result.run_as_user.value = int(sc["runAsUser"])
    if sc.get("runAsGroup") is not None:
        result.run_as_group.value = int(sc["runAsGroup"])
    return result


def verify_run_as_non_root(pod: Mapping, container: Mapping, image_uid: int | None, image_user: str) -> str | None:
    """Upstream's verifyRunAsNonRoot: the CreateContainerConfigError message, or None when allowed."""
    sc = effective_security_context(pod, container)
    if not sc.get("runAsNonRoot"):
        return None
    name = container.get("name", "")
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            return f"container's runAsUser breaks non-root policy (pod: \"{pod_ref(pod)}\", container: {name})"
        return None
    if image_uid is not None and image_uid == 0:
        return f"container has runAsNonRoot and image will run as root (pod: \"{pod_ref(pod)}\", container: {name})"
    if image_uid is None and image_user and not image_user.isdigit():
        return (f"container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify user is "
                f"non-root (pod: \"{pod_ref(pod)}\", container: {name})")
    if image_uid is None and not image_user:
        return f"container has runAsNonRoot and image will run as root (pod: \"{pod_ref(pod)}\", container: {name})"
    return None


def container_labels(pod: Mapping, container: Mapping) -> dict[str, str]:
    namespace, name, uid = pod_meta(pod)
    return {POD_NAME_LABEL: name, POD_NAMESPACE_LABEL: namespace, POD_UID_LABEL: uid,
            CONTAINER_NAME_LABEL: container.get("name", "")}


def container_annotations(pod: Mapping, container: Mapping, restart_count: int, hash_: str) -> dict[str, str]:
    return {RESTART_COUNT_ANNOTATION: str(restart_count), HASH_ANNOTATION: hash_,
            TERMINATION_MESSAGE_PATH_ANNOTATION: termination_message_path(container),
            TERMINATION_MESSAGE_POLICY_ANNOTATION: container.get("terminationMessagePolicy") or "File",
            GRACE_PERIOD_ANNOTATION: str(grace_period(pod))}


def termination_message_path(container: Mapping) -> str:
    path = container.get("terminationMessagePath")
    return DEFAULT_TERMINATION_MESSAGE_PATH if path is None else path


def mounts_etc_hosts(container: Mapping) -> bool:
    """Whether the container mounts its own /etc/hosts (then the managed one is not mounted)."""
    return any(Path(m.get("mountPath", "")) == Path("/etc/hosts") for m in container.get("volumeMounts") or [])


def container_config(pod: Mapping, container: Mapping, *, image_ref: str, restart_count: int, hash_: str,
                     env: list[tuple[str, str]], mounts: list[pb.Mount], config: KubeletConfig,
                     target_id: str = "") -> pb.ContainerConfig:
    env_map = dict(env)
    command = [expand(c, env_map) for c in container.get("command") or []]
    args = [expand(a, env_map) for a in container.get("args") or []]
    name = container.get("name", "")
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=restart_count),
        image=pb.ImageSpec(image=image_ref, user_specified_image=container.get("image", "")),
        command=command, args=args, working_dir=container.get("workingDir", ""),
        envs=[pb.KeyValue(key=k, value=v) for k, v in env],
        mounts=mounts,
        labels=container_labels(pod, container),
        annotations=container_annotations(pod, container, restart_count, hash_),
        log_path=config.paths.container_log_path(name, restart_count),
        stdin=bool(container.get("stdin")), stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=pb.LinuxContainerConfig(resources=container_resources(pod, container, config),
                                      security_context=container_security_context(pod, container, target_id)))
