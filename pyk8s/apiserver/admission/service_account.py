"""ServiceAccount (upstream plugin/pkg/admission/serviceaccount): pods run as `default` unless
they name an account, and get the API credentials projected into every container at
/var/run/secrets/kubernetes.io/serviceaccount unless automounting is turned off on the pod or
its account."""

from __future__ import annotations

import random

from .interfaces import CREATE, AdmissionPlugin, Attributes
from .state import ClusterState

DEFAULT_ACCOUNT = "default"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
TOKEN_EXPIRATION_SECONDS = 3607  # one hour plus a little, as upstream (bound tokens are refreshed at 80%)
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
# Upstream's SimpleNameGenerator alphabet: no vowels (no words), no look-alike characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def token_volume(name: str) -> dict:
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def should_automount(account: dict | None, pod: dict) -> bool:
    """The pod's own setting wins, then the account's; the default is to mount."""
    pod_setting = (pod.get("spec") or {}).get("automountServiceAccountToken")
    if pod_setting is not None:
        return bool(pod_setting)
    if account is not None and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount_token(pod: dict, rng: random.Random | None = None) -> None:
    """Add the token volume (named once per pod) and mount it in every container that has
    nothing at the token path already."""
    spec = pod.setdefault("spec", {})
    volume_name = next((v["name"] for v in spec.get("volumes") or [] if v.get("name", "").startswith(VOLUME_PREFIX)),
                       "")
    has_volume = bool(volume_name)
    if not volume_name:
        chooser = rng or random
        volume_name = VOLUME_PREFIX + "".join(chooser.choice(_NAME_ALPHABET) for _ in range(5))
    mounted = False
    for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        mounts = container.setdefault("volumeMounts", [])
        if any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
            continue
        mounts.append({"name": volume_name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH})
        mounted = True
    if mounted and not has_volume:
        spec.setdefault("volumes", []).append(token_volume(volume_name))


class ServiceAccount(AdmissionPlugin):
    name = "ServiceAccount"
    mutating = True
    validating = True

    def __init__(self, state: ClusterState, *, must_exist: bool = False):
        self.state = state
        self.must_exist = must_exist
        self.accounts = state.kind("", "v1", "ServiceAccount")

    def handles(self, attrs: Attributes) -> bool:
        return attrs.is_pod() and attrs.operation == CREATE and not attrs.subresource and attrs.obj is not None

    async def _account(self, attrs: Attributes, name: str) -> dict | None:
        account = await self.state.get(self.accounts, attrs.namespace, name)
        if account is None and self.must_exist:
            raise attrs.forbidden(f"error looking up service account {attrs.namespace}/{name}: "
                                  f'serviceaccount "{name}" not found')
        return account

    async def admit(self, attrs: Attributes) -> None:
        pod = attrs.obj
        assert pod is not None
        if (pod["metadata"].get("annotations") or {}).get(MIRROR_POD_ANNOTATION):
            return  # static pods are the kubelet's, not bound to API credentials
        spec = pod.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_ACCOUNT
        account = await self._account(attrs, spec["serviceAccountName"])
        if should_automount(account, pod):
            mount_token(pod)

    async def validate(self, attrs: Attributes) -> None:
        pod = attrs.obj
        assert pod is not None
        if (pod["metadata"].get("annotations") or {}).get(MIRROR_POD_ANNOTATION):
            return
        await self._account(attrs, (pod.get("spec") or {}).get("serviceAccountName") or DEFAULT_ACCOUNT)
