"""Join tokens and the bootstrap tokens behind them.

A join token is `K10<sha256 hex of the cluster CA certificate (DER)>::<id>.<secret>` (k3s's format): the
hash lets a joining agent check it talks to the right cluster before it sends anything, and `<id>.<secret>`
is a bootstrap token (a kube-system Secret `bootstrap-token-<id>`, see pyk8s.apiserver.authn.bootstrap_tokens)
that authenticates it as `system:bootstrap:<id>` until it expires or is deleted. This module formats and
parses them and manages the Secrets through the API (`pyk8s token`, and the server's own join token)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import re
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..apiserver.authn.bootstrap_tokens import NAMESPACE, SECRET_PREFIX, SECRET_TYPE, parse_token, secret_value
from ..client import APIClient, APIStatusError, is_not_found
from .pki import write_atomic

log = logging.getLogger("pyk8s.server.jointoken")

PREFIX = "K10"
JOIN_TOKEN_PATTERN = re.compile(r"K10([0-9a-f]{64})::([a-z0-9]{6}\.[a-z0-9]{16})")
_ALPHABET = string.ascii_lowercase + string.digits
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
USAGES = ("authentication", "signing")


class JoinTokenError(ValueError):
    """A join token or TTL that cannot be used."""


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str  # sha256 hex of the CA certificate's DER encoding
    bootstrap_token: str  # <id>.<secret>

    @property
    def token_id(self) -> str:
        return self.bootstrap_token.split(".", 1)[0]

    def __str__(self) -> str:
        return f"{PREFIX}{self.ca_hash}::{self.bootstrap_token}"


def ca_hash(ca_pem: bytes) -> str:
    """sha256 hex of the first certificate in a PEM bundle, over its DER bytes."""
    certs = x509.load_pem_x509_certificates(ca_pem)
    return hashlib.sha256(certs[0].public_bytes(serialization.Encoding.DER)).hexdigest()


def parse_join_token(text: str) -> JoinToken:
    match = JOIN_TOKEN_PATTERN.fullmatch(text.strip())
    if match is None:
        raise JoinTokenError("a join token has the form K10<sha256 of the cluster CA, 64 hex digits>::"
                             "<6-character id>.<16-character secret> (see `pyk8s token create`)")
    return JoinToken(match.group(1), match.group(2))


def new_bootstrap_token() -> str:
    """A random `<id>.<secret>` (6 and 16 characters of [a-z0-9], as kubeadm generates them)."""
    pick = secrets.choice
    return "".join(pick(_ALPHABET) for _ in range(6)) + "." + "".join(pick(_ALPHABET) for _ in range(16))


def parse_ttl(text: str) -> datetime.timedelta | None:
    """A Go duration ("24h", "1h30m", "90s"); "0" means the token never expires (None)."""
    text = text.strip()
    if text in ("0", "0s"):
        return None
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise JoinTokenError(f'invalid duration "{text}"')
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not text or total <= 0:
        raise JoinTokenError(f'invalid duration "{text}": a TTL is positive, or 0 for a token that never expires')
    return datetime.timedelta(seconds=total)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def bootstrap_token_secret(token: str, ttl: datetime.timedelta | None, description: str,
                           now: datetime.datetime) -> dict:
    """The kube-system Secret behind a bootstrap token (kubeadm's layout)."""
    parsed = parse_token(token)
    if parsed is None:
        raise JoinTokenError("a bootstrap token has the form <6 characters [a-z0-9]>.<16 characters [a-z0-9]>")
    token_id, token_secret = parsed
    data = {"token-id": token_id, "token-secret": token_secret, "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true"}
    if description:
        data["description"] = description
    if ttl is not None:
        data["expiration"] = (now + ttl).astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": SECRET_PREFIX + token_id, "namespace": NAMESPACE},
            "data": {k: _b64(v) for k, v in data.items()}}


async def create_token(client: APIClient, ttl: datetime.timedelta | None, description: str = "",
                       token: str | None = None) -> str:
    """Store a bootstrap token (a fresh random one unless given); returns `<id>.<secret>`."""
    token = token or new_bootstrap_token()
    now = datetime.datetime.now(datetime.UTC)
    await client.create(bootstrap_token_secret(token, ttl, description, now))
    return token


async def token_exists(client: APIClient, token: str) -> bool:
    parsed = parse_token(token)
    if parsed is None:
        return False
    try:
        secret = await client.get("secrets", SECRET_PREFIX + parsed[0], NAMESPACE)
    except APIStatusError as exc:
        if is_not_found(exc):
            return False
        raise
    return secret_value(secret, "token-secret") == parsed[1]


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    expiration: datetime.datetime | None
    usages: tuple[str, ...]
    description: str
    extra_groups: str


async def list_tokens(client: APIClient) -> list[TokenInfo]:
    listing = await client.list("secrets", NAMESPACE, field_selector={"type": SECRET_TYPE})
    out = []
    for secret in listing.get("items") or []:
        token_id = secret_value(secret, "token-id")
        if not token_id or secret["metadata"]["name"] != SECRET_PREFIX + token_id:
            continue
        expiration = secret_value(secret, "expiration")
        try:
            expires = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00")) if expiration else None
        except ValueError:
            expires = datetime.datetime.fromtimestamp(0, datetime.UTC)  # unparsable counts as expired
        usages = tuple(u for u in USAGES if secret_value(secret, f"usage-bootstrap-{u}") == "true")
        out.append(TokenInfo(token_id, expires, usages, secret_value(secret, "description"),
                             secret_value(secret, "auth-extra-groups")))
    return sorted(out, key=lambda t: t.token_id)


def token_id_of(text: str) -> str:
    """The id in an id, an `<id>.<secret>` or a whole join token."""
    text = text.strip()
    match = JOIN_TOKEN_PATTERN.fullmatch(text)
    if match is not None:
        text = match.group(2)
    token_id = text.split(".", 1)[0]
    if not re.fullmatch(r"[a-z0-9]{6}", token_id):
        raise JoinTokenError(f'"{text}" is not a bootstrap token id (6 characters [a-z0-9])')
    return token_id


async def delete_token(client: APIClient, token_id: str) -> None:
    """Delete the bootstrap token with this id (NotFound if there is none)."""
    await client.delete("secrets", SECRET_PREFIX + token_id, NAMESPACE)


def format_ttl(expiration: datetime.datetime | None, now: datetime.datetime) -> str:
    """kubeadm's TTL column: "<forever>", "<invalid>" once expired, else a human duration."""
    from ..api.printers import human_duration

    if expiration is None:
        return "<forever>"
    left = (expiration - now).total_seconds()
    return "<invalid>" if left <= 0 else human_duration(left)


def cluster_info_configmap(server_url: str, ca_pem: bytes) -> dict:
    """kube-public/cluster-info (kubeadm's layout): the cluster's address and CA, readable by anyone."""
    kubeconfig = {"apiVersion": "v1", "kind": "Config",
                  "clusters": [{"name": "", "cluster": {"certificate-authority-data": base64.b64encode(ca_pem).decode(),
                                                        "server": server_url}}],
                  "contexts": None, "current-context": "", "preferences": {}, "users": None}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-info", "namespace": "kube-public"},
            "data": {"kubeconfig": yaml.safe_dump(kubeconfig, sort_keys=False)}}


async def publish_cluster_info(client: APIClient, server_url: str, ca_pem: bytes) -> None:
    desired = cluster_info_configmap(server_url, ca_pem)
    try:
        current = await client.get("configmaps", "cluster-info", "kube-public")
    except APIStatusError as exc:
        if not is_not_found(exc):
            raise
        await client.create(desired)
        return
    if current.get("data") != desired["data"]:
        await client.update({**current, "data": desired["data"]})


async def ensure_server_token(client: APIClient, token_file: Path, ca_pem: bytes) -> JoinToken:
    """The server's join token: the one in `token_file` while its bootstrap token still exists, else a new
    one that never expires (written to `token_file`, mode 0600). The CA hash is always the current CA's."""
    bootstrap_token = ""
    try:
        bootstrap_token = token_file.read_text().strip().rpartition("::")[2]
    except OSError:
        pass
    if not bootstrap_token or not await token_exists(client, bootstrap_token):
        if bootstrap_token:
            log.warning("the join token in %s was deleted or changed; creating a new one", token_file)
        bootstrap_token = await create_token(client, None, "pyk8s server join token")
    token = JoinToken(ca_hash(ca_pem), bootstrap_token)
    write_atomic(token_file, f"{token}\n".encode(), 0o600)
    return token
