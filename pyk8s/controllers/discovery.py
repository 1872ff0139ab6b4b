"""Custom resources found through API discovery, for the controllers that must act on every resource
(the namespace deleter, the garbage collector), as upstream's find them with a discovery client.

Built-in kinds come from the registry; what a CustomResourceDefinition added is only known to the
apiserver, so it is read from `/apis` and `/apis/<group>/<version>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.kinds import REGISTRY, Kind
from ..client import APIClient, APIStatusError


@dataclass
class Discovered:
    kinds: list[Kind] = field(default_factory=list)  # every served version (to map apiVersion+kind)
    preferred: list[Kind] = field(default_factory=list)  # one per resource, in its group's preferred version
    failures: dict[str, str] = field(default_factory=dict)  # group version -> why it could not be read


async def custom_resources(client: APIClient) -> Discovered:
    """The resources of groups the registry does not serve."""
    built_in = set(REGISTRY.group_versions())
    out = Discovered()
    for group in (await client.request("GET", "/apis")).get("groups") or []:
        name = group.get("name", "")
        if name in built_in:
            continue
        preferred = (group.get("preferredVersion") or {}).get("version", "")
        for version in group.get("versions") or []:
            group_version = version.get("groupVersion", "")
            try:
                resources = (await client.request("GET", f"/apis/{group_version}")).get("resources") or []
            except APIStatusError as exc:
                out.failures[group_version] = exc.message or str(exc)
                continue
            for res in resources:
                if "/" in res.get("name", ""):
                    continue  # subresources
                kind = Kind(name, version.get("version", ""), res.get("kind", ""), res["name"],
                            res.get("singularName", ""), namespaced=bool(res.get("namespaced")),
                            verbs=tuple(res.get("verbs") or ()))
                out.kinds.append(kind)
                if kind.version == preferred:
                    out.preferred.append(kind)
    return out
