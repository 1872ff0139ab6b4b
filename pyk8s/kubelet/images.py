"""Image pulls for the kubelet (upstream's pkg/kubelet/images image_manager.go): the pull policy decides whether
to pull, failures back off per pod and image (ErrImagePull, then ImagePullBackOff carrying the last pull error),
imagePullSecrets of type kubernetes.io/dockerconfigjson (or dockercfg) become CRI AuthConfigs through a keyring
that matches registries like upstream's credentialprovider, and every step is an Event with upstream's reason
and message.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping

import grpc

from ..client import WARNING, EventRecorder
from ..client.events import NORMAL
from .backoff import Backoff
from .runtime.cri import CRIClient, CRIError, pb
from .runtime.oci import normalize_image_name

log = logging.getLogger(__name__)

# Upstream's CRI client puts no deadline on PullImage; ours has one per call, so make it one no pull reaches.
PULL_TIMEOUT = 3600.0
# Credentials stored for Docker Hub under its legacy index address also serve docker.io images.
DEFAULT_REGISTRY_KEY = "index.docker.io"
SECRET_TYPE_DOCKERCONFIGJSON = "kubernetes.io/dockerconfigjson"
SECRET_TYPE_DOCKERCFG = "kubernetes.io/dockercfg"
# Errors a CRI runtime (CRI-O) names at the start of its message, which upstream turns into their own reasons.
RUNTIME_PULL_ERRORS = {"RegistryUnavailable": "the registry is unavailable",
                       "SignatureValidationFailed": "the signature validation failed"}


class ImagePullError(Exception):
    """The container cannot start for its image: reason is the container's waiting reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class _PullFailed(Exception):
    """Every attempt of one pull failed; `message` is what upstream's kubelet reports for it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
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


def go_status_code(code: grpc.StatusCode) -> str:
    """grpc-go's name for a status code (codes.Code.String()): NotFound, DeadlineExceeded, Canceled."""
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    if code is grpc.StatusCode.OK:
        return "OK"
    return "".join(word.capitalize() for word in code.name.split("_"))


def pull_error_message(exc: CRIError) -> str:
    """The error text upstream's CRI client gives for a failed PullImage: the runtime's own message when the
    code is Unknown (containerd's "failed to pull and unpack image ..."), grpc-go's rendering otherwise."""
    if exc.code is grpc.StatusCode.UNKNOWN:
        return exc.details
    return f"rpc error: code = {go_status_code(exc.code)} desc = {exc.details}"


def aggregate_message(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): duplicates dropped, several listed in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def evaluate_pull_error(image: str, message: str) -> tuple[str, str]:
    """The waiting reason and message for a failed pull (upstream's evalCRIPullErr)."""
    for reason, because in RUNTIME_PULL_ERRORS.items():
        if message.startswith(reason):
            return reason, f"image pull failed for {image} because {because}{message.removeprefix(reason)}"
    return "ErrImagePull", message


def image_repository(image: str) -> str:
    """The repository an image is pulled from, fully qualified, without tag or digest (docker.io/library/x)."""
    name = normalize_image_name(image).split("@", 1)[0]
    head, _, last = name.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}"


def _decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""


def _keyring_key(location: str) -> str | None:
    """Where a dockercfg entry applies: host[:port] plus any path, scheme and a /v1/ or /v2/ prefix dropped."""
    value = location if location.startswith(("https://", "http://")) else f"https://{location}"
    try:
        parsed = urllib.parse.urlsplit(value)
    except ValueError:
        log.warning("entry %r in dockercfg invalid, ignoring", location)
        return None
    path = parsed.path[3:] if parsed.path.startswith(("/v2/", "/v1/")) else parsed.path
    return parsed.netloc + path if path and path != "/" else parsed.netloc


def _host_parts(netloc: str) -> tuple[list[str], str]:
    host, port = netloc, ""
    if netloc.startswith("["):
        closing = netloc.find("]")
        host, rest = netloc[1:closing], netloc[closing + 1:]
        port = rest[1:] if rest.startswith(":") else ""
    elif netloc.count(":") == 1:
        host, port = netloc.split(":")
    return host.split("."), port


def urls_match(key: str, repository: str) -> bool:
    """Upstream's URLsMatch: same port, same number of host labels each matching the key's glob (*.example.com),
    and the key's path a prefix of the repository's."""
    try:
        glob_url = urllib.parse.urlsplit(f"dummy://{key}")
        target_url = urllib.parse.urlsplit(f"dummy://{repository}")
    except ValueError:  # e.g. an unclosed IPv6 bracket in a secret's registry key
        return False
    glob_parts, glob_port = _host_parts(glob_url.netloc)
    target_parts, target_port = _host_parts(target_url.netloc)
    if glob_port != target_port or len(glob_parts) != len(target_parts):
        return False
    if not target_url.path.startswith(glob_url.path):
        return False
    return all(fnmatch.fnmatchcase(target, glob) for glob, target in zip(glob_parts, target_parts, strict=True))


def _is_default_registry(repository: str) -> bool:
    first, sep, _ = repository.partition("/")
    if not first:
        return False
    if not sep:
        return True
    return first in ("docker.io", DEFAULT_REGISTRY_KEY) or (not any(c in first for c in ".:") and first != "localhost")


def _docker_config(secret: Mapping) -> Mapping:
    """The registry → entry map of a pull secret of the right type (others are not pull secrets)."""
    data = secret.get("data") or {}
    kind = secret.get("type")
    if kind == SECRET_TYPE_DOCKERCONFIGJSON and data.get(".dockerconfigjson"):
        raw, nested = data[".dockerconfigjson"], True
    elif kind == SECRET_TYPE_DOCKERCFG and data.get(".dockercfg"):
        raw, nested = data[".dockercfg"], False
    else:
        return {}
    try:
        document = json.loads(_decode(raw) or b"{}")
    except ValueError:
        return {}  # the apiserver validates these secrets' JSON; nothing usable in one that slipped by
    if nested:
        document = document.get("auths") if isinstance(document, dict) else None
    return document if isinstance(document, dict) else {}


def _credentials(entry: Mapping) -> tuple[str, str]:
    """An entry's username and password; `auth` (base64 user:password) takes precedence, as in upstream."""
    username, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        username, _, password = _decode(str(entry["auth"])).decode(errors="replace").partition(":")
    return username, password


def auth_configs(image: str, secrets: list[Mapping]) -> list[pb.AuthConfig]:
    """CRI credentials for `image` from the pod's pull secrets, in upstream's keyring order: the most specific
    registry key first (keys reverse-sorted), a key's credentials in the order of the secrets."""
    keyring: dict[str, list[tuple[str, str]]] = {}
    for secret in secrets:
        for location, entry in _docker_config(secret).items():
            key = _keyring_key(str(location))
            if key is not None and isinstance(entry, Mapping):
                keyring.setdefault(key, []).append(_credentials(entry))
    repository = image_repository(image)
    found = [cred for key in sorted(keyring, reverse=True) if urls_match(key, repository) for cred in keyring[key]]
    if not found and _is_default_registry(repository):
        found = keyring.get(DEFAULT_REGISTRY_KEY, [])
    # No server_address: containerd 1.6 would parse it as a URL and refuse a bare host:port, and upstream's
    # keyring leaves it empty too.
    return [pb.AuthConfig(username=username, password=password) for username, password in found]


class ImageManager:
    def __init__(self, runtime: CRIClient, recorder: EventRecorder | None = None,
                 backoff: Backoff | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.recorder = recorder
        self.backoff = backoff or Backoff()
        self.clock = clock
        # The last failed pull's "<reason>: <message>" per back-off key, shown while the pull backs off.
        self._previous_errors: dict[str, str] = {}

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
            previous = self._previous_errors.get(key)
            raise ImagePullError("ImagePullBackOff", f"{message}: {previous}" if previous else message)
        self._previous_errors.pop(key, None)
        self._event(pod, field_path, NORMAL, "Pulling", f'Pulling image "{image}"')
        started = self.clock()
        try:
            ref = await self._pull(image, auth_configs(image, pull_secrets), sandbox_config)
        except _PullFailed as failed:
            failed_at = self.clock()
            self.backoff.next(key, failed_at, failed_at)
            self._event(pod, field_path, WARNING, "Failed", f'Failed to pull image "{image}": {failed.message}')
            reason, message = evaluate_pull_error(image, failed.message)
            self._previous_errors[key] = f"{reason}: {message}"
            raise ImagePullError(reason, message) from None
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
        """Upstream's PullImage: anonymously when no secret matches the registry, else with each matching
        credential in turn (never anonymously then); every credential failing gives their aggregated errors."""
        errors: list[str] = []
        for auth in auths or [None]:
            try:
                return await self.runtime.pull_image(image, auth=auth, sandbox_config=sandbox_config,
                                                     timeout=PULL_TIMEOUT)
            except CRIError as exc:
                errors.append(pull_error_message(exc))
                log.debug("pull of %s with %s failed: %s", image, "credentials" if auth else "no credentials", exc)
        raise _PullFailed(aggregate_message(errors))

    def forget_pod(self, pod_uid: str) -> None:
        self.backoff.forget_prefix(f"{pod_uid}_")
        for key in [key for key in self._previous_errors if key.startswith(f"{pod_uid}_")]:
            del self._previous_errors[key]
