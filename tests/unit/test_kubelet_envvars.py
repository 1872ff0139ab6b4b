"""Container environments: $(VAR) expansion, envFrom, every valueFrom and service link variables."""

from __future__ import annotations

import pytest

from pyk8s.client import APIStatusError
from pyk8s.kubelet.envvars import EnvVarError, container_env, select_services, service_env_vars
from pyk8s.kubelet.expansion import expand, mapping_for


@pytest.mark.parametrize(("text", "expected"), [
    ("$(A)", "a"),
    ("x-$(A)-y", "x-a-y"),
    ("$$(A)", "$(A)"),  # escaped
    ("$$$(A)", "$a"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),  # kept verbatim
    ("$(A", "$(A"),  # unclosed
    ("$A", "$A"),
    ("100$", "100$"),
    ("$()", "$()"),
    ("$(A)$(B)", "a$(A)"),  # no recursive expansion
    ("a$$$$b", "a$$b"),
])
def test_expansion(text: str, expected: str) -> None:
    assert expand(text, mapping_for({"A": "a", "B": "$(A)"})) == expected


def test_expansion_looks_in_contexts_in_order() -> None:
    assert expand("$(X)", mapping_for({"X": "first"}, {"X": "second", "Y": "y"})) == "first"
    assert expand("$(Y)", mapping_for({"X": "first"}, {"X": "second", "Y": "y"})) == "y"


class FakeAPI:
    """Answers get/list from a dict of objects keyed by (plural, namespace, name); 404 otherwise."""

    def __init__(self, objects: dict[tuple[str, str, str], dict]) -> None:
        self.objects = objects
        self.calls: list[tuple] = []

    async def get(self, plural, name, namespace=None):
        self.calls.append(("get", plural, namespace, name))
        try:
            return self.objects[(plural, namespace or "", name)]
        except KeyError:
            raise APIStatusError({"code": 404, "reason": "NotFound",
                                  "message": f'{plural} "{name}" not found'}) from None

    async def list(self, plural, namespace=None):
        self.calls.append(("list", plural, namespace))
        return {"items": [obj for (p, ns, _), obj in self.objects.items() if p == plural and ns == namespace]}


def _service(name: str, namespace: str, ip: str, ports: list[dict]) -> dict:
    return {"metadata": {"name": name, "namespace": namespace}, "spec": {"clusterIP": ip, "ports": ports}}


OBJECTS = {
    ("configmaps", "shop", "settings"): {"data": {"MODE": "fast", "LEVEL": "3", "bad key": "x", "1ST": "y"},
                                         "binaryData": {"BIN": "AAE="}},
    ("secrets", "shop", "creds"): {"data": {"PASSWORD": "czNjcjN0", "USER": "YWRtaW4="}},
    ("nodes", "", "n1"): {"status": {"allocatable": {"cpu": "4", "memory": "8Gi", "ephemeral-storage": "10Gi"}}},
    ("services", "default", "kubernetes"): _service("kubernetes", "default", "10.43.0.1",
                                                    [{"name": "https", "port": 443, "protocol": "TCP"}]),
    ("services", "shop", "redis-primary"): _service("redis-primary", "shop", "10.43.0.20",
                                                    [{"port": 6379}, {"name": "metrics", "port": 9121,
                                                                      "protocol": "TCP"}]),
    ("services", "shop", "headless"): _service("headless", "shop", "None", [{"port": 80}]),
}


def _pod(containers: list[dict], **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "labels": {"app": "web"},
                         "annotations": {"team": "blue"}},
            "spec": {"nodeName": "n1", "serviceAccountName": "robot", "containers": containers, **spec},
            "status": {"podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}],
                       "hostIP": "192.168.1.2", "hostIPs": [{"ip": "192.168.1.2"}]}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def event(self, obj, type, reason, message, **_):
        self.events.append((type, reason, message))


async def test_env_from_env_and_value_from() -> None:
    container = {
        "name": "app",
        "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "500m"}},
        "envFrom": [{"configMapRef": {"name": "settings"}}, {"prefix": "DB_", "secretRef": {"name": "creds"}}],
        "env": [
            {"name": "GREETING", "value": "mode=$(MODE) user=$(DB_USER) $$(MODE) $(NOPE)"},
            {"name": "MODE", "value": "slow"},  # overrides the envFrom value, keeps its place
            {"name": "EMPTY"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "TEAM", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['team']"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "HOST_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},  # node's: 4
            {"name": "CPU_REQ_M", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "LEVEL_COPY", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "nope", "optional": True}}},
            {"name": "OPT2", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}},
            {"name": "SVC", "value": "$(REDIS_PRIMARY_SERVICE_HOST):$(REDIS_PRIMARY_SERVICE_PORT)"},
        ],
    }
    recorder = Recorder()
    api = FakeAPI(OBJECTS)
    env = await container_env(api, _pod([container]), container, recorder=recorder)  # type: ignore[arg-type]
    values = dict(env)
    assert len(values) == len(env)
    assert values["MODE"] == "slow" and values["LEVEL"] == "3"
    assert "BIN" not in values  # envFrom takes a ConfigMap's data only
    assert values["DB_PASSWORD"] == "s3cr3t" and values["DB_USER"] == "admin"
    assert values["GREETING"] == "mode=fast user=admin $(MODE) $(NOPE)"
    assert values["EMPTY"] == ""
    assert [values[k] for k in ("POD", "NS", "UID", "APP", "TEAM", "NODE", "SA")] == \
        ["web", "shop", "u-1", "web", "blue", "n1", "robot"]
    assert [values[k] for k in ("HOST_IP", "HOST_IPS", "POD_IP", "POD_IPS")] == \
        ["192.168.1.2", "192.168.1.2", "10.42.0.5", "10.42.0.5,fd00::5"]
    assert [values[k] for k in ("MEM_MI", "CPU_LIMIT", "CPU_REQ_M")] == ["128", "4", "500"]
    assert values["LEVEL_COPY"] == "3" and values["PW"] == "s3cr3t"
    assert "OPT" not in values and "OPT2" not in values
    assert values["SVC"] == "10.43.0.20:6379"
    # 1ST is a valid name under 1.32's relaxed rules; "bad key" has no '=' either, so only '=' would be refused.
    assert recorder.events == []
    # Definition order: envFrom keys first, then env, then the service variables.
    names = [name for name, _ in env]
    assert names.index("MODE") < names.index("GREETING") < names.index("KUBERNETES_SERVICE_HOST")


async def test_invalid_env_from_keys_are_skipped_with_an_event() -> None:
    objects = {("configmaps", "shop", "odd"): {"data": {"A=B": "1", "OK": "2", "": "3"}}}
    container = {"name": "app", "envFrom": [{"configMapRef": {"name": "odd"}}]}
    recorder = Recorder()
    env = await container_env(FakeAPI(objects), _pod([container]), container, service_env=False,  # type: ignore
                              recorder=recorder)
    assert env == [("OK", "2")]
    assert recorder.events == [("Warning", "InvalidEnvironmentVariableNames",
                                "Keys [, A=B] from the EnvFrom configMap shop/odd were skipped since they are "
                                "considered invalid environment variable names.")]


@pytest.mark.parametrize(("container", "message"), [
    ({"envFrom": [{"configMapRef": {"name": "gone"}}]}, 'configmap "gone" not found'),
    ({"envFrom": [{"secretRef": {"name": "gone"}}]}, 'secret "gone" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]},
     'configmap "gone" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]},
     "couldn't find key k in ConfigMap shop/settings"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "k"}}}]},
     "couldn't find key k in Secret shop/creds"),
    ({"env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}]},
     "unsupported fieldPath: status.phase"),
])
async def test_env_errors(container: dict, message: str) -> None:
    container = {"name": "app", **container}
    with pytest.raises(EnvVarError) as failed:
        await container_env(FakeAPI(OBJECTS), _pod([container]), container, service_env=False)  # type: ignore
    assert failed.value.message == message


async def test_host_ips_fall_back_to_the_node_addresses() -> None:
    objects = dict(OBJECTS)
    objects[("nodes", "", "n1")] = {"status": {"addresses": [
        {"type": "Hostname", "address": "n1"}, {"type": "ExternalIP", "address": "203.0.113.9"},
        {"type": "InternalIP", "address": "192.168.1.7"}, {"type": "InternalIP", "address": "192.168.1.8"},
        {"type": "InternalIP", "address": "fd00::7"}]}}
    container = {"name": "app", "env": [{"name": "H", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIPs"}}}]}
    pod = _pod([container])
    pod["status"] = {}
    env = await container_env(FakeAPI(objects), pod, container, service_env=False)  # type: ignore[arg-type]
    assert env == [("H", "192.168.1.7,fd00::7")]


async def test_optional_env_from_may_be_missing_and_ips_can_be_passed() -> None:
    container = {"name": "app", "envFrom": [{"configMapRef": {"name": "gone", "optional": True}}],
                 "env": [{"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]}
    pod = _pod([container])
    pod["status"] = {}
    env = await container_env(FakeAPI(OBJECTS), pod, container, service_env=False,  # type: ignore[arg-type]
                              pod_ips=["10.42.0.9"])
    assert env == [("IP", "10.42.0.9")]


def test_service_link_variables() -> None:
    services = [OBJECTS[("services", "shop", "redis-primary")], OBJECTS[("services", "default", "kubernetes")]]
    assert service_env_vars(select_services(services, "shop", True)) == [
        ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
        ("KUBERNETES_SERVICE_PORT", "443"),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ("KUBERNETES_PORT", "tcp://10.43.0.1:443"),
        ("KUBERNETES_PORT_443_TCP", "tcp://10.43.0.1:443"),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
        ("KUBERNETES_PORT_443_TCP_PORT", "443"),
        ("KUBERNETES_PORT_443_TCP_ADDR", "10.43.0.1"),
        ("REDIS_PRIMARY_SERVICE_HOST", "10.43.0.20"),
        ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
        ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
        ("REDIS_PRIMARY_PORT", "tcp://10.43.0.20:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.43.0.20:6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
        ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
        ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.43.0.20"),
        ("REDIS_PRIMARY_PORT_9121_TCP", "tcp://10.43.0.20:9121"),
        ("REDIS_PRIMARY_PORT_9121_TCP_PROTO", "tcp"),
        ("REDIS_PRIMARY_PORT_9121_TCP_PORT", "9121"),
        ("REDIS_PRIMARY_PORT_9121_TCP_ADDR", "10.43.0.20"),
    ]
    ipv6 = _service("dns", "shop", "fd00::a", [{"port": 53, "protocol": "UDP"}])
    assert ("DNS_PORT", "udp://[fd00::a]:53") in service_env_vars([ipv6])


async def test_enable_service_links_false_keeps_only_the_master_service() -> None:
    container = {"name": "app"}
    pod = _pod([container], enableServiceLinks=False)
    names = {name for name, _ in await container_env(FakeAPI(OBJECTS), pod, container)}  # type: ignore[arg-type]
    assert "KUBERNETES_SERVICE_HOST" in names
    assert not any(name.startswith("REDIS") or name.startswith("HEADLESS") for name in names)
    linked = {name for name, _ in await container_env(FakeAPI(OBJECTS), _pod([container]), container)}  # type: ignore
    assert "REDIS_PRIMARY_SERVICE_HOST" in linked and not any(n.startswith("HEADLESS") for n in linked)


async def test_pod_defined_variable_wins_over_service_variable() -> None:
    container = {"name": "app", "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "mine"}]}
    env = await container_env(FakeAPI(OBJECTS), _pod([container]), container,  # type: ignore[arg-type]
                              services=list(OBJECTS[k] for k in OBJECTS if k[0] == "services"))
    assert [v for n, v in env if n == "KUBERNETES_SERVICE_HOST"] == ["mine"]
