"""The Secrets and ConfigMaps a pod names (upstream pkg/api/v1/pod VisitPodSecretNames/VisitPodConfigmapNames).

The node authorizer links a node to them; the kubelet watches them for the pods it runs. Names only: every
reference is to an object in the pod's own namespace.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

# Volume plugins that name a secret as `secretRef`.
_SECRET_REF_PLUGINS = ("cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos")


def pod_containers(spec: Mapping) -> Iterator[dict]:
    """Init, app and ephemeral containers."""
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(field) or ()


def volume_secret_names(volume: Mapping) -> list[str]:
    """The secrets one pod volume names."""
    names = []
    secret = volume.get("secret")
    if isinstance(secret, dict):
        names.append(secret.get("secretName") or "")
    for source in ((volume.get("projected") or {}).get("sources") or ()):
        names.append((source.get("secret") or {}).get("name") or "")
    azure = volume.get("azureFile")
    if isinstance(azure, dict):
        names.append(azure.get("secretName") or "")
    for plugin in _SECRET_REF_PLUGINS:
        source = volume.get(plugin)
        if isinstance(source, dict):
            names.append((source.get("secretRef") or {}).get("name") or "")
    csi = volume.get("csi")
    if isinstance(csi, dict):
        names.append((csi.get("nodePublishSecretRef") or {}).get("name") or "")
    return [name for name in names if name]


def pod_secret_names(pod: Mapping) -> set[str]:
    """Image pull secrets, env and envFrom secrets of every container, and the volumes' secrets."""
    spec = pod.get("spec") or {}
    names = {ref.get("name") or "" for ref in spec.get("imagePullSecrets") or ()}
    for container in pod_containers(spec):
        for source in container.get("envFrom") or ():
            names.add((source.get("secretRef") or {}).get("name") or "")
        for env in container.get("env") or ():
            names.add(((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name") or "")
    for volume in spec.get("volumes") or ():
        names.update(volume_secret_names(volume))
    names.discard("")
    return names


def pod_configmap_names(pod: Mapping) -> set[str]:
    """env and envFrom config maps of every container, and configMap and projected volumes' config maps."""
    spec = pod.get("spec") or {}
    names: set[str] = set()
    for container in pod_containers(spec):
        for source in container.get("envFrom") or ():
            names.add((source.get("configMapRef") or {}).get("name") or "")
        for env in container.get("env") or ():
            names.add(((env.get("valueFrom") or {}).get("configMapKeyRef") or {}).get("name") or "")
    for volume in spec.get("volumes") or ():
        configmap = volume.get("configMap")
        if isinstance(configmap, dict):
            names.add(configmap.get("name") or "")
        for source in ((volume.get("projected") or {}).get("sources") or ()):
            names.add((source.get("configMap") or {}).get("name") or "")
    names.discard("")
    return names
