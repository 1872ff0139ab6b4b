"""MutatingAdmissionWebhook and ValidatingAdmissionWebhook (upstream
k8s.io/apiserver/pkg/admission/plugin/webhook): AdmissionReview v1 over HTTPS to the webhooks that
admissionregistration.k8s.io/v1 configurations register.

Which webhooks run: rules (operations, groups, versions, resources incl. subresources, scope), then
namespaceSelector and objectSelector, then matchConditions (CEL). Mutating webhooks run one after the
other and their JSONPatch responses are applied in turn; a webhook with reinvocationPolicy IfNeeded
runs once more when a later webhook changed the object. Validating webhooks run concurrently. A call
that fails (unreachable, timeout, bad response) refuses the request under failurePolicy Fail and is
skipped under Ignore. Dry-run requests reach webhooks with `dryRun: true`; v1 only admits webhooks
declaring sideEffects None or NoneOnDryRun, so every webhook may be called for them.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import errno
import logging
import ssl
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import jsonpatch
import orjson

from ...api import errors
from ...api.admissionregistration import evaluate
from ...api.errors import APIError
from ...api.selectors import SelectorError, label_selector_from_object
from .interfaces import AdmissionPlugin, Attributes
from .state import ClusterState

log = logging.getLogger("pyk8s.apiserver.admission.webhook")

_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


@dataclass(frozen=True)
class Webhook:
    """One webhook of one configuration, with what is needed to call it."""

    config_name: str
    spec: dict

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    @property
    def fails_closed(self) -> bool:
        return self.spec.get("failurePolicy", "Fail") == "Fail"


class WebhookCallError(Exception):
    """The webhook could not be asked, or answered something unusable (failurePolicy decides)."""


# ---- matching --------------------------------------------------------------------------------


def _resource_matches(patterns: list[str], plural: str, subresource: str) -> bool:
    for pattern in patterns:
        if pattern == "*/*":
            return True
        base, _, sub = pattern.partition("/")
        if base not in ("*", plural):
            continue
        if not sub and not subresource:
            return True
        if sub and subresource and sub in ("*", subresource):
            return True
    return False


def rule_matches(rule: dict, attrs: Attributes) -> bool:
    operations = rule.get("operations") or []
    if "*" not in operations and attrs.operation not in operations:
        return False
    groups, versions = rule.get("apiGroups") or [], rule.get("apiVersions") or []
    if "*" not in groups and attrs.kind.group not in groups:
        return False
    if "*" not in versions and attrs.kind.version not in versions:
        return False
    if not _resource_matches(rule.get("resources") or [], attrs.kind.plural, attrs.subresource):
        return False
    scope = rule.get("scope", "*")
    return scope == "*" or (scope == "Namespaced") == attrs.kind.namespaced


def _labels(obj: dict | None) -> dict:
    return ((obj or {}).get("metadata") or {}).get("labels") or {}


def _selector_matches(selector: dict | None, labels: dict) -> bool:
    if not selector:
        return True
    try:
        return label_selector_from_object(selector).matches(labels)
    except SelectorError:
        return False


def namespace_object(state: ClusterState, attrs: Attributes) -> dict | None:
    if attrs.kind.group == "" and attrs.kind.plural == "namespaces":
        return attrs.obj if attrs.obj is not None else attrs.old
    if not attrs.kind.namespaced:
        return None
    return state.peek(state.kind("", "v1", "Namespace"), "", attrs.namespace)


def selectors_match(spec: dict, attrs: Attributes, namespace: dict | None) -> bool:
    """`spec`'s namespaceSelector (against the object's namespace; a Namespace against itself) and
    objectSelector (a webhook's, a policy's matchConstraints, a binding's matchResources)."""
    if attrs.kind.group == "" and attrs.kind.plural == "namespaces":
        namespace = attrs.obj if attrs.obj is not None else attrs.old
    if attrs.kind.namespaced or attrs.kind.plural == "namespaces":
        if not _selector_matches(spec.get("namespaceSelector"), _labels(namespace)):
            return False
    selector = spec.get("objectSelector")
    # Either the new or the old object may match; an absent one (create, delete) matches nothing.
    return any(obj is not None and _selector_matches(selector, _labels(obj)) for obj in (attrs.obj, attrs.old))


def review_request(attrs: Attributes, uid: str) -> dict:
    """AdmissionReview v1's request for these attributes."""
    kind = attrs.kind
    user = attrs.user
    request = {
        "uid": uid,
        "kind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "resource": {"group": kind.group, "version": kind.version, "resource": kind.plural},
        "requestKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
        "requestResource": {"group": kind.group, "version": kind.version, "resource": kind.plural},
        "name": attrs.name or ((attrs.obj or {}).get("metadata") or {}).get("name", ""),
        "operation": attrs.operation,
        "userInfo": {"username": getattr(user, "name", ""), "uid": getattr(user, "uid", ""),
                     "groups": list(getattr(user, "groups", ())), "extra": dict(getattr(user, "extra", {}) or {})},
        "object": attrs.obj,
        "oldObject": attrs.old,
        "dryRun": attrs.dry_run,
        "options": {"kind": _OPTIONS_KIND.get(attrs.operation, "CreateOptions"), "apiVersion": "meta.k8s.io/v1"},
    }
    if attrs.subresource:
        request["subResource"] = request["requestSubResource"] = attrs.subresource
    if kind.namespaced:
        request["namespace"] = attrs.namespace
    return request


def match_conditions_pass(webhook: Webhook, request: dict, namespace: dict | None) -> bool:
    """All matchConditions true: call; any false: skip. An evaluation error raises WebhookCallError."""
    data = {"object": request["object"], "oldObject": request["oldObject"], "namespaceObject": namespace,
            "request": {k: v for k, v in request.items() if k not in ("object", "oldObject")}}
    for condition in webhook.spec.get("matchConditions") or []:
        try:
            value = evaluate(condition.get("expression", ""), data)
        except ValueError as exc:
            value = exc
        if value is False:
            return False
        if value is not True:
            raise WebhookCallError(f'matchCondition "{condition.get("name", "")}" evaluation error: {value}')
    return True


# ---- calling -----------------------------------------------------------------------------------


class WebhookClient:
    """POSTs AdmissionReviews; one HTTPS session per trust root (caBundle), reused across calls."""

    def __init__(self, state: ClusterState):
        self.state = state
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, ca_bundle: str) -> aiohttp.ClientSession:
        session = self._sessions.get(ca_bundle)
        if session is None or session.closed:
            context = ssl.create_default_context()
            if ca_bundle:
                try:
                    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
                except (ValueError, ssl.SSLError) as exc:
                    raise WebhookCallError(f"invalid caBundle: {exc}") from None
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=64))
            self._sessions[ca_bundle] = session
        return session

    def target(self, config: dict) -> tuple[str, str, str | None]:
        """(URL to connect to, URL as upstream prints it, TLS server name) of a clientConfig."""
        if config.get("url"):
            return config["url"], config["url"], None
        service = config.get("service") or {}
        name, namespace = service.get("name", ""), service.get("namespace", "")
        port, path = service.get("port", 443), service.get("path", "") or ""
        host = f"{name}.{namespace}.svc"
        found = self.state.peek(self.state.kind("", "v1", "Service"), namespace, name)
        cluster_ip = ((found or {}).get("spec") or {}).get("clusterIP")
        if not cluster_ip or cluster_ip == "None":
            raise WebhookCallError(f'service "{namespace}/{name}" has no cluster IP')
        return f"https://{cluster_ip}:{port}{path}", f"https://{host}:{port}{path}", host

    async def call(self, webhook: Webhook, review: dict) -> dict:
        config = webhook.spec.get("clientConfig") or {}
        timeout = webhook.spec.get("timeoutSeconds", 10)
        url, shown, server_name = self.target(config)
        url, shown = f"{url}?timeout={timeout}s", f"{shown}?timeout={timeout}s"  # URLs carry no query (validation)
        session = self._session(config.get("caBundle", ""))
        try:
            async with asyncio.timeout(timeout):
                async with session.post(url, data=orjson.dumps(review),
                                        headers={"Content-Type": "application/json", "Accept": "application/json"},
                                        server_hostname=server_name) as resp:
                    body = await resp.read()
                    if resp.status != 200:
                        raise WebhookCallError(f"failed to call webhook: the server responded with the status code "
                                               f"{resp.status}")
        except TimeoutError:
            raise WebhookCallError(f'failed to call webhook: Post "{shown}": context deadline exceeded') from None
        except aiohttp.ClientConnectorError as exc:
            host, port = urlsplit(url).hostname, urlsplit(url).port or 443
            why = "connect: connection refused" if exc.os_error and exc.os_error.errno == errno.ECONNREFUSED else (
                str(exc.os_error or exc))
            raise WebhookCallError(f'failed to call webhook: Post "{shown}": dial tcp {host}:{port}: {why}') from None
        except aiohttp.ClientError as exc:
            raise WebhookCallError(f'failed to call webhook: Post "{shown}": {exc}') from None
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise WebhookCallError(f"received invalid webhook response: {exc}") from None
        response = answer.get("response") if isinstance(answer, dict) else None
        if not isinstance(response, dict):
            raise WebhookCallError("received invalid webhook response: no response in the AdmissionReview")
        uid = review["request"]["uid"]
        if response.get("uid") != uid:
            raise WebhookCallError(f"expected response.uid={uid!r}, got {response.get('uid', '')!r}".replace("'", '"'))
        return response

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()


def denied(webhook: Webhook, response: dict) -> APIError:
    """upstream webhookerrors.ToStatusErr: the webhook's status, never below 400."""
    status = response.get("status") or {}
    who = f'admission webhook "{webhook.name}" denied the request'
    if status.get("message"):
        message = f"{who}: {status['message']}"
    elif status.get("reason"):
        message = f"{who}: {status['reason']}"
    else:
        message = f"{who} without explanation"
    code = status.get("code") or 400
    return APIError(code if code >= 400 else 400, status.get("reason", ""), message, status.get("details"))


# ---- the plugins -----------------------------------------------------------------------------


class _WebhookPlugin(AdmissionPlugin):
    config_kind = ""

    def __init__(self, state: ClusterState, client: WebhookClient):
        self.state = state
        self.client = client
        self.configs = state.kind("admissionregistration.k8s.io", "v1", self.config_kind)

    def handles(self, attrs: Attributes) -> bool:
        return self.state.has_any(self.configs)

    def webhooks(self) -> list[Webhook]:
        configs = sorted(self.state.list(self.configs), key=lambda c: c["metadata"]["name"])
        return [Webhook(c["metadata"]["name"], w) for c in configs for w in c.get("webhooks") or []]

    def _applies(self, webhook: Webhook, attrs: Attributes, namespace: dict | None) -> bool:
        if not any(rule_matches(rule, attrs) for rule in webhook.spec.get("rules") or []):
            return False
        return selectors_match(webhook.spec, attrs, namespace)

    async def _ask(self, webhook: Webhook, attrs: Attributes, namespace: dict | None) -> dict | None:
        """The webhook's response; None when it does not apply or failed and may be ignored."""
        request = review_request(attrs, str(uuid.uuid4()))
        try:
            if not match_conditions_pass(webhook, request, namespace):
                return None
            return await self.client.call(webhook, {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                                                    "request": request})
        except WebhookCallError as exc:
            if webhook.fails_closed:
                raise errors.internal(f'failed calling webhook "{webhook.name}": {exc}') from None
            log.warning("failed calling webhook %s of %s (failurePolicy Ignore): %s", webhook.name,
                        webhook.config_name, exc)
            return None


class MutatingAdmissionWebhook(_WebhookPlugin):
    name = "MutatingAdmissionWebhook"
    mutating = True
    config_kind = "MutatingWebhookConfiguration"

    async def admit(self, attrs: Attributes) -> None:
        namespace = namespace_object(self.state, attrs)
        hooks = [w for w in self.webhooks() if self._applies(w, attrs, namespace)]
        called: list[Webhook] = []
        reinvoke: list[Webhook] = []
        for webhook in hooks:
            changed = await self._mutate(webhook, attrs, namespace)
            if changed:
                # Earlier webhooks that asked for it see the object this one produced.
                reinvoke += [w for w in called if w.spec.get("reinvocationPolicy") == "IfNeeded" and w not in reinvoke]
            called.append(webhook)
        for webhook in hooks:
            if webhook in reinvoke:
                await self._mutate(webhook, attrs, namespace)

    async def _mutate(self, webhook: Webhook, attrs: Attributes, namespace: dict | None) -> bool:
        response = await self._ask(webhook, attrs, namespace)
        if response is None:
            return False
        attrs.warnings.extend(response.get("warnings") or [])
        if not response.get("allowed"):
            raise denied(webhook, response)
        if not response.get("patch") or attrs.obj is None:
            return False
        if response.get("patchType") != "JSONPatch":
            raise errors.internal(f'failed calling webhook "{webhook.name}": unsupported patch type '
                                  f'"{response.get("patchType", "")}"')
        try:
            operations = orjson.loads(base64.b64decode(response["patch"]))
            patched = jsonpatch.JsonPatch(operations).apply(copy.deepcopy(attrs.obj))
        except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            raise errors.internal(f'failed calling webhook "{webhook.name}": failed to apply patch: {exc}') from None
        if not isinstance(patched, dict) or patched == attrs.obj:
            return False
        # Replace the contents in place: the REST layer holds this very dict.
        attrs.obj.clear()
        attrs.obj.update(patched)
        return True


class ValidatingAdmissionWebhook(_WebhookPlugin):
    name = "ValidatingAdmissionWebhook"
    validating = True
    config_kind = "ValidatingWebhookConfiguration"

    async def validate(self, attrs: Attributes) -> None:
        namespace = namespace_object(self.state, attrs)
        hooks = [w for w in self.webhooks() if self._applies(w, attrs, namespace)]
        if not hooks:
            return
        results = await asyncio.gather(*(self._ask(w, attrs, namespace) for w in hooks), return_exceptions=True)
        for webhook, result in zip(hooks, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            if result is None:
                continue
            attrs.warnings.extend(result.get("warnings") or [])
            if not result.get("allowed"):
                raise denied(webhook, result)

