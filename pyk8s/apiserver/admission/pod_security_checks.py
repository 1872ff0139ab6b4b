"""The Pod Security Standards checks (upstream k8s.io/pod-security-admission/policy), v1.32.

Each check looks at a pod's metadata and spec and returns None (allowed) or a
(reason, detail) pair whose text is upstream's. `evaluate` runs the checks of a level and
version in upstream's order: baseline checks, then restricted ones, each sorted by check ID,
with a restricted check replacing the baseline check it tightens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = (1, 32)  # the newest policy version this server knows; "latest" means this

Finding = tuple[str, str] | None
CheckFn = Callable[[dict, dict], Finding]


def containers(spec: dict) -> Iterator[dict]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or []


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: list[str]) -> str:
    return ", ".join(f'"{i}"' for i in items)


def _named(singular: str, plural: str, names: list[str]) -> str:
    return f"{_pluralize(singular, plural, len(names))} {_join_quote(names)}"


def _security(container_or_spec: dict) -> dict:
    return container_or_spec.get("securityContext") or {}


def _is_windows(spec: dict) -> bool:
    return (spec.get("os") or {}).get("name") == "windows"


# ---- baseline ----------------------------------------------------------------------------


def app_armor_profile(meta: dict, spec: dict) -> Finding:
    bad_setters, bad_values = [], set()

    def allowed_type(profile: dict) -> bool:
        return profile.get("type") in ("RuntimeDefault", "Localhost", None)

    profile = _security(spec).get("appArmorProfile")
    if profile is not None and not allowed_type(profile):
        bad_setters.append("pod")
        bad_values.add(profile.get("type", ""))
    bad_containers = []
    for c in containers(spec):
        profile = _security(c).get("appArmorProfile")
        if profile is not None and not allowed_type(profile):
            bad_containers.append(c.get("name", ""))
            bad_values.add(profile.get("type", ""))
    if bad_containers:
        bad_setters.append(_named("container", "containers", bad_containers))
    if bad_setters:
        return (_pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad_values)),
                f"{' and '.join(bad_setters)} must not set securityContext.appArmorProfile.type to "
                f"{_join_quote(sorted(bad_values))}")
    forbidden = []
    for key, value in sorted((meta.get("annotations") or {}).items()):
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
                value in ("", "runtime/default") or value.startswith("localhost/")):
            forbidden.append(f'{key}="{value}"')
    if forbidden:
        return (_pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(forbidden)),
                ", ".join(forbidden))
    return None


_BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline(meta: dict, spec: dict) -> Finding:
    bad_containers, bad_caps = [], set()
    for c in containers(spec):
        added = [cap for cap in (_security(c).get("capabilities") or {}).get("add") or []
                 if cap not in _BASELINE_CAPABILITIES]
        if added:
            bad_containers.append(c.get("name", ""))
            bad_caps.update(added)
    if bad_containers:
        return ("non-default capabilities",
                f"{_named('container', 'containers', bad_containers)} must not include "
                f"{_join_quote(sorted(bad_caps))} in securityContext.capabilities.add")
    return None


def host_namespaces(meta: dict, spec: dict) -> Finding:
    used = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return ("host namespaces", ", ".join(used)) if used else None


def host_path_volumes(meta: dict, spec: dict) -> Finding:
    names = [v.get("name", "") for v in spec.get("volumes") or [] if v.get("hostPath") is not None]
    return ("hostPath volumes", _named("volume", "volumes", names)) if names else None


def host_ports(meta: dict, spec: dict) -> Finding:
    bad_containers, ports = [], set()
    for c in containers(spec):
        used = [p["hostPort"] for p in c.get("ports") or [] if p.get("hostPort")]
        if used:
            bad_containers.append(c.get("name", ""))
            ports.update(str(p) for p in used)
    if bad_containers:
        return ("hostPort", f"{_named('container', 'containers', bad_containers)} "
                            f"{_pluralize('uses', 'use', len(bad_containers))} "
                            f"{_pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")
    return None


def privileged(meta: dict, spec: dict) -> Finding:
    bad = [c.get("name", "") for c in containers(spec) if _security(c).get("privileged")]
    if bad:
        return ("privileged", f"{_named('container', 'containers', bad)} must not set "
                              "securityContext.privileged=true")
    return None


def proc_mount(meta: dict, spec: dict) -> Finding:
    if spec.get("hostUsers") is False:
        return None  # an unmasked /proc inside a user namespace exposes nothing of the host
    bad, values = [], set()
    for c in containers(spec):
        mount = _security(c).get("procMount")
        if mount not in (None, "", "Default"):
            bad.append(c.get("name", ""))
            values.add(mount)
    if bad:
        return ("procMount", f"{_named('container', 'containers', bad)} must not set securityContext.procMount to "
                             f"{_join_quote(sorted(values))}")
    return None


_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})


def selinux_options(meta: dict, spec: dict) -> Finding:
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(options: dict) -> bool:
        ok = True
        if options.get("type", "") not in _SELINUX_TYPES:
            bad_types.add(options.get("type", ""))
            ok = False
        for key in ("user", "role"):
            if options.get(key):
                flags[key] = True
                ok = False
        return ok

    setters = []
    options = _security(spec).get("seLinuxOptions")
    if options is not None and not valid(options):
        setters.append("pod")
    bad = [c.get("name", "") for c in containers(spec)
           if _security(c).get("seLinuxOptions") is not None and not valid(_security(c)["seLinuxOptions"])]
    if bad:
        setters.append(_named("container", "containers", bad))
    if not setters:
        return None
    data = []
    if bad_types:
        data.append(f"{_pluralize('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
    data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
    return ("seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                              f"{'; '.join(data)}")


def seccomp_profile_baseline(meta: dict, spec: dict) -> Finding:
    setters = []
    if (_security(spec).get("seccompProfile") or {}).get("type") == "Unconfined":
        setters.append("pod")
    bad = [c.get("name", "") for c in containers(spec)
           if (_security(c).get("seccompProfile") or {}).get("type") == "Unconfined"]
    if bad:
        setters.append(_named("container", "containers", bad))
    if setters:
        return ("seccompProfile", f'{" and ".join(setters)} must not set securityContext.seccompProfile.type to '
                                  '"Unconfined"')
    return None


_SAFE_SYSCTLS = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
                           "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
                           "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
                           "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                           "net.ipv4.tcp_keepalive_probes"})


def sysctls(meta: dict, spec: dict) -> Finding:
    bad = [s.get("name", "") for s in _security(spec).get("sysctls") or [] if s.get("name") not in _SAFE_SYSCTLS]
    return ("forbidden sysctls", ", ".join(bad)) if bad else None


def windows_host_process(meta: dict, spec: dict) -> Finding:
    def host_process(context: dict) -> bool:
        return bool((context.get("windowsOptions") or {}).get("hostProcess"))

    bad = [c.get("name", "") for c in containers(spec) if host_process(_security(c))]
    pod = host_process(_security(spec))
    if not bad and not pod:
        return None
    setters = (["pod"] if pod else []) + ([_named("container", "containers", bad)] if bad else [])
    return ("hostProcess", f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true")


# ---- restricted --------------------------------------------------------------------------


def allow_privilege_escalation(meta: dict, spec: dict) -> Finding:
    if _is_windows(spec):
        return None
    bad = [c.get("name", "") for c in containers(spec) if _security(c).get("allowPrivilegeEscalation") is not False]
    if bad:
        return ("allowPrivilegeEscalation != false",
                f"{_named('container', 'containers', bad)} must set securityContext.allowPrivilegeEscalation=false")
    return None


def capabilities_restricted(meta: dict, spec: dict) -> Finding:
    if _is_windows(spec):
        return None
    missing_drop, adding, forbidden_caps = [], [], set()
    for c in containers(spec):
        caps = _security(c).get("capabilities")
        if caps is None:
            missing_drop.append(c.get("name", ""))
            continue
        if "ALL" not in (caps.get("drop") or []):
            missing_drop.append(c.get("name", ""))
        extra = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if extra:
            adding.append(c.get("name", ""))
            forbidden_caps.update(extra)
    details = []
    if missing_drop:
        details.append(f'{_named("container", "containers", missing_drop)} must set '
                       'securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_named('container', 'containers', adding)} must not include "
                       f"{_join_quote(sorted(forbidden_caps))} in securityContext.capabilities.add")
    return ("unrestricted capabilities", "; ".join(details)) if details else None


_ALLOWED_VOLUME_SOURCES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                           "projected", "secret")


def restricted_volumes(meta: dict, spec: dict) -> Finding:
    bad, types = [], set()
    for volume in spec.get("volumes") or []:
        sources = [k for k in volume if k != "name"]
        if any(s in _ALLOWED_VOLUME_SOURCES for s in sources):
            continue
        bad.append(volume.get("name", ""))
        types.add(sources[0] if sources else "unknown")
    if bad:
        return ("restricted volume types", f"{_named('volume', 'volumes', bad)} "
                                           f"{_pluralize('uses', 'use', len(bad))} restricted volume "
                                           f"{_pluralize('type', 'types', len(types))} {_join_quote(sorted(types))}")
    return None


def run_as_non_root(meta: dict, spec: dict) -> Finding:
    setters = []
    pod_value = _security(spec).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit_bad, implicit_bad = [], []
    for c in containers(spec):
        value = _security(c).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit_bad.append(c.get("name", ""))
        elif pod_value is not True:
            implicit_bad.append(c.get("name", ""))
    if explicit_bad:
        setters.append(_named("container", "containers", explicit_bad))
    if setters:
        return ("runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit_bad:
        return ("runAsNonRoot != true", f"pod or {_named('container', 'containers', implicit_bad)} must set "
                                        "securityContext.runAsNonRoot=true")
    return None


def run_as_user(meta: dict, spec: dict) -> Finding:
    setters = ["pod"] if _security(spec).get("runAsUser") == 0 else []
    bad = [c.get("name", "") for c in containers(spec) if _security(c).get("runAsUser") == 0]
    if bad:
        setters.append(_named("container", "containers", bad))
    if setters:
        return ("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")
    return None


def seccomp_profile_restricted(meta: dict, spec: dict) -> Finding:
    if _is_windows(spec):
        return None

    def valid(profile: dict) -> bool:
        return profile.get("type") in ("RuntimeDefault", "Localhost")

    setters, bad_values = [], set()
    pod_profile = _security(spec).get("seccompProfile")
    pod_set = False
    if pod_profile is not None:
        if valid(pod_profile):
            pod_set = True
        else:
            setters.append("pod")
            bad_values.add(pod_profile.get("type", ""))
    explicit_bad, implicit_bad = [], []
    for c in containers(spec):
        profile = _security(c).get("seccompProfile")
        if profile is not None:
            if not valid(profile):
                explicit_bad.append(c.get("name", ""))
                bad_values.add(profile.get("type", ""))
        elif not pod_set:
            implicit_bad.append(c.get("name", ""))
    if explicit_bad:
        setters.append(_named("container", "containers", explicit_bad))
    if setters:
        return ("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                                  f"{_join_quote(sorted(bad_values))}")
    if implicit_bad:
        return ("seccompProfile", f"pod or {_named('container', 'containers', implicit_bad)} must set "
                                  'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
    return None


@dataclass(frozen=True)
class Check:
    id: str
    level: str
    fn: CheckFn
    since: tuple[int, int] = (1, 0)
    overrides: str = ""  # the baseline check this restricted check replaces


CHECKS: tuple[Check, ...] = (
    Check("appArmorProfile", BASELINE, app_armor_profile),
    Check("capabilities_baseline", BASELINE, capabilities_baseline),
    Check("hostNamespaces", BASELINE, host_namespaces),
    Check("hostPathVolumes", BASELINE, host_path_volumes),
    Check("hostPorts", BASELINE, host_ports),
    Check("privileged", BASELINE, privileged),
    Check("procMount", BASELINE, proc_mount),
    Check("seLinuxOptions", BASELINE, selinux_options),
    Check("seccompProfile_baseline", BASELINE, seccomp_profile_baseline, since=(1, 19)),
    Check("sysctls", BASELINE, sysctls),
    Check("windowsHostProcess", BASELINE, windows_host_process),
    Check("allowPrivilegeEscalation", RESTRICTED, allow_privilege_escalation, since=(1, 8)),
    Check("capabilities_restricted", RESTRICTED, capabilities_restricted, since=(1, 22),
          overrides="capabilities_baseline"),
    Check("restrictedVolumes", RESTRICTED, restricted_volumes, overrides="hostPathVolumes"),
    Check("runAsNonRoot", RESTRICTED, run_as_non_root),
    Check("runAsUser", RESTRICTED, run_as_user, since=(1, 23)),
    Check("seccompProfile_restricted", RESTRICTED, seccomp_profile_restricted, since=(1, 19),
          overrides="seccompProfile_baseline"),
)


def checks_for(level: str, version: tuple[int, int]) -> list[Check]:
    if level == PRIVILEGED:
        return []
    wanted = [c for c in CHECKS if c.since <= version and (c.level == BASELINE or level == RESTRICTED)]
    replaced = {c.overrides for c in wanted if c.overrides}
    return [c for c in wanted if c.id not in replaced]


def evaluate(level: str, version: tuple[int, int], meta: dict, spec: dict) -> list[tuple[str, str]]:
    """The failed checks of a pod (metadata, spec) at a level and version, in upstream's order."""
    return [finding for check in checks_for(level, version) if (finding := check.fn(meta, spec)) is not None]


def reasons(findings: list[tuple[str, str]]) -> str:
    """`reason (detail), reason` as upstream's aggregate result prints."""
    return ", ".join(f"{reason} ({detail})" if detail else reason for reason, detail in findings)
