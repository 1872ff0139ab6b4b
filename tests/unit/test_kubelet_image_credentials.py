"""Pull secrets → CRI credentials (upstream's credentialprovider keyring) and pull error texts, without a runtime."""

from __future__ import annotations

import base64
import json

import grpc
import pytest

from pyk8s.kubelet.images import (
    ImageManager,
    ImagePullError,
    aggregate_message,
    auth_configs,
    evaluate_pull_error,
    image_repository,
    pull_error_message,
    urls_match,
)
from pyk8s.kubelet.runtime.cri import CRIError, pb


def dockerconfigjson(auths: dict) -> dict:
    data = base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": data}}


def dockercfg(entries: dict) -> dict:
    data = base64.b64encode(json.dumps(entries).encode()).decode()
    return {"type": "kubernetes.io/dockercfg", "data": {".dockercfg": data}}


def users(found: list[pb.AuthConfig]) -> list[tuple[str, str]]:
    return [(auth.username, auth.password) for auth in found]


def test_image_repository_is_qualified_without_tag_or_digest() -> None:
    assert image_repository("busybox") == "docker.io/library/busybox"
    assert image_repository("team/app:1") == "docker.io/team/app"
    assert image_repository("127.0.0.1:5000/private/busybox:1.0") == "127.0.0.1:5000/private/busybox"
    assert image_repository("reg.local/app@sha256:" + "a" * 64) == "reg.local/app"


def test_urls_match_port_labels_globs_and_path_prefix() -> None:
    assert urls_match("127.0.0.1:5000", "127.0.0.1:5000/private/busybox")
    assert not urls_match("127.0.0.1", "127.0.0.1:5000/private/busybox")  # the port must match
    assert not urls_match("127.0.0.1:5001", "127.0.0.1:5000/private/busybox")
    assert urls_match("*.example.com", "reg.example.com/app")
    assert not urls_match("*.example.com", "a.reg.example.com/app")  # one glob label per host label
    assert urls_match("quay.io/team", "quay.io/team/app")
    assert not urls_match("quay.io/team", "quay.io/other/app")
    assert not urls_match("[::1", "reg.local/app")


def test_credentials_follow_the_keyring_order() -> None:
    auth = base64.b64encode(b"bob:s3cret").decode()
    secrets = [dockerconfigjson({"other.example": {"username": "x", "password": "y"}}),
               dockerconfigjson({"https://reg.local:5000/v2/": {"auth": auth}}),
               dockercfg({"reg.local:5000": {"username": "carol", "password": "pw"}}),
               dockerconfigjson({"reg.local:5000/team": {"username": "dave", "password": "pw2"}})]
    # The more specific key (with the path) first, then a key's credentials in secret order.
    assert users(auth_configs("reg.local:5000/team/app:1", secrets)) == [
        ("dave", "pw2"), ("bob", "s3cret"), ("carol", "pw")]
    assert users(auth_configs("reg.local:5000/elsewhere/app:1", secrets)) == [("bob", "s3cret"), ("carol", "pw")]
    assert auth_configs("reg.local/app:1", secrets) == []
    # containerd 1.6 rejects a bare host:port server address, so none is sent (as upstream's keyring does).
    assert all(a.server_address == "" for a in auth_configs("reg.local:5000/team/app:1", secrets))


def test_auth_field_wins_and_docker_hub_legacy_key() -> None:
    auth = base64.b64encode(b"bob:s3cret").decode()
    both = dockerconfigjson({"reg.local": {"username": "ignored", "password": "ignored", "auth": auth}})
    assert users(auth_configs("reg.local/app:1", [both])) == [("bob", "s3cret")]
    hub = dockerconfigjson({"https://index.docker.io/v1/": {"auth": auth}})
    assert users(auth_configs("library/nginx", [hub])) == [("bob", "s3cret")]
    assert users(auth_configs("nginx", [hub])) == [("bob", "s3cret")]
    assert auth_configs("quay.io/nginx", [hub]) == []


def test_only_pull_secret_types_count() -> None:
    entries = {"reg.local": {"username": "u", "password": "p"}}
    opaque = dict(dockerconfigjson(entries), type="Opaque")
    assert auth_configs("reg.local/app:1", [opaque]) == []
    assert auth_configs("reg.local/app:1", [{"type": "kubernetes.io/dockerconfigjson",
                                             "data": {".dockerconfigjson": "not base64!"}}]) == []


def test_pull_error_texts_like_upstreams_cri_client() -> None:
    unknown = CRIError("PullImage", grpc.StatusCode.UNKNOWN, 'failed to pull and unpack image "x": 401 Unauthorized')
    assert pull_error_message(unknown) == 'failed to pull and unpack image "x": 401 Unauthorized'
    missing = CRIError("PullImage", grpc.StatusCode.NOT_FOUND, "x: not found")
    assert pull_error_message(missing) == "rpc error: code = NotFound desc = x: not found"
    cancelled = CRIError("PullImage", grpc.StatusCode.CANCELLED, "gone")
    assert pull_error_message(cancelled) == "rpc error: code = Canceled desc = gone"
    assert aggregate_message(["a"]) == "a" and aggregate_message(["a", "a"]) == "a"
    assert aggregate_message(["a", "b", "a"]) == "[a, b]"
    assert evaluate_pull_error("r/x:1", "RegistryUnavailable: connection refused") == (
        "RegistryUnavailable", "image pull failed for r/x:1 because the registry is unavailable: connection refused")
    assert evaluate_pull_error("r/x:1", "boom") == ("ErrImagePull", "boom")


class Registry:
    """A fake CRI image service with one private image and one valid login."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def image_status(self, image: str) -> pb.Image | None:
        return None

    async def pull_image(self, image: str, auth=None, sandbox_config=None, timeout=None) -> str:
        self.attempts.append(auth.username if auth else "")
        if auth is not None and (auth.username, auth.password) == ("alice", "right"):
            return "sha256:pulled"
        raise CRIError("PullImage", grpc.StatusCode.UNKNOWN, f"401 Unauthorized as {auth.username if auth else '-'}")


async def test_each_credential_then_no_anonymous_fallback() -> None:
    registry = Registry()
    images = ImageManager(registry)  # type: ignore[arg-type]
    container = {"image": "reg.local/private:1", "imagePullPolicy": "IfNotPresent"}
    wrong = dockerconfigjson({"reg.local": {"username": "mallory", "password": "wrong"}})
    right = dockerconfigjson({"reg.local": {"username": "alice", "password": "right"}})
    assert await images.ensure_image_exists({"metadata": {"uid": "a"}}, container, "", [wrong, right]) == \
        "sha256:pulled"
    assert registry.attempts == ["mallory", "alice"]

    registry.attempts.clear()
    other = dockerconfigjson({"reg.local": {"username": "eve", "password": "wrong"}})
    with pytest.raises(ImagePullError) as failed:
        await images.ensure_image_exists({"metadata": {"uid": "b"}}, container, "", [wrong, other])
    assert registry.attempts == ["mallory", "eve"]  # with credentials, never anonymously
    assert failed.value.reason == "ErrImagePull"
    assert failed.value.message == "[401 Unauthorized as mallory, 401 Unauthorized as eve]"
