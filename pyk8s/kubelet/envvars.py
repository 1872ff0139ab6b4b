"""A container's environment, as upstream's kubelet builds it (pkg/kubelet/kubelet_pods.go
makeEnvironmentVariables, pkg/kubelet/envvars):

1. `envFrom` ConfigMaps and Secrets, in order, each key with the source's prefix; keys that are not valid
   variable names are skipped and reported by one `InvalidEnvironmentVariableNames` Warning event per source.
2. `env`, in order: a literal value with `$(VAR)` expanded against what is defined so far and then the
   service variables; or `valueFrom` a ConfigMap/Secret key, a pod field (fieldRef) or a container resource
   (resourceFieldRef, with the node's allocatable amount standing in for a missing limit).
3. Service link variables (`<SVC>_SERVICE_HOST`, `_SERVICE_PORT`, `_PORT_<port>_<PROTO>...`) for the services
   of the pod's namespace when `enableServiceLinks` is not false, and always for the `kubernetes` service in
   `default`, unless the pod defined the same name itself.

A missing required ConfigMap/Secret or key raises `EnvVarError` with upstream's message; the kubelet reports it
as the container's CreateContainerConfigError.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping

from ..api.validation import is_env_var_name
from ..client import WARNING, APIClient, APIConnectionError, APIStatusError, EventRecorder, is_not_found
from .expansion import expand, mapping_for
from .object_cache import ObjectSource
from .volumes.downward import DownwardAPIError, container_resource_value, extract_field_path
from .volumes.projection import configmap_data, secret_data

MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)
INVALID_ENV_NAMES = "InvalidEnvironmentVariableNames"


class EnvVarError(Exception):
    """The environment cannot be built; `message` is what the container's waiting state shows."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ---- service link variables (pure) ----------------------------------------------------------------------


def _service_ip_set(service: Mapping) -> bool:
    ip = (service.get("spec") or {}).get("clusterIP")
    return bool(ip) and ip != "None"


def select_services(services: Iterable[Mapping], namespace: str, enable_service_links: bool) -> list[Mapping]:
    """The services whose variables a pod gets, sorted by name; a service of the pod's own namespace wins
    over a master service of the same name."""
    chosen: dict[str, Mapping] = {}
    for service in services:
        if not _service_ip_set(service):
            continue
        meta = service.get("metadata") or {}
        name = meta.get("name", "")
        if meta.get("namespace") == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, service)
        elif meta.get("namespace") == namespace and enable_service_links:
            chosen[name] = service
    return [chosen[name] for name in sorted(chosen)]


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def _host_port(ip: str, port: int) -> str:
    try:
        return f"[{ip}]:{port}" if ipaddress.ip_address(ip).version == 6 else f"{ip}:{port}"
    except ValueError:
        return f"{ip}:{port}"


def service_env_vars(services: Iterable[Mapping]) -> list[tuple[str, str]]:
    """Upstream's envvars.FromServices: Kubernetes-style and Docker-link-style variables per service."""
    result: list[tuple[str, str]] = []
    for service in services:
        if not _service_ip_set(service):
            continue
        spec = service.get("spec") or {}
        ports = spec.get("ports") or []
        if not ports:
            continue
        ip = spec["clusterIP"]
        prefix = _env_name((service.get("metadata") or {}).get("name", ""))
        result.append((f"{prefix}_SERVICE_HOST", ip))
        result.append((f"{prefix}_SERVICE_PORT", str(ports[0].get("port"))))
        for port in ports:
            if port.get("name"):
                result.append((f"{prefix}_SERVICE_PORT_{_env_name(port['name'])}", str(port.get("port"))))
        for index, port in enumerate(ports):
            protocol = port.get("protocol") or "TCP"
            url = f"{protocol.lower()}://{_host_port(ip, port.get('port'))}"
            if index == 0:
                result.append((f"{prefix}_PORT", url))  # Docker special-cases the first port
            port_prefix = f"{prefix}_PORT_{port.get('port')}_{protocol.upper()}"
            result += [(port_prefix, url), (f"{port_prefix}_PROTO", protocol.lower()),
                       (f"{port_prefix}_PORT", str(port.get("port"))), (f"{port_prefix}_ADDR", ip)]
    return result


# ---- fieldRef beyond metadata -----------------------------------------------------------------------------


def _ips(entries: list | None, single: str | None) -> list[str]:
    ips = [entry.get("ip") for entry in entries or [] if entry.get("ip")]
    return ips or ([single] if single else [])


def pod_field_value(pod: Mapping, field_path: str, pod_ips: list[str], host_ips: list[str]) -> str:
    """fieldRef for env (upstream's podFieldSelectorRuntimeValue)."""
    spec = pod.get("spec") or {}
    if field_path == "spec.nodeName":
        return spec.get("nodeName", "")
    if field_path == "spec.serviceAccountName":
        return spec.get("serviceAccountName", "")
    if field_path in ("status.hostIP", "status.hostIPs"):
        if not host_ips:
            raise EnvVarError("host IP unknown; known addresses: []")  # upstream's words for a node without IPs
        return host_ips[0] if field_path == "status.hostIP" else ",".join(host_ips)
    if field_path == "status.podIP":
        return pod_ips[0] if pod_ips else ""
    if field_path == "status.podIPs":
        return ",".join(pod_ips)
    try:
        return extract_field_path(pod, field_path)
    except DownwardAPIError as exc:
        raise EnvVarError(str(exc)) from exc


# ---- the environment --------------------------------------------------------------------------------------


class _Sources:
    """ConfigMaps/Secrets read once per call; a missing one is None."""

    def __init__(self, source: ObjectSource, namespace: str) -> None:
        self.source = source
        self.namespace = namespace
        self._seen: dict[tuple[str, str], dict | None] = {}

    async def get(self, plural: str, name: str) -> dict | None:
        key = (plural, name)
        if key not in self._seen:
            try:
                self._seen[key] = await self.source.get(plural, name, self.namespace)
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise EnvVarError(exc.message or str(exc)) from exc
                self._seen[key] = None
            except APIConnectionError as exc:
                raise EnvVarError(str(exc)) from exc
        return self._seen[key]


_SOURCE_KINDS = {"configMapRef": ("configmaps", "configmap", "configMap", configmap_data),
                 "secretRef": ("secrets", "secret", "secret", secret_data)}
_KEY_REFS = {"configMapKeyRef": ("configmaps", "configmap", "ConfigMap", configmap_data),
             "secretKeyRef": ("secrets", "secret", "Secret", secret_data)}


async def container_env(client: APIClient, pod: dict, container: dict, *, service_env: bool = True,
                        pod_ips: list[str] | None = None, host_ips: list[str] | None = None,
                        node_allocatable: Mapping[str, str] | None = None,
                        services: Iterable[Mapping] | None = None, objects: ObjectSource | None = None,
                        recorder: EventRecorder | None = None) -> list[tuple[str, str]]:
    """The container's environment as (name, value) pairs, in definition order, service variables last.

    pod_ips/host_ips: the addresses status.podIP(s)/status.hostIP(s) give; default: the pod's status (the
    kubelet passes the sandbox's IPs before it has written them to the status), and for host IPs then the
    Node's addresses. node_allocatable: limits for
    containers without one (resourceFieldRef); default: read from the pod's Node. services: every Service the
    kubelet knows (e.g. from its informer); default: listed from the API. service_env=False leaves out service
    variables entirely. objects: where ConfigMaps and Secrets are read (the kubelet's watch-based ObjectCache);
    default: the API. recorder: where InvalidEnvironmentVariableNames events go.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    namespace = meta.get("namespace", "")
    if pod_ips is None:
        pod_ips = _ips(status.get("podIPs"), status.get("podIP"))
    if host_ips is None:
        host_ips = _ips(status.get("hostIPs"), status.get("hostIP"))

    service_vars: dict[str, str] = {}
    if service_env:
        enable_links = spec.get("enableServiceLinks") is not False
        if services is None:
            services = await _list_services(client, namespace, enable_links)
        service_vars = dict(service_env_vars(select_services(services, namespace, enable_links)))

    sources = _Sources(objects if objects is not None else client, namespace)
    env: dict[str, str] = {}
    lookup = mapping_for(env, service_vars)

    for source in container.get("envFrom") or []:
        ref_field = next((f for f in _SOURCE_KINDS if source.get(f)), None)
        if ref_field is None:
            continue
        plural, singular, event_word, data_of = _SOURCE_KINDS[ref_field]
        ref = source[ref_field]
        name = ref.get("name", "")
        found = await sources.get(plural, name)
        if found is None:
            if ref.get("optional"):
                continue
            raise EnvVarError(f'{singular} "{name}" not found')
        invalid = []
        for key, value in data_of(_text_only(found, plural)).items():
            full = (source.get("prefix") or "") + key
            if is_env_var_name(full):
                invalid.append(full)
                continue
            env[full] = value.decode(errors="replace")
        if invalid and recorder is not None:
            recorder.event(pod, WARNING, INVALID_ENV_NAMES,
                           f"Keys [{', '.join(sorted(invalid))}] from the EnvFrom {event_word} {namespace}/{name} "
                           "were skipped since they are considered invalid environment variable names.")

    allocatable = node_allocatable
    for variable in container.get("env") or []:
        name = variable.get("name", "")
        value = variable.get("value") or ""
        value_from = variable.get("valueFrom")
        if value:
            value = expand(value, lookup)
        elif value_from:
            if value_from.get("fieldRef"):
                field_path = value_from["fieldRef"].get("fieldPath", "")
                if field_path.startswith("status.hostIP") and not host_ips:
                    host_ips = await _node_host_ips(client, spec.get("nodeName", ""))
                value = pod_field_value(pod, field_path, pod_ips, host_ips)
            elif value_from.get("resourceFieldRef"):
                if allocatable is None:
                    allocatable = await _node_allocatable(client, spec.get("nodeName", ""))
                try:
                    value = container_resource_value(value_from["resourceFieldRef"], pod, container, allocatable)
                except (DownwardAPIError, ValueError) as exc:
                    raise EnvVarError(str(exc)) from exc
            else:
                key_field = next((f for f in _KEY_REFS if value_from.get(f)), None)
                if key_field is None:
                    continue
                found_value = await _key_ref(sources, key_field, value_from[key_field], namespace)
                if found_value is None:
                    continue
                value = found_value
        env[name] = value

    for name, value in service_vars.items():
        env.setdefault(name, value)
    return list(env.items())


def _text_only(obj: dict, plural: str) -> dict:
    """envFrom takes a ConfigMap's `data` only (not binaryData), and all of a Secret's data."""
    if plural == "configmaps":
        return {"data": obj.get("data") or {}}
    return obj


async def _key_ref(sources: _Sources, key_field: str, ref: Mapping, namespace: str) -> str | None:
    """The referenced key's value; None when it (or its object) is missing and optional."""
    plural, singular, kind, data_of = _KEY_REFS[key_field]
    name, key, optional = ref.get("name", ""), ref.get("key", ""), bool(ref.get("optional"))
    found = await sources.get(plural, name)
    if found is None:
        if optional:
            return None
        raise EnvVarError(f'{singular} "{name}" not found')
    data = data_of(_text_only(found, plural))
    if key not in data:
        if optional:
            return None
        raise EnvVarError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return data[key].decode(errors="replace")


async def _list_services(client: APIClient, namespace: str, enable_links: bool) -> list[dict]:
    try:
        found = []
        if enable_links:
            found += (await client.list("services", namespace))["items"]
        if namespace != MASTER_NAMESPACE or not enable_links:
            for name in MASTER_SERVICES:
                try:
                    found.append(await client.get("services", name, MASTER_NAMESPACE))
                except APIStatusError as exc:
                    if not is_not_found(exc):
                        raise
        return found
    except (APIStatusError, APIConnectionError) as exc:
        raise EnvVarError(f"failed to list services: {exc}") from exc


async def _node_host_ips(client: APIClient, node_name: str) -> list[str]:
    """Upstream's GetNodeHostIPs: the first InternalIP (else ExternalIP), then the first of the other family."""
    try:
        node = await client.get("nodes", node_name)
    except (APIStatusError, APIConnectionError) as exc:
        raise EnvVarError(f"failed to get node {node_name}: {exc}") from exc
    addresses = (node.get("status") or {}).get("addresses") or []
    ordered = [a["address"] for kind in ("InternalIP", "ExternalIP") for a in addresses if a.get("type") == kind]
    chosen: list[str] = []
    for address in ordered:
        try:
            family = ipaddress.ip_address(address).version
        except ValueError:
            continue
        if all(ipaddress.ip_address(c).version != family for c in chosen):
            chosen.append(address)
    return chosen


async def _node_allocatable(client: APIClient, node_name: str) -> dict[str, str]:
    try:
        node = await client.get("nodes", node_name)
    except (APIStatusError, APIConnectionError) as exc:
        raise EnvVarError(f"failed to get node {node_name}: {exc}") from exc
    return dict((node.get("status") or {}).get("allocatable") or {})
