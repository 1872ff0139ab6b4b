"""Discovery documents (legacy and aggregated v2), built once from the kinds registry."""

from __future__ import annotations

import hashlib

import orjson

from ..api.kinds import Kind, Registry

AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"


def wants_aggregated(accept: str | None) -> str:
    """The aggregated media type the client asked for first, or "" for legacy documents."""
    for part in (accept or "").split(","):
        fields = [f.strip() for f in part.split(";")]
        params = dict(f.split("=", 1) for f in fields[1:] if "=" in f)
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return AGGREGATED_V2
            if params.get("v") == "v2beta1":
                return AGGREGATED_V2BETA1
        elif fields[0] in ("application/json", "*/*", "application/*"):
            return ""
    return ""


def _storage_version_hash(kind: Kind) -> str:
    digest = hashlib.sha256(f"{kind.group}/{kind.version}/{kind.kind}".encode()).digest()
    import base64

    return base64.b64encode(digest[:8]).decode()


def _legacy_resources(kind: Kind) -> list[dict]:
    main: dict = {"name": kind.plural, "singularName": kind.singular, "namespaced": kind.namespaced,
                  "kind": kind.kind, "verbs": sorted(kind.verbs)}
    if kind.short_names:
        main["shortNames"] = list(kind.short_names)
    if kind.categories:
        main["categories"] = list(kind.categories)
    main["storageVersionHash"] = _storage_version_hash(kind)
    out = [main]
    for sub in kind.subresources:
        entry: dict = {"name": f"{kind.plural}/{sub.name}", "singularName": "", "namespaced": kind.namespaced}
        if sub.group is not None:
            entry["group"], entry["version"] = sub.group, sub.version
        entry["kind"] = sub.kind or kind.kind
        entry["verbs"] = list(sub.verbs)
        out.append(entry)
    return out


def _aggregated_resource(kind: Kind) -> dict:
    entry: dict = {"resource": kind.plural,
                   "responseKind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
                   "scope": "Namespaced" if kind.namespaced else "Cluster",
                   "singularResource": kind.singular, "verbs": sorted(kind.verbs)}
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    subs = []
    for sub in kind.subresources:
        group = kind.group if sub.group is None else sub.group
        version = kind.version if sub.version is None else sub.version
        subs.append({"subresource": sub.name,
                     "responseKind": {"group": group, "version": version, "kind": sub.kind or kind.kind},
                     "verbs": list(sub.verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


class Discovery:
    """Pre-encoded discovery bodies; `server_address` fills serverAddressByClientCIDRs."""

    def __init__(self, registry: Registry, server_address: str):
        self.registry = registry
        gvs = registry.group_versions()
        core_versions = gvs.get("", [])
        self.api_versions = orjson.dumps({
            "kind": "APIVersions", "versions": core_versions,
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
        self.groups: dict[str, dict] = {}
        for group, versions in gvs.items():
            if not group:
                continue
            self.groups[group] = {
                "name": group,
                "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
            }
        self.group_list = orjson.dumps({"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": list(self.groups.values())})
        self.group_docs = {g: orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **doc})
                           for g, doc in self.groups.items()}
        self.resource_lists: dict[tuple[str, str], bytes] = {}
        for group, versions in gvs.items():
            for version in versions:
                gv = f"{group}/{version}" if group else version
                resources = [r for k in registry.kinds_in(group, version) for r in _legacy_resources(k)]
                self.resource_lists[(group, version)] = orjson.dumps(
                    {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
        self._aggregated: dict[tuple[str, bool], bytes] = {}
        for version_label in ("v2", "v2beta1"):
            self._aggregated[(version_label, True)] = self._build_aggregated(version_label, core=True)
            self._aggregated[(version_label, False)] = self._build_aggregated(version_label, core=False)

    def _build_aggregated(self, version_label: str, core: bool) -> bytes:
        items = []
        for group, versions in self.registry.group_versions().items():
            if bool(group) == core:
                continue
            items.append({
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [{"version": v, "resources": [_aggregated_resource(k)
                                                           for k in self.registry.kinds_in(group, v)],
                              "freshness": "Current"} for v in versions],
            })
        return orjson.dumps({"kind": "APIGroupDiscoveryList", "apiVersion": f"apidiscovery.k8s.io/{version_label}",
                             "metadata": {}, "items": items})

    def aggregated(self, media: str, core: bool) -> bytes:
        version_label = "v2" if media == AGGREGATED_V2 else "v2beta1"
        return self._aggregated[(version_label, core)]
