"""PodSecurity: each check's upstream text, the level/version selection, namespace labels,
exemptions, warnings for workloads and for namespaces whose enforce level tightens."""

from __future__ import annotations

import pytest

from pyk8s.api.errors import APIError
from pyk8s.apiserver.admission import UPDATE
from pyk8s.apiserver.admission.pod_security import PodSecurity, PodSecurityConfig, namespace_policy
from pyk8s.apiserver.admission.pod_security_checks import checks_for, evaluate, reasons

from test_admission_chain import attrs, cluster, namespace, pod

RESTRICTED_OK = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                 "seccompProfile": {"type": "RuntimeDefault"}}


def _c(name: str = "c", **security) -> dict:
    return {"name": name, "image": "i", "securityContext": {**RESTRICTED_OK, **security}}


def _spec(*containers: dict, **pod_fields) -> dict:
    return {"containers": list(containers) or [_c()], **pod_fields}


@pytest.mark.parametrize(("spec", "meta", "expected"), [
    (_spec(hostNetwork=True, hostPID=True), {}, [("host namespaces", "hostNetwork=true, hostPID=true")]),
    (_spec(_c("a", privileged=True), _c("b", privileged=True)), {},
     [("privileged", 'containers "a", "b" must not set securityContext.privileged=true')]),
    (_spec(_c(capabilities={"add": ["NET_ADMIN", "CHOWN"], "drop": ["ALL"]})), {},
     [("non-default capabilities", 'container "c" must not include "NET_ADMIN" in securityContext.capabilities.add')]),
    (_spec(volumes=[{"name": "h", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}]), {},
     [("hostPath volumes", 'volume "h"')]),
    (_spec({**_c(), "ports": [{"containerPort": 1, "hostPort": 80}, {"containerPort": 2, "hostPort": 81}]}), {},
     [("hostPort", 'container "c" uses hostPorts 80, 81')]),
    (_spec(_c(procMount="Unmasked")), {}, [("procMount", 'container "c" must not set securityContext.procMount to '
                                                         '"Unmasked"')]),
    (_spec(securityContext={"seLinuxOptions": {"type": "spc_t", "user": "u"}}), {},
     [("seLinuxOptions", 'pod set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set')]),
    (_spec(_c(seccompProfile={"type": "Unconfined"})), {},
     [("seccompProfile", 'container "c" must not set securityContext.seccompProfile.type to "Unconfined"')]),
    (_spec(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                        {"name": "net.ipv4.tcp_syncookies", "value": "1"}]}), {},
     [("forbidden sysctls", "kernel.msgmax")]),
    (_spec(), {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
     [("forbidden AppArmor profile", 'container.apparmor.security.beta.kubernetes.io/c="unconfined"')]),
    (_spec(_c(appArmorProfile={"type": "Unconfined"})), {},
     [("forbidden AppArmor profile", 'container "c" must not set securityContext.appArmorProfile.type to '
                                     '"Unconfined"')]),
    (_spec(_c(windowsOptions={"hostProcess": True})), {},
     [("hostProcess", 'container "c" must not set securityContext.windowsOptions.hostProcess=true')]),
])
def test_baseline_checks(spec, meta, expected):
    assert evaluate("baseline", (1, 32), meta, spec) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    (_spec(_c(allowPrivilegeEscalation=None)),
     [("allowPrivilegeEscalation != false",
       'container "c" must set securityContext.allowPrivilegeEscalation=false')]),
    (_spec(_c(capabilities={"add": ["SYS_TIME", "NET_BIND_SERVICE"]})),
     [("unrestricted capabilities", 'container "c" must set securityContext.capabilities.drop=["ALL"]; container '
                                    '"c" must not include "SYS_TIME" in securityContext.capabilities.add')]),
    (_spec(volumes=[{"name": "h", "hostPath": {"path": "/"}}, {"name": "n", "nfs": {"server": "s", "path": "/"}}]),
     [("restricted volume types", 'volumes "h", "n" use restricted volume types "hostPath", "nfs"')]),
    (_spec(_c(runAsNonRoot=None)),
     [("runAsNonRoot != true", 'pod or container "c" must set securityContext.runAsNonRoot=true')]),
    (_spec(_c(runAsNonRoot=None), securityContext={"runAsNonRoot": True}), []),
    (_spec(_c(runAsNonRoot=False)),
     [("runAsNonRoot != true", 'container "c" must not set securityContext.runAsNonRoot=false')]),
    (_spec(_c(runAsUser=0)), [("runAsUser=0", 'container "c" must not set runAsUser=0')]),
    (_spec(_c(seccompProfile=None)),
     [("seccompProfile", 'pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
                         'or "Localhost"')]),
    (_spec(_c(seccompProfile=None), securityContext={"seccompProfile": {"type": "Localhost",
                                                                        "localhostProfile": "p.json"}}), []),
])
def test_restricted_checks(spec, expected):
    for container in spec["containers"]:  # None means "not set" in these tables
        container["securityContext"] = {k: v for k, v in container["securityContext"].items() if v is not None}
    assert evaluate("restricted", (1, 32), {}, spec) == expected


def test_restricted_replaces_the_baseline_checks_it_tightens():
    ids = [c.id for c in checks_for("restricted", (1, 32))]
    assert "capabilities_baseline" not in ids and "hostPathVolumes" not in ids and "seccompProfile_baseline" not in ids
    assert ids.index("windowsHostProcess") < ids.index("allowPrivilegeEscalation")
    assert checks_for("privileged", (1, 32)) == []
    assert "runAsUser" not in [c.id for c in checks_for("restricted", (1, 22))]


def test_messages_list_every_violation_in_order():
    spec = {"containers": [{"name": "c", "image": "i", "securityContext": {"privileged": True}}]}
    assert reasons(evaluate("restricted", (1, 32), {}, spec)) == (
        'privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')


def test_namespace_labels():
    policy, problems = namespace_policy({"pod-security.kubernetes.io/enforce": "baseline",
                                         "pod-security.kubernetes.io/enforce-version": "v1.29",
                                         "pod-security.kubernetes.io/warn": "restricted"},
                                        PodSecurityConfig().defaults)
    assert not problems
    assert (str(policy["enforce"]), str(policy["warn"]), str(policy["audit"])) == (
        "baseline:v1.29", "restricted:latest", "privileged:latest")
    policy, problems = namespace_policy({"pod-security.kubernetes.io/enforce": "strict",
                                         "pod-security.kubernetes.io/warn-version": "1.30"}, {})
    assert str(policy["enforce"]) == "restricted:latest"  # an invalid level enforces the strictest
    assert [p.message() for p in problems] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, '
        "baseline, restricted",
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.30": must be "latest" or of '
        'the form "v1.x"']


def _plugin(labels: dict, config: PodSecurityConfig | None = None, *objects: dict) -> PodSecurity:
    return PodSecurity(cluster(namespace("ns", labels), *objects), config or PodSecurityConfig())


PRIVILEGED = pod("root", containers=[{"name": "c", "image": "i", "securityContext": {"privileged": True}}])


async def test_enforce_refuses_and_warn_warns():
    plugin = _plugin({"pod-security.kubernetes.io/enforce": "baseline"})
    with pytest.raises(APIError) as caught:
        await plugin.validate(attrs(PRIVILEGED))
    assert caught.value.code == 403 and caught.value.message == (
        'pods "root" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set '
        "securityContext.privileged=true)")
    plugin = _plugin({"pod-security.kubernetes.io/warn": "baseline",
                      "pod-security.kubernetes.io/warn-version": "v1.30"})
    request = attrs(PRIVILEGED)
    await plugin.validate(request)
    assert request.warnings == ['would violate PodSecurity "baseline:v1.30": privileged (container "c" must not set '
                                "securityContext.privileged=true)"]


async def test_exemptions_from_a_configuration_file(tmp_path):
    path = tmp_path / "admission.yaml"
    path.write_text("""
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: PodSecurity
  configuration:
    apiVersion: pod-security.admission.config.k8s.io/v1
    kind: PodSecurityConfiguration
    defaults: {enforce: restricted}
    exemptions: {usernames: [admin], runtimeClasses: [kata], namespaces: [tools]}
""")
    config = PodSecurityConfig.load(path)
    plugin = PodSecurity(cluster(namespace("ns"), namespace("tools")), config)
    with pytest.raises(APIError):  # unlabelled namespaces get the configured default: restricted
        await plugin.validate(attrs(PRIVILEGED))

    class Admin:
        name = "admin"

    await plugin.validate(attrs(PRIVILEGED, user=Admin()))
    await plugin.validate(attrs(pod("k", runtimeClassName="kata", containers=PRIVILEGED["spec"]["containers"])))
    await plugin.validate(attrs(pod("t", ns="tools", containers=PRIVILEGED["spec"]["containers"])))


async def test_workload_templates_are_warned_not_enforced():
    plugin = _plugin({"pod-security.kubernetes.io/enforce": "restricted",
                      "pod-security.kubernetes.io/warn": "baseline"})
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "ns"},
                  "spec": {"template": {"metadata": {}, "spec": PRIVILEGED["spec"]}}}
    request = attrs(deployment)
    assert plugin.handles(request)
    await plugin.validate(request)
    assert request.warnings == ['would violate PodSecurity "baseline:latest": privileged (container "c" must not set '
                                "securityContext.privileged=true)"]
    unchanged = attrs(deployment, UPDATE, old=deployment)
    await plugin.validate(unchanged)
    assert unchanged.warnings == []


async def test_insignificant_pod_updates_are_not_checked():
    plugin = _plugin({"pod-security.kubernetes.io/enforce": "restricted"})
    labelled = {**PRIVILEGED, "metadata": {**PRIVILEGED["metadata"], "labels": {"a": "b"}}}
    await plugin.validate(attrs(labelled, UPDATE, old=PRIVILEGED))
    new_image = {**PRIVILEGED, "spec": {"containers": [{**PRIVILEGED["spec"]["containers"][0], "image": "j"}]}}
    with pytest.raises(APIError):
        await plugin.validate(attrs(new_image, UPDATE, old=PRIVILEGED))


async def test_tightening_a_namespace_warns_about_existing_pods():
    running = [pod(f"p{i}", containers=PRIVILEGED["spec"]["containers"]) for i in range(3)]
    plugin = _plugin({}, None, *running)
    old = namespace("ns")
    new = namespace("ns", {"pod-security.kubernetes.io/enforce": "baseline"})
    request = attrs(new, UPDATE, old=old)
    await plugin.validate(request)
    assert request.warnings == [
        'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
        'p0 (and 2 other pods): privileged (container "c" must not set securityContext.privileged=true)']
    bad = namespace("ns", {"pod-security.kubernetes.io/audit": "everything"})
    with pytest.raises(APIError) as caught:
        await plugin.validate(attrs(bad, UPDATE, old=old))
    assert caught.value.code == 422
