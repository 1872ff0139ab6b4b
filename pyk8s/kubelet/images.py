"""Image pulls for the kubelet (upstream's pkg/kubelet/images image_manager.go): the pull policy decides whether
to pull, failures back off per pod and image (ErrImagePull, then ImagePullBackOff), imagePullSecrets of type
kubernetes.io/dockerconfigjson (or dockercfg) become CRI AuthConfigs for the image's registry, and every step is
an Event with upstream's reason and message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping

from ..client import WARNING, EventRecorder
from ..client.events import NORMAL
from .backoff import Backoff
from .runtime.cri import CRIClient, CRIError, pb
from .runtime.oci import normalize_image_name

log = logging.getLogger(__name__)

DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")


class ImagePullError(Exception):
    """The container cannot start for its image: reason is the container's waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def default_pull_policy(image: str) -> str:
    """The apiserver's defaulting, repeated for pods that reach us without it: :latest (or no tag) pulls Always."""
    last = image.rsplit("/", 1)[-1]
    if "@" in last:
        return "IfNotPresent"
    tag = last.rpartition(":")[2] if ":" in last else ""
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for the short durations of a pull: 523ms, 1.234s, 1m2.5s."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(seconds, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def registry_host(image: str) -> str:
    """The registry an image reference is pulled from (docker.io for short names)."""
    return normalize_image_name(image).split("/", 1)[0]


def _matches(registry_key: str, host: str) -> bool:
    key = registry_key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host == "docker.io" and registry_key in DOCKER_HUB_HOSTS:
        return True
    return key == host


def _decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def auth_configs(image: str, secrets: list[Mapping]) -> list[pb.AuthConfig]:
    """CRI credentials for `image` from dockerconfigjson/dockercfg secrets, in the order the pod lists them."""
    host = registry_host(image)
    found: list[pb.AuthConfig] = []
    for secret in secrets:
        data = secret.get("data") or {}
        raw = data.get(".dockerconfigjson") or data.get(".dockercfg")
        if not raw:
            continue
        try:
            document = json.loads(_decode(raw) or b"{}")
        except ValueError:
            continue
        entries = document.get("auths", document) if isinstance(document, dict) else {}
        for key, entry in entries.items():
            if not isinstance(entry, dict) or not _matches(key, host):
                continue
            username, password = entry.get("username", ""), entry.get("password", "")
            if not username and entry.get("auth"):
                username, _, password = _decode(entry["auth"]).decode(errors="replace").partition(":")
            found.append(pb.AuthConfig(username=username, password=password, server_address=host,
                                       identity_token=entry.get("identitytoken", ""),
                                       registry_token=entry.get("registrytoken", "")))
    return found


class ImageManager:
    def __init__(self, runtime: CRIClient, recorder: EventRecorder | None = None,
                 backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.backoff = backoff or Backoff()
        self.clock = clock

    def _event(self, pod: Mapping, field_path: str, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(pod, type_, reason, message, field_path=field_path)

    async def ensure_image_exists(self, pod: Mapping, container: Mapping, field_path: str,
                                  pull_secrets: list[Mapping], sandbox_config: pb.PodSandboxConfig | None = None
                                  ) -> str:
        """The image reference to create the container from; raises ImagePullError."""
        image = container.get("image") or ""
        if not image:
            raise ImagePullError("InvalidImageName", f"Failed to apply default image tag {image!r}")
        policy = container.get("imagePullPolicy") or default_pull_policy(image)
        try:
            present = await self.runtime.image_status(image)
        except CRIError as exc:
            message = f"Failed to inspect image {image!r}: {exc.details}"
            self._event(pod, field_path, WARNING, "InspectFailed", message)
            raise ImagePullError("ImageInspectError", message) from None
        if present is not None and policy != "Always":
            self._event(pod, field_path, NORMAL, "Pulled", f'Container image "{image}" already present on machine')
            return present.id
        if present is None and policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._event(pod, field_path, WARNING, "ErrImageNeverPull", message)
            raise ImagePullError("ErrImageNeverPull", message)

        key = f"{(pod.get('metadata') or {}).get('uid', '')}_{image}"
        now = self.clock()
        if self.backoff.in_backoff_since_update(key, now):
            message = f'Back-off pulling image "{image}"'
            self._event(pod, field_path, NORMAL, "BackOff", message)
            raise ImagePullError("ImagePullBackOff", message)
        self._event(pod, field_path, NORMAL, "Pulling", f'Pulling image "{image}"')
        started = self.clock()
        try:
            ref = await self._pull(image, auth_configs(image, pull_secrets), sandbox_config)
        except CRIError as exc:
            failed_at = self.clock()
            self.backoff.next(key, failed_at, failed_at)
            self._event(pod, field_path, WARNING, "Failed", f'Failed to pull image "{image}": {exc.details}')
            raise ImagePullError("ErrImagePull", exc.details) from None
        self.backoff.forget(key)
        took = self.clock() - started
        size = 0
        try:
            pulled = await self.runtime.image_status(ref)
            size = pulled.size if pulled is not None else 0
        except CRIError:
            pass
        self._event(pod, field_path, NORMAL, "Pulled",
                    f'Successfully pulled image "{image}" in {go_duration(took)} ({go_duration(took)} including '
                    f"waiting). Image size: {size} bytes.")
        return ref

    async def _pull(self, image: str, auths: list[pb.AuthConfig], sandbox_config: pb.PodSandboxConfig | None) -> str:
        """Try each credential for the registry in turn, then anonymously; the last error wins."""
        last: CRIError | None = None
        for auth in [*auths, None]:
            try:
                return await self.runtime.pull_image(image, auth=auth, sandbox_config=sandbox_config)
            except CRIError as exc:
                last = exc
                log.debug("pull of %s with %s failed: %s", image, "credentials" if auth else "no credentials", exc)
        assert last is not None
        raise last

    def forget_pod(self, pod_uid: str) -> None:
        self.backoff.forget_prefix(f"{pod_uid}_")
