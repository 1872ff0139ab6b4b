"""The service-account token controller (upstream pkg/controller/serviceaccount/tokens_controller.go).

A Secret of type `kubernetes.io/service-account-token` annotated with
`kubernetes.io/service-account.name` gets a legacy (non-expiring) token for that service account
in `data.token`, plus `ca.crt` and `namespace`; a Secret whose service account does not exist
(or has another UID than the Secret records) is deleted, which revokes its token. Signing needs
the service-account private key (`service_account_private_key_file`); without it the controller
stays off, as upstream's does.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..apiserver.authn.serviceaccount import TokenSigner, legacy_claims
from ..client import (
    APIClient,
    APIStatusError,
    Controller,
    DeletedFinalStateUnknown,
    SharedInformerFactory,
    WorkQueue,
    is_conflict,
    is_not_found,
    object_key,
)
from ..client.workqueue import REAL_CLOCK, Clock, default_controller_rate_limiter
from .rootcacert import root_ca_from_context

log = logging.getLogger("pyk8s.controllers.serviceaccount_tokens")

NAME = "serviceaccount-token-controller"
SECRET_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"


def _b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def populated(secret: dict, service_account: dict, root_ca: str, signer: TokenSigner) -> dict | None:
    """The Secret with its token, ca.crt, namespace and UID annotation filled in; None if nothing is missing.
    An existing token is kept: replacing it would break whoever already uses it."""
    namespace = secret["metadata"]["namespace"]
    data = dict(secret.get("data") or {})
    annotations = dict(secret["metadata"].get("annotations") or {})
    wanted = {"ca.crt": _b64(root_ca), "namespace": _b64(namespace)}
    if (data.get("token") and all(data.get(k) == v for k, v in wanted.items())
            and annotations.get(UID_ANNOTATION) == service_account["metadata"]["uid"]):
        return None
    if not data.get("token"):
        data["token"] = _b64(signer.sign(legacy_claims(service_account, secret["metadata"]["name"])))
    data.update(wanted)
    annotations[UID_ANNOTATION] = service_account["metadata"]["uid"]
    return {**secret, "data": data, "metadata": {**secret["metadata"], "annotations": annotations}}


class TokensController:
    name = NAME

    def __init__(self, client: APIClient, factory: SharedInformerFactory, signer: TokenSigner | None, root_ca: str,
                 *, clock: Clock = REAL_CLOCK):
        self.client = client
        self.signer = signer
        self.root_ca = root_ca
        self.secrets = factory.informer("secrets", field_selector={"type": SECRET_TYPE})
        self.accounts = factory.informer("serviceaccounts")
        self.queue: WorkQueue[str] = WorkQueue(NAME, rate_limiter=default_controller_rate_limiter(clock), clock=clock)
        self.controller: Controller[str] = Controller(NAME, self.sync, workers=1, queue=self.queue, clock=clock,
                                                      wait_for=(self.secrets.wait_for_sync,
                                                                self.accounts.wait_for_sync))
        if signer is None:
            return
        self.secrets.add_handler(on_add=self._on_secret, on_update=lambda _old, new: self._on_secret(new))
        self.accounts.add_handler(on_add=self._on_account, on_update=lambda _old, new: self._on_account(new),
                                  on_delete=self._on_account)

    @classmethod
    def from_context(cls, ctx: Any) -> TokensController:
        """Built by the manager; options: service_account_private_key_file, root_ca_file."""
        options = ctx.options or {}
        key_file = options.get("service_account_private_key_file")
        signer = None
        if key_file:
            key = serialization.load_pem_private_key(Path(str(key_file)).read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{key_file}: the service-account key must be an EC (ES256) key")
            signer = TokenSigner(key)
        return cls(ctx.client, ctx.factory, signer, root_ca_from_context(ctx), clock=ctx.clock)

    def _on_secret(self, secret: dict) -> None:
        self.queue.add(object_key(secret))

    def _on_account(self, account: dict | DeletedFinalStateUnknown) -> None:
        """Secrets naming this account: filled once it exists, deleted once it is gone."""
        obj = account.obj if isinstance(account, DeletedFinalStateUnknown) else account
        meta = obj["metadata"]
        for secret in self.secrets.list(meta["namespace"]):
            if (secret["metadata"].get("annotations") or {}).get(NAME_ANNOTATION) == meta["name"]:
                self.queue.add(object_key(secret))

    async def run(self) -> None:
        if self.signer is None:
            log.warning("%s is disabled because there is no private key", NAME)
            return
        await self.controller.run()

    async def _live_account(self, namespace: str, name: str, uid: str) -> dict | None:
        """The account as the server has it now (our cache may not have seen a fresh one yet)."""
        try:
            account = await self.client.get("serviceaccounts", name, namespace)
        except APIStatusError as exc:
            if is_not_found(exc):
                return None
            raise
        return account if not uid or account["metadata"]["uid"] == uid else None

    async def sync(self, key: str) -> None:
        secret = self.secrets.get(key)
        if secret is None or secret["metadata"].get("deletionTimestamp"):
            return
        meta = secret["metadata"]
        annotations = meta.get("annotations") or {}
        account_name, uid = annotations.get(NAME_ANNOTATION, ""), annotations.get(UID_ANNOTATION, "")
        account = self.accounts.get_by_name(account_name, meta["namespace"]) if account_name else None
        if account is None or (uid and account["metadata"]["uid"] != uid):
            account = await self._live_account(meta["namespace"], account_name, uid) if account_name else None
        if account is None:
            log.info("serviceaccount tokens: deleting %s: service account %r is gone", key, account_name)
            try:
                await self.client.delete("secrets", meta["name"], meta["namespace"], preconditions={"uid": meta["uid"]})
            except APIStatusError as exc:
                if not (is_not_found(exc) or is_conflict(exc)):
                    raise
            return
        updated = populated(secret, account, self.root_ca, self.signer)
        if updated is None:
            return
        try:
            await self.client.update(updated)
        except APIStatusError as exc:
            if is_conflict(exc):  # our copy was stale; the update event brings us back
                self.queue.add_rate_limited(key)
                return
            if not is_not_found(exc):
                raise
        log.info("serviceaccount tokens: token written to %s for service account %s", key, account_name)
