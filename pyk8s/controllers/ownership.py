"""ControllerRef bookkeeping shared by the workload controllers (upstream controller_ref_manager.go).

A controller *claims* the objects it manages: objects whose controller ownerReference names it and that
still match its selector are kept, owned objects that stopped matching are released (the reference is
removed), and matching orphans are adopted (a controller reference is added), but only after a live read
confirms the owner is neither being deleted nor replaced by a new object of the same name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..api.validation import selector_matches
from ..client import APIClient, APIStatusError, Informer, is_conflict, is_not_found

log = logging.getLogger("pyk8s.controllers.ownership")

# Informer index of objects by "<namespace>/<controller uid>" ("<namespace>/" for orphans): a sync then
# looks only at its own children and the orphans it might adopt, not at every object in the namespace.
CONTROLLER_INDEX = "controller-uid"


def controller_ref(obj: Mapping) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return ref
    return None


def label_selector_selects(selector: object, labels: Mapping[str, str]) -> bool:
    """A controller's metav1.LabelSelector: an empty or missing one selects nothing (unlike a list's)."""
    if not isinstance(selector, dict) or not (selector.get("matchLabels") or selector.get("matchExpressions")):
        return False
    match_labels = selector.get("matchLabels")
    if not selector.get("matchExpressions") and isinstance(match_labels, dict) and isinstance(labels, dict):
        # The common case, on every child of every sync: no label maps built.
        return match_labels.items() <= labels.items()
    return selector_matches(selector, dict(labels))


def selects(owner: Mapping, child: Mapping) -> bool:
    """Whether owner's spec.selector selects child's labels."""
    return label_selector_selects((owner.get("spec") or {}).get("selector"),
                                  (child.get("metadata") or {}).get("labels") or {})


def controller_index(obj: Mapping) -> list[str]:
    ref = controller_ref(obj)
    namespace = (obj.get("metadata") or {}).get("namespace") or ""
    return [f"{namespace}/{ref.get('uid') if ref else ''}"]


def claim_candidates(informer: Informer, owner: Mapping) -> list[dict]:
    """The objects in `informer` that `owner` may claim: those it controls and the orphans in its namespace."""
    meta = owner["metadata"]
    namespace = meta.get("namespace") or ""
    return [*informer.by_index(CONTROLLER_INDEX, f"{namespace}/{meta['uid']}"),
            *informer.by_index(CONTROLLER_INDEX, f"{namespace}/")]


def owner_reference(owner: Mapping, api_version: str, kind: str, *, controller: bool = True) -> dict:
    meta = owner["metadata"]
    ref = {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"]}
    if controller:
        ref["controller"] = True
    ref["blockOwnerDeletion"] = True
    return ref


class ControllerRefManager:
    """Claims children (pods, ReplicaSets, ControllerRevisions) for one owner object."""

    def __init__(self, client: APIClient, owner: Mapping, owner_resource: str, api_version: str, kind: str,
                 child_resource: str, matches: Callable[[Mapping], bool]):
        self.client = client
        self.owner = owner
        self.owner_resource = owner_resource
        self.api_version = api_version
        self.kind = kind
        self.child_resource = child_resource
        self.matches = matches
        self._can_adopt: bool | None = None

    async def claim(self, children: list[dict]) -> list[dict]:
        uid = self.owner["metadata"]["uid"]
        deleting = bool(self.owner["metadata"].get("deletionTimestamp"))
        claimed: list[dict] = []
        for child in children:
            ref = controller_ref(child)
            matches = self.matches(child)
            if ref is not None:
                if ref.get("uid") != uid:
                    continue
                if matches:
                    claimed.append(child)
                elif not deleting:
                    await self._release(child)
                continue
            if not matches or deleting or (child.get("metadata") or {}).get("deletionTimestamp"):
                continue
            if not await self._owner_can_adopt():
                continue
            adopted = await self._adopt(child)
            if adopted is not None:
                claimed.append(adopted)
        return claimed

    async def _owner_can_adopt(self) -> bool:
        if self._can_adopt is None:
            meta = self.owner["metadata"]
            try:
                fresh = await self.client.get(self.owner_resource, meta["name"], meta.get("namespace"))
            except APIStatusError as exc:
                if not is_not_found(exc):
                    raise
                self._can_adopt = False
            else:
                fresh_meta = fresh.get("metadata") or {}
                self._can_adopt = fresh_meta.get("uid") == meta["uid"] and not fresh_meta.get("deletionTimestamp")
        return self._can_adopt

    async def _patch_refs(self, child: dict, refs: list[dict] | None) -> dict | None:
        meta = child["metadata"]
        patch = {"metadata": {"uid": meta["uid"], "ownerReferences": refs}}
        try:
            return await self.client.patch(self.child_resource, meta["name"], patch, meta.get("namespace"))
        except APIStatusError as exc:
            if is_not_found(exc) or is_conflict(exc) or exc.code == 422:
                log.info("%s %s: couldn't change the owner of %s %s: %s", self.kind, self.owner["metadata"]["name"],
                         self.child_resource, meta["name"], exc)
                return None
            raise

    async def _adopt(self, child: dict) -> dict | None:
        uid = self.owner["metadata"]["uid"]
        refs = [r for r in child["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
        adopted = await self._patch_refs(child, [*refs, owner_reference(self.owner, self.api_version, self.kind)])
        if adopted is not None:
            log.info("%s %s adopted %s %s", self.kind, self.owner["metadata"]["name"], self.child_resource,
                     child["metadata"]["name"])
        return adopted

    async def _release(self, child: dict) -> None:
        uid = self.owner["metadata"]["uid"]
        refs = [r for r in child["metadata"].get("ownerReferences") or () if r.get("uid") != uid]
        if await self._patch_refs(child, refs or None) is not None:
            log.info("%s %s released %s %s", self.kind, self.owner["metadata"]["name"], self.child_resource,
                     child["metadata"]["name"])
