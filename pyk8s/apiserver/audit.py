"""Auditing: upstream's audit Policy (audit.k8s.io/v1) and the log backend (audit.k8s.io/v1 Event JSON lines).

Every response carries an `Audit-Id` header (the client's `Audit-ID` when it sent one, else a new
UUID), audit policy or not, as upstream. With `--audit-policy-file`, each request gets the level
of the first rule that matches it; at Metadata and above it produces one event per stage
(RequestReceived, then ResponseStarted for watches, then ResponseComplete, or Panic when the
request failed with an internal error) with the request body at Request level and the response
body at RequestResponse. The policy decides everything: a policy that puts secrets at Request
level logs their data, which is why the usual policies keep secrets at Metadata.

Events go into a bounded queue and a writer task appends them to the log in batches from a worker
thread, so a slow disk never holds up a request; when the queue is full new events are dropped
(and counted in the log), never the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import yaml
from aiohttp import web

from .authn import UserInfo
from .negotiation import PROTOBUF, REQUEST_BODY, decode_body, media_type
from .requestinfo import RequestInfo

log = logging.getLogger("pyk8s.apiserver.audit")

API_VERSION = "audit.k8s.io/v1"
LEVELS = ("None", "Metadata", "Request", "RequestResponse")
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_QUEUE_SIZE = 10_000
_BATCH = 500


class PolicyError(ValueError):
    """The audit policy file cannot be used; the server must not start with it."""


@dataclass(frozen=True)
class GroupResources:
    group: str = ""
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class PolicyRule:
    level: str
    users: tuple[str, ...] = ()
    user_groups: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resources: tuple[GroupResources, ...] = ()
    namespaces: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool | None = None

    def matches(self, user: UserInfo | None, info: RequestInfo) -> bool:
        if self.users and (user is None or user.name not in self.users):
            return False
        if self.user_groups and (user is None or not set(user.groups) & set(self.user_groups)):
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.namespaces or self.resources:
            return self._matches_resource(info)
        if self.non_resource_urls:
            return not info.is_resource_request and any(_path_matches(info.path, spec)
                                                         for spec in self.non_resource_urls)
        return True

    def _matches_resource(self, info: RequestInfo) -> bool:
        if not info.is_resource_request:
            return False
        # Cluster-scoped requests have the namespace "", which a rule can name.
        if self.namespaces and info.namespace not in self.namespaces:
            return False
        if not self.resources:
            return True
        combined = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
        for rule in self.resources:
            if rule.group != info.group:
                continue
            if not rule.resources:
                return True
            if rule.resource_names and info.name not in rule.resource_names:
                continue
            for res in rule.resources:
                if res in ("*", combined):
                    return True
                if info.subresource and res.startswith("*/") and res[2:] == info.subresource:
                    return True
                if res.endswith("/*") and res[:-2] == info.resource:
                    return True
        return False


def _path_matches(path: str, spec: str) -> bool:
    if spec in ("*", path):
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


@dataclass(frozen=True)
class Decision:
    level: str
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


NO_AUDIT = Decision("None")


@dataclass(frozen=True)
class Policy:
    rules: tuple[PolicyRule, ...]
    omit_stages: tuple[str, ...] = ()
    omit_managed_fields: bool = False

    def decide(self, user: UserInfo | None, info: RequestInfo) -> Decision:
        for rule in self.rules:
            if rule.matches(user, info):
                managed = self.omit_managed_fields if rule.omit_managed_fields is None else rule.omit_managed_fields
                return Decision(rule.level, frozenset(self.omit_stages) | frozenset(rule.omit_stages), managed)
        return NO_AUDIT


def load_policy(path: str | Path) -> Policy:
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"failed to read audit policy file {path}: {exc}") from None
    try:
        return parse_policy(doc)
    except PolicyError as exc:
        raise PolicyError(f"invalid audit policy file {path}: {exc}") from None


def parse_policy(doc: object) -> Policy:
    """Validate as upstream's audit validation does; every problem is reported at once."""
    if not isinstance(doc, dict) or doc.get("kind") != "Policy" or doc.get("apiVersion") != API_VERSION:
        raise PolicyError(f"expected apiVersion {API_VERSION} and kind Policy")
    errors: list[str] = []
    omit_stages = _stages(doc.get("omitStages"), "omitStages", errors)
    rules = []
    raw_rules = doc.get("rules") or []
    if not isinstance(raw_rules, list):
        raise PolicyError("rules: Invalid value: must be a list")
    for i, raw in enumerate(raw_rules):
        path = f"rules[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{path}: Invalid value: must be an object")
            continue
        level = raw.get("level")
        if level not in LEVELS:
            errors.append(f"{path}.level: " + (f"Unsupported value: {level!r}: supported values: "
                                               + ", ".join(f'"{lv}"' for lv in LEVELS)
                                               if level else "Required value"))
        resources = []
        for j, gr in enumerate(raw.get("resources") or []):
            gr_path = f"{path}.resources[{j}]"
            if not isinstance(gr, dict):
                errors.append(f"{gr_path}: Invalid value: must be an object")
                continue
            names = tuple(gr.get("resources") or ())
            resource_names = tuple(gr.get("resourceNames") or ())
            if resource_names and not names:
                errors.append(f"{gr_path}.resourceNames: Invalid value: {list(resource_names)}: "
                              "using resourceNames requires at least one resource")
            resources.append(GroupResources(gr.get("group") or "", names, resource_names))
        urls = tuple(raw.get("nonResourceURLs") or ())
        if urls and (resources or raw.get("namespaces")):
            errors.append(f"{path}.nonResourceURLs: Invalid value: {list(urls)}: rules cannot apply to both "
                          "regular resources and non-resource URLs")
        for k, url in enumerate(urls):
            if url == "*":
                continue
            if not url.startswith("/"):
                errors.append(f"{path}.nonResourceURLs[{k}]: Invalid value: {url!r}: non-resource URL rules must "
                              "begin with a '/' character")
            if "*" in url[:-1]:
                errors.append(f"{path}.nonResourceURLs[{k}]: Invalid value: {url!r}: non-resource URL wildcards "
                              "'*' must be the final character of the rule")
        rules.append(PolicyRule(
            level=level or "None", users=tuple(raw.get("users") or ()), user_groups=tuple(raw.get("userGroups") or ()),
            verbs=tuple(raw.get("verbs") or ()), resources=tuple(resources),
            namespaces=tuple(raw.get("namespaces") or ()), non_resource_urls=urls,
            omit_stages=_stages(raw.get("omitStages"), f"{path}.omitStages", errors),
            omit_managed_fields=raw.get("omitManagedFields")))
    if errors:
        raise PolicyError("; ".join(errors))
    return Policy(tuple(rules), omit_stages, bool(doc.get("omitManagedFields", False)))


def _stages(value: object, path: str, errors: list[str]) -> tuple[str, ...]:
    stages = tuple(value or ()) if isinstance(value, list | type(None)) else ()
    for stage in stages:
        if stage not in STAGES:
            errors.append(f"{path}: Unsupported value: {stage!r}: supported values: "
                          + ", ".join(f'"{s}"' for s in STAGES))
    return stages


# --------------------------------------------------------------------------- events


def new_audit_id() -> str:
    """A random (version 4) UUID, as upstream's, formatted directly: uuid.uuid4() costs several times more,
    and every request pays for one."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _timestamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _without_managed_fields(obj: object) -> object:
    if not isinstance(obj, dict):
        return obj
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
    if isinstance(obj.get("items"), list):
        obj = {**obj, "items": [_without_managed_fields(item) for item in obj["items"]]}
    return obj


@dataclass
class RequestAudit:
    """One request's audit record: its ID always, its events when the policy asks for them."""

    auditor: Auditor
    request: web.Request
    info: RequestInfo
    audit_id: str
    received: str = ""  # requestReceivedTimestamp, taken only when there is a policy to log it
    decision: Decision = NO_AUDIT
    user: UserInfo | None = None
    # Set by impersonation (Impersonate-User headers) when the server grows it: `user` stays the caller.
    impersonated: UserInfo | None = None
    body_ref: dict = field(default_factory=dict)  # objectRef fields the request body supplies
    stream_status: int | None = None  # a watch's status once its stream started
    completed: bool = False

    def authenticated(self, user: UserInfo | None) -> None:
        """Decide the level (the policy matches on the user) and log the RequestReceived stage."""
        self.user = user
        if self.auditor.policy is not None:
            self.decision = self.auditor.policy.decide(user, self.info)
        self._emit("RequestReceived")

    def response_started(self, response: web.StreamResponse) -> None:
        # Only a stream (a watch) has a start distinct from its end; an error answer to a watch is a plain Response.
        if self.info.verb == "watch" and not isinstance(response, web.Response):
            self.stream_status = response.status
            self._emit("ResponseStarted", code=response.status)

    def complete(self, response: web.StreamResponse | None, panicked: bool = False) -> None:
        if self.completed:
            return
        self.completed = True
        if self.decision.level == "None":
            return
        # No response here: a watch whose client went away (its stream's status stands), or aiohttp itself
        # answers (an HTTPException, whose status is not known yet).
        code = response.status if response is not None else self.stream_status
        stage = "Panic" if panicked else "ResponseComplete"
        with_body = self.decision.level != "Metadata" or not self.info.name  # a create names its object inside
        request_object = self._request_object() if self.info.is_resource_request and with_body else None
        if isinstance(request_object, dict) and isinstance(request_object.get("metadata"), dict):
            # As upstream, the decoded body completes the object reference (a create names its object there).
            meta = request_object["metadata"]
            self.body_ref = {"namespace": meta.get("namespace"), "name": meta.get("name"), "uid": meta.get("uid"),
                             "resourceVersion": meta.get("resourceVersion")}
        if self.decision.level == "Metadata":
            request_object = None
        response_object = None
        status_body = None
        # Decoding a response costs as much as encoding it did: only for the failure's Status or when logged.
        wanted = code is not None and (code >= 400 or self.decision.level == "RequestResponse")
        if wanted and isinstance(response, web.Response) and response.body is not None:
            parsed = self._json(response)
            if isinstance(parsed, dict) and parsed.get("kind") == "Status":
                status_body = {k: v for k, v in parsed.items() if k not in ("kind", "apiVersion")}
            if self.decision.level == "RequestResponse":
                response_object = parsed
        self._emit(stage, code=code, status=status_body, request_object=request_object,
                   response_object=response_object)

    def _emit(self, stage: str, *, code: int | None = None, status: dict | None = None,
              request_object: object = None, response_object: object = None) -> None:
        if self.decision.level == "None" or stage in self.decision.omit_stages:
            return
        info, request = self.info, self.request
        event: dict = {
            "kind": "Event", "apiVersion": API_VERSION, "level": self.decision.level, "auditID": self.audit_id,
            "stage": stage, "requestURI": request.path_qs, "verb": info.verb,
            "user": _user(self.user),
        }
        if self.impersonated is not None:
            event["impersonatedUser"] = _user(self.impersonated)
        event["sourceIPs"] = _source_ips(request)
        if request.headers.get("User-Agent"):
            event["userAgent"] = request.headers["User-Agent"]
        if info.is_resource_request:
            ref = {"resource": info.resource, "namespace": info.namespace or self.body_ref.get("namespace"),
                   "name": info.name or self.body_ref.get("name"), "uid": self.body_ref.get("uid"),
                   "apiGroup": info.group, "apiVersion": info.version,
                   "resourceVersion": self.body_ref.get("resourceVersion"), "subresource": info.subresource}
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        if code is not None:
            event["responseStatus"] = {"metadata": {}, **(status or {}), "code": code}
        managed = self.decision.omit_managed_fields
        if request_object is not None:
            event["requestObject"] = _without_managed_fields(request_object) if managed else request_object
        if response_object is not None:
            event["responseObject"] = _without_managed_fields(response_object) if managed else response_object
        event["requestReceivedTimestamp"] = self.received
        event["stageTimestamp"] = _timestamp()
        if code is not None:  # authorization ran after RequestReceived
            event["annotations"] = {"authorization.k8s.io/decision": "forbid" if code == 403 else "allow"}
        self.auditor.submit(event)

    def _request_object(self) -> object:
        """The body the handler read, decoded; like upstream, nothing for a request that never got that far."""
        raw = self.request.get(REQUEST_BODY)
        if not raw:
            return None
        content_type = media_type(self.request.headers.get("Content-Type"))
        try:
            if content_type == PROTOBUF:
                return decode_body(raw, PROTOBUF, "")
            if "yaml" in content_type:
                return yaml.safe_load(raw)
            return orjson.loads(raw)
        except Exception:  # noqa: BLE001 - an unreadable body is the handler's error to report, not audit's
            return None

    @staticmethod
    def _json(response: web.Response) -> object:
        if "json" not in (response.content_type or ""):
            return None
        try:
            return orjson.loads(response.body)  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, TypeError):
            return None


def _user(user: UserInfo | None) -> dict:
    if user is None:
        return {}
    out: dict = {"username": user.name}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = user.extra
    return out


def _source_ips(request: web.Request) -> list[str]:
    ips = [ip.strip() for ip in request.headers.get("X-Forwarded-For", "").split(",") if ip.strip()]
    if request.remote and request.remote not in ips:
        ips.append(request.remote)
    return ips


AUDIT_KEY = web.RequestKey("audit", RequestAudit)


# --------------------------------------------------------------------------- the log backend


class AuditLog:
    """Appends event lines to a file (rotated at `max_size_mb`, keeping `max_backups`) or to stdout ('-')."""

    def __init__(self, path: str, max_size_mb: int = 0, max_backups: int = 0):
        self.path = path
        self.max_bytes = max_size_mb * 1024 * 1024
        self.max_backups = max_backups
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self.path == "-":
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        if self._file is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - held open across batches
        if self.max_bytes and self._file.tell() and self._file.tell() + len(data) > self.max_bytes:
            self._rotate()
        self._file.write(data)
        self._file.flush()

    def _rotate(self) -> None:
        """Like upstream's lumberjack: the full file becomes <name>-<UTC time><ext>, oldest backups go."""
        assert self._file is not None
        self._file.close()
        path = Path(self.path)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H-%M-%S.%f")[:-3]
        path.rename(path.with_name(f"{path.stem}-{stamp}{path.suffix}"))
        if self.max_backups:
            backups = sorted(path.parent.glob(f"{path.stem}-*{path.suffix}"))
            for old in backups[:-self.max_backups]:
                with contextlib.suppress(OSError):
                    old.unlink()
        self._file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Auditor:
    """Gives each request its audit ID and, with a policy and a log, writes its events."""

    def __init__(self, policy: Policy | None = None, backend: AuditLog | None = None):
        self.policy = policy if backend is not None else None
        self.backend = backend
        self.dropped = 0
        self._queue: asyncio.Queue[bytes] | None = None
        self._writer: asyncio.Task | None = None

    def begin(self, request: web.Request, info: RequestInfo) -> RequestAudit:
        audit = RequestAudit(self, request, info, request.headers.get("Audit-ID") or new_audit_id(),
                             _timestamp() if self.policy is not None else "")
        request[AUDIT_KEY] = audit
        return audit

    async def on_response_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """aiohttp calls this before any response's headers go out, streamed ones included."""
        audit = request.get(AUDIT_KEY)
        if audit is not None:
            response.headers["Audit-Id"] = audit.audit_id
            audit.response_started(response)

    async def start(self) -> None:
        if self.backend is not None:
            self._queue = asyncio.Queue(_QUEUE_SIZE)
            self._writer = asyncio.create_task(self._write_loop(), name="audit-log-writer")

    async def stop(self) -> None:
        """Write what is queued, then close the log."""
        if self._writer is None or self._queue is None:
            return
        await self._queue.join()
        self._writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._writer
        assert self.backend is not None
        self.backend.close()

    def submit(self, event: dict) -> None:
        if self._queue is None:
            return
        try:
            self._queue.put_nowait(orjson.dumps(event) + b"\n")
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("audit log cannot keep up: %d events dropped", self.dropped)

    async def _write_loop(self) -> None:
        assert self._queue is not None and self.backend is not None
        loop = asyncio.get_running_loop()
        while True:
            lines = [await self._queue.get()]
            while len(lines) < _BATCH and not self._queue.empty():
                lines.append(self._queue.get_nowait())
            try:
                await loop.run_in_executor(None, self.backend.write, b"".join(lines))
            except OSError:
                log.exception("writing the audit log %s failed; %d events lost", self.backend.path, len(lines))
            finally:
                for _ in lines:
                    self._queue.task_done()


def auditor_from_flags(policy_file: str | Path | None, log_path: str | None, max_size_mb: int = 0,
                       max_backups: int = 0) -> Auditor:
    """Upstream audits only when both a policy and a log path are given; otherwise requests just get IDs."""
    if not policy_file or not log_path:
        return Auditor()
    return Auditor(load_policy(policy_file), AuditLog(log_path, max_size_mb, max_backups))
