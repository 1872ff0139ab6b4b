"""pods/eviction (upstream pkg/registry/core/pod/storage/eviction.go): delete a pod only when its
PodDisruptionBudget allows it, taking one disruption from the budget in the same operation.

A pod matched by one PDB may go when the PDB's status.disruptionsAllowed is above zero: the status is
written back with one disruption fewer and the pod recorded in status.disruptedPods (optimistic
concurrency on the PDB; a conflict re-reads and tries again). Pods that disrupt nothing (terminal,
pending, already being deleted) bypass the budget, and so do not-ready pods when the PDB's
unhealthyPodEvictionPolicy allows it. Before deleting, the pod gets the DisruptionTarget condition.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from aiohttp import web

from ..api import errors
from ..api.disruption import (
    ALWAYS_ALLOW,
    DISRUPTION_BUDGET_CAUSE,
    DISRUPTION_TARGET,
    disruption_allowed_condition,
    is_pod_ready,
)
from ..api.errors import APIError
from ..api.kinds import REGISTRY, Kind
from ..api.meta import now_rfc3339
from ..api.validation import selector_matches
from .admission import CREATE, Attributes
from .negotiation import decode_body
from .requestinfo import RequestInfo
from .rest import DeleteOptions, ListRequest, WriteOptions

if TYPE_CHECKING:
    from .handlers import ResourceHandler

EVICTION_VERSIONS = ("policy/v1", "policy/v1beta1")
# Upstream refuses once this many evictions wait for the disruption controller to confirm them.
MAX_DISRUPTED_PODS = 2000
# Attempts at the read-check-write of a PDB before giving up on conflicts (upstream EvictionsRetry).
EVICTION_RETRIES = 20
VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_PDBS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."


def _too_many_requests(cause: str, retry_after: int) -> APIError:
    details = {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return APIError(429, "TooManyRequests", VIOLATION, details, headers)


def can_ignore_pdb(pod: dict) -> bool:
    """Evicting these disrupts nothing: the pod is finished, never started, or already going."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def matching_pdbs(pod: dict, pdbs: list[dict]) -> list[dict]:
    """The PDBs whose selector matches the pod; an empty selector matches nothing here, as upstream."""
    labels = pod["metadata"].get("labels") or {}
    out = []
    for pdb in pdbs:
        selector = (pdb.get("spec") or {}).get("selector")
        if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
            continue
        if selector_matches(selector, labels):
            out.append(pdb)
    return out


def unhealthy_pod_bypasses_budget(pod: dict, pdb: dict) -> bool:
    """A not-ready pod may go without taking a disruption: always under AlwaysAllow, and under
    IfHealthyBudget (the default) while the budget's healthy pods already meet its desire."""
    if is_pod_ready(pod):
        return False
    if (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy") == ALWAYS_ALLOW:
        return True
    status = pdb.get("status") or {}
    desired = status.get("desiredHealthy", 0)
    return status.get("currentHealthy", 0) >= desired and desired > 0


def decrement_budget(pdb: dict, pod_name: str, now: str, dry_run: bool) -> dict:
    """The PDB with one disruption taken for `pod_name` (upstream checkAndDecrement); raises the
    429/403 upstream answers when the budget cannot pay for it."""
    meta, status = pdb["metadata"], pdb.setdefault("status", {})
    name = meta["name"]
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        raise _too_many_requests(f"The disruption budget {name} is still being processed by the server.", 10)
    allowed = status.get("disruptionsAllowed", 0)
    if allowed < 0:
        raise errors.forbidden_error("poddisruptionbudget", "policy", name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
        raise errors.forbidden_error("poddisruptionbudget", "policy", name,
                                     "DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise _too_many_requests(f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} healthy pods "
                                 f"and has {status.get('currentHealthy', 0)} currently", 0)
    status["disruptionsAllowed"] = allowed - 1
    if status["disruptionsAllowed"] == 0:
        disruption_allowed_condition(status, now)
    if not dry_run:
        status["disruptedPods"] = {**(status.get("disruptedPods") or {}), pod_name: now}
    return pdb


def delete_options_of(body: dict, query_dry_run: bool) -> DeleteOptions:
    options = body.get("deleteOptions") or {}
    if not isinstance(options, dict):
        raise errors.bad_request("invalid DeleteOptions in Eviction")
    dry_run = list(options.get("dryRun") or [])
    for value in dry_run:
        if value != "All":
            raise errors.bad_request(f'Invalid dry run value: "{value}". Valid values are: "All"')
    grace = options.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or isinstance(grace, bool)):
        raise errors.bad_request("invalid gracePeriodSeconds in Eviction deleteOptions")
    policy = options.get("propagationPolicy")
    if policy is None and options.get("orphanDependents") is not None:
        policy = "Orphan" if options["orphanDependents"] else "Background"
    if policy not in (None, "Orphan", "Foreground", "Background"):
        raise APIError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                                       f'Unsupported value: "{policy}": supported values: "Foreground", '
                                       f'"Background", "Orphan", "nil"')
    return DeleteOptions(grace_period_seconds=grace, propagation_policy=policy,
                         preconditions=dict(options.get("preconditions") or {}),
                         dry_run=bool(dry_run) or query_dry_run)


def _decode_eviction(raw: bytes, ctype: str, info: RequestInfo) -> dict:
    body = decode_body(raw, ctype, "Eviction", "policy/v1")
    # As upstream's decoder, a body without apiVersion/kind is taken as the URL's kind (the Python client).
    body["kind"] = body.get("kind") or "Eviction"
    body["apiVersion"] = body.get("apiVersion") or "policy/v1"
    if body.get("kind") != "Eviction" or body.get("apiVersion") not in EVICTION_VERSIONS:
        raise errors.bad_request(f"the object provided is unrecognized (must be of type Eviction): "
                                 f"{body.get('apiVersion', '')}, Kind={body.get('kind', '')}")
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != info.name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    if meta.get("namespace") and meta["namespace"] != info.namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                 "the request")
    return body


async def evict(handler: ResourceHandler, request: web.Request, info: RequestInfo, kind: Kind) -> web.Response:
    from .handlers import json_response

    raw, ctype = await handler._read_body(request, kind)
    body = _decode_eviction(raw, ctype, info)
    write = handler._write_options(request, kind)
    options = delete_options_of(body, write.dry_run)
    if handler.rest.admission is not None:
        # Upstream admits an eviction as a create of pods/eviction (NodeRestriction keeps a node to its own pods).
        await handler.rest.admission.review(Attributes(kind, CREATE, info.namespace, info.name, body, None, "eviction",
                                                       options.dry_run, write.user, write.warnings))
    eviction = _Eviction(handler, kind, info.namespace, info.name, options,
                         WriteOptions(dry_run=options.dry_run, field_manager=write.field_manager))
    await eviction.run()
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                          "code": 201}, status=201)


class _Eviction:
    """One eviction request: the budget check and the deletion it allows."""

    def __init__(self, handler: ResourceHandler, kind: Kind, namespace: str, name: str, options: DeleteOptions,
                 write: WriteOptions):
        self.rest = handler.rest
        self.pods = REGISTRY.storage_kind(kind)
        pdb_kind = REGISTRY.lookup("policy", "v1", "poddisruptionbudgets")
        assert pdb_kind is not None
        self.pdbs = REGISTRY.storage_kind(pdb_kind)
        self.namespace, self.name = namespace, name
        self.options = options
        self.write = write

    async def run(self) -> None:
        for _ in range(EVICTION_RETRIES):
            pod = (await self.rest.get(self.pods, self.namespace, self.name)).obj
            if can_ignore_pdb(pod):
                await self._delete(pod, keep_version=False)
                return
            listed = await self.rest.list(self.pdbs, ListRequest(namespace=self.namespace))
            # Copies: the budget check edits the PDB, and these are the watch cache's own objects.
            pdbs = [copy.deepcopy(p) for p in matching_pdbs(pod, [item.obj for item in listed.items])]
            if not pdbs:
                await self._delete(pod, keep_version=False)
                return
            if len(pdbs) > 1:
                raise errors.internal(MULTIPLE_PDBS)
            pdb = pdbs[0]
            if unhealthy_pod_bypasses_budget(pod, pdb):
                # The pod must still be the one judged not ready when it is deleted.
                await self._delete(pod, keep_version=True)
                return
            if await self._take_disruption(pdb):
                await self._delete(pod, keep_version=False)
                return
        raise errors.conflict("poddisruptionbudgets", "policy", self.name, "too many concurrent updates, please retry")

    async def _take_disruption(self, pdb: dict) -> bool:
        """Write the decremented budget; False when someone else changed the PDB first (re-read)."""
        updated = decrement_budget(pdb, self.name, now_rfc3339(), self.options.dry_run)
        if self.options.dry_run:
            return True
        try:
            await self.rest.update(self.pdbs, self.namespace, pdb["metadata"]["name"], lambda _current: updated,
                                   WriteOptions(field_manager=self.write.field_manager), "status",
                                   expected_rv=pdb["metadata"]["resourceVersion"])
        except APIError as exc:
            if exc.code == 409:
                return False
            raise
        return True

    async def _delete(self, pod: dict, keep_version: bool) -> None:
        options = self.options
        preconditions = dict(options.preconditions)
        if keep_version:
            preconditions["resourceVersion"] = pod["metadata"]["resourceVersion"]
        if not options.dry_run and not pod["metadata"].get("deletionTimestamp"):
            marked = await self._mark_disruption_target(preconditions)
            if preconditions.get("resourceVersion"):
                preconditions["resourceVersion"] = marked["metadata"]["resourceVersion"]
        await self.rest.delete(self.pods, self.namespace, self.name,
                               DeleteOptions(options.grace_period_seconds, options.propagation_policy, preconditions,
                                             options.dry_run))

    async def _mark_disruption_target(self, preconditions: dict) -> dict:
        """Add DisruptionTarget=True (EvictionByEvictionAPI) to the latest pod first, so whoever owns
        it sees why it goes; the delete's preconditions are checked against that latest pod."""

        def add(current: dict) -> dict:
            meta = current["metadata"]
            uid, version = preconditions.get("uid"), preconditions.get("resourceVersion")
            if uid and uid != meta.get("uid"):
                raise errors.conflict("pods", "", self.name, f"Precondition failed: UID in precondition: {uid}, "
                                                             f"UID in object meta: {meta.get('uid')}")
            if version and version != meta.get("resourceVersion"):
                raise errors.conflict("pods", "", self.name,
                                      f"Precondition failed: ResourceVersion in precondition: {version}, "
                                      f"ResourceVersion in object meta: {meta.get('resourceVersion')}")
            meta.pop("resourceVersion", None)  # the latest pod is the base: a racing write means read again
            status = current.setdefault("status", {})
            conditions = status.get("conditions") or []
            if any(c.get("type") == DISRUPTION_TARGET and c.get("status") == "True" for c in conditions):
                return current
            kept = [c for c in conditions if c.get("type") != DISRUPTION_TARGET]
            kept.append({"type": DISRUPTION_TARGET, "status": "True", "reason": "EvictionByEvictionAPI",
                         "message": "Eviction API: evicting", "lastProbeTime": None,
                         "lastTransitionTime": now_rfc3339()})
            status["conditions"] = kept
            return current

        updated, _ = await self.rest.update(self.pods, self.namespace, self.name, add,
                                            WriteOptions(field_manager=self.write.field_manager), "status")
        return updated
